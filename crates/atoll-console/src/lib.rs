//! Atoll's web console: server-rendered pages embedded in the binary.
//!
//! Pages are askama templates rendered on the server; there is no separate
//! front-end build. Authentication is the session cookie set at login; every form
//! carries the session's CSRF token. The console calls `PlatformService` with the
//! logged-in user as principal, so it enforces exactly the API's permissions: a
//! form hidden from a viewer is a courtesy, the platform's check is the rule.
//!
//! Map of the crate:
//! - [`router`] lists every route; `auth` holds login, logout, the session
//!   extractor and both CSRF checks; `view` the shared page frame (top bar,
//!   navigation, flash messages), error pages and template filters;
//! - `pages/*` one module per area (workspaces, apps, devices, members, tokens,
//!   audit, analytics, switches), each with its handlers and templates;
//! - `templates/` the askama templates, `assets/` the one stylesheet and the few
//!   lines of script (copy buttons, confirmations, closing menus), both compiled
//!   into the binary.
//!
//! Routes never collide with the API (`/api/v1`), the device API (`/device/v1`)
//! or the ops endpoints: console pages live at `/`, `/login`, `/logout`,
//! `/workspaces/new`, `/w/{workspace}/…` and `/assets/…`.

mod auth;
mod charts;
mod pages;
mod time;
mod view;

pub use auth::{cookie, tokens_match};

use atoll_analytics::AnalyticsService;
use atoll_delivery::DeliveryService;
use atoll_gateway::Gateway;
use atoll_lists::ListService;
use atoll_platform::PlatformService;
use atoll_switches::SwitchService;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// Name of the console's session cookie (also accepted by the admin API).
pub const SESSION_COOKIE: &str = "atoll_session";

/// What console handlers can reach.
#[derive(Debug, Clone)]
pub struct ConsoleState {
    platform: PlatformService,
    analytics: Arc<AnalyticsService>,
    switches: Arc<SwitchService>,
    delivery: Arc<DeliveryService>,
    lists: Arc<ListService>,
    gateway: Arc<Gateway>,
    sync: Arc<atoll_sync::SyncService>,
    push: Arc<atoll_push::PushService>,
}

impl ConsoleState {
    /// Console state over the platform and module services (one handle per
    /// module, as the server holds them).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        platform: PlatformService,
        analytics: Arc<AnalyticsService>,
        switches: Arc<SwitchService>,
        delivery: Arc<DeliveryService>,
        lists: Arc<ListService>,
        gateway: Arc<Gateway>,
        sync: Arc<atoll_sync::SyncService>,
        push: Arc<atoll_push::PushService>,
    ) -> ConsoleState {
        ConsoleState {
            platform,
            analytics,
            switches,
            delivery,
            lists,
            gateway,
            sync,
            push,
        }
    }
}

