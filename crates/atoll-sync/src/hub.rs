//! The connection hub of one node: who is connected, which streams each
//! connection follows and how far it got, and the delivery of data to them.
//!
//! Delivery per (connection, stream) is a small state machine:
//! - **live**: the connection has everything up to `last_sent`; a live datum
//!   with `seq == last_sent + 1` goes straight to the connection's outbox;
//! - **catching up**: anything else (a gap, a full window, a fresh
//!   subscription, a redelivery) hands the stream to one catch-up task that
//!   reads the log from `last_sent` until it is current again. A live datum
//!   arriving meanwhile only sets `missed`, so the task reads once more before
//!   it gives the stream back to live delivery: nothing is lost in the handover.
//!
//! At most `window` data per stream are in flight unacknowledged; an
//! acknowledgement opens the window again. The outbox of a connection is
//! bounded in bytes: a reader too slow to drain it is cut off (and counted),
//! and resumes from its cursors when it reconnects.
//!
//! Idle connections hold no timers: one sweeper walks the hub every few
//! seconds for idle timeouts, write deadlines and acknowledgement timeouts.

use crate::filter::{CompiledFilter, DeviceTraits};
use crate::log::{CursorKey, StoredDatum, StreamBounds};
use crate::stats::Counter;
use crate::SyncService;
use atoll_protocol::sync::{ServerFrame, MAX_REDELIVERIES};
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Settings of the device connections.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// This node's name (shown in the console, used to ignore its own bus messages).
    pub node: String,
    /// How often clients should ping.
    pub heartbeat: Duration,
    /// Silence after which a connection is closed.
    pub idle_timeout: Duration,
    /// Unacknowledged data is delivered again after this long.
    pub ack_timeout: Duration,
    /// A connection whose outbox does not drain for this long is cut off.
    pub write_timeout: Duration,
    /// Bytes waiting in one connection's outbox before it is cut off.
    pub outbox_max_bytes: usize,
    /// Data in flight per stream before waiting for acknowledgements.
    pub window: u64,
    /// Connections per node.
    pub max_connections: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            node: "node-1".into(),
            heartbeat: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            ack_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            outbox_max_bytes: 1 << 20,
            window: 64,
            max_connections: 200_000,
        }
    }
}

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client went away or closed.
    ClientClosed,
    /// No frame within the idle timeout.
    Idle,
    /// The outbox overflowed or stopped draining.
    SlowConsumer,
    /// The same device connected again.
    Replaced,
    /// The device's user binding changed.
    BindingChanged,
    /// The node is shutting down.
    Shutdown,
    /// The client broke the protocol.
    ProtocolError,
}

impl CloseReason {
    /// A label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::ClientClosed => "client_closed",
            CloseReason::Idle => "idle",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::Replaced => "replaced",
            CloseReason::BindingChanged => "binding_changed",
            CloseReason::Shutdown => "shutdown",
            CloseReason::ProtocolError => "protocol_error",
        }
    }

    /// The WebSocket close code sent for it.
    pub fn close_code(self) -> u16 {
        match self {
            CloseReason::ClientClosed => 1000,
            CloseReason::Shutdown | CloseReason::Idle => 1001,
            CloseReason::ProtocolError => 1002,
            CloseReason::SlowConsumer => 1008,
            CloseReason::Replaced | CloseReason::BindingChanged => 4000,
        }
    }
}

/// One stream a connection follows.
#[derive(Debug)]
pub(crate) struct StreamState {
    pub(crate) biz: Arc<str>,
    pub(crate) stream: Arc<str>,
    key: Arc<str>,
    persistent: bool,
    /// Highest sequence handed to the outbox or passed over by the filter.
    last_sent: u64,
    /// Highest sequence actually written to the outbox.
    delivered: u64,
    acked: u64,
    attempts: u32,
    catching_up: bool,
    missed: bool,
    /// Catch-up stopped for a full window; an acknowledgement restarts it.
    paused: bool,
    /// The acknowledgement state changed since the cursor was last saved.
    dirty: bool,
    /// Hub seconds when the oldest unacknowledged delivery was made (0: none).
    waiting_since: u32,
}

