//! Real-time sync on the device, like mPaaS MSS's client: one WebSocket to
//! `/device/v1/connect` carries every biz type the app registered.
//!
//! - **Callbacks per biz type** ([`SyncClient::register`]) receive data in
//!   sequence order per stream, and resync notices when history was trimmed.
//! - **Exactly-once processing over at-least-once delivery**: after a callback
//!   returns, the stream's cursor is written to disk *before* the server is
//!   told (acknowledged), so a datum delivered again (after a reconnect, a
//!   crash, an acknowledgement lost in flight) is recognised by its sequence
//!   number and not handed to the callback twice.
//! - **Resume**: the persisted cursors are sent when subscribing, so delivery
//!   continues exactly after what was processed.
//! - **Reconnects** back off exponentially with jitter, honour the server's
//!   `Retry-After` and its shutdown notice, and correct the clock on skew.
//! - **Foreground/background** ([`SyncClient::app_to_foreground`],
//!   [`SyncClient::app_to_background`]): connected in the foreground, kept
//!   for a configurable linger in the background, then closed.

use crate::{DeviceClient, Error, Result};
use atoll_protocol::sync::{
    BizSubscription, ClientCursor, ClientFrame, Refusal, ServerFrame, StreamStart, CONNECT_PATH,
};
use atoll_protocol::{ErrorCode, Problem};
use atoll_ws::client::{ClientError, WsClient};
use atoll_ws::decode::Message;
use rand::Rng;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// How the sync client behaves.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The signed-in user, for user-dimension biz types without user
    /// consistency (with it, the user bound with [`DeviceClient::bind_user`] counts).
    pub user_id: Option<String>,
    /// How long the connection stays up after [`SyncClient::app_to_background`].
    pub background_linger: Duration,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Data processed within this time are acknowledged together.
    pub ack_delay: Duration,
    /// Ping interval; `None` takes the server's.
    pub heartbeat: Option<Duration>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            user_id: None,
            background_linger: Duration::from_secs(180),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            ack_delay: Duration::from_millis(20),
            heartbeat: None,
        }
    }
}

/// One datum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDatum {
    /// The biz type.
    pub biz: String,
    /// The stream (`d:<device>`, `u:<user>` or `g`).
    pub stream: String,
    /// Sequence number in the stream (0: not persistent).
    pub seq: u64,
    /// The server's id of the datum.
    pub id: String,
    /// The payload.
    pub payload: String,
    /// Accepted at (ms).
    pub created_at: i64,
}

/// What a callback receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// A datum, in order.
    Data(SyncDatum),
    /// Data `from..=to` of the stream is gone: reload the state from the app's
    /// own backend.
    Resync {
        /// The biz type.
        biz: String,
        /// The stream.
        stream: String,
        /// First missing sequence number.
        from: u64,
        /// Last missing sequence number.
        to: u64,
        /// `trimmed`, `dropped` or `reset`.
        reason: String,
    },
}

/// A callback of one biz type.
pub type SyncHandler = Arc<dyn Fn(&SyncEvent) + Send + Sync>;

/// A push notification event on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushNotice {
    /// A message, once per message id (redeliveries are acknowledged and
    /// dropped); arrival is acknowledged to the server after the callback.
    Message(atoll_protocol::push::PushFrame),
    /// The sender revoked a message: remove its notification if shown.
    Revoked {
        /// The message id.
        msg_id: String,
    },
}

/// The push callback.
pub type PushHandler = Arc<dyn Fn(&PushNotice) + Send + Sync>;

/// Push message ids remembered for deduplication.
const SEEN_PUSH_IDS: usize = 1_024;

/// The connection's state, for apps that show it and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// Connected and welcomed now.
    pub connected: bool,
    /// The server's id of the current connection.
    pub connection_id: Option<String>,
    /// Connections made so far.
    pub connects: u64,
    /// The streams of the last subscription answer.
    pub streams: Vec<StreamStart>,
    /// Biz types the server refused.
    pub refused: Vec<Refusal>,
    /// The last error (connecting or from the server).
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Control {
    running: bool,
    foreground: bool,
    /// Bumped when the connection must be re-made (new user).
    reconnect: u64,
    /// Bumped when a biz type is registered.
    registrations: u64,
}

