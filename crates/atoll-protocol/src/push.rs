//! Push notifications, like mPaaS's Mobile Push Service: app backends send
//! **simple**, **template**, **multiple** and **broadcast** pushes; each send is
//! a **task** of **messages** (one per target), and each message is delivered
//! to one or more devices (a user target reaches every bound device, or only
//! the most recent one). A device online on Atoll's own connection gets the
//! message there and acknowledges it; otherwise a vendor channel (APNs, FCM,
//! HMS) carries it. Offline devices without a vendor token receive unexpired
//! messages when they reconnect.
//!
//! On the device connection a message is a [`PushFrame`] (frame `t: "push"`),
//! acknowledged with the client frame `push_ack`; the SDK reports opens (and
//! arrivals through a vendor) with `POST /device/v1/push/report`.

use crate::device::{Platform, PushChannel};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Limits of the push API (mPaaS MPS, FCM and APNs where they are stricter).
pub mod limits {
    /// Targets of one simple or template push (mPaaS: 10).
    pub const MAX_SIMPLE_TARGETS: usize = 10;
    /// Targets of one multiple push (mPaaS: 100).
    pub const MAX_MULTIPLE_TARGETS: usize = 100;
    /// Extra key/values of one message (mPaaS: 20, code 3035).
    pub const MAX_EXTRAS: usize = 20;
    /// Longest validity: 15 days, the longest TTL every vendor (HMS) honours.
    pub const MAX_EXPIRES_SECS: u64 = 15 * 24 * 3600;
    /// Shortest validity.
    pub const MIN_EXPIRES_SECS: u64 = 60;
    /// Messages can be revoked this long after the send (mPaaS: 7 days).
    pub const REVOKE_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;
    /// Longest span of a stats query, in days (mPaaS: 90).
    pub const MAX_STATS_DAYS: u32 = 90;
    /// Longest template name (mPaaS: 200 characters of `[A-Za-z0-9_]`).
    pub const MAX_TEMPLATE_NAME: usize = 200;
    /// Longest template description.
    pub const MAX_DESCRIPTION: usize = 200;
    /// Longest title, in characters.
    pub const MAX_TITLE_CHARS: usize = 200;
    /// Longest body, in characters.
    pub const MAX_BODY_CHARS: usize = 2000;
    /// Longest business message id, in bytes.
    pub const MAX_MSG_KEY_BYTES: usize = 128;
    /// Longest collapse key, in bytes (APNs `apns-collapse-id`: 64).
    pub const MAX_COLLAPSE_KEY_BYTES: usize = 64;
    /// Largest rendered message (title, body, extras, click), in bytes: what
    /// fits every vendor's 4 KB payload with room for its envelope.
    pub const MAX_MESSAGE_BYTES: usize = 3584;
    /// Scheduled sends at most this far ahead, in days.
    pub const MAX_SCHEDULE_AHEAD_DAYS: i64 = 90;
    /// Pushes per device a fatigue cap may allow at most per window.
    pub const MAX_FATIGUE_CAP: u32 = 1000;
}

/// Whom a target id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TargetType {
    /// A device id.
    #[default]
    Device,
    /// A user id: every device bound to the user.
    User,
    /// A user id: only the device the user used most recently.
    UserRecent,
}

impl TargetType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::Device => "device",
            TargetType::User => "user",
            TargetType::UserRecent => "user_recent",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<TargetType> {
        [TargetType::Device, TargetType::User, TargetType::UserRecent]
            .into_iter()
            .find(|t| t.as_str() == text)
    }
}

/// The send types (mPaaS: simple, template, multiple, broadcast).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SendKind {
    /// Title and body, ≤ 10 targets.
    Simple,
    /// A template and its values, ≤ 10 targets.
    Template,
    /// A template with values per target, ≤ 100 targets.
    Multiple,
    /// Every matching device of an app.
    Broadcast,
}

