//! The home redirect, the workspace overview and the "new workspace" form.

use super::DoneQuery;
use crate::auth::Authed;
use crate::view::{
    self, done_message, encode_segment, filters, Flash, OrErrorPage, PageResult, Shell,
};
use crate::ConsoleState;
use askama::Template;
use atoll_platform::Error;
use atoll_protocol::admin::{AuditEntry, CreateWorkspace};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

/// `GET /`: the first workspace, or the form to create one.
pub async fn home(State(state): State<ConsoleState>, authed: Authed) -> Response {
    match state.platform.list_workspaces(&authed.principal()).await {
        Ok(workspaces) => match workspaces.first() {
            Some(first) => Redirect::to(&format!("/w/{}", encode_segment(&first.slug))),
            None => Redirect::to("/workspaces/new"),
        }
        .into_response(),
        Err(error) => view::bare_error(&error),
    }
}

/// An app as a card of the overview.
struct AppCard {
    name: String,
    initial: String,
    app_key: String,
    href: String,
    platforms: Vec<String>,
    devices: String,
    last_seen_at: Option<i64>,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    shell: Shell,
    apps: Vec<AppCard>,
    members: String,
    devices: String,
    activity: Vec<AuditEntry>,
}

/// `GET /w/{ws}`: the workspace at a glance.
pub async fn overview(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Query(query): Query<DoneQuery>,
) -> PageResult {
    let shell = Shell::load(&state, &authed, Some(&ws), "", None, "Overview")
        .await?
        .with_flash(done_message(&query.done));
    let principal = authed.principal();
    let platform = &state.platform;
    let (apps, members, activity) = match (
        platform.list_apps(&principal, &ws).await,
        platform.list_members(&principal, &ws).await,
        platform.audit_log(&principal, &ws, None, 6).await,
    ) {
        (Ok(apps), Ok(members), Ok(activity)) => (apps, members, activity),
        (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
            return Err(view::error_page(shell, &error))
        }
    };
    let counts = platform
        .device_counts(&principal, &ws)
        .await
        .or_error_page(&shell)?;
    let mut cards = Vec::with_capacity(apps.len());
    let mut total = 0;
    for app in apps {
        let count = counts.iter().find(|count| count.app_key == app.app_key);
        let devices = count.map_or(0, |count| count.devices);
        total += devices;
        cards.push(AppCard {
            href: format!("{}/apps/{}", shell.base(), encode_segment(&app.app_key)),
            platforms: app.platforms.iter().map(|p| p.to_string()).collect(),
            devices: devices.to_string(),
            last_seen_at: count.and_then(|count| count.last_seen_at),
            initial: initial_of(&app.name),
            name: app.name,
            app_key: app.app_key,
        });
    }
    let page = OverviewPage {
        apps: cards,
        members: members.len().to_string(),
        devices: total.to_string(),
        activity,
        shell,
    };
    Ok(view::render(StatusCode::OK, &page))
}

/// The first letter of a name, for an app's monogram.
pub(crate) fn initial_of(name: &str) -> String {
    name.chars()
        .find(|c| c.is_alphanumeric())
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_else(|| "·".into())
}

#[derive(Template)]
#[template(path = "new_workspace.html")]
struct NewWorkspacePage {
    shell: Shell,
    first: bool,
    slug: String,
    name: String,
}

/// `GET /workspaces/new`.
pub async fn new_page(State(state): State<ConsoleState>, authed: Authed) -> PageResult {
    let shell = Shell::load(&state, &authed, None, "", None, "New workspace").await?;
    let page = NewWorkspacePage {
        first: shell.workspaces.is_empty(),
        shell,
        slug: String::new(),
        name: String::new(),
    };
    Ok(view::render(StatusCode::OK, &page))
}

#[derive(Debug, Deserialize)]
pub struct NewWorkspaceForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    name: String,
}

/// `POST /workspaces/new`.
pub async fn create(
    State(state): State<ConsoleState>,
    authed: Authed,
    Form(form): Form<NewWorkspaceForm>,
) -> PageResult {
    authed.check_csrf(&form.csrf_token)?;
    let slug = form.slug.trim().to_owned();
    let request = CreateWorkspace {
        slug: slug.clone(),
        name: form.name.clone(),
    };
    match state
        .platform
        .create_workspace(&authed.principal(), request)
        .await
    {
        Ok(workspace) => Ok(Redirect::to(&format!(
            "/w/{}?done=workspace_created",
            encode_segment(&workspace.slug)
        ))
        .into_response()),
        Err(error) => {
            let shell = Shell::load(&state, &authed, None, "", None, "New workspace")
                .await?
                .with_flash(Some(Flash::error(&error)));
            let page = NewWorkspacePage {
                first: shell.workspaces.is_empty(),
                shell,
                slug,
                name: form.name,
            };
            Ok(view::render(view::status_of(&error), &page))
        }
    }
}

/// `GET /w/{ws}/…` for any address that is no console page.
pub async fn not_found(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path((ws, _rest)): Path<(String, String)>,
) -> PageResult {
    // "-" matches no navigation entry: nothing is highlighted on a missing page.
    let shell = Shell::load(&state, &authed, Some(&ws), "-", None, "Not found").await?;
    Err(view::error_page(shell, &Error::NotFound("page".into())))
}