/// Cursors by biz type and stream, as persisted.
type Cursors = BTreeMap<String, BTreeMap<String, u64>>;

const CURSOR_FILE: &str = "atoll-sync-cursors.json";

struct Inner {
    device: Arc<DeviceClient>,
    options: Mutex<SyncOptions>,
    handlers: Mutex<HashMap<String, SyncHandler>>,
    cursors: Mutex<Cursors>,
    cursor_path: PathBuf,
    control: watch::Sender<Control>,
    status: watch::Sender<SyncStatus>,
    processed: AtomicU64,
    duplicates: AtomicU64,
    push_handler: Mutex<Option<PushHandler>>,
    seen_push: Mutex<std::collections::VecDeque<String>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The device's sync client.
#[derive(Clone)]
pub struct SyncClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncClient").finish_non_exhaustive()
    }
}

impl SyncClient {
    /// A client for `device`, with the cursors persisted in its storage folder.
    pub fn new(device: Arc<DeviceClient>, options: SyncOptions) -> Result<SyncClient> {
        let cursor_path = device.storage_dir().join(CURSOR_FILE);
        let cursors = match std::fs::read(&cursor_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|error| Error::Decode(format!("{CURSOR_FILE}: {error}")))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Cursors::new(),
            Err(error) => return Err(error.into()),
        };
        let (control, _) = watch::channel(Control {
            running: false,
            foreground: true,
            reconnect: 0,
            registrations: 0,
        });
        let (status, _) = watch::channel(SyncStatus::default());
        Ok(SyncClient {
            inner: Arc::new(Inner {
                device,
                options: Mutex::new(options),
                handlers: Mutex::new(HashMap::new()),
                push_handler: Mutex::new(None),
                seen_push: Mutex::new(std::collections::VecDeque::new()),
                cursors: Mutex::new(cursors),
                cursor_path,
                control,
                status,
                processed: AtomicU64::new(0),
                duplicates: AtomicU64::new(0),
                task: Mutex::new(None),
            }),
        })
    }

    /// Handles a biz type: `handler` gets its data and resync notices. A
    /// registration while connected subscribes at once.
    pub fn register(&self, biz: &str, handler: impl Fn(&SyncEvent) + Send + Sync + 'static) {
        self.inner
            .handlers
            .lock()
            .expect("handlers lock")
            .insert(biz.to_owned(), Arc::new(handler));
        self.inner
            .control
            .send_modify(|control| control.registrations += 1);
    }

    /// Receives push notifications sent over the connection. Each message is
    /// given once (by id) and its arrival acknowledged after the callback.
    pub fn on_push(&self, handler: impl Fn(&PushNotice) + Send + Sync + 'static) {
        *self.inner.push_handler.lock().expect("push handler lock") = Some(Arc::new(handler));
    }

    /// Starts connecting (in the foreground).
    pub fn start(&self) {
        let mut task = self.inner.task.lock().expect("task lock");
        if task.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        self.inner
            .control
            .send_modify(|control| control.running = true);
        *task = Some(tokio::spawn(run(self.inner.clone())));
    }

    /// Closes the connection and stops reconnecting.
    pub async fn stop(&self) {
        self.inner
            .control
            .send_modify(|control| control.running = false);
        let task = self.inner.task.lock().expect("task lock").take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.inner
            .status
            .send_modify(|status| status.connected = false);
    }

    /// The app came to the foreground: connect.
    pub fn app_to_foreground(&self) {
        self.inner
            .control
            .send_modify(|control| control.foreground = true);
    }

    /// The app went to the background: stay connected for the linger, then close.
    pub fn app_to_background(&self) {
        self.inner
            .control
            .send_modify(|control| control.foreground = false);
    }

    /// Changes the signed-in user; the connection is re-made for it.
    pub fn set_user_id(&self, user_id: Option<String>) {
        self.inner.options.lock().expect("options lock").user_id = user_id;
        self.inner
            .control
            .send_modify(|control| control.reconnect += 1);
    }

    /// The connection's state.
    pub fn status(&self) -> SyncStatus {
        self.inner.status.borrow().clone()
    }

    /// Waits until connected and subscribed, at most `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut status = self.inner.status.subscribe();
        tokio::time::timeout(timeout, status.wait_for(|status| status.connected))
            .await
            .is_ok_and(|outcome| outcome.is_ok())
    }

    /// The highest processed sequence number of a stream.
    pub fn cursor(&self, biz: &str, stream: &str) -> Option<u64> {
        self.inner
            .cursors
            .lock()
            .expect("cursors lock")
            .get(biz)
            .and_then(|streams| streams.get(stream))
            .copied()
    }

    /// Data handed to callbacks, and redeliveries recognised and skipped.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.inner.processed.load(Ordering::Relaxed),
            self.inner.duplicates.load(Ordering::Relaxed),
        )
    }
}

