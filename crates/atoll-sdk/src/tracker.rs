//! The analytics tracker: events, sessions and pages, queued on disk and sent in
//! batches to `POST /device/v1/events`.
//!
//! ```no_run
//! # async fn demo(client: std::sync::Arc<atoll_sdk::DeviceClient>, config: atoll_sdk::DeviceConfig) -> atoll_sdk::Result<()> {
//! use atoll_sdk::protocol::events::AttributeValue;
//! use atoll_sdk::{Tracker, TrackerConfig};
//! let tracker = Tracker::open(client, TrackerConfig::for_device(&config)).await?;
//! tracker.start().await?;                                   // $launch + $foreground
//! tracker.page_begin("home").await?;
//! tracker.track("share", [("network", "mastodon")]).await?;
//! // Mixed value types: name the type once.
//! tracker.track("purchase", [("sku", AttributeValue::from("A-1")), ("price", 9.99.into())]).await?;
//! tracker.page_end("home").await?;                          // $page_view
//! tracker.on_background().await?;                           // $background + flush
//! tracker.close().await?;
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! - **Validate first.** The server accepts or refuses a batch as a unit, so one
//!   bad event would block every event queued with it. `track` checks names,
//!   attribute counts and lengths with the server's rules (`tracker/validate.rs`) and
//!   returns the error the server would have given instead of queueing.
//! - **Persist before returning.** `track` appends the event to an append-only
//!   JSON-lines log (`tracker/queue.rs`, format described there), fsynced by default, before it returns: a crash
//!   or a kill from the OS loses nothing that was acknowledged to the app. File
//!   IO runs on tokio's blocking pool, never on the async workers.
//! - **Send at least once, store once.** Every event gets a uuid when tracked and
//!   keeps it in the log; a batch leaves the log only after the server accepted
//!   it. A batch whose answer was lost is sent again after a retry or a restart,
//!   and the server stores its events once.
//! - **Never block the queue.** A batch refused as invalid is dropped and counted
//!   (`dropped_refused`); `too_many_events` and `payload_too_large` halve the
//!   batch instead; `event_time_out_of_range` drops the events that are too old
//!   and sends the rest. Events older than `max_event_age` are dropped before
//!   sending (`dropped_old`), with the server's clock (learned from each answer)
//!   as the reference. When the queue is full the oldest events go (`dropped_full`).
//! - **Back off.** Any other failure (network, 429, 5xx, 401) keeps the events
//!   and pauses sending for an exponential, jittered delay, at least the
//!   server's `Retry-After`. The [`DeviceClient`]'s own retry policy applies
//!   inside one send; the tracker's backoff is between sends, so an unreachable
//!   server is never polled in a loop.
//! - **Flush in the background.** A tokio task sends when `batch_size` events are
//!   queued or the oldest has waited `max_batch_age`; `on_background` flushes at
//!   once, `close` stops the task and flushes one last time.
//! - **Sessions** follow the Firebase rule: a new session id (UUID v4) at
//!   `start`, and on return to the foreground after `session_timeout` in the
//!   background. Time comes from an injectable [`Clock`], so tests need no sleep.
//! - **Opt-out** (`set_enabled(false)`) empties the queue and is remembered
//!   across restarts in a marker file next to the queue.
//!
//! One `Tracker` (and its clones) per queue file: two trackers appending to the
//! same file would interleave writes.

mod queue;
mod session;
mod validate;

use crate::{DeviceClient, DeviceConfig, Error, RequestOptions, Result};
use atoll_protocol::events::{
    limits, AttributeValue, EventBatchResponse, TrackedEvent, LOGIN, LOGOUT,
};
use atoll_protocol::ErrorCode;
use queue::EventQueue;
use rand::Rng;
use serde::Serialize;
use session::Session;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The device API path events are posted to.
pub const EVENTS_PATH: &str = "/device/v1/events";

/// A batch's JSON stays under the server's decompressed limit with room for
/// the envelope; a batch is also cut at this size, whatever `batch_size` says.
const BATCH_BYTE_BUDGET: u64 = (limits::MAX_BATCH_BYTES as u64) * 9 / 10;

/// Longest `Retry-After` obeyed; beyond it a misconfigured server could mute
/// analytics for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The wall clock, in milliseconds since the Unix epoch. Inject one in tests.
pub trait Clock: Send + Sync {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

impl<F: Fn() -> i64 + Send + Sync> Clock for F {
    fn now_ms(&self) -> i64 {
        self()
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64)
    }
}

