//! The frame every page shares (top bar, navigation, flash message), rendering,
//! error pages, and the small helpers templates need.

use crate::auth::Authed;
use crate::ConsoleState;
use askama::Template;
use atoll_core::access::{role_access, Access};
use atoll_platform::Error;
use atoll_protocol::admin::{Role, Workspace};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use std::sync::OnceLock;

/// What a page handler answers: the page, or an error page / redirect / 403
/// produced on the way (both are complete responses, so `?` can short-circuit).
pub type PageResult = Result<Response, Response>;

/// The navigation, in order: `(group, label, path under /w/{workspace}, available)`.
/// A module adds its page by adding one line here (and flipping `available`).
pub const NAV: &[(&str, &str, &str, bool)] = &[
    ("Workspace", "Overview", "", true),
    ("Workspace", "Apps", "/apps", true),
    ("Workspace", "Devices", "/devices", true),
    ("Workspace", "Members", "/members", true),
    ("Workspace", "API tokens", "/tokens", true),
    ("Workspace", "Audit log", "/audit", true),
    ("Modules", "Analytics", "/analytics", true),
    ("Modules", "Switches", "/switches", true),
    ("Modules", "Push", "/push", true),
    ("Modules", "Sync", "/sync", true),
    ("Modules", "Delivery", "/delivery", true),
    ("Modules", "Gateway", "/gateway", true),
];

/// One navigation group as the layout shows it.
#[derive(Clone)]
pub struct NavGroup {
    pub name: &'static str,
    pub links: Vec<NavLink>,
}

/// One navigation entry as the layout shows it.
#[derive(Clone)]
pub struct NavLink {
    pub label: &'static str,
    pub href: String,
    pub active: bool,
    pub available: bool,
}

/// An entry of the workspace or app switcher.
#[derive(Clone)]
pub struct SwitchLink {
    pub label: String,
    pub detail: String,
    pub href: String,
    pub active: bool,
}

/// A message at the top of the page.
#[derive(Clone)]
pub struct Flash {
    /// `error`, `success` or `warning` (a CSS class).
    pub kind: &'static str,
    pub message: String,
}

impl Flash {
    pub fn error(error: &Error) -> Flash {
        Flash {
            kind: "error",
            message: message_of(error),
        }
    }

    pub fn success(message: impl Into<String>) -> Flash {
        Flash {
            kind: "success",
            message: message.into(),
        }
    }
}

/// Everything the layout needs around a page's content.
#[derive(Clone)]
pub struct Shell {
    pub title: String,
    pub asset_version: &'static str,
    pub user_email: String,
    pub user_initial: String,
    pub csrf_token: String,
    /// The workspace in view, if any.
    pub workspace: Option<Workspace>,
    /// The caller's role in it, as text.
    pub role: String,
    /// Whether the caller may manage secrets, members and tokens here.
    pub is_admin: bool,
    /// Whether the caller may configure apps here.
    pub can_write: bool,
    pub workspaces: Vec<SwitchLink>,
    pub apps: Vec<SwitchLink>,
    /// Name of the app in view, if any.
    pub app_name: Option<String>,
    pub nav: Vec<NavGroup>,
    pub flash: Option<Flash>,
}

