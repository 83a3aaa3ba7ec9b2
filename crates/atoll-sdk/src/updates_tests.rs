//! Tests of the updater against a small HTTP/1.1 server written here: it
//! serves files with `Range` support, can cut a body short, and records the
//! requests it saw.

use super::*;
use crate::device::DeviceConfig;
use atoll_protocol::delivery::{DeltaPatch, ResourceKind, UpdateAction};
use atoll_protocol::device::Platform;
use ed25519_dalek::{Signer, SigningKey};
use std::collections::HashMap;
use std::sync::Mutex as StdMutex;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

const APP_KEY: &str = "app-test";

/// One request the test server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    range: Option<String>,
}

/// What the test server answers.
#[derive(Debug, Default)]
struct Routes {
    /// GET path → file.
    files: HashMap<String, Vec<u8>>,
    /// GET path → bytes of body after which its first answer is cut.
    cut_first: HashMap<String, usize>,
    /// GET path → bytes of body after which its first answer stalls (the
    /// connection stays open, nothing more is sent).
    stall_first: HashMap<String, usize>,
    /// Answer every GET with the whole file, ignoring `Range`.
    no_ranges: bool,
    /// POST path → JSON answer; other POSTs get `204 No Content`.
    json: HashMap<String, String>,
}

struct Server {
    base: String,
    seen: Arc<StdMutex<Vec<Seen>>>,
}

impl Server {
    async fn start(routes: Routes) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(StdMutex::new(Vec::new()));
        let routes = Arc::new(StdMutex::new(routes));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (routes, log) = (routes.clone(), log.clone());
                tokio::spawn(async move {
                    let _ = answer(socket, routes, log).await;
                });
            }
        });
        Server { base, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn gets(&self, path: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|seen| seen.method == "GET" && seen.path == path)
            .collect()
    }
}

/// Serves one request on `socket`, then closes it.
async fn answer(
    mut socket: TcpStream,
    routes: Arc<StdMutex<Routes>>,
    log: Arc<StdMutex<Vec<Seen>>>,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let read = socket.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    // Read the body so closing the socket does not reset the connection.
    let length: usize = headers
        .get("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    while buffer.len() - head_end < length {
        let read = socket.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let range = headers.get("range").cloned();
    log.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        range: range.clone(),
    });

    let (status, extra, body, cut, stall) = {
        let mut routes = routes.lock().unwrap();
        if method == "POST" {
            match routes.json.get(&path) {
                Some(json) => (
                    "200 OK",
                    String::new(),
                    json.clone().into_bytes(),
                    None,
                    false,
                ),
                None => ("204 No Content", String::new(), Vec::new(), None, false),
            }
        } else if let Some(file) = routes.files.get(&path).cloned() {
            let (cut, stall) = match routes.stall_first.remove(&path) {
                Some(at) => (Some(at), true),
                None => (routes.cut_first.remove(&path), false),
            };
            let start = range
                .as_deref()
                .filter(|_| !routes.no_ranges)
                .and_then(|value| value.strip_prefix("bytes="))
                .and_then(|value| value.strip_suffix('-'))
                .and_then(|value| value.parse::<usize>().ok());
            match start {
                Some(start) if start >= file.len() => (
                    "416 Range Not Satisfiable",
                    format!("Content-Range: bytes */{}\r\n", file.len()),
                    Vec::new(),
                    None,
                    false,
                ),
                Some(start) => (
                    "206 Partial Content",
                    format!(
                        "Content-Range: bytes {start}-{}/{}\r\n",
                        file.len() - 1,
                        file.len()
                    ),
                    file[start..].to_vec(),
                    cut,
                    stall,
                ),
                None => ("200 OK", String::new(), file, cut, stall),
            }
        } else {
            ("404 Not Found", String::new(), Vec::new(), None, false)
        }
    };
    let length = if status.starts_with("204") {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let head = format!("HTTP/1.1 {status}\r\n{length}{extra}Connection: close\r\n\r\n");
    socket.write_all(head.as_bytes()).await?;
    // A cut answer promises the whole body and stops early.
    let sent = cut.unwrap_or(body.len()).min(body.len());
    socket.write_all(&body[..sent]).await?;
    socket.flush().await?;
    if stall {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    socket.shutdown().await?;
    Ok(())
}

/// Bytes that do not compress or repeat (a tiny LCG).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn public_key(key: &SigningKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn download_path(sha: &str) -> String {
    format!("/device/v1/downloads/{APP_KEY}/{sha}")
}