impl StreamState {
    /// Records that `seq` went to the outbox at hub second `now`; the
    /// acknowledgement clock starts with the oldest unacknowledged delivery.
    fn delivered_up_to(&mut self, seq: u64, now: u32) {
        self.delivered = seq;
        if self.waiting_since == 0 {
            self.waiting_since = now.max(1);
        }
    }
}

/// A stream to follow, with where to start.
#[derive(Debug, Clone)]
pub struct StreamStartState {
    /// Biz type id.
    pub biz: String,
    /// Stream.
    pub stream: String,
    /// Stored and acknowledged (false: live only).
    pub persistent: bool,
    /// Delivery continues after this sequence number.
    pub cursor: u64,
    /// Unacknowledged deliveries of the next datum so far.
    pub attempts: u32,
    /// The stream's bounds as read for this start, so the first catch-up
    /// does not read them again.
    pub bounds: StreamBounds,
}

/// Frames waiting to be written, bounded in bytes.
#[derive(Debug, Default)]
struct Outbox {
    frames: VecDeque<Bytes>,
    bytes: usize,
    /// When the oldest waiting frame was queued: a connection whose frames
    /// wait longer than the write timeout is not draining.
    waiting_since: Option<Instant>,
}

impl Outbox {
    /// Queues a frame unless the connection is closing; a frame that would take
    /// the outbox over `max_bytes` closes the connection as a slow consumer.
    fn push(&mut self, closing: &mut Option<CloseReason>, frame: Bytes, max_bytes: usize) -> bool {
        if closing.is_some() {
            return false;
        }
        if self.bytes + frame.len() > max_bytes {
            *closing = Some(CloseReason::SlowConsumer);
            metrics::counter!("atoll_sync_slow_consumers_total").increment(1);
            return false;
        }
        if self.frames.is_empty() {
            self.waiting_since = Some(Instant::now());
        }
        self.bytes += frame.len();
        self.frames.push_back(frame);
        true
    }

    /// Everything waiting, in order; the outbox is empty afterwards and holds
    /// no buffer (an idle connection keeps none).
    fn take(&mut self) -> Vec<Bytes> {
        self.bytes = 0;
        self.waiting_since = None;
        Vec::from(std::mem::take(&mut self.frames))
    }
}

#[derive(Debug, Default)]
struct ConnState {
    outbox: Outbox,
    closing: Option<CloseReason>,
    streams: Vec<StreamState>,
}

/// One device connection on this node.
#[derive(Debug)]
pub struct Conn {
    id: u64,
    /// Internal app id.
    pub app_id: Arc<str>,
    /// The device.
    pub device_id: Arc<str>,
    /// The user the connection was opened for (bound at connect).
    pub user_id: Option<Box<str>>,
    /// What delivery filters look at.
    pub traits: DeviceTraits,
    /// Connected at (ms).
    pub since_ms: i64,
    last_seen: AtomicU32,
    outbox_max: usize,
    state: Mutex<ConnState>,
    wake: Notify,
}

impl Conn {
    /// The connection's id as shown to clients and in the console.
    pub fn display_id(&self, node: &str) -> String {
        format!("{node}-{}", self.id)
    }

    /// Waits until there is something to write or the connection must close.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Takes every frame waiting to be written, and whether to close after them.
    pub fn take_outbox(&self) -> (Vec<Bytes>, Option<CloseReason>) {
        let mut state = self.state.lock();
        (state.outbox.take(), state.closing)
    }

    /// Records activity from the client.
    pub fn touch(&self, now: u32) {
        self.last_seen.store(now, Ordering::Relaxed);
    }

    /// Asks the connection to close after what is queued.
    pub fn close(&self, reason: CloseReason) {
        let mut state = self.state.lock();
        if state.closing.is_none() {
            state.closing = Some(reason);
        }
        drop(state);
        self.wake.notify_one();
    }

    /// Queues a frame; `false` (and the connection closing) when the outbox is full.
    pub fn push(&self, frame: Bytes) -> bool {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        let pushed = state
            .outbox
            .push(&mut state.closing, frame, self.outbox_max);
        drop(guard);
        self.wake.notify_one();
        pushed
    }