impl SendKind {
    /// Every kind.
    pub const ALL: [SendKind; 4] = [
        SendKind::Simple,
        SendKind::Template,
        SendKind::Multiple,
        SendKind::Broadcast,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SendKind::Simple => "simple",
            SendKind::Template => "template",
            SendKind::Multiple => "multiple",
            SendKind::Broadcast => "broadcast",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<SendKind> {
        SendKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// How the notification is drawn (mPaaS `pushStyle`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PushStyle {
    /// The platform's default.
    #[default]
    Default,
    /// Expanded long text.
    BigText,
    /// With a picture.
    Image {
        /// The picture (https URL).
        url: String,
    },
}

/// What tapping the notification does (mPaaS `pushAction`, `uri`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ClickAction {
    /// Open a web URL.
    Url(String),
    /// Open an app deep link.
    DeepLink(String),
    /// Start an Android intent (URI form).
    Intent(String),
}

impl ClickAction {
    /// The URL, link or intent.
    pub fn value(&self) -> &str {
        match self {
            ClickAction::Url(v) | ClickAction::DeepLink(v) | ClickAction::Intent(v) => v,
        }
    }
}

/// A recurring schedule: one send per matching day at `time`, between `start`
/// and `end` (mPaaS loop strategy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recurrence {
    /// `daily` or `weekly`.
    pub every: RecurrenceUnit,
    /// Weekly: the days, 1 = Monday … 7 = Sunday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<u8>,
    /// Local time of day, `HH:MM`.
    pub time: String,
    /// The local time's offset from UTC, in minutes (e.g. 480 for UTC+8).
    #[serde(default)]
    pub utc_offset_minutes: i32,
    /// First instant a send may happen (ms).
    pub start_ms: i64,
    /// Last instant a send may happen (ms).
    pub end_ms: i64,
}

/// The unit of a recurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RecurrenceUnit {
    /// Every day.
    Daily,
    /// On the listed weekdays.
    Weekly,
}

/// Options every send type shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendOptions {
    /// A name for the task in the console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_name: Option<String>,
    /// Seconds the message stays deliverable (required; 60 s to 15 days).
    pub expires_in_secs: u64,
    /// Data only: no alert; the app reads `extras` (mPaaS `silent`).
    #[serde(default)]
    pub silent: bool,
    /// How it is drawn.
    #[serde(default)]
    pub style: PushStyle,
    /// What a tap does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click: Option<ClickAction>,
    /// App-defined key/values (≤ 20).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extras: BTreeMap<String, String>,
    /// Messages with the same key replace each other (≤ 64 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_key: Option<String>,
    /// Normal priority (delivered when convenient) instead of high.
    #[serde(default)]
    pub low_priority: bool,
    /// Vendor pass-through options by channel (`apns`, `fcm`, `hms`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub vendor_options: BTreeMap<String, serde_json::Value>,
    /// Send at this instant (ms) instead of now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at_ms: Option<i64>,
    /// Send repeatedly (the message expires `expires_in_secs` after each send).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
}

/// One target of a simple or template push, with its business message id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushTarget {
    /// The device or user id.
    pub target: String,
    /// The sender's id of this message, unique per app: a repeat with the same
    /// id is not sent again (mPaaS `targetMsgkey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_key: Option<String>,
}

/// `POST …/push/simple`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimplePush {
    /// Whom the targets name.
    #[serde(default)]
    pub target_type: TargetType,
    /// 1 to 10 targets.
    pub targets: Vec<PushTarget>,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Body.
    #[serde(default)]
    pub body: String,
    /// Everything else.
    #[serde(flatten)]
    pub options: SendOptions,
}

/// `POST …/push/template`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplatePush {
    /// Whom the targets name.
    #[serde(default)]
    pub target_type: TargetType,
    /// 1 to 10 targets.
    pub targets: Vec<PushTarget>,
    /// The template's name.
    pub template: String,
    /// Values of its `#name#` placeholders.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Everything else.
    #[serde(flatten)]
    pub options: SendOptions,
}

/// One target of a multiple push, with its own values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MultipleTarget {
    /// The device or user id.
    pub target: String,
    /// The sender's id of this message, unique per app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_key: Option<String>,
    /// Values of the template's placeholders for this target.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Extras for this target (added to the shared ones; ≤ 20 in all).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extras: BTreeMap<String, String>,
}

/// `POST …/push/multiple`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MultiplePush {
    /// Whom the targets name.
    #[serde(default)]
    pub target_type: TargetType,
    /// The template's name.
    pub template: String,
    /// 1 to 100 targets.
    pub targets: Vec<MultipleTarget>,
    /// Everything else.
    #[serde(flatten)]
    pub options: SendOptions,
}

/// Which devices of a broadcast, by binding (mPaaS `pushStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Binding {
    /// Devices bound to a user (the mPaaS default).
    #[default]
    Bound,
    /// Devices not bound to any user.
    Unbound,
    /// Every device.
    All,
}

impl Binding {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::Bound => "bound",
            Binding::Unbound => "unbound",
            Binding::All => "all",
        }
    }
}

