//! The tracker against a fake device API: a hand-written HTTP/1.1 responder on a
//! local socket that records each request and answers from a script.
//!
//! Synchronisation is by the recorded requests (a channel) and by `flush`, which
//! waits for a send in progress; timeouts only guard against a hang.

use atoll_protocol::events::{
    EventBatch, TrackedEvent, BACKGROUND, FOREGROUND, LAUNCH, LOGIN, LOGOUT,
};
use atoll_protocol::ErrorCode;
use atoll_sdk::tracker::NO_ATTRIBUTES;
use atoll_sdk::{DeviceClient, DeviceConfig, RetryPolicy, Tracker, TrackerConfig};
use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

/// How the fake server answers one events request.
#[derive(Clone)]
enum Reply {
    /// 200 with an `EventBatchResponse` counting the events.
    Accept,
    /// An error status with a problem document and optional `Retry-After`.
    Problem {
        code: ErrorCode,
        detail: &'static str,
        retry_after: Option<u64>,
    },
    /// Read the request, then close without answering (a lost response).
    Hang,
}

#[derive(Debug, Clone)]
struct Captured {
    path: String,
    at: Instant,
    body: Vec<u8>,
}

impl Captured {
    fn batch(&self) -> EventBatch {
        // `EventBatch` denies unknown fields: this also checks the wire format.
        serde_json::from_slice(&self.body).expect("an EventBatch")
    }
}

struct FakeServer {
    url: String,
    requests: mpsc::UnboundedReceiver<Captured>,
}

impl FakeServer {
    async fn start(script: Vec<Reply>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (sender, requests) = mpsc::unbounded_channel();
        let replies = script;
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&replies), sender.clone()));
            }
        });
        FakeServer { url, requests }
    }

    /// The next request, waiting for it (bounded, so a bug fails instead of hanging).
    async fn next(&mut self) -> Captured {
        timeout(Duration::from_secs(20), self.requests.recv())
            .await
            .expect("a request within 20 s")
            .expect("the server is running")
    }

    /// Requests already received, without waiting.
    fn received(&mut self) -> Vec<Captured> {
        let mut all = Vec::new();
        while let Ok(request) = self.requests.try_recv() {
            all.push(request);
        }
        all
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

async fn serve(
    mut stream: TcpStream,
    script: Arc<Mutex<VecDeque<Reply>>>,
    sender: mpsc::UnboundedSender<Captured>,
) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = find(&received, b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_owned())
    };
    let length: usize = header("content-length").map_or(0, |value| value.parse().unwrap());
    while received.len() < head_end + length {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
        }
    }
    let raw = &received[head_end..head_end + length];
    let body = match header("content-encoding").as_deref() {
        Some("gzip") => {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(raw)
                .read_to_end(&mut plain)
                .unwrap();
            plain
        }
        Some("zstd") => zstd::decode_all(raw).unwrap(),
        _ => raw.to_vec(),
    };
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let captured = Captured {
        path: path.clone(),
        at: Instant::now(),
        body,
    };
    let reply = match path.as_str() {
        "/device/v1/events" => script.lock().unwrap().pop_front().unwrap_or(Reply::Accept),
        _ => Reply::Accept,
    };
    let (status, extra, json) = match (&reply, path.as_str()) {
        (Reply::Hang, _) => {
            let _ = sender.send(captured);
            return;
        }
        (Reply::Accept, "/device/v1/events") => {
            let count = captured.batch().events.len();
            (
                200,
                String::new(),
                format!(
                    r#"{{"accepted":{count},"duplicates":0,"server_time":{}}}"#,
                    now_ms()
                ),
            )
        }
        (Reply::Accept, "/device/v1/bind") => (
            200,
            String::new(),
            r#"{"device_id":"d","user_id":"u"}"#.to_owned(),
        ),
        (Reply::Accept, _) => (
            200,
            String::new(),
            r#"{"device_id":"d","user_id":null}"#.to_owned(),
        ),
        (
            Reply::Problem {
                code,
                detail,
                retry_after,
            },
            _,
        ) => (
            code.status(),
            retry_after.map_or(String::new(), |secs| format!("Retry-After: {secs}\r\n")),
            serde_json::to_string(&atoll_protocol::Problem::new(*code, *detail)).unwrap(),
        ),
    };
    let _ = sender.send(captured);
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{json}",
        json.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn client(url: &str, dir: &Path, retry: RetryPolicy) -> Arc<DeviceClient> {
    let mut device = DeviceConfig::new(url, "app-key", "app-secret", dir);
    device.retry = retry;
    Arc::new(DeviceClient::new(device).unwrap())
}

