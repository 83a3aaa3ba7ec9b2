//! Sync orders (single and global), subscriptions of device connections, and
//! what the console shows: counters, online devices, a device's cursors.

use crate::filter::{CompiledFilter, DeviceTraits};
use crate::hub::{encode_frame, LiveDatum, StreamStartState};
use crate::log::{Appended, NewDatum, StreamBounds};
use crate::stats::Counter;
use crate::{validate, Conn, Error, Result, SyncService, KICK_SUBJECT, LIVE_SUBJECT};
use atoll_core::access::Requirement;
use atoll_core::rules::version::Version;
use atoll_platform::{DeviceCaller, Principal};
use atoll_protocol::sync::{
    BizSubscription, BizType, BizTypeStats, DeliveryFilter, DeviceSyncState, Dimension,
    GlobalSyncOrder, OnlineDevice, PendingDatum, Refusal, ServerFrame, StreamCursor, StreamStart,
    SyncOrder, SyncOrderAnswer, DUPLICATED_BIZ_ID, GLOBAL_STREAM, MAX_SUBSCRIPTIONS, RESULT_OK,
};
use atoll_store::Subscription;
use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The scope an app backend's token needs to send orders.
pub const SEND_SCOPE: &str = "sync:write";

/// Idempotence of non-persistent orders, which are never stored: keys are
/// remembered in memory for [`VOLATILE_KEY_TTL`], at most [`MAX_VOLATILE_KEYS`].
#[derive(Debug, Default)]
pub(crate) struct VolatileKeys {
    keys: Mutex<HashMap<String, (Instant, String)>>,
}

/// How long a non-persistent order's key is remembered.
pub const VOLATILE_KEY_TTL: Duration = Duration::from_secs(600);
/// Most remembered non-persistent keys.
pub const MAX_VOLATILE_KEYS: usize = 100_000;

impl VolatileKeys {
    /// The earlier id for `key`, or `None` after remembering `msg_id` for it.
    fn check_and_put(&self, key: String, msg_id: &str) -> Option<String> {
        let mut keys = self.keys.lock();
        if let Some((at, earlier)) = keys.get(&key) {
            if at.elapsed() < VOLATILE_KEY_TTL {
                return Some(earlier.clone());
            }
        }
        if keys.len() >= MAX_VOLATILE_KEYS {
            keys.retain(|_, (at, _)| at.elapsed() < VOLATILE_KEY_TTL);
            if keys.len() >= MAX_VOLATILE_KEYS {
                // All fresh: forget the oldest half rather than grow.
                let mut ages: Vec<Instant> = keys.values().map(|(at, _)| *at).collect();
                ages.sort();
                let cut = ages[ages.len() / 2];
                keys.retain(|_, (at, _)| *at > cut);
            }
        }
        keys.insert(key, (Instant::now(), msg_id.to_owned()));
        None
    }
}

/// A live datum as it travels on the bus to other nodes.
#[derive(Debug, Serialize, Deserialize)]
struct BusDatum {
    node: String,
    app_id: String,
    biz: String,
    stream: String,
    seq: u64,
    msg_id: String,
    payload: String,
    created_at: i64,
    filter: Option<DeliveryFilter>,
}

/// A binding change on the bus.
#[derive(Debug, Serialize, Deserialize)]
struct BusKick {
    node: String,
    app_id: String,
    device_id: String,
    user_id: Option<String>,
}

pub(crate) fn spawn_bus_listeners(
    service: &Arc<SyncService>,
    mut live: Subscription,
    mut kicks: Subscription,
) {
    let weak = Arc::downgrade(service);
    tokio::spawn(async move {
        while let Some(message) = live.next().await {
            let Some(service) = weak.upgrade() else { break };
            let Ok(datum) = serde_json::from_slice::<BusDatum>(&message.payload) else {
                tracing::warn!(subject = %message.subject, "undecodable sync datum on the bus");
                continue;
            };
            if datum.node == service.hub.settings().node {
                continue;
            }
            let live = LiveDatum::new(
                datum.app_id,
                datum.biz,
                datum.stream,
                datum.seq,
                datum.msg_id,
                datum.payload,
                datum.created_at,
                CompiledFilter::new(datum.filter.as_ref()),
            );
            service.hub.deliver_live(&service, &live);
        }
    });
    let weak = Arc::downgrade(service);
    tokio::spawn(async move {
        while let Some(message) = kicks.next().await {
            let Some(service) = weak.upgrade() else { break };
            if let Ok(kick) = serde_json::from_slice::<BusKick>(&message.payload) {
                if kick.node != service.hub.settings().node {
                    service
                        .hub
                        .rebound(&kick.app_id, &kick.device_id, kick.user_id.as_deref());
                }
            }
        }
    });
}

