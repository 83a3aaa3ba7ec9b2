//! From targets to deliveries: a device target is one device, a user target
//! every device bound to the user (or only the most recent one), and a
//! broadcast every matching device of the app, read and expanded one page at
//! a time. Each delivery gets the vendor token the dispatcher will use when
//! the device is not online on Atoll's own connection.

use crate::content::Content;
use crate::{Error, PushService, Result};
use atoll_core::rules::{DeviceAttributes, DeviceContext, Env, Rule};
use atoll_protocol::device::PushChannel;
use atoll_protocol::push::{Binding, SendKind, TargetType};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

/// Devices read per broadcast page.
pub const PAGE: usize = 1_000;

/// Deliveries per INSERT statement.
const INSERT_ROWS: usize = 50;

/// Values per `IN (…)` list: like [`INSERT_ROWS`], small statements of few
/// shapes bind and prepare far faster than one with hundreds of values.
pub const IN_LIST: usize = 50;

/// The channel name of Atoll's own connection.
pub const OWN_CHANNEL: &str = "atoll";

/// Who a broadcast is for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Audience {
    /// Only this platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Bound, unbound or all.
    #[serde(default)]
    pub binding: Binding,
    /// A target rule (text form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// One device a message goes to.
#[derive(Debug, Clone)]
pub struct TargetDevice {
    /// The device.
    pub device_id: String,
    /// Its platform (`unknown` when it never said).
    pub platform: String,
    /// The vendor channel and token to use when it is offline.
    pub vendor: Option<(PushChannel, String)>,
}

/// What the deliveries of one message share.
#[derive(Debug, Clone)]
pub struct DeliveryHead<'a> {
    /// The app.
    pub app_id: &'a str,
    /// The task.
    pub task_id: &'a str,
    /// The send type.
    pub kind: SendKind,
    /// The message.
    pub msg_id: &'a str,
    /// Its collapse key.
    pub collapse_key: Option<&'a str>,
    /// A visible notification (counts for fatigue caps).
    pub notify: bool,
    /// Due from (ms).
    pub now: i64,
    /// Expires at (ms).
    pub expires_at: i64,
}

/// The vendor preferred for a device, among the tokens it registered: its
/// platform's own vendor first (APNs on iOS, HMS on HarmonyOS and on Huawei
/// Android phones that have an HMS token), FCM last.
pub fn preferred_vendor(
    platform: &str,
    tokens: &[(PushChannel, String)],
) -> Option<(PushChannel, String)> {
    let order: &[PushChannel] = match platform {
        "ios" => &[PushChannel::Apns],
        "harmony" => &[PushChannel::Hms],
        _ => &[
            PushChannel::Hms,
            PushChannel::Honor,
            PushChannel::Xiaomi,
            PushChannel::Oppo,
            PushChannel::Vivo,
            PushChannel::Fcm,
        ],
    };
    order
        .iter()
        .find_map(|channel| tokens.iter().find(|(c, _)| c == channel).cloned())
}

const DEVICE_COLUMNS: &str = "device_id, platform, os, os_version, model, app_version, channel, \
     locale, region, network, user_id";

fn attributes_of(row: &AnyRow) -> Result<DeviceAttributes> {
    Ok(DeviceAttributes {
        device_id: row.try_get("device_id")?,
        user_id: row.try_get("user_id")?,
        app_version: row.try_get("app_version")?,
        platform: row.try_get("platform")?,
        os: row.try_get("os")?,
        os_version: row.try_get("os_version")?,
        model: row.try_get("model")?,
        channel: row.try_get("channel")?,
        region: row.try_get("region")?,
        city: None,
        network: row.try_get("network")?,
        locale: row.try_get("locale")?,
    })
}

/// The vendor tokens of these devices.
async fn tokens_of(
    conn: &mut AnyConnection,
    app_id: &str,
    device_ids: &[&str],
) -> Result<HashMap<String, Vec<(PushChannel, String)>>> {
    let mut tokens: HashMap<String, Vec<(PushChannel, String)>> = HashMap::new();
    for chunk in device_ids.chunks(IN_LIST) {
        if chunk.is_empty() {
            continue;
        }
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT device_id, channel, token FROM device_push_tokens WHERE app_id = $1 AND device_id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(app_id);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let channel: String = row.try_get("channel")?;
            if let Some(channel) = PushChannel::parse(&channel) {
                tokens
                    .entry(row.try_get("device_id")?)
                    .or_default()
                    .push((channel, row.try_get("token")?));
            }
        }
    }
    Ok(tokens)
}

fn with_vendors(
    devices: Vec<(String, String)>,
    tokens: &HashMap<String, Vec<(PushChannel, String)>>,
) -> Vec<TargetDevice> {
    devices
        .into_iter()
        .map(|(device_id, platform)| TargetDevice {
            vendor: tokens
                .get(&device_id)
                .and_then(|tokens| preferred_vendor(&platform, tokens)),
            device_id,
            platform,
        })
        .collect()
}

/// The devices of one target.
pub async fn devices_of_target(
    conn: &mut AnyConnection,
    app_id: &str,
    target_type: TargetType,
    target: &str,
) -> Result<Vec<TargetDevice>> {
    let sql = match target_type {
        TargetType::Device => {
            "SELECT device_id, platform FROM devices WHERE app_id = $1 AND device_id = $2"
        }
        TargetType::User => {
            "SELECT device_id, platform FROM devices WHERE app_id = $1 AND user_id = $2 \
             ORDER BY last_seen_at DESC LIMIT 100"
        }
        TargetType::UserRecent => {
            "SELECT d.device_id, d.platform FROM app_users u JOIN devices d \
             ON d.app_id = u.app_id AND d.device_id = u.most_recent_device AND d.user_id = u.user_id \
             WHERE u.app_id = $1 AND u.user_id = $2"
        }
    };
    let rows = sqlx::query(sql)
        .bind(app_id)
        .bind(target)
        .fetch_all(&mut *conn)
        .await?;
    let devices: Vec<(String, String)> = rows
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<String, _>(0)?,
                row.try_get::<Option<String>, _>(1)?
                    .unwrap_or_else(|| "unknown".into()),
            ))
        })
        .collect::<Result<_>>()?;
    let ids: Vec<&str> = devices.iter().map(|(id, _)| id.as_str()).collect();
    let tokens = tokens_of(conn, app_id, &ids).await?;
    Ok(with_vendors(devices, &tokens))
}