/// How a [`Tracker`] queues and sends.
#[derive(Clone)]
pub struct TrackerConfig {
    /// The queue file (default `<storage_dir>/events.queue`).
    pub queue_path: PathBuf,
    /// Events per request, 1 to 500 (default 50).
    pub batch_size: usize,
    /// The background task sends once the oldest queued event waited this long
    /// (default 15 s), even if fewer than `batch_size` are queued.
    pub max_batch_age: Duration,
    /// Most events kept on disk (default 10 000); beyond, the oldest are dropped.
    pub queue_capacity: usize,
    /// Background time after which returning to the foreground starts a new
    /// session (default 30 min).
    pub session_timeout: Duration,
    /// Events older than this are dropped instead of sent. The server refuses a
    /// batch holding an event older than 7 days, so the default is 6 days 23 h.
    pub max_event_age: Duration,
    /// fsync every append, so a tracked event survives a power loss (default
    /// true). Without it, it still survives a crash of the app.
    pub fsync: bool,
    /// Run the background flush task (default true). Off, only `flush`,
    /// `on_background` and `close` send.
    pub auto_flush: bool,
    /// First backoff after a failed send (default 2 s), doubled per failure.
    pub retry_base_delay: Duration,
    /// Longest backoff (default 10 min); a longer `Retry-After` is still obeyed
    /// (up to an hour).
    pub retry_max_delay: Duration,
    /// Where event times come from.
    pub clock: Arc<dyn Clock>,
}

impl fmt::Debug for TrackerConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TrackerConfig")
            .field("queue_path", &self.queue_path)
            .field("batch_size", &self.batch_size)
            .field("max_batch_age", &self.max_batch_age)
            .field("queue_capacity", &self.queue_capacity)
            .field("session_timeout", &self.session_timeout)
            .field("max_event_age", &self.max_event_age)
            .field("fsync", &self.fsync)
            .field("auto_flush", &self.auto_flush)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .finish_non_exhaustive()
    }
}

impl TrackerConfig {
    /// The defaults, with the queue in `storage_dir` (the folder given to
    /// [`DeviceConfig`]).
    pub fn new(storage_dir: impl AsRef<Path>) -> TrackerConfig {
        TrackerConfig {
            queue_path: storage_dir.as_ref().join("events.queue"),
            batch_size: 50,
            max_batch_age: Duration::from_secs(15),
            queue_capacity: 10_000,
            session_timeout: Duration::from_secs(30 * 60),
            max_event_age: Duration::from_secs((6 * 24 + 23) * 3600),
            fsync: true,
            auto_flush: true,
            retry_base_delay: Duration::from_secs(2),
            retry_max_delay: Duration::from_secs(600),
            clock: Arc::new(SystemClock),
        }
    }

    /// The defaults, with the queue in the device's storage folder.
    pub fn for_device(device: &DeviceConfig) -> TrackerConfig {
        TrackerConfig::new(&device.storage_dir)
    }

    /// This configuration with another clock (tests).
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> TrackerConfig {
        self.clock = Arc::new(clock);
        self
    }

    fn check(&self) -> Result<()> {
        if !(1..=limits::MAX_EVENTS_PER_BATCH).contains(&self.batch_size) {
            return Err(Error::Config(format!(
                "batch_size must be 1 to {}",
                limits::MAX_EVENTS_PER_BATCH
            )));
        }
        if self.queue_capacity == 0 {
            return Err(Error::Config("queue_capacity must be at least 1".into()));
        }
        if self.max_event_age.is_zero() {
            return Err(Error::Config("max_event_age must not be zero".into()));
        }
        // A zero backoff would let a failing server be polled in a tight loop.
        if self.retry_base_delay < Duration::from_millis(1)
            || self.retry_max_delay < self.retry_base_delay
        {
            return Err(Error::Config(
                "retry_base_delay must be at least 1 ms and at most retry_max_delay".into(),
            ));
        }
        Ok(())
    }

    fn opt_out_path(&self) -> PathBuf {
        let mut path = self.queue_path.clone().into_os_string();
        path.push(".optout");
        PathBuf::from(path)
    }
}

/// Counters since [`Tracker::open`] (except `queued`, which is the queue now).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Events on disk, not yet accepted by the server.
    pub queued: usize,
    /// Events the server accepted (its duplicates included).
    pub sent: u64,
    /// Oldest events dropped because the queue was full.
    pub dropped_full: u64,
    /// Events dropped with a batch the server refused as invalid.
    pub dropped_refused: u64,
    /// Events dropped for being older than `max_event_age`.
    pub dropped_old: u64,
    /// Damaged records skipped in the queue file (a torn write after a crash).
    pub dropped_corrupt: u64,
    /// Sends that failed and were left for later.
    pub failed_sends: u64,
}

/// What one [`Tracker::flush`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Events accepted by the server.
    pub sent: usize,
    /// Events dropped (refused, too old or unreadable).
    pub dropped: usize,
    /// Events still queued.
    pub remaining: usize,
    /// Set when nothing was tried because an earlier failure's backoff (or
    /// `Retry-After`) is still running: how long it has left.
    pub deferred_for: Option<Duration>,
}

/// The analytics tracker. Cheap to clone; all clones share one queue.
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
}

impl fmt::Debug for Tracker {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Tracker")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish()
    }
}

struct Inner {
    client: Arc<DeviceClient>,
    config: TrackerConfig,
    state: Mutex<State>,
    /// Held for a whole flush: one batch in flight at a time, oldest first.
    sending: tokio::sync::Mutex<()>,
    wake: Arc<Notify>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The background task holds only a weak reference; wake it so it sees
        // the tracker is gone and ends.
        self.wake.notify_one();
    }
}