fn new_msg_id() -> String {
    format!("sm_{}", uuid::Uuid::now_v7().simple())
}

fn answer(result_code: &str, msg_id: String, stream: String, seq: u64) -> SyncOrderAnswer {
    SyncOrderAnswer {
        result_code: result_code.to_owned(),
        msg_id,
        stream,
        seq,
    }
}

/// One order, single or global, after its biz type was found.
struct Accepted<'a> {
    app_id: &'a str,
    biz_type: &'a BizType,
    stream: String,
    link_token: &'a str,
    third_msg_id: &'a str,
    payload: &'a str,
    valid_seconds: Option<u64>,
    filter: &'a DeliveryFilter,
}

impl SyncService {
    async fn enabled_biz_type(&self, app_id: &str, id: &str) -> Result<BizType> {
        let types = self.biz_types_of(app_id).await?;
        let biz_type = types
            .get(id)
            .ok_or_else(|| Error::NotFound(format!("biz type '{id}'")))?;
        if !biz_type.spec.enabled {
            return Err(Error::Offline(id.to_owned()));
        }
        Ok(biz_type.clone())
    }

    /// Sends a datum to one user or device (`sync:write`).
    pub async fn send(
        self: &Arc<Self>,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        order: &SyncOrder,
    ) -> Result<SyncOrderAnswer> {
        let access = self
            .platform
            .authorize_app(
                principal,
                slug,
                app_key,
                Requirement::write_with_scope(SEND_SCOPE),
            )
            .await?;
        validate::link_token(&order.link_token)?;
        let biz_type = self
            .enabled_biz_type(&access.app_id, &order.biz_type)
            .await?;
        self.accept(Accepted {
            app_id: &access.app_id,
            stream: biz_type.spec.dimension.stream(&order.link_token),
            biz_type: &biz_type,
            link_token: &order.link_token,
            third_msg_id: &order.third_msg_id,
            payload: &order.payload,
            valid_seconds: order.valid_seconds,
            filter: &order.filter,
        })
        .await
    }

    /// Sends a datum to every device of a global biz type (`sync:write`),
    /// stored once.
    pub async fn send_global(
        self: &Arc<Self>,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        order: &GlobalSyncOrder,
    ) -> Result<SyncOrderAnswer> {
        let access = self
            .platform
            .authorize_app(
                principal,
                slug,
                app_key,
                Requirement::write_with_scope(SEND_SCOPE),
            )
            .await?;
        let biz_type = self
            .enabled_biz_type(&access.app_id, &order.biz_type)
            .await?;
        if !biz_type.spec.global_allowed {
            return Err(Error::Invalid(format!(
                "biz type '{}' does not allow global orders",
                order.biz_type
            )));
        }
        self.accept(Accepted {
            app_id: &access.app_id,
            stream: GLOBAL_STREAM.to_owned(),
            biz_type: &biz_type,
            link_token: "",
            third_msg_id: &order.third_msg_id,
            payload: &order.payload,
            valid_seconds: order.valid_seconds,
            filter: &order.filter,
        })
        .await
    }

    async fn accept(self: &Arc<Self>, order: Accepted<'_>) -> Result<SyncOrderAnswer> {
        let spec = &order.biz_type.spec;
        validate::third_msg_id(order.third_msg_id)?;
        validate::payload(order.payload)?;
        validate::filter(order.filter)?;
        let valid_seconds = validate::valid_seconds(order.valid_seconds, spec.retention_days)?;
        let now = self.clock.now_ms();
        let msg_id = new_msg_id();
        let seq = if spec.persistent {
            let appended = self
                .log
                .append(&NewDatum {
                    app_id: order.app_id,
                    biz_type: &spec.id,
                    stream: &order.stream,
                    link_token: order.link_token,
                    third_msg_id: order.third_msg_id,
                    msg_id: &msg_id,
                    payload: order.payload,
                    filter: Some(order.filter),
                    created_at: now,
                    expires_at: now.saturating_add((valid_seconds * 1000) as i64),
                    keep_newest: spec.backlog_threshold,
                })
                .await?;
            match appended {
                Appended::Duplicate {
                    msg_id,
                    stream,
                    seq,
                } => return Ok(answer(DUPLICATED_BIZ_ID, msg_id, stream, seq)),
                Appended::New { seq, trimmed } => {
                    self.stats
                        .add(order.app_id, &spec.id, Counter::Dropped, trimmed);
                    if trimmed > 0 {
                        metrics::counter!("atoll_sync_dropped_total", "reason" => "threshold")
                            .increment(trimmed);
                    }
                    seq
                }
            }
        } else {
            let key = format!(
                "{}\u{0}{}\u{0}{}\u{0}{}",
                order.app_id, spec.id, order.link_token, order.third_msg_id
            );
            if let Some(earlier) = self.volatile_keys.check_and_put(key, &msg_id) {
                return Ok(answer(DUPLICATED_BIZ_ID, earlier, order.stream, 0));
            }
            0
        };
        self.stats.add(order.app_id, &spec.id, Counter::Sent, 1);
        self.publish(
            LiveDatum::new(
                order.app_id.to_owned(),
                spec.id.clone(),
                order.stream.clone(),
                seq,
                msg_id.clone(),
                order.payload.to_owned(),
                now,
                CompiledFilter::new(Some(order.filter)),
            ),
            order.filter,
        )
        .await;
        Ok(answer(RESULT_OK, msg_id, order.stream, seq))
    }