/// An `install` update of `file` as version 2.0.0, signed with `key`.
fn signed_update(key: &SigningKey, file: &[u8]) -> Update {
    let sha = sha256_hex(file);
    let manifest = PackageManifest {
        app_key: APP_KEY.into(),
        kind: ResourceKind::App,
        resource_id: "app".into(),
        platform: Platform::Android,
        version: "2.0.0".into(),
        for_app_version: None,
        sha256: Some(sha.clone()),
        size: file.len() as u64,
        store_url: None,
        web: None,
    };
    let json = serde_json::to_string(&manifest).unwrap();
    let signature =
        base64::engine::general_purpose::STANDARD.encode(key.sign(json.as_bytes()).to_bytes());
    Update {
        action: UpdateAction::Install,
        kind: ResourceKind::App,
        resource_id: "app".into(),
        version: "2.0.0".into(),
        release_id: "rel-1".into(),
        mode: UpgradeMode::PromptOnce,
        notes: String::new(),
        download: Some(Download {
            url: download_path(&sha),
            size: file.len() as u64,
            sha256: sha,
        }),
        delta: None,
        store_url: None,
        signed: Some(SignedManifest {
            manifest: json,
            signature,
            key_id: "k1".into(),
        }),
    }
}

fn updater(base: &str, dir: &Path) -> Updater {
    updater_with(base, dir, Duration::from_secs(5))
}

fn updater_with(base: &str, dir: &Path, read_timeout: Duration) -> Updater {
    let mut device = DeviceConfig::new(base, APP_KEY, "secret", dir.join("sdk"));
    device.retry = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    };
    let client = Arc::new(DeviceClient::new(device).unwrap());
    let mut config = UpdaterConfig::new(&client, public_key(&signing_key()));
    config.read_timeout = read_timeout;
    config.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    };
    Updater::new(client, config).unwrap()
}

fn refusal(error: Error) -> Refusal {
    match error {
        Error::Refused { reason, .. } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn signatures_verify_with_the_pinned_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let updater = updater("http://127.0.0.1:9", dir.path());
    let update = signed_update(&signing_key(), b"the package");
    let manifest = updater.verify(&update).unwrap();
    assert_eq!(manifest.version, "2.0.0");
    assert_eq!(manifest.size, 11);

    // One flipped byte in the signed manifest.
    let mut tampered = update.clone();
    let signed = tampered.signed.as_mut().unwrap();
    let mut bytes = signed.manifest.clone().into_bytes();
    let at = signed.manifest.find("2.0.0").unwrap();
    bytes[at] ^= 1;
    signed.manifest = String::from_utf8(bytes).unwrap();
    assert_eq!(
        refusal(updater.verify(&tampered).unwrap_err()),
        Refusal::SignatureInvalid
    );

    // One flipped byte in the signature.
    let mut tampered = update.clone();
    let signed = tampered.signed.as_mut().unwrap();
    let engine = base64::engine::general_purpose::STANDARD;
    let mut signature = engine.decode(&signed.signature).unwrap();
    signature[5] ^= 0x40;
    signed.signature = engine.encode(signature);
    assert_eq!(
        refusal(updater.verify(&tampered).unwrap_err()),
        Refusal::SignatureInvalid
    );

    // Signed by another key.
    let other = signed_update(&SigningKey::from_bytes(&[8u8; 32]), b"the package");
    assert_eq!(
        refusal(updater.verify(&other).unwrap_err()),
        Refusal::SignatureInvalid
    );

    // Validly signed, but not what the update says.
    let mut wrong = update.clone();
    wrong.version = "2.0.1".into();
    assert_eq!(
        refusal(updater.verify(&wrong).unwrap_err()),
        Refusal::ManifestMismatch
    );
    let mut wrong = update.clone();
    wrong.download.as_mut().unwrap().size += 1;
    assert_eq!(
        refusal(updater.verify(&wrong).unwrap_err()),
        Refusal::ManifestMismatch
    );
    let mut wrong = update.clone();
    wrong.signed = None;
    assert_eq!(
        refusal(updater.verify(&wrong).unwrap_err()),
        Refusal::NothingToDownload
    );

    // A key that is not 32 bytes is a configuration error.
    let client = Arc::new(
        DeviceClient::new(DeviceConfig::new(
            "http://127.0.0.1:9",
            APP_KEY,
            "secret",
            dir.path().join("sdk"),
        ))
        .unwrap(),
    );
    let config = UpdaterConfig::new(&client, "AAAA");
    assert!(matches!(
        Updater::new(client, config),
        Err(Error::Config(_))
    ));
}

#[tokio::test]
async fn a_cut_download_resumes_with_a_range_request() {
    let file = noise(200_000, 1);
    let update = signed_update(&signing_key(), &file);
    let path = update.download.as_ref().unwrap().url.clone();
    let mut routes = Routes::default();
    routes.files.insert(path.clone(), file.clone());
    routes.cut_first.insert(path.clone(), 70_000);
    let server = Server::start(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let updater = updater(&server.base, dir.path());

    let last = Arc::new(StdMutex::new(None));
    let seen_progress = last.clone();
    let progress = move |p: Progress| *seen_progress.lock().unwrap() = Some(p);
    let verified = updater
        .download(&update, None, Some(&progress))
        .await
        .unwrap();

    assert!(!verified.via_delta);
    assert_eq!(verified.size, file.len() as u64);
    assert_eq!(
        verified.path,
        dir.path().join("sdk/updates/files").join(&verified.sha256)
    );
    assert_eq!(std::fs::read(&verified.path).unwrap(), file);
    let gets = server.gets(&path);
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0].range, None);
    assert_eq!(gets[1].range.as_deref(), Some("bytes=70000-"));
    assert_eq!(
        *last.lock().unwrap(),
        Some(Progress {
            done: 200_000,
            total: 200_000,
            delta: false
        })
    );
    // Nothing is left in `partial/`.
    let partial = dir.path().join("sdk/updates/partial");
    assert_eq!(std::fs::read_dir(partial).unwrap().count(), 0);

    // Once verified, the file is not downloaded again.
    let again = updater.download(&update, None, None).await.unwrap();
    assert_eq!(again, verified);
    assert_eq!(server.gets(&path).len(), 2);

    // Pruning keeps what is asked for and deletes the rest.
    updater.prune(&[verified.sha256.as_str()]).unwrap();
    assert!(verified.path.exists());
    updater.prune(&[]).unwrap();
    assert!(!verified.path.exists());
}

