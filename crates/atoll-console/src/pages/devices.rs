//! Devices and app users: the per-app device list, lookups by id, and the device
//! and user pages.

use crate::auth::Authed;
use crate::view::{self, encode_query, encode_segment, filters, OrErrorPage, PageResult, Shell};
use crate::ConsoleState;
use askama::Template;
use atoll_protocol::admin::{AppUser, Device};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

/// Devices listed on the devices page and an app's page.
const RECENT_DEVICES: u32 = 50;

/// A device as a table row.
pub struct DeviceRow {
    pub device_id: String,
    pub href: String,
    pub platform: String,
    pub model: String,
    pub os: String,
    pub app_version: String,
    pub user: Option<Link>,
    pub last_seen_at: i64,
}

/// A link with its text.
pub struct Link {
    pub text: String,
    pub href: String,
}

impl DeviceRow {
    /// `app_base` is the app's page, `/w/{ws}/apps/{app}`.
    pub fn new(app_base: &str, device: &Device) -> DeviceRow {
        DeviceRow {
            href: device_href(app_base, &device.device_id),
            device_id: device.device_id.clone(),
            platform: device
                .platform
                .map(|p| p.to_string())
                .unwrap_or_else(|| "—".into()),
            model: text(&device.model),
            os: match (&device.os, &device.os_version) {
                (Some(os), Some(version)) => format!("{os} {version}"),
                (os, _) => text(os),
            },
            app_version: text(&device.app_version),
            user: device.user_id.as_deref().map(|id| Link {
                text: id.to_owned(),
                href: user_href(app_base, id),
            }),
            last_seen_at: device.last_seen_at,
        }
    }
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "—".into())
}

/// Ids that a browser would read as `.` or `..` path segments (and normalise
/// away) cannot be path segments; such ids go through the lookup query instead.
fn is_dot_segment(id: &str) -> bool {
    id == "." || id == ".."
}

/// The page of one device.
pub fn device_href(app_base: &str, device_id: &str) -> String {
    if is_dot_segment(device_id) {
        format!("{app_base}/lookup?device_id={}", encode_query(device_id))
    } else {
        format!("{app_base}/devices/{}", encode_segment(device_id))
    }
}

/// The page of one app user.
pub fn user_href(app_base: &str, user_id: &str) -> String {
    if is_dot_segment(user_id) {
        format!("{app_base}/lookup?user_id={}", encode_query(user_id))
    } else {
        format!("{app_base}/users/{}", encode_segment(user_id))
    }
}

/// The lookup forms' target and pre-filled values.
pub struct Lookup {
    pub action: String,
    pub device_id: String,
    pub user_id: String,
}

