//! Members of a workspace: list, add, change role, remove.

use super::{non_blank, CsrfOnly, DoneQuery};
use crate::auth::Authed;
use crate::view::{
    self, done_message, encode_segment, filters, Flash, OrErrorPage, PageResult, Shell,
};
use crate::ConsoleState;
use askama::Template;
use atoll_platform::Error;
use atoll_protocol::admin::{AddMember, Role, UpdateMember};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

/// A role of a `<select>`.
struct RoleOption {
    value: &'static str,
    selected: bool,
}

fn role_options(selected: Role) -> Vec<RoleOption> {
    Role::ALL
        .iter()
        .map(|role| RoleOption {
            value: role.as_str(),
            selected: *role == selected,
        })
        .collect()
}

struct MemberRow {
    email: String,
    name: String,
    role: Role,
    added_at: i64,
    is_you: bool,
    role_action: String,
    remove_action: String,
    roles: Vec<RoleOption>,
}

/// What the "add member" form holds (never the password).
struct Draft {
    email: String,
    name: String,
    role: Role,
}

impl Default for Draft {
    fn default() -> Draft {
        Draft {
            email: String::new(),
            name: String::new(),
            role: Role::Developer,
        }
    }
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    shell: Shell,
    members: Vec<MemberRow>,
    email: String,
    name: String,
    roles: Vec<RoleOption>,
}

async fn render(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    status: StatusCode,
    flash: Option<Flash>,
    draft: Draft,
) -> PageResult {
    let shell = Shell::load(state, authed, Some(ws), "/members", None, "Members")
        .await?
        .with_flash(flash);
    let members = state
        .platform
        .list_members(&authed.principal(), ws)
        .await
        .or_error_page(&shell)?;
    let base = shell.base();
    let page = MembersPage {
        members: members
            .into_iter()
            .map(|member| {
                let action = format!("{base}/members/{}", encode_segment(&member.user.id));
                MemberRow {
                    is_you: member.user.id == authed.session.user.id,
                    role_action: format!("{action}/role"),
                    remove_action: format!("{action}/remove"),
                    roles: role_options(member.role),
                    email: member.user.email,
                    name: member.user.name,
                    role: member.role,
                    added_at: member.added_at,
                }
            })
            .collect(),
        email: draft.email,
        name: draft.name,
        roles: role_options(draft.role),
        shell,
    };
    Ok(view::render(status, &page))
}

/// `GET /w/{ws}/members`.
pub async fn list(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Query(query): Query<DoneQuery>,
) -> PageResult {
    let flash = done_message(&query.done);
    render(
        &state,
        &authed,
        &ws,
        StatusCode::OK,
        flash,
        Draft::default(),
    )
    .await
}

fn parse_role(text: &str) -> Result<Role, Error> {
    Role::parse(text).ok_or_else(|| Error::Validation(format!("role: unknown role '{text}'")))
}

/// Back to the list after a change (post/redirect/get).
fn done(ws: &str, code: &str) -> Response {
    Redirect::to(&format!("/w/{}/members?done={code}", encode_segment(ws))).into_response()
}

#[derive(Debug, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// `POST /w/{ws}/members`: adds a user by email, creating them when the email is
/// new to the instance (then the initial password is required).
pub async fn add(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(form): Form<AddForm>,
) -> PageResult {
    authed.check_csrf(&form.csrf_token)?;
    let outcome = match parse_role(&form.role) {
        Ok(role) => state
            .platform
            .add_member(
                &authed.principal(),
                &ws,
                AddMember {
                    email: form.email.clone(),
                    role,
                    name: non_blank(&form.name),
                    // Passwords are not trimmed: spaces may be part of them.
                    password: (!form.password.is_empty()).then(|| form.password.clone()),
                },
            )
            .await
            .map(|_| ()),
        Err(error) => Err(error),
    };
    match outcome {
        Ok(()) => Ok(done(&ws, "member_added")),
        Err(error) => {
            let draft = Draft {
                email: form.email,
                name: form.name,
                role: Role::parse(&form.role).unwrap_or(Role::Developer),
            };
            let status = view::status_of(&error);
            render(
                &state,
                &authed,
                &ws,
                status,
                Some(Flash::error(&error)),
                draft,
            )
            .await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    role: String,
}

/// `POST /w/{ws}/members/{user}/role`.
pub async fn change_role(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path((ws, user)): Path<(String, String)>,
    Form(form): Form<RoleForm>,
) -> PageResult {
    authed.check_csrf(&form.csrf_token)?;
    let outcome = match parse_role(&form.role) {
        Ok(role) => state
            .platform
            .update_member(&authed.principal(), &ws, &user, UpdateMember { role })
            .await
            .map(|_| ()),
        Err(error) => Err(error),
    };
    match outcome {
        Ok(()) => Ok(done(&ws, "role_changed")),
        Err(error) => failed(&state, &authed, &ws, error).await,
    }
}

/// `POST /w/{ws}/members/{user}/remove`.
pub async fn remove(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path((ws, user)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    authed.check_csrf(&form.csrf_token)?;
    match state
        .platform
        .remove_member(&authed.principal(), &ws, &user)
        .await
    {
        Ok(()) => Ok(done(&ws, "member_removed")),
        Err(error) => failed(&state, &authed, &ws, error).await,
    }
}

async fn failed(state: &ConsoleState, authed: &Authed, ws: &str, error: Error) -> PageResult {
    let status = view::status_of(&error);
    let flash = Some(Flash::error(&error));
    render(state, authed, ws, status, flash, Draft::default()).await
}