/// Apps run downloads in spawned tasks: the future must be `Send`.
#[allow(dead_code)]
fn download_futures_are_send(updater: &Updater, update: &Update) {
    fn is_send<T: Send>(_: T) {}
    let progress = |_: Progress| {};
    is_send(updater.download(update, None, Some(&progress)));
    is_send(updater.check(&UpdateCheck::default()));
    is_send(updater.report("r", ReportEvent::Installed, None, false, None));
}

#[tokio::test]
async fn a_stalled_download_times_out_and_resumes() {
    let file = noise(100_000, 7);
    let update = signed_update(&signing_key(), &file);
    let path = update.download.as_ref().unwrap().url.clone();
    let mut routes = Routes::default();
    routes.files.insert(path.clone(), file.clone());
    routes.stall_first.insert(path.clone(), 40_000);
    let server = Server::start(routes).await;
    let dir = tempfile::tempdir().unwrap();
    // The whole download takes longer than one read may: only reads are
    // timed.
    let updater = updater_with(&server.base, dir.path(), Duration::from_millis(300));
    let started = std::time::Instant::now();
    let verified = updater.download(&update, None, None).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(std::fs::read(&verified.path).unwrap(), file);
    let gets = server.gets(&path);
    assert_eq!(gets.len(), 2);
    assert_eq!(gets[1].range.as_deref(), Some("bytes=40000-"));
}

