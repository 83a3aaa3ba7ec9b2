//! The delivery pipeline.
//!
//! Deliveries are a work queue in the store. The **dispatcher** claims due
//! `pending` rows in batches (state `sending`, `due_at` = lease end, one more
//! attempt), and routes each: expired → `expired`; over the app's fatigue cap →
//! `capped`; device online on this node → a `push` frame on its connection
//! (`sent` over `atoll`, `arrived` when the device acknowledges); else the
//! device's vendor token through the app's lane for that vendor (concurrency,
//! rate, pause on 429) → `sent`, a retry with jittered backoff, `failed` with
//! the vendor's reason, or a dead token (removed); no usable vendor →
//! `waiting` until the device connects or the message expires.
//!
//! Every result goes to the **writer**, which applies results, device
//! acknowledgements and reports, and "device online" signals in one
//! transaction per batch, with the daily counters they change. A result only
//! lands on a row still `sending`, so a late result never overwrites an
//! acknowledgement. After a crash, rows whose lease ran out are claimed again:
//! only sends in flight at the crash repeat, with the same message id.

use crate::content::Content;
use crate::expand::OWN_CHANNEL;
use crate::receipts::Receipt;
use crate::stats::{Counter, Tally};
use crate::PushService;
use atoll_protocol::device::PushChannel;
use atoll_protocol::push::{self as wire, PushEvent, PushFrame};
use atoll_protocol::sync::ServerFrame;
use atoll_push_vendors::{Notification, SendOutcome};
use parking_lot::Mutex;
use rand::Rng;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Messages whose content is kept in memory at most.
const CONTENT_CACHE: usize = 10_000;
/// The writer applies at most this many events per transaction.
const WRITE_BATCH: usize = 1_000;
/// Idle poll period of the dispatcher (due retries, other nodes' sends).
const POLL: Duration = Duration::from_millis(500);

/// The claimed columns of a delivery.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    msg_id: String,
    device_id: String,
    app_id: String,
    task_id: String,
    kind: String,
    platform: String,
    channel: String,
    token: Option<String>,
    notify: bool,
    attempts: u32,
    expires_at: i64,
    sent_before: bool,
}

/// How a claimed delivery ended this round.
#[derive(Debug)]
enum Result_ {
    Sent {
        channel: String,
    },
    Waiting {
        reason: &'static str,
    },
    Retry {
        due_at: i64,
        reason: String,
        refund: bool,
    },
    Failed {
        channel: String,
        reason: String,
    },
    DeadToken {
        channel: String,
        token: String,
        reason: String,
    },
    Expired,
    Capped,
}

enum Event {
    Outcome(Box<(Claimed, Result_)>),
    Report {
        app_id: Arc<str>,
        device_id: Arc<str>,
        msg_ids: Vec<String>,
        event: PushEvent,
    },
    Online {
        app_id: Arc<str>,
        device_id: Arc<str>,
    },
}

/// The dispatcher's shared state.
pub struct Dispatcher {
    wake: Notify,
    expander: Notify,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    events: Mutex<Vec<Event>>,
    events_ready: Notify,
    writing: tokio::sync::Mutex<()>,
    contents: Mutex<HashMap<String, Arc<Content>>>,
}

impl Dispatcher {
    pub(crate) fn new(max_in_flight: usize) -> Dispatcher {
        Dispatcher {
            wake: Notify::new(),
            expander: Notify::new(),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            events: Mutex::new(Vec::new()),
            events_ready: Notify::new(),
            writing: tokio::sync::Mutex::new(()),
            contents: Mutex::new(HashMap::new()),
        }
    }

    /// There is new work to claim.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// There are tasks to expand.
    pub(crate) fn wake_expander(&self) {
        self.expander.notify_one();
    }

    pub(crate) async fn expander_woken(&self) {
        self.expander.notified().await;
    }

    fn event(&self, event: Event) {
        self.events.lock().push(event);
        self.events_ready.notify_one();
    }

    /// A device connected: what waits for it becomes due.
    pub(crate) fn device_online(&self, app_id: Arc<str>, device_id: Arc<str>) {
        self.event(Event::Online { app_id, device_id });
    }

