//! DTOs of the admin API (`/api/v1/*`), used by the console, the CLI and app backends.
//!
//! Times are Unix milliseconds. Secrets (app secrets, API tokens, session tokens)
//! appear only in the answer that creates them.

use crate::device::{wire_enum, Platform, PushChannel};
use serde::{Deserialize, Serialize};

wire_enum! {
    /// A member's role in a workspace, from most to least powerful.
    Role {
        /// Everything, including deleting the workspace and managing owners.
        Owner = "owner",
        /// Apps, secrets, members (below owner) and API tokens.
        Admin = "admin",
        /// Configure apps and read all data.
        Developer = "developer",
        /// Read only.
        Viewer = "viewer",
    }
}

/// `POST /api/v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user's email.
    pub email: String,
    /// The user's password.
    pub password: String,
}

/// The answer to a login: a bearer session token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    /// Bearer token for `Authorization: Bearer …`; shown once.
    pub token: String,
    /// When the session ends.
    pub expires_at: i64,
    /// Who logged in.
    pub user: User,
}

/// A console user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Stable id.
    pub id: String,
    /// Login email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Whether the user administers the whole instance.
    pub instance_admin: bool,
}

/// `GET /api/v1/me`: who is calling and what they can see.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    /// The user, for a session; `None` for an API token.
    pub user: Option<User>,
    /// The API token, when the caller is one.
    pub token: Option<ApiToken>,
    /// Workspaces the caller can see.
    pub workspaces: Vec<Workspace>,
}

/// `POST /api/v1/workspaces`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    /// URL name: lower-case letters, digits and hyphens, 2–40 characters.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// `PATCH /api/v1/workspaces/{workspace}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkspace {
    /// New display name.
    pub name: String,
}

/// A workspace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workspace {
    /// Stable id.
    pub id: String,
    /// URL name, used in API paths.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: i64,
    /// The caller's role, for a user.
    pub role: Option<Role>,
}

/// `POST /api/v1/workspaces/{workspace}/apps`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// Display name, 1–80 characters.
    pub name: String,
    /// Platforms the app ships on (at least one).
    pub platforms: Vec<Platform>,
}

/// `PATCH /api/v1/workspaces/{workspace}/apps/{app}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New platform list.
    #[serde(default)]
    pub platforms: Option<Vec<Platform>>,
}

/// An app (never with its secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct App {
    /// Public id, used in API paths and by the SDK.
    pub app_key: String,
    /// Display name.
    pub name: String,
    /// Platforms.
    pub platforms: Vec<Platform>,
    /// The workspace slug.
    pub workspace: String,
    /// Creation time.
    pub created_at: i64,
    /// When the secret was last rotated.
    pub secret_rotated_at: i64,
}

/// What an SDK needs to talk to this app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SdkConfig {
    /// The server's public URL.
    pub server_url: String,
    /// The app key.
    pub app_key: String,
    /// The app secret, when it is being shown (creation, rotation).
    pub app_secret: Option<String>,
}

/// The answer to creating an app or rotating its secret: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppWithSecret {
    /// The app.
    pub app: App,
    /// The SDK configuration, secret included.
    pub sdk_config: SdkConfig,
    /// Until when the previous secret is still accepted (rotation only).
    pub previous_secret_valid_until: Option<i64>,
}

/// `POST /api/v1/workspaces/{workspace}/apps/{app}/rotate-secret`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the old secret keeps working, in seconds (default 0, at most 30 days),
    /// so installed apps can move to the new one.
    #[serde(default)]
    pub grace_seconds: Option<u64>,
}

/// A member of a workspace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    /// The user.
    pub user: User,
    /// Their role here.
    pub role: Role,
    /// When they were added.
    pub added_at: i64,
}

/// `POST /api/v1/workspaces/{workspace}/members`: add a user by email. A user
/// unknown to the instance is created with the given initial password.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The user's email.
    pub email: String,
    /// The role to give.
    pub role: Role,
    /// Display name for a new user.
    #[serde(default)]
    pub name: Option<String>,
    /// Initial password for a new user (at least 10 characters).
    #[serde(default)]
    pub password: Option<String>,
}

/// `PATCH /api/v1/workspaces/{workspace}/members/{user}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    /// The new role.
    pub role: Role,
}

/// `POST /api/v1/workspaces/{workspace}/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for.
    pub name: String,
    /// Scopes: `admin`, `read`, `push:send`, `sync:write`, …
    pub scopes: Vec<String>,
    /// Lifetime in days; none for a token that does not expire.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// An API token (without its secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiToken {
    /// Stable id, used to revoke it.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The workspace slug.
    pub workspace: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    /// Creation time.
    pub created_at: i64,
    /// Expiry, if any.
    pub expires_at: Option<i64>,
    /// Last use (updated at most once a minute).
    pub last_used_at: Option<i64>,
}

/// The answer to creating a token: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenWithSecret {
    /// The token.
    pub token: ApiToken,
    /// The bearer secret.
    pub secret: String,
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Increasing id; pass the last one as `before` to page back.
    pub id: i64,
    /// When it happened.
    pub at: i64,
    /// Who did it: `user:<email>`, `token:<name>` or `system`.
    pub actor: String,
    /// What was done, e.g. `app.create`.
    pub action: String,
    /// The kind of object.
    pub object_type: String,
    /// The object's id.
    pub object_id: String,
    /// A before/after summary (never secrets).
    pub summary: serde_json::Value,
}

/// A device as the admin API shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    /// The SDK-generated id.
    pub device_id: String,
    /// The app key.
    pub app_key: String,
    /// Platform.
    pub platform: Option<Platform>,
    /// OS name.
    pub os: Option<String>,
    /// OS version.
    pub os_version: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// App version.
    pub app_version: Option<String>,
    /// Channel.
    pub channel: Option<String>,
    /// Locale.
    pub locale: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Network.
    pub network: Option<String>,
    /// The bound user, if any.
    pub user_id: Option<String>,
    /// First registration.
    pub first_seen_at: i64,
    /// Latest request.
    pub last_seen_at: i64,
    /// Push tokens per channel.
    pub push_tokens: Vec<PushToken>,
}

/// A device's token for one vendor channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushToken {
    /// The channel.
    pub channel: PushChannel,
    /// The vendor token.
    pub token: String,
    /// When the device last sent it.
    pub updated_at: i64,
}

/// A user of an app and the devices bound to them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppUser {
    /// The app's account id.
    pub user_id: String,
    /// The device used most recently.
    pub most_recent_device: Option<String>,
    /// Bound devices, most recent first.
    pub devices: Vec<Device>,
}

/// Scopes an API token may carry. `admin` covers everything in the workspace;
/// `read` covers every read; module scopes cover their module's writes.
pub const SCOPES: &[&str] = &["admin", "read", "devices:write", "push:send", "sync:write"];
