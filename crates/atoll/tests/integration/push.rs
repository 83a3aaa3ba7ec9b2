//! Push, end to end over Atoll's own connection: sends through the admin API
//! (and a `push:send` token), devices receiving through the SDK's
//! `SyncClient::on_push`, acknowledgements, reports, revoke, fatigue caps,
//! collapse keys and the stats.

use crate::support::TestServer;
use atoll_protocol::push::*;
use atoll_protocol::ErrorCode;
use atoll_sdk::sync::{PushNotice, SyncClient, SyncOptions};
use atoll_sdk::{AdminClient, DeviceClient};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WS: &str = "demo";

/// A registered device with a push handler.
struct Phone {
    device: Arc<DeviceClient>,
    sync: SyncClient,
    seen: Arc<Mutex<Vec<PushNotice>>>,
    _storage: tempfile::TempDir,
}

impl Phone {
    async fn new(server: &TestServer) -> Phone {
        let (device, storage) = server.device();
        let device = Arc::new(device);
        device
            .register(&atoll_protocol::device::RegisterRequest {
                platform: Some(atoll_protocol::device::Platform::Android),
                app_version: Some("2.1.0".into()),
                ..Default::default()
            })
            .await
            .expect("register");
        let sync = SyncClient::new(device.clone(), SyncOptions::default()).expect("sync client");
        let seen: Arc<Mutex<Vec<PushNotice>>> = Arc::default();
        let sink = seen.clone();
        sync.on_push(move |notice| sink.lock().unwrap().push(notice.clone()));
        Phone {
            device,
            sync,
            seen,
            _storage: storage,
        }
    }

    fn id(&self) -> String {
        self.device.device_id().to_owned()
    }

    async fn connect(&self) {
        self.sync.start();
        assert!(
            self.sync.wait_connected(Duration::from_secs(10)).await,
            "not connected: {:?}",
            self.sync.status()
        );
    }

    fn messages(&self) -> Vec<PushFrame> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|n| match n {
                PushNotice::Message(m) => Some(m.clone()),
                PushNotice::Revoked { .. } => None,
            })
            .collect()
    }

    async fn wait_for(&self, count: usize) -> Vec<PushFrame> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let messages = self.messages();
            if messages.len() >= count || Instant::now() > deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn simple(targets: &[&str], title: &str, key: Option<&str>) -> SimplePush {
    SimplePush {
        target_type: TargetType::Device,
        targets: targets
            .iter()
            .map(|t| PushTarget {
                target: (*t).into(),
                msg_key: key.map(|k| format!("{k}-{t}")),
            })
            .collect(),
        title: title.into(),
        body: "body".into(),
        options: SendOptions {
            expires_in_secs: 3600,
            ..SendOptions::default()
        },
    }
}

