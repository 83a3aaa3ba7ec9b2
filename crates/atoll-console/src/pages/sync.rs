//! Sync pages: the biz types editor with each one's counters (sent,
//! delivered, acknowledged, dropped, backlog, devices online), the devices
//! connected to this node, a device's cursors and pending data, and a form
//! that sends a real test order.

use super::{non_blank, Fields};
use crate::auth::Authed;
use crate::view::{self, encode_query, filters, Flash, OrErrorPage, PageResult, Shell};
use crate::ConsoleState;
use askama::Template;
use atoll_platform::Error;
use atoll_protocol::sync::*;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

/// `?app=…&device=…&done=…`.
#[derive(Debug, Default, Deserialize)]
pub struct SyncQuery {
    #[serde(default)]
    app: String,
    /// The device whose cursors are shown.
    #[serde(default)]
    device: String,
    #[serde(default)]
    done: String,
}

/// A biz type with its counters.
struct BizRow {
    spec: BizTypeSpec,
    stats: BizTypeStats,
}

#[derive(Template)]
#[template(path = "sync.html")]
struct SyncPage {
    shell: Shell,
    app_key: String,
    rows: Vec<BizRow>,
    online_total: u64,
    online: Vec<OnlineDevice>,
    device: String,
    device_state: Option<DeviceSyncState>,
    sent: Option<SyncOrderAnswer>,
    /// The test form's last values, so nothing typed is lost.
    form_biz: String,
    form_link: String,
    form_payload: String,
}

fn sync_error(error: atoll_sync::Error) -> Error {
    match error {
        atoll_sync::Error::Platform(error) => error,
        error => view::module_error(error.code(), error.to_string()),
    }
}

#[derive(Default)]
struct Once {
    sent: Option<SyncOrderAnswer>,
    form: Option<(String, String, String)>,
}

async fn render(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    query: &SyncQuery,
    status: StatusCode,
    flash: Option<Flash>,
    once: Once,
) -> PageResult {
    let app = query.app.as_str();
    let shell = Shell::load(
        state,
        authed,
        Some(ws),
        "/sync",
        Some(app).filter(|a| !a.is_empty()),
        "Sync",
    )
    .await?
    .with_flash(flash);
    let (shell, app_key) = shell.app_or_first(app, "biz types")?;
    let principal = authed.principal();
    let sync = &state.sync;
    let types = sync
        .list_biz_types(&principal, ws, &app_key)
        .await
        .map_err(sync_error)
        .or_error_page(&shell)?;
    let stats = sync
        .biz_type_stats(&principal, ws, &app_key, 30)
        .await
        .map_err(sync_error)
        .or_error_page(&shell)?;
    let (online_total, online) = sync
        .online_devices(&principal, ws, &app_key, 50)
        .await
        .map_err(sync_error)
        .or_error_page(&shell)?;
    let device = query.device.trim().to_owned();
    let device_state = if device.is_empty() {
        None
    } else {
        Some(
            sync.device_state(&principal, ws, &app_key, &device)
                .await
                .map_err(sync_error)
                .or_error_page(&shell)?,
        )
    };
    let rows = types
        .into_iter()
        .map(|biz_type| BizRow {
            stats: stats
                .iter()
                .find(|stats| stats.biz_type == biz_type.spec.id)
                .cloned()
                .unwrap_or_default(),
            spec: biz_type.spec,
        })
        .collect();
    let (form_biz, form_link, form_payload) = once.form.unwrap_or_default();
    let page = SyncPage {
        rows,
        online_total: online_total as u64,
        online,
        device,
        device_state,
        sent: once.sent,
        form_biz,
        form_link,
        form_payload,
        app_key,
        shell,
    };
    Ok(view::render(status, &page))
}

/// `GET /w/{ws}/sync`.
pub async fn index(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Query(query): Query<SyncQuery>,
) -> PageResult {
    let flash = view::done_message(&query.done);
    render(
        &state,
        &authed,
        &ws,
        &query,
        StatusCode::OK,
        flash,
        Once::default(),
    )
    .await
}

fn query_of(fields: &Fields) -> SyncQuery {
    SyncQuery {
        app: fields.get("app").to_owned(),
        device: fields.get("device").to_owned(),
        done: String::new(),
    }
}