impl Shell {
    /// Loads the frame for a page of workspace `ws` (or of no workspace), with the
    /// navigation entry `section` highlighted and `app` selected in the switcher.
    /// A workspace the user cannot see answers the 404 page.
    pub async fn load(
        state: &ConsoleState,
        authed: &Authed,
        ws: Option<&str>,
        section: &str,
        app: Option<&str>,
        title: impl Into<String>,
    ) -> Result<Shell, Response> {
        let principal = authed.principal();
        let user = &authed.session.user;
        let workspaces = state
            .platform
            .list_workspaces(&principal)
            .await
            .map_err(|error| bare_error(&error))?;
        let current = ws.and_then(|slug| workspaces.iter().find(|w| w.slug == slug).cloned());
        let mut shell = Shell {
            title: title.into(),
            asset_version: asset_version(),
            user_email: user.email.clone(),
            user_initial: user
                .name
                .chars()
                .chain(user.email.chars())
                .find(|c| c.is_alphanumeric())
                .map(|c| c.to_uppercase().collect())
                .unwrap_or_else(|| "?".into()),
            csrf_token: authed.session.csrf_token.clone(),
            role: String::new(),
            is_admin: false,
            can_write: false,
            workspaces: workspaces
                .iter()
                .map(|w| SwitchLink {
                    label: w.name.clone(),
                    detail: w.slug.clone(),
                    href: format!("/w/{}", encode_segment(&w.slug)),
                    active: Some(&w.slug) == current.as_ref().map(|c| &c.slug),
                })
                .collect(),
            apps: Vec::new(),
            app_name: None,
            nav: Vec::new(),
            flash: None,
            workspace: None,
        };
        let Some(slug) = ws else {
            return Ok(shell);
        };
        let Some(workspace) = current else {
            return Err(error_page(
                shell,
                &Error::NotFound(format!("workspace '{slug}'")),
            ));
        };
        let access = workspace.role.map(role_access).unwrap_or(Access::Read);
        shell.role = workspace.role.map(Role::as_str).unwrap_or("").to_owned();
        shell.is_admin = access >= Access::Admin;
        shell.can_write = access >= Access::Write;
        let base = format!("/w/{}", encode_segment(&workspace.slug));
        let apps = match state.platform.list_apps(&principal, slug).await {
            Ok(apps) => apps,
            Err(error) => return Err(error_page(shell, &error)),
        };
        shell.app_name = app.and_then(|key| {
            apps.iter()
                .find(|a| a.app_key == key)
                .map(|a| a.name.clone())
        });
        shell.apps = apps
            .iter()
            .map(|a| SwitchLink {
                label: a.name.clone(),
                detail: a.app_key.clone(),
                href: format!("{base}/apps/{}", encode_segment(&a.app_key)),
                active: Some(a.app_key.as_str()) == app,
            })
            .collect();
        for (group, label, path, available) in NAV {
            let link = NavLink {
                label,
                href: format!("{base}{path}"),
                active: *path == section,
                available: *available,
            };
            match shell.nav.last_mut() {
                Some(last) if last.name == *group => last.links.push(link),
                _ => shell.nav.push(NavGroup {
                    name: group,
                    links: vec![link],
                }),
            }
        }
        shell.workspace = Some(workspace);
        Ok(shell)
    }

    /// The workspace's slug (empty outside a workspace).
    pub fn slug(&self) -> &str {
        self.workspace.as_ref().map_or("", |w| w.slug.as_str())
    }

    /// The URL prefix of the workspace's pages.
    pub fn base(&self) -> String {
        format!("/w/{}", encode_segment(self.slug()))
    }

    /// The app a per-app page shows: the one asked for, else the workspace's
    /// first; without any app, the error page saying what `what` belong to.
    #[allow(clippy::result_large_err)] // a Response is the natural early exit of a handler
    pub fn app_or_first(self, app: &str, what: &str) -> Result<(Shell, String), Response> {
        if !app.is_empty() {
            return Ok((self, app.to_owned()));
        }
        match self.apps.first() {
            Some(first) => {
                let key = first.detail.clone();
                Ok((self, key))
            }
            None => {
                let error = Error::NotFound(format!(
                    "an app (create one first; {what} belong to an app)"
                ));
                Err(error_page(self, &error))
            }
        }
    }

    pub fn with_flash(mut self, flash: Option<Flash>) -> Shell {
        self.flash = flash;
        self
    }
}

/// Renders a template, or a plain 500 if the template itself fails.
pub fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "console template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; the server log has details",
            )
                .into_response()
        }
    }
}

/// The HTTP status matching a platform error.
/// A module's error (code and message) as the console's platform error, so
/// every module's failures use the same error page and flash.
pub fn module_error(code: atoll_protocol::ErrorCode, message: String) -> Error {
    use atoll_protocol::ErrorCode;
    match code {
        // `Error::NotFound` adds " not found" itself.
        ErrorCode::NotFound => Error::NotFound(
            message
                .strip_suffix(" not found")
                .unwrap_or(&message)
                .to_owned(),
        ),
        ErrorCode::Conflict => Error::Conflict(message),
        code if code.status() < 500 => Error::Validation(message),
        _ => Error::Internal(message),
    }
}

