//! Command-line parsing and the commands.

use crate::log_line::WithRequestId;
use crate::output::{print, time};
use anyhow::{bail, Context};
use atoll_protocol::admin::{CreateApp, CreateToken};
use atoll_protocol::device::Platform;
use atoll_sdk::AdminClient;
use atoll_server::{demo, Config, Node};
use clap::{Args as ClapArgs, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;

/// Atoll: the cloud half of a mobile app, in one binary.
#[derive(Debug, Parser)]
#[command(name = "atoll", version, about)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Run the server with a demo admin, workspace and app (created on first run).
    Demo(DemoArgs),
    /// Log in to a server and remember the session for the other commands.
    Login(LoginArgs),
    /// Workspaces.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Apps.
    #[command(subcommand)]
    App(AppCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Switches (remote config): read, set, delete, history, rollback.
    #[command(subcommand)]
    Switch(crate::switch_cli::SwitchCommand),
    /// Releases: upload packages, create and steer rollouts, roll back.
    #[command(subcommand)]
    Release(crate::release_cli::ReleaseCommand),
    /// Uploaded id lists for target rules (`user in list:NAME`).
    #[command(subcommand)]
    Lists(crate::release_cli::ListsCommand),
    /// The mobile gateway: groups (backends), APIs, tests, OpenAPI, keys.
    #[command(subcommand)]
    Gateway(crate::gateway_cli::GatewayCommand),
    /// Real-time sync: biz types, orders, online devices, cursors.
    #[command(subcommand)]
    Sync(crate::sync_cli::SyncCommand),
    /// Push notifications: send, tasks and their funnels, templates, vendor channels.
    #[command(subcommand)]
    Push(crate::push_cli::PushCommand),
    /// Simulate devices using an app (sessions, pages, a purchase funnel) through the device API.
    Sim(SimArgs),
}

#[derive(Debug, ClapArgs)]
struct SimArgs {
    /// Server URL.
    #[arg(long, env = "ATOLL_SERVER", default_value = "http://127.0.0.1:7420")]
    server: String,
    /// The app key (from `atoll demo` or the console).
    #[arg(long)]
    app_key: String,
    /// The app secret.
    #[arg(long, env = "ATOLL_APP_SECRET", hide_env_values = true)]
    app_secret: String,
    /// Simulated devices.
    #[arg(long, default_value_t = 100)]
    devices: u64,
    /// Sessions-days each device plays.
    #[arg(long, default_value_t = 1)]
    sessions: u64,
    /// Devices active at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Events per request (1-500).
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Seed of the personas (the same seed gives the same devices).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the simulated devices keep their SDK state.
    #[arg(long, default_value = "./atoll-sim")]
    state_dir: PathBuf,
}

#[derive(Debug, ClapArgs)]
struct ServeArgs {
    /// Configuration file (default: ./atoll.toml when it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Folder for the database, blobs and local state.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:7420 (port 0 picks a free one).
    #[arg(long)]
    listen: Option<String>,
    /// postgres://… for PostgreSQL (default: SQLite in the data folder).
    #[arg(long)]
    database_url: Option<String>,
    /// The URL devices and browsers reach this server at.
    #[arg(long)]
    public_url: Option<String>,
    /// Log format: text or json.
    #[arg(long)]
    log_format: Option<String>,
    /// Log filter, e.g. info or debug.
    #[arg(long)]
    log_level: Option<String>,
}

#[derive(Debug, ClapArgs)]
struct DemoArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// Simulated devices whose last week of activity fills the demo app's
    /// analytics on the first run (0: none).
    #[arg(long, env = "ATOLL_DEMO_DEVICES", default_value_t = 2000)]
    demo_devices: u64,
}