    /// Delivers on this node and announces the datum to the others. The datum
    /// is already durable: a lost announcement only delays it until the
    /// device's next catch-up.
    async fn publish(self: &Arc<Self>, datum: LiveDatum, filter: &DeliveryFilter) {
        self.hub.deliver_live(self, &datum);
        let message = BusDatum {
            node: self.hub.settings().node.clone(),
            app_id: datum.app_id,
            biz: datum.biz,
            stream: datum.stream,
            seq: datum.seq,
            msg_id: datum.msg_id,
            payload: datum.payload,
            created_at: datum.created_at,
            filter: (!filter.is_empty()).then(|| filter.clone()),
        };
        let payload = Bytes::from(serde_json::to_vec(&message).expect("bus datum serialises"));
        if let Err(error) = self
            .bus
            .publish(&format!("{LIVE_SUBJECT}.{}", message.app_id), payload)
            .await
        {
            tracing::warn!(%error, "could not announce a sync datum on the bus");
        }
    }

    /// A device's user binding is now `user_id`: a connection of the device
    /// (on any node) opened for another user is closed, so it reconnects with
    /// the new user's streams.
    pub async fn binding_changed(&self, app_id: &str, device_id: &str, user_id: Option<&str>) {
        self.hub.rebound(app_id, device_id, user_id);
        let kick = BusKick {
            node: self.hub.settings().node.clone(),
            app_id: app_id.to_owned(),
            device_id: device_id.to_owned(),
            user_id: user_id.map(str::to_owned),
        };
        let payload = Bytes::from(serde_json::to_vec(&kick).expect("bus kick serialises"));
        if let Err(error) = self
            .bus
            .publish(&format!("{KICK_SUBJECT}.{app_id}"), payload)
            .await
        {
            tracing::warn!(%error, "could not announce a binding change on the bus");
        }
    }

    /// Opens a connection for a verified device: its registered traits and
    /// bound user are fixed for the connection's life.
    pub async fn open_connection(
        &self,
        caller: &DeviceCaller,
    ) -> Result<std::result::Result<Arc<Conn>, crate::Refused>> {
        let profile = self
            .platform
            .device_profile(caller)
            .await?
            .ok_or_else(|| Error::Platform(atoll_platform::Error::UnknownDevice))?;
        let traits = DeviceTraits {
            platform: profile.platform,
            app_version: profile
                .app_version
                .as_deref()
                .and_then(|text| Version::parse(text).ok()),
        };
        Ok(self.hub.register(
            &caller.app_id,
            &caller.device_id,
            profile.user_id.as_deref(),
            traits,
            self.clock.now_ms(),
        ))
    }

