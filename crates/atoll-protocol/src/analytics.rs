//! Analytics on the admin API: report queries and answers, the event registry,
//! saved funnels, settings and privacy requests.
//!
//! Dates are UTC calendar days written `YYYY-MM-DD`; ranges include both ends.

use crate::events::TrackedEvent;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The filters every report takes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams, utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ReportFilter {
    /// First day (`YYYY-MM-DD`); default: 6 days before `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Last day (`YYYY-MM-DD`); default: today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Only devices of this platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Only events from this app version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
}

/// Whether a report counts devices or accounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CountBy {
    /// Devices (installs).
    #[default]
    Device,
    /// Accounts (`user_id`); events without a user are left out.
    User,
}

/// Cohort and trend granularity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// Hours (trends only).
    Hour,
    /// Days.
    #[default]
    Day,
    /// Weeks starting on Monday.
    Week,
    /// Calendar months.
    Month,
}

/// One day of the overview.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OverviewDay {
    /// The day.
    pub date: String,
    /// Devices seen for the first time.
    pub new_devices: u64,
    /// Devices with an event (DAU).
    pub active_devices: u64,
    /// Accounts seen for the first time.
    pub new_users: u64,
    /// Accounts with an event.
    pub active_users: u64,
    /// Distinct devices over the 7 days ending here (WAU).
    pub wau: u64,
    /// Distinct devices over the 30 days ending here (MAU).
    pub mau: u64,
    /// Devices ever seen up to and including this day.
    pub cumulative_devices: u64,
    /// `$launch` events.
    pub launches: u64,
    /// Distinct sessions.
    pub sessions: u64,
    /// Mean session length (first to last event of a session), ms.
    pub avg_session_ms: u64,
}

/// One day of the active-users report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActiveDay {
    /// The day.
    pub date: String,
    /// Devices seen for the first time.
    pub new_devices: u64,
    /// Devices with an event (DAU).
    pub active_devices: u64,
    /// Accounts seen for the first time.
    pub new_users: u64,
    /// Accounts with an event.
    pub active_users: u64,
    /// Distinct devices over the 7 days ending here (WAU).
    pub wau: u64,
    /// Distinct devices over the 30 days ending here (MAU).
    pub mau: u64,
    /// Devices ever seen up to and including this day.
    pub cumulative_devices: u64,
}

/// Distinct devices and accounts over the whole range.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActiveTotals {
    /// Distinct active devices over the range (UV).
    pub active_devices: u64,
    /// Distinct active accounts over the range.
    pub active_users: u64,
    /// New devices in the range.
    pub new_devices: u64,
    /// New accounts in the range.
    pub new_users: u64,
}

/// Active and new devices and accounts (DAU, WAU, MAU, UV): the part of the
/// overview answered from the per-day sets alone, without reading events.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActiveReport {
    /// One entry per day of the range.
    pub days: Vec<ActiveDay>,
    /// Over the whole range.
    pub totals: ActiveTotals,
}

/// Totals over the whole range.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OverviewTotals {
    /// Distinct active devices over the range.
    pub active_devices: u64,
    /// Distinct active accounts over the range.
    pub active_users: u64,
    /// New devices in the range.
    pub new_devices: u64,
    /// New accounts in the range.
    pub new_users: u64,
    /// `$launch` events.
    pub launches: u64,
    /// Distinct sessions.
    pub sessions: u64,
    /// Mean session length, ms.
    pub avg_session_ms: u64,
    /// All events.
    pub events: u64,
}

/// Active and new devices by the values of one dimension.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Split {
    /// `platform`, `app_version` or `channel`.
    pub dimension: String,
    /// Values, most active first.
    pub values: Vec<SplitValue>,
}

/// One value of a split.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SplitValue {
    /// The value (`(unknown)` when devices did not report it).
    pub value: String,
    /// Distinct active devices over the range.
    pub active_devices: u64,
    /// Active devices that were new in the range.
    pub new_devices: u64,
}

/// The overview report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OverviewReport {
    /// One entry per day of the range.
    pub days: Vec<OverviewDay>,
    /// Over the whole range.
    pub totals: OverviewTotals,
    /// By platform, app version and channel.
    pub splits: Vec<Split>,
}

/// One minute of the real-time view.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RealtimeMinute {
    /// Start of the minute, ms since the epoch.
    pub minute: i64,
    /// Events received.
    pub events: u64,
    /// Distinct devices.
    pub devices: u64,
}

/// The last 30 minutes by minute (receive time).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RealtimeReport {
    /// 30 entries, oldest first.
    pub minutes: Vec<RealtimeMinute>,
    /// Distinct devices over the 30 minutes.
    pub active_devices: u64,
    /// Events over the 30 minutes.
    pub events: u64,
}

