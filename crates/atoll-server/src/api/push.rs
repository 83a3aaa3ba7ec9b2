//! Push admin routes: the four send types (which app backends call with a
//! `push:send` token), templates, vendor channels, settings, tasks and their
//! stats, revoke, a device's deliveries and the core indexes. Handlers only;
//! the push service authorises every operation.

use crate::http::auth::Caller;
use crate::http::extract::{Json, Path, Query};
use crate::http::{ApiError, ApiResult};
use crate::state::AppState;
use atoll_protocol::push::*;
use atoll_protocol::{ErrorCode, Problem};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

type AppPath = Path<(String, String)>;

macro_rules! send_route {
    ($name:ident, $path:literal, $body:ty, $method:ident, $doc:literal) => {
        #[utoipa::path(post, path = $path, tag = "push", security(("bearer" = [])),
            params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
            request_body = $body,
            responses((status = 202, description = "Accepted: durable and queued", body = SendResult),
                (status = 404, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)))]
        #[doc = $doc]
        pub(crate) async fn $name(
            State(state): State<AppState>,
            Caller(principal): Caller,
            Path((workspace, app)): AppPath,
            Json(body): Json<$body>,
        ) -> ApiResult<(StatusCode, Json<SendResult>)> {
            let result = state.push.$method(&principal, &workspace, &app, body).await?;
            Ok((StatusCode::ACCEPTED, Json(result)))
        }
    };
}

send_route!(
    send_simple,
    "/api/v1/workspaces/{workspace}/apps/{app}/push/simple",
    SimplePush,
    send_simple,
    "A simple push to ≤ 10 devices or users (token scope `push:send`)."
);
send_route!(
    send_template,
    "/api/v1/workspaces/{workspace}/apps/{app}/push/template",
    TemplatePush,
    send_template,
    "A template push to ≤ 10 targets; missing values are listed in the error."
);
send_route!(
    send_multiple,
    "/api/v1/workspaces/{workspace}/apps/{app}/push/multiple",
    MultiplePush,
    send_multiple,
    "A template push with values per target, ≤ 100 targets."
);
send_route!(
    send_broadcast,
    "/api/v1/workspaces/{workspace}/apps/{app}/push/broadcast",
    BroadcastPush,
    send_broadcast,
    "A push to every matching device of the app (platform, binding, target rule)."
);

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/templates", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 200, body = Vec<Template>), (status = 404, body = Problem)))]
/// The app's templates.
pub(crate) async fn list_templates(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
) -> ApiResult<Json<Vec<Template>>> {
    Ok(Json(
        state
            .push
            .list_templates(&principal, &workspace, &app)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/templates", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    request_body = TemplateSpec,
    responses((status = 201, body = Template), (status = 409, body = Problem), (status = 422, body = Problem)))]
/// Creates a template (`#name#` placeholders in title, body and URL).
pub(crate) async fn create_template(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Json(spec): Json<TemplateSpec>,
) -> ApiResult<(StatusCode, Json<Template>)> {
    let created = state
        .push
        .create_template(&principal, &workspace, &app, spec)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/templates/{name}", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("name" = String, Path, description = "Template name")),
    responses((status = 200, body = Template), (status = 404, body = Problem)))]
