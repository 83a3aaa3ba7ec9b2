//! The platform's tables and queries, in the SQL subset both backends share.

use atoll_protocol::admin::{ApiToken, App, Role, User, Workspace};
use atoll_protocol::device::Platform;
use sqlx::any::AnyRow;
use sqlx::Row;

/// A row of `apps` with the secrets, for signature checks and rotation.
#[derive(Debug, Clone)]
pub(crate) struct AppRow {
    pub id: String,
    pub workspace_id: String,
    pub app: App,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
}

pub(crate) const APP_COLUMNS: &str = "a.id, a.workspace_id, a.app_key, a.name, a.platforms, \
     a.secret, a.previous_secret, a.previous_secret_until, a.secret_rotated_at, a.created_at, w.slug";

pub(crate) fn app_row(row: &AnyRow) -> Result<AppRow, sqlx::Error> {
    Ok(AppRow {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        app: App {
            app_key: row.try_get(2)?,
            name: row.try_get(3)?,
            platforms: parse_platforms(&row.try_get::<String, _>(4)?),
            secret_rotated_at: row.try_get(8)?,
            created_at: row.try_get(9)?,
            workspace: row.try_get(10)?,
        },
        secret: row.try_get(5)?,
        previous_secret: row.try_get(6)?,
        previous_secret_until: row.try_get(7)?,
    })
}

pub(crate) fn join_platforms(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(|platform| platform.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn parse_platforms(text: &str) -> Vec<Platform> {
    text.split(',').filter_map(Platform::parse).collect()
}

pub(crate) const USER_COLUMNS: &str = "u.id, u.email, u.name, u.instance_admin";

pub(crate) fn user(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get(0)?,
        email: row.try_get(1)?,
        name: row.try_get(2)?,
        instance_admin: row.try_get::<i64, _>(3)? != 0,
    })
}

pub(crate) const WORKSPACE_COLUMNS: &str = "w.id, w.slug, w.name, w.created_at";

pub(crate) fn workspace(row: &AnyRow, role: Option<Role>) -> Result<Workspace, sqlx::Error> {
    Ok(Workspace {
        id: row.try_get(0)?,
        slug: row.try_get(1)?,
        name: row.try_get(2)?,
        created_at: row.try_get(3)?,
        role,
    })
}

pub(crate) const TOKEN_COLUMNS: &str =
    "t.id, t.name, w.slug, t.scopes, t.prefix, t.created_at, t.expires_at, t.last_used_at, t.workspace_id";

pub(crate) fn token(row: &AnyRow) -> Result<(ApiToken, String), sqlx::Error> {
    Ok((
        ApiToken {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            workspace: row.try_get(2)?,
            scopes: split_list(&row.try_get::<String, _>(3)?),
            prefix: row.try_get(4)?,
            created_at: row.try_get(5)?,
            expires_at: row.try_get(6)?,
            last_used_at: row.try_get(7)?,
        },
        row.try_get(8)?,
    ))
}

pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn parse_role(text: &str) -> Result<Role, sqlx::Error> {
    Role::parse(text).ok_or_else(|| sqlx::Error::Decode(format!("unknown role {text}").into()))
}

/// SHA-256 hex of a bearer secret: tokens are high-entropy, so a fast hash is
/// enough at rest and lets lookups use an index.
pub(crate) fn secret_hash(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}