/// `POST …/push/broadcast`: every matching device of the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BroadcastPush {
    /// Only this platform (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Bound, unbound or all devices.
    #[serde(default)]
    pub binding: Binding,
    /// Only devices matching this target rule (text form), e.g.
    /// `app_version >= "2.0" and channel in ["store"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Title (or use `template`).
    #[serde(default)]
    pub title: String,
    /// Body (or use `template`).
    #[serde(default)]
    pub body: String,
    /// A template instead of title and body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The template's values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
    /// The sender's id of this broadcast, unique per app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_key: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub options: SendOptions,
}

/// The answer to a send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendResult {
    /// The task's id.
    pub task_id: String,
    /// The task's state (`sending`, `scheduled`, `expanding`).
    pub state: String,
    /// One entry per target, in request order (a broadcast has one).
    pub messages: Vec<MessageResult>,
}

/// One target's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageResult {
    /// The target as sent (empty for a broadcast).
    pub target: String,
    /// The business message id, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_key: Option<String>,
    /// Atoll's message id.
    pub msg_id: String,
    /// Devices the message goes to (0 when the target has none yet).
    pub devices: u64,
    /// `OK`, or `DUPLICATED_BIZ_ID` when the business id was sent before
    /// (then `msg_id` is the first send's, and nothing is sent again).
    pub result_code: String,
}

/// A template (mPaaS MPS templates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateSpec {
    /// `[A-Za-z0-9_]`, ≤ 200 characters, unique per app.
    pub name: String,
    /// What it is for (≤ 200 characters).
    #[serde(default)]
    pub description: String,
    /// Title, with `#name#` placeholders.
    pub title: String,
    /// Body, with `#name#` placeholders.
    pub body: String,
    /// Click URL or deep link, with `#name#` placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A stored template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Template {
    /// The template.
    #[serde(flatten)]
    pub spec: TemplateSpec,
    /// Its placeholders, in order of first use.
    pub placeholders: Vec<String>,
    /// Created at (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
}

/// `PUT …/push/channels/{channel}`: a vendor's credentials for the app. They are
/// stored encrypted and never returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelCredentials {
    /// The vendor's credentials (APNs: `team_id`, `key_id`, `private_key_pem`,
    /// `topic`, `sandbox`; FCM: the service-account JSON; HMS: `app_id`,
    /// `client_secret`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub credentials: serde_json::Value,
    /// Sends per second at most (0: the server's default).
    #[serde(default)]
    pub rate_per_sec: u32,
    /// Requests in flight at most (0: the server's default).
    #[serde(default)]
    pub concurrency: u32,
}

/// A configured vendor channel, without secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelInfo {
    /// The vendor.
    pub channel: PushChannel,
    /// Non-secret identifiers (team and key id, project id, app id).
    pub summary: String,
    /// Sends per second at most (0: default).
    pub rate_per_sec: u32,
    /// Requests in flight at most (0: default).
    pub concurrency: u32,
    /// Last change (ms).
    pub updated_at: i64,
}

/// Per-app push settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushSettings {
    /// Notifications per device per hour at most (0: no cap).
    #[serde(default)]
    pub cap_per_hour: u32,
    /// Per day (0: no cap).
    #[serde(default)]
    pub cap_per_day: u32,
    /// Per week (0: no cap).
    #[serde(default)]
    pub cap_per_week: u32,
    /// Delivery receipts are POSTed here (arrived, opened, failed), signed
    /// with `X-Atoll-Signature` (HMAC-SHA256 of the body with the secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_url: Option<String>,
    /// The receipt signing secret (write only; answers show `"set"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_secret: Option<String>,
}

/// `POST …/push/revoke`: one message (by Atoll id or business id) or a whole task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokeRequest {
    /// Atoll's message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// The business message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_key: Option<String>,
    /// A task: every message of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

/// What a revoke did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokeResult {
    /// Deliveries stopped before they were sent.
    pub recalled: u64,
    /// Sent notifications withdrawn on the device (own connection, APNs, HMS).
    pub withdrawn: u64,
    /// Sent notifications the vendor cannot withdraw (FCM).
    pub not_revocable: u64,
}

/// Delivery counters (mPaaS core indexes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushCounts {
    /// Deliveries planned (one per device).
    pub targeted: u64,
    /// Handed to a channel.
    pub sent: u64,
    /// Acknowledged by the device (own connection or SDK report).
    pub arrived: u64,
    /// Opened by the user.
    pub opened: u64,
    /// Dismissed by the user.
    pub ignored: u64,
    /// Failed for good (see `failures`).
    pub failed: u64,
    /// Not sent: over the app's fatigue cap.
    pub capped: u64,
    /// Not delivered before expiry.
    pub expired: u64,
    /// Recalled or withdrawn.
    pub revoked: u64,
    /// Replaced before delivery by a newer message with the same collapse key.
    pub collapsed: u64,
    /// Waiting: for a device to come online, or for a retry.
    pub waiting: u64,
}

