//! `atoll gateway …`: the mobile gateway from the command line.
//!
//! A typical setup: `group create orders --base-url https://orders.internal/api`
//! (prints the secret the backend verifies forwarded requests with), `api create
//! com.shop.order.get --group orders --method GET --path '/orders/${id}'`, try it
//! with `test com.shop.order.get --body '{"id":"42"}'`, then `api enable`. Whole
//! groups move in and out as OpenAPI documents with `import` and `export`.

use crate::cli::{client, workspace_of, AppArgs, ClientArgs, WorkspaceArg};
use crate::output::{print, time};
use anyhow::{bail, Context};
use atoll_protocol::gateway::*;
use clap::Subcommand;
use std::collections::BTreeMap;

/// `atoll gateway …`.
#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// The app's groups (backends).
    Groups {
        #[command(flatten)]
        app: AppArgs,
    },
    /// Create, change or delete a group, or give it a new secret.
    #[command(subcommand)]
    Group(GroupCommand),
    /// The app's APIs with their calls and latency.
    Apis {
        #[command(flatten)]
        app: AppArgs,
    },
    /// Create, show, replace, enable, disable or delete an API.
    #[command(subcommand)]
    Api(ApiCommand),
    /// Import a group's APIs from an OpenAPI 3 document (JSON).
    Import {
        /// The group.
        group: String,
        /// The document ('-' for standard input).
        file: std::path::PathBuf,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Print a group's APIs as an OpenAPI 3 document.
    Export {
        /// The group.
        group: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Send a real call through the gateway (as a trusted caller) and show the answer.
    Test {
        /// The operation type.
        operation_type: String,
        /// The JSON body.
        #[arg(long, default_value = "{}")]
        body: String,
        /// A request header, `name: value` (repeat for more).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Call as this device id.
        #[arg(long)]
        device: Option<String>,
        #[command(flatten)]
        app: AppArgs,
    },
    /// The workspace's payload-encryption public keys; `--rotate` makes new ones.
    Keys {
        /// Rotate (all suites, or --suite).
        #[arg(long)]
        rotate: bool,
        /// x25519-aes256gcm, p256-aes256gcm or sm2-sm4gcm.
        #[arg(long)]
        suite: Option<String>,
        /// How long the previous key keeps working, in seconds (default 7 days).
        #[arg(long)]
        overlap_secs: Option<u32>,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `atoll gateway group …`.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group; prints its secret once.
    Create {
        /// Name: a letter or '_', then letters, digits, '_' or '-'.
        name: String,
        /// http(s) base URL; API paths are appended to it.
        #[arg(long)]
        base_url: String,
        /// Timeout of its APIs that set none, in ms (default 3000).
        #[arg(long)]
        timeout_ms: Option<u32>,
        /// Do not verify the backend's TLS certificate.
        #[arg(long)]
        insecure: bool,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Replace a group's settings from a JSON file (as `groups --json` prints one).
    Put {
        /// The group.
        name: String,
        /// The settings ('-' for standard input).
        file: std::path::PathBuf,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Delete a group no API uses.
    Delete {
        /// The group.
        name: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Give a group a new secret (printed once; the old one stops verifying).
    RotateSecret {
        /// The group.
        name: String,
        #[command(flatten)]
        app: AppArgs,
    },
}

/// `atoll gateway api …`.
#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Create an API (disabled unless --enable).
    Create {
        /// The operation type, e.g. com.shop.order.get.
        operation_type: String,
        /// Its group.
        #[arg(long)]
        group: String,
        /// GET, POST, PUT, PATCH, DELETE or HEAD.
        #[arg(long, default_value = "POST")]
        method: String,
        /// The path after the group's base URL; ${field} is filled from the request.
        #[arg(long)]
        path: String,
        /// Backend timeout in ms (else the group's, else 3000).
        #[arg(long)]
        timeout_ms: Option<u32>,
        /// Calls per second from all devices.
        #[arg(long)]
        qps: Option<u32>,
        /// Calls per second from one device.
        #[arg(long)]
        per_device_qps: Option<u32>,
        /// Accept calls without a device signature.
        #[arg(long)]
        no_signature: bool,
        /// Require an encrypted body.
        #[arg(long)]
        encrypted: bool,
        /// Enable it at once.
        #[arg(long)]
        enable: bool,
        /// What it does.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Print an API's full settings (JSON).
    Show {
        /// The operation type.
        operation_type: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Replace an API's settings from a JSON file (as `show` prints them).
    Put {
        /// The operation type.
        operation_type: String,
        /// The settings ('-' for standard input).
        file: std::path::PathBuf,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Let devices call an API.
    Enable {
        /// The operation type.
        operation_type: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Refuse calls to an API (`api_disabled`).
    Disable {
        /// The operation type.
        operation_type: String,
        #[command(flatten)]
        app: AppArgs,
    },
    /// Delete an API.
    Delete {
        /// The operation type.
        operation_type: String,
        #[command(flatten)]
        app: AppArgs,
    },
}

fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        return std::io::read_to_string(std::io::stdin()).context("reading standard input");
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    serde_json::from_str(&read_input(path)?)
        .with_context(|| format!("{} is not valid JSON for this", path.display()))
}

fn group_rows(groups: &[ApiGroup]) -> Vec<Vec<String>> {
    groups
        .iter()
        .map(|g| {
            vec![
                g.spec.name.clone(),
                g.spec.base_url.clone(),
                g.spec
                    .timeout_ms
                    .map_or("3000 (default)".into(), |t| t.to_string()),
                time(g.updated_at),
            ]
        })
        .collect()
}

const GROUP_HEADERS: &[&str] = &["name", "base url", "timeout ms", "changed"];

fn print_secret(json: bool, created: &ApiGroupSecret) -> anyhow::Result<()> {
    print(
        json,
        created,
        &["group", "secret (shown once)"],
        vec![vec![
            created.group.spec.name.clone(),
            created.secret.clone(),
        ]],
    )
}

fn print_api(json: bool, api: &Api) -> anyhow::Result<()> {
    print(
        json,
        api,
        &["operation type", "route", "enabled"],
        vec![vec![
            api.spec.operation_type.clone(),
            format!("{} {}{}", api.spec.method, api.spec.group, api.spec.path),
            api.spec.enabled.to_string(),
        ]],
    )
}

/// Runs one `atoll gateway` command.
pub async fn run(command: GatewayCommand) -> anyhow::Result<()> {
    match command {
        GatewayCommand::Groups { app } => {
            let (client, slug) = app.connect().await?;
            let groups = client.gateway_groups(&slug, &app.app).await?;
            print(app.client.json, &groups, GROUP_HEADERS, group_rows(&groups))
        }
        GatewayCommand::Group(command) => run_group(command).await,
        GatewayCommand::Apis { app } => {
            let (client, slug) = app.connect().await?;
            let apis = client.gateway_apis(&slug, &app.app).await?;
            let stats = client.gateway_stats(&slug, &app.app).await?;
            let rows = apis
                .iter()
                .map(|api| {
                    let stats = stats
                        .iter()
                        .find(|s| s.operation_type == api.spec.operation_type)
                        .cloned()
                        .unwrap_or_default();
                    vec![
                        api.spec.operation_type.clone(),
                        format!("{} {}{}", api.spec.method, api.spec.group, api.spec.path),
                        if api.spec.enabled { "yes" } else { "no" }.into(),
                        stats.requests.to_string(),
                        format!(
                            "{}/{}/{}",
                            stats.status_2xx, stats.status_4xx, stats.status_5xx
                        ),
                        format!(
                            "{:.1}/{:.1}/{:.1}",
                            stats.p50_ms, stats.p95_ms, stats.p99_ms
                        ),
                    ]
                })
                .collect();
            print(
                app.client.json,
                &apis,
                &[
                    "operation type",
                    "route",
                    "enabled",
                    "calls",
                    "2xx/4xx/5xx",
                    "p50/p95/p99 ms",
                ],
                rows,
            )
        }
        GatewayCommand::Api(command) => run_api(command).await,
        GatewayCommand::Import { group, file, app } => {
            let (client, slug) = app.connect().await?;
            let document: serde_json::Value = read_json(&file)?;
            let report = client
                .import_gateway_group_openapi(&slug, &app.app, &group, &document)
                .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        GatewayCommand::Export { group, app } => {
            let (client, slug) = app.connect().await?;
            let document = client
                .gateway_group_openapi(&slug, &app.app, &group)
                .await?;
            println!("{}", serde_json::to_string_pretty(&document)?);
            Ok(())
        }
        GatewayCommand::Test {
            operation_type,
            body,
            headers,
            device,
            app,
        } => {
            let (client, slug) = app.connect().await?;
            let body: serde_json::Value =
                serde_json::from_str(&body).context("--body is not JSON")?;
            let mut parsed = BTreeMap::new();
            for header in &headers {
                let Some((name, value)) = header.split_once(':') else {
                    bail!("--header '{header}': use 'name: value'");
                };
                parsed.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
            let result = client
                .gateway_test_call(
                    &slug,
                    &app.app,
                    &TestCall {
                        operation_type,
                        body,
                        headers: parsed,
                        device_id: device,
                    },
                )
                .await?;
            if app.client.json {
                println!("{}", serde_json::to_string_pretty(&result)?);
                return Ok(());
            }
            if let Some(line) = &result.backend_request {
                println!("> {line}");
                for (name, value) in &result.backend_headers {
                    println!("> {name}: {value}");
                }
            }
            println!(
                "< {} ({:.2} ms, backend {:.2} ms)",
                result.status, result.total_ms, result.backend_ms
            );
            for (name, value) in &result.headers {
                println!("< {name}: {value}");
            }
            println!();
            println!("{}", result.body);
            Ok(())
        }
        GatewayCommand::Keys {
            rotate,
            suite,
            overlap_secs,
            workspace,
            client: client_args,
        } => {
            let client = client(&client_args)?;
            let slug = workspace_of(&client, &workspace).await?;
            let keys = if rotate {
                client
                    .rotate_workspace_gateway_keys(
                        &slug,
                        &RotateGatewayKeys {
                            suite,
                            overlap_secs,
                        },
                    )
                    .await?
            } else {
                client.workspace_gateway_keys(&slug).await?
            };
            let rows = keys
                .iter()
                .map(|k| {
                    vec![
                        k.suite.clone(),
                        k.key_id.clone(),
                        k.public_key.clone(),
                        k.expires_at.map_or("current".into(), time),
                    ]
                })
                .collect();
            print(
                client_args.json,
                &keys,
                &["suite", "key id", "public key (base64)", "expires"],
                rows,
            )
        }
    }
}

async fn run_group(command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::Create {
            name,
            base_url,
            timeout_ms,
            insecure,
            app,
        } => {
            let (client, slug) = app.connect().await?;
            let spec = ApiGroupSpec {
                name,
                base_url,
                timeout_ms,
                headers_add: BTreeMap::new(),
                headers_remove: Vec::new(),
                tls_verify: !insecure,
                max_pending: None,
                breaker: BreakerSpec::default(),
            };
            let created = client.create_gateway_group(&slug, &app.app, &spec).await?;
            print_secret(app.client.json, &created)
        }
        GroupCommand::Put { name, file, app } => {
            let (client, slug) = app.connect().await?;
            let spec: ApiGroupSpec = read_json(&file)?;
            let group = client
                .update_gateway_group(&slug, &app.app, &name, &spec)
                .await?;
            print(
                app.client.json,
                &group,
                GROUP_HEADERS,
                group_rows(std::slice::from_ref(&group)),
            )
        }
        GroupCommand::Delete { name, app } => {
            let (client, slug) = app.connect().await?;
            client.delete_gateway_group(&slug, &app.app, &name).await?;
            println!("group {name} deleted");
            Ok(())
        }
        GroupCommand::RotateSecret { name, app } => {
            let (client, slug) = app.connect().await?;
            let created = client
                .rotate_gateway_group_secret(&slug, &app.app, &name)
                .await?;
            print_secret(app.client.json, &created)
        }
    }
}

async fn run_api(command: ApiCommand) -> anyhow::Result<()> {
    match command {
        ApiCommand::Create {
            operation_type,
            group,
            method,
            path,
            timeout_ms,
            qps,
            per_device_qps,
            no_signature,
            encrypted,
            enable,
            description,
            app,
        } => {
            let (client, slug) = app.connect().await?;
            let method = HttpMethod::parse(&method).with_context(|| {
                format!("--method is one of GET, POST, PUT, PATCH, DELETE, HEAD, not '{method}'")
            })?;
            let spec = ApiSpec {
                operation_type,
                group,
                method,
                path,
                timeout_ms,
                retries: 0,
                require_signature: !no_signature,
                require_encryption: encrypted,
                max_request_bytes: None,
                max_response_bytes: None,
                enabled: enable,
                description,
                request_schema: None,
                response_schema: None,
                rate_limit: RateLimitSpec {
                    qps,
                    per_device_qps,
                },
                cache: None,
                mock: None,
                authorizer: None,
            };
            let api = client.create_gateway_api(&slug, &app.app, &spec).await?;
            print_api(app.client.json, &api)
        }
        ApiCommand::Show {
            operation_type,
            app,
        } => {
            let (client, slug) = app.connect().await?;
            let api = client.gateway_api(&slug, &app.app, &operation_type).await?;
            println!("{}", serde_json::to_string_pretty(&api.spec)?);
            Ok(())
        }
        ApiCommand::Put {
            operation_type,
            file,
            app,
        } => {
            let (client, slug) = app.connect().await?;
            let spec: ApiSpec = read_json(&file)?;
            let api = client
                .update_gateway_api(&slug, &app.app, &operation_type, &spec)
                .await?;
            print_api(app.client.json, &api)
        }
        ApiCommand::Enable {
            operation_type,
            app,
        } => {
            let (client, slug) = app.connect().await?;
            let api = client
                .enable_gateway_api(&slug, &app.app, &operation_type)
                .await?;
            print_api(app.client.json, &api)
        }
        ApiCommand::Disable {
            operation_type,
            app,
        } => {
            let (client, slug) = app.connect().await?;
            let api = client
                .disable_gateway_api(&slug, &app.app, &operation_type)
                .await?;
            print_api(app.client.json, &api)
        }
        ApiCommand::Delete {
            operation_type,
            app,
        } => {
            let (client, slug) = app.connect().await?;
            client
                .delete_gateway_api(&slug, &app.app, &operation_type)
                .await?;
            println!("API {operation_type} deleted");
            Ok(())
        }
    }
}