    /// A device acknowledged or reported messages.
    pub(crate) fn acked(
        &self,
        app_id: Arc<str>,
        device_id: Arc<str>,
        msg_ids: Vec<String>,
        event: PushEvent,
    ) {
        self.event(Event::Report {
            app_id,
            device_id,
            msg_ids,
            event,
        });
    }

    /// Waits until nothing is in flight and no event waits to be written.
    pub(crate) async fn quiesce(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            let idle = self.in_flight.available_permits() == self.max_in_flight
                && self.events.lock().is_empty();
            if idle {
                // Wait for a write in progress to finish.
                let _guard = self.writing.lock().await;
                if self.events.lock().is_empty() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Starts the dispatcher and the writer.
pub(crate) fn spawn(service: &Arc<PushService>) {
    let weak = Arc::downgrade(service);
    tokio::spawn(async move {
        loop {
            let Some(service) = weak.upgrade() else { break };
            let dispatcher = &service.dispatcher;
            let woken = tokio::time::timeout(POLL, dispatcher.wake.notified()).await;
            drop(woken);
            if let Err(error) = dispatch_due(&service).await {
                tracing::warn!(%error, "push dispatch failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    let weak: Weak<PushService> = Arc::downgrade(service);
    tokio::spawn(async move {
        loop {
            let Some(service) = weak.upgrade() else { break };
            let _ = tokio::time::timeout(POLL, service.dispatcher.events_ready.notified()).await;
            // Let a burst gather into one transaction.
            tokio::time::sleep(Duration::from_millis(5)).await;
            if let Err(error) = write_events(&service).await {
                tracing::warn!(%error, "push writer failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
}

/// Claims and routes due deliveries until none is due or the node is full.
async fn dispatch_due(service: &Arc<PushService>) -> crate::Result<()> {
    loop {
        let free = service.dispatcher.in_flight.available_permits();
        if free < service.config.batch.min(service.dispatcher.max_in_flight) / 4 {
            // Full: let sends finish first.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let claimed = claim(service, free.min(service.config.batch)).await?;
        if claimed.is_empty() {
            return Ok(());
        }
        route_batch(service, claimed).await?;
    }
}

async fn claim(service: &PushService, limit: usize) -> crate::Result<Vec<Claimed>> {
    let now = service.clock.now_ms();
    let lease_end = now + service.config.lease.as_millis() as i64;
    let skip_locked = match service.store().backend() {
        atoll_store::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        atoll_store::Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE push_deliveries SET state = 'sending', due_at = $1, attempts = attempts + 1, updated_at = $2 \
         WHERE (msg_id, device_id) IN (SELECT msg_id, device_id FROM push_deliveries \
         WHERE state = 'pending' AND due_at <= $2 ORDER BY due_at LIMIT $3{skip_locked}) \
         RETURNING msg_id, device_id, app_id, task_id, kind, platform, channel, token, notify, attempts, \
         expires_at, sent_at"
    );
    let started = std::time::Instant::now();
    let mut tx = service.store().begin_write().await?;
    let locked = started.elapsed();
    let rows = sqlx::query(&sql)
        .bind(lease_end)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&mut **tx)
        .await?;
    tx.commit().await?;
    tracing::debug!(claimed = rows.len(), ?locked, total = ?started.elapsed(), "push claim");
    rows.iter()
        .map(|row| {
            Ok(Claimed {
                msg_id: row.try_get("msg_id")?,
                device_id: row.try_get("device_id")?,
                app_id: row.try_get("app_id")?,
                task_id: row.try_get("task_id")?,
                kind: row.try_get("kind")?,
                platform: row.try_get("platform")?,
                channel: row.try_get("channel")?,
                token: row.try_get("token")?,
                notify: row.try_get::<i64, _>("notify")? != 0,
                attempts: row.try_get::<i64, _>("attempts")? as u32,
                expires_at: row.try_get("expires_at")?,
                sent_before: row.try_get::<Option<i64>, _>("sent_at")?.is_some(),
            })
        })
        .collect()
}

/// The contents of these messages, from the cache or the store.
async fn contents(
    service: &PushService,
    msg_ids: &[&str],
) -> crate::Result<HashMap<String, Arc<Content>>> {
    let mut found = HashMap::new();
    let mut missing = Vec::new();
    {
        let cache = service.dispatcher.contents.lock();
        for id in msg_ids {
            match cache.get(*id) {
                Some(content) => {
                    found.insert((*id).to_owned(), content.clone());
                }
                None => missing.push(*id),
            }
        }
    }
    missing.sort_unstable();
    missing.dedup();
    for chunk in missing.chunks(crate::expand::IN_LIST) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 1)).collect();
        let sql = format!(
            "SELECT id, content FROM push_messages WHERE id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(service.store().pool()).await?;
        let mut cache = service.dispatcher.contents.lock();
        if cache.len() + rows.len() > CONTENT_CACHE {
            cache.clear();
        }
        for row in rows {
            let id: String = row.try_get(0)?;
            let content = Arc::new(PushService::parse_content(&row.try_get::<String, _>(1)?)?);
            cache.insert(id.clone(), content.clone());
            found.insert(id, content);
        }
    }
    Ok(found)
}

/// Sent notifications per device in the last hour, day and week.
async fn fatigue_counts(
    service: &PushService,
    app_id: &str,
    devices: &[&str],
    now: i64,
) -> crate::Result<HashMap<String, [u32; 3]>> {
    let mut counts: HashMap<String, [u32; 3]> = HashMap::new();
    for chunk in devices.chunks(crate::expand::IN_LIST) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT device_id, sent_at FROM push_deliveries WHERE app_id = $1 AND sent_at >= $2 \
             AND notify = 1 AND device_id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(app_id).bind(now - 7 * 86_400_000);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(service.store().pool()).await? {
            let sent_at: i64 = row.try_get(1)?;
            let entry = counts.entry(row.try_get(0)?).or_default();
            entry[2] += 1;
            if sent_at >= now - 86_400_000 {
                entry[1] += 1;
            }
            if sent_at >= now - 3_600_000 {
                entry[0] += 1;
            }
        }
    }
    Ok(counts)
}

async fn route_batch(service: &Arc<PushService>, claimed: Vec<Claimed>) -> crate::Result<()> {
    let now = service.clock.now_ms();
    let ids: Vec<&str> = claimed.iter().map(|c| c.msg_id.as_str()).collect();
    let contents = contents(service, &ids).await?;
    // Fatigue: read the counts of the devices whose app has caps, once per batch.
    let mut caps: HashMap<String, Arc<crate::channels::AppSettings>> = HashMap::new();
    let mut fatigue: HashMap<(String, String), [u32; 3]> = HashMap::new();
    {
        let mut by_app: HashMap<&str, Vec<&str>> = HashMap::new();
        for c in claimed.iter().filter(|c| c.notify && !c.sent_before) {
            by_app.entry(&c.app_id).or_default().push(&c.device_id);
        }
        for (app_id, devices) in by_app {
            let settings = service.settings_of(app_id).await;
            if settings.has_caps() {
                for (device, counts) in fatigue_counts(service, app_id, &devices, now).await? {
                    fatigue.insert((app_id.to_owned(), device), counts);
                }
                caps.insert(app_id.to_owned(), settings);
            }
        }
    }
    for c in claimed {
        let permit = service
            .dispatcher
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the in-flight semaphore is never closed");
        if c.expires_at <= now {
            finish(service, c, Result_::Expired, permit);
            continue;
        }
        let Some(content) = contents.get(&c.msg_id).cloned() else {
            finish(
                service,
                c,
                Result_::Failed {
                    channel: OWN_CHANNEL.into(),
                    reason: "message_missing".into(),
                },
                permit,
            );
            continue;
        };
        if let Some(settings) = caps.get(&c.app_id) {
            if c.notify && !c.sent_before {
                let counts = fatigue
                    .entry((c.app_id.clone(), c.device_id.clone()))
                    .or_default();
                let s = &settings.settings;
                let over = [s.cap_per_hour, s.cap_per_day, s.cap_per_week]
                    .iter()
                    .zip(counts.iter())
                    .any(|(cap, count)| *cap > 0 && count >= cap);
                if over {
                    finish(service, c, Result_::Capped, permit);
                    continue;
                }
                for count in counts.iter_mut() {
                    *count += 1;
                }
            }
        }
        route_one(service, c, content, now, permit).await;
    }
    Ok(())
}

fn push_frame(c: &Claimed, content: &Content) -> PushFrame {
    PushFrame {
        msg_id: c.msg_id.clone(),
        task_id: c.task_id.clone(),
        title: content.title.clone(),
        body: content.body.clone(),
        silent: content.silent,
        style: content.style.clone(),
        click: content.click.clone(),
        extras: content.extras.clone(),
        collapse_key: content.collapse_key.clone(),
        expires_at: c.expires_at,
    }
}

/// The vendor form of a message.
pub(crate) fn notification(msg_id: &str, expires_at: i64, content: &Content) -> Notification {
    use atoll_push_vendors::{ClickAction as VClick, Style as VStyle};
    Notification {
        msg_id: msg_id.to_owned(),
        title: content.title.clone(),
        body: content.body.clone(),
        silent: content.silent,
        style: match &content.style {
            wire::PushStyle::Default => VStyle::Default,
            wire::PushStyle::BigText => VStyle::BigText,
            wire::PushStyle::Image { url } => VStyle::Image { url: url.clone() },
        },
        click: content.click.as_ref().map(|click| match click {
            wire::ClickAction::Url(v) => VClick::Url(v.clone()),
            wire::ClickAction::DeepLink(v) => VClick::DeepLink(v.clone()),
            wire::ClickAction::Intent(v) => VClick::Intent(v.clone()),
        }),
        extras: content.extras.clone(),
        collapse_key: content.collapse_key.clone(),
        expires_at_ms: expires_at,
        high_priority: content.high_priority,
        vendor_options: content.vendor_options.clone(),
    }
}

/// Jittered exponential backoff before attempt `attempts + 1`.
fn backoff(base: Duration, attempts: u32) -> i64 {
    let base = base.as_millis() as i64;
    let exp = base.saturating_mul(1 << attempts.min(10).saturating_sub(1));
    let capped = exp.min(10 * 60_000);
    rand::rng().random_range(capped / 2..=capped.max(1))
}

async fn route_one(
    service: &Arc<PushService>,
    c: Claimed,
    content: Arc<Content>,
    now: i64,
    permit: OwnedSemaphorePermit,
) {
    if let Some(conn) = service.sync.hub.connection(&c.app_id, &c.device_id) {
        let frame = atoll_sync::hub::encode_frame(&ServerFrame::Push(push_frame(&c, &content)));
        let result = if conn.push(frame) {
            Result_::Sent {
                channel: OWN_CHANNEL.into(),
            }
        } else {
            // The connection is closing (slow reader): the next connect resends.
            Result_::Waiting {
                reason: "connection_closing",
            }
        };
        finish(service, c, result, permit);
        return;
    }
    let vendor = c
        .token
        .clone()
        .and_then(|token| PushChannel::parse(&c.channel).map(|channel| (channel, token)));
    let Some((channel, token)) = vendor else {
        finish(service, c, Result_::Waiting { reason: "offline" }, permit);
        return;
    };
    let Some(lane) = service.lane(&c.app_id, channel).await else {
        finish(
            service,
            c,
            Result_::Waiting {
                reason: "channel_not_configured",
            },
            permit,
        );
        return;
    };
    let paused = lane.paused_until();
    if paused > now {
        finish(
            service,
            c,
            Result_::Retry {
                due_at: paused,
                reason: "vendor_throttled".into(),
                refund: true,
            },
            permit,
        );
        return;
    }
    let service = service.clone();
    tokio::spawn(async move {
        let Ok(_vendor_permit) = lane.permits.clone().acquire_owned().await else {
            return;
        };
        lane.rate().await;
        let notification = notification(&c.msg_id, c.expires_at, &content);
        let started = std::time::Instant::now();
        let outcome = lane
            .provider
            .send(&notification, &token, service.clock.now_ms())
            .await;
        metrics::histogram!("atoll_push_vendor_seconds", "channel" => channel.as_str())
            .record(started.elapsed());
        let now = service.clock.now_ms();
        let name = channel.as_str().to_owned();
        let result = match outcome {
            SendOutcome::Accepted { .. } => Result_::Sent { channel: name },
            SendOutcome::TokenInvalid { reason } => Result_::DeadToken {
                channel: name,
                token,
                reason,
            },
            SendOutcome::Rejected { reason } => Result_::Failed {
                channel: name,
                reason,
            },
            SendOutcome::Retry {
                after,
                reason,
                throttled,
            } => {
                let after_ms = after.map(|a| a.as_millis() as i64);
                if throttled {
                    lane.pause(now + after_ms.unwrap_or(1_000));
                }
                if c.attempts >= service.config.max_attempts {
                    Result_::Failed {
                        channel: name,
                        reason,
                    }
                } else {
                    let wait =
                        backoff(service.config.retry_base, c.attempts).max(after_ms.unwrap_or(0));
                    Result_::Retry {
                        due_at: now + wait,
                        reason,
                        refund: false,
                    }
                }
            }
        };
        metrics::counter!("atoll_push_vendor_results_total", "channel" => channel.as_str(),
            "result" => match &result { Result_::Sent { .. } => "sent", Result_::Retry { .. } => "retry",
                Result_::DeadToken { .. } => "dead_token", _ => "failed" })
        .increment(1);
        finish(&service, c, result, permit);
    });
}

/// Hands a result to the writer; the in-flight permit is released once it is queued.
fn finish(service: &PushService, c: Claimed, result: Result_, permit: OwnedSemaphorePermit) {
    service
        .dispatcher
        .event(Event::Outcome(Box::new((c, result))));
    drop(permit);
}

/// The state changes of a report, from a delivery's current state.
fn reported(state: &str, event: PushEvent) -> Option<(&'static str, Vec<Counter>)> {
    let sent = matches!(state, "sent" | "arrived" | "opened" | "ignored");
    let arrived = matches!(state, "arrived" | "opened" | "ignored");
    let finished = matches!(state, "opened" | "ignored");
    let open = matches!(
        state,
        "pending" | "sending" | "waiting" | "sent" | "arrived"
    );
    if !open {
        return None;
    }
    let mut counters = Vec::new();
    if !sent {
        counters.push(Counter::Sent);
    }
    if !arrived {
        counters.push(Counter::Arrived);
    }
    let new_state = match event {
        PushEvent::Arrived if arrived => return None,
        PushEvent::Arrived => "arrived",
        PushEvent::Opened if finished => return None,
        PushEvent::Opened => {
            counters.push(Counter::Opened);
            "opened"
        }
        PushEvent::Ignored if finished => return None,
        PushEvent::Ignored => {
            counters.push(Counter::Ignored);
            "ignored"
        }
    };
    Some((new_state, counters))
}

/// Applies waiting events in one transaction per batch.
async fn write_events(service: &Arc<PushService>) -> crate::Result<()> {
    let _writing = service.dispatcher.writing.lock().await;
    loop {
        let events: Vec<Event> = {
            let mut queue = service.dispatcher.events.lock();
            let n = queue.len().min(WRITE_BATCH);
            queue.drain(..n).collect()
        };
        if events.is_empty() {
            return Ok(());
        }
        let now = service.clock.now_ms();
        let started = std::time::Instant::now();
        let mut tally = Tally::default();
        let mut wake = false;
        let mut recheck_online = Vec::new();
        let mut receipts: Vec<(String, Receipt)> = Vec::new();
        let mut tx = service.store().begin_write().await?;
        for event in &events {
            match event {
                Event::Outcome(outcome) => {
                    let (c, result) = &**outcome;
                    let (state, channel, reason, due_at, counter) = match result {
                        Result_::Sent { channel } => {
                            ("sent", channel.as_str(), None, now, Some(Counter::Sent))
                        }
                        Result_::Waiting { reason } => {
                            recheck_online.push((c.app_id.clone(), c.device_id.clone()));
                            ("waiting", OWN_CHANNEL, Some(*reason), now, None)
                        }
                        Result_::Retry { due_at, reason, .. } => {
                            wake = true;
                            (
                                "pending",
                                c.channel.as_str(),
                                Some(reason.as_str()),
                                *due_at,
                                None,
                            )
                        }
                        Result_::Failed { channel, reason } => (
                            "failed",
                            channel.as_str(),
                            Some(reason.as_str()),
                            now,
                            Some(Counter::Failed),
                        ),
                        Result_::DeadToken {
                            channel,
                            token,
                            reason,
                        } => {
                            sqlx::query(
                                "DELETE FROM device_push_tokens WHERE app_id = $1 AND device_id = $2 \
                                 AND channel = $3 AND token = $4",
                            )
                            .bind(&c.app_id)
                            .bind(&c.device_id)
                            .bind(channel)
                            .bind(token)
                            .execute(&mut **tx)
                            .await?;
                            metrics::counter!("atoll_push_tokens_deactivated_total", "channel" => channel.clone())
                                .increment(1);
                            (
                                "failed",
                                channel.as_str(),
                                Some(reason.as_str()),
                                now,
                                Some(Counter::Failed),
                            )
                        }
                        Result_::Expired => (
                            "expired",
                            c.channel.as_str(),
                            None,
                            now,
                            Some(Counter::Expired),
                        ),
                        Result_::Capped => (
                            "capped",
                            c.channel.as_str(),
                            Some("fatigue_cap"),
                            now,
                            Some(Counter::Capped),
                        ),
                    };
                    let refund = matches!(result, Result_::Retry { refund: true, .. });
                    let sent_at = (state == "sent").then_some(now);
                    let updated = sqlx::query(
                        "UPDATE push_deliveries SET state = $1, channel = $2, reason = $3, due_at = $4, \
                         sent_at = COALESCE(sent_at, $5), attempts = attempts - $6, updated_at = $7 \
                         WHERE msg_id = $8 AND device_id = $9 AND state = 'sending'",
                    )
                    .bind(state)
                    .bind(channel)
                    .bind(reason)
                    .bind(due_at)
                    .bind(sent_at)
                    .bind(refund as i64)
                    .bind(now)
                    .bind(&c.msg_id)
                    .bind(&c.device_id)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    if updated == 1 && matches!(state, "sent" | "failed") && !c.sent_before {
                        receipts.push((
                            c.app_id.clone(),
                            Receipt {
                                msg_id: c.msg_id.clone(),
                                task_id: c.task_id.clone(),
                                device_id: c.device_id.clone(),
                                event: state.to_owned(),
                                channel: channel.to_owned(),
                                reason: reason.map(str::to_owned),
                                at: now,
                            },
                        ));
                    }
                    if updated == 1 {
                        if let Some(counter) = counter {
                            // A resend over the connection was counted the first time.
                            if !(counter == Counter::Sent && c.sent_before) {
                                tally.add(
                                    &c.app_id,
                                    now,
                                    &c.platform,
                                    channel,
                                    &c.kind,
                                    counter,
                                    1,
                                );
                            }
                        }
                    }
                }
                Event::Report {
                    app_id,
                    device_id,
                    msg_ids,
                    event,
                } => {
                    apply_report(
                        &mut tx,
                        &mut tally,
                        &mut receipts,
                        app_id,
                        device_id,
                        msg_ids,
                        *event,
                        now,
                    )
                    .await?;
                }
                Event::Online { app_id, device_id } => {
                    // Of the messages sharing a collapse key, only the newest is
                    // still worth showing (message ids are time-ordered).
                    sqlx::query(
                        "UPDATE push_deliveries SET state = 'collapsed', updated_at = $1 \
                         WHERE app_id = $2 AND device_id = $3 AND collapse_key IS NOT NULL \
                         AND state IN ('pending', 'waiting') AND EXISTS (SELECT 1 FROM push_deliveries n \
                         WHERE n.app_id = push_deliveries.app_id AND n.device_id = push_deliveries.device_id \
                         AND n.collapse_key = push_deliveries.collapse_key AND n.msg_id > push_deliveries.msg_id \
                         AND n.state NOT IN ('revoked', 'expired', 'failed', 'capped', 'collapsed'))",
                    )
                    .bind(now)
                    .bind(&**app_id)
                    .bind(&**device_id)
                    .execute(&mut **tx)
                    .await?;
                    let moved = sqlx::query(
                        "UPDATE push_deliveries SET state = 'pending', due_at = $1, updated_at = $1 \
                         WHERE app_id = $2 AND device_id = $3 AND expires_at > $1 \
                         AND (state = 'waiting' OR (state = 'sent' AND channel = 'atoll'))",
                    )
                    .bind(now)
                    .bind(&**app_id)
                    .bind(&**device_id)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    wake |= moved > 0;
                }
            }
        }
        tally.write(&mut tx).await?;
        let applied = started.elapsed();
        tx.commit().await?;
        tracing::debug!(events = events.len(), ?applied, total = ?started.elapsed(), "push write");
        if !receipts.is_empty() {
            service.emit_receipts(receipts).await;
        }
        // A device may have connected between its routing and this write.
        for (app_id, device_id) in recheck_online {
            if let Some(conn) = service.sync.hub.connection(&app_id, &device_id) {
                service
                    .dispatcher
                    .device_online(conn.app_id.clone(), conn.device_id.clone());
            }
        }
        if wake {
            service.dispatcher.wake();
        }
    }
}

/// Applies a device's report of its own messages.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply_report(
    conn: &mut sqlx::AnyConnection,
    tally: &mut Tally,
    receipts: &mut Vec<(String, Receipt)>,
    app_id: &str,
    device_id: &str,
    msg_ids: &[String],
    event: PushEvent,
    now: i64,
) -> crate::Result<()> {
    for msg_id in msg_ids {
        let row = sqlx::query(
            "SELECT state, platform, channel, kind, task_id FROM push_deliveries \
             WHERE msg_id = $1 AND device_id = $2 AND app_id = $3",
        )
        .bind(msg_id)
        .bind(device_id)
        .bind(app_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { continue };
        let state: String = row.try_get(0)?;
        let Some((new_state, counters)) = reported(&state, event) else {
            continue;
        };
        let platform: String = row.try_get(1)?;
        let channel: String = row.try_get(2)?;
        let kind: String = row.try_get(3)?;
        sqlx::query(
            "UPDATE push_deliveries SET state = $1, sent_at = COALESCE(sent_at, $2), updated_at = $2 \
             WHERE msg_id = $3 AND device_id = $4",
        )
        .bind(new_state)
        .bind(now)
        .bind(msg_id)
        .bind(device_id)
        .execute(&mut *conn)
        .await?;
        for counter in counters {
            tally.add(app_id, now, &platform, &channel, &kind, counter, 1);
        }
        receipts.push((
            app_id.to_owned(),
            Receipt {
                msg_id: msg_id.clone(),
                task_id: row.try_get(4)?,
                device_id: device_id.to_owned(),
                event: new_state.to_owned(),
                channel,
                reason: None,
                at: now,
            },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_move_forward_only() {
        assert_eq!(
            reported("sent", PushEvent::Arrived).map(|r| r.0),
            Some("arrived")
        );
        let (state, counters) = reported("waiting", PushEvent::Opened).unwrap();
        assert_eq!(state, "opened");
        assert_eq!(
            counters,
            vec![Counter::Sent, Counter::Arrived, Counter::Opened]
        );
        assert!(reported("opened", PushEvent::Arrived).is_none());
        assert!(reported("arrived", PushEvent::Arrived).is_none());
        assert!(reported("opened", PushEvent::Ignored).is_none());
        assert!(reported("expired", PushEvent::Opened).is_none());
        assert!(reported("revoked", PushEvent::Arrived).is_none());
        assert_eq!(
            reported("arrived", PushEvent::Opened).unwrap().1,
            vec![Counter::Opened]
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_secs(2);
        for attempts in 1..20 {
            let wait = backoff(base, attempts);
            let full = (2_000i64 << (attempts.min(10) - 1)).min(600_000);
            assert!(wait >= full / 2 && wait <= full, "{attempts}: {wait}");
        }
    }
}