struct State {
    queue: EventQueue,
    session: Session,
    enabled: bool,
    closed: bool,
    stats: TrackerStats,
    /// Since when the queue has held events (drives `max_batch_age`).
    pending_since: Option<Instant>,
    /// No send before this instant (backoff after a failure).
    backoff_until: Option<Instant>,
    failures: u32,
    /// Server clock minus our clock, from the last accepted batch.
    server_offset_ms: i64,
    /// Events at or before this time were refused as too old by the server
    /// although our clock disagreed; they are dropped before sending.
    time_floor_ms: i64,
    /// The batch size in use: halved when the server finds batches too big.
    batch_limit: usize,
}

impl State {
    fn note_queued(&mut self) {
        if self.pending_since.is_none() && !self.queue.is_empty() {
            self.pending_since = Some(Instant::now());
        }
    }

    fn note_removed(&mut self) {
        // What is left is treated as new: at worst it waits one more max_batch_age.
        self.pending_since = (!self.queue.is_empty()).then(Instant::now);
    }
}

/// The wire body, borrowing the events (same JSON as `EventBatch`).
#[derive(Serialize)]
struct BatchBody<'a> {
    events: &'a [TrackedEvent],
}

/// How a failed send is handled.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// Keep the batch and back off.
    Retry,
    /// The batch can never be accepted: drop it.
    Refused,
    /// The batch is too big for the server: send fewer events at once.
    Shrink,
    /// Some events are too old for the server.
    TooOld,
}

fn classify(error: &Error) -> Failure {
    let Error::Api {
        status, problem, ..
    } = error
    else {
        return Failure::Retry;
    };
    match problem.error_code() {
        Some(ErrorCode::EventTimeOutOfRange) => Failure::TooOld,
        Some(ErrorCode::TooManyEvents | ErrorCode::PayloadTooLarge) => Failure::Shrink,
        Some(
            ErrorCode::InvalidEvent
            | ErrorCode::TooManyAttributes
            | ErrorCode::NameTooLong
            | ErrorCode::ValueTooLong
            | ErrorCode::UnregisteredEvent
            | ErrorCode::AttributeTypeMismatch
            | ErrorCode::ValidationFailed
            | ErrorCode::InvalidRequest,
        ) => Failure::Refused,
        // A code from a newer server: 422 is always about the content.
        _ if *status == 422 => Failure::Refused,
        _ if *status == 413 => Failure::Shrink,
        // Auth, rate limits, outages, unknown answers: the events are fine.
        _ => Failure::Retry,
    }
}

/// The index the server names in `events[N]…` of a refusal's detail.
fn refused_index(error: &Error) -> Option<usize> {
    let Error::Api { problem, .. } = error else {
        return None;
    };
    let rest = problem.detail.split_once("events[")?.1;
    rest.split_once(']')?.0.parse().ok()
}

