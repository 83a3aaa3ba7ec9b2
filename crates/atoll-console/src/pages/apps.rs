//! Apps: the list with the "create app" form, and an app's page with its SDK
//! configuration, secret reveal and rotation, recent devices and lookups.

use super::devices::{DeviceRow, Lookup};
use super::workspaces::initial_of;
use super::{non_blank, Fields};
use crate::auth::Authed;
use crate::view::{self, encode_segment, filters, Flash, OrErrorPage, PageResult, Shell};
use crate::ConsoleState;
use askama::Template;
use atoll_platform::Error;
use atoll_protocol::admin::{App, AppWithSecret, CreateApp, RotateSecret, SdkConfig};
use atoll_protocol::device::Platform;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;

/// Devices shown on an app's page.
const APP_PAGE_DEVICES: u32 = 20;

/// A platform checkbox of the "create app" form.
struct PlatformChoice {
    value: &'static str,
    checked: bool,
}

/// An app as a row of the list.
struct AppRow {
    name: String,
    initial: String,
    app_key: String,
    href: String,
    platforms: Vec<String>,
    created_at: i64,
}

/// The SDK configuration as shown (and copied): the lines an app puts in its
/// config, in the same form `atoll demo` prints.
fn config_snippet(config: &SdkConfig) -> String {
    let mut lines = vec![
        format!("server_url = \"{}\"", config.server_url),
        format!("app_key    = \"{}\"", config.app_key),
    ];
    if let Some(secret) = &config.app_secret {
        lines.push(format!("app_secret = \"{secret}\""));
    }
    lines.join("\n")
}

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    shell: Shell,
    apps: Vec<AppRow>,
    created: Option<AppWithSecret>,
    created_snippet: String,
    name: String,
    platforms: Vec<PlatformChoice>,
}

/// What the "create app" form holds.
struct Draft {
    name: String,
    platforms: Vec<Platform>,
}

impl Default for Draft {
    /// Empty, with Android and iOS pre-checked: what most apps ship on.
    fn default() -> Draft {
        Draft {
            name: String::new(),
            platforms: vec![Platform::Android, Platform::Ios],
        }
    }
}

/// Renders the app list; `created` is the app just created, whose secret this
/// page shows once.
async fn render_list(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    status: StatusCode,
    flash: Option<Flash>,
    created: Option<AppWithSecret>,
    draft: Draft,
) -> PageResult {
    let shell = Shell::load(state, authed, Some(ws), "/apps", None, "Apps")
        .await?
        .with_flash(flash);
    let apps = state
        .platform
        .list_apps(&authed.principal(), ws)
        .await
        .or_error_page(&shell)?;
    let page = AppsPage {
        apps: apps.iter().map(|app| app_row(&shell, app)).collect(),
        created_snippet: created
            .as_ref()
            .map(|c| config_snippet(&c.sdk_config))
            .unwrap_or_default(),
        created,
        platforms: Platform::ALL
            .iter()
            .map(|p| PlatformChoice {
                value: p.as_str(),
                checked: draft.platforms.contains(p),
            })
            .collect(),
        name: draft.name,
        shell,
    };
    Ok(view::render(status, &page))
}

fn app_row(shell: &Shell, app: &App) -> AppRow {
    AppRow {
        name: app.name.clone(),
        initial: initial_of(&app.name),
        app_key: app.app_key.clone(),
        href: format!("{}/apps/{}", shell.base(), encode_segment(&app.app_key)),
        platforms: app.platforms.iter().map(|p| p.to_string()).collect(),
        created_at: app.created_at,
    }
}

/// `GET /w/{ws}/apps`.
pub async fn list(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
) -> PageResult {
    render_list(
        &state,
        &authed,
        &ws,
        StatusCode::OK,
        None,
        None,
        Draft::default(),
    )
    .await
}

/// `POST /w/{ws}/apps`: creates the app and shows its secret, once.
pub async fn create(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let name = fields.get("name").to_owned();
    let mut platforms = Vec::new();
    let mut unknown = None;
    for value in fields.all("platform") {
        match Platform::parse(value) {
            Some(platform) => platforms.push(platform),
            None => unknown = Some(value.to_owned()),
        }
    }
    let outcome = match unknown {
        Some(value) => Err(Error::Validation(format!(
            "platforms: unknown platform '{value}'"
        ))),
        None => {
            state
                .platform
                .create_app(
                    &authed.principal(),
                    &ws,
                    CreateApp {
                        name: name.clone(),
                        platforms: platforms.clone(),
                    },
                )
                .await
        }
    };
    match outcome {
        Ok(created) => {
            // The "is ready" card says it all; no flash on top of it.
            render_list(
                &state,
                &authed,
                &ws,
                StatusCode::CREATED,
                None,
                Some(created),
                Draft::default(),
            )
            .await
        }
        Err(error) => {
            let status = view::status_of(&error);
            render_list(
                &state,
                &authed,
                &ws,
                status,
                Some(Flash::error(&error)),
                None,
                Draft { name, platforms },
            )
            .await
        }
    }
}

