//! Who is calling, and their standing in one workspace once authorised.

use atoll_core::access::Standing;
use atoll_protocol::admin::{ApiToken, User};

/// An authenticated caller of the admin API or the console.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// A console or CLI user, through a session.
    User(User),
    /// An API token of one workspace.
    Token {
        /// The token's description.
        token: ApiToken,
        /// The id of the workspace it belongs to.
        workspace_id: String,
    },
}

impl Principal {
    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        match self {
            Principal::User(user) => format!("user:{}", user.email),
            Principal::Token { token, .. } => format!("token:{} ({})", token.name, token.id),
        }
    }

    /// The user, when the caller is one.
    pub fn user(&self) -> Option<&User> {
        match self {
            Principal::User(user) => Some(user),
            Principal::Token { .. } => None,
        }
    }
}

/// A caller authorised in one workspace: the result of `PlatformService::authorize`.
/// Holding one proves the check was made; the tenant comes from here, never from a
/// request body.
#[derive(Debug, Clone)]
pub struct WorkspaceContext {
    /// Workspace id.
    pub workspace_id: String,
    /// Workspace slug.
    pub workspace_slug: String,
    /// The caller.
    pub principal: Principal,
    /// The caller's role or scopes here.
    pub standing: Standing,
}

/// An app the caller was authorised for, with the workspace context.
#[derive(Debug, Clone)]
pub struct AppAccess {
    /// The workspace and the caller's standing in it.
    pub ctx: WorkspaceContext,
    /// The app's internal id (the key of its data in every module).
    pub app_id: String,
    /// The app as the API shows it.
    pub app: atoll_protocol::admin::App,
}
