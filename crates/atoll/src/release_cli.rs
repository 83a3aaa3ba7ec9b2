//! `atoll release …` and `atoll lists …`: delivery from the command line.
//!
//! A typical rollout: `upload` a package (prints its id), `create` a draft
//! release of it with a whitelist rule, `promote --stage whitelist`, then
//! `promote --stage percentage --percent 5`, and `promote --stage official`;
//! `pause`, `resume`, `end` and `rollback` steer it, `stats` shows its funnel.

use crate::cli::AppArgs;
use crate::output::{print, time};
use anyhow::{bail, Context};
use atoll_protocol::delivery::*;
use atoll_protocol::device::Platform;
use clap::Subcommand;

/// `atoll release …`.
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Upload a package file (or register a store link) and print its id.
    Upload {
        /// The file (omit with --store-url).
        file: Option<std::path::PathBuf>,
        /// app, h5, miniprogram or hotpatch.
        #[arg(long, default_value = "app")]
        kind: String,
        /// android, ios, harmony, web or miniprogram.
        #[arg(long)]
        platform: String,
        /// The package's version.
        #[arg(long)]
        version: String,
        /// For h5 and mini programs: the package id.
        #[arg(long)]
        resource_id: Option<String>,
        /// For a hotpatch: the app version it patches.
        #[arg(long)]
        for_app_version: Option<String>,
        /// An installer's store page instead of a file.
        #[arg(long)]
        store_url: Option<String>,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Create a draft release of an uploaded package.
    Create {
        /// The package id (from `upload` or `packages`).
        package: String,
        /// silent, prompt_once, prompt_every_launch or forced.
        #[arg(long)]
        mode: Option<String>,
        /// Who gets it from the whitelist stage on, e.g. 'user in list:testers'.
        #[arg(long)]
        whitelist: Option<String>,
        /// A target rule every device must match, e.g. 'os_version >= 12'.
        #[arg(long)]
        rule: Option<String>,
        /// Installed app versions that may take it, e.g. '>=2.0 <3.0'.
        #[arg(long)]
        app_versions: Option<String>,
        /// Devices below this app version must upgrade.
        #[arg(long)]
        force_below: Option<String>,
        /// Release notes.
        #[arg(long, default_value = "")]
        notes: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Move a release to a stage: whitelist, percentage (with --percent) or official.
    Promote {
        /// The release id.
        release: String,
        /// draft, whitelist, percentage or official.
        #[arg(long)]
        stage: String,
        /// For the percentage stage: the share of devices (0-100).
        #[arg(long)]
        percent: Option<f64>,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Stop offering a release for now.
    Pause {
        /// The release id.
        release: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Offer a paused release again.
    Resume {
        /// The release id.
        release: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Finish a release (devices keep what they installed).
    End {
        /// The release id.
        release: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Withdraw a release: devices that installed it are sent back.
    Rollback {
        /// The release id.
        release: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// The app's releases, most recently changed first.
    List {
        #[command(flatten)]
        app: AppArgs,
    },
    /// The app's uploaded packages, newest first.
    Packages {
        #[command(flatten)]
        app: AppArgs,
    },
    /// A release's counts: checks, offered, downloaded, installed, failed.
    Stats {
        /// The release id.
        release: String,
        #[command(flatten)]
        app: AppArgs,
    },
}

/// `atoll lists …`.
#[derive(Debug, Subcommand)]
pub enum ListsCommand {
    /// The app's lists.
    Show {
        /// One list's ids instead.
        name: Option<String>,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Create or replace a list from a file of ids, one per line.
    Put {
        /// The list's name.
        name: String,
        /// The file of ids ('-' for standard input).
        file: std::path::PathBuf,
        /// device or user.
        #[arg(long, default_value = "user")]
        kind: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Delete a list.
    Delete {
        /// The list's name.
        name: String,
        #[command(flatten)]
        app: AppArgs,
    },
}

fn parsed<T>(
    parse: fn(&str) -> Option<T>,
    what: &str,
    text: &str,
    choices: &str,
) -> anyhow::Result<T> {
    parse(text).with_context(|| format!("--{what} is one of {choices}, not '{text}'"))
}

fn release_rows(releases: &[Release]) -> Vec<Vec<String>> {
    releases
        .iter()
        .map(|r| {
            let stage = match r.stage {
                ReleaseStage::Percentage => format!("percentage {}%", r.percent),
                stage => stage.to_string(),
            };
            vec![
                r.id.clone(),
                format!("{} {}", r.package.kind, r.package.resource_id),
                r.package.platform.to_string(),
                r.package.version.clone(),
                stage,
                r.status.to_string(),
                r.mode.to_string(),
                time(r.updated_at),
            ]
        })
        .collect()
}

const RELEASE_HEADERS: &[&str] = &[
    "id", "resource", "platform", "version", "stage", "status", "mode", "changed",
];

fn show_release(json: bool, release: &Release) -> anyhow::Result<()> {
    print(
        json,
        release,
        RELEASE_HEADERS,
        release_rows(std::slice::from_ref(release)),
    )
}

/// Runs one `atoll release` command.
pub async fn run(command: ReleaseCommand) -> anyhow::Result<()> {
    match command {
        ReleaseCommand::Upload {
            file,
            kind,
            platform,
            version,
            resource_id,
            for_app_version,
            store_url,
            app,
        } => {
            let (client, slug) = app.connect().await?;
            let (content, file_name) = match (&file, &store_url) {
                (Some(path), None) => (
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
                    path.file_name()
                        .map(|name| name.to_string_lossy().into_owned()),
                ),
                (None, Some(_)) => (Vec::new(), None),
                _ => bail!("give either a file or --store-url"),
            };
            let request = UploadPackage {
                kind: parsed(
                    ResourceKind::parse,
                    "kind",
                    &kind,
                    "app, h5, miniprogram, hotpatch",
                )?,
                platform: parsed(
                    Platform::parse,
                    "platform",
                    &platform,
                    "android, ios, harmony, web, miniprogram",
                )?,
                version,
                resource_id,
                for_app_version,
                file_name,
                store_url,
            };
            let package = client
                .upload_package(&slug, &app.app, &request, content)
                .await?;
            print(
                app.client.json,
                &package,
                &["id", "resource", "version", "size", "sha256"],
                vec![vec![
                    package.id.clone(),
                    format!("{} {}", package.kind, package.resource_id),
                    package.version.clone(),
                    package.size.to_string(),
                    package
                        .sha256
                        .clone()
                        .unwrap_or_else(|| "(store link)".into()),
                ]],
            )
        }
        ReleaseCommand::Create {
            package,
            mode,
            whitelist,
            rule,
            app_versions,
            force_below,
            notes,
            app,
        } => {
            let (client, slug) = app.connect().await?;
            let mode = mode
                .map(|mode| {
                    parsed(
                        UpgradeMode::parse,
                        "mode",
                        &mode,
                        "silent, prompt_once, prompt_every_launch, forced",
                    )
                })
                .transpose()?;
            let release = client
                .create_release(
                    &slug,
                    &app.app,
                    &CreateRelease {
                        package_id: package,
                        mode,
                        whitelist,
                        rule,
                        app_versions,
                        force_below,
                        notes,
                    },
                )
                .await?;
            show_release(app.client.json, &release)
        }
        ReleaseCommand::Promote {
            release,
            stage,
            percent,
            app,
        } => {
            let (client, slug) = app.connect().await?;
            let stage = parsed(
                ReleaseStage::parse,
                "stage",
                &stage,
                "draft, whitelist, percentage, official",
            )?;
            let release = client
                .promote_release(
                    &slug,
                    &app.app,
                    &release,
                    &PromoteRelease { stage, percent },
                )
                .await?;
            show_release(app.client.json, &release)
        }
        ReleaseCommand::Pause { release, app } => action(app, &release, ReleaseAction::Pause).await,
        ReleaseCommand::Resume { release, app } => {
            action(app, &release, ReleaseAction::Resume).await
        }
        ReleaseCommand::End { release, app } => action(app, &release, ReleaseAction::End).await,
        ReleaseCommand::Rollback { release, app } => {
            action(app, &release, ReleaseAction::Rollback).await
        }
        ReleaseCommand::List { app } => {
            let (client, slug) = app.connect().await?;
            let releases = client.releases(&slug, &app.app).await?;
            print(
                app.client.json,
                &releases,
                RELEASE_HEADERS,
                release_rows(&releases),
            )
        }
        ReleaseCommand::Packages { app } => {
            let (client, slug) = app.connect().await?;
            let packages = client.packages(&slug, &app.app, None).await?;
            let rows = packages
                .iter()
                .map(|p| {
                    vec![
                        p.id.clone(),
                        format!("{} {}", p.kind, p.resource_id),
                        p.platform.to_string(),
                        p.version.clone(),
                        p.size.to_string(),
                        time(p.created_at),
                    ]
                })
                .collect();
            print(
                app.client.json,
                &packages,
                &["id", "resource", "platform", "version", "size", "uploaded"],
                rows,
            )
        }
        ReleaseCommand::Stats { release, app } => {
            let (client, slug) = app.connect().await?;
            let stats = client.release_stats(&slug, &app.app, &release).await?;
            let row = |label: String, r: &ReleaseStatsRow| {
                vec![
                    label,
                    r.checks.to_string(),
                    r.offered.to_string(),
                    r.downloaded.to_string(),
                    r.installed.to_string(),
                    r.failed.to_string(),
                ]
            };
            let mut rows: Vec<Vec<String>> = stats
                .rows
                .iter()
                .map(|r| {
                    row(
                        format!(
                            "{} from {}",
                            r.day,
                            if r.from_version.is_empty() {
                                "-"
                            } else {
                                &r.from_version
                            }
                        ),
                        r,
                    )
                })
                .collect();
            rows.push(row("total".into(), &stats.total));
            print(
                app.client.json,
                &stats,
                &[
                    "day / version",
                    "checks",
                    "offered",
                    "downloaded",
                    "installed",
                    "failed",
                ],
                rows,
            )
        }
    }
}

async fn action(app: AppArgs, release: &str, action: ReleaseAction) -> anyhow::Result<()> {
    let (client, slug) = app.connect().await?;
    let release = client
        .release_action(&slug, &app.app, release, action)
        .await?;
    show_release(app.client.json, &release)
}

/// Runs one `atoll lists` command.
pub async fn run_lists(command: ListsCommand) -> anyhow::Result<()> {
    match command {
        ListsCommand::Show { name: None, app } => {
            let (client, slug) = app.connect().await?;
            let lists = client.lists(&slug, &app.app).await?;
            let rows = lists
                .iter()
                .map(|l| {
                    vec![
                        l.name.clone(),
                        l.kind.to_string(),
                        l.count.to_string(),
                        time(l.updated_at),
                    ]
                })
                .collect();
            print(
                app.client.json,
                &lists,
                &["name", "kind", "ids", "updated"],
                rows,
            )
        }
        ListsCommand::Show {
            name: Some(name),
            app,
        } => {
            let (client, slug) = app.connect().await?;
            let list = client.list(&slug, &app.app, &name).await?;
            if app.client.json {
                println!("{}", serde_json::to_string_pretty(&list.ids)?);
            } else {
                for id in &list.ids {
                    println!("{id}");
                }
            }
            Ok(())
        }
        ListsCommand::Put {
            name,
            file,
            kind,
            app,
        } => {
            let (client, slug) = app.connect().await?;
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let request = PutList {
                kind: parsed(ListKind::parse, "kind", &kind, "device, user")?,
                ids: text
                    .lines()
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned)
                    .collect(),
            };
            let list = client.put_list(&slug, &app.app, &name, &request).await?;
            print(
                app.client.json,
                &list,
                &["name", "kind", "ids"],
                vec![vec![
                    list.name.clone(),
                    list.kind.to_string(),
                    list.count.to_string(),
                ]],
            )
        }
        ListsCommand::Delete { name, app } => {
            let (client, slug) = app.connect().await?;
            client.delete_list(&slug, &app.app, &name).await?;
            if !app.client.json {
                println!("Deleted list '{name}'.");
            }
            Ok(())
        }
    }
}
