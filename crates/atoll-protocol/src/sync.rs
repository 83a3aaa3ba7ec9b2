//! Real-time data sync, like mPaaS's Mobile Sync Service: biz types (channels),
//! sync orders sent by app backends, and the frames of the device connection
//! `/device/v1/connect`.
//!
//! Every persistent datum belongs to one **stream** of a biz type and gets the
//! next sequence number of that stream: `d:<device id>` (device dimension),
//! `u:<user id>` (user dimension) or `g` (the biz type's global stream, stored
//! once for every device). A device acknowledges by `(biz, stream, seq)`; the
//! server keeps that sync point and resumes from it.
//!
//! Frames are JSON text messages with a `t` tag. The client subscribes to the
//! biz types it handles ([`ClientFrame::Subscribe`], with the cursors it
//! persisted), the server answers [`ServerFrame::Subscribed`] and then sends
//! [`ServerFrame::Data`] in sequence order per stream. When a stream's history
//! was trimmed past the device's cursor the server says so
//! ([`ServerFrame::Resync`]) instead of skipping silently.

use crate::device::Platform;
use serde::{Deserialize, Serialize};

/// The WebSocket endpoint of the device connection.
pub const CONNECT_PATH: &str = "/device/v1/connect";
/// Longest payload, in characters (mPaaS MSS: 4096).
pub const MAX_PAYLOAD_CHARS: usize = 4096;
/// Longest `third_msg_id`, in bytes (mPaaS MSS: 100).
pub const MAX_THIRD_MSG_ID_BYTES: usize = 100;
/// Longest biz type id.
pub const MAX_BIZ_TYPE_LEN: usize = 64;
/// Retention of a biz type unless it says otherwise, in days.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// Longest retention, in days.
pub const MAX_RETENTION_DAYS: u32 = 365;
/// Largest backlog threshold (newest N kept).
pub const MAX_BACKLOG_THRESHOLD: u32 = 100_000;
/// A datum delivered this many times without an acknowledgement is dropped.
pub const MAX_REDELIVERIES: u32 = 6;
/// Most biz types a connection subscribes to.
pub const MAX_SUBSCRIPTIONS: usize = 64;
/// The `result_code` of an order that was already accepted before.
pub const DUPLICATED_BIZ_ID: &str = "DUPLICATED_BIZ_ID";
/// The `result_code` of a newly accepted order.
pub const RESULT_OK: &str = "OK";
/// The stream name of a biz type's global stream.
pub const GLOBAL_STREAM: &str = "g";

/// Whom a biz type's data is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Dimension {
    /// A user id (`link_token`): every device bound to the user.
    User,
    /// A device id (`link_token`).
    Device,
}

impl Dimension {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::User => "user",
            Dimension::Device => "device",
        }
    }

    /// The stream of one target of this dimension.
    pub fn stream(self, link_token: &str) -> String {
        match self {
            Dimension::User => format!("u:{link_token}"),
            Dimension::Device => format!("d:{link_token}"),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_retention() -> u32 {
    DEFAULT_RETENTION_DAYS
}

/// A biz type as configured (mPaaS "sync configuration").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BizTypeSpec {
    /// Upper case letters, digits and hyphens, e.g. `ORDER-STATUS`.
    pub id: String,
    /// What the channel carries.
    #[serde(default)]
    pub description: String,
    /// User or device.
    pub dimension: Dimension,
    /// Stored until acknowledged (or until validity/retention ends); when false
    /// data only reaches devices online at the time and is never stored.
    #[serde(default = "default_true")]
    pub persistent: bool,
    /// Keep only the newest N data per target (`None`: keep all).
    #[serde(default)]
    pub backlog_threshold: Option<u32>,
    /// User dimension: a device new to the user (or a reinstall) receives the
    /// retained history; otherwise it starts with data sent after it subscribed.
    #[serde(default)]
    pub multi_device: bool,
    /// Global orders (to every device) are allowed.
    #[serde(default)]
    pub global_allowed: bool,
    /// Days data is kept.
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    /// User dimension: deliver only to devices bound to the user right now.
    #[serde(default)]
    pub user_consistency: bool,
    /// Online (accepting orders and delivering) or offline.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// A stored biz type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BizType {
    /// The configuration.
    #[serde(flatten)]
    pub spec: BizTypeSpec,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
}

/// Which devices of the target may receive an order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryFilter {
    /// Only these platforms (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<Platform>,
    /// Lowest app version (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_min_version: Option<String>,
    /// Highest app version (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_max_version: Option<String>,
}

