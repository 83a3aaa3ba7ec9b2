//! Analytics admin routes: reports, the event registry, saved funnels, settings,
//! privacy requests and the backfill path. Handlers only; the analytics service
//! authorises every call.

use crate::http::auth::Caller;
use crate::http::extract::{Json, Path, Query};
use crate::http::ApiResult;
use crate::state::AppState;
use atoll_protocol::analytics::*;
use atoll_protocol::events::EventBatchResponse;
use atoll_protocol::Problem;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

type AppPath = Path<(String, String)>;

/// An ad-hoc funnel: its definition as JSON in one parameter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FunnelParams {
    /// A `FunnelDefinition` as JSON, e.g.
    /// `{"steps":[{"event_id":"view"},{"event_id":"buy"}],"window_secs":86400}`.
    definition: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/overview", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ReportFilter),
    responses((status = 200, body = OverviewReport), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn overview(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Query(filter): Query<ReportFilter>,
) -> ApiResult<Json<OverviewReport>> {
    Ok(Json(
        state
            .analytics
            .overview(&principal, &workspace, &app, &filter)
            .await?,
    ))
}

/// DAU, WAU, MAU, new and cumulative devices and UV by day, answered from the
/// per-day device and account sets without reading events.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/active", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ReportFilter),
    responses((status = 200, body = ActiveReport), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn active_users(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Query(filter): Query<ReportFilter>,
) -> ApiResult<Json<ActiveReport>> {
    Ok(Json(
        state
            .analytics
            .active_users(&principal, &workspace, &app, &filter)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/realtime", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ReportFilter),
    responses((status = 200, body = RealtimeReport), (status = 404, body = Problem)))]
pub(crate) async fn realtime(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Query(filter): Query<ReportFilter>,
) -> ApiResult<Json<RealtimeReport>> {
    Ok(Json(
        state
            .analytics
            .realtime(&principal, &workspace, &app, &filter)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/retention", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ReportFilter, RetentionQuery),
    responses((status = 200, body = RetentionReport), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn retention(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Query(filter): Query<ReportFilter>,
    Query(query): Query<RetentionQuery>,
) -> ApiResult<Json<RetentionReport>> {
    Ok(Json(
        state
            .analytics
            .retention(&principal, &workspace, &app, &filter, &query)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/behaviour", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ReportFilter),
    responses((status = 200, body = BehaviourReport), (status = 404, body = Problem)))]
pub(crate) async fn behaviour(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Query(filter): Query<ReportFilter>,
) -> ApiResult<Json<BehaviourReport>> {
    Ok(Json(
        state
            .analytics
            .behaviour(&principal, &workspace, &app, &filter)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/pages", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ReportFilter),
    responses((status = 200, body = PagesReport), (status = 404, body = Problem)))]
pub(crate) async fn pages(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Query(filter): Query<ReportFilter>,
) -> ApiResult<Json<PagesReport>> {
    Ok(Json(
        state
            .analytics
            .pages(&principal, &workspace, &app, &filter)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/paths", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ReportFilter, PathQuery),
    responses((status = 200, body = PathReport), (status = 404, body = Problem)))]
pub(crate) async fn paths(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Query(filter): Query<ReportFilter>,
    Query(query): Query<PathQuery>,
) -> ApiResult<Json<PathReport>> {
    Ok(Json(
        state
            .analytics
            .paths(&principal, &workspace, &app, &filter, &query)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/events", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ReportFilter),
    responses((status = 200, body = EventsReport), (status = 404, body = Problem)))]
pub(crate) async fn events(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Query(filter): Query<ReportFilter>,
) -> ApiResult<Json<EventsReport>> {
    Ok(Json(
        state
            .analytics
            .events_report(&principal, &workspace, &app, &filter)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/events/{event}", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"),
        ("event" = String, Path, description = "Event name"), ReportFilter, EventQuery),
    responses((status = 200, body = EventDetail), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn event_detail(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, event)): Path<(String, String, String)>,
    Query(filter): Query<ReportFilter>,
    Query(query): Query<EventQuery>,
) -> ApiResult<Json<EventDetail>> {
    Ok(Json(
        state
            .analytics
            .event_detail(&principal, &workspace, &app, &event, &filter, &query)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/funnel", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), FunnelParams, ReportFilter),
    responses((status = 200, body = FunnelReport), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn funnel(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Query(params): Query<FunnelParams>,
    Query(filter): Query<ReportFilter>,
) -> ApiResult<Json<FunnelReport>> {
    Ok(Json(
        state
            .analytics
            .funnel_json(
                &principal,
                &workspace,
                &app,
                params.definition.as_deref(),
                filter,
            )
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/funnels", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 200, body = Vec<SavedFunnel>), (status = 404, body = Problem)))]
pub(crate) async fn list_funnels(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
) -> ApiResult<Json<Vec<SavedFunnel>>> {
    Ok(Json(
        state
            .analytics
            .list_funnels(&principal, &workspace, &app)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/funnels", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    request_body = CreateFunnel,
    responses((status = 201, body = SavedFunnel), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn save_funnel(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Json(request): Json<CreateFunnel>,
) -> ApiResult<(StatusCode, Json<SavedFunnel>)> {
    let saved = state
        .analytics
        .save_funnel(&principal, &workspace, &app, request)
        .await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/funnels/{funnel}", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"),
        ("funnel" = String, Path, description = "Funnel id")),
    responses((status = 204), (status = 404, body = Problem)))]
pub(crate) async fn delete_funnel(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, funnel)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .analytics
        .delete_funnel(&principal, &workspace, &app, &funnel)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/funnels/{funnel}/report", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"),
        ("funnel" = String, Path, description = "Funnel id"), ReportFilter),
    responses((status = 200, body = FunnelReport), (status = 404, body = Problem)))]
pub(crate) async fn saved_funnel_report(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, funnel)): Path<(String, String, String)>,
    Query(filter): Query<ReportFilter>,
) -> ApiResult<Json<FunnelReport>> {
    let saved = state
        .analytics
        .list_funnels(&principal, &workspace, &app)
        .await?
        .into_iter()
        .find(|f| f.id == funnel)
        .ok_or_else(|| {
            crate::http::ApiError::new(
                atoll_protocol::ErrorCode::NotFound,
                format!("funnel '{funnel}' not found"),
            )
        })?;
    let request = FunnelRequest {
        funnel: saved.funnel,
        filter,
    };
    Ok(Json(
        state
            .analytics
            .funnel(&principal, &workspace, &app, &request)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/distribution/{dimension}", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"),
        ("dimension" = String, Path, description = "app_version, platform, os_version, model, channel, region or network"), ReportFilter),
    responses((status = 200, body = DistributionReport), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn distribution(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, dimension)): Path<(String, String, String)>,
    Query(filter): Query<ReportFilter>,
) -> ApiResult<Json<DistributionReport>> {
    Ok(Json(
        state
            .analytics
            .distribution(&principal, &workspace, &app, &dimension, &filter)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/timeline", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), TimelineQuery),
    responses((status = 200, body = TimelineReport), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn timeline(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Query(query): Query<TimelineQuery>,
) -> ApiResult<Json<TimelineReport>> {
    Ok(Json(
        state
            .analytics
            .timeline(&principal, &workspace, &app, &query)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/registry", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 200, body = Vec<EventDefinition>), (status = 404, body = Problem)))]
pub(crate) async fn list_definitions(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
) -> ApiResult<Json<Vec<EventDefinition>>> {
    Ok(Json(
        state
            .analytics
            .list_definitions(&principal, &workspace, &app)
            .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/registry/{event}", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"),
        ("event" = String, Path, description = "Event name")),
    request_body = EventDefinition,
    responses((status = 200, body = EventDefinition), (status = 422, body = Problem)))]
pub(crate) async fn define_event(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, event)): Path<(String, String, String)>,
    Json(mut definition): Json<EventDefinition>,
) -> ApiResult<Json<EventDefinition>> {
    // The path names the event; a body naming another is a mistake, not a rename.
    if !definition.event_id.is_empty() && definition.event_id != event {
        return Err(crate::http::ApiError::new(
            atoll_protocol::ErrorCode::ValidationFailed,
            format!(
                "the body names '{}' but the path names '{event}'",
                definition.event_id
            ),
        ));
    }
    definition.event_id = event;
    Ok(Json(
        state
            .analytics
            .define_event(&principal, &workspace, &app, definition)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/registry/{event}", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"),
        ("event" = String, Path, description = "Event name")),
    responses((status = 204), (status = 404, body = Problem)))]
pub(crate) async fn undefine_event(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, event)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .analytics
        .undefine_event(&principal, &workspace, &app, &event)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/settings", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    responses((status = 200, body = AnalyticsSettings), (status = 404, body = Problem)))]
pub(crate) async fn get_settings(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
) -> ApiResult<Json<AnalyticsSettings>> {
    Ok(Json(
        state
            .analytics
            .settings(&principal, &workspace, &app)
            .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/settings", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    request_body = AnalyticsSettings,
    responses((status = 200, body = AnalyticsSettings), (status = 422, body = Problem)))]
pub(crate) async fn put_settings(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Json(settings): Json<AnalyticsSettings>,
) -> ApiResult<Json<AnalyticsSettings>> {
    Ok(Json(
        state
            .analytics
            .update_settings(&principal, &workspace, &app, settings)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/privacy/export", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    request_body = PrivacyRequest,
    responses((status = 200, body = Vec<TimelineEvent>), (status = 422, body = Problem)))]
pub(crate) async fn privacy_export(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Json(request): Json<PrivacyRequest>,
) -> ApiResult<Json<Vec<TimelineEvent>>> {
    Ok(Json(
        state
            .analytics
            .export_subject(&principal, &workspace, &app, &request)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/privacy/delete", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    request_body = PrivacyRequest,
    responses((status = 200, body = DeletionReport), (status = 422, body = Problem)))]
pub(crate) async fn privacy_delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Json(request): Json<PrivacyRequest>,
) -> ApiResult<Json<DeletionReport>> {
    Ok(Json(
        state
            .analytics
            .delete_subject(&principal, &workspace, &app, &request)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/analytics/backfill", tag = "analytics",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    request_body = BackfillBatch,
    responses((status = 200, body = EventBatchResponse), (status = 422, body = Problem)))]
pub(crate) async fn backfill(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Json(batch): Json<BackfillBatch>,
) -> ApiResult<Json<EventBatchResponse>> {
    Ok(Json(
        state
            .analytics
            .backfill(&principal, &workspace, &app, batch)
            .await?,
    ))
}
