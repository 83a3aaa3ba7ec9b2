//! `atoll push …`: sends, tasks, templates and vendor channels from the
//! command line. `send` is what an app backend's script would do with a
//! `push:send` token (`ATOLL_TOKEN`).

use crate::cli::AppArgs;
use crate::output::{print, time};
use anyhow::{bail, Context};
use atoll_protocol::device::Platform;
use atoll_protocol::push::*;
use clap::Subcommand;
use std::collections::BTreeMap;

/// `atoll push …`.
#[derive(Debug, Subcommand)]
pub enum PushCommand {
    /// Send a notification to devices or users, or with `--broadcast` to everyone.
    Send {
        /// Title (or use --template).
        #[arg(long, default_value = "")]
        title: String,
        /// Body.
        #[arg(long, default_value = "")]
        body: String,
        /// A device id (repeatable, ≤ 10).
        #[arg(long = "device")]
        devices: Vec<String>,
        /// A user id: every bound device (repeatable, ≤ 10).
        #[arg(long = "user", conflicts_with = "devices")]
        users: Vec<String>,
        /// Every matching device of the app.
        #[arg(long, conflicts_with_all = ["devices", "users"])]
        broadcast: bool,
        /// Broadcast: only this platform.
        #[arg(long)]
        platform: Option<String>,
        /// Broadcast: only devices matching this target rule.
        #[arg(long)]
        rule: Option<String>,
        /// A template instead of title and body.
        #[arg(long)]
        template: Option<String>,
        /// A template value, `name=value` (repeatable).
        #[arg(long = "value")]
        values: Vec<String>,
        /// An extra parameter, `key=value` (repeatable, ≤ 20).
        #[arg(long = "extra")]
        extras: Vec<String>,
        /// Minutes the message stays deliverable.
        #[arg(long, default_value_t = 60)]
        expires_minutes: u64,
        /// Replaces an earlier message with the same key.
        #[arg(long)]
        collapse_key: Option<String>,
        /// Your id of this message (a repeat is not sent again).
        #[arg(long)]
        msg_key: Option<String>,
        /// Data only, no alert.
        #[arg(long)]
        silent: bool,
        #[command(flatten)]
        app: AppArgs,
    },
    /// The app's tasks with their counters.
    Tasks {
        #[command(flatten)]
        app: AppArgs,
    },
    /// One task: funnel, channels, failures.
    Task {
        /// The task id.
        task_id: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Revoke a message (by id) or a whole task, within 7 days.
    Revoke {
        /// A message id.
        #[arg(long, required_unless_present = "task")]
        msg_id: Option<String>,
        /// A task id.
        #[arg(long, conflicts_with = "msg_id")]
        task: Option<String>,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Create a template with `#name#` placeholders.
    Template {
        /// `[A-Za-z0-9_]`.
        name: String,
        /// Title.
        #[arg(long)]
        title: String,
        /// Body.
        #[arg(long)]
        body: String,
        /// Click URL or deep link.
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Store a vendor's credentials from a JSON file (APNs, FCM, HMS).
    Channel {
        /// `apns`, `fcm` or `hms`.
        channel: String,
        /// The credentials JSON file (for FCM: the service-account file).
        credentials: std::path::PathBuf,
        #[command(flatten)]
        app: AppArgs,
    },
}

fn pairs(items: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|item| {
            item.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--{what} '{item}' is not name=value"))
        })
        .collect()
}

fn counts_row(id: &str, name: &str, state: &str, created: i64, c: &PushCounts) -> Vec<String> {
    vec![
        id.into(),
        name.into(),
        state.into(),
        time(created),
        c.targeted.to_string(),
        c.sent.to_string(),
        c.arrived.to_string(),
        c.opened.to_string(),
        c.failed.to_string(),
    ]
}

const COUNT_HEADERS: [&str; 9] = [
    "task", "name", "state", "created", "targeted", "sent", "arrived", "opened", "failed",
];

/// Runs one `atoll push` command.
pub async fn run(command: PushCommand) -> anyhow::Result<()> {
    match command {
        PushCommand::Send {
            title,
            body,
            devices,
            users,
            broadcast,
            platform,
            rule,
            template,
            values,
            extras,
            expires_minutes,
            collapse_key,
            msg_key,
            silent,
            app,
        } => {
            let options = SendOptions {
                expires_in_secs: expires_minutes * 60,
                silent,
                collapse_key,
                extras: pairs(&extras, "extra")?,
                ..SendOptions::default()
            };
            let values = pairs(&values, "value")?;
            let (client, slug) = app.connect().await?;
            let result = if broadcast {
                let platform = match platform.as_deref() {
                    Some(p) => Some(
                        Platform::parse(p).with_context(|| format!("unknown platform '{p}'"))?,
                    ),
                    None => None,
                };
                client
                    .push_broadcast(
                        &slug,
                        &app.app,
                        &BroadcastPush {
                            platform,
                            binding: Binding::All,
                            rule,
                            title,
                            body,
                            template,
                            values,
                            msg_key,
                            options,
                        },
                    )
                    .await?
            } else {
                let (target_type, ids) = if users.is_empty() {
                    (TargetType::Device, devices)
                } else {
                    (TargetType::User, users)
                };
                if ids.is_empty() {
                    bail!("give --device, --user or --broadcast");
                }
                let targets: Vec<PushTarget> = ids
                    .into_iter()
                    .map(|target| PushTarget {
                        msg_key: msg_key.as_ref().map(|k| format!("{k}:{target}")),
                        target,
                    })
                    .collect();
                match template {
                    Some(template) => {
                        client
                            .push_template(
                                &slug,
                                &app.app,
                                &TemplatePush {
                                    target_type,
                                    targets,
                                    template,
                                    values,
                                    options,
                                },
                            )
                            .await?
                    }
                    None => {
                        client
                            .push_simple(
                                &slug,
                                &app.app,
                                &SimplePush {
                                    target_type,
                                    targets,
                                    title,
                                    body,
                                    options,
                                },
                            )
                            .await?
                    }
                }
            };
            let rows = result
                .messages
                .iter()
                .map(|m| {
                    vec![
                        result.task_id.clone(),
                        m.target.clone(),
                        m.msg_id.clone(),
                        m.devices.to_string(),
                        m.result_code.clone(),
                    ]
                })
                .collect();
            print(
                app.client.json,
                &result,
                &["task", "target", "msg id", "devices", "result"],
                rows,
            )
        }
        PushCommand::Tasks { app } => {
            let (client, slug) = app.connect().await?;
            let tasks = client.push_tasks(&slug, &app.app).await?;
            let rows = tasks
                .iter()
                .map(|t| counts_row(&t.id, &t.name, &t.state, t.created_at, &t.counts))
                .collect();
            print(app.client.json, &tasks, &COUNT_HEADERS, rows)
        }
        PushCommand::Task { task_id, app } => {
            let (client, slug) = app.connect().await?;
            let detail = client.push_task(&slug, &app.app, &task_id).await?;
            let t = &detail.task;
            let mut rows = vec![counts_row(
                &t.id,
                &t.name,
                &t.state,
                t.created_at,
                &t.counts,
            )];
            for (channel, counts) in &detail.by_channel {
                rows.push(counts_row(
                    &t.id,
                    &format!("  via {channel}"),
                    "",
                    t.created_at,
                    counts,
                ));
            }
            for (reason, n) in &detail.failures {
                rows.push(vec![
                    t.id.clone(),
                    format!("  failed: {reason}"),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    n.to_string(),
                ]);
            }
            print(app.client.json, &detail, &COUNT_HEADERS, rows)
        }
        PushCommand::Revoke { msg_id, task, app } => {
            let (client, slug) = app.connect().await?;
            let result = client
                .push_revoke(
                    &slug,
                    &app.app,
                    &RevokeRequest {
                        msg_id,
                        msg_key: None,
                        task_id: task,
                    },
                )
                .await?;
            print(
                app.client.json,
                &result,
                &["recalled", "withdrawn", "not revocable"],
                vec![vec![
                    result.recalled.to_string(),
                    result.withdrawn.to_string(),
                    result.not_revocable.to_string(),
                ]],
            )
        }
        PushCommand::Template {
            name,
            title,
            body,
            url,
            app,
        } => {
            let (client, slug) = app.connect().await?;
            let created = client
                .create_push_template(
                    &slug,
                    &app.app,
                    &TemplateSpec {
                        name,
                        description: String::new(),
                        title,
                        body,
                        url,
                    },
                )
                .await?;
            print(
                app.client.json,
                &created,
                &["template", "placeholders"],
                vec![vec![
                    created.spec.name.clone(),
                    created.placeholders.join(", "),
                ]],
            )
        }
        PushCommand::Channel {
            channel,
            credentials,
            app,
        } => {
            let text = std::fs::read_to_string(&credentials)
                .with_context(|| format!("reading {}", credentials.display()))?;
            let credentials: serde_json::Value =
                serde_json::from_str(&text).context("the credentials file is not JSON")?;
            let (client, slug) = app.connect().await?;
            let saved = client
                .put_push_channel(
                    &slug,
                    &app.app,
                    &channel,
                    &ChannelCredentials {
                        credentials,
                        rate_per_sec: 0,
                        concurrency: 0,
                    },
                )
                .await?;
            print(
                app.client.json,
                &saved,
                &["channel", "identifiers"],
                vec![vec![saved.channel.as_str().into(), saved.summary.clone()]],
            )
        }
    }
}