    /// Subscribes a connection to biz types: resolves each one's streams and
    /// where delivery starts, queues the `subscribed` answer, then starts
    /// delivering.
    pub async fn subscribe(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        subs: &[BizSubscription],
        claimed_user: Option<&str>,
    ) -> Result<()> {
        let types = self.biz_types_of(&conn.app_id).await?;
        let mut streams = Vec::new();
        let mut refused = Vec::new();
        let mut starts = Vec::new();
        let already = conn.biz_types().len();
        for sub in subs {
            let refuse = |code: &str| Refusal {
                biz: sub.biz.clone(),
                code: code.to_owned(),
            };
            if already + starts.len() >= MAX_SUBSCRIPTIONS {
                refused.push(refuse("too_many"));
                continue;
            }
            let Some(biz_type) = types.get(&sub.biz) else {
                refused.push(refuse("unknown_biz_type"));
                continue;
            };
            let spec = &biz_type.spec;
            if !spec.enabled {
                refused.push(refuse("biz_type_offline"));
                continue;
            }
            let mut names = Vec::new();
            match spec.dimension {
                Dimension::Device => names.push(Dimension::Device.stream(&conn.device_id)),
                Dimension::User => {
                    let bound = conn.user_id.as_deref();
                    // With user consistency only the platform's binding counts;
                    // without it the client's own claim is taken (mPaaS semantics).
                    let user = if spec.user_consistency {
                        match (bound, claimed_user) {
                            (Some(bound), Some(claimed)) if bound != claimed => {
                                refused.push(refuse("user_mismatch"));
                                None
                            }
                            (Some(bound), _) => Some(bound),
                            (None, _) => None,
                        }
                    } else {
                        claimed_user.or(bound)
                    };
                    match user {
                        Some(user) => names.push(Dimension::User.stream(user)),
                        None if !spec.global_allowed
                            && !refused.iter().any(|r: &Refusal| r.biz == sub.biz) =>
                        {
                            refused.push(refuse("no_bound_user"));
                        }
                        None => {}
                    }
                }
            }
            if spec.global_allowed {
                names.push(GLOBAL_STREAM.to_owned());
            }
            for stream in names {
                let (start, head) = self.start_of(conn, biz_type, &stream, sub).await?;
                streams.push(StreamStart {
                    biz: spec.id.clone(),
                    stream: stream.clone(),
                    cursor: start.cursor,
                    head,
                });
                starts.push(start);
            }
        }
        let frame = encode_frame(&ServerFrame::Subscribed { streams, refused });
        self.hub.follow(self, conn, frame, starts);
        Ok(())
    }

    /// Where delivery of a stream starts for a connection: the client's own
    /// cursor when it sent one, else the server's sync point, else (a device
    /// new to the stream) its whole own stream, the retained history of a user
    /// or global stream, or only what comes next for a user stream without
    /// multi-device sync.
    async fn start_of(
        &self,
        conn: &Conn,
        biz_type: &BizType,
        stream: &str,
        sub: &BizSubscription,
    ) -> Result<(StreamStartState, u64)> {
        let spec = &biz_type.spec;
        let mut start = StreamStartState {
            biz: spec.id.clone(),
            stream: stream.to_owned(),
            persistent: spec.persistent,
            cursor: 0,
            attempts: 0,
            bounds: StreamBounds::default(),
        };
        if !spec.persistent {
            return Ok((start, 0));
        }
        let bounds = self.log.bounds(&conn.app_id, &spec.id, stream).await?;
        start.bounds = bounds;
        let client = sub
            .cursors
            .iter()
            .find(|cursor| cursor.stream == stream)
            .map(|cursor| cursor.seq);
        let server = self
            .log
            .cursor(&conn.app_id, &conn.device_id, &spec.id, stream)
            .await?;
        match (client, server) {
            (Some(client), Some((acked, attempts))) => {
                start.cursor = client;
                start.attempts = if client == acked { attempts } else { 0 };
            }
            (Some(client), None) => start.cursor = client,
            (None, Some((acked, attempts))) => {
                start.cursor = acked;
                start.attempts = attempts;
            }
            (None, None) => {
                let own_stream = spec.dimension == Dimension::Device && stream != GLOBAL_STREAM;
                let only_new = spec.dimension == Dimension::User
                    && stream != GLOBAL_STREAM
                    && !spec.multi_device;
                start.cursor = if own_stream {
                    // Everything in a device's own stream was for it: what was
                    // trimmed before it ever connected is announced as a resync.
                    0
                } else if only_new {
                    bounds.head
                } else {
                    bounds.floor.saturating_sub(1)
                };
                if only_new {
                    // This start depends on the head now: saved at once, so a
                    // device that drops before acknowledging anything does not
                    // skip what is sent in between. The other starts come out
                    // the same when computed again.
                    let key = crate::log::CursorKey {
                        app_id: conn.app_id.clone(),
                        device_id: conn.device_id.clone(),
                        biz_type: spec.id.as_str().into(),
                        stream: stream.into(),
                    };
                    self.log
                        .save_cursors(&[(key, start.cursor, 0)], self.clock.now_ms())
                        .await?;
                }
            }
        }
        Ok((start, bounds.head))
    }