/// Exponential backoff with "equal jitter": at least half the ceiling, so a
/// failure is never retried at once, and at least the server's `Retry-After`.
fn backoff_delay(config: &TrackerConfig, failures: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling = config
        .retry_base_delay
        .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
        .min(config.retry_max_delay);
    let half = ceiling / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
    let delay = half + Duration::from_millis(jitter);
    match retry_after {
        Some(wanted) => delay.max(wanted.min(MAX_RETRY_AFTER)),
        None => delay,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the state as consistent as the
    // queue file (which is only changed by whole records); carry on.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn join_error(error: tokio::task::JoinError) -> Error {
    Error::Io(std::io::Error::other(error))
}

impl Inner {
    fn now_ms(&self) -> i64 {
        self.config.clock.now_ms()
    }

    /// Runs `work` on the state on the blocking pool (it may touch the disk).
    async fn with_state<T, F>(self: &Arc<Self>, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &mut State) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut state = lock(&inner.state);
            work(&inner, &mut state)
        })
        .await
        .map_err(join_error)?
    }

    /// Lets `build` update the session and make events, then queues them
    /// (unless tracking is off).
    async fn record<F>(self: &Arc<Self>, build: F) -> Result<()>
    where
        F: FnOnce(&mut Session, i64) -> Result<Vec<TrackedEvent>> + Send + 'static,
    {
        self.with_state(move |inner, state| {
            let now = inner.now_ms();
            let events = build(&mut state.session, now)?;
            if !state.enabled || events.is_empty() {
                return Ok(());
            }
            for event in &events {
                let dropped = state.queue.append(event)?;
                state.stats.dropped_full += dropped as u64;
            }
            state.note_queued();
            Ok(())
        })
        .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Sends everything queued, batch by batch. The caller holds `sending`.
    async fn flush_locked(self: &Arc<Self>) -> Result<FlushReport> {
        let mut report = FlushReport::default();
        {
            let state = lock(&self.state);
            report.remaining = state.queue.len();
            if !state.enabled {
                return Ok(report);
            }
            let now = Instant::now();
            if let Some(until) = state.backoff_until.filter(|until| *until > now) {
                report.deferred_for = Some(until - now);
                return Ok(report);
            }
        }
        loop {
            let outcome = self.flush_one(&mut report).await;
            match outcome {
                Ok(true) => continue,
                Ok(false) => break,
                Err(error) => {
                    let retry_after = match &error {
                        Error::Api {
                            retry_after_secs: Some(secs),
                            ..
                        } => Some(Duration::from_secs(*secs)),
                        _ => None,
                    };
                    let mut state = lock(&self.state);
                    state.failures = state.failures.saturating_add(1);
                    state.stats.failed_sends += 1;
                    let delay = backoff_delay(&self.config, state.failures, retry_after);
                    state.backoff_until = Some(Instant::now() + delay);
                    drop(state);
                    // The background task may be sleeping towards a later
                    // deadline: have it take the backoff into account.
                    self.wake.notify_one();
                    return Err(error);
                }
            }
        }
        let mut state = lock(&self.state);
        state.failures = 0;
        state.backoff_until = None;
        report.remaining = state.queue.len();
        Ok(report)
    }

    /// Reads, sends and removes one batch. `Ok(false)` when the queue is empty
    /// (or tracking was turned off meanwhile).
    async fn flush_one(self: &Arc<Self>, report: &mut FlushReport) -> Result<bool> {
        let max_age_ms = self.config.max_event_age.as_millis() as i64;
        let prepared = self
            .with_state(move |inner, state| {
                if !state.enabled || state.queue.is_empty() {
                    return Ok(None);
                }
                let batch = state.queue.peek(state.batch_limit, BATCH_BYTE_BUDGET)?;
                let cutoff = (inner.now_ms() + state.server_offset_ms - max_age_ms)
                    .max(state.time_floor_ms.saturating_add(1));
                Ok(Some((batch, cutoff)))
            })
            .await?;
        let Some((batch, cutoff)) = prepared else {
            return Ok(false);
        };
        let through = batch.through;
        let unreadable = batch.unreadable;
        let read = batch.events.len();
        let mut events: Vec<TrackedEvent> = batch
            .events
            .into_iter()
            .filter(|event| event.time >= cutoff)
            .collect();
        let mut old = read - events.len();
        let mut refused = 0;
        let mut time_floor = None;
        let mut shrink = false;
        let mut server_time = None;
        // One batch, retried only when the server says which events to leave out.
        while !events.is_empty() {
            match self.send(&events).await {
                Ok(time) => {
                    server_time = time;
                    break;
                }
                Err(error) => match classify(&error) {
                    Failure::Retry => return Err(error),
                    Failure::Refused => {
                        refused = events.len();
                        events.clear();
                    }
                    Failure::Shrink if events.len() > 1 => {
                        shrink = true;
                        break;
                    }
                    Failure::Shrink => {
                        refused = 1;
                        events.clear();
                    }
                    Failure::TooOld => {
                        // Our clock missed it, so go by the event the server named:
                        // everything at or before its time is too old as well.
                        let floor = refused_index(&error)
                            .and_then(|index| events.get(index))
                            .map(|event| event.time);
                        let before = events.len();
                        if let Some(floor) = floor {
                            events.retain(|event| event.time > floor);
                            time_floor = Some(floor);
                        }
                        if events.len() == before {
                            // No usable hint: drop the batch rather than loop.
                            refused = events.len();
                            events.clear();
                        } else {
                            old += before - events.len();
                        }
                    }
                },
            }
        }
        let sent = events.len();
        let local_now = self.now_ms();
        self.with_state(move |_, state| {
            if let Some(floor) = time_floor {
                state.time_floor_ms = state.time_floor_ms.max(floor);
            }
            if shrink {
                state.batch_limit = (state.batch_limit.min(read) / 2).max(1);
                return Ok(());
            }
            state.queue.ack_through(through)?;
            state.note_removed();
            state.stats.sent += sent as u64;
            state.stats.dropped_old += old as u64;
            state.stats.dropped_refused += refused as u64;
            state.stats.dropped_corrupt += unreadable as u64;
            if let Some(server_time) = server_time {
                state.server_offset_ms = server_time - local_now;
            }
            Ok(())
        })
        .await?;
        if !shrink {
            report.sent += sent;
            report.dropped += old + refused + unreadable;
        }
        Ok(true)
    }

    /// Posts one batch; the server's clock when it answered with one.
    async fn send(&self, events: &[TrackedEvent]) -> Result<Option<i64>> {
        let body = serde_json::to_vec(&BatchBody { events })
            .map_err(|error| Error::Decode(error.to_string()))?;
        let response = self
            .client
            .send_raw("POST", EVENTS_PATH, "", &body, &RequestOptions::default())
            .await?;
        // A 2xx means stored; an unreadable body does not change that.
        Ok(response
            .json::<EventBatchResponse>()
            .await
            .ok()
            .map(|answer| answer.server_time))
    }
}

enum Step {
    Exit,
    Flush,
    Wait(Option<Instant>),
}

