//! Delivery admin routes: the workspace signing key, package uploads (the body
//! is the file, streamed to disk and hashed, never held in memory), releases
//! and their lifecycle, release stats. Handlers only; the delivery service
//! authorises every call.

use crate::http::auth::Caller;
use crate::http::extract::{Json, Path, Query};
use crate::http::{ApiError, ApiResult};
use crate::state::AppState;
use atoll_protocol::delivery::*;
use atoll_protocol::device::Platform;
use atoll_protocol::{ErrorCode, Problem};
use axum::body::Body;
use axum::extract::State;
use serde::Deserialize;

type AppPath = Path<(String, String)>;
type ItemPath = Path<(String, String, String)>;

/// Query of a package upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadParams {
    /// `app`, `h5`, `miniprogram` or `hotpatch`.
    kind: ResourceKind,
    /// The platform.
    platform: Platform,
    /// The version.
    version: String,
    /// For H5 and mini programs: the package id.
    resource_id: Option<String>,
    /// For a hotpatch: the app version it patches.
    for_app_version: Option<String>,
    /// The original file name.
    file_name: Option<String>,
    /// An installer's store page instead of a file (empty body).
    store_url: Option<String>,
}

/// Paging and filter of package and release lists.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only packages of this kind.
    kind: Option<ResourceKind>,
    /// Entries at most (default 100, at most 500).
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/signing-key", tag = "delivery",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug")),
    responses((status = 200, body = SigningKey), (status = 404, body = Problem)))]
pub(crate) async fn signing_key(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(workspace): Path<String>,
) -> ApiResult<Json<SigningKey>> {
    Ok(Json(
        state.delivery.signing_key(&principal, &workspace).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/packages", tag = "delivery",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), UploadParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The package file (empty with store_url)"),
    responses((status = 201, body = Package), (status = 409, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn upload_package(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    uri: axum::http::Uri,
    body: Body,
) -> ApiResult<(axum::http::StatusCode, Json<Package>)> {
    // Authorise before reading the query or a possibly large body.
    state
        .delivery
        .authorize_upload(&principal, &workspace, &app)
        .await?;
    let axum::extract::Query(params) = axum::extract::Query::<UploadParams>::try_from_uri(&uri)
        .map_err(|error| ApiError::new(ErrorCode::InvalidRequest, error.body_text()))?;
    let spooled = state.delivery.spool(body.into_data_stream()).await?;
    let file = spooled.as_ref().map(|spooled| spooled.file());
    let request = UploadPackage {
        kind: params.kind,
        platform: params.platform,
        version: params.version,
        resource_id: params.resource_id,
        for_app_version: params.for_app_version,
        file_name: params.file_name,
        store_url: params.store_url,
    };
    let package = state
        .delivery
        .upload_package(&principal, &workspace, &app, request, file)
        .await?;
    Ok((axum::http::StatusCode::CREATED, Json(package)))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/packages", tag = "delivery",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ListParams),
    responses((status = 200, body = Vec<Package>), (status = 404, body = Problem)))]
pub(crate) async fn list_packages(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<Vec<Package>>> {
    Ok(Json(
        state
            .delivery
            .packages(&principal, &workspace, &app, params.kind, params.limit)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/packages/{id}", tag = "delivery",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("id" = String, Path, description = "Package id")),
    responses((status = 200, body = Package), (status = 404, body = Problem)))]
pub(crate) async fn get_package(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, id)): ItemPath,
) -> ApiResult<Json<Package>> {
    Ok(Json(
        state
            .delivery
            .package(&principal, &workspace, &app, &id)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/releases", tag = "delivery",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ListParams),
    responses((status = 200, body = Vec<Release>), (status = 404, body = Problem)))]
pub(crate) async fn list_releases(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<Vec<Release>>> {
    Ok(Json(
        state
            .delivery
            .releases(&principal, &workspace, &app, params.limit)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/releases", tag = "delivery",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key")),
    request_body = CreateRelease,
    responses((status = 201, body = Release), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn create_release(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app)): AppPath,
    Json(request): Json<CreateRelease>,
) -> ApiResult<(axum::http::StatusCode, Json<Release>)> {
    let release = state
        .delivery
        .create_release(&principal, &workspace, &app, request)
        .await?;
    Ok((axum::http::StatusCode::CREATED, Json(release)))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/releases/{id}", tag = "delivery",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("id" = String, Path, description = "Release id")),
    responses((status = 200, body = Release), (status = 404, body = Problem)))]
pub(crate) async fn get_release(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, id)): ItemPath,
) -> ApiResult<Json<Release>> {
    Ok(Json(
        state
            .delivery
            .release(&principal, &workspace, &app, &id)
            .await?,
    ))
}

#[utoipa::path(patch, path = "/api/v1/workspaces/{workspace}/apps/{app}/releases/{id}", tag = "delivery",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("id" = String, Path, description = "Release id")),
    request_body = UpdateRelease,
    responses((status = 200, body = Release), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn update_release(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, id)): ItemPath,
    Json(request): Json<UpdateRelease>,
) -> ApiResult<Json<Release>> {
    Ok(Json(
        state
            .delivery
            .update_release(&principal, &workspace, &app, &id, request)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/releases/{id}/promote", tag = "delivery",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("id" = String, Path, description = "Release id")),
    request_body = PromoteRelease,
    responses((status = 200, body = Release), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn promote_release(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, id)): ItemPath,
    Json(request): Json<PromoteRelease>,
) -> ApiResult<Json<Release>> {
    Ok(Json(
        state
            .delivery
            .promote(&principal, &workspace, &app, &id, request)
            .await?,
    ))
}

/// The lifecycle actions without a body: pause, resume, end, rollback.
macro_rules! lifecycle_route {
    ($name:ident, $action:ident, $path:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "delivery",
            security(("bearer" = [])),
            params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("id" = String, Path, description = "Release id")),
            responses((status = 200, body = Release), (status = 404, body = Problem), (status = 409, body = Problem)))]
        pub(crate) async fn $name(
            State(state): State<AppState>,
            Caller(principal): Caller,
            Path((workspace, app, id)): ItemPath,
        ) -> ApiResult<Json<Release>> {
            Ok(Json(
                state
                    .delivery
                    .act(&principal, &workspace, &app, &id, ReleaseAction::$action)
                    .await?,
            ))
        }
    };
}