    /// Applies an acknowledgement from a connection.
    pub fn acknowledge(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        biz: &str,
        stream: &str,
        seq: u64,
    ) -> bool {
        self.hub.ack(self, conn, biz, stream, seq)
    }

    /// Deletes expired data and old idempotence keys of every app.
    pub async fn expire(&self) -> Result<u64> {
        let now = self.clock.now_ms();
        let mut removed = 0;
        for app_id in self.log.apps_with_data().await? {
            let types = self.biz_types_of(&app_id).await?;
            let cutoffs: Vec<(String, i64)> = types
                .values()
                .map(|biz| {
                    (
                        biz.spec.id.clone(),
                        now - i64::from(biz.spec.retention_days) * 86_400_000,
                    )
                })
                .collect();
            removed += self.log.expire(&app_id, now, &cutoffs).await?;
        }
        Ok(removed)
    }

    /// Counters per biz type over the last `days` days, with the backlog and
    /// the devices following each one on this node.
    pub async fn biz_type_stats(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        days: u32,
    ) -> Result<Vec<BizTypeStats>> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let since_day = self.clock.now_ms().div_euclid(86_400_000) - i64::from(days.max(1)) + 1;
        let totals = self
            .stats
            .totals(self.platform.store(), &access.app_id, since_day)
            .await?;
        let backlog: HashMap<String, u64> = self
            .log
            .backlog(&access.app_id)
            .await?
            .into_iter()
            .collect();
        let mut ids: Vec<String> = self
            .biz_types_of(&access.app_id)
            .await?
            .keys()
            .cloned()
            .collect();
        ids.sort();
        Ok(ids
            .into_iter()
            .map(|id| {
                let [sent, delivered, acknowledged, dropped] =
                    totals.get(&id).copied().unwrap_or_default();
                BizTypeStats {
                    backlog: backlog.get(&id).copied().unwrap_or(0),
                    online_devices: self.hub.followers_of(&access.app_id, &id) as u64,
                    biz_type: id,
                    sent,
                    delivered,
                    acknowledged,
                    dropped,
                }
            })
            .collect())
    }

    /// The app's devices connected to this node (at most `limit`, newest first).
    pub async fn online_devices(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        limit: usize,
    ) -> Result<(usize, Vec<OnlineDevice>)> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let node = &self.hub.settings().node;
        let mut conns: Vec<Arc<Conn>> = self
            .hub
            .connections()
            .into_iter()
            .filter(|conn| *conn.app_id == *access.app_id)
            .collect();
        let total = conns.len();
        conns.sort_by_key(|conn| std::cmp::Reverse(conn.since_ms));
        conns.truncate(limit);
        Ok((
            total,
            conns
                .iter()
                .map(|conn| OnlineDevice {
                    device_id: conn.device_id.to_string(),
                    user_id: conn.user_id.as_deref().map(str::to_owned),
                    connection_id: conn.display_id(node),
                    since: conn.since_ms,
                    node: node.clone(),
                    biz_types: conn.biz_types(),
                })
                .collect(),
        ))
    }

    /// A device's sync points and the oldest data pending on each stream.
    pub async fn device_state(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        device_id: &str,
    ) -> Result<DeviceSyncState> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let now = self.clock.now_ms();
        // Acknowledgements wait up to a flush period in memory; write them
        // first so the page shows what the device acknowledged a moment ago.
        self.log.save_cursors(&self.hub.take_cursors(), now).await?;
        let mut cursors = Vec::new();
        for row in self.log.device_cursors(&access.app_id, device_id).await? {
            let bounds = self
                .log
                .bounds(&access.app_id, &row.biz_type, &row.stream)
                .await?;
            let pending = self
                .log
                .read(
                    &access.app_id,
                    &row.biz_type,
                    &row.stream,
                    row.acked,
                    20,
                    now,
                )
                .await?
                .into_iter()
                .map(|datum| PendingDatum {
                    seq: datum.seq,
                    msg_id: datum.msg_id,
                    third_msg_id: datum.third_msg_id,
                    created_at: datum.created_at,
                    expires_at: datum.expires_at,
                })
                .collect();
            cursors.push(StreamCursor {
                biz_type: row.biz_type,
                stream: row.stream,
                acked: row.acked,
                head: bounds.head,
                floor: bounds.floor,
                attempts: row.attempts,
                pending,
            });
        }
        Ok(DeviceSyncState {
            online: self.hub.connection(&access.app_id, device_id).is_some(),
            device_id: device_id.to_owned(),
            cursors,
        })
    }
}
