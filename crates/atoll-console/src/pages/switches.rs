//! Switches (remote config) pages: the set in force for an app, an editor whose
//! "Review" step shows the diff before anything is published, the history with
//! one-click rollback, and a preview of the values a sample device would get.
//!
//! A publish carries the version the editor started from, so two people editing
//! at once cannot overwrite each other silently: the second gets a conflict and
//! reviews again.

use super::Fields;
use crate::auth::Authed;
use crate::view::{self, encode_query, filters, Flash, OrErrorPage, PageResult, Shell};
use crate::ConsoleState;
use askama::Template;
use atoll_platform::Error;
use atoll_protocol::device::Platform;
use atoll_protocol::switches::*;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

/// `?app=…&edit=…&done=…`.
#[derive(Debug, Default, Deserialize)]
pub struct SwitchesQuery {
    #[serde(default)]
    app: String,
    /// The key to load into the editor.
    #[serde(default)]
    edit: String,
    #[serde(default)]
    done: String,
}

/// What the editor holds, as typed.
#[derive(Debug, Default, Clone)]
struct Draft {
    /// The key being edited; empty for a new switch.
    original_key: String,
    key: String,
    value_type: String,
    description: String,
    platforms: Vec<String>,
    default: String,
    rules: String,
    message: String,
    expected_version: u64,
}

impl Draft {
    fn of(switch: &Switch, version: u64) -> Draft {
        Draft {
            original_key: switch.key.clone(),
            key: switch.key.clone(),
            value_type: switch.value_type.to_string(),
            description: switch.description.clone(),
            platforms: switch.platforms.iter().map(|p| p.to_string()).collect(),
            default: switch.value_type.write_value(&switch.default),
            rules: switch
                .rules
                .iter()
                .map(|rule| rule.write_line(switch.value_type))
                .collect::<Vec<_>>()
                .join("\n"),
            message: String::new(),
            expected_version: version,
        }
    }

    fn from_form(fields: &Fields) -> Draft {
        Draft {
            original_key: fields.get("original_key").to_owned(),
            key: fields.get("key").trim().to_owned(),
            value_type: fields.get("type").to_owned(),
            description: fields.get("description").trim().to_owned(),
            platforms: fields
                .all("platform")
                .into_iter()
                .map(str::to_owned)
                .collect(),
            default: fields.get("default").to_owned(),
            rules: fields.get("rules").to_owned(),
            message: fields.get("message").trim().to_owned(),
            expected_version: fields.get("expected_version").parse().unwrap_or(0),
        }
    }

    /// The switch the draft describes, or what is wrong with it.
    fn switch(&self) -> Result<Switch, String> {
        let value_type = SwitchType::parse(&self.value_type)
            .ok_or_else(|| format!("unknown type '{}'", self.value_type))?;
        let platforms = self
            .platforms
            .iter()
            .map(|p| Platform::parse(p).ok_or_else(|| format!("unknown platform '{p}'")))
            .collect::<Result<_, _>>()?;
        let rules = self
            .rules
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| TargetedValue::read_line(value_type, line))
            .collect::<Result<_, _>>()?;
        Ok(Switch {
            key: self.key.clone(),
            value_type,
            description: self.description.clone(),
            platforms,
            default: value_type.read_value(&self.default)?,
            rules,
        })
    }

    /// The whole set after the draft is applied to `current`.
    fn apply(&self, current: &[Switch]) -> Result<Vec<Switch>, String> {
        let switch = self.switch()?;
        let mut switches: Vec<Switch> = current
            .iter()
            .filter(|s| s.key != self.original_key && s.key != switch.key)
            .cloned()
            .collect();
        switches.push(switch);
        Ok(switches)
    }
}

struct SwitchRow {
    switch: Switch,
    default_text: String,
    rule_lines: Vec<String>,
    platforms_text: String,
    edit_href: String,
}

struct VersionRow {
    entry: SwitchVersion,
    changes: String,
    can_roll_back: bool,
}

struct ChangeRow {
    kind: &'static str,
    key: String,
    fields: String,
    before: String,
    after: String,
}