pub fn status_of(error: &Error) -> StatusCode {
    StatusCode::from_u16(error.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// What a person is told about an error: its own message, except for storage
/// failures and bugs, whose details stay in the server log.
pub fn message_of(error: &Error) -> String {
    if error.is_internal() {
        tracing::error!(%error, "console request failed");
        "Something went wrong on the server. Try again; if it persists, the server log has details."
            .into()
    } else {
        sentence_case(error.to_string())
    }
}

/// Platform messages start in lower case ("app 'x' not found"); a page shows them
/// as sentences. Only a plain leading word is capitalised, never an email or id
/// ("dev@x.io is already a member" stays as it is).
fn sentence_case(message: String) -> String {
    let first_word = message.split_whitespace().next().unwrap_or("");
    let plain = first_word
        .trim_end_matches(':')
        .chars()
        .all(|c| c.is_ascii_lowercase());
    if !plain || first_word.is_empty() {
        return message;
    }
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => message,
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    shell: Shell,
    status: u16,
    heading: &'static str,
    message: String,
}

/// A full page (with the frame) explaining an error.
/// Turns a platform error into the error page inside the page frame, so a
/// handler can write `platform_call().await.or_error_page(&shell)?`.
pub trait OrErrorPage<T> {
    /// The value, or the error page for the error.
    #[allow(clippy::result_large_err)] // a Response is the natural early exit of a handler
    fn or_error_page(self, shell: &Shell) -> Result<T, Response>;
}

impl<T> OrErrorPage<T> for Result<T, Error> {
    fn or_error_page(self, shell: &Shell) -> Result<T, Response> {
        self.map_err(|error| error_page(shell.clone(), &error))
    }
}

pub fn error_page(mut shell: Shell, error: &Error) -> Response {
    let status = status_of(error);
    let heading = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::TOO_MANY_REQUESTS => "Slow down",
        status if status.is_client_error() => "That did not work",
        _ => "Something went wrong",
    };
    shell.title = heading.to_owned();
    let page = ErrorPage {
        shell,
        status: status.as_u16(),
        heading,
        message: message_of(error),
    };
    render(status, &page)
}

#[derive(Template)]
#[template(path = "bare_error.html")]
struct BareErrorPage {
    asset_version: &'static str,
    heading: &'static str,
    message: String,
}

/// An error page without the frame, for when the frame itself cannot be built.
pub fn bare_error(error: &Error) -> Response {
    let page = BareErrorPage {
        asset_version: asset_version(),
        heading: "Something went wrong",
        message: message_of(error),
    };
    render(status_of(error), &page)
}

/// The answer to a form whose CSRF token did not match.
pub fn csrf_failed() -> Response {
    let page = BareErrorPage {
        asset_version: asset_version(),
        heading: "This form has expired",
        message: "The form was not sent from this console session (or the session changed \
                  since it was opened), so nothing was changed. Go back, reload the page and \
                  try again."
            .into(),
    };
    render(StatusCode::FORBIDDEN, &page)
}

/// A short hash of the assets, appended to their URLs so browsers may cache them
/// for a year yet fetch a new build at once.
pub fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        // FNV-1a: not for security, only to change when the content does.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in crate::CSS.bytes().chain(crate::JS.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{:08x}", hash >> 32)
    })
}

pub use atoll_protocol::encode_path_segment as encode_segment;

/// Percent-encodes a value for a query string (same rule as a path segment).
pub fn encode_query(value: &str) -> String {
    encode_segment(value)
}