    /// The biz types the connection follows.
    pub fn biz_types(&self) -> Vec<String> {
        let state = self.state.lock();
        let mut biz: Vec<String> = state.streams.iter().map(|s| s.biz.to_string()).collect();
        biz.dedup();
        biz
    }
}

/// Encodes a server frame as one WebSocket text frame.
pub fn encode_frame(frame: &ServerFrame) -> Bytes {
    let json = serde_json::to_vec(frame).expect("server frames serialise");
    let mut out = BytesMut::with_capacity(json.len() + 10);
    atoll_ws::frame::encode(atoll_ws::frame::Opcode::Text, &json, None, &mut out);
    out.freeze()
}

/// A datum being delivered live, encoded once for every recipient.
#[derive(Debug)]
pub struct LiveDatum {
    /// Internal app id.
    pub app_id: String,
    /// Biz type id.
    pub biz: String,
    /// Stream.
    pub stream: String,
    /// Sequence (0: not persistent).
    pub seq: u64,
    /// Atoll's id.
    pub msg_id: String,
    /// The data.
    pub payload: String,
    /// Accepted at (ms).
    pub created_at: i64,
    /// Which devices may receive it.
    pub filter: CompiledFilter,
    frame: OnceLock<Bytes>,
}

impl LiveDatum {
    /// A datum to deliver.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        app_id: String,
        biz: String,
        stream: String,
        seq: u64,
        msg_id: String,
        payload: String,
        created_at: i64,
        filter: CompiledFilter,
    ) -> LiveDatum {
        LiveDatum {
            app_id,
            biz,
            stream,
            seq,
            msg_id,
            payload,
            created_at,
            filter,
            frame: OnceLock::new(),
        }
    }

    fn frame(&self) -> Bytes {
        self.frame
            .get_or_init(|| {
                encode_frame(&ServerFrame::Data {
                    biz: self.biz.clone(),
                    stream: self.stream.clone(),
                    seq: self.seq,
                    id: self.msg_id.clone(),
                    payload: self.payload.clone(),
                    created_at: self.created_at,
                })
            })
            .clone()
    }
}

fn stream_key(app_id: &str, biz: &str, stream: &str) -> String {
    format!("{app_id}\u{0}{biz}\u{0}{stream}")
}

const SHARDS: usize = 16;

fn shard_of(text: &str) -> usize {
    // FNV-1a: cheap and stable; the shards only spread lock contention.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash as usize) % SHARDS
}

/// One shard of the connections by `app \0 device`.
type DeviceShard = HashMap<String, Arc<Conn>>;
/// The connections following one stream, and the stream's names, shared by
/// every follower's state (one allocation per stream, not per connection).
#[derive(Debug)]
struct Followers {
    biz: Arc<str>,
    stream: Arc<str>,
    conns: HashMap<u64, Arc<Conn>>,
}

/// One shard of the followers by stream key.
type FollowerShard = HashMap<Arc<str>, Followers>;

/// Connections by device, and followers by stream.
#[derive(Debug)]
pub struct Hub {
    settings: HubSettings,
    started: Instant,
    next_id: AtomicU64,
    online: AtomicUsize,
    accepting: AtomicBool,
    /// `app \0 device` → connection.
    devices: Box<[Mutex<DeviceShard>]>,
    /// stream key → connections following it, by connection id.
    followers: Box<[Mutex<FollowerShard>]>,
    /// Cursors waiting to be saved.
    cursors: Mutex<HashMap<CursorKey, (u64, u32)>>,
    cursors_wake: Notify,
    gone: Notify,
}

/// Why a connection was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The node is shutting down.
    ShuttingDown,
    /// The node holds its maximum of connections.
    Full,
}

