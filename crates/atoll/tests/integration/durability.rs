//! Acknowledged writes survive `kill -9`; SIGTERM drains in-flight requests.

use crate::support::{signal, wait_with_timeout, TestServer};
use atoll_protocol::admin::CreateApp;
use atoll_protocol::device::{Platform, RegisterRequest};
use std::io::{Read, Write};
use std::time::Duration;

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let mut server = TestServer::start().await;
    let admin = server.admin().await;
    admin.create_workspace("durable", "Durable").await.unwrap();
    let created = admin
        .create_app(
            "durable",
            &CreateApp {
                name: "Kept".into(),
                platforms: vec![Platform::Android],
            },
        )
        .await
        .unwrap();
    let (device, _dir) = server.device();
    device.register(&RegisterRequest::default()).await.unwrap();
    device.bind_user("survivor").await.unwrap();

    server.kill9();
    server.restart().await;

    let admin = server.admin().await;
    let apps = admin.list_apps("durable").await.unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].app_key, created.app.app_key);
    let config = admin
        .sdk_config("durable", &created.app.app_key)
        .await
        .unwrap();
    assert_eq!(config.app_secret, created.sdk_config.app_secret);
    let stored = admin
        .get_device("demo", &server.demo.app_key, device.device_id())
        .await
        .unwrap();
    assert_eq!(stored.user_id.as_deref(), Some("survivor"));
    // The demo re-run kept its data rather than seeding again.
    assert_eq!(admin.list_workspaces().await.unwrap().len(), 2);
    assert_eq!(admin.list_apps("demo").await.unwrap().len(), 1);
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_cleanly() {
    let mut server = TestServer::start().await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let body = br#"{"email":"admin@demo.atoll","password":"wrong-password"}"#;

    // A request whose body is still arriving when SIGTERM comes.
    let mut slow = std::net::TcpStream::connect(&address).unwrap();
    write!(
        slow,
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    slow.write_all(&body[..10]).unwrap();
    slow.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));

    signal(server.pid(), "TERM");
    std::thread::sleep(Duration::from_millis(300));

    // New connections are refused once draining started.
    let refused = std::net::TcpStream::connect(&address)
        .and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")?;
            let mut buffer = [0u8; 64];
            let read = stream.read(&mut buffer)?;
            Ok(read)
        })
        .map_or(true, |read| read == 0);
    assert!(refused, "a new request was served after SIGTERM");

    // The in-flight request completes with a real answer.
    slow.write_all(&body[10..]).unwrap();
    let mut answer = String::new();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("invalid_credentials"), "{answer}");

    let status = server.terminate_wait();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        server.log()
    );
    assert!(server.log().contains("stopped cleanly"));
}

impl TestServer {
    /// Waits for a server that was already signalled.
    fn terminate_wait(&mut self) -> std::process::ExitStatus {
        let mut child = self.take_child();
        wait_with_timeout(&mut child, Duration::from_secs(30))
    }
}

#[tokio::test]
async fn the_same_binary_runs_on_postgresql_and_keeps_acknowledged_writes() {
    let database = atoll_store::conformance::TestDatabase::postgres()
        .await
        .unwrap();
    let mut server = TestServer::start_with_env(&[("ATOLL_DATABASE_URL", &database.url)]).await;
    let admin = server.admin().await;
    let (device, _dir) = server.device();
    device.register(&RegisterRequest::default()).await.unwrap();
    device.bind_user("pg-user").await.unwrap();
    admin
        .create_workspace("on-postgres", "On PostgreSQL")
        .await
        .unwrap();

    server.kill9();
    server.restart().await;

    let admin = server.admin().await;
    assert!(admin
        .list_workspaces()
        .await
        .unwrap()
        .iter()
        .any(|w| w.slug == "on-postgres"));
    let stored = admin
        .get_device("demo", &server.demo.app_key, device.device_id())
        .await
        .unwrap();
    assert_eq!(stored.user_id.as_deref(), Some("pg-user"));
    drop(server);
    database.cleanup().await.unwrap();
}
