//! Push pages: the composer (simple, template and broadcast sends, which are
//! real sends), the task list with each task's counters, a task's delivery
//! funnel with its per-channel breakdown and failures by reason, templates,
//! the vendor channels (credentials are write-only) and the fatigue caps.

use super::{non_blank, Fields};
use crate::auth::Authed;
use crate::view::{self, encode_query, filters, Flash, OrErrorPage, PageResult, Shell};
use crate::ConsoleState;
use askama::Template;
use atoll_platform::Error;
use atoll_protocol::device::Platform;
use atoll_protocol::push::{
    Binding, BroadcastPush, ChannelCredentials, ChannelInfo, ClickAction, PushCounts, PushSettings,
    PushStats, PushTarget, PushTask, PushTaskDetail, SendOptions, SendResult, SimplePush,
    TargetType, Template as PushTemplate, TemplatePush, TemplateSpec,
};
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `?app=…&task=…&done=…`.
#[derive(Debug, Default, Deserialize)]
pub struct PushQuery {
    #[serde(default)]
    app: String,
    /// The task whose funnel is shown.
    #[serde(default)]
    task: String,
    #[serde(default)]
    done: String,
}

/// One bar of the funnel.
struct Step {
    label: &'static str,
    count: u64,
    /// Width in percent of the first step.
    width: u64,
}

#[derive(Template)]
#[template(path = "push.html")]
struct PushPage {
    shell: Shell,
    app_key: String,
    tasks: Vec<PushTask>,
    detail: Option<PushTaskDetail>,
    funnel: Vec<Step>,
    templates: Vec<PushTemplate>,
    channels: Vec<ChannelInfo>,
    settings: PushSettings,
    sent: Option<SendResult>,
    /// The core indexes of the last 30 days.
    stats: PushStats,
}

fn push_error(error: atoll_push::Error) -> Error {
    match error {
        atoll_push::Error::Platform(error) => error,
        error => view::module_error(error.code(), error.to_string()),
    }
}

fn funnel_of(counts: &PushCounts) -> Vec<Step> {
    let steps = [
        ("Targeted", counts.targeted),
        ("Sent", counts.sent),
        ("Arrived", counts.arrived),
        ("Opened", counts.opened),
    ];
    let top = counts.targeted.max(1);
    steps
        .into_iter()
        .map(|(label, count)| Step {
            label,
            count,
            width: (count * 100 / top).min(100),
        })
        .collect()
}

async fn render(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    query: &PushQuery,
    status: StatusCode,
    flash: Option<Flash>,
    sent: Option<SendResult>,
) -> PageResult {
    let app = query.app.as_str();
    let shell = Shell::load(
        state,
        authed,
        Some(ws),
        "/push",
        Some(app).filter(|a| !a.is_empty()),
        "Push",
    )
    .await?
    .with_flash(flash);
    let (shell, app_key) = shell.app_or_first(app, "push")?;
    let principal = authed.principal();
    let push = &state.push;
    let tasks = push
        .list_tasks(&principal, ws, &app_key, None, 50)
        .await
        .map_err(push_error)
        .or_error_page(&shell)?;
    let templates = push
        .list_templates(&principal, ws, &app_key)
        .await
        .map_err(push_error)
        .or_error_page(&shell)?;
    let channels = push
        .list_channels(&principal, ws, &app_key)
        .await
        .map_err(push_error)
        .or_error_page(&shell)?;
    let settings = push
        .get_settings(&principal, ws, &app_key)
        .await
        .map_err(push_error)
        .or_error_page(&shell)?;
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        .div_euclid(86_400_000);
    let stats = push
        .stats(
            &principal,
            ws,
            &app_key,
            today - 29,
            today,
            None,
            None,
            None,
        )
        .await
        .map_err(push_error)
        .or_error_page(&shell)?;
    let task = query.task.trim();
    let detail = if task.is_empty() {
        None
    } else {
        Some(
            push.task_detail(&principal, ws, &app_key, task)
                .await
                .map_err(push_error)
                .or_error_page(&shell)?,
        )
    };
    let funnel = detail
        .as_ref()
        .map(|d| funnel_of(&d.task.counts))
        .unwrap_or_default();
    let page = PushPage {
        tasks,
        detail,
        funnel,
        templates,
        channels,
        settings,
        sent,
        stats,
        app_key,
        shell,
    };
    Ok(view::render(status, &page))
}

/// `GET /w/{ws}/push`.
pub async fn index(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Query(query): Query<PushQuery>,
) -> PageResult {
    let flash = view::done_message(&query.done);
    render(&state, &authed, &ws, &query, StatusCode::OK, flash, None).await
}

fn query_of(fields: &Fields) -> PushQuery {
    PushQuery {
        app: fields.get("app").to_owned(),
        task: String::new(),
        done: String::new(),
    }
}

async fn done_or_refused(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    query: PushQuery,
    outcome: Result<&str, Error>,
) -> PageResult {
    match outcome {
        Ok(done) => Ok(Redirect::to(&format!(
            "/w/{}/push?app={}&done={done}",
            view::encode_segment(ws),
            encode_query(&query.app),
        ))
        .into_response()),
        Err(error) => {
            render(
                state,
                authed,
                ws,
                &query,
                view::status_of(&error),
                Some(Flash::error(&error)),
                None,
            )
            .await
        }
    }
}

/// `name=value` lines.
fn values_of(text: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut values = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| Error::Validation(format!("values: '{line}' is not name=value")))?;
        values.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    Ok(values)
}

