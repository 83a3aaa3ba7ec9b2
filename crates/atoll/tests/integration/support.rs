//! `TestServer`: the real `atoll` binary on a free port, in a temporary data
//! folder, driven through `atoll-sdk`.

use atoll_sdk::{AdminClient, DeviceClient, DeviceConfig, RetryPolicy};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// What `atoll demo` printed.
#[derive(Debug, Clone, Default)]
pub struct DemoInfo {
    pub password: String,
    pub app_key: String,
    pub app_secret: String,
}

/// A running `atoll demo`.
pub struct TestServer {
    child: Option<Child>,
    pub url: String,
    pub data_dir: tempfile::TempDir,
    pub demo: DemoInfo,
    env: Vec<(String, String)>,
}

pub const DEMO_EMAIL: &str = "admin@demo.atoll";

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_atoll"))
}

/// Starts the binary and reads what it prints until it listens; the caller owns
/// the child (and `TestServer` reaps it on drop).
#[allow(clippy::zombie_processes)]
fn spawn(data_dir: &Path, listen: &str, env: &[(String, String)]) -> (Child, String, DemoInfo) {
    let log = std::fs::File::create(data_dir.join("server.log")).expect("log file");
    let mut command = Command::new(binary());
    command
        .args(["demo", "--listen", listen, "--data-dir"])
        .arg(data_dir.join("data"))
        .env("ATOLL_LOG_LEVEL", "info")
        // Most tests want an empty app; the analytics tests seed their own data.
        .env("ATOLL_DEMO_DEVICES", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("start atoll");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    // Keep draining stdout for the life of the process so it never blocks.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut demo = DemoInfo::default();
    loop {
        let line = match lines_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(data_dir.join("server.log")).unwrap_or_default();
                panic!("atoll did not start; log:\n{log}");
            }
        };
        let value = |prefix: &str| {
            line.trim()
                .strip_prefix(prefix)
                .map(|rest| rest.trim().trim_matches('"').to_owned())
        };
        if let Some(password) = value("Password") {
            demo.password = password;
        } else if let Some(key) = value("app_key    =") {
            demo.app_key = key;
        } else if let Some(secret) = value("app_secret =") {
            demo.app_secret = secret;
        } else if let Some(url) = value("listening on") {
            return (child, url, demo);
        }
    }
}

impl TestServer {
    /// Starts a fresh server.
    pub async fn start() -> TestServer {
        TestServer::start_with_env(&[]).await
    }

    /// Starts a fresh server with extra `ATOLL_*` environment.
    pub async fn start_with_env(env: &[(&str, &str)]) -> TestServer {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, url, demo) = spawn(data_dir.path(), "127.0.0.1:0", &env);
        TestServer {
            child: Some(child),
            url,
            data_dir,
            demo,
            env,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Takes the child process out (the caller now owns its fate).
    pub fn take_child(&mut self) -> Child {
        self.child.take().expect("running")
    }

    /// Kills the server with SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill -9");
        child.wait().expect("reap");
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        wait_with_timeout(&mut child, Duration::from_secs(30))
    }

    /// Starts the binary again on the same data folder and port.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server first");
        let listen = self.url.trim_start_matches("http://").to_owned();
        let (child, url, demo) = spawn(self.data_dir.path(), &listen, &self.env);
        assert_eq!(url, self.url);
        self.child = Some(child);
        // The password is only printed while the data folder remembers it.
        if !demo.password.is_empty() {
            self.demo.password = demo.password;
        }
        self.demo.app_key = demo.app_key;
        self.demo.app_secret = demo.app_secret;
    }

    /// An admin client logged in as the demo admin.
    pub async fn admin(&self) -> AdminClient {
        let mut client = AdminClient::new(&self.url, None).expect("client");
        client
            .login(DEMO_EMAIL, &self.demo.password)
            .await
            .expect("demo login");
        client
    }

    /// An admin client with `token`.
    pub fn client_with(&self, token: &str) -> AdminClient {
        AdminClient::new(&self.url, Some(token.to_owned())).expect("client")
    }

    /// A device of the demo app, with its own storage folder.
    pub fn device(&self) -> (DeviceClient, tempfile::TempDir) {
        self.device_of(&self.demo.app_key, &self.demo.app_secret)
    }

    /// A device of any app.
    pub fn device_of(&self, app_key: &str, secret: &str) -> (DeviceClient, tempfile::TempDir) {
        let storage = tempfile::tempdir().expect("device dir");
        (self.device_in(app_key, secret, storage.path()), storage)
    }

    /// A device client over an existing storage folder: the same device as before,
    /// as after an app restart (with fresh connections).
    pub fn device_in(&self, app_key: &str, secret: &str, storage: &Path) -> DeviceClient {
        let mut config = DeviceConfig::new(&self.url, app_key, secret, storage);
        config.retry = RetryPolicy::none();
        DeviceClient::new(config).expect("device client")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} failed");
}

pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Waits until just after a second boundary, so that a timestamp computed now and
/// checked by the server a few milliseconds later falls in the same second.
pub async fn align_to_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into_second = now.subsec_millis() as u64;
    tokio::time::sleep(Duration::from_millis(1000 - into_second + 20)).await;
}

/// A signed POST of raw bytes with any `Content-Encoding`, bypassing the SDK's own
/// compression (for bombs and unsupported encodings).
pub async fn signed_raw(
    server: &TestServer,
    device: &atoll_sdk::DeviceClient,
    path: &str,
    body: &[u8],
    encoding: &str,
) -> reqwest::Response {
    use atoll_protocol::signing::*;
    let timestamp = now_secs();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let parts = SignedParts {
        app_key: &server.demo.app_key,
        device_id: device.device_id(),
        method: "POST",
        path,
        query: "",
        timestamp,
        nonce: &nonce,
        body,
    };
    reqwest::Client::new()
        .post(format!("{}{path}", server.url))
        .header(HEADER_APP_KEY, &server.demo.app_key)
        .header(HEADER_DEVICE_ID, device.device_id())
        .header(HEADER_TIMESTAMP, timestamp.to_string())
        .header(HEADER_NONCE, &nonce)
        .header(HEADER_SIGNATURE, sign(&server.demo.app_secret, &parts))
        .header("content-encoding", encoding)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}
