//! Turning a posted batch into stored rows: validation against the limits and the
//! registry, the time rule, and the context the server adds.
//!
//! A batch is accepted or refused as a unit: the first violation refuses it, with
//! the index of the event and the rule it broke.
//!
//! **Time rule.** Client clocks drift and offline queues hold events for days.
//! An event dated more than `max_future_ms` after the server's clock is clamped to
//! the receive time (its order within the batch is kept by the clamp being the
//! same for all of them). An event older than `max_age_ms` refuses the batch with
//! `event_time_out_of_range`; the SDK drops such events from its queue before
//! sending. The admin backfill path has no age limit.

use crate::registry::Registry;
use atoll_events::EventRow;
use atoll_protocol::admin::Device;
use atoll_protocol::events::{limits, EventBatch, TrackedEvent, BUILT_IN_EVENTS, LOGIN, LOGOUT};
use atoll_protocol::ErrorCode;
use std::sync::Arc;

/// The ingest limits (DESIGN §6) and the time rule.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// Events per batch.
    pub max_events: usize,
    /// Custom attributes per event.
    pub max_attributes: usize,
    /// Characters in event and attribute names.
    pub max_name_chars: usize,
    /// Characters in attribute values.
    pub max_value_chars: usize,
    /// Characters in pages and referrers (URLs run longer than values).
    pub max_page_chars: usize,
    /// Future tolerance before clamping, ms.
    pub max_future_ms: i64,
    /// Oldest accepted event on the device API, ms.
    pub max_age_ms: i64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_events: limits::MAX_EVENTS_PER_BATCH,
            max_attributes: limits::MAX_ATTRIBUTES,
            max_name_chars: limits::MAX_NAME_CHARS,
            max_value_chars: limits::MAX_VALUE_CHARS,
            max_page_chars: 256,
            max_future_ms: 10 * 60 * 1000,
            max_age_ms: 7 * 86_400_000,
        }
    }
}

/// A refused batch: the code and what to tell the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The catalogue code.
    pub code: ErrorCode,
    /// The detail, naming the event index and field.
    pub detail: String,
}

fn refuse(code: ErrorCode, detail: String) -> Refusal {
    Refusal { code, detail }
}

/// Where the batch comes from, which decides the time rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A device, live: the age limit applies.
    Device,
    /// The admin backfill: past events keep their time.
    Backfill,
}

/// The device context added to every row.
pub type Profile = Device;

fn check_name(index: usize, what: &str, name: &str, limits: &IngestLimits) -> Result<(), Refusal> {
    let chars = name.chars().count();
    if chars == 0 {
        return Err(refuse(
            ErrorCode::InvalidEvent,
            format!("events[{index}]: the {what} is empty"),
        ));
    }
    if chars > limits.max_name_chars {
        return Err(refuse(
            ErrorCode::NameTooLong,
            format!(
                "events[{index}]: the {what} '{}…' has {chars} characters; at most {} are allowed",
                name.chars().take(20).collect::<String>(),
                limits.max_name_chars
            ),
        ));
    }
    let valid = name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(refuse(
            ErrorCode::InvalidEvent,
            format!("events[{index}]: the {what} '{name}' may hold only letters, digits, '_', '.' and '-'"),
        ));
    }
    Ok(())
}

fn check_text(index: usize, field: &str, value: Option<&str>, max: usize) -> Result<(), Refusal> {
    if let Some(value) = value {
        let chars = value.chars().count();
        if chars > max {
            return Err(refuse(
                ErrorCode::ValueTooLong,
                format!(
                    "events[{index}].{field} has {chars} characters; at most {max} are allowed"
                ),
            ));
        }
    }
    Ok(())
}

