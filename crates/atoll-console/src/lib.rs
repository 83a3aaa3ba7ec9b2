//! Atoll's web console: server-rendered pages embedded in the binary.
//!
//! Pages are askama templates rendered on the server; there is no separate
//! front-end build. Authentication is the session cookie set at login; every form
//! carries the session's CSRF token. The console calls `PlatformService` with the
//! logged-in user as principal, so it enforces exactly the API's permissions.

use atoll_platform::PlatformService;
use axum::routing::get;
use axum::Router;

/// Name of the console's session cookie (also accepted by the admin API).
pub const SESSION_COOKIE: &str = "atoll_session";

/// What console handlers can reach.
#[derive(Debug, Clone)]
pub struct ConsoleState {
    platform: PlatformService,
}

impl ConsoleState {
    /// Console state over the platform service.
    pub fn new(platform: PlatformService) -> ConsoleState {
        ConsoleState { platform }
    }
}

/// The console's routes, mounted at `/`.
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/login") }),
        )
        .with_state(state)
}