lifecycle_route!(
    pause_release,
    Pause,
    "/api/v1/workspaces/{workspace}/apps/{app}/releases/{id}/pause",
    "Stops offering a release for now."
);
lifecycle_route!(
    resume_release,
    Resume,
    "/api/v1/workspaces/{workspace}/apps/{app}/releases/{id}/resume",
    "Offers a paused release again."
);
lifecycle_route!(
    end_release,
    End,
    "/api/v1/workspaces/{workspace}/apps/{app}/releases/{id}/end",
    "Finishes a release; devices keep what they installed."
);
lifecycle_route!(
    rollback_release,
    Rollback,
    "/api/v1/workspaces/{workspace}/apps/{app}/releases/{id}/rollback",
    "Withdraws a release; devices that installed it are sent back."
);

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/apps/{app}/releases/{id}/stats", tag = "delivery",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("id" = String, Path, description = "Release id")),
    responses((status = 200, body = ReleaseStats), (status = 404, body = Problem)))]
pub(crate) async fn release_stats(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, id)): ItemPath,
) -> ApiResult<Json<ReleaseStats>> {
    Ok(Json(
        state
            .delivery
            .release_stats(&principal, &workspace, &app, &id)
            .await?,
    ))
}

/// Largest audience preview body: 100 000 ids as JSON.
const MAX_AUDIENCE_BODY: usize = 16 << 20;

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/apps/{app}/releases/{id}/audience", tag = "delivery",
    security(("bearer" = [])),
    params(("workspace" = String, Path, description = "Workspace slug"), ("app" = String, Path, description = "App key"), ("id" = String, Path, description = "Release id")),
    request_body = AudienceRequest,
    responses((status = 200, body = AudienceAnswer), (status = 404, body = Problem), (status = 413, body = Problem)))]
pub(crate) async fn release_audience(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((workspace, app, id)): ItemPath,
    body: Body,
) -> ApiResult<Json<AudienceAnswer>> {
    let bytes = crate::http::body::read_bounded(body, MAX_AUDIENCE_BODY, None).await?;
    let request: AudienceRequest = serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the body is not an audience request: {error}"),
        )
    })?;
    Ok(Json(
        state
            .delivery
            .audience(&principal, &workspace, &app, &id, request)
            .await?,
    ))
}