/// One template.
pub(crate) async fn get_template(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Template>> {
    Ok(Json(
        state
            .push
            .get_template(&principal, &workspace, &app, &name)
            .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/templates/{name}", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("name" = String, Path, description = "Template name")),
    request_body = TemplateSpec,
    responses((status = 200, body = Template), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Replaces a template's texts.
pub(crate) async fn put_template(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, name)): Path<(String, String, String)>,
    Json(spec): Json<TemplateSpec>,
) -> ApiResult<Json<Template>> {
    Ok(Json(
        state
            .push
            .update_template(&principal, &workspace, &app, &name, spec)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/templates/{name}", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("name" = String, Path, description = "Template name")),
    responses((status = 204), (status = 404, body = Problem)))]
/// Deletes a template.
pub(crate) async fn delete_template(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .push
        .delete_template(&principal, &workspace, &app, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/channels", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 200, body = Vec<ChannelInfo>), (status = 404, body = Problem)))]
/// The app's vendor channels (no secrets).
pub(crate) async fn list_channels(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
) -> ApiResult<Json<Vec<ChannelInfo>>> {
    Ok(Json(
        state
            .push
            .list_channels(&principal, &workspace, &app)
            .await?,
    ))
}

fn channel_of(name: &str) -> Result<atoll_protocol::device::PushChannel, ApiError> {
    atoll_push::channels::parse_channel(name).map_err(ApiError::from)
}

#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/channels/{channel}", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("channel" = String, Path, description = "apns, fcm or hms")),
    request_body = ChannelCredentials,
    responses((status = 200, body = ChannelInfo), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// Stores a vendor's credentials, sealed (admin).
pub(crate) async fn put_channel(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, channel)): Path<(String, String, String)>,
    Json(body): Json<ChannelCredentials>,
) -> ApiResult<Json<ChannelInfo>> {
    let channel = channel_of(&channel)?;
    Ok(Json(
        state
            .push
            .put_channel(&principal, &workspace, &app, channel, body)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/channels/{channel}", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("channel" = String, Path, description = "apns, fcm or hms")),
    responses((status = 204), (status = 404, body = Problem)))]
/// Removes a vendor's credentials (admin).
pub(crate) async fn delete_channel(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, channel)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let channel = channel_of(&channel)?;
    state
        .push
        .delete_channel(&principal, &workspace, &app, channel)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/settings", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 200, body = PushSettings), (status = 404, body = Problem)))]
/// Fatigue caps and the receipt webhook.
pub(crate) async fn get_settings(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
) -> ApiResult<Json<PushSettings>> {
    Ok(Json(
        state
            .push
            .get_settings(&principal, &workspace, &app)
            .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/settings", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    request_body = PushSettings,
    responses((status = 200, body = PushSettings), (status = 422, body = Problem)))]
/// Replaces the fatigue caps and the receipt webhook (admin).
pub(crate) async fn put_settings(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Json(settings): Json<PushSettings>,
) -> ApiResult<Json<PushSettings>> {
    Ok(Json(
        state
            .push
            .put_settings(&principal, &workspace, &app, settings)
            .await?,
    ))
}

/// Paging of the task list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskParams {
    /// Tasks created before this instant (ms).
    before: Option<i64>,
    /// At most this many (default 50, at most 200).
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/tasks", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), TaskParams),
    responses((status = 200, body = Vec<PushTask>), (status = 404, body = Problem)))]
/// The app's push tasks with their counters, newest first.
pub(crate) async fn list_tasks(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Query(params): Query<TaskParams>,
) -> ApiResult<Json<Vec<PushTask>>> {
    Ok(Json(
        state
            .push
            .list_tasks(
                &principal,
                &workspace,
                &app,
                params.before,
                params.limit.unwrap_or(50),
            )
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/tasks/{task}", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("task" = String, Path, description = "Task id")),
    responses((status = 200, body = PushTaskDetail), (status = 404, body = Problem)))]
/// One task: its delivery funnel, per channel and failures by reason.
pub(crate) async fn get_task(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, task)): Path<(String, String, String)>,
) -> ApiResult<Json<PushTaskDetail>> {
    Ok(Json(
        state
            .push
            .task_detail(&principal, &workspace, &app, &task)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/tasks/{task}/cancel", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("task" = String, Path, description = "Task id")),
    responses((status = 204), (status = 409, body = Problem)))]
/// Cancels a scheduled or recurring task before it sends.
pub(crate) async fn cancel_task(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, task)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .push
        .cancel_task(&principal, &workspace, &app, &task)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/revoke", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    request_body = RevokeRequest,
    responses((status = 200, body = RevokeResult), (status = 404, body = Problem), (status = 409, body = Problem)))]
/// Revokes a message (by id or business id) or a task, within 7 days.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Json(request): Json<RevokeRequest>,
) -> ApiResult<Json<RevokeResult>> {
    Ok(Json(
        state
            .push
            .revoke(&principal, &workspace, &app, request)
            .await?,
    ))
}

/// `?limit=` of a device's deliveries.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceParams {
    /// At most this many (default 50, at most 500).
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/devices/{device}/messages", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("device" = String, Path, description = "Device id"), DeviceParams),
    responses((status = 200, body = Vec<DeliveryStatus>), (status = 404, body = Problem)))]
/// The status of each message sent to one device, newest first.
pub(crate) async fn device_messages(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, device)): Path<(String, String, String)>,
    Query(params): Query<DeviceParams>,
) -> ApiResult<Json<Vec<DeliveryStatus>>> {
    Ok(Json(
        state
            .push
            .device_messages(
                &principal,
                &workspace,
                &app,
                &device,
                params.limit.unwrap_or(50),
            )
            .await?,
    ))
}

/// The range and filters of the core indexes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatsParams {
    /// First UTC day, `YYYY-MM-DD` (default: 29 days before `to`).
    from: Option<String>,
    /// Last UTC day, `YYYY-MM-DD` (default: today).
    to: Option<String>,
    /// Only this platform.
    platform: Option<String>,
    /// Only this channel (`atoll`, `apns`, `fcm`, `hms`).
    channel: Option<String>,
    /// Only this send type.
    kind: Option<String>,
}

fn parse_day(field: &str, text: &str) -> Result<i64, ApiError> {
    let invalid = || {
        ApiError::new(
            ErrorCode::ValidationFailed,
            format!("{field} must be YYYY-MM-DD"),
        )
    };
    let mut parts = text.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    let (y, m, d): (i64, u32, u32) = (
        y.parse().map_err(|_| invalid())?,
        m.parse().map_err(|_| invalid())?,
        d.parse().map_err(|_| invalid())?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(invalid());
    }
    Ok(atoll_protocol::time::days_from_civil(y, m, d))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/push/stats", tag = "push",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), StatsParams),
    responses((status = 200, body = PushStats), (status = 422, body = Problem)))]
/// Core indexes per day (≤ 90 days): targeted, sent, arrived, opened, ignored,
/// failed, with arrival, open and ignore rates.
pub(crate) async fn stats(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Query(params): Query<StatsParams>,
) -> ApiResult<Json<PushStats>> {
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        .div_euclid(86_400_000);
    let to = match &params.to {
        Some(text) => parse_day("to", text)?,
        None => today,
    };
    let from = match &params.from {
        Some(text) => parse_day("from", text)?,
        None => to - 29,
    };
    let kind = match params.kind.as_deref() {
        Some(text) => Some(SendKind::parse(text).ok_or_else(|| {
            ApiError::new(
                ErrorCode::ValidationFailed,
                format!("kind '{text}' is not a send type"),
            )
        })?),
        None => None,
    };
    Ok(Json(
        state
            .push
            .stats(
                &principal,
                &workspace,
                &app,
                from,
                to,
                params.platform.as_deref(),
                params.channel.as_deref(),
                kind,
            )
            .await?,
    ))
}