/// The transport under the WebSocket: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How a connection ended.
enum Ended {
    /// `stop()`.
    Stopped,
    /// Closed after the background linger.
    Background,
    /// The user changed.
    Remake,
    /// The server asked for a reconnect after a pause.
    ReconnectAfter(Duration),
    /// Lost after this long connected.
    Lost(Duration),
}

fn backoff(options: &SyncOptions, failures: u32) -> Duration {
    let cap = options
        .backoff_min
        .saturating_mul(1u32 << failures.min(16))
        .min(options.backoff_max);
    // Equal jitter: never zero, never synchronised across a crowd.
    let half = cap / 2;
    half + rand::rng().random_range(Duration::ZERO..=half)
}

async fn run(inner: Arc<Inner>) {
    let mut control = inner.control.subscribe();
    let mut failures = 0u32;
    let mut background_since: Option<Instant> = None;
    loop {
        // Wait until a connection is wanted.
        loop {
            let now = *control.borrow_and_update();
            if !now.running {
                return;
            }
            if now.foreground {
                background_since = None;
                break;
            }
            let linger = inner
                .options
                .lock()
                .expect("options lock")
                .background_linger;
            let since = *background_since.get_or_insert_with(Instant::now);
            if since.elapsed() < linger {
                break;
            }
            if control.changed().await.is_err() {
                return;
            }
        }
        let ended = connect_once(&inner, &mut control, &mut background_since).await;
        inner.status.send_modify(|status| status.connected = false);
        let options = inner.options.lock().expect("options lock").clone();
        let pause = match ended {
            Ok(Ended::Stopped) => return,
            Ok(Ended::Background) | Ok(Ended::Remake) => {
                failures = 0;
                Duration::ZERO
            }
            Ok(Ended::ReconnectAfter(after)) => {
                failures = 0;
                after
                    + rand::rng()
                        .random_range(Duration::ZERO..=after.max(Duration::from_millis(100)))
            }
            Ok(Ended::Lost(lived)) => {
                if lived > Duration::from_secs(30) {
                    failures = 0;
                }
                failures += 1;
                backoff(&options, failures - 1)
            }
            Err(error) => {
                let retry_after = match &error {
                    Error::Api {
                        retry_after_secs: Some(secs),
                        ..
                    } => Some(Duration::from_secs(*secs)),
                    _ => None,
                };
                if error.code() == Some(ErrorCode::TimestampSkew) {
                    inner.device.correct_clock().await;
                }
                inner
                    .status
                    .send_modify(|status| status.last_error = Some(error.to_string()));
                failures += 1;
                retry_after.unwrap_or_else(|| backoff(&options, failures - 1))
            }
        };
        if !pause.is_zero() {
            // Sleep, but wake for stop().
            let _ = tokio::time::timeout(pause, async {
                loop {
                    if control.changed().await.is_err() || !control.borrow().running {
                        return;
                    }
                }
            })
            .await;
        }
    }
}