#[derive(Template)]
#[template(path = "switches.html")]
struct SwitchesPage {
    shell: Shell,
    app_key: String,
    set: SwitchSet,
    rows: Vec<SwitchRow>,
    history: Vec<VersionRow>,
    draft: Draft,
    types: Vec<&'static str>,
    /// Every platform and whether the draft lists it.
    platforms: Vec<(&'static str, bool)>,
    /// The diff under review, when the draft was just reviewed.
    review: Option<Vec<ChangeRow>>,
}

fn describe(switch: &Switch) -> String {
    serde_json::to_string_pretty(switch).unwrap_or_default()
}

fn change_rows(diff: &SwitchDiff) -> Vec<ChangeRow> {
    let mut rows = Vec::new();
    for switch in &diff.added {
        rows.push(ChangeRow {
            kind: "added",
            key: switch.key.clone(),
            fields: String::new(),
            before: String::new(),
            after: describe(switch),
        });
    }
    for change in &diff.changed {
        rows.push(ChangeRow {
            kind: "changed",
            key: change.key.clone(),
            fields: change.fields.join(", "),
            before: describe(&change.before),
            after: describe(&change.after),
        });
    }
    for switch in &diff.removed {
        rows.push(ChangeRow {
            kind: "removed",
            key: switch.key.clone(),
            fields: String::new(),
            before: describe(switch),
            after: String::new(),
        });
    }
    rows
}

fn changes_summary(diff: &SwitchDiff) -> String {
    let mut parts = Vec::new();
    for (label, keys) in [
        (
            "added",
            diff.added
                .iter()
                .map(|s| s.key.as_str())
                .collect::<Vec<_>>(),
        ),
        (
            "changed",
            diff.changed.iter().map(|c| c.key.as_str()).collect(),
        ),
        (
            "removed",
            diff.removed.iter().map(|s| s.key.as_str()).collect(),
        ),
    ] {
        if !keys.is_empty() {
            parts.push(format!("{label} {}", keys.join(", ")));
        }
    }
    parts.join("; ")
}

/// Switch errors as the console's platform errors.
fn platform_error(error: atoll_switches::Error) -> Error {
    match error {
        atoll_switches::Error::Platform(error) => error,
        error => view::module_error(error.code(), error.to_string()),
    }
}

struct View {
    status: StatusCode,
    flash: Option<Flash>,
    draft: Option<Draft>,
    review: Option<Vec<ChangeRow>>,
}

async fn render(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    app: &str,
    edit: &str,
    view: View,
) -> PageResult {
    let shell = Shell::load(
        state,
        authed,
        Some(ws),
        "/switches",
        Some(app).filter(|a| !a.is_empty()),
        "Switches",
    )
    .await?
    .with_flash(view.flash);
    let (shell, app_key) = shell.app_or_first(app, "switches")?;
    let principal = authed.principal();
    let set = state
        .switches
        .current(&principal, ws, &app_key)
        .await
        .map_err(platform_error)
        .or_error_page(&shell)?;
    let history = state
        .switches
        .history(&principal, ws, &app_key, None, Some(30))
        .await
        .map_err(platform_error)
        .or_error_page(&shell)?;
    let base = format!("{}/switches?app={}", shell.base(), encode_query(&app_key));
    let draft = view.draft.unwrap_or_else(|| {
        set.switches
            .iter()
            .find(|s| s.key == edit)
            .map(|s| Draft::of(s, set.version))
            .unwrap_or(Draft {
                value_type: "bool".into(),
                default: "false".into(),
                expected_version: set.version,
                ..Draft::default()
            })
    });
    let platforms = Platform::ALL
        .iter()
        .map(|p| (p.as_str(), draft.platforms.iter().any(|x| x == p.as_str())))
        .collect();
    let page = SwitchesPage {
        rows: set
            .switches
            .iter()
            .map(|switch| SwitchRow {
                default_text: switch.value_type.write_value(&switch.default),
                rule_lines: switch
                    .rules
                    .iter()
                    .map(|rule| rule.write_line(switch.value_type))
                    .collect(),
                platforms_text: if switch.platforms.is_empty() {
                    "all".into()
                } else {
                    switch
                        .platforms
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                edit_href: format!("{base}&edit={}#editor", encode_query(&switch.key)),
                switch: switch.clone(),
            })
            .collect(),
        history: history
            .into_iter()
            .map(|entry| VersionRow {
                changes: changes_summary(&entry.diff),
                can_roll_back: entry.version != set.version,
                entry,
            })
            .collect(),
        draft,
        types: SwitchType::ALL.iter().map(|t| t.as_str()).collect(),
        platforms,
        review: view.review,
        app_key,
        set,
        shell,
    };
    Ok(view::render(view.status, &page))
}

/// `GET /w/{ws}/switches`.
pub async fn index(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Query(query): Query<SwitchesQuery>,
) -> PageResult {
    let flash = view::done_message(&query.done);
    let shown = View {
        status: StatusCode::OK,
        flash,
        draft: None,
        review: None,
    };
    render(&state, &authed, &ws, &query.app, &query.edit, shown).await
}

/// Re-renders the editor with the draft and what went wrong.
async fn refused(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    app: &str,
    draft: Draft,
    error: Error,
) -> PageResult {
    let shown = View {
        status: view::status_of(&error),
        flash: Some(Flash::error(&error)),
        draft: Some(draft),
        review: None,
    };
    render(state, authed, ws, app, "", shown).await
}

/// The whole set in force with the draft applied.
async fn drafted_set(
    state: &ConsoleState,
    principal: &atoll_platform::Principal,
    ws: &str,
    app: &str,
    draft: &Draft,
) -> Result<Vec<Switch>, Error> {
    let current = state
        .switches
        .current(principal, ws, app)
        .await
        .map_err(platform_error)?;
    draft.apply(&current.switches).map_err(Error::Validation)
}

/// `POST /w/{ws}/switches/review`: shows what publishing the draft would change.
pub async fn review(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let app = fields.get("app").to_owned();
    let draft = Draft::from_form(&fields);
    let principal = authed.principal();
    let outcome = async {
        let switches = drafted_set(&state, &principal, &ws, &app, &draft).await?;
        state
            .switches
            .preview(&principal, &ws, &app, switches)
            .await
            .map_err(platform_error)
    }
    .await;
    match outcome {
        Ok(diff) if diff.is_empty() => {
            let error =
                Error::Validation("nothing to publish: the switches would not change".into());
            refused(&state, &authed, &ws, &app, draft, error).await
        }
        Ok(diff) => {
            let shown = View {
                status: StatusCode::OK,
                flash: None,
                draft: Some(draft),
                review: Some(change_rows(&diff)),
            };
            render(&state, &authed, &ws, &app, "", shown).await
        }
        Err(error) => refused(&state, &authed, &ws, &app, draft, error).await,
    }
}

/// `POST /w/{ws}/switches/publish`: publishes the reviewed draft.
pub async fn publish(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let app = fields.get("app").to_owned();
    let draft = Draft::from_form(&fields);
    let principal = authed.principal();
    let outcome = async {
        let switches = drafted_set(&state, &principal, &ws, &app, &draft).await?;
        let request = PublishSwitches {
            expected_version: Some(draft.expected_version),
            message: draft.message.clone(),
            switches,
        };
        state
            .switches
            .publish(&principal, &ws, &app, request)
            .await
            .map_err(platform_error)
    }
    .await;
    match outcome {
        Ok(_) => Ok(done_redirect(&ws, &app, "switches_published")),
        Err(error) => refused(&state, &authed, &ws, &app, draft, error).await,
    }
}

/// `POST /w/{ws}/switches/delete`.
pub async fn delete(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let app = fields.get("app").to_owned();
    let expected = fields.get("expected_version").parse().ok();
    let outcome = state
        .switches
        .delete(&authed.principal(), &ws, &app, fields.get("key"), expected)
        .await
        .map_err(platform_error);
    done_or_refused(
        &state,
        &authed,
        &ws,
        &app,
        outcome.map(|_| "switches_published"),
    )
    .await
}

/// `POST /w/{ws}/switches/rollback`.
pub async fn rollback(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let app = fields.get("app").to_owned();
    let outcome = match fields.get("version").parse() {
        Ok(version) => state
            .switches
            .rollback(
                &authed.principal(),
                &ws,
                &app,
                RollbackSwitches {
                    version,
                    expected_version: None,
                },
            )
            .await
            .map_err(platform_error),
        Err(_) => Err(Error::Validation("choose a version to roll back to".into())),
    };
    done_or_refused(
        &state,
        &authed,
        &ws,
        &app,
        outcome.map(|_| "switches_rolled_back"),
    )
    .await
}

/// Back to the app's switches page with the message for `done` (post/redirect/get).
fn done_redirect(ws: &str, app: &str, done: &str) -> axum::response::Response {
    Redirect::to(&format!(
        "/w/{}/switches?app={}&done={done}",
        view::encode_segment(ws),
        encode_query(app)
    ))
    .into_response()
}

async fn done_or_refused(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    app: &str,
    outcome: Result<&str, Error>,
) -> PageResult {
    match outcome {
        Ok(done) => Ok(done_redirect(ws, app, done)),
        Err(error) => {
            let shown = View {
                status: view::status_of(&error),
                flash: Some(Flash::error(&error)),
                draft: None,
                review: None,
            };
            render(state, authed, ws, app, "", shown).await
        }
    }
}