/// Retention query parameters (with [`ReportFilter`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams, utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct RetentionQuery {
    /// Devices or accounts.
    #[serde(default)]
    pub by: CountBy,
    /// Cohort size: day, week or month.
    #[serde(default)]
    pub granularity: Granularity,
    /// Periods after the cohort's first (default 7 days, 8 weeks or 6 months; ≤ 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub periods: Option<u32>,
}

/// One cohort row of the heat map.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cohort {
    /// First day of the cohort period.
    pub start: String,
    /// New devices or accounts in the period.
    pub size: u64,
    /// Of those, how many were active in period N after (index 0 = N=1); `None`
    /// where period N has not ended (or begun) yet.
    pub retained: Vec<Option<u64>>,
}

/// The retention report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionReport {
    /// Devices or accounts.
    pub by: CountBy,
    /// Cohort granularity.
    pub granularity: Granularity,
    /// Cohorts, oldest first.
    pub cohorts: Vec<Cohort>,
}

/// A labelled count.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Bucket {
    /// What the bucket holds (`10-30 s`, `3-5`, ...).
    pub label: String,
    /// How many.
    pub count: u64,
}

/// Activity in one hour of the day (UTC).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HourActivity {
    /// 0-23.
    pub hour: u32,
    /// Events.
    pub events: u64,
    /// Distinct devices.
    pub devices: u64,
}

/// The behaviour report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BehaviourReport {
    /// Sessions by length.
    pub session_length: Vec<Bucket>,
    /// Device-days by number of launches.
    pub launches_per_day: Vec<Bucket>,
    /// Events and devices by hour of day.
    pub active_hours: Vec<HourActivity>,
}

/// One page's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PageStats {
    /// The page.
    pub page: String,
    /// Page views.
    pub views: u64,
    /// Distinct devices.
    pub visitors: u64,
    /// Mean stay, ms.
    pub avg_stay_ms: u64,
    /// Sessions whose first page view is this page.
    pub entries: u64,
    /// Sessions whose last page view is this page.
    pub exits: u64,
    /// Entries / sessions that viewed the page.
    pub entry_rate: f64,
    /// Exits / sessions that viewed the page.
    pub exit_rate: f64,
}

/// The pages report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PagesReport {
    /// Pages by views.
    pub pages: Vec<PageStats>,
}

/// Access-path query (with [`ReportFilter`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams, utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct PathQuery {
    /// The page paths start from (required).
    #[serde(default)]
    pub page: String,
    /// Steps to follow (1-4, default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// Next pages kept per page (1-20, default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<u32>,
}

/// One link of the flow diagram.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PathLink {
    /// Step of the `from` page (0 = the start page).
    pub step: u32,
    /// The page left.
    pub from: String,
    /// The next page, or `(exit)` when the session ended there.
    pub to: String,
    /// How many times.
    pub count: u64,
}

/// Access paths from a page.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PathReport {
    /// The start page.
    pub page: String,
    /// Views of the start page.
    pub views: u64,
    /// Links, by step then count.
    pub links: Vec<PathLink>,
}

/// A condition on an attribute.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttributeFilter {
    /// Attribute name.
    pub name: String,
    /// `eq` (default) or `ne`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// The value, as text.
    pub value: String,
}

/// Events report parameters (with [`ReportFilter`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams, utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct EventQuery {
    /// Attribute conditions `name=value` or `name!=value`, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "where")]
    pub where_: Option<String>,
    /// Group by this attribute (top N values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// Values kept when grouping (1-100, default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<u32>,
    /// Trend interval: `hour` or `day` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Granularity>,
}

/// Counts of one event name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventStats {
    /// The event name.
    pub event_id: String,
    /// Occurrences.
    pub count: u64,
    /// Distinct devices.
    pub devices: u64,
    /// Distinct accounts.
    pub users: u64,
    /// Whether the name is declared in the registry (built-ins always are).
    pub registered: bool,
}

/// All events of the range.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventsReport {
    /// By count.
    pub events: Vec<EventStats>,
}

/// One point of a trend.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrendPoint {
    /// Start of the hour or day (`YYYY-MM-DD` or `YYYY-MM-DDTHH:00`).
    pub at: String,
    /// Occurrences.
    pub count: u64,
    /// Distinct devices.
    pub devices: u64,
}

/// One value of a group-by.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupValue {
    /// The attribute value (`(none)` when absent).
    pub value: String,
    /// Occurrences.
    pub count: u64,
    /// Distinct devices.
    pub devices: u64,
}