async fn open_transport(device: &DeviceClient) -> Result<(Box<dyn Io>, String)> {
    let url = url_parts(device.server_url())?;
    let tcp = tokio::net::TcpStream::connect((url.host.as_str(), url.port)).await?;
    let _ = tcp.set_nodelay(true);
    let host_header = if url.default_port {
        url.host.clone()
    } else {
        format!("{}:{}", url.host, url.port)
    };
    if !url.tls {
        return Ok((Box::new(tcp), host_header));
    }
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| Error::Config(error.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(url.host.clone())
        .map_err(|error| Error::Config(format!("server name: {error}")))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok((Box::new(tls), host_header))
}

struct UrlParts {
    tls: bool,
    host: String,
    port: u16,
    default_port: bool,
}

fn url_parts(server_url: &str) -> Result<UrlParts> {
    let (tls, rest) = if let Some(rest) = server_url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = server_url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(Error::Config(format!(
            "server URL '{server_url}' must start with http:// or https://"
        )));
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let default = if tls { 443 } else { 80 };
    let (host, port, default_port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            let port: u16 = port
                .parse()
                .map_err(|_| Error::Config(format!("bad port in '{server_url}'")))?;
            (
                host.trim_matches(['[', ']']).to_owned(),
                port,
                port == default,
            )
        }
        _ => (authority.to_owned(), default, true),
    };
    Ok(UrlParts {
        tls,
        host,
        port,
        default_port,
    })
}

fn client_error(error: ClientError) -> Error {
    match error {
        ClientError::Rejected {
            status,
            headers,
            body,
        } => {
            let retry_after_secs = headers
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse().ok());
            match serde_json::from_slice::<Problem>(&body) {
                Ok(problem) => Error::Api {
                    status,
                    problem: Box::new(problem),
                    retry_after_secs,
                },
                Err(_) => Error::Decode(format!("the connect request was answered {status}")),
            }
        }
        ClientError::Io(error) => Error::Io(error),
        other => Error::Decode(format!("device connection: {other}")),
    }
}