/// Where a client command sends its requests.
#[derive(Debug, ClapArgs)]
pub(crate) struct ClientArgs {
    /// Server URL (default: from `atoll login`, or $ATOLL_SERVER).
    #[arg(long, env = "ATOLL_SERVER", global = true)]
    server: Option<String>,
    /// Bearer token (default: from `atoll login`, or $ATOLL_TOKEN).
    #[arg(long, env = "ATOLL_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, ClapArgs)]
struct LoginArgs {
    /// Server URL.
    #[arg(long, env = "ATOLL_SERVER", default_value = "http://127.0.0.1:7420")]
    server: String,
    /// Email of the user (prompted when missing).
    #[arg(long)]
    email: Option<String>,
    /// Password ($ATOLL_PASSWORD; prompted when missing).
    #[arg(long, env = "ATOLL_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Store an API token instead of logging in with a password.
    #[arg(long, conflicts_with_all = ["email", "password"])]
    token: Option<String>,
}

#[derive(Debug, ClapArgs)]
pub(crate) struct WorkspaceArg {
    /// Workspace slug (default: the only or first workspace you can see, or $ATOLL_WORKSPACE).
    #[arg(long, short = 'w', env = "ATOLL_WORKSPACE")]
    workspace: Option<String>,
}

/// Which app a command works on.
#[derive(Debug, ClapArgs)]
pub(crate) struct AppArgs {
    /// App key.
    #[arg(long)]
    pub(crate) app: String,
    #[command(flatten)]
    pub(crate) workspace: WorkspaceArg,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

impl AppArgs {
    /// The admin client and the workspace slug.
    pub(crate) async fn connect(&self) -> anyhow::Result<(AdminClient, String)> {
        let client = client(&self.client)?;
        let slug = workspace_of(&client, &self.workspace).await?;
        Ok((client, slug))
    }
}

#[derive(Debug, Subcommand)]
enum WorkspaceCommand {
    /// List workspaces you can see.
    List(ClientArgs),
    /// Create a workspace (you become its owner).
    Create {
        /// URL name: a-z, 0-9 and '-'.
        slug: String,
        /// Display name (default: the slug).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// List apps of a workspace.
    List {
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create an app and print its SDK config (the secret is shown once).
    Create {
        /// Display name.
        name: String,
        /// Platforms (repeat): android, ios, harmony, web, miniprogram.
        #[arg(long = "platform", required = true)]
        platforms: Vec<String>,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Issue a new app secret.
    RotateSecret {
        /// App key.
        app: String,
        /// Seconds the old secret keeps working.
        #[arg(long)]
        grace_seconds: Option<u64>,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an API token (the secret is shown once).
    Create {
        /// What the token is for.
        name: String,
        /// Scopes (repeat): admin, read, devices:write, push:send, sync:write.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Lifetime in days.
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List live API tokens.
    List {
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke an API token.
    Revoke {
        /// Token id.
        id: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Show a device, its bound user and push tokens.
    Show {
        /// Device id.
        device: String,
        /// App key.
        #[arg(long)]
        app: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// What `atoll login` remembers.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Credentials {
    server: String,
    token: String,
}

fn credentials_path() -> PathBuf {
    if let Ok(path) = std::env::var("ATOLL_CLI_CONFIG") {
        return PathBuf::from(path);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("atoll").join("credentials.toml")
}

fn save_credentials(credentials: &Credentials) -> anyhow::Result<PathBuf> {
    let path = credentials_path();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    options
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?
        .write_all(toml::to_string(credentials)?.as_bytes())?;
    Ok(path)
}

pub(crate) fn client(args: &ClientArgs) -> anyhow::Result<AdminClient> {
    let saved: Credentials = std::fs::read_to_string(credentials_path())
        .ok()
        .and_then(|text| toml::from_str(&text).ok())
        .unwrap_or_default();
    let server = args
        .server
        .clone()
        .or_else(|| (!saved.server.is_empty()).then(|| saved.server.clone()))
        .unwrap_or_else(|| "http://127.0.0.1:7420".to_owned());
    let token = args
        .token
        .clone()
        .or_else(|| (!saved.token.is_empty()).then_some(saved.token));
    if token.is_none() {
        bail!("not logged in: run `atoll login` or pass --token");
    }
    Ok(AdminClient::new(&server, token)?)
}

pub(crate) async fn workspace_of(
    client: &AdminClient,
    arg: &WorkspaceArg,
) -> anyhow::Result<String> {
    if let Some(workspace) = &arg.workspace {
        return Ok(workspace.clone());
    }
    let workspaces = client.list_workspaces().await?;
    match workspaces.as_slice() {
        [only] => Ok(only.slug.clone()),
        [] => bail!("you can see no workspace; create one with `atoll workspace create`"),
        many => bail!(
            "several workspaces ({}); choose one with --workspace",
            many.iter()
                .map(|w| w.slug.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn serve_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut flags = toml::Table::new();
    let mut set = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            flags.insert(key.to_owned(), toml::Value::String(value));
        }
    };
    set("listen", args.listen.clone());
    set(
        "data_dir",
        args.data_dir
            .as_ref()
            .map(|path| path.display().to_string()),
    );
    set("database_url", args.database_url.clone());
    set("public_url", args.public_url.clone());
    set("log_format", args.log_format.clone());
    set("log_level", args.log_level.clone());
    let default_file = PathBuf::from("atoll.toml");
    let file = args
        .config
        .clone()
        .or_else(|| default_file.exists().then_some(default_file));
    let env: HashMap<String, String> = std::env::vars()
        .filter(|(key, _)| key.starts_with("ATOLL_"))
        .collect();
    Ok(Config::load(file.as_deref(), &env, flags)?)
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("invalid log_level '{}'", config.log_level))?;
    // Colour codes only for a terminal: in a log file they are noise (and cost).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let format = tracing_subscriber::fmt::format();
    match config.log_format.as_str() {
        "json" => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(WithRequestId::new(
                format.json().flatten_event(true).with_current_span(true),
                true,
            ))
            .init(),
        "text" => builder
            .event_format(WithRequestId::new(format, false))
            .init(),
        other => bail!("log_format must be text or json, not '{other}'"),
    }
    Ok(())
}

async fn serve(args: ServeArgs, demo_devices: Option<u64>) -> anyhow::Result<()> {
    let config = serve_config(&args)?;
    init_logging(&config)?;
    let node = Node::start(config).await?;
    let address = node.local_addr()?;
    if let Some(devices) = demo_devices {
        let info = demo::seed(node.platform(), node.data_dir()).await?;
        let started = std::time::Instant::now();
        let seeded = demo::seed_events(node.platform(), node.analytics(), &info, devices).await?;
        // Demo data (events, starter switches) only when asked for; tests start empty.
        if devices > 0 {
            demo::seed_switches(node.platform(), node.switches(), &info).await?;
            demo::seed_delivery(node.platform(), node.lists(), node.delivery(), &info).await?;
            demo::seed_gateway(node.platform(), node.gateway(), &info).await?;
            demo::seed_sync(node.platform(), node.sync(), &info).await?;
            demo::seed_push(node.platform(), node.push(), &info).await?;
        }
        if seeded > 0 {
            tracing::info!(
                events = seeded,
                devices,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "seeded a week of demo analytics"
            );
        }
        let url = node.public_url();
        println!();
        println!("  Atoll demo is running.");
        println!();
        println!("  Console   {url}/");
        println!("  Login     {}", info.email);
        match &info.password {
            Some(password) => println!("  Password  {password}"),
            None => println!("  Password  (set on the first run of this data folder)"),
        }
        println!();
        println!(
            "  App '{}' in workspace '{}' — SDK config:",
            info.app.name, info.workspace
        );
        println!("    server_url = \"{}\"", info.sdk_config.server_url);
        println!("    app_key    = \"{}\"", info.sdk_config.app_key);
        if let Some(secret) = &info.sdk_config.app_secret {
            println!("    app_secret = \"{secret}\"");
        }
        println!();
        println!(
            "  CLI       atoll login --server {url} --email {}",
            info.email
        );
        println!(
            "  Stop with Ctrl-C. Data is kept in {}.",
            node.data_dir().display()
        );
        println!();
    }
    // A line tests and scripts can wait for.
    println!("listening on http://{address}");
    tracing::info!(%address, "listening");
    node.serve(atoll_server::shutdown_signal()).await
}

/// Runs one command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Serve(serve_args) => serve(serve_args, None).await,
        Command::Sim(sim) => {
            crate::sim::run(crate::sim::SimOptions {
                server: sim.server,
                app_key: sim.app_key,
                app_secret: sim.app_secret,
                devices: sim.devices,
                sessions: sim.sessions,
                concurrency: sim.concurrency,
                seed: sim.seed,
                state_dir: sim.state_dir,
                batch: sim.batch,
            })
            .await
        }
        Command::Switch(command) => crate::switch_cli::run(command).await,
        Command::Release(command) => crate::release_cli::run(command).await,
        Command::Lists(command) => crate::release_cli::run_lists(command).await,
        Command::Gateway(command) => crate::gateway_cli::run(command).await,
        Command::Sync(command) => crate::sync_cli::run(command).await,
        Command::Push(command) => crate::push_cli::run(command).await,
        Command::Demo(demo_args) => serve(demo_args.serve, Some(demo_args.demo_devices)).await,
        Command::Login(login) => {
            let token = match login.token {
                Some(token) => {
                    AdminClient::new(&login.server, Some(token.clone()))?
                        .me()
                        .await?;
                    token
                }
                None => {
                    let email = match login.email {
                        Some(email) => email,
                        None => prompt("Email: ")?,
                    };
                    let password = match login.password {
                        Some(password) => password,
                        None => rpassword::prompt_password("Password: ")?,
                    };
                    let mut client = AdminClient::new(&login.server, None)?;
                    client.login(&email, &password).await?.token
                }
            };
            let path = save_credentials(&Credentials {
                server: login.server.clone(),
                token,
            })?;
            println!(
                "Logged in to {} (saved in {}).",
                login.server,
                path.display()
            );
            Ok(())
        }
        Command::Workspace(WorkspaceCommand::List(args)) => {
            let workspaces = client(&args)?.list_workspaces().await?;
            let rows = workspaces
                .iter()
                .map(|w| {
                    vec![
                        w.slug.clone(),
                        w.name.clone(),
                        w.role
                            .map(|role| role.to_string())
                            .unwrap_or_else(|| "token".into()),
                        time(w.created_at),
                    ]
                })
                .collect();
            print(
                args.json,
                &workspaces,
                &["slug", "name", "role", "created"],
                rows,
            )
        }
        Command::Workspace(WorkspaceCommand::Create {
            slug,
            name,
            client: args,
        }) => {
            let name = name.unwrap_or_else(|| slug.clone());
            let workspace = client(&args)?.create_workspace(&slug, &name).await?;
            let rows = vec![vec![workspace.slug.clone(), workspace.name.clone()]];
            print(args.json, &workspace, &["slug", "name"], rows)
        }
        Command::App(AppCommand::List {
            workspace,
            client: args,
        }) => {
            let client = client(&args)?;
            let slug = workspace_of(&client, &workspace).await?;
            let apps = client.list_apps(&slug).await?;
            let rows = apps
                .iter()
                .map(|app| {
                    vec![
                        app.app_key.clone(),
                        app.name.clone(),
                        app.platforms
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        time(app.created_at),
                    ]
                })
                .collect();
            print(
                args.json,
                &apps,
                &["app key", "name", "platforms", "created"],
                rows,
            )
        }
        Command::App(AppCommand::Create {
            name,
            platforms,
            workspace,
            client: args,
        }) => {
            let client = client(&args)?;
            let slug = workspace_of(&client, &workspace).await?;
            let platforms = platforms
                .iter()
                .map(|text| {
                    Platform::parse(text).with_context(|| format!("unknown platform '{text}'"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let created = client
                .create_app(&slug, &CreateApp { name, platforms })
                .await?;
            print_sdk_config(args.json, &created)
        }
        Command::App(AppCommand::RotateSecret {
            app,
            grace_seconds,
            workspace,
            client: args,
        }) => {
            let client = client(&args)?;
            let slug = workspace_of(&client, &workspace).await?;
            let rotated = client.rotate_secret(&slug, &app, grace_seconds).await?;
            print_sdk_config(args.json, &rotated)
        }
        Command::Token(TokenCommand::Create {
            name,
            scopes,
            expires_in_days,
            workspace,
            client: args,
        }) => {
            let client = client(&args)?;
            let slug = workspace_of(&client, &workspace).await?;
            let created = client
                .create_token(
                    &slug,
                    &CreateToken {
                        name,
                        scopes,
                        expires_in_days,
                    },
                )
                .await?;
            if args.json {
                return print(true, &created, &[], vec![]);
            }
            println!(
                "Token '{}' ({}) with scopes {}.",
                created.token.name,
                created.token.id,
                created.token.scopes.join(", ")
            );
            println!("Secret (shown once): {}", created.secret);
            Ok(())
        }
        Command::Token(TokenCommand::List {
            workspace,
            client: args,
        }) => {
            let client = client(&args)?;
            let slug = workspace_of(&client, &workspace).await?;
            let tokens = client.list_tokens(&slug).await?;
            let rows = tokens
                .iter()
                .map(|token| {
                    vec![
                        token.id.clone(),
                        token.name.clone(),
                        token.scopes.join(","),
                        format!("{}…", token.prefix),
                        token
                            .last_used_at
                            .map(time)
                            .unwrap_or_else(|| "never".into()),
                        token.expires_at.map(time).unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect();
            print(
                args.json,
                &tokens,
                &["id", "name", "scopes", "prefix", "last used", "expires"],
                rows,
            )
        }
        Command::Token(TokenCommand::Revoke {
            id,
            workspace,
            client: args,
        }) => {
            let client = client(&args)?;
            let slug = workspace_of(&client, &workspace).await?;
            client.revoke_token(&slug, &id).await?;
            if args.json {
                return print(true, &serde_json::json!({"revoked": id}), &[], vec![]);
            }
            println!("Revoked {id}.");
            Ok(())
        }
        Command::Device(DeviceCommand::Show {
            device,
            app,
            workspace,
            client: args,
        }) => {
            let client = client(&args)?;
            let slug = workspace_of(&client, &workspace).await?;
            let found = client.get_device(&slug, &app, &device).await?;
            let show = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
            let mut rows = vec![
                vec!["device".into(), found.device_id.clone()],
                vec![
                    "platform".into(),
                    found
                        .platform
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "-".into()),
                ],
                vec![
                    "os".into(),
                    format!("{} {}", show(&found.os), show(&found.os_version)),
                ],
                vec!["model".into(), show(&found.model)],
                vec!["app version".into(), show(&found.app_version)],
                vec!["channel".into(), show(&found.channel)],
                vec!["locale".into(), show(&found.locale)],
                vec!["region".into(), show(&found.region)],
                vec!["network".into(), show(&found.network)],
                vec!["user".into(), show(&found.user_id)],
                vec!["first seen".into(), time(found.first_seen_at)],
                vec!["last seen".into(), time(found.last_seen_at)],
            ];
            for token in &found.push_tokens {
                rows.push(vec![format!("push {}", token.channel), token.token.clone()]);
            }
            print(args.json, &found, &["field", "value"], rows)
        }
    }
}

fn print_sdk_config(
    json: bool,
    value: &atoll_protocol::admin::AppWithSecret,
) -> anyhow::Result<()> {
    if json {
        return print(true, value, &[], vec![]);
    }
    println!("App '{}' ({}).", value.app.name, value.app.app_key);
    println!("SDK config (the secret is shown once):");
    println!("  server_url = \"{}\"", value.sdk_config.server_url);
    println!("  app_key    = \"{}\"", value.sdk_config.app_key);
    if let Some(secret) = &value.sdk_config.app_secret {
        println!("  app_secret = \"{secret}\"");
    }
    if let Some(until) = value.previous_secret_valid_until {
        println!("The previous secret works until {} UTC.", time(until));
    }
    Ok(())
}

fn prompt(label: &str) -> anyhow::Result<String> {
    use std::io::Write;
    print!("{label}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}