impl DeliveryFilter {
    /// No restriction.
    pub fn is_empty(&self) -> bool {
        self.platforms.is_empty()
            && self.app_min_version.is_none()
            && self.app_max_version.is_none()
    }
}

/// A sync order for one user or device (mPaaS single sync).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncOrder {
    /// The biz type id.
    pub biz_type: String,
    /// The user id or device id, by the biz type's dimension.
    pub link_token: String,
    /// The sender's id of this datum (≤ 100 bytes), unique per biz type and target.
    pub third_msg_id: String,
    /// The data (≤ 4096 characters).
    pub payload: String,
    /// Seconds the datum stays deliverable (default and cap: the biz type's retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_seconds: Option<u64>,
    /// Which of the target's devices may receive it.
    #[serde(default, flatten)]
    pub filter: DeliveryFilter,
}

/// A sync order for every device of a global biz type (mPaaS global sync).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GlobalSyncOrder {
    /// The biz type id (must allow global orders).
    pub biz_type: String,
    /// The sender's id of this datum, unique per biz type.
    pub third_msg_id: String,
    /// The data (≤ 4096 characters).
    pub payload: String,
    /// Seconds the datum stays deliverable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_seconds: Option<u64>,
    /// Which devices may receive it.
    #[serde(default, flatten)]
    pub filter: DeliveryFilter,
}

/// The answer to a sync order: `OK`, or `DUPLICATED_BIZ_ID` with the id of the
/// datum accepted the first time (a success either way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncOrderAnswer {
    /// [`RESULT_OK`] or [`DUPLICATED_BIZ_ID`].
    pub result_code: String,
    /// Atoll's id of the datum.
    pub msg_id: String,
    /// The stream it belongs to.
    pub stream: String,
    /// Its sequence number in the stream (`0` for a non-persistent biz type).
    pub seq: u64,
}

/// Delivery counters of one biz type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BizTypeStats {
    /// The biz type id.
    pub biz_type: String,
    /// Orders accepted (repeats not counted).
    pub sent: u64,
    /// Data frames written to devices (redeliveries included).
    pub delivered: u64,
    /// Data acknowledged by devices.
    pub acknowledged: u64,
    /// Data given up after too many unacknowledged deliveries, or cut by the backlog threshold.
    pub dropped: u64,
    /// Stored data not yet acknowledged by its target (global streams excluded).
    pub backlog: u64,
    /// Devices connected now with a subscription to the biz type (this node).
    pub online_devices: u64,
}

/// One device connected to this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OnlineDevice {
    /// The device id.
    pub device_id: String,
    /// Its bound user at connect time.
    pub user_id: Option<String>,
    /// Connection id.
    pub connection_id: String,
    /// Connected since (ms).
    pub since: i64,
    /// The node holding the connection.
    pub node: String,
    /// Subscribed biz types.
    pub biz_types: Vec<String>,
}

/// The app's devices connected to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OnlineDevices {
    /// How many are connected (all, not only those listed).
    pub total: u64,
    /// The newest connections first.
    pub devices: Vec<OnlineDevice>,
}

/// A device's sync point and pending data on one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamCursor {
    /// The biz type id.
    pub biz_type: String,
    /// The stream.
    pub stream: String,
    /// Highest acknowledged sequence number.
    pub acked: u64,
    /// The stream's newest sequence number.
    pub head: u64,
    /// Lowest sequence number still stored.
    pub floor: u64,
    /// Unacknowledged deliveries of the next datum.
    pub attempts: u32,
    /// The oldest pending data (at most 20).
    pub pending: Vec<PendingDatum>,
}