fn options_of(fields: &Fields) -> Result<SendOptions, Error> {
    let minutes = fields.number("expires_minutes")?.unwrap_or(60);
    let click = non_blank(fields.get("click_url")).map(|url| {
        if url.starts_with("http://") || url.starts_with("https://") {
            ClickAction::Url(url)
        } else {
            ClickAction::DeepLink(url)
        }
    });
    Ok(SendOptions {
        task_name: non_blank(fields.get("task_name")),
        expires_in_secs: minutes as u64 * 60,
        silent: fields.get("silent") == "on",
        click,
        collapse_key: non_blank(fields.get("collapse_key")),
        extras: values_of(fields.get("extras"))?,
        ..SendOptions::default()
    })
}

/// `POST /w/{ws}/push/send`: a real send from the composer.
pub async fn send(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let query = query_of(&fields);
    let principal = authed.principal();
    let outcome = async {
        let options = options_of(&fields)?;
        let target_type = TargetType::parse(fields.get("target_type")).unwrap_or_default();
        let targets: Vec<PushTarget> = fields
            .get("targets")
            .split([',', '\n', ' '])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| PushTarget {
                target: t.to_owned(),
                msg_key: None,
            })
            .collect();
        let template = non_blank(fields.get("template"));
        let values = values_of(fields.get("values"))?;
        let push = &state.push;
        let result = match fields.get("kind") {
            "broadcast" => {
                push.send_broadcast(
                    &principal,
                    &ws,
                    &query.app,
                    BroadcastPush {
                        platform: Platform::parse(fields.get("platform")),
                        binding: match fields.get("binding") {
                            "unbound" => Binding::Unbound,
                            "all" => Binding::All,
                            _ => Binding::Bound,
                        },
                        rule: non_blank(fields.get("rule")),
                        title: fields.get("title").to_owned(),
                        body: fields.get("body").to_owned(),
                        template,
                        values,
                        msg_key: None,
                        options,
                    },
                )
                .await
            }
            _ => match template {
                Some(template) => {
                    push.send_template(
                        &principal,
                        &ws,
                        &query.app,
                        TemplatePush {
                            target_type,
                            targets,
                            template,
                            values,
                            options,
                        },
                    )
                    .await
                }
                None => {
                    push.send_simple(
                        &principal,
                        &ws,
                        &query.app,
                        SimplePush {
                            target_type,
                            targets,
                            title: fields.get("title").to_owned(),
                            body: fields.get("body").to_owned(),
                            options,
                        },
                    )
                    .await
                }
            },
        };
        result.map_err(push_error)
    }
    .await;
    match outcome {
        Ok(result) => {
            let query = PushQuery {
                task: result.task_id.clone(),
                ..query
            };
            let devices: u64 = result.messages.iter().map(|m| m.devices).sum();
            let flash = Flash::success(format!(
                "Sent: task {} ({}), {devices} device(s) so far.",
                result.task_id, result.state
            ));
            render(
                &state,
                &authed,
                &ws,
                &query,
                StatusCode::OK,
                Some(flash),
                Some(result),
            )
            .await
        }
        Err(error) => {
            render(
                &state,
                &authed,
                &ws,
                &query,
                view::status_of(&error),
                Some(Flash::error(&error)),
                None,
            )
            .await
        }
    }
}

/// `POST /w/{ws}/push/templates`: a new template.
pub async fn create_template(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let query = query_of(&fields);
    let outcome = state
        .push
        .create_template(
            &authed.principal(),
            &ws,
            &query.app,
            TemplateSpec {
                name: fields.get("name").trim().to_owned(),
                description: fields.get("description").trim().to_owned(),
                title: fields.get("title").to_owned(),
                body: fields.get("body").to_owned(),
                url: non_blank(fields.get("url")),
            },
        )
        .await
        .map(|_| "template_created")
        .map_err(push_error);
    done_or_refused(&state, &authed, &ws, query, outcome).await
}

/// `POST /w/{ws}/push/channels`: a vendor's credentials (JSON).
pub async fn put_channel(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let query = query_of(&fields);
    let outcome = async {
        let channel =
            atoll_push::channels::parse_channel(fields.get("channel")).map_err(push_error)?;
        let credentials: serde_json::Value = serde_json::from_str(fields.get("credentials"))
            .map_err(|error| Error::Validation(format!("credentials: not JSON ({error})")))?;
        state
            .push
            .put_channel(
                &authed.principal(),
                &ws,
                &query.app,
                channel,
                ChannelCredentials {
                    credentials,
                    rate_per_sec: fields.number("rate_per_sec")?.unwrap_or(0),
                    concurrency: fields.number("concurrency")?.unwrap_or(0),
                },
            )
            .await
            .map_err(push_error)?;
        Ok("channel_saved")
    }
    .await;
    done_or_refused(&state, &authed, &ws, query, outcome).await
}

/// `POST /w/{ws}/push/settings`: fatigue caps.
pub async fn put_settings(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let query = query_of(&fields);
    let outcome = async {
        let principal = authed.principal();
        let mut settings = state
            .push
            .get_settings(&principal, &ws, &query.app)
            .await
            .map_err(push_error)?;
        settings.cap_per_hour = fields.number("cap_per_hour")?.unwrap_or(0);
        settings.cap_per_day = fields.number("cap_per_day")?.unwrap_or(0);
        settings.cap_per_week = fields.number("cap_per_week")?.unwrap_or(0);
        state
            .push
            .put_settings(&principal, &ws, &query.app, settings)
            .await
            .map_err(push_error)?;
        Ok("push_settings_saved")
    }
    .await;
    done_or_refused(&state, &authed, &ws, query, outcome).await
}