#[tokio::test]
async fn a_partial_file_from_an_earlier_run_is_continued_or_restarted() {
    let file = noise(50_000, 2);
    let update = signed_update(&signing_key(), &file);
    let download = update.download.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("sdk/updates/partial");
    std::fs::create_dir_all(&partial).unwrap();
    let part = partial.join(format!("{}.part", download.sha256));

    // Continued from where the earlier run stopped.
    let mut routes = Routes::default();
    routes.files.insert(download.url.clone(), file.clone());
    let server = Server::start(routes).await;
    std::fs::write(&part, &file[..12_345]).unwrap();
    let verified = updater(&server.base, dir.path())
        .download(&update, None, None)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&verified.path).unwrap(), file);
    assert_eq!(
        server.gets(&download.url)[0].range.as_deref(),
        Some("bytes=12345-")
    );
    std::fs::remove_file(&verified.path).unwrap();

    // A server that ignores ranges answers 200: start over.
    let routes = Routes {
        files: HashMap::from([(download.url.clone(), file.clone())]),
        no_ranges: true,
        ..Routes::default()
    };
    let server = Server::start(routes).await;
    std::fs::write(&part, &file[..20_000]).unwrap();
    let verified = updater(&server.base, dir.path())
        .download(&update, None, None)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&verified.path).unwrap(), file);
    std::fs::remove_file(&verified.path).unwrap();

    // A complete but wrong partial file is refused and deleted.
    let routes = Routes {
        files: HashMap::from([(download.url.clone(), file.clone())]),
        ..Routes::default()
    };
    let server = Server::start(routes).await;
    let mut wrong = file.clone();
    wrong[100] ^= 1;
    std::fs::write(&part, &wrong).unwrap();
    let error = updater(&server.base, dir.path())
        .download(&update, None, None)
        .await
        .unwrap_err();
    assert_eq!(refusal(error), Refusal::HashMismatch);
    assert!(!part.exists());
    // The next attempt downloads it afresh.
    let verified = updater(&server.base, dir.path())
        .download(&update, None, None)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&verified.path).unwrap(), file);
}