/// Messages for `?done=…` after a successful change (post/redirect/get). Only
/// these fixed texts can appear, so the query string cannot inject wording.
pub fn done_message(code: &str) -> Option<Flash> {
    let message = match code {
        "workspace_created" => "Workspace created.",
        "member_added" => "Member added.",
        "role_changed" => "Role changed.",
        "member_removed" => "Member removed.",
        "token_revoked" => "Token revoked. Requests made with it are now refused.",
        "switches_published" => "Published. Devices get the new values on their next fetch.",
        "switches_rolled_back" => {
            "Rolled back: the earlier switches are published as a new version."
        }
        "package_uploaded" => "Package uploaded and signed. Create a release to offer it.",
        "release_created" => "Draft release created. Promote it to start the rollout.",
        "release_changed" => "Release updated. Devices see it on their next check.",
        "list_saved" => "List saved. Rules naming it use the new ids within seconds.",
        "api_created" => "API created. Enable it when its backend is ready.",
        "api_saved" => "API saved. Every node uses the new settings within seconds.",
        "api_deleted" => "API deleted. Calls to it now answer unknown_operation.",
        "biz_type_created" => "Biz type created. Devices subscribe to it by its id.",
        "biz_type_changed" => "Biz type changed. Every node uses it within seconds.",
        "biz_type_deleted" => "Biz type deleted with its data and cursors.",
        "template_created" => "Template created. Sends name it with values for its placeholders.",
        "channel_saved" => {
            "Channel saved (encrypted). Offline devices with its tokens now get pushes through it."
        }
        "push_settings_saved" => "Push settings saved.",
        "keys_rotated" => "Keys rotated. The previous keys still open envelopes for 7 days.",
        _ => return None,
    };
    Some(Flash::success(message))
}

/// Filters available to every template (askama looks them up as `filters::name`).
pub mod filters {
    use crate::time::format_ms;

    /// A time in milliseconds, or an optional one.
    pub trait Millis {
        fn millis(&self) -> Option<i64>;
    }
    impl Millis for i64 {
        fn millis(&self) -> Option<i64> {
            Some(*self)
        }
    }
    impl Millis for Option<i64> {
        fn millis(&self) -> Option<i64> {
            *self
        }
    }
    impl<T: Millis + ?Sized> Millis for &T {
        fn millis(&self) -> Option<i64> {
            (**self).millis()
        }
    }

    /// `{{ created_at|time }}` → `2024-05-01 09:30 UTC`; `—` when absent.
    pub fn time<T: Millis>(value: T, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(value.millis().map(format_ms).unwrap_or_else(|| "—".into()))
    }

    /// `{{ path|seg }}`: a value made safe for one URL path segment.
    pub fn seg<T: std::fmt::Display>(value: T, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(super::encode_segment(&value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("ak_0f3a-x.y~z"), "ak_0f3a-x.y~z");
        assert_eq!(encode_segment("a/b c?d#é"), "a%2Fb%20c%3Fd%23%C3%A9");
        assert_eq!(encode_segment(".."), "..");
    }

    #[test]
    fn internal_errors_are_not_shown() {
        let internal = Error::Internal("database exploded at /var/lib/x".into());
        assert!(!message_of(&internal).contains("exploded"));
        assert_eq!(
            message_of(&Error::Forbidden("this needs Admin access".into())),
            "This needs Admin access"
        );
        assert_eq!(
            status_of(&Error::NotFound("app 'x'".into())),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn only_plain_leading_words_are_capitalised() {
        assert_eq!(
            sentence_case("app 'x' not found".into()),
            "App 'x' not found"
        );
        assert_eq!(
            sentence_case("password: 10-1024 characters".into()),
            "Password: 10-1024 characters"
        );
        assert_eq!(
            sentence_case("dev@x.io is already a member".into()),
            "dev@x.io is already a member"
        );
        assert_eq!(sentence_case(String::new()), "");
    }

    #[test]
    fn only_known_done_codes_show_a_message() {
        assert!(done_message("member_added").is_some());
        assert!(done_message("<script>").is_none());
    }

    #[test]
    fn every_nav_entry_is_a_workspace_path() {
        for (_, label, path, _) in NAV {
            assert!(path.is_empty() || path.starts_with('/'), "{label}");
        }
    }
}