/// The background flusher. It holds the tracker weakly, so dropping every
/// `Tracker` ends it.
async fn run_flusher(weak: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        // Registered before deciding, so a wake-up in between is not lost.
        let notified = wake.notified();
        let step = {
            let state = lock(&inner.state);
            let now = Instant::now();
            if state.closed {
                Step::Exit
            } else if !state.enabled || state.queue.is_empty() {
                Step::Wait(None)
            } else if let Some(until) = state.backoff_until.filter(|until| *until > now) {
                Step::Wait(Some(until))
            } else {
                let due = state
                    .pending_since
                    .map_or(now, |since| since + inner.config.max_batch_age);
                // After a failure the events were already due: retry once the
                // backoff is over, not only when the batch fills up.
                if state.queue.len() >= inner.config.batch_size || due <= now || state.failures > 0
                {
                    Step::Flush
                } else {
                    Step::Wait(Some(due))
                }
            }
        };
        match step {
            Step::Exit => return,
            Step::Flush => {
                let _sending = inner.sending.lock().await;
                // A failure has set the backoff the next round waits for.
                let _ = inner.flush_locked().await;
            }
            Step::Wait(deadline) => {
                drop(inner);
                match deadline {
                    Some(deadline) => {
                        tokio::select! {
                            () = notified => {}
                            () = tokio::time::sleep_until(deadline) => {}
                        }
                    }
                    None => notified.await,
                }
            }
        }
    }
}