#[tokio::test]
async fn a_flipped_byte_in_the_file_is_refused() {
    let file = noise(30_000, 3);
    let update = signed_update(&signing_key(), &file);
    let download = update.download.clone().unwrap();
    let mut served = file.clone();
    served[29_999] ^= 0x80;
    let routes = Routes {
        files: HashMap::from([(download.url.clone(), served)]),
        ..Routes::default()
    };
    let server = Server::start(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let error = updater(&server.base, dir.path())
        .download(&update, None, None)
        .await
        .unwrap_err();
    assert_eq!(error.report_code(), "hash_mismatch");
    let updates = dir.path().join("sdk/updates");
    assert!(!updates.join("files").join(&download.sha256).exists());
    assert_eq!(
        std::fs::read_dir(updates.join("partial")).unwrap().count(),
        0
    );
}

/// An old and a new version of a package, and an update from one to the
/// other carrying a delta patch (`patch` as served).
fn delta_case(patch: Vec<u8>, old: &[u8], new: &[u8]) -> (Update, Routes) {
    let mut update = signed_update(&signing_key(), new);
    let patch_sha = sha256_hex(&patch);
    let patch_url = format!("/device/v1/patches/{patch_sha}");
    update.delta = Some(DeltaPatch {
        from_version: "1.0.0".into(),
        from_sha256: sha256_hex(old),
        download: Download {
            url: patch_url.clone(),
            size: patch.len() as u64,
            sha256: patch_sha,
        },
    });
    let routes = Routes {
        files: HashMap::from([
            (update.download.as_ref().unwrap().url.clone(), new.to_vec()),
            (patch_url, patch),
        ]),
        ..Routes::default()
    };
    (update, routes)
}

fn old_and_new() -> (Vec<u8>, Vec<u8>) {
    let old = noise(120_000, 4);
    let mut new = old.clone();
    new[1_000..1_100].copy_from_slice(&noise(100, 5));
    new.extend_from_slice(&noise(5_000, 6));
    (old, new)
}

#[tokio::test]
async fn a_delta_patch_rebuilds_the_new_file() {
    let (old, new) = old_and_new();
    let patch = atoll_delta::diff(&old, &new, &atoll_delta::DiffOptions::default()).unwrap();
    assert!(patch.len() < new.len() / 4);
    let (update, routes) = delta_case(patch, &old, &new);
    let server = Server::start(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("installed.apk");
    std::fs::write(&installed, &old).unwrap();

    let updater = updater(&server.base, dir.path());
    let verified = updater
        .download(&update, Some(&installed), None)
        .await
        .unwrap();
    assert!(verified.via_delta);
    assert_eq!(std::fs::read(&verified.path).unwrap(), new);
    let full = &update.download.as_ref().unwrap().url;
    assert!(server.gets(full).is_empty());
    let patch_url = &update.delta.as_ref().unwrap().download.url;
    assert_eq!(server.gets(patch_url).len(), 1);
    // The patch and the rebuilt file's temporary copy are gone.
    let updates = dir.path().join("sdk/updates");
    assert_eq!(
        std::fs::read_dir(updates.join("partial")).unwrap().count(),
        0
    );
    assert_eq!(std::fs::read_dir(updates.join("tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn a_corrupt_or_inapplicable_patch_falls_back_to_the_full_file() {
    let (old, new) = old_and_new();
    let mut patch = atoll_delta::diff(&old, &new, &atoll_delta::DiffOptions::default()).unwrap();
    // Served with its own (matching) hash: the damage shows only on apply.
    let last = patch.len() - 3;
    patch[last] ^= 0xff;
    let (update, routes) = delta_case(patch, &old, &new);
    let server = Server::start(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("installed.apk");
    std::fs::write(&installed, &old).unwrap();

    let verified = updater(&server.base, dir.path())
        .download(&update, Some(&installed), None)
        .await
        .unwrap();
    assert!(!verified.via_delta);
    assert_eq!(std::fs::read(&verified.path).unwrap(), new);
    assert_eq!(server.gets(&update.download.as_ref().unwrap().url).len(), 1);
    assert_eq!(
        server
            .gets(&update.delta.as_ref().unwrap().download.url)
            .len(),
        1
    );

    // An installed file that is not the patch's base skips the patch.
    let (update, routes) = delta_case(b"never fetched".to_vec(), &old, &new);
    let server = Server::start(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("installed.apk");
    std::fs::write(&installed, b"some other version").unwrap();
    let verified = updater(&server.base, dir.path())
        .download(&update, Some(&installed), None)
        .await
        .unwrap();
    assert!(!verified.via_delta);
    assert!(server
        .gets(&update.delta.as_ref().unwrap().download.url)
        .is_empty());
}

#[tokio::test]
async fn check_and_report_are_signed_posts() {
    let answer = UpdateAnswer {
        updates: vec![signed_update(&signing_key(), b"x")],
        check_interval_secs: 3600,
    };
    let routes = Routes {
        json: HashMap::from([(
            "/device/v1/updates/check".to_owned(),
            serde_json::to_string(&answer).unwrap(),
        )]),
        ..Routes::default()
    };
    let server = Server::start(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let updater = updater(&server.base, dir.path());
    let got = updater.check(&UpdateCheck::default()).await.unwrap();
    assert_eq!(got, answer);
    // The server answers a report with a bodiless 204.
    updater
        .report(
            "rel-1",
            ReportEvent::Failed,
            Some("1.0.0"),
            true,
            Some(&"x".repeat(5000)),
        )
        .await
        .unwrap();
    let posts: Vec<String> = server
        .seen()
        .into_iter()
        .filter(|seen| seen.method == "POST")
        .map(|seen| seen.path)
        .collect();
    assert_eq!(
        posts,
        ["/device/v1/updates/check", "/device/v1/updates/report"]
    );
}

#[test]
fn prompt_modes() {
    let dir = tempfile::tempdir().unwrap();
    let updater_a = updater("http://127.0.0.1:9", dir.path());
    let mut update = signed_update(&signing_key(), b"x");

    update.mode = UpgradeMode::PromptOnce;
    assert!(updater_a.should_prompt(&update));
    assert!(!updater_a.should_prompt(&update));
    // Remembered across runs.
    let updater_b = updater("http://127.0.0.1:9", dir.path());
    assert!(!updater_b.should_prompt(&update));
    let mut next = update.clone();
    next.release_id = "rel-2".into();
    assert!(updater_b.should_prompt(&next));
    assert!(!updater_a.should_prompt(&next));

    update.mode = UpgradeMode::PromptEveryLaunch;
    assert!(updater_a.should_prompt(&update));
    assert!(updater_a.should_prompt(&update));
    assert!(!updater_a.is_forced(&update));
    update.mode = UpgradeMode::Forced;
    assert!(updater_a.should_prompt(&update));
    assert!(updater_a.is_forced(&update));
    update.mode = UpgradeMode::Silent;
    assert!(!updater_a.should_prompt(&update));
}

#[test]
fn content_ranges_parse() {
    assert_eq!(parse_content_range("bytes 10-99/100"), Some((10, 100)));
    assert_eq!(parse_content_range("bytes 10-98/100"), None);
    assert_eq!(parse_content_range("bytes */100"), None);
    assert_eq!(truncate("héllo", 2), "h");
    assert!(is_sha256_hex(&sha256_hex(b"")));
    assert!(!is_sha256_hex(&sha256_hex(b"").to_uppercase()));
}