/// The subscription of every registered biz type, with the persisted cursors.
fn subscription(inner: &Inner, only: Option<&[String]>) -> ClientFrame {
    let handlers: Vec<String> = inner
        .handlers
        .lock()
        .expect("handlers lock")
        .keys()
        .filter(|biz| only.is_none_or(|only| only.contains(biz)))
        .cloned()
        .collect();
    let cursors = inner.cursors.lock().expect("cursors lock");
    let subs = handlers
        .into_iter()
        .map(|biz| BizSubscription {
            cursors: cursors
                .get(&biz)
                .map(|streams| {
                    streams
                        .iter()
                        .map(|(stream, seq)| ClientCursor {
                            stream: stream.clone(),
                            seq: *seq,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            biz,
        })
        .collect();
    ClientFrame::Subscribe {
        subs,
        user_id: inner.options.lock().expect("options lock").user_id.clone(),
    }
}

/// Writes the cursors durably: a crash after an acknowledgement must not
/// bring back data the app already processed.
fn persist(inner: &Inner) -> Result<()> {
    let bytes = serde_json::to_vec(&*inner.cursors.lock().expect("cursors lock"))
        .map_err(|error| Error::Decode(error.to_string()))?;
    let temporary = inner.cursor_path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, &inner.cursor_path)?;
    Ok(())
}

async fn send_frame<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WsClient<S>,
    frame: &ClientFrame,
) -> Result<()> {
    let text = serde_json::to_string(frame).map_err(|error| Error::Decode(error.to_string()))?;
    ws.send_text(&text).await.map_err(client_error)
}

/// Persists the cursors, then acknowledges what was processed.
async fn flush<S: AsyncRead + AsyncWrite + Unpin>(
    inner: &Inner,
    ws: &mut WsClient<S>,
    pending: &mut BTreeMap<(String, String), u64>,
    dirty: &mut bool,
) -> Result<()> {
    if *dirty {
        persist(inner)?;
        *dirty = false;
    }
    for ((biz, stream), seq) in std::mem::take(pending) {
        send_frame(ws, &ClientFrame::Ack { biz, stream, seq }).await?;
    }
    Ok(())
}

async fn connect_once(
    inner: &Arc<Inner>,
    control: &mut watch::Receiver<Control>,
    background_since: &mut Option<Instant>,
) -> Result<Ended> {
    let (transport, host) = open_transport(&inner.device).await?;
    let headers = inner.device.signature_headers("GET", CONNECT_PATH, "", b"");
    let (mut ws, _) = WsClient::connect(transport, &host, CONNECT_PATH, &headers)
        .await
        .map_err(client_error)?;
    let connected_at = Instant::now();
    let mut registrations = control.borrow_and_update().registrations;
    let mut subscribed: Vec<String> = inner
        .handlers
        .lock()
        .expect("handlers lock")
        .keys()
        .cloned()
        .collect();
    send_frame(&mut ws, &subscription(inner, None)).await?;
    let options = inner.options.lock().expect("options lock").clone();
    let mut heartbeat = tokio::time::interval(options.heartbeat.unwrap_or(Duration::from_secs(30)));
    heartbeat.reset();
    let mut pending: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut dirty = false;
    let mut flush_at: Option<tokio::time::Instant> = None;
    let reconnect = control.borrow().reconnect;
    loop {
        let linger_end = background_since.map(|since| since + options.background_linger);
        tokio::select! {
            message = ws.recv() => {
                let message = match message {
                    Ok(Some(message)) => message,
                    Ok(None) | Err(_) => {
                        let _ = flush(inner, &mut ws, &mut pending, &mut dirty).await;
                        return Ok(Ended::Lost(connected_at.elapsed()));
                    }
                };
                let Message::Text(text) = message else {
                    if let Message::Close(_) = message {
                        let _ = flush(inner, &mut ws, &mut pending, &mut dirty).await;
                        return Ok(Ended::Lost(connected_at.elapsed()));
                    }
                    continue;
                };
                let frame: ServerFrame = match serde_json::from_slice(&text) {
                    Ok(frame) => frame,
                    Err(error) => {
                        inner.status.send_modify(|status| status.last_error = Some(format!("unreadable frame: {error}")));
                        continue;
                    }
                };
                match frame {
                    ServerFrame::Welcome { connection_id, heartbeat_secs, .. } => {
                        if options.heartbeat.is_none() && heartbeat_secs > 0 {
                            heartbeat = tokio::time::interval(Duration::from_secs(heartbeat_secs));
                            heartbeat.reset();
                        }
                        inner.status.send_modify(|status| {
                            status.connection_id = Some(connection_id);
                            status.connects += 1;
                        });
                    }
                    ServerFrame::Subscribed { streams, refused } => {
                        inner.status.send_modify(|status| {
                            status.streams.retain(|s| !streams.iter().any(|n| n.biz == s.biz && n.stream == s.stream));
                            status.streams.extend(streams);
                            status.refused = refused;
                            status.connected = true;
                        });
                    }
                    ServerFrame::Data { biz, stream, seq, id, payload, created_at } => {
                        let handler = inner.handlers.lock().expect("handlers lock").get(&biz).cloned();
                        let Some(handler) = handler else { continue };
                        let known = if seq == 0 {
                            None
                        } else {
                            Some(inner.cursors.lock().expect("cursors lock").get(&biz).and_then(|s| s.get(&stream)).copied().unwrap_or(0))
                        };
                        match known {
                            Some(cursor) if seq <= cursor => {
                                // Delivered again: processed before, acknowledge again.
                                inner.duplicates.fetch_add(1, Ordering::Relaxed);
                                let entry = pending.entry((biz, stream)).or_insert(cursor);
                                *entry = (*entry).max(cursor);
                            }
                            _ => {
                                let event = SyncEvent::Data(SyncDatum { biz: biz.clone(), stream: stream.clone(), seq, id, payload, created_at });
                                handler(&event);
                                inner.processed.fetch_add(1, Ordering::Relaxed);
                                if seq > 0 {
                                    inner.cursors.lock().expect("cursors lock").entry(biz.clone()).or_default().insert(stream.clone(), seq);
                                    dirty = true;
                                    pending.insert((biz, stream), seq);
                                }
                            }
                        }
                    }
                    ServerFrame::Resync { biz, stream, from, to, reason } => {
                        let handler = inner.handlers.lock().expect("handlers lock").get(&biz).cloned();
                        let Some(handler) = handler else { continue };
                        handler(&SyncEvent::Resync { biz: biz.clone(), stream: stream.clone(), from, to, reason: reason.clone() });
                        let cursor = if reason == "reset" { from.saturating_sub(1) } else { to };
                        inner.cursors.lock().expect("cursors lock").entry(biz.clone()).or_default().insert(stream.clone(), cursor);
                        dirty = true;
                        if reason != "reset" {
                            pending.insert((biz, stream), to);
                        }
                    }
                    ServerFrame::Reconnect { after_ms, .. } => {
                        let _ = flush(inner, &mut ws, &mut pending, &mut dirty).await;
                        let _ = ws.close(1000, "reconnecting").await;
                        return Ok(Ended::ReconnectAfter(Duration::from_millis(after_ms)));
                    }
                    ServerFrame::Push(message) => {
                        let handler = inner.push_handler.lock().expect("push handler lock").clone();
                        // Without a handler nothing is acknowledged: the server keeps it.
                        let Some(handler) = handler else { continue };
                        let msg_id = message.msg_id.clone();
                        let fresh = {
                            let mut seen = inner.seen_push.lock().expect("seen lock");
                            if seen.contains(&msg_id) {
                                false
                            } else {
                                if seen.len() >= SEEN_PUSH_IDS {
                                    seen.pop_front();
                                }
                                seen.push_back(msg_id.clone());
                                true
                            }
                        };
                        if fresh {
                            handler(&PushNotice::Message(message));
                        } else {
                            inner.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        send_frame(&mut ws, &ClientFrame::PushAck { msg_ids: vec![msg_id] }).await?;
                    }
                    ServerFrame::PushRevoke { msg_id } => {
                        let handler = inner.push_handler.lock().expect("push handler lock").clone();
                        if let Some(handler) = handler {
                            handler(&PushNotice::Revoked { msg_id });
                        }
                    }
                    ServerFrame::Error { code, detail } => {
                        inner.status.send_modify(|status| status.last_error = Some(format!("{code}: {detail}")));
                    }
                }
                if (dirty || !pending.is_empty()) && flush_at.is_none() {
                    flush_at = Some(tokio::time::Instant::now() + options.ack_delay);
                }
            }
            _ = async { tokio::time::sleep_until(flush_at.expect("guarded")).await }, if flush_at.is_some() => {
                flush_at = None;
                flush(inner, &mut ws, &mut pending, &mut dirty).await?;
            }
            _ = heartbeat.tick() => {
                ws.send_ping(b"").await.map_err(client_error)?;
            }
            _ = async { tokio::time::sleep_until(linger_end.expect("guarded").into()).await }, if linger_end.is_some() => {
                flush(inner, &mut ws, &mut pending, &mut dirty).await?;
                let _ = ws.close(1000, "background").await;
                return Ok(Ended::Background);
            }
            changed = control.changed() => {
                let now = *control.borrow_and_update();
                if changed.is_err() || !now.running {
                    let _ = flush(inner, &mut ws, &mut pending, &mut dirty).await;
                    let _ = ws.close(1000, "stopped").await;
                    return Ok(Ended::Stopped);
                }
                if now.reconnect != reconnect {
                    let _ = flush(inner, &mut ws, &mut pending, &mut dirty).await;
                    let _ = ws.close(1000, "user changed").await;
                    return Ok(Ended::Remake);
                }
                if now.foreground {
                    *background_since = None;
                } else if background_since.is_none() {
                    *background_since = Some(Instant::now());
                }
                if now.registrations != registrations {
                    registrations = now.registrations;
                    let all: Vec<String> = inner.handlers.lock().expect("handlers lock").keys().cloned().collect();
                    let new: Vec<String> = all.iter().filter(|biz| !subscribed.contains(biz)).cloned().collect();
                    if !new.is_empty() {
                        send_frame(&mut ws, &subscription(inner, Some(&new))).await?;
                        subscribed = all;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let plain = url_parts("http://127.0.0.1:7420").unwrap();
        assert!(!plain.tls);
        assert_eq!(
            (plain.host.as_str(), plain.port, plain.default_port),
            ("127.0.0.1", 7420, false)
        );
        let tls = url_parts("https://atoll.example.com").unwrap();
        assert!(tls.tls);
        assert_eq!(
            (tls.host.as_str(), tls.port, tls.default_port),
            ("atoll.example.com", 443, true)
        );
        let v6 = url_parts("http://[::1]:8080").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8080));
        assert!(url_parts("ftp://x").is_err());
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let options = SyncOptions::default();
        for failures in 0..20 {
            let delay = backoff(&options, failures);
            let cap = options
                .backoff_min
                .saturating_mul(1 << failures.min(16))
                .min(options.backoff_max);
            assert!(
                delay >= cap / 2 && delay <= cap,
                "{failures}: {delay:?} vs {cap:?}"
            );
        }
    }
}