/// What an app's page shows beyond the app itself.
#[derive(Default)]
struct Extras {
    flash: Option<Flash>,
    /// The configuration with its secret, after "reveal" or "rotate".
    secret_config: Option<SdkConfig>,
    /// After a rotation: until when the old secret still works.
    rotated: Option<Option<i64>>,
}

#[derive(Template)]
#[template(path = "app.html")]
struct AppPage {
    shell: Shell,
    app: App,
    initial: String,
    app_base: String,
    server_url: String,
    snippet: String,
    secret: Option<String>,
    rotated: Option<Option<i64>>,
    devices: Vec<DeviceRow>,
    lookup: Lookup,
}

async fn render_app(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    app_key: &str,
    status: StatusCode,
    extras: Extras,
) -> PageResult {
    let shell = Shell::load(state, authed, Some(ws), "/apps", Some(app_key), "App")
        .await?
        .with_flash(extras.flash);
    let principal = authed.principal();
    let fail = |error: Error| view::error_page(shell.clone(), &error);
    let app = state
        .platform
        .get_app(&principal, ws, app_key)
        .await
        .map_err(fail)?;
    let devices = state
        .platform
        .recent_devices(&principal, ws, app_key, APP_PAGE_DEVICES)
        .await
        .map_err(fail)?;
    let config = extras
        .secret_config
        .unwrap_or_else(|| state.platform.sdk_config(&app, None));
    let app_base = format!("{}/apps/{}", shell.base(), encode_segment(&app.app_key));
    let mut shell = shell;
    shell.title = app.name.clone();
    let page = AppPage {
        snippet: config_snippet(&config),
        initial: initial_of(&app.name),
        server_url: config.server_url,
        secret: config.app_secret,
        rotated: extras.rotated,
        devices: devices
            .iter()
            .map(|device| DeviceRow::new(&app_base, device))
            .collect(),
        lookup: Lookup::new(&app_base),
        app_base,
        app,
        shell,
    };
    Ok(view::render(status, &page))
}

/// `GET /w/{ws}/apps/{app}`.
pub async fn detail(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path((ws, app)): Path<(String, String)>,
) -> PageResult {
    render_app(
        &state,
        &authed,
        &ws,
        &app,
        StatusCode::OK,
        Extras::default(),
    )
    .await
}

/// `POST /w/{ws}/apps/{app}/reveal-secret` (admins): the page again, with the
/// secret. A POST, not a GET, so the secret is never in a URL or browser history
/// and a cross-site link cannot trigger it.
pub async fn reveal(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path((ws, app)): Path<(String, String)>,
    Form(form): Form<super::CsrfOnly>,
) -> PageResult {
    authed.check_csrf(&form.csrf_token)?;
    let extras = match state
        .platform
        .reveal_sdk_config(&authed.principal(), &ws, &app)
        .await
    {
        Ok(config) => Extras {
            secret_config: Some(config),
            ..Extras::default()
        },
        Err(error) => return failed(&state, &authed, &ws, &app, error).await,
    };
    render_app(&state, &authed, &ws, &app, StatusCode::OK, extras).await
}

#[derive(Debug, Deserialize)]
pub struct RotateForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    grace_seconds: String,
}

/// `POST /w/{ws}/apps/{app}/rotate-secret` (admins): issues a new secret, shown once.
pub async fn rotate(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path((ws, app)): Path<(String, String)>,
    Form(form): Form<RotateForm>,
) -> PageResult {
    authed.check_csrf(&form.csrf_token)?;
    let grace_seconds = match non_blank(&form.grace_seconds).map(|text| text.parse::<u64>()) {
        None => None,
        Some(Ok(seconds)) => Some(seconds),
        Some(Err(_)) => {
            let error = Error::Validation("grace period: a whole number of seconds".into());
            return failed(&state, &authed, &ws, &app, error).await;
        }
    };
    match state
        .platform
        .rotate_app_secret(
            &authed.principal(),
            &ws,
            &app,
            RotateSecret { grace_seconds },
        )
        .await
    {
        Ok(rotated) => {
            let extras = Extras {
                flash: Some(Flash::success(
                    "New secret issued. Copy it now: it is shown only on this page.",
                )),
                secret_config: Some(rotated.sdk_config),
                rotated: Some(rotated.previous_secret_valid_until),
            };
            render_app(&state, &authed, &ws, &app, StatusCode::OK, extras).await
        }
        Err(error) => failed(&state, &authed, &ws, &app, error).await,
    }
}

/// The app's page with an error message, in the error's status.
async fn failed(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    app: &str,
    error: Error,
) -> Result<Response, Response> {
    let extras = Extras {
        flash: Some(Flash::error(&error)),
        ..Extras::default()
    };
    render_app(state, authed, ws, app, view::status_of(&error), extras).await
}