fn check_event(
    index: usize,
    event: &TrackedEvent,
    registry: &Registry,
    limits: &IngestLimits,
) -> Result<(u128, bool), Refusal> {
    let uuid = uuid::Uuid::try_parse(&event.uuid).map_err(|_| {
        refuse(
            ErrorCode::InvalidEvent,
            format!(
                "events[{index}].uuid '{}' is not a UUID",
                event.uuid.chars().take(40).collect::<String>()
            ),
        )
    })?;
    let built_in = BUILT_IN_EVENTS.contains(&event.event_id.as_str());
    if !built_in {
        if event.event_id.starts_with('$') {
            return Err(refuse(
                ErrorCode::InvalidEvent,
                format!(
                    "events[{index}].event_id '{}' starts with '$', which is reserved for built-in events ({})",
                    event.event_id,
                    BUILT_IN_EVENTS.join(", ")
                ),
            ));
        }
        check_name(index, "event_id", &event.event_id, limits)?;
    }
    check_text(
        index,
        "session_id",
        event.session_id.as_deref(),
        limits.max_value_chars,
    )?;
    check_text(index, "page", event.page.as_deref(), limits.max_page_chars)?;
    check_text(
        index,
        "referrer",
        event.referrer.as_deref(),
        limits.max_page_chars,
    )?;
    check_text(
        index,
        "user_id",
        event.user_id.as_deref(),
        limits.max_page_chars,
    )?;
    if event.duration_ms.is_some_and(|d| d < 0) {
        return Err(refuse(
            ErrorCode::InvalidEvent,
            format!("events[{index}].duration_ms is negative"),
        ));
    }
    if event.attributes.len() > limits.max_attributes {
        return Err(refuse(
            ErrorCode::TooManyAttributes,
            format!(
                "events[{index}] has {} attributes; at most {} are allowed",
                event.attributes.len(),
                limits.max_attributes
            ),
        ));
    }
    let definition = registry.event(&event.event_id);
    for (name, value) in &event.attributes {
        check_name(index, "attribute name", name, limits)?;
        if let atoll_protocol::events::AttributeValue::Text(text) = value {
            check_text(
                index,
                &format!("attributes.{name}"),
                Some(text),
                limits.max_value_chars,
            )?;
        }
        if let Some(declared) =
            definition.and_then(|d| d.attributes.iter().find(|a| &a.name == name))
        {
            if declared.kind.as_str() != value.type_name() {
                return Err(refuse(
                    ErrorCode::AttributeTypeMismatch,
                    format!(
                        "events[{index}].attributes.{name} is a {}, but the registry declares a {}",
                        value.type_name(),
                        declared.kind.as_str()
                    ),
                ));
            }
        }
    }
    let registered = built_in || definition.is_some();
    if !registered && registry.settings.reject_unregistered {
        return Err(refuse(
            ErrorCode::UnregisteredEvent,
            format!(
                "events[{index}].event_id '{}' is not declared in the app's event registry, which refuses undeclared events",
                event.event_id
            ),
        ));
    }
    Ok((uuid.as_u128(), registered))
}

