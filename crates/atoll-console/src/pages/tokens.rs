//! API tokens of a workspace: list, create (secret shown once), revoke.

use super::{non_blank, CsrfOnly, DoneQuery, Fields};
use crate::auth::Authed;
use crate::view::{
    self, done_message, encode_segment, filters, Flash, OrErrorPage, PageResult, Shell,
};
use crate::ConsoleState;
use askama::Template;
use atoll_platform::Error;
use atoll_protocol::admin::{ApiToken, CreateToken, TokenWithSecret, SCOPES};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;

/// What each scope allows, for the form.
fn scope_help(scope: &str) -> &'static str {
    match scope {
        "admin" => "everything in the workspace",
        "read" => "every read",
        "devices:write" => "device changes",
        "push:send" => "send push messages",
        "sync:write" => "send sync data",
        _ => "",
    }
}

struct ScopeChoice {
    value: &'static str,
    help: &'static str,
    checked: bool,
}

struct TokenRow {
    token: ApiToken,
    revoke_action: String,
}

/// What the "create token" form holds.
#[derive(Default)]
struct Draft {
    name: String,
    scopes: Vec<String>,
    expires_in_days: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    shell: Shell,
    tokens: Vec<TokenRow>,
    created: Option<TokenWithSecret>,
    name: String,
    scopes: Vec<ScopeChoice>,
    expires_in_days: String,
}

async fn render(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    status: StatusCode,
    flash: Option<Flash>,
    created: Option<TokenWithSecret>,
    draft: Draft,
) -> PageResult {
    let shell = Shell::load(state, authed, Some(ws), "/tokens", None, "API tokens")
        .await?
        .with_flash(flash);
    // Listing tokens is admin-only; others get the platform's 403 explanation.
    let tokens = state
        .platform
        .list_tokens(&authed.principal(), ws)
        .await
        .or_error_page(&shell)?;
    let base = shell.base();
    let page = TokensPage {
        tokens: tokens
            .into_iter()
            .map(|token| TokenRow {
                revoke_action: format!("{base}/tokens/{}/revoke", encode_segment(&token.id)),
                token,
            })
            .collect(),
        created,
        name: draft.name,
        scopes: SCOPES
            .iter()
            .map(|scope| ScopeChoice {
                value: scope,
                help: scope_help(scope),
                checked: draft.scopes.iter().any(|s| s == scope),
            })
            .collect(),
        expires_in_days: draft.expires_in_days,
        shell,
    };
    Ok(view::render(status, &page))
}

/// `GET /w/{ws}/tokens`.
pub async fn list(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Query(query): Query<DoneQuery>,
) -> PageResult {
    let flash = done_message(&query.done);
    let draft = Draft {
        scopes: vec!["read".into()],
        ..Draft::default()
    };
    render(&state, &authed, &ws, StatusCode::OK, flash, None, draft).await
}

/// `POST /w/{ws}/tokens`: creates a token and shows its secret, once.
pub async fn create(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let draft = Draft {
        name: fields.get("name").to_owned(),
        scopes: fields.all("scope").into_iter().map(str::to_owned).collect(),
        expires_in_days: fields.get("expires_in_days").trim().to_owned(),
    };
    let expires_in_days = match non_blank(&draft.expires_in_days).map(|d| d.parse::<u32>()) {
        None => Ok(None),
        Some(Ok(days)) if (1..=3650).contains(&days) => Ok(Some(days)),
        Some(_) => Err(Error::Validation(
            "expiry: a whole number of days from 1 to 3650, or empty for none".into(),
        )),
    };
    let outcome = match expires_in_days {
        Ok(expires_in_days) => {
            state
                .platform
                .create_token(
                    &authed.principal(),
                    &ws,
                    CreateToken {
                        name: draft.name.clone(),
                        scopes: draft.scopes.clone(),
                        expires_in_days,
                    },
                )
                .await
        }
        Err(error) => Err(error),
    };
    match outcome {
        Ok(created) => {
            let draft = Draft {
                scopes: vec!["read".into()],
                ..Draft::default()
            };
            let status = StatusCode::CREATED;
            render(&state, &authed, &ws, status, None, Some(created), draft).await
        }
        Err(error) => {
            let status = view::status_of(&error);
            let flash = Some(Flash::error(&error));
            render(&state, &authed, &ws, status, flash, None, draft).await
        }
    }
}

/// `POST /w/{ws}/tokens/{token}/revoke`.
pub async fn revoke(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path((ws, token)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    authed.check_csrf(&form.csrf_token)?;
    match state
        .platform
        .revoke_token(&authed.principal(), &ws, &token)
        .await
    {
        Ok(()) => Ok(Redirect::to(&format!(
            "/w/{}/tokens?done=token_revoked",
            encode_segment(&ws)
        ))
        .into_response()),
        Err(error) => {
            let status = view::status_of(&error);
            let flash = Some(Flash::error(&error));
            render(&state, &authed, &ws, status, flash, None, Draft::default()).await
        }
    }
}