/// A datum waiting for a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingDatum {
    /// Sequence number.
    pub seq: u64,
    /// Atoll's id.
    pub msg_id: String,
    /// The sender's id.
    pub third_msg_id: String,
    /// Accepted at (ms).
    pub created_at: i64,
    /// Deliverable until (ms).
    pub expires_at: i64,
}

/// A device's cursors on every stream it has one on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceSyncState {
    /// The device id.
    pub device_id: String,
    /// Connected now (on this node).
    pub online: bool,
    /// One entry per stream.
    pub cursors: Vec<StreamCursor>,
}

/// A cursor the client persisted: the highest sequence it processed on a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCursor {
    /// The stream.
    pub stream: String,
    /// Highest processed sequence number.
    pub seq: u64,
}

/// A biz type the client handles, with what it already has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BizSubscription {
    /// The biz type id.
    pub biz: String,
    /// Persisted cursors (empty on a fresh install).
    #[serde(default)]
    pub cursors: Vec<ClientCursor>,
}

/// A frame from the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Start (or add) delivery of these biz types.
    Subscribe {
        /// The biz types.
        subs: Vec<BizSubscription>,
        /// The signed-in user, for user-dimension biz types without user
        /// consistency (with it, only the user the device is bound to counts).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
    },
    /// Everything up to `seq` on the stream was processed.
    Ack {
        /// The biz type id.
        biz: String,
        /// The stream.
        stream: String,
        /// Highest processed sequence number.
        seq: u64,
    },
    /// These push messages reached the app (see [`crate::push`]).
    PushAck {
        /// Atoll's message ids (≤ 100).
        msg_ids: Vec<String>,
    },
}

/// A subscribed stream and where delivery starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStart {
    /// The biz type id.
    pub biz: String,
    /// The stream.
    pub stream: String,
    /// Delivery continues after this sequence number.
    pub cursor: u64,
    /// The stream's newest sequence number now.
    pub head: u64,
}

/// A biz type the server did not subscribe, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The biz type id.
    pub biz: String,
    /// A stable code (`unknown_biz_type`, `biz_type_offline`, `no_bound_user`, `too_many`).
    pub code: String,
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The connection is ready.
    Welcome {
        /// This connection's id.
        connection_id: String,
        /// Send a ping at least this often (seconds).
        heartbeat_secs: u64,
        /// The server closes a connection silent for this long (seconds).
        idle_timeout_secs: u64,
    },
    /// The answer to a subscribe.
    Subscribed {
        /// Streams now delivered.
        streams: Vec<StreamStart>,
        /// Biz types refused.
        refused: Vec<Refusal>,
    },
    /// One datum.
    Data {
        /// The biz type id.
        biz: String,
        /// The stream.
        stream: String,
        /// Sequence number in the stream (`0`: not persistent, nothing to acknowledge).
        seq: u64,
        /// Atoll's id of the datum (the same on every redelivery).
        id: String,
        /// The payload.
        payload: String,
        /// Accepted at (ms).
        created_at: i64,
    },
    /// Data `from..=to` of the stream is gone (trimmed by the backlog threshold or
    /// retention, or dropped after too many deliveries): reload the state from the
    /// app's own backend. Delivery goes on after `to`.
    Resync {
        /// The biz type id.
        biz: String,
        /// The stream.
        stream: String,
        /// First missing sequence number.
        from: u64,
        /// Last missing sequence number.
        to: u64,
        /// `trimmed`, `dropped` or `reset` (the server's history is behind the client's cursor).
        reason: String,
    },
    /// The server is going away: reconnect (elsewhere) after a pause.
    Reconnect {
        /// Wait at least this long (ms), with jitter.
        after_ms: u64,
        /// Why.
        reason: String,
    },
    /// A push notification (see [`crate::push`]); acknowledge it with `push_ack`.
    Push(crate::push::PushFrame),
    /// The sender revoked this push message: remove the notification if shown.
    PushRevoke {
        /// Atoll's message id.
        msg_id: String,
    },
    /// A frame was not understood; the connection stays open.
    Error {
        /// A stable code.
        code: String,
        /// Human text.
        detail: String,
    },
}