/// Validates a batch and builds its rows with the device's context. The batch is
/// consumed: its strings move into the rows.
pub fn build_rows(
    batch: EventBatch,
    profile: &Profile,
    registry: &Registry,
    limits: &IngestLimits,
    now_ms: i64,
    source: Source,
) -> Result<Vec<EventRow>, Refusal> {
    if batch.events.len() > limits.max_events {
        return Err(refuse(
            ErrorCode::TooManyEvents,
            format!(
                "the batch holds {} events; at most {} are allowed",
                batch.events.len(),
                limits.max_events
            ),
        ));
    }
    check_text(
        0,
        "network",
        batch.network.as_deref(),
        limits.max_value_chars,
    )?;
    // Every check first, so a refused batch costs no copies.
    let mut checked = Vec::with_capacity(batch.events.len());
    for (index, event) in batch.events.iter().enumerate() {
        let (uuid, registered) = check_event(index, event, registry, limits)?;
        let mut time = event.time;
        if time > now_ms + limits.max_future_ms {
            time = now_ms;
        }
        if source == Source::Device && time < now_ms - limits.max_age_ms {
            return Err(refuse(
                ErrorCode::EventTimeOutOfRange,
                format!(
                    "events[{index}].time is {} h before the server's clock; events older than {} h are refused",
                    (now_ms - time) / 3_600_000,
                    limits.max_age_ms / 3_600_000
                ),
            ));
        }
        checked.push((uuid, registered, time));
    }
    // The device's context, shared by every row of the batch.
    let shared = |value: Option<&str>| value.map(Arc::<str>::from);
    let device_id: Arc<str> = Arc::from(profile.device_id.as_str());
    let platform = shared(profile.platform.map(|p| p.as_str()));
    let os_version = shared(profile.os_version.as_deref());
    let model = shared(profile.model.as_deref());
    let app_version = shared(profile.app_version.as_deref());
    let channel = shared(profile.channel.as_deref());
    let region = shared(profile.region.as_deref());
    let network = shared(batch.network.as_deref().or(profile.network.as_deref()));
    // The account of the device as events unfold: a `$login` binds the events
    // after it, a `$logout` unbinds them.
    let mut user = shared(profile.user_id.as_deref());
    let mut rows = Vec::with_capacity(checked.len());
    for (event, (uuid, registered, time)) in batch.events.into_iter().zip(checked) {
        let row_user = if event.event_id == LOGIN {
            if let Some(id) = &event.user_id {
                user = Some(Arc::from(id.as_str()));
            }
            user.clone()
        } else {
            let current = user.clone();
            if event.event_id == LOGOUT {
                user = None;
            }
            current
        };
        rows.push(EventRow {
            uuid,
            time,
            received: now_ms,
            event_id: event.event_id,
            device_id: device_id.clone(),
            user_id: row_user,
            session_id: event.session_id,
            page: event.page,
            referrer: event.referrer,
            duration_ms: event.duration_ms,
            platform: platform.clone(),
            os_version: os_version.clone(),
            model: model.clone(),
            app_version: app_version.clone(),
            channel: channel.clone(),
            region: region.clone(),
            network: network.clone(),
            registered,
            attributes: event
                .attributes
                .into_iter()
                .map(|(name, value)| (name, value.into_text()))
                .collect(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use atoll_protocol::analytics::{
        AnalyticsSettings, AttributeDefinition, AttributeType, EventDefinition,
    };
    use atoll_protocol::events::AttributeValue;

    const NOW: i64 = 1_800_000_000_000;

    fn event(name: &str) -> TrackedEvent {
        TrackedEvent {
            uuid: uuid::Uuid::new_v4().to_string(),
            event_id: name.into(),
            time: NOW - 1000,
            ..TrackedEvent::default()
        }
    }

    fn profile() -> Profile {
        Profile {
            device_id: "d1".into(),
            user_id: Some("u0".into()),
            app_version: Some("1.2.0".into()),
            network: Some("wifi".into()),
            ..Profile::default()
        }
    }

    fn build(events: Vec<TrackedEvent>, registry: &Registry) -> Result<Vec<EventRow>, Refusal> {
        build_rows(
            EventBatch {
                events,
                network: None,
            },
            &profile(),
            registry,
            &IngestLimits::default(),
            NOW,
            Source::Device,
        )
    }

    fn code(result: Result<Vec<EventRow>, Refusal>) -> ErrorCode {
        result.unwrap_err().code
    }

    #[test]
    fn each_limit_has_its_code() {
        let registry = Registry::default();
        assert_eq!(
            code(build(vec![event("a"); 501], &registry)),
            ErrorCode::TooManyEvents
        );
        assert_eq!(
            code(build(vec![event(&"x".repeat(41))], &registry)),
            ErrorCode::NameTooLong
        );
        assert_eq!(
            code(build(vec![event("has space")], &registry)),
            ErrorCode::InvalidEvent
        );
        assert_eq!(
            code(build(vec![event("$custom")], &registry)),
            ErrorCode::InvalidEvent
        );
        let mut bad_uuid = event("a");
        bad_uuid.uuid = "nope".into();
        assert_eq!(
            code(build(vec![bad_uuid], &registry)),
            ErrorCode::InvalidEvent
        );
        let mut many = event("a");
        for i in 0..26 {
            many.attributes
                .insert(format!("k{i}"), AttributeValue::Bool(true));
        }
        assert_eq!(
            code(build(vec![many], &registry)),
            ErrorCode::TooManyAttributes
        );
        let mut long = event("a");
        long.attributes
            .insert("k".into(), AttributeValue::Text("v".repeat(101)));
        assert_eq!(code(build(vec![long], &registry)), ErrorCode::ValueTooLong);
        let mut old = event("a");
        old.time = NOW - 8 * 86_400_000;
        assert_eq!(
            code(build(vec![event("ok"), old], &registry)),
            ErrorCode::EventTimeOutOfRange
        );
        let mut negative = event("a");
        negative.duration_ms = Some(-1);
        assert_eq!(
            code(build(vec![negative], &registry)),
            ErrorCode::InvalidEvent
        );
    }

    #[test]
    fn limits_at_the_edge_pass() {
        let registry = Registry::default();
        let mut edge = event(&"x".repeat(40));
        for i in 0..25 {
            edge.attributes
                .insert(format!("k{i}"), AttributeValue::Text("v".repeat(100)));
        }
        edge.time = NOW - 7 * 86_400_000 + 1;
        assert_eq!(build(vec![edge; 500], &registry).unwrap().len(), 500);
        let chinese = event("购买");
        assert!(build(vec![chinese], &registry).is_ok());
    }

    #[test]
    fn future_times_are_clamped_to_the_receive_time() {
        let mut ahead = event("a");
        ahead.time = NOW + 3_600_000;
        let mut slightly = event("a");
        slightly.time = NOW + 60_000;
        let rows = build(vec![ahead, slightly], &Registry::default()).unwrap();
        assert_eq!(rows[0].time, NOW);
        assert_eq!(rows[1].time, NOW + 60_000);
    }

    #[test]
    fn the_registry_flags_rejects_and_checks_types() {
        let mut registry = Registry::default();
        registry.insert(EventDefinition {
            event_id: "buy".into(),
            attributes: vec![AttributeDefinition {
                name: "price".into(),
                kind: AttributeType::Number,
                description: String::new(),
            }],
            ..EventDefinition::default()
        });
        let rows = build(
            vec![event("buy"), event("other"), event("$launch")],
            &registry,
        )
        .unwrap();
        assert_eq!(
            rows.iter().map(|r| r.registered).collect::<Vec<_>>(),
            vec![true, false, true]
        );
        let mut wrong = event("buy");
        wrong
            .attributes
            .insert("price".into(), AttributeValue::Text("cheap".into()));
        assert_eq!(
            code(build(vec![wrong], &registry)),
            ErrorCode::AttributeTypeMismatch
        );
        registry.settings = AnalyticsSettings {
            reject_unregistered: true,
            ..AnalyticsSettings::default()
        };
        assert_eq!(
            code(build(vec![event("other")], &registry)),
            ErrorCode::UnregisteredEvent
        );
    }

    #[test]
    fn context_comes_from_the_profile_and_login_changes_the_user() {
        let mut login = event(LOGIN);
        login.user_id = Some("u9".into());
        let rows = build(
            vec![event("a"), login, event("b"), event(LOGOUT), event("c")],
            &Registry::default(),
        )
        .unwrap();
        let users: Vec<Option<&str>> = rows.iter().map(|r| r.user_id.as_deref()).collect();
        assert_eq!(
            users,
            vec![Some("u0"), Some("u9"), Some("u9"), Some("u9"), None]
        );
        assert_eq!(rows[0].app_version.as_deref(), Some("1.2.0"));
        assert_eq!(rows[0].network.as_deref(), Some("wifi"));
        assert_eq!(rows[0].received, NOW);
    }
}