/// The console's routes, mounted at `/`.
pub fn router(state: ConsoleState) -> Router {
    use pages::{
        analytics, apps, audit, delivery, devices, gateway, members, push, switches, sync, tokens,
        workspaces,
    };
    Router::new()
        .route("/", get(workspaces::home))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route(
            "/workspaces/new",
            get(workspaces::new_page).post(workspaces::create),
        )
        .route("/w/{ws}", get(workspaces::overview))
        .route("/w/{ws}/apps", get(apps::list).post(apps::create))
        .route("/w/{ws}/apps/{app}", get(apps::detail))
        .route("/w/{ws}/apps/{app}/reveal-secret", post(apps::reveal))
        .route("/w/{ws}/apps/{app}/rotate-secret", post(apps::rotate))
        .route("/w/{ws}/apps/{app}/lookup", get(devices::lookup))
        .route("/w/{ws}/apps/{app}/devices/{device}", get(devices::device))
        .route("/w/{ws}/apps/{app}/users/{user}", get(devices::user))
        .route("/w/{ws}/devices", get(devices::index))
        .route("/w/{ws}/members", get(members::list).post(members::add))
        .route("/w/{ws}/members/{user}/role", post(members::change_role))
        .route("/w/{ws}/members/{user}/remove", post(members::remove))
        .route("/w/{ws}/tokens", get(tokens::list).post(tokens::create))
        .route("/w/{ws}/tokens/{token}/revoke", post(tokens::revoke))
        .route("/w/{ws}/audit", get(audit::list))
        .route("/w/{ws}/analytics", get(analytics::overview))
        .route(
            "/w/{ws}/analytics/registry",
            get(analytics::tab_registry).post(analytics::define),
        )
        .route(
            "/w/{ws}/analytics/funnels",
            get(analytics::tab_funnels).post(analytics::save_funnel),
        )
        .route("/w/{ws}/analytics/{tab}", get(analytics::tab))
        .route("/w/{ws}/switches", get(switches::index))
        .route("/w/{ws}/switches/review", post(switches::review))
        .route("/w/{ws}/switches/publish", post(switches::publish))
        .route("/w/{ws}/switches/delete", post(switches::delete))
        .route("/w/{ws}/switches/rollback", post(switches::rollback))
        .route("/w/{ws}/delivery", get(delivery::index))
        .route(
            "/w/{ws}/delivery/upload",
            // Packages are larger than other forms; the service caps the size.
            post(delivery::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/w/{ws}/delivery/releases", post(delivery::create))
        .route("/w/{ws}/delivery/rollout", post(delivery::rollout))
        .route("/w/{ws}/delivery/action", post(delivery::action))
        .route("/w/{ws}/delivery/lists", post(delivery::put_list))
        .route("/w/{ws}/push", get(push::index))
        .route("/w/{ws}/push/send", post(push::send))
        .route("/w/{ws}/push/templates", post(push::create_template))
        .route("/w/{ws}/push/channels", post(push::put_channel))
        .route("/w/{ws}/push/settings", post(push::put_settings))
        .route("/w/{ws}/sync", get(sync::index))
        .route("/w/{ws}/sync/biz-types", post(sync::create_biz_type))
        .route("/w/{ws}/sync/biz-types/action", post(sync::biz_type_action))
        .route("/w/{ws}/sync/send", post(sync::send))
        .route("/w/{ws}/gateway", get(gateway::index))
        .route("/w/{ws}/gateway/groups", post(gateway::create_group))
        .route("/w/{ws}/gateway/groups/rotate", post(gateway::rotate_group))
        .route("/w/{ws}/gateway/apis", post(gateway::create_api))
        .route("/w/{ws}/gateway/apis/save", post(gateway::save_api))
        .route("/w/{ws}/gateway/apis/action", post(gateway::api_action))
        .route("/w/{ws}/gateway/test", post(gateway::test))
        .route("/w/{ws}/gateway/keys/rotate", post(gateway::rotate_keys))
        // Console-shaped 404 for mistyped console addresses (the server's own
        // fallback answers problem JSON, which suits the APIs, not people).
        .route("/w/{ws}/{*rest}", get(workspaces::not_found))
        .route("/assets/console.css", get(stylesheet))
        .route("/assets/console.js", get(script))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// The stylesheet, compiled in.
pub(crate) const CSS: &str = include_str!("../assets/console.css");
/// The console's only script: copy buttons, confirmations, closing menus.
pub(crate) const JS: &str = include_str!("../assets/console.js");

/// Assets are cached for a year; pages link them with `?v=<hash of the content>`
/// so a new build is fetched at once instead of waiting for the cache to expire.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

async fn stylesheet() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

async fn script() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        body,
    )
        .into_response()
}

/// Headers on every console response. Pages may show secrets (app secrets, token
/// secrets), so they are never stored by the browser or a proxy; framing is
/// refused (clickjacking), and the CSP only allows our own stylesheet and script,
/// so injected markup could neither load nor run anything.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