/// Explicit flushes only, no client-side retries, fast backoff.
fn manual(dir: &Path) -> TrackerConfig {
    let mut config = TrackerConfig::new(dir);
    config.auto_flush = false;
    config.retry_base_delay = Duration::from_millis(20);
    config
}

fn names(events: &[TrackedEvent]) -> Vec<String> {
    events.iter().map(|event| event.event_id.clone()).collect()
}

fn uuids(events: &[TrackedEvent]) -> Vec<String> {
    events.iter().map(|event| event.uuid.clone()).collect()
}

#[tokio::test]
async fn sends_the_queue_in_batches_of_at_most_50_oldest_first() {
    let mut server = FakeServer::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::open(
        client(&server.url, dir.path(), RetryPolicy::none()),
        manual(dir.path()),
    )
    .await
    .unwrap();
    for index in 0..120 {
        tracker
            .track(&format!("e{index}"), [("index", index as i64)])
            .await
            .unwrap();
    }
    assert_eq!(tracker.stats().queued, 120);
    let report = tracker.flush().await.unwrap();
    assert_eq!((report.sent, report.dropped, report.remaining), (120, 0, 0));

    let requests = server.received();
    let sizes: Vec<usize> = requests.iter().map(|r| r.batch().events.len()).collect();
    assert_eq!(sizes, [50, 50, 20]);
    let events: Vec<TrackedEvent> = requests.iter().flat_map(|r| r.batch().events).collect();
    let expected: Vec<String> = (0..120).map(|index| format!("e{index}")).collect();
    assert_eq!(names(&events), expected);
    assert_eq!(
        uuids(&events).into_iter().collect::<HashSet<_>>().len(),
        120
    );
    let stats = tracker.stats();
    assert_eq!((stats.sent, stats.queued), (120, 0));
    // Nothing is left to send: a second flush makes no request.
    assert_eq!(tracker.flush().await.unwrap().sent, 0);
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_503_is_retried_after_its_retry_after_by_the_background_task() {
    let mut server = FakeServer::start(vec![Reply::Problem {
        code: ErrorCode::Unavailable,
        detail: "maintenance",
        retry_after: Some(1),
    }])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = manual(dir.path());
    config.auto_flush = true;
    config.max_batch_age = Duration::from_secs(3600);
    let tracker = Tracker::open(client(&server.url, dir.path(), RetryPolicy::none()), config)
        .await
        .unwrap();
    tracker.track("buy", NO_ATTRIBUTES).await.unwrap();
    let error = tracker.flush().await.unwrap_err();
    assert_eq!(error.status(), Some(503));
    let first = server.next().await;
    // While the backoff runs, an explicit flush sends nothing.
    let deferred = tracker.flush().await.unwrap();
    assert!(deferred.deferred_for.is_some());
    assert_eq!(deferred.remaining, 1);

    let second = server.next().await;
    assert!(
        second.at - first.at >= Duration::from_secs(1),
        "Retry-After obeyed: {:?}",
        second.at - first.at
    );
    assert_eq!(uuids(&second.batch().events), uuids(&first.batch().events));
    // The background flush holds the send lock until it has acked.
    tracker.flush().await.unwrap();
    let stats = tracker.stats();
    assert_eq!((stats.sent, stats.queued, stats.failed_sends), (1, 0, 1));
    tracker.close().await.unwrap();
    assert!(server.received().is_empty(), "no extra request");
}

#[tokio::test]
async fn the_client_retry_policy_obeys_retry_after_within_one_flush() {
    let mut server = FakeServer::start(vec![Reply::Problem {
        code: ErrorCode::RateLimited,
        detail: "slow down",
        retry_after: Some(1),
    }])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::open(
        client(&server.url, dir.path(), RetryPolicy::default()),
        manual(dir.path()),
    )
    .await
    .unwrap();
    tracker.track("buy", NO_ATTRIBUTES).await.unwrap();
    assert_eq!(tracker.flush().await.unwrap().sent, 1);
    let requests = server.received();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].at - requests[0].at >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_batch_refused_as_invalid_is_dropped_and_the_rest_goes_on() {
    let mut server = FakeServer::start(vec![Reply::Problem {
        code: ErrorCode::InvalidEvent,
        detail: "events[0]: nope",
        retry_after: None,
    }])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = manual(dir.path());
    config.batch_size = 2;
    let tracker = Tracker::open(client(&server.url, dir.path(), RetryPolicy::none()), config)
        .await
        .unwrap();
    for name in ["a", "b", "c", "d", "e"] {
        tracker.track(name, NO_ATTRIBUTES).await.unwrap();
    }
    let report = tracker.flush().await.unwrap();
    assert_eq!((report.sent, report.dropped, report.remaining), (3, 2, 0));
    let batches: Vec<Vec<String>> = server
        .received()
        .iter()
        .map(|r| names(&r.batch().events))
        .collect();
    assert_eq!(batches, [vec!["a", "b"], vec!["c", "d"], vec!["e"]]);
    let stats = tracker.stats();
    assert_eq!((stats.sent, stats.dropped_refused, stats.queued), (3, 2, 0));
}

#[tokio::test]
async fn events_the_server_finds_too_old_are_dropped_and_the_rest_resent() {
    let mut server = FakeServer::start(vec![Reply::Problem {
        code: ErrorCode::EventTimeOutOfRange,
        detail: "events[1].time is 170 h before the server's clock; events older than 168 h are refused",
        retry_after: None,
    }])
    .await;
    let dir = tempfile::tempdir().unwrap();
    // The device's clock thinks all three are fresh; the server disagrees.
    let time = Arc::new(Mutex::new(now_ms()));
    let reading = Arc::clone(&time);
    let config = manual(dir.path()).with_clock(move || *reading.lock().unwrap());
    let tracker = Tracker::open(client(&server.url, dir.path(), RetryPolicy::none()), config)
        .await
        .unwrap();
    for name in ["a", "b", "c"] {
        tracker.track(name, NO_ATTRIBUTES).await.unwrap();
        *time.lock().unwrap() += 1;
    }
    let report = tracker.flush().await.unwrap();
    assert_eq!((report.sent, report.dropped), (1, 2));
    let batches: Vec<Vec<String>> = server
        .received()
        .iter()
        .map(|r| names(&r.batch().events))
        .collect();
    assert_eq!(batches, [vec!["a", "b", "c"], vec!["c"]]);
    let stats = tracker.stats();
    assert_eq!(
        (stats.sent, stats.dropped_old, stats.dropped_refused),
        (1, 2, 0)
    );
}

#[tokio::test]
async fn a_batch_too_large_for_the_server_is_split_not_dropped() {
    let mut server = FakeServer::start(vec![Reply::Problem {
        code: ErrorCode::PayloadTooLarge,
        detail: "too big",
        retry_after: None,
    }])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = manual(dir.path());
    config.batch_size = 4;
    let tracker = Tracker::open(client(&server.url, dir.path(), RetryPolicy::none()), config)
        .await
        .unwrap();
    for name in ["a", "b", "c", "d"] {
        tracker.track(name, NO_ATTRIBUTES).await.unwrap();
    }
    assert_eq!(tracker.flush().await.unwrap().sent, 4);
    let sizes: Vec<usize> = server
        .received()
        .iter()
        .map(|r| r.batch().events.len())
        .collect();
    assert_eq!(sizes, [4, 2, 2]);
    assert_eq!(tracker.stats().dropped_refused, 0);
}

#[tokio::test]
async fn an_unacknowledged_batch_is_resent_after_reopening() {
    let mut server = FakeServer::start(vec![Reply::Hang]).await;
    let dir = tempfile::tempdir().unwrap();
    let sent_first;
    {
        let tracker = Tracker::open(
            client(&server.url, dir.path(), RetryPolicy::none()),
            manual(dir.path()),
        )
        .await
        .unwrap();
        for name in ["a", "b", "c"] {
            tracker.track(name, NO_ATTRIBUTES).await.unwrap();
        }
        assert!(tracker.flush().await.is_err(), "the answer was lost");
        sent_first = uuids(&server.next().await.batch().events);
        assert_eq!(sent_first.len(), 3);
        // close's last flush is deferred by the backoff: no new request.
        tracker.close().await.unwrap();
        assert_eq!(tracker.stats().queued, 3);
    }
    // The app restarts.
    let tracker = Tracker::open(
        client(&server.url, dir.path(), RetryPolicy::none()),
        manual(dir.path()),
    )
    .await
    .unwrap();
    assert_eq!(tracker.stats().queued, 3);
    assert_eq!(tracker.flush().await.unwrap().sent, 3);
    let resent = server.received();
    assert_eq!(resent.len(), 1);
    // Same uuids: the server stores them once.
    assert_eq!(uuids(&resent[0].batch().events), sent_first);
    tracker.close().await.unwrap();
    drop(tracker);
    let tracker = Tracker::open(
        client(&server.url, dir.path(), RetryPolicy::none()),
        manual(dir.path()),
    )
    .await
    .unwrap();
    assert_eq!(tracker.stats().queued, 0, "acknowledged events stay gone");
}

#[tokio::test]
async fn the_background_task_sends_full_batches_and_close_sends_the_rest() {
    let mut server = FakeServer::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = manual(dir.path());
    config.auto_flush = true;
    config.batch_size = 5;
    config.max_batch_age = Duration::from_secs(3600);
    let tracker = Tracker::open(client(&server.url, dir.path(), RetryPolicy::none()), config)
        .await
        .unwrap();
    for index in 0..5 {
        tracker
            .track(&format!("e{index}"), NO_ATTRIBUTES)
            .await
            .unwrap();
    }
    let full = server.next().await;
    assert_eq!(names(&full.batch().events), ["e0", "e1", "e2", "e3", "e4"]);
    // Waits for the background send to finish (it holds the send lock).
    tracker.flush().await.unwrap();
    assert_eq!(tracker.stats().queued, 0);
    // Below the batch size and young: the task leaves these for later.
    for index in 5..7 {
        tracker
            .track(&format!("e{index}"), NO_ATTRIBUTES)
            .await
            .unwrap();
    }
    let report = tracker.close().await.unwrap();
    assert_eq!(report.remaining, 0);
    let rest: Vec<Vec<String>> = server
        .received()
        .iter()
        .map(|r| names(&r.batch().events))
        .collect();
    assert_eq!(rest, [vec!["e5", "e6"]]);
    assert_eq!(tracker.stats().sent, 7);
}

#[tokio::test]
async fn the_background_task_sends_events_that_waited_max_batch_age() {
    let mut server = FakeServer::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = manual(dir.path());
    config.auto_flush = true;
    config.max_batch_age = Duration::from_millis(100);
    let tracker = Tracker::open(client(&server.url, dir.path(), RetryPolicy::none()), config)
        .await
        .unwrap();
    let tracked = Instant::now();
    tracker.track("lonely", NO_ATTRIBUTES).await.unwrap();
    let request = server.next().await;
    assert_eq!(names(&request.batch().events), ["lonely"]);
    assert!(request.at - tracked >= Duration::from_millis(100));
}

#[tokio::test]
async fn lifecycle_login_and_logout_reach_the_server() {
    let mut server = FakeServer::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::open(
        client(&server.url, dir.path(), RetryPolicy::none()),
        manual(dir.path()),
    )
    .await
    .unwrap();
    tracker.start().await.unwrap();
    tracker.login("alice").await.unwrap();
    let bind = server.next().await;
    assert_eq!(bind.path, "/device/v1/bind");
    assert!(String::from_utf8_lossy(&bind.body).contains("alice"));
    tracker.logout().await.unwrap();
    assert_eq!(server.next().await.path, "/device/v1/unbind");
    // on_background flushes by itself.
    tracker.on_background().await.unwrap();
    let batch = server.next().await.batch();
    assert_eq!(
        names(&batch.events),
        [LAUNCH, FOREGROUND, LOGIN, LOGOUT, BACKGROUND]
    );
    assert_eq!(batch.events[2].user_id.as_deref(), Some("alice"));
    let session = tracker.session_id().unwrap();
    assert!(batch
        .events
        .iter()
        .all(|event| event.session_id.as_deref() == Some(session.as_str())));
    assert_eq!(tracker.stats().queued, 0);
}