/// Inserts the deliveries of one message to these devices (pending, due
/// now). A collapse key first retires the same key's undelivered messages
/// to those devices: the device shows only the newest.
pub async fn insert_deliveries(
    conn: &mut AnyConnection,
    head: &DeliveryHead<'_>,
    devices: &[TargetDevice],
) -> Result<u64> {
    const COLUMNS: usize = 17;
    let mut inserted = 0;
    // Small statements of one shape: a statement with thousands of bound
    // values is slow to prepare and bind through sqlx (measured: ~0.4 s for
    // 1 000 rows in one statement, ~40 ms in chunks of 50), and a repeated
    // shape is prepared once per connection.
    for chunk in devices.chunks(INSERT_ROWS) {
        if let Some(key) = head.collapse_key {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 5)).collect();
            let sql = format!(
                "UPDATE push_deliveries SET state = 'collapsed', updated_at = $3 \
                 WHERE app_id = $1 AND collapse_key = $2 AND msg_id <> $4 \
                 AND state IN ('pending', 'waiting') AND device_id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql)
                .bind(head.app_id)
                .bind(key)
                .bind(head.now)
                .bind(head.msg_id);
            for device in chunk {
                query = query.bind(&device.device_id);
            }
            query.execute(&mut *conn).await?;
        }
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let base = i * COLUMNS;
                let cells: Vec<String> = (1..=COLUMNS).map(|c| format!("${}", base + c)).collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO push_deliveries (msg_id, device_id, app_id, task_id, kind, platform, state, channel, \
             token, collapse_key, notify, attempts, due_at, created_at, updated_at, expires_at, reason) \
             VALUES {} ON CONFLICT DO NOTHING",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for device in chunk {
            let (channel, token) = match &device.vendor {
                Some((channel, token)) => (channel.as_str(), Some(token.as_str())),
                None => (OWN_CHANNEL, None),
            };
            query = query
                .bind(head.msg_id)
                .bind(&device.device_id)
                .bind(head.app_id)
                .bind(head.task_id)
                .bind(head.kind.as_str())
                .bind(&device.platform)
                .bind("pending")
                .bind(channel)
                .bind(token)
                .bind(head.collapse_key)
                .bind(head.notify as i64)
                .bind(0i64)
                .bind(head.now)
                .bind(head.now)
                .bind(head.now)
                .bind(head.expires_at)
                .bind(None::<String>);
        }
        inserted += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(inserted)
}

/// One page of a broadcast's devices after `after` (by device id), filtered
/// by platform, binding and rule; and the last device id read (the next
/// page's start), `None` when this was the last page.
pub async fn broadcast_page(
    conn: &mut AnyConnection,
    app_id: &str,
    audience: &Audience,
    rule: Option<&atoll_core::rules::eval::CompiledRule>,
    after: &str,
) -> Result<(Vec<TargetDevice>, Option<String>)> {
    let mut sql =
        format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE app_id = $1 AND device_id > $2");
    if audience.platform.is_some() {
        sql.push_str(" AND platform = $4");
    }
    match audience.binding {
        Binding::Bound => sql.push_str(" AND user_id IS NOT NULL"),
        Binding::Unbound => sql.push_str(" AND user_id IS NULL"),
        Binding::All => {}
    }
    sql.push_str(" ORDER BY device_id LIMIT $3");
    let mut query = sqlx::query(&sql).bind(app_id).bind(after).bind(PAGE as i64);
    if let Some(platform) = &audience.platform {
        query = query.bind(platform);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let last = if rows.len() == PAGE {
        Some(rows[PAGE - 1].try_get::<String, _>("device_id")?)
    } else {
        None
    };
    let mut devices = Vec::with_capacity(rows.len());
    for row in &rows {
        let attributes = attributes_of(row)?;
        if let Some(rule) = rule {
            if !rule.matches(&DeviceContext::new(attributes.clone()), &Env::empty()) {
                continue;
            }
        }
        devices.push((
            attributes.device_id,
            attributes.platform.unwrap_or_else(|| "unknown".into()),
        ));
    }
    let ids: Vec<&str> = devices.iter().map(|(id, _)| id.as_str()).collect();
    let tokens = tokens_of(conn, app_id, &ids).await?;
    Ok((with_vendors(devices, &tokens), last))
}

/// Parses and compiles a broadcast's rule (salted by the task, so a
/// percentage picks a stable set per task).
pub fn compile_rule(
    text: Option<&str>,
    task_id: &str,
) -> Result<Option<atoll_core::rules::eval::CompiledRule>> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let rule = Rule::parse(text).map_err(|error| Error::Invalid(format!("rule: {error}")))?;
    rule.compile(task_id)
        .map(Some)
        .map_err(|error| Error::Invalid(format!("rule: {error}")))
}

impl PushService {
    /// The content a message was stored with.
    pub(crate) fn parse_content(text: &str) -> Result<Content> {
        serde_json::from_str(text)
            .map_err(|error| Error::Internal(format!("stored content: {error}")))
    }
}