/// Polls a task until `done(counts)` or 15 s.
async fn wait_task(
    admin: &AdminClient,
    app: &str,
    task: &str,
    done: impl Fn(&PushCounts) -> bool,
) -> PushTaskDetail {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let detail = admin.push_task(WS, app, task).await.expect("task");
        if done(&detail.task.counts) || Instant::now() > deadline {
            return detail;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_reach_online_and_returning_devices_once() {
    let server = TestServer::start().await;
    let app = server.demo.app_key.clone();
    let admin = server.admin().await;

    // Templates: names, placeholders, and missing values named in the error.
    admin
        .create_push_template(
            WS,
            &app,
            &TemplateSpec {
                name: "order_shipped".into(),
                description: "shipping notice".into(),
                title: "Order #order# shipped".into(),
                body: "Hi #name#, #carrier# has it".into(),
                url: Some("myapp://orders/#order#".into()),
            },
        )
        .await
        .expect("template");
    let error = admin
        .create_push_template(
            WS,
            &app,
            &TemplateSpec {
                name: "bad-name".into(),
                description: String::new(),
                title: "t".into(),
                body: "b".into(),
                url: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ValidationFailed));

    let online = Phone::new(&server).await;
    online.connect().await;
    let later = Phone::new(&server).await;

    let mut values = BTreeMap::new();
    values.insert("order".to_string(), "42".to_string());
    let template_push = |values: BTreeMap<String, String>| TemplatePush {
        target_type: TargetType::Device,
        targets: vec![PushTarget {
            target: online.id(),
            msg_key: None,
        }],
        template: "order_shipped".into(),
        values,
        options: SendOptions {
            expires_in_secs: 3600,
            ..SendOptions::default()
        },
    };
    let error = admin
        .push_template(WS, &app, &template_push(values.clone()))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::TemplateValuesMissing));
    assert!(error.to_string().contains("name, carrier"), "{error}");

    // Limits have their own codes.
    let eleven: Vec<String> = (0..11).map(|i| format!("d{i}")).collect();
    let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
    let error = admin
        .push_simple(WS, &app, &simple(&eleven, "t", None))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::TooManyTargets));
    let mut no_expiry = simple(&[&online.id()], "t", None);
    no_expiry.options.expires_in_secs = 0;
    let error = admin.push_simple(WS, &app, &no_expiry).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ExpiryOutOfRange));
    let mut extras = simple(&[&online.id()], "t", None);
    extras.options.extras = (0..21).map(|i| (format!("k{i}"), "v".into())).collect();
    let error = admin.push_simple(WS, &app, &extras).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::TooManyExtras));

    // A template push to the online device arrives once, rendered, and is acknowledged.
    values.insert("name".into(), "Ana".into());
    values.insert("carrier".into(), "DHL".into());
    let sent = admin
        .push_template(WS, &app, &template_push(values))
        .await
        .expect("template push");
    assert_eq!(sent.messages[0].devices, 1);
    let got = online.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].title, "Order 42 shipped");
    assert_eq!(got[0].body, "Hi Ana, DHL has it");
    assert_eq!(
        got[0].click,
        Some(ClickAction::DeepLink("myapp://orders/42".into()))
    );
    let detail = wait_task(&admin, &app, &sent.task_id, |c| c.arrived == 1).await;
    assert_eq!(detail.task.counts.arrived, 1, "{detail:?}");
    assert_eq!(detail.by_channel["atoll"].arrived, 1);

    // An app backend's `push:send` token sends; a business id makes it idempotent.
    let token = admin
        .create_token(
            WS,
            &atoll_protocol::admin::CreateToken {
                name: "push-backend".into(),
                scopes: vec!["push:send".into()],
                expires_in_days: None,
            },
        )
        .await
        .expect("token");
    let backend = server.client_with(&token.secret);
    let first = backend
        .push_simple(
            WS,
            &app,
            &simple(&[&online.id(), &later.id()], "hello", Some("k1")),
        )
        .await
        .expect("simple push");
    assert!(first.messages.iter().all(|m| m.result_code == "OK"));
    let again = backend
        .push_simple(
            WS,
            &app,
            &simple(&[&online.id(), &later.id()], "hello", Some("k1")),
        )
        .await
        .expect("repeat");
    assert!(again
        .messages
        .iter()
        .all(|m| m.result_code == "DUPLICATED_BIZ_ID"));
    assert_eq!(again.messages[0].msg_id, first.messages[0].msg_id);
    assert_eq!(again.task_id, first.task_id);
    assert!(
        backend.push_tasks(WS, &app).await.is_err(),
        "push:send cannot read"
    );

    // The offline device (no vendor token) waits; a revoked message never arrives.
    let revoked = backend
        .push_simple(WS, &app, &simple(&[&later.id()], "revoked", Some("k2")))
        .await
        .expect("to revoke");
    let result = backend
        .push_revoke(
            WS,
            &app,
            &RevokeRequest {
                msg_key: Some(format!("k2-{}", later.id())),
                ..RevokeRequest::default()
            },
        )
        .await
        .expect("revoke");
    assert_eq!(result.recalled, 1, "{result:?}");
    assert_eq!(online.wait_for(2).await.len(), 2);
    later.connect().await;
    let got = later.wait_for(1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].title, "hello");
    assert_ne!(got[0].msg_id, revoked.messages[0].msg_id);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(later.messages().len(), 1, "nothing else, and only once");

    // Reports: opened counts; the device's message list shows the states.
    later
        .device
        .report_push(&[got[0].msg_id.clone()], PushEvent::Opened)
        .await
        .expect("report");
    let detail = wait_task(&admin, &app, &first.task_id, |c| {
        c.arrived == 2 && c.opened == 1
    })
    .await;
    assert_eq!(detail.task.counts.sent, 2, "{detail:?}");
    assert_eq!(detail.task.counts.opened, 1);
    let statuses = admin
        .push_device_messages(WS, &app, &later.id())
        .await
        .expect("device messages");
    let states: Vec<&str> = statuses.iter().map(|s| s.state.as_str()).collect();
    assert!(
        states.contains(&"opened") && states.contains(&"revoked"),
        "{states:?}"
    );

    // The core indexes count the same.
    let today = atoll_protocol::time::format_ms(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    let day = &today[..10];
    let stats = admin.push_stats(WS, &app, day, day).await.expect("stats");
    assert_eq!(stats.total.opened, 1, "{stats:?}");
    assert!(stats.total.arrived >= 3, "{stats:?}");
    assert_eq!(stats.total.revoked, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fatigue_caps_and_collapse_keys() {
    let server = TestServer::start().await;
    let app = server.demo.app_key.clone();
    let admin = server.admin().await;
    admin
        .put_push_settings(
            WS,
            &app,
            &PushSettings {
                cap_per_hour: 2,
                ..PushSettings::default()
            },
        )
        .await
        .expect("settings");
    let phone = Phone::new(&server).await;
    phone.connect().await;
    let mut tasks = Vec::new();
    for i in 0..3 {
        let sent = admin
            .push_simple(WS, &app, &simple(&[&phone.id()], &format!("n{i}"), None))
            .await
            .expect("push");
        tasks.push(sent.task_id);
        // One at a time, so the cap sees each sent one.
        wait_task(&admin, &app, &tasks[i], |c| c.arrived + c.capped == 1).await;
    }
    assert_eq!(phone.wait_for(2).await.len(), 2);
    let last = admin.push_task(WS, &app, &tasks[2]).await.expect("task");
    assert_eq!(last.task.counts.capped, 1, "{last:?}");
    // Silent pushes do not count against the cap.
    let mut silent = simple(&[&phone.id()], "", None);
    silent.options.silent = true;
    silent.options.extras.insert("sync".into(), "now".into());
    admin.push_simple(WS, &app, &silent).await.expect("silent");
    assert_eq!(phone.wait_for(3).await.len(), 3);

    // Collapse: two messages with one key for an offline device; it gets the newer.
    let offline = Phone::new(&server).await;
    for title in ["score 1-0", "score 2-0"] {
        let mut push = simple(&[&offline.id()], title, None);
        push.options.collapse_key = Some("match-7".into());
        admin.push_simple(WS, &app, &push).await.expect("push");
    }
    offline.connect().await;
    let got = offline.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_all = offline.messages();
    assert_eq!(got_all.len(), 1, "{got_all:?}");
    assert_eq!(got[0].title, "score 2-0");
    assert_eq!(got[0].collapse_key.as_deref(), Some("match-7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_apps_backend_gets_signed_delivery_receipts() {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    type Posts = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;
    let posts: Posts = Arc::default();
    let sink = posts.clone();
    let router = axum::Router::new().route(
        "/receipts",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let server = TestServer::start().await;
    let app = server.demo.app_key.clone();
    let admin = server.admin().await;
    const SECRET: &str = "receipt-secret-0123456789";
    let saved = admin
        .put_push_settings(
            WS,
            &app,
            &PushSettings {
                receipt_url: Some(format!("http://{backend_addr}/receipts")),
                receipt_secret: Some(SECRET.into()),
                ..PushSettings::default()
            },
        )
        .await
        .expect("settings");
    assert_eq!(saved.receipt_secret.as_deref(), Some("set"), "never shown");
    let phone = Phone::new(&server).await;
    phone.connect().await;
    let sent = admin
        .push_simple(WS, &app, &simple(&[&phone.id()], "hello", None))
        .await
        .expect("push");
    let msg_id = sent.messages[0].msg_id.clone();
    assert_eq!(phone.wait_for(1).await.len(), 1);

    // `sent` then `arrived`, signed with the app's secret.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut events = Vec::new();
    while Instant::now() < deadline {
        events.clear();
        for (headers, body) in posts.lock().unwrap().iter() {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let batch = atoll_sdk::backend::verify_receipts(
                SECRET,
                header(RECEIPT_TIMESTAMP_HEADER),
                header(RECEIPT_SIGNATURE_HEADER),
                body,
                now,
            )
            .expect("a valid signature");
            assert!(atoll_sdk::backend::verify_receipts(
                "wrong-secret-0123456",
                header(RECEIPT_TIMESTAMP_HEADER),
                header(RECEIPT_SIGNATURE_HEADER),
                body,
                now
            )
            .is_err());
            for receipt in batch.receipts {
                assert_eq!(receipt.msg_id, msg_id);
                assert_eq!(receipt.channel, "atoll");
                events.push(receipt.event);
            }
        }
        if events.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events, vec!["sent", "arrived"]);
}