async fn done_or_refused(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    query: SyncQuery,
    outcome: Result<&str, Error>,
) -> PageResult {
    match outcome {
        Ok(done) => Ok(Redirect::to(&format!(
            "/w/{}/sync?app={}&done={done}",
            view::encode_segment(ws),
            encode_query(&query.app),
        ))
        .into_response()),
        Err(error) => {
            render(
                state,
                authed,
                ws,
                &query,
                view::status_of(&error),
                Some(Flash::error(&error)),
                Once::default(),
            )
            .await
        }
    }
}

/// `POST /w/{ws}/sync/biz-types`: a new biz type.
pub async fn create_biz_type(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let query = query_of(&fields);
    let outcome = async {
        let dimension = match fields.get("dimension") {
            "device" => Dimension::Device,
            _ => Dimension::User,
        };
        let spec = BizTypeSpec {
            id: fields.get("id").trim().to_owned(),
            description: fields.get("description").trim().to_owned(),
            dimension,
            persistent: fields.get("persistent") == "on",
            backlog_threshold: fields.number("backlog_threshold")?,
            multi_device: fields.get("multi_device") == "on",
            global_allowed: fields.get("global_allowed") == "on",
            retention_days: fields
                .number("retention_days")?
                .unwrap_or(DEFAULT_RETENTION_DAYS),
            user_consistency: fields.get("user_consistency") == "on",
            enabled: true,
        };
        state
            .sync
            .create_biz_type(&authed.principal(), &ws, &query.app, spec)
            .await
            .map_err(sync_error)?;
        Ok("biz_type_created")
    }
    .await;
    done_or_refused(&state, &authed, &ws, query, outcome).await
}

/// `POST /w/{ws}/sync/biz-types/action`: bring a biz type online or offline, or delete it.
pub async fn biz_type_action(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let query = query_of(&fields);
    let principal = authed.principal();
    let id = fields.get("biz").to_owned();
    let outcome = async {
        let sync = &state.sync;
        match fields.get("action") {
            "delete" => {
                sync.delete_biz_type(&principal, &ws, &query.app, &id)
                    .await
                    .map_err(sync_error)?;
                Ok("biz_type_deleted")
            }
            action @ ("online" | "offline") => {
                let mut spec = sync
                    .get_biz_type(&principal, &ws, &query.app, &id)
                    .await
                    .map_err(sync_error)?
                    .spec;
                spec.enabled = action == "online";
                sync.update_biz_type(&principal, &ws, &query.app, &id, spec)
                    .await
                    .map_err(sync_error)?;
                Ok("biz_type_changed")
            }
            _ => Err(Error::Validation("unknown action".into())),
        }
    }
    .await;
    done_or_refused(&state, &authed, &ws, query, outcome).await
}

/// `POST /w/{ws}/sync/send`: a real order, shown with its answer.
pub async fn send(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let query = query_of(&fields);
    let biz_type = fields.get("biz_type").to_owned();
    let link_token = fields.get("link_token").trim().to_owned();
    let payload = fields.get("payload").to_owned();
    let third_msg_id = non_blank(fields.get("third_msg_id"))
        .unwrap_or_else(|| format!("console-{}", uuid::Uuid::now_v7().simple()));
    let principal = authed.principal();
    let outcome = if link_token.is_empty() {
        state
            .sync
            .send_global(
                &principal,
                &ws,
                &query.app,
                &GlobalSyncOrder {
                    biz_type: biz_type.clone(),
                    third_msg_id,
                    payload: payload.clone(),
                    valid_seconds: None,
                    filter: DeliveryFilter::default(),
                },
            )
            .await
    } else {
        state
            .sync
            .send(
                &principal,
                &ws,
                &query.app,
                &SyncOrder {
                    biz_type: biz_type.clone(),
                    link_token: link_token.clone(),
                    third_msg_id,
                    payload: payload.clone(),
                    valid_seconds: None,
                    filter: DeliveryFilter::default(),
                },
            )
            .await
    }
    .map_err(sync_error);
    let (status, flash, sent) = match outcome {
        Ok(answer) => (
            StatusCode::OK,
            Some(Flash::success(format!(
                "Sent: {} ({} #{}).",
                answer.result_code, answer.stream, answer.seq
            ))),
            Some(answer),
        ),
        Err(error) => (view::status_of(&error), Some(Flash::error(&error)), None),
    };
    render(
        &state,
        &authed,
        &ws,
        &query,
        status,
        flash,
        Once {
            sent,
            form: Some((biz_type, link_token, payload)),
        },
    )
    .await
}