/// One event in detail.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventDetail {
    /// Totals.
    pub stats: EventStats,
    /// By hour or day.
    pub trend: Vec<TrendPoint>,
    /// By the values of `group_by`, when asked.
    pub groups: Vec<GroupValue>,
}

/// A funnel step: an event, optionally with attribute conditions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FunnelStep {
    /// The event name.
    pub event_id: String,
    /// All must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<AttributeFilter>,
}

/// A funnel definition.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FunnelDefinition {
    /// Ordered steps (2-10).
    pub steps: Vec<FunnelStep>,
    /// Time allowed from the first step to the last, seconds (60 s – 30 days).
    pub window_secs: u64,
    /// Devices or accounts.
    #[serde(default)]
    pub by: CountBy,
}

/// A funnel to compute now, with the report filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FunnelRequest {
    /// The funnel.
    #[serde(flatten)]
    pub funnel: FunnelDefinition,
    /// Range and filters.
    #[serde(flatten)]
    pub filter: ReportFilter,
}

/// How many reached one step.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FunnelStepResult {
    /// The step's event.
    pub event_id: String,
    /// Devices or accounts that reached this step in order within the window.
    pub count: u64,
    /// `count` / previous step's count (1 for the first step).
    pub conversion_from_previous: f64,
    /// `count` / first step's count.
    pub conversion_overall: f64,
}

/// A funnel's answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FunnelReport {
    /// Per step.
    pub steps: Vec<FunnelStepResult>,
    /// Last step / first step.
    pub overall_conversion: f64,
}

/// A saved funnel.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SavedFunnel {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The definition.
    #[serde(flatten)]
    pub funnel: FunnelDefinition,
    /// When it was saved, ms.
    pub created_at: i64,
}

/// Saves a funnel.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateFunnel {
    /// Name (1-80 characters).
    pub name: String,
    /// The definition.
    #[serde(flatten)]
    pub funnel: FunnelDefinition,
}

/// Active devices by the values of one dimension.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DistributionReport {
    /// `app_version`, `os_version`, `platform`, `model`, `channel`, `region` or `network`.
    pub dimension: String,
    /// Values by devices.
    pub values: Vec<DistributionValue>,
}

/// One value of a distribution.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DistributionValue {
    /// The value.
    pub value: String,
    /// Distinct devices.
    pub devices: u64,
    /// Share of all active devices in the range, 0-1.
    pub share: f64,
}

/// One event of a timeline.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEvent {
    /// The event uuid.
    pub uuid: String,
    /// The event name.
    pub event_id: String,
    /// Client time, ms.
    pub time: i64,
    /// Device.
    pub device_id: String,
    /// Account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// Duration, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// App version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// Attributes as text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// Timeline parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams, utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct TimelineQuery {
    /// A device id (this or `user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// A user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Newest events kept (1-1000, default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A device's or user's recent events, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineReport {
    /// Events.
    pub events: Vec<TimelineEvent>,
}

/// The type of a declared attribute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AttributeType {
    /// Text.
    #[default]
    String,
    /// A JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
}

impl AttributeType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeType::String => "string",
            AttributeType::Number => "number",
            AttributeType::Boolean => "boolean",
        }
    }
}

/// A declared attribute of an event.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttributeDefinition {
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: AttributeType,
    /// What it means.
    #[serde(default)]
    pub description: String,
}

/// A declared event (create or replace).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventDefinition {
    /// The event name.
    pub event_id: String,
    /// A name for people.
    #[serde(default)]
    pub display_name: String,
    /// What it means.
    #[serde(default)]
    pub description: String,
    /// Declared attributes (≤ 25).
    #[serde(default)]
    pub attributes: Vec<AttributeDefinition>,
}

/// Analytics settings of an app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnalyticsSettings {
    /// Refuse events not declared in the registry (`unregistered_event`).
    pub reject_unregistered: bool,
    /// Days of events kept (1-3650).
    pub retention_days: u32,
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        AnalyticsSettings {
            reject_unregistered: false,
            retention_days: 365,
        }
    }
}

/// Which device or user a privacy request is about.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrivacyRequest {
    /// A device id (this or `user_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// A user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// The outcome of a deletion.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeletionReport {
    /// Events deleted.
    pub deleted: u64,
}

/// The device a backfill speaks for (admin-only; for demo data and imports).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackfillDevice {
    /// Device id.
    pub device_id: String,
    /// Account bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// OS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// App version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// Channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// Past events of one device, accepted with their own timestamps (no age limit).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackfillBatch {
    /// The device and its context.
    pub device: BackfillDevice,
    /// The events (same limits as the device API).
    pub events: Vec<TrackedEvent>,
}