impl Hub {
    /// An empty hub.
    pub fn new(settings: HubSettings) -> Hub {
        Hub {
            settings,
            started: Instant::now(),
            next_id: AtomicU64::new(1),
            online: AtomicUsize::new(0),
            accepting: AtomicBool::new(true),
            devices: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            followers: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            cursors: Mutex::new(HashMap::new()),
            cursors_wake: Notify::new(),
            gone: Notify::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }

    /// Seconds since the hub started (the clock of idle and ack timeouts).
    pub fn now(&self) -> u32 {
        self.started.elapsed().as_secs() as u32
    }

    /// Connections on this node.
    pub fn online(&self) -> usize {
        self.online.load(Ordering::Relaxed)
    }

    /// Admits a new connection for a device; an older connection of the same
    /// device is told to close.
    pub fn register(
        &self,
        app_id: &str,
        device_id: &str,
        user_id: Option<&str>,
        traits: DeviceTraits,
        since_ms: i64,
    ) -> Result<Arc<Conn>, Refused> {
        if !self.accepting.load(Ordering::Acquire) {
            return Err(Refused::ShuttingDown);
        }
        if self.online.fetch_add(1, Ordering::AcqRel) >= self.settings.max_connections {
            self.online.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Full);
        }
        let now = self.now();
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            app_id: Arc::from(app_id),
            device_id: device_id.into(),
            user_id: user_id.map(Into::into),
            traits,
            since_ms,
            last_seen: AtomicU32::new(now),
            outbox_max: self.settings.outbox_max_bytes,
            state: Mutex::new(ConnState::default()),
            wake: Notify::new(),
        });
        let key = format!("{app_id}\u{0}{device_id}");
        let previous = self.devices[shard_of(&key)]
            .lock()
            .insert(key, conn.clone());
        if let Some(previous) = previous {
            previous.close(CloseReason::Replaced);
        }
        metrics::gauge!("atoll_sync_connections").set(self.online() as f64);
        Ok(conn)
    }

    /// Forgets a closed connection and saves its cursors. A delivery made but
    /// not acknowledged counts as one attempt.
    pub fn unregister(&self, conn: &Arc<Conn>, reason: CloseReason) {
        let key = format!("{}\u{0}{}", conn.app_id, conn.device_id);
        {
            let mut devices = self.devices[shard_of(&key)].lock();
            if devices
                .get(&key)
                .is_some_and(|current| current.id == conn.id)
            {
                devices.remove(&key);
            }
        }
        let mut state = conn.state.lock();
        state.closing.get_or_insert(reason);
        for stream in &mut state.streams {
            let mut followers = self.followers[shard_of(&stream.key)].lock();
            if let Some(set) = followers.get_mut(&stream.key) {
                set.conns.remove(&conn.id);
                if set.conns.is_empty() {
                    followers.remove(&stream.key);
                }
            }
            drop(followers);
            if stream.persistent && stream.delivered > stream.acked {
                stream.attempts += 1;
                stream.dirty = true;
            }
            if stream.dirty {
                stream.dirty = false;
                self.save_cursor(&conn.app_id, &conn.device_id, stream);
            }
        }
        state.streams.clear();
        state.outbox = Outbox::default();
        drop(state);
        self.online.fetch_sub(1, Ordering::AcqRel);
        metrics::counter!("atoll_sync_disconnects_total", "reason" => reason.label()).increment(1);
        metrics::gauge!("atoll_sync_connections").set(self.online() as f64);
        self.gone.notify_waiters();
    }

    /// Remembers a stream's sync point for the next batch write (shared
    /// names, no copies: an acknowledgement costs a map insert).
    fn save_cursor(&self, app_id: &Arc<str>, device_id: &Arc<str>, stream: &StreamState) {
        let key = CursorKey {
            app_id: app_id.clone(),
            device_id: device_id.clone(),
            biz_type: stream.biz.clone(),
            stream: stream.stream.clone(),
        };
        let mut cursors = self.cursors.lock();
        cursors.insert(key, (stream.acked, stream.attempts));
        if cursors.len() >= 1024 {
            self.cursors_wake.notify_one();
        }
    }

    /// Takes the cursors waiting to be saved.
    pub(crate) fn take_cursors(&self) -> Vec<(CursorKey, u64, u32)> {
        std::mem::take(&mut *self.cursors.lock())
            .into_iter()
            .map(|(key, (acked, attempts))| (key, acked, attempts))
            .collect()
    }

    /// Waits until many cursors are waiting (or `period` passed).
    pub(crate) async fn cursors_pending(&self, period: Duration) {
        let _ = tokio::time::timeout(period, self.cursors_wake.notified()).await;
    }

    /// Adds streams to a connection (after `subscribed` is queued) and starts
    /// delivering them from their cursors.
    pub(crate) fn follow(
        self: &Arc<Self>,
        service: &Arc<SyncService>,
        conn: &Arc<Conn>,
        subscribed: Bytes,
        starts: Vec<StreamStartState>,
    ) {
        let mut to_catch_up = Vec::new();
        {
            let mut guard = conn.state.lock();
            let state = &mut *guard;
            if !state
                .outbox
                .push(&mut state.closing, subscribed, conn.outbox_max)
            {
                drop(guard);
                conn.wake.notify_one();
                return;
            }
            // Exactly what is needed: a connection usually follows one or two
            // streams for hours, and growing by push would keep room for four.
            state.streams.reserve_exact(starts.len());
            for start in starts {
                if state
                    .streams
                    .iter()
                    .any(|s| *s.biz == *start.biz && *s.stream == *start.stream)
                {
                    continue;
                }
                let key_text = stream_key(&conn.app_id, &start.biz, &start.stream);
                let (key, biz, stream) = {
                    let mut shard = self.followers[shard_of(&key_text)].lock();
                    let (key, set) = match shard.get_key_value(key_text.as_str()) {
                        Some((key, _)) => {
                            let key = key.clone();
                            let set = shard.get_mut(&key).expect("just found");
                            (key, set)
                        }
                        None => {
                            let key: Arc<str> = Arc::from(key_text.as_str());
                            let set = shard.entry(key.clone()).or_insert_with(|| Followers {
                                biz: Arc::from(start.biz.as_str()),
                                stream: Arc::from(start.stream.as_str()),
                                conns: HashMap::new(),
                            });
                            (key, set)
                        }
                    };
                    set.conns.insert(conn.id, conn.clone());
                    (key, set.biz.clone(), set.stream.clone())
                };
                state.streams.push(StreamState {
                    biz: biz.clone(),
                    stream: stream.clone(),
                    key,
                    persistent: start.persistent,
                    last_sent: start.cursor,
                    delivered: start.cursor,
                    acked: start.cursor,
                    attempts: start.attempts,
                    catching_up: start.persistent,
                    missed: false,
                    paused: false,
                    dirty: false,
                    waiting_since: 0,
                });
                if start.persistent {
                    to_catch_up.push((biz, stream, start.bounds));
                }
            }
        }
        conn.wake.notify_one();
        for (biz, stream, bounds) in to_catch_up {
            self.spawn_catch_up_from(service, conn, biz, stream, Some(bounds));
        }
    }

    fn spawn_catch_up(
        self: &Arc<Self>,
        service: &Arc<SyncService>,
        conn: &Arc<Conn>,
        biz: Arc<str>,
        stream: Arc<str>,
    ) {
        self.spawn_catch_up_from(service, conn, biz, stream, None);
    }

    /// Starts a catch-up; `bounds`, when just read, spare it reading them again.
    fn spawn_catch_up_from(
        self: &Arc<Self>,
        service: &Arc<SyncService>,
        conn: &Arc<Conn>,
        biz: Arc<str>,
        stream: Arc<str>,
        bounds: Option<StreamBounds>,
    ) {
        let service = Arc::downgrade(service);
        let conn = Arc::downgrade(conn);
        tokio::spawn(async move {
            if let Err(error) =
                catch_up(service, conn.clone(), biz.clone(), stream.clone(), bounds).await
            {
                tracing::warn!(%error, %biz, %stream, "sync catch-up failed; closing the connection");
                if let Some(conn) = conn.upgrade() {
                    // The client reconnects and resumes from its cursor.
                    conn.close(CloseReason::Shutdown);
                }
            }
        });
    }

    /// Delivers a datum to the followers of its stream on this node.
    pub fn deliver_live(self: &Arc<Self>, service: &Arc<SyncService>, datum: &LiveDatum) {
        let key = stream_key(&datum.app_id, &datum.biz, &datum.stream);
        let followers: Vec<Arc<Conn>> =
            match self.followers[shard_of(&key)].lock().get(key.as_str()) {
                Some(set) => set.conns.values().cloned().collect(),
                None => return,
            };
        let mut delivered = 0u64;
        let now = self.now();
        for conn in followers {
            let mut catch_up = false;
            {
                let mut state = conn.state.lock();
                let state = &mut *state;
                let Some(stream) = state
                    .streams
                    .iter_mut()
                    .find(|s| *s.biz == *datum.biz && *s.stream == *datum.stream)
                else {
                    continue;
                };
                if !stream.persistent {
                    if datum.filter.admits(&conn.traits) {
                        let frame = datum.frame();
                        if state
                            .outbox
                            .push(&mut state.closing, frame, conn.outbox_max)
                        {
                            delivered += 1;
                        }
                    }
                } else if datum.seq <= stream.last_sent {
                    // Already delivered (or read by the catch-up).
                } else if stream.catching_up {
                    stream.missed = true;
                } else if datum.seq == stream.last_sent + 1
                    && stream.delivered - stream.acked < self.settings.window
                {
                    stream.last_sent = datum.seq;
                    if datum.filter.admits(&conn.traits) {
                        let frame = datum.frame();
                        if state
                            .outbox
                            .push(&mut state.closing, frame, conn.outbox_max)
                        {
                            stream.delivered_up_to(datum.seq, now);
                            delivered += 1;
                        }
                    }
                } else {
                    stream.catching_up = true;
                    stream.missed = false;
                    catch_up = true;
                }
            }
            conn.wake.notify_one();
            if catch_up {
                self.spawn_catch_up(
                    service,
                    &conn,
                    Arc::from(datum.biz.as_str()),
                    Arc::from(datum.stream.as_str()),
                );
            }
        }
        service
            .stats
            .add(&datum.app_id, &datum.biz, Counter::Delivered, delivered);
    }

    /// Applies an acknowledgement: everything up to `seq` was processed.
    pub(crate) fn ack(
        self: &Arc<Self>,
        service: &Arc<SyncService>,
        conn: &Arc<Conn>,
        biz: &str,
        stream_name: &str,
        seq: u64,
    ) -> bool {
        let mut resume = false;
        let advanced;
        {
            let mut state = conn.state.lock();
            let Some(stream) = state
                .streams
                .iter_mut()
                .find(|s| *s.biz == *biz && *s.stream == *stream_name)
            else {
                return false;
            };
            if !stream.persistent {
                return true;
            }
            // A client cannot acknowledge what it was not sent.
            let seq = seq.min(stream.last_sent);
            if seq <= stream.acked {
                return true;
            }
            advanced = seq - stream.acked;
            stream.acked = seq;
            stream.attempts = 0;
            stream.waiting_since = if stream.delivered > seq {
                self.now().max(1)
            } else {
                0
            };
            if stream.paused {
                stream.paused = false;
                resume = true;
            }
            self.save_cursor(&conn.app_id, &conn.device_id, stream);
        }
        service
            .stats
            .add(&conn.app_id, biz, Counter::Acknowledged, advanced);
        if resume {
            self.spawn_catch_up(service, conn, Arc::from(biz), Arc::from(stream_name));
        }
        true
    }

    /// Every connection on this node.
    pub fn connections(&self) -> Vec<Arc<Conn>> {
        self.devices
            .iter()
            .flat_map(|shard| shard.lock().values().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// The connection of a device, if it is online here.
    pub fn connection(&self, app_id: &str, device_id: &str) -> Option<Arc<Conn>> {
        let key = format!("{app_id}\u{0}{device_id}");
        self.devices[shard_of(&key)].lock().get(&key).cloned()
    }

    /// Number of connections following a biz type of an app on this node.
    pub fn followers_of(&self, app_id: &str, biz: &str) -> usize {
        let prefix = format!("{app_id}\u{0}{biz}\u{0}");
        let mut devices = std::collections::HashSet::new();
        for shard in self.followers.iter() {
            for (key, set) in shard.lock().iter() {
                if key.starts_with(&prefix) {
                    devices.extend(set.conns.keys().copied());
                }
            }
        }
        devices.len()
    }

    /// One pass of the timeouts: idle connections, stalled writers, and data
    /// waiting too long for an acknowledgement (delivered again).
    pub(crate) fn sweep(self: &Arc<Self>, service: &Arc<SyncService>) {
        let now = self.now();
        let idle = self.settings.idle_timeout.as_secs() as u32;
        let write = self.settings.write_timeout;
        let ack = self.settings.ack_timeout.as_secs().max(1) as u32;
        for conn in self.connections() {
            if now.saturating_sub(conn.last_seen.load(Ordering::Relaxed)) > idle {
                conn.close(CloseReason::Idle);
                continue;
            }
            let mut redeliver = Vec::new();
            {
                let mut state = conn.state.lock();
                let stalled = state
                    .outbox
                    .waiting_since
                    .is_some_and(|since| since.elapsed() > write);
                if stalled {
                    state.closing.get_or_insert(CloseReason::SlowConsumer);
                    metrics::counter!("atoll_sync_slow_consumers_total").increment(1);
                    drop(state);
                    conn.wake.notify_one();
                    continue;
                }
                for stream in &mut state.streams {
                    if stream.persistent
                        && !stream.catching_up
                        && stream.waiting_since != 0
                        && stream.delivered > stream.acked
                        && now.saturating_sub(stream.waiting_since) > ack
                    {
                        stream.attempts += 1;
                        stream.dirty = true;
                        stream.last_sent = stream.acked;
                        stream.delivered = stream.acked;
                        stream.waiting_since = 0;
                        stream.catching_up = true;
                        stream.missed = false;
                        stream.paused = false;
                        redeliver.push((stream.biz.clone(), stream.stream.clone()));
                    }
                }
            }
            for (biz, stream) in redeliver {
                metrics::counter!("atoll_sync_redeliveries_total").increment(1);
                self.spawn_catch_up(service, &conn, biz, stream);
            }
        }
    }

    /// Closes a device's connection when it was opened for another user than
    /// the one now bound.
    pub fn rebound(&self, app_id: &str, device_id: &str, user_id: Option<&str>) {
        if let Some(conn) = self.connection(app_id, device_id) {
            if conn.user_id.as_deref() != user_id {
                conn.close(CloseReason::BindingChanged);
            }
        }
    }

    /// Stops accepting, tells every client to reconnect elsewhere, and waits
    /// (at most `grace`) for the connections to end.
    pub async fn shutdown(&self, grace: Duration) {
        self.accepting.store(false, Ordering::Release);
        let frame = encode_frame(&ServerFrame::Reconnect {
            after_ms: 1_000,
            reason: "server shutting down".into(),
        });
        for conn in self.connections() {
            conn.push(frame.clone());
            conn.close(CloseReason::Shutdown);
        }
        let deadline = Instant::now() + grace;
        while self.online() > 0 && Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(100), self.gone.notified()).await;
        }
    }
}

