//! `atoll sync …`: biz types, sync orders, counters and device cursors from
//! the command line. `send` is what an app backend's script would do with a
//! `sync:write` token (`ATOLL_TOKEN`).

use crate::cli::AppArgs;
use crate::output::{print, time};
use anyhow::bail;
use atoll_protocol::device::Platform;
use atoll_protocol::sync::*;
use clap::Subcommand;

/// `atoll sync …`.
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// The app's biz types with their counters (last 30 days).
    List {
        #[command(flatten)]
        app: AppArgs,
    },
    /// Create a biz type, e.g. `atoll sync create ORDER-STATUS --for user --multi-device`.
    Create {
        /// Upper case with hyphens.
        id: String,
        /// `user` or `device`.
        #[arg(long = "for", default_value = "user")]
        dimension: String,
        /// Live only: never stored, only devices online now receive it.
        #[arg(long)]
        live_only: bool,
        /// Keep only the newest N per target.
        #[arg(long)]
        keep_newest: Option<u32>,
        /// New devices of a user receive the retained history.
        #[arg(long)]
        multi_device: bool,
        /// Global orders (every device) allowed.
        #[arg(long)]
        global: bool,
        /// Deliver user data only to devices bound to the user now.
        #[arg(long)]
        bound_users_only: bool,
        /// Days data is kept.
        #[arg(long, default_value_t = DEFAULT_RETENTION_DAYS)]
        retention_days: u32,
        /// What it carries.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Take a biz type offline (no orders, no delivery) or bring it back.
    State {
        /// The biz type.
        id: String,
        /// `online` or `offline`.
        state: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Delete a biz type with all its data.
    Delete {
        /// The biz type.
        id: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Send a datum to a user or device, or with `--global` to every device.
    Send {
        /// The biz type.
        biz_type: String,
        /// The payload (≤ 4096 characters).
        payload: String,
        /// The user id or device id.
        #[arg(long, required_unless_present = "global")]
        to: Option<String>,
        /// To every device of a global biz type.
        #[arg(long, conflicts_with = "to")]
        global: bool,
        /// Your id of the datum (a repeat answers DUPLICATED_BIZ_ID); default: new.
        #[arg(long)]
        id: Option<String>,
        /// Seconds it stays deliverable.
        #[arg(long)]
        valid_seconds: Option<u64>,
        /// Only these platforms (repeatable).
        #[arg(long = "platform")]
        platforms: Vec<String>,
        /// Lowest app version.
        #[arg(long)]
        min_version: Option<String>,
        /// Highest app version.
        #[arg(long)]
        max_version: Option<String>,
        #[command(flatten)]
        app: AppArgs,
    },
    /// The app's devices connected to the node that answers.
    Online {
        /// Devices to list.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        app: AppArgs,
    },
    /// A device's cursors and pending data.
    Device {
        /// The device id.
        device_id: String,
        #[command(flatten)]
        app: AppArgs,
    },
}

/// Runs one `atoll sync` command.
pub async fn run(command: SyncCommand) -> anyhow::Result<()> {
    match command {
        SyncCommand::List { app } => {
            let (client, slug) = app.connect().await?;
            let types = client.biz_types(&slug, &app.app).await?;
            let stats = client.sync_stats(&slug, &app.app, 30).await?;
            let rows = types
                .iter()
                .map(|biz| {
                    let counts = stats
                        .iter()
                        .find(|s| s.biz_type == biz.spec.id)
                        .cloned()
                        .unwrap_or_default();
                    vec![
                        biz.spec.id.clone(),
                        biz.spec.dimension.as_str().into(),
                        if biz.spec.persistent {
                            "stored"
                        } else {
                            "live"
                        }
                        .into(),
                        if biz.spec.enabled {
                            "online"
                        } else {
                            "offline"
                        }
                        .into(),
                        counts.sent.to_string(),
                        counts.delivered.to_string(),
                        counts.acknowledged.to_string(),
                        counts.dropped.to_string(),
                        counts.backlog.to_string(),
                    ]
                })
                .collect();
            print(
                app.client.json,
                &types,
                &[
                    "biz type",
                    "for",
                    "kind",
                    "state",
                    "sent",
                    "delivered",
                    "acked",
                    "dropped",
                    "backlog",
                ],
                rows,
            )
        }
        SyncCommand::Create {
            id,
            dimension,
            live_only,
            keep_newest,
            multi_device,
            global,
            bound_users_only,
            retention_days,
            description,
            app,
        } => {
            let dimension = match dimension.as_str() {
                "user" => Dimension::User,
                "device" => Dimension::Device,
                other => bail!("--for is user or device, not '{other}'"),
            };
            let (client, slug) = app.connect().await?;
            let created = client
                .create_biz_type(
                    &slug,
                    &app.app,
                    &BizTypeSpec {
                        id,
                        description,
                        dimension,
                        persistent: !live_only,
                        backlog_threshold: keep_newest,
                        multi_device,
                        global_allowed: global,
                        retention_days,
                        user_consistency: bound_users_only,
                        enabled: true,
                    },
                )
                .await?;
            print(
                app.client.json,
                &created,
                &["biz type", "created"],
                vec![vec![created.spec.id.clone(), time(created.created_at)]],
            )
        }
        SyncCommand::State { id, state, app } => {
            let enabled = match state.as_str() {
                "online" => true,
                "offline" => false,
                other => bail!("the state is online or offline, not '{other}'"),
            };
            let (client, slug) = app.connect().await?;
            let mut spec = client.biz_type(&slug, &app.app, &id).await?.spec;
            spec.enabled = enabled;
            let changed = client.update_biz_type(&slug, &app.app, &spec).await?;
            print(
                app.client.json,
                &changed,
                &["biz type", "state"],
                vec![vec![id, state]],
            )
        }
        SyncCommand::Delete { id, app } => {
            let (client, slug) = app.connect().await?;
            client.delete_biz_type(&slug, &app.app, &id).await?;
            if !app.client.json {
                println!("deleted {id}");
            }
            Ok(())
        }
        SyncCommand::Send {
            biz_type,
            payload,
            to,
            global,
            id,
            valid_seconds,
            platforms,
            min_version,
            max_version,
            app,
        } => {
            let platforms = platforms
                .iter()
                .map(|text| {
                    Platform::parse(text)
                        .ok_or_else(|| anyhow::anyhow!("unknown platform '{text}'"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let filter = DeliveryFilter {
                platforms,
                app_min_version: min_version,
                app_max_version: max_version,
            };
            let third_msg_id =
                id.unwrap_or_else(|| format!("cli-{}", uuid::Uuid::now_v7().simple()));
            let (client, slug) = app.connect().await?;
            let answer = match (global, to) {
                (true, _) => {
                    client
                        .send_global_sync(
                            &slug,
                            &app.app,
                            &GlobalSyncOrder {
                                biz_type,
                                third_msg_id,
                                payload,
                                valid_seconds,
                                filter,
                            },
                        )
                        .await?
                }
                (false, Some(link_token)) => {
                    client
                        .send_sync(
                            &slug,
                            &app.app,
                            &SyncOrder {
                                biz_type,
                                link_token,
                                third_msg_id,
                                payload,
                                valid_seconds,
                                filter,
                            },
                        )
                        .await?
                }
                (false, None) => bail!("--to or --global"),
            };
            print(
                app.client.json,
                &answer,
                &["result", "msg id", "stream", "seq"],
                vec![vec![
                    answer.result_code.clone(),
                    answer.msg_id.clone(),
                    answer.stream.clone(),
                    answer.seq.to_string(),
                ]],
            )
        }
        SyncCommand::Online { limit, app } => {
            let (client, slug) = app.connect().await?;
            let online = client.sync_online(&slug, &app.app, limit).await?;
            let rows = online
                .devices
                .iter()
                .map(|d| {
                    vec![
                        d.device_id.clone(),
                        d.user_id.clone().unwrap_or_default(),
                        time(d.since),
                        d.connection_id.clone(),
                        d.biz_types.join(","),
                    ]
                })
                .collect();
            print(
                app.client.json,
                &online,
                &["device", "user", "since", "connection", "biz types"],
                rows,
            )
        }
        SyncCommand::Device { device_id, app } => {
            let (client, slug) = app.connect().await?;
            let state = client.sync_device(&slug, &app.app, &device_id).await?;
            let rows = state
                .cursors
                .iter()
                .map(|c| {
                    vec![
                        c.biz_type.clone(),
                        c.stream.clone(),
                        c.acked.to_string(),
                        c.head.to_string(),
                        c.pending.len().to_string(),
                    ]
                })
                .collect();
            print(
                app.client.json,
                &state,
                &["biz type", "stream", "acked", "head", "pending"],
                rows,
            )
        }
    }
}