impl Lookup {
    pub fn new(app_base: &str) -> Lookup {
        Lookup {
            action: format!("{app_base}/lookup"),
            device_id: String::new(),
            user_id: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    shell: Shell,
    app: Option<(String, String)>,
    devices: Vec<DeviceRow>,
    lookup: Option<Lookup>,
}

#[derive(Debug, Deserialize)]
pub struct DevicesQuery {
    #[serde(default)]
    app: String,
}

/// `GET /w/{ws}/devices?app=…`: recent devices of one app (the chosen one, or
/// the first) and the lookup forms.
pub async fn index(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Query(query): Query<DevicesQuery>,
) -> PageResult {
    let mut shell = Shell::load(&state, &authed, Some(&ws), "/devices", None, "Devices").await?;
    let chosen = shell
        .apps
        .iter()
        .find(|a| a.detail == query.app)
        .or_else(|| shell.apps.first())
        .map(|a| (a.label.clone(), a.detail.clone()));
    let Some((name, app_key)) = chosen else {
        let page = DevicesPage {
            shell,
            app: None,
            devices: Vec::new(),
            lookup: None,
        };
        return Ok(view::render(StatusCode::OK, &page));
    };
    let devices = state
        .platform
        .recent_devices(&authed.principal(), &ws, &app_key, RECENT_DEVICES)
        .await
        .or_error_page(&shell)?;
    for link in &mut shell.apps {
        link.active = link.detail == app_key;
    }
    shell.app_name = Some(name.clone());
    let app_base = format!("{}/apps/{}", shell.base(), encode_segment(&app_key));
    let page = DevicesPage {
        devices: devices
            .iter()
            .map(|device| DeviceRow::new(&app_base, device))
            .collect(),
        lookup: Some(Lookup::new(&app_base)),
        app: Some((name, app_key)),
        shell,
    };
    Ok(view::render(StatusCode::OK, &page))
}

#[derive(Debug, Deserialize)]
pub struct LookupQuery {
    #[serde(default)]
    device_id: String,
    #[serde(default)]
    user_id: String,
}

/// `GET /w/{ws}/apps/{app}/lookup?device_id=…|user_id=…`: goes to that page.
pub async fn lookup(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path((ws, app)): Path<(String, String)>,
    Query(query): Query<LookupQuery>,
) -> PageResult {
    let app_base = format!("/w/{}/apps/{}", encode_segment(&ws), encode_segment(&app));
    let device_id = query.device_id.trim();
    let user_id = query.user_id.trim();
    if !device_id.is_empty() {
        if is_dot_segment(device_id) {
            return render_device(&state, &authed, &ws, &app, device_id).await;
        }
        return Ok(Redirect::to(&device_href(&app_base, device_id)).into_response());
    }
    if !user_id.is_empty() {
        if is_dot_segment(user_id) {
            return render_user(&state, &authed, &ws, &app, user_id).await;
        }
        return Ok(Redirect::to(&user_href(&app_base, user_id)).into_response());
    }
    Ok(Redirect::to(&app_base).into_response())
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    shell: Shell,
    app_base: String,
    device: Device,
    attributes: Vec<(&'static str, String)>,
    user: Option<Link>,
    lookup: Lookup,
}

/// `GET /w/{ws}/apps/{app}/devices/{device}`.
pub async fn device(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path((ws, app, device_id)): Path<(String, String, String)>,
) -> PageResult {
    render_device(&state, &authed, &ws, &app, &device_id).await
}

async fn render_device(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    app: &str,
    device_id: &str,
) -> PageResult {
    let shell = Shell::load(state, authed, Some(ws), "/devices", Some(app), "Device").await?;
    let device = state
        .platform
        .get_device(&authed.principal(), ws, app, device_id)
        .await
        .or_error_page(&shell)?;
    let app_base = format!("{}/apps/{}", shell.base(), encode_segment(app));
    let attributes = vec![
        (
            "Platform",
            device
                .platform
                .map(|p| p.to_string())
                .unwrap_or_else(|| "—".into()),
        ),
        ("OS", text(&device.os)),
        ("OS version", text(&device.os_version)),
        ("Model", text(&device.model)),
        ("App version", text(&device.app_version)),
        ("Channel", text(&device.channel)),
        ("Locale", text(&device.locale)),
        ("Region", text(&device.region)),
        ("Network", text(&device.network)),
    ];
    let page = DevicePage {
        user: device.user_id.as_deref().map(|id| Link {
            text: id.to_owned(),
            href: user_href(&app_base, id),
        }),
        lookup: Lookup {
            device_id: device_id.to_owned(),
            ..Lookup::new(&app_base)
        },
        attributes,
        device,
        app_base,
        shell,
    };
    Ok(view::render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "app_user.html")]
struct UserPage {
    shell: Shell,
    app_base: String,
    user: AppUser,
    most_recent: Option<Link>,
    devices: Vec<DeviceRow>,
    lookup: Lookup,
}

/// `GET /w/{ws}/apps/{app}/users/{user}`.
pub async fn user(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path((ws, app, user_id)): Path<(String, String, String)>,
) -> PageResult {
    render_user(&state, &authed, &ws, &app, &user_id).await
}

async fn render_user(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    app: &str,
    user_id: &str,
) -> PageResult {
    let shell = Shell::load(state, authed, Some(ws), "/devices", Some(app), "App user").await?;
    let user = state
        .platform
        .get_app_user(&authed.principal(), ws, app, user_id)
        .await
        .or_error_page(&shell)?;
    let app_base = format!("{}/apps/{}", shell.base(), encode_segment(app));
    let page = UserPage {
        most_recent: user.most_recent_device.as_deref().map(|id| Link {
            text: id.to_owned(),
            href: device_href(&app_base, id),
        }),
        devices: user
            .devices
            .iter()
            .map(|device| DeviceRow::new(&app_base, device))
            .collect(),
        lookup: Lookup {
            user_id: user_id.to_owned(),
            ..Lookup::new(&app_base)
        },
        user,
        app_base,
        shell,
    };
    Ok(view::render(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_ids_get_safe_links() {
        let base = "/w/demo/apps/ak_1";
        assert_eq!(
            device_href(base, "d 1/x"),
            "/w/demo/apps/ak_1/devices/d%201%2Fx"
        );
        assert_eq!(user_href(base, "u-1"), "/w/demo/apps/ak_1/users/u-1");
        assert_eq!(
            device_href(base, ".."),
            "/w/demo/apps/ak_1/lookup?device_id=.."
        );
    }
}
