//! `atoll switch …`: remote config from the command line.
//!
//! `set` changes one key and publishes a new version; values are given as text
//! and read according to the switch's type (`true`, `12.5`, `{"a":1}`, or any
//! text for strings). Targeted values are `--rule 'WHEN => VALUE'`, where WHEN
//! is a target rule in text form, e.g. `--rule 'platform = ios and percent(10) => true'`.

use crate::cli::{client, workspace_of, AppArgs};
use crate::output::{print, time};
use anyhow::{bail, Context};
use atoll_protocol::device::Platform;
use atoll_protocol::switches::{
    PutSwitch, RollbackSwitches, Switch, SwitchDiff, SwitchType, TargetedValue,
};
use clap::Subcommand;

/// `atoll switch …`.
#[derive(Debug, Subcommand)]
pub enum SwitchCommand {
    /// Show the switches in force, or one key with its targeted values.
    Get {
        /// Only this key.
        key: Option<String>,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Create or change one key (publishes a new version).
    Set {
        /// The key.
        key: String,
        /// The default value, read per the type.
        value: String,
        /// bool, number, string or json (default: the key's current type, else
        /// guessed from the value).
        #[arg(long = "type")]
        value_type: Option<String>,
        /// A targeted value `WHEN => VALUE`, in order; replaces the key's rules
        /// (without any, the current rules stay).
        #[arg(long = "rule")]
        rules: Vec<String>,
        /// Remove every targeted value.
        #[arg(long, conflicts_with = "rules")]
        clear_rules: bool,
        /// Limit the key to these platforms (repeatable; default: unchanged, or all).
        #[arg(long = "platform")]
        platforms: Vec<String>,
        /// What the switch is for.
        #[arg(long)]
        description: Option<String>,
        /// Why (shown in the history).
        #[arg(long, short = 'm', default_value = "")]
        message: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Delete one key (publishes a new version).
    Delete {
        /// The key.
        key: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// The versions published, newest first, with what each changed.
    History {
        /// Entries to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Publish an earlier version's switches again.
    Rollback {
        /// The version to return to.
        version: u64,
        #[command(flatten)]
        app: AppArgs,
    },
}

fn summary(diff: &SwitchDiff) -> String {
    let keys = |label: &str, keys: Vec<&str>| {
        (!keys.is_empty()).then(|| format!("{label} {}", keys.join(", ")))
    };
    [
        keys("+", diff.added.iter().map(|s| s.key.as_str()).collect()),
        keys("-", diff.removed.iter().map(|s| s.key.as_str()).collect()),
        keys("~", diff.changed.iter().map(|c| c.key.as_str()).collect()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("; ")
}

fn platforms_text(switch: &Switch) -> String {
    if switch.platforms.is_empty() {
        "all".into()
    } else {
        switch
            .platforms
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Runs one `atoll switch` command.
pub async fn run(command: SwitchCommand) -> anyhow::Result<()> {
    match command {
        SwitchCommand::Get { key, app } => {
            let client = client(&app.client)?;
            let slug = workspace_of(&client, &app.workspace).await?;
            let set = client.switches(&slug, &app.app).await?;
            if let Some(key) = key {
                let Some(switch) = set.switches.iter().find(|s| s.key == key) else {
                    bail!("no switch '{key}' (version {})", set.version);
                };
                let mut rows = vec![
                    vec!["key".into(), switch.key.clone()],
                    vec!["type".into(), switch.value_type.to_string()],
                    vec!["platforms".into(), platforms_text(switch)],
                    vec!["description".into(), switch.description.clone()],
                ];
                for (index, rule) in switch.rules.iter().enumerate() {
                    rows.push(vec![
                        format!("rule {}", index + 1),
                        rule.write_line(switch.value_type),
                    ]);
                }
                rows.push(vec!["default".into(), switch.default.to_string()]);
                return print(app.client.json, switch, &["field", "value"], rows);
            }
            let rows = set
                .switches
                .iter()
                .map(|s| {
                    vec![
                        s.key.clone(),
                        s.value_type.to_string(),
                        s.default.to_string(),
                        s.rules.len().to_string(),
                        platforms_text(s),
                    ]
                })
                .collect();
            if !app.client.json {
                println!("Version {} ({}).", set.version, set.author);
            }
            print(
                app.client.json,
                &set,
                &["key", "type", "default", "rules", "platforms"],
                rows,
            )
        }
        SwitchCommand::Set {
            key,
            value,
            value_type,
            rules,
            clear_rules,
            platforms,
            description,
            message,
            app,
        } => {
            let client = client(&app.client)?;
            let slug = workspace_of(&client, &app.workspace).await?;
            let set = client.switches(&slug, &app.app).await?;
            let existing = set.switches.iter().find(|s| s.key == key);
            let value_type = match value_type {
                Some(text) => SwitchType::parse(&text).with_context(|| {
                    format!("--type is bool, number, string or json, not '{text}'")
                })?,
                None => existing.map_or_else(|| SwitchType::guess(&value), |s| s.value_type),
            };
            let rules = if clear_rules {
                Vec::new()
            } else if rules.is_empty() {
                existing.map(|s| s.rules.clone()).unwrap_or_default()
            } else {
                rules
                    .iter()
                    .map(|rule| TargetedValue::read_line(value_type, rule))
                    .collect::<Result<_, String>>()
                    .map_err(anyhow::Error::msg)?
            };
            let platforms = if platforms.is_empty() {
                existing.map(|s| s.platforms.clone()).unwrap_or_default()
            } else {
                platforms
                    .iter()
                    .map(|text| {
                        Platform::parse(text).with_context(|| format!("unknown platform '{text}'"))
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            let switch = Switch {
                key: key.clone(),
                value_type,
                description: description
                    .or_else(|| existing.map(|s| s.description.clone()))
                    .unwrap_or_default(),
                platforms,
                default: value_type.read_value(&value).map_err(anyhow::Error::msg)?,
                rules,
            };
            let published = client
                .put_switch(
                    &slug,
                    &app.app,
                    &PutSwitch {
                        expected_version: Some(set.version),
                        message,
                        switch,
                    },
                )
                .await?;
            if app.client.json {
                return print(true, &published, &[], vec![]);
            }
            println!("Published version {} with '{key}'.", published.version);
            Ok(())
        }
        SwitchCommand::Delete { key, app } => {
            let client = client(&app.client)?;
            let slug = workspace_of(&client, &app.workspace).await?;
            let published = client.delete_switch(&slug, &app.app, &key, None).await?;
            if app.client.json {
                return print(true, &published, &[], vec![]);
            }
            println!("Published version {} without '{key}'.", published.version);
            Ok(())
        }
        SwitchCommand::History { limit, app } => {
            let client = client(&app.client)?;
            let slug = workspace_of(&client, &app.workspace).await?;
            let history = client
                .switch_history(&slug, &app.app, None, Some(limit))
                .await?;
            let rows = history
                .iter()
                .map(|entry| {
                    vec![
                        entry.version.to_string(),
                        time(entry.published_at),
                        entry.author.clone(),
                        entry.message.clone(),
                        summary(&entry.diff),
                    ]
                })
                .collect();
            print(
                app.client.json,
                &history,
                &["version", "published", "author", "message", "changes"],
                rows,
            )
        }
        SwitchCommand::Rollback { version, app } => {
            let client = client(&app.client)?;
            let slug = workspace_of(&client, &app.workspace).await?;
            let published = client
                .rollback_switches(
                    &slug,
                    &app.app,
                    &RollbackSwitches {
                        version,
                        expected_version: None,
                    },
                )
                .await?;
            if app.client.json {
                return print(true, &published, &[], vec![]);
            }
            println!(
                "Published version {} with the switches of version {version}.",
                published.version
            );
            Ok(())
        }
    }
}