/// Data read per step of a catch-up.
const CATCH_UP_PAGE: u64 = 64;

/// Brings one stream of one connection up to date from the log, then hands it
/// back to live delivery (see the module docs).
async fn catch_up(
    service: Weak<SyncService>,
    conn: Weak<Conn>,
    biz: Arc<str>,
    stream_name: Arc<str>,
    mut known_bounds: Option<StreamBounds>,
) -> crate::Result<()> {
    let mut first = true;
    loop {
        let (Some(service), Some(conn)) = (service.upgrade(), conn.upgrade()) else {
            return Ok(());
        };
        let hub = service.hub.clone();
        let window = hub.settings.window;
        // Where to read from, and how much the window allows.
        let (after, room, attempts) = {
            let mut state = conn.state.lock();
            if state.closing.is_some() {
                return Ok(());
            }
            let Some(stream) = state
                .streams
                .iter_mut()
                .find(|s| *s.biz == *biz && *s.stream == *stream_name)
            else {
                return Ok(());
            };
            let in_flight = stream.delivered - stream.acked;
            if in_flight >= window {
                stream.paused = true;
                return Ok(());
            }
            stream.missed = false;
            (
                stream.last_sent,
                (window - in_flight).min(CATCH_UP_PAGE),
                stream.attempts,
            )
        };
        let now_ms = service.clock.now_ms();
        let mut frames: Vec<(u64, Option<Bytes>)> = Vec::new();
        let mut resync: Option<(u64, u64, &'static str)> = None;
        let mut dropped_seq = None;
        // Where reading starts: after the cursor, or after a gap the client is told about.
        let mut start = after;
        if first {
            first = false;
            let bounds = match known_bounds.take() {
                Some(bounds) => bounds,
                None => service.log.bounds(&conn.app_id, &biz, &stream_name).await?,
            };
            if after > bounds.head {
                resync = Some((bounds.head + 1, after, "reset"));
                start = bounds.head;
            } else if after + 1 < bounds.floor {
                resync = Some((after + 1, bounds.floor - 1, "trimmed"));
                start = bounds.floor - 1;
            }
        }
        let data: Vec<StoredDatum> = service
            .log
            .read(
                &conn.app_id,
                &biz,
                &stream_name,
                start,
                room as usize,
                now_ms,
            )
            .await?;
        let complete = (data.len() as u64) < room;
        let mut data = data.into_iter().peekable();
        if resync.is_none() && attempts > MAX_REDELIVERIES {
            // The next datum was delivered too often without an acknowledgement.
            if let Some(datum) = data.next() {
                dropped_seq = Some(datum.seq);
                resync = Some((after + 1, datum.seq, "dropped"));
                service.stats.add(&conn.app_id, &biz, Counter::Dropped, 1);
                metrics::counter!("atoll_sync_dropped_total", "reason" => "redeliveries")
                    .increment(1);
            }
        }
        for datum in data {
            let filter = CompiledFilter::new(datum.filter.as_ref());
            let frame = filter.admits(&conn.traits).then(|| {
                encode_frame(&ServerFrame::Data {
                    biz: biz.to_string(),
                    stream: stream_name.to_string(),
                    seq: datum.seq,
                    id: datum.msg_id,
                    payload: datum.payload,
                    created_at: datum.created_at,
                })
            });
            frames.push((datum.seq, frame));
        }
        let mut delivered = 0u64;
        let finished = {
            let mut guard = conn.state.lock();
            let state = &mut *guard;
            let Some(stream) = state
                .streams
                .iter_mut()
                .find(|s| *s.biz == *biz && *s.stream == *stream_name)
            else {
                return Ok(());
            };
            if let Some((from, to, reason)) = resync {
                let frame = encode_frame(&ServerFrame::Resync {
                    biz: biz.to_string(),
                    stream: stream_name.to_string(),
                    from,
                    to,
                    reason: reason.into(),
                });
                state
                    .outbox
                    .push(&mut state.closing, frame, conn.outbox_max);
                let resume_after = if reason == "reset" { start } else { to };
                stream.last_sent = resume_after;
                stream.delivered = stream.delivered.min(resume_after);
                if reason == "reset" || dropped_seq.is_some() {
                    // The server's own sync point follows: a reset stream starts
                    // over, a dropped datum is not offered again. (A trimmed gap
                    // is acknowledged by the client once it has resynced.)
                    stream.acked = resume_after;
                    stream.delivered = resume_after;
                    stream.attempts = 0;
                    stream.dirty = true;
                }
            }
            let now = hub.now().max(1);
            for (seq, frame) in frames {
                if seq <= stream.last_sent {
                    continue;
                }
                stream.last_sent = seq;
                if let Some(frame) = frame {
                    if state
                        .outbox
                        .push(&mut state.closing, frame, conn.outbox_max)
                    {
                        stream.delivered_up_to(seq, now);
                        delivered += 1;
                    }
                }
            }
            if stream.dirty {
                stream.dirty = false;
                hub.save_cursor(&conn.app_id, &conn.device_id, stream);
            }
            if complete && !stream.missed {
                stream.catching_up = false;
                true
            } else {
                false
            }
        };
        conn.wake.notify_one();
        service
            .stats
            .add(&conn.app_id, &biz, Counter::Delivered, delivered);
        if finished {
            return Ok(());
        }
    }
}
