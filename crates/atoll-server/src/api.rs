//! The admin REST API (`/api/v1`): handlers only. Each handler passes the
//! authenticated caller to `PlatformService`, which authorises the operation
//! itself; no handler reads a tenant from the body.
//!
//! Routes are registered with `utoipa_axum::routes!`, which adds each handler to
//! the router and to the OpenAPI document in one step, so the document served at
//! `/api/v1/openapi.json` is the route list (the authorisation matrix test is
//! generated from it).

mod analytics;
mod apps;
mod auth;
mod delivery;
mod devices;
mod gateway;
mod lists;
mod members;
mod push;
mod switches;
mod sync;
mod tokens;
mod workspaces;

use crate::state::AppState;
use atoll_protocol::admin::*;
use atoll_protocol::device::{Platform, PushChannel};
use atoll_protocol::Problem;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Atoll admin API",
        description = "Manage workspaces, apps, members, tokens and devices. Errors are RFC 9457 problem documents with a stable `code`."
    ),
    modifiers(&BearerAuth),
    components(schemas(
        Problem, Role, Platform, PushChannel, User, Me, Workspace, App, SdkConfig, AppWithSecret,
        Member, ApiToken, TokenWithSecret, AuditEntry, Device, PushToken, AppUser
    ))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The admin API router and its OpenAPI document.
pub fn router() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(
            workspaces::list_workspaces,
            workspaces::create_workspace
        ))
        .routes(routes!(
            workspaces::get_workspace,
            workspaces::update_workspace,
            workspaces::delete_workspace
        ))
        .routes(routes!(workspaces::audit_log))
        .routes(routes!(apps::list_apps, apps::create_app))
        .routes(routes!(apps::get_app, apps::update_app, apps::delete_app))
        .routes(routes!(apps::rotate_secret))
        .routes(routes!(apps::sdk_config))
        .routes(routes!(devices::recent_devices))
        .routes(routes!(devices::get_device))
        .routes(routes!(devices::get_app_user))
        .routes(routes!(members::list_members, members::add_member))
        .routes(routes!(members::update_member, members::remove_member))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(analytics::overview))
        .routes(routes!(analytics::active_users))
        .routes(routes!(analytics::realtime))
        .routes(routes!(analytics::retention))
        .routes(routes!(analytics::behaviour))
        .routes(routes!(analytics::pages))
        .routes(routes!(analytics::paths))
        .routes(routes!(analytics::events))
        .routes(routes!(analytics::event_detail))
        .routes(routes!(analytics::funnel))
        .routes(routes!(analytics::list_funnels, analytics::save_funnel))
        .routes(routes!(analytics::delete_funnel))
        .routes(routes!(analytics::saved_funnel_report))
        .routes(routes!(analytics::distribution))
        .routes(routes!(analytics::timeline))
        .routes(routes!(analytics::list_definitions))
        .routes(routes!(analytics::define_event, analytics::undefine_event))
        .routes(routes!(analytics::get_settings, analytics::put_settings))
        .routes(routes!(analytics::privacy_export))
        .routes(routes!(analytics::privacy_delete))
        .routes(routes!(analytics::backfill))
        .routes(routes!(switches::current, switches::publish))
        .routes(routes!(switches::put_switch, switches::delete_switch))
        .routes(routes!(switches::preview))
        .routes(routes!(switches::history))
        .routes(routes!(switches::version))
        .routes(routes!(switches::rollback))
        .routes(routes!(switches::evaluate))
        .routes(routes!(lists::list_lists))
        .routes(routes!(
            lists::get_list,
            lists::put_list,
            lists::delete_list
        ))
        .routes(routes!(delivery::signing_key))
        .routes(routes!(delivery::list_packages, delivery::upload_package))
        .routes(routes!(delivery::get_package))
        .routes(routes!(delivery::list_releases, delivery::create_release))
        .routes(routes!(delivery::get_release, delivery::update_release))
        .routes(routes!(delivery::promote_release))
        .routes(routes!(delivery::pause_release))
        .routes(routes!(delivery::resume_release))
        .routes(routes!(delivery::end_release))
        .routes(routes!(delivery::rollback_release))
        .routes(routes!(delivery::release_stats))
        .routes(routes!(delivery::release_audience))
        .routes(routes!(gateway::list_groups, gateway::create_group))
        .routes(routes!(
            gateway::get_group,
            gateway::put_group,
            gateway::delete_group
        ))
        .routes(routes!(gateway::rotate_group_secret))
        .routes(routes!(gateway::export_openapi, gateway::import_openapi))
        .routes(routes!(gateway::list_apis, gateway::create_api))
        .routes(routes!(
            gateway::get_api,
            gateway::put_api,
            gateway::delete_api
        ))
        .routes(routes!(gateway::enable_api))
        .routes(routes!(gateway::disable_api))
        .routes(routes!(gateway::get_settings, gateway::put_settings))
        .routes(routes!(gateway::stats))
        .routes(routes!(gateway::test_call))
        .routes(routes!(gateway::list_keys))
        .routes(routes!(gateway::rotate_keys))
        .routes(routes!(sync::list_biz_types, sync::create_biz_type))
        .routes(routes!(
            sync::get_biz_type,
            sync::put_biz_type,
            sync::delete_biz_type
        ))
        .routes(routes!(sync::send_order))
        .routes(routes!(sync::send_global_order))
        .routes(routes!(sync::stats))
        .routes(routes!(sync::online))
        .routes(routes!(sync::device_state))
        .routes(routes!(push::send_simple))
        .routes(routes!(push::send_template))
        .routes(routes!(push::send_multiple))
        .routes(routes!(push::send_broadcast))
        .routes(routes!(push::list_templates, push::create_template))
        .routes(routes!(
            push::get_template,
            push::put_template,
            push::delete_template
        ))
        .routes(routes!(push::list_channels))
        .routes(routes!(push::put_channel, push::delete_channel))
        .routes(routes!(push::get_settings, push::put_settings))
        .routes(routes!(push::list_tasks))
        .routes(routes!(push::get_task))
        .routes(routes!(push::cancel_task))
        .routes(routes!(push::revoke))
        .routes(routes!(push::device_messages))
        .routes(routes!(push::stats))
        .split_for_parts()
}