/// A task (one send).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushTask {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Send type.
    pub kind: SendKind,
    /// `scheduled`, `expanding`, `sending`, `done`, `cancelled`.
    pub state: String,
    /// Title (of the first message).
    pub title: String,
    /// Body (of the first message).
    pub body: String,
    /// Created at (ms).
    pub created_at: i64,
    /// Sent (or to be sent) at (ms).
    pub send_at: i64,
    /// Expires at (ms).
    pub expires_at: i64,
    /// The recurring schedule this task was made by, or is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
    /// The parent recurring task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Counters.
    pub counts: PushCounts,
}

/// A task with its breakdowns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushTaskDetail {
    /// The task.
    #[serde(flatten)]
    pub task: PushTask,
    /// Counters per channel (`atoll` is Atoll's own connection).
    pub by_channel: BTreeMap<String, PushCounts>,
    /// Failures by reason.
    pub failures: BTreeMap<String, u64>,
}

/// One delivery of a message to one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryStatus {
    /// The message.
    pub msg_id: String,
    /// The task.
    pub task_id: String,
    /// The device.
    pub device_id: String,
    /// Title.
    pub title: String,
    /// `pending`, `waiting`, `sending`, `sent`, `arrived`, `opened`, `ignored`,
    /// `failed`, `capped`, `expired`, `revoked`, `collapsed`.
    pub state: String,
    /// The channel used or planned (`atoll`, `apns`, `fcm`, `hms`).
    pub channel: String,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Send attempts.
    pub attempts: u32,
    /// Created at (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
}

/// A day (or total) of the core indexes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushStatsDay {
    /// UTC day (`YYYY-MM-DD`), or `total`.
    pub day: String,
    /// Counters.
    #[serde(flatten)]
    pub counts: PushCounts,
}

/// `GET …/push/stats`: core indexes over a date range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushStats {
    /// Per day, oldest first.
    pub days: Vec<PushStatsDay>,
    /// The sum.
    pub total: PushCounts,
    /// Arrived / sent.
    pub arrival_rate: f64,
    /// Opened / arrived.
    pub open_rate: f64,
    /// Ignored / arrived.
    pub ignore_rate: f64,
}

/// A push message on the device connection (frame `t: "push"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushFrame {
    /// Atoll's message id: acknowledge it; the same on every redelivery.
    pub msg_id: String,
    /// The task.
    pub task_id: String,
    /// Title.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// Body.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// Data only (no alert).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub silent: bool,
    /// How to draw it.
    #[serde(default)]
    pub style: PushStyle,
    /// What a tap does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click: Option<ClickAction>,
    /// App-defined key/values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extras: BTreeMap<String, String>,
    /// Replaces an earlier notification with the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_key: Option<String>,
    /// Do not show after this instant (ms).
    pub expires_at: i64,
}

/// What the device reports about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PushEvent {
    /// It reached the app (through a vendor; Atoll's connection acks itself).
    Arrived,
    /// The user opened it.
    Opened,
    /// The user dismissed it.
    Ignored,
}

/// `POST /device/v1/push/report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushReport {
    /// The messages (≤ 100).
    pub msg_ids: Vec<String>,
    /// What happened.
    pub event: PushEvent,
}

/// Header of a receipt POST: `sha256=<hex>` (see [`receipt_signature`]).
pub const RECEIPT_SIGNATURE_HEADER: &str = "x-atoll-signature";
/// Header of a receipt POST: the signing time, in seconds.
pub const RECEIPT_TIMESTAMP_HEADER: &str = "x-atoll-timestamp";

/// The signature of a receipt POST: `sha256=` and the hex HMAC-SHA256, keyed
/// with the app's receipt secret, of `"<timestamp>.<body>"`.
pub fn receipt_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One delivery receipt as POSTed to the app's `receipt_url` (in
/// `{"receipts": [...]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Atoll's message id.
    pub msg_id: String,
    /// The task.
    pub task_id: String,
    /// The device.
    pub device_id: String,
    /// `sent`, `arrived`, `opened`, `ignored` or `failed`.
    pub event: String,
    /// The channel (`atoll`, `apns`, `fcm`, `hms`).
    pub channel: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When (ms).
    pub at: i64,
}

/// The body of a receipt POST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptBatch {
    /// The receipts, oldest first.
    pub receipts: Vec<Receipt>,
}