impl Tracker {
    /// Opens the queue (creating it), replays what an earlier run left unsent,
    /// and starts the background flusher. Call it inside a tokio runtime.
    pub async fn open(client: Arc<DeviceClient>, config: TrackerConfig) -> Result<Tracker> {
        config.check()?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Config("Tracker::open needs a tokio runtime".into()))?;
        let queue_path = config.queue_path.clone();
        let opt_out = config.opt_out_path();
        let (capacity, fsync) = (config.queue_capacity, config.fsync);
        let (queue, report, enabled) = tokio::task::spawn_blocking(move || {
            let (mut queue, report) = EventQueue::open(&queue_path, capacity, fsync)?;
            let enabled = !opt_out.exists();
            if !enabled {
                // Opted out but events left: the clear did not finish last time.
                queue.clear()?;
            }
            Ok::<_, std::io::Error>((queue, report, enabled))
        })
        .await
        .map_err(join_error)??;
        let stats = TrackerStats {
            dropped_full: report.dropped_full as u64,
            dropped_corrupt: report.corrupt as u64,
            ..TrackerStats::default()
        };
        // Leftovers from an earlier run are due at once.
        let pending_since = (!queue.is_empty())
            .then(|| Instant::now().checked_sub(config.max_batch_age))
            .map(|since| since.unwrap_or_else(Instant::now));
        let state = State {
            session: Session::new(config.session_timeout.as_millis() as i64),
            enabled,
            closed: false,
            stats,
            pending_since,
            backoff_until: None,
            failures: 0,
            server_offset_ms: 0,
            time_floor_ms: i64::MIN,
            batch_limit: config.batch_size,
            queue,
        };
        let auto_flush = config.auto_flush;
        let inner = Arc::new(Inner {
            client,
            config,
            state: Mutex::new(state),
            sending: tokio::sync::Mutex::new(()),
            wake: Arc::new(Notify::new()),
            task: Mutex::new(None),
        });
        if auto_flush {
            let task = runtime.spawn(run_flusher(Arc::downgrade(&inner), Arc::clone(&inner.wake)));
            *lock(&inner.task) = Some(task);
        }
        Ok(Tracker { inner })
    }

    /// Tracks an app event with custom attributes (text, number or boolean).
    /// The event is on disk when this returns. An event the server would refuse
    /// (bad name, `$` prefix, more than 25 attributes, text over 100
    /// characters, NaN) is an [`Error::Api`] with the server's code, and is not
    /// queued. A no-op while tracking is disabled.
    ///
    /// Attributes are any `(name, value)` pairs, a `BTreeMap` included; for none,
    /// pass [`NO_ATTRIBUTES`].
    pub async fn track<I, K, V>(&self, event_id: &str, attributes: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<AttributeValue>,
    {
        let attributes: BTreeMap<String, AttributeValue> = attributes
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        validate::check_event_name(event_id)?;
        validate::check_attributes(&attributes)?;
        let event_id = event_id.to_owned();
        self.inner
            .record(move |session, now| {
                let mut event = session.event(&event_id, now);
                event.attributes = attributes;
                Ok(vec![event])
            })
            .await
    }

    /// A page (screen) is shown: events carry it until [`page_end`](Self::page_end).
    pub async fn page_begin(&self, page: &str) -> Result<()> {
        validate::check_text("page", page, validate::MAX_PAGE_CHARS)?;
        let page = page.to_owned();
        self.inner
            .record(move |session, now| {
                session.page_begin(&page, now);
                Ok(Vec::new())
            })
            .await
    }

    /// The page is gone: emits `$page_view` with `page`, `referrer` (the page
    /// begun before it) and `duration_ms` (the stay). An error if the page was
    /// not begun.
    pub async fn page_end(&self, page: &str) -> Result<()> {
        let page = page.to_owned();
        self.inner
            .record(move |session, now| {
                session
                    .page_end(&page, now)
                    .map(|event| vec![event])
                    .ok_or_else(|| {
                        validate::refusal(
                            ErrorCode::InvalidEvent,
                            format!("page_end(\"{page}\") without a matching page_begin"),
                        )
                    })
            })
            .await
    }

    /// The user signed in: emits `$login` with `user_id`, then binds the user to
    /// the device. The event is queued even if the bind request fails (the
    /// sign-in happened; the server attributes later events from it): retry
    /// with [`DeviceClient::bind_user`] rather than calling `login` again. The
    /// bind is done even while tracking is disabled (push targeting needs it).
    pub async fn login(&self, user_id: &str) -> Result<()> {
        if user_id.is_empty() {
            return Err(validate::refusal(
                ErrorCode::InvalidEvent,
                "the user_id is empty",
            ));
        }
        validate::check_text("user_id", user_id, validate::MAX_PAGE_CHARS)?;
        let user = user_id.to_owned();
        self.inner
            .record(move |session, now| {
                let mut event = session.event(LOGIN, now);
                event.user_id = Some(user);
                Ok(vec![event])
            })
            .await?;
        self.inner.client.bind_user(user_id).await?;
        Ok(())
    }

    /// The user signed out: emits `$logout`, then unbinds the user (as for
    /// [`login`](Self::login), the event stays queued if the request fails).
    pub async fn logout(&self) -> Result<()> {
        self.inner
            .record(|session, now| Ok(vec![session.event(LOGOUT, now)]))
            .await?;
        self.inner.client.unbind_user().await?;
        Ok(())
    }

    /// App launch: emits `$launch` and `$foreground` in a new session. Later
    /// calls do nothing.
    pub async fn start(&self) -> Result<()> {
        self.inner
            .record(|session, now| Ok(session.start(now)))
            .await
    }

    /// The app went to the background: emits `$background` with the time spent
    /// in the foreground, then flushes. A failed flush is not an error here: the
    /// events stay queued for the next try.
    pub async fn on_background(&self) -> Result<()> {
        self.inner
            .record(|session, now| Ok(session.background(now)))
            .await?;
        match self.flush().await {
            Err(Error::Io(error)) => Err(Error::Io(error)),
            _ => Ok(()),
        }
    }

    /// The app came back: continues the session, or starts a new one after
    /// `session_timeout` in the background; emits `$foreground`.
    pub async fn on_foreground(&self) -> Result<()> {
        self.inner
            .record(|session, now| Ok(session.foreground(now)))
            .await
    }

    /// The current session id (a UUID v4), once a session was started.
    pub fn session_id(&self) -> Option<String> {
        lock(&self.inner.state).session.id().map(str::to_owned)
    }

    /// Sends the queue now, oldest first, in batches of at most `batch_size`;
    /// each batch leaves the queue once the server accepted it. Returns the
    /// failure that stopped it (the events stay queued and the background task
    /// tries again after a backoff). While that backoff runs, nothing is sent
    /// and the report says how long is left.
    pub async fn flush(&self) -> Result<FlushReport> {
        let _sending = self.inner.sending.lock().await;
        self.inner.flush_locked().await
    }

    /// Turns tracking on or off. Off, tracking calls do nothing and the queue is
    /// emptied; the choice survives restarts.
    pub async fn set_enabled(&self, enabled: bool) -> Result<()> {
        let marker = self.inner.config.opt_out_path();
        self.inner
            .with_state(move |_, state| {
                if enabled {
                    match std::fs::remove_file(&marker) {
                        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                            return Err(error.into())
                        }
                        _ => {}
                    }
                } else {
                    // Marker first: if the clear is cut short, open finishes it.
                    std::fs::write(&marker, b"")?;
                    state.queue.clear()?;
                    state.pending_since = None;
                }
                state.enabled = enabled;
                Ok(())
            })
            .await?;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Whether tracking is on.
    pub fn is_enabled(&self) -> bool {
        lock(&self.inner.state).enabled
    }

    /// Deletes every unsent event; returns how many.
    pub async fn clear(&self) -> Result<usize> {
        self.inner
            .with_state(|_, state| {
                let removed = state.queue.clear()?;
                state.pending_since = None;
                Ok(removed)
            })
            .await
    }

    /// The counters.
    pub fn stats(&self) -> TrackerStats {
        let state = lock(&self.inner.state);
        TrackerStats {
            queued: state.queue.len(),
            ..state.stats
        }
    }

    /// Stops the background task (waiting for a send in progress) and flushes
    /// one last time, best effort: what is not sent stays queued for the next
    /// [`open`](Self::open). Tracking calls after `close` still queue.
    pub async fn close(&self) -> Result<FlushReport> {
        lock(&self.inner.state).closed = true;
        self.inner.wake.notify_one();
        let task = lock(&self.inner.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.flush().await
    }
}

/// No attributes, for [`Tracker::track`]: `tracker.track("tap", NO_ATTRIBUTES)`.
pub const NO_ATTRIBUTES: [(&str, AttributeValue); 0] = [];

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_protocol::events::{BACKGROUND, FOREGROUND, LAUNCH, PAGE_VIEW};
    use atoll_protocol::Problem;
    use std::sync::atomic::{AtomicI64, Ordering};

    const T0: i64 = 1_800_000_000_000;
    const MINUTE: i64 = 60_000;

    /// A tracker on a server that does not exist, with a settable clock.
    async fn offline(dir: &Path) -> (Tracker, Arc<AtomicI64>) {
        let clock = Arc::new(AtomicI64::new(T0));
        let reading = Arc::clone(&clock);
        let mut device = DeviceConfig::new("http://127.0.0.1:9", "key", "secret", dir);
        device.retry = crate::RetryPolicy::none();
        let client = Arc::new(DeviceClient::new(device.clone()).unwrap());
        let mut config =
            TrackerConfig::for_device(&device).with_clock(move || reading.load(Ordering::SeqCst));
        config.auto_flush = false;
        config.fsync = false;
        (Tracker::open(client, config).await.unwrap(), clock)
    }

    fn queued(tracker: &Tracker) -> Vec<TrackedEvent> {
        let mut state = lock(&tracker.inner.state);
        state.queue.peek(usize::MAX, u64::MAX).unwrap().events
    }

    #[tokio::test]
    async fn lifecycle_events_carry_session_and_page() {
        let dir = tempfile::tempdir().unwrap();
        let (tracker, clock) = offline(dir.path()).await;
        tracker.start().await.unwrap();
        let first = tracker.session_id().unwrap();
        tracker.page_begin("home").await.unwrap();
        clock.store(T0 + 1_000, Ordering::SeqCst);
        tracker.track("tap", [("n", 1i64)]).await.unwrap();
        tracker.page_end("home").await.unwrap();
        clock.store(T0 + 5 * MINUTE, Ordering::SeqCst);
        // on_background's flush fails quietly: there is no server.
        tracker.on_background().await.unwrap();
        clock.store(T0 + 5 * MINUTE + 29 * MINUTE, Ordering::SeqCst);
        tracker.on_foreground().await.unwrap();
        assert_eq!(tracker.session_id().unwrap(), first, "29 min: same session");
        tracker.on_background().await.unwrap();
        clock.store(T0 + 64 * MINUTE + 30 * MINUTE, Ordering::SeqCst);
        tracker.on_foreground().await.unwrap();
        let second = tracker.session_id().unwrap();
        assert_ne!(second, first, "30 min: new session");

        let events = queued(&tracker);
        let names: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(
            names,
            [
                LAUNCH, FOREGROUND, "tap", PAGE_VIEW, BACKGROUND, FOREGROUND, BACKGROUND,
                FOREGROUND
            ]
        );
        assert_eq!(events[2].page.as_deref(), Some("home"));
        assert_eq!(events[2].attributes["n"], AttributeValue::Number(1.0));
        assert_eq!(events[3].duration_ms, Some(1_000));
        assert_eq!(events[4].duration_ms, Some(5 * MINUTE));
        assert!(events[..7]
            .iter()
            .all(|e| e.session_id.as_deref() == Some(first.as_str())));
        assert_eq!(events[7].session_id.as_deref(), Some(second.as_str()));
        let uuids: std::collections::HashSet<_> = events.iter().map(|e| &e.uuid).collect();
        assert_eq!(uuids.len(), events.len());
    }

    #[tokio::test]
    async fn invalid_events_are_refused_locally_and_not_queued() {
        let dir = tempfile::tempdir().unwrap();
        let (tracker, _) = offline(dir.path()).await;
        let code = |result: Result<()>| result.unwrap_err().code();
        assert_eq!(
            code(tracker.track("bad name", NO_ATTRIBUTES).await),
            Some(ErrorCode::InvalidEvent)
        );
        assert_eq!(
            code(tracker.track("$launch", NO_ATTRIBUTES).await),
            Some(ErrorCode::InvalidEvent)
        );
        assert_eq!(
            code(tracker.track(&"x".repeat(41), NO_ATTRIBUTES).await),
            Some(ErrorCode::NameTooLong)
        );
        let many = (0..26).map(|i| (format!("a{i}"), true));
        assert_eq!(
            code(tracker.track("ok", many).await),
            Some(ErrorCode::TooManyAttributes)
        );
        assert_eq!(
            code(tracker.track("ok", [("t", "x".repeat(101))]).await),
            Some(ErrorCode::ValueTooLong)
        );
        assert_eq!(
            code(tracker.page_begin(&"p".repeat(257)).await),
            Some(ErrorCode::ValueTooLong)
        );
        assert_eq!(
            code(tracker.page_end("never-begun").await),
            Some(ErrorCode::InvalidEvent)
        );
        assert_eq!(tracker.stats().queued, 0);
        let map = BTreeMap::from([("color".to_owned(), AttributeValue::from("red"))]);
        tracker.track("ok", map).await.unwrap();
        assert_eq!(tracker.stats().queued, 1);
    }

    #[tokio::test]
    async fn opting_out_empties_the_queue_and_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (tracker, _) = offline(dir.path()).await;
            tracker.track("a", NO_ATTRIBUTES).await.unwrap();
            tracker.set_enabled(false).await.unwrap();
            assert_eq!(tracker.stats().queued, 0);
            tracker.track("b", NO_ATTRIBUTES).await.unwrap();
            tracker.start().await.unwrap();
            assert_eq!(tracker.stats().queued, 0);
            assert!(tracker.session_id().is_some(), "the session goes on");
        }
        let (tracker, _) = offline(dir.path()).await;
        assert!(!tracker.is_enabled());
        tracker.track("c", NO_ATTRIBUTES).await.unwrap();
        assert_eq!(tracker.stats().queued, 0);
        tracker.set_enabled(true).await.unwrap();
        tracker.track("d", NO_ATTRIBUTES).await.unwrap();
        assert_eq!(tracker.stats().queued, 1);
        assert_eq!(tracker.clear().await.unwrap(), 1);
        assert_eq!(tracker.stats().queued, 0);
    }

    #[tokio::test]
    async fn old_events_are_dropped_before_sending() {
        let dir = tempfile::tempdir().unwrap();
        let (tracker, clock) = offline(dir.path()).await;
        tracker.track("old", NO_ATTRIBUTES).await.unwrap();
        // 6 days 23 h later plus a minute: past the default max age.
        clock.store(T0 + (6 * 24 + 23) * 60 * MINUTE + MINUTE, Ordering::SeqCst);
        // Nothing else is queued, so the flush drops without any request.
        let report = tracker.flush().await.unwrap();
        assert_eq!((report.sent, report.dropped, report.remaining), (0, 1, 0));
        assert_eq!(tracker.stats().dropped_old, 1);
    }

    #[tokio::test]
    async fn a_failed_send_backs_off() {
        let dir = tempfile::tempdir().unwrap();
        let (tracker, _) = offline(dir.path()).await;
        tracker.track("a", NO_ATTRIBUTES).await.unwrap();
        assert!(tracker.flush().await.is_err(), "nothing listens on port 9");
        let report = tracker.flush().await.unwrap();
        assert!(report.deferred_for.is_some());
        assert_eq!(report.remaining, 1);
        assert_eq!(tracker.stats().failed_sends, 1);
    }

    #[test]
    fn the_tracker_can_be_shared_between_tasks() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Tracker>();
    }

    fn api(status: u16, code: ErrorCode, detail: &str) -> Error {
        Error::Api {
            status,
            problem: Box::new(Problem::new(code, detail)),
            retry_after_secs: None,
        }
    }

    #[test]
    fn failures_are_classified() {
        use Failure::*;
        assert_eq!(classify(&api(422, ErrorCode::InvalidEvent, "")), Refused);
        assert_eq!(
            classify(&api(422, ErrorCode::UnregisteredEvent, "")),
            Refused
        );
        assert_eq!(
            classify(&api(422, ErrorCode::EventTimeOutOfRange, "")),
            TooOld
        );
        assert_eq!(classify(&api(422, ErrorCode::TooManyEvents, "")), Shrink);
        assert_eq!(classify(&api(413, ErrorCode::PayloadTooLarge, "")), Shrink);
        assert_eq!(classify(&api(429, ErrorCode::RateLimited, "")), Retry);
        assert_eq!(classify(&api(503, ErrorCode::Unavailable, "")), Retry);
        assert_eq!(classify(&api(401, ErrorCode::UnknownDevice, "")), Retry);
        assert_eq!(classify(&Error::Decode("x".into())), Retry);
        let too_old = api(
            422,
            ErrorCode::EventTimeOutOfRange,
            "events[17].time is 170 h before",
        );
        assert_eq!(refused_index(&too_old), Some(17));
        assert_eq!(
            refused_index(&api(422, ErrorCode::EventTimeOutOfRange, "?")),
            None
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_obeys_retry_after() {
        let mut config = TrackerConfig::new("/unused");
        config.retry_base_delay = Duration::from_secs(2);
        config.retry_max_delay = Duration::from_secs(60);
        for _ in 0..50 {
            let first = backoff_delay(&config, 1, None);
            assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2));
            let fourth = backoff_delay(&config, 4, None);
            assert!(fourth >= Duration::from_secs(8) && fourth <= Duration::from_secs(16));
            let capped = backoff_delay(&config, 30, None);
            assert!(capped >= Duration::from_secs(30) && capped <= Duration::from_secs(60));
            let told = backoff_delay(&config, 1, Some(Duration::from_secs(7)));
            assert_eq!(told, Duration::from_secs(7));
            let huge = backoff_delay(&config, 1, Some(Duration::from_secs(86_400)));
            assert_eq!(huge, MAX_RETRY_AFTER);
        }
    }
}
