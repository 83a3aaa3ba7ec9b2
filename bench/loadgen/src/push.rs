//! `atoll-bench push`: the driver of the push benchmark (`bench/push/run.sh`).
//!
//! - `register`: N devices through the signed device API, each with a vendor
//!   token (`<prefix><index>`), so that a broadcast has N vendor deliveries.
//! - `ceiling`: the same N notifications sent straight to the fake vendor with
//!   Atoll's own vendor client (`atoll-push-vendors`) at concurrency K: what the
//!   vendor side allows without a queue, storage or fan-out in between.
//! - `broadcast`: one broadcast through the admin API; the time until the task
//!   counts every delivery as sent (or failed), and deliveries per second.
//! - `latency`: simple pushes to one device each at a fixed rate (open loop,
//!   latency from the due time), their p50/p99/max and errors.
//!
//! The last line is machine readable (`RESULT key=value …`).

use crate::{connect, exchange, resolve, signed, Plan};
use anyhow::{bail, Context, Result};
use atoll_protocol::device::PushChannel;
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `atoll-bench push …`.
#[derive(Debug, Parser)]
#[command(name = "atoll-bench push")]
pub struct PushArgs {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Register devices with a vendor token each.
    Register(RegisterArgs),
    /// Send straight to the fake vendor (the ceiling).
    Ceiling(CeilingArgs),
    /// One broadcast through Atoll, timed until every delivery is sent.
    Broadcast(BroadcastArgs),
    /// Send-API latency at a fixed rate.
    Latency(LatencyArgs),
}

#[derive(Debug, Args)]
struct Server {
    /// Atoll's URL.
    #[arg(long, default_value = "http://127.0.0.1:7420")]
    url: String,
    /// The app key.
    #[arg(long, env = "ATOLL_BENCH_APP_KEY")]
    app_key: String,
}

#[derive(Debug, Args)]
struct RegisterArgs {
    #[command(flatten)]
    server: Server,
    /// The app secret.
    #[arg(long, env = "ATOLL_BENCH_APP_SECRET", hide_env_values = true)]
    app_secret: String,
    /// Devices.
    #[arg(long, short = 'n')]
    devices: u64,
    /// Connections.
    #[arg(long, short = 'c', default_value_t = 32)]
    connections: usize,
    /// The vendor channel of the tokens.
    #[arg(long, default_value = "hms")]
    channel: String,
    /// Tokens are `<prefix><index>`.
    #[arg(long, default_value = "bench-token-")]
    token_prefix: String,
}

#[derive(Debug, Args)]
struct CeilingArgs {
    /// The vendor.
    #[arg(long, default_value = "hms")]
    channel: String,
    /// A file with the vendor credentials (JSON).
    #[arg(long)]
    credentials: std::path::PathBuf,
    /// Notifications.
    #[arg(long, short = 'n')]
    messages: u64,
    /// Requests in flight.
    #[arg(long, short = 'c', default_value_t = 64)]
    concurrency: usize,
    /// Tokens are `<prefix><index>`.
    #[arg(long, default_value = "bench-token-")]
    token_prefix: String,
}

#[derive(Debug, Args)]
struct Admin {
    #[command(flatten)]
    server: Server,
    /// A bearer token with `push:send` and `read`.
    #[arg(long, env = "ATOLL_BENCH_TOKEN", hide_env_values = true)]
    token: String,
    /// The workspace slug.
    #[arg(long, default_value = "demo")]
    workspace: String,
}

#[derive(Debug, Args)]
struct BroadcastArgs {
    #[command(flatten)]
    admin: Admin,
    /// Deliveries to wait for.
    #[arg(long, short = 'n')]
    expected: u64,
    /// Seconds to wait at most.
    #[arg(long, default_value_t = 600.0)]
    timeout: f64,
    /// Name printed with the result.
    #[arg(long, default_value = "broadcast")]
    label: String,
}

#[derive(Debug, Args)]
struct LatencyArgs {
    #[command(flatten)]
    admin: Admin,
    /// Registered devices to address (`bench-push-<index>`).
    #[arg(long, short = 'n')]
    devices: u64,
    /// Sends per second.
    #[arg(long, short = 'r')]
    rate: f64,
    /// Recorded seconds.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    /// Connections.
    #[arg(long, short = 'c', default_value_t = 32)]
    connections: usize,
}

/// The device id of index `index` in the push benchmark.
pub fn push_device_id(index: u64) -> String {
    format!("bench-push-{index:08}")
}

/// Entry point of `atoll-bench push`.
pub async fn main(args: PushArgs) -> Result<()> {
    match args.mode {
        Mode::Register(args) => register(args).await,
        Mode::Ceiling(args) => ceiling(args).await,
        Mode::Broadcast(args) => broadcast(args).await,
        Mode::Latency(args) => latency(args).await,
    }
}

async fn register(args: RegisterArgs) -> Result<()> {
    let channel = PushChannel::parse(&args.channel).context("unknown --channel")?;
    let (addr, authority) = resolve(&args.server.url, false).await?;
    let now = Instant::now();
    let plan = Arc::new(Plan {
        addr,
        authority,
        method: Method::POST,
        target: String::new(),
        query: String::new(),
        app_key: HeaderValue::from_str(&args.server.app_key)?,
        app_key_text: args.server.app_key.clone(),
        app_secret: args.app_secret.clone(),
        body: Bytes::new(),
        devices: args.devices,
        rate: None,
        timeout: Duration::from_secs(30),
        start: now,
        record_from: now,
        record_until: now,
        next_device: AtomicU64::new(0),
        next_ticket: AtomicU64::new(0),
        event_batch: None,
        headers: Vec::new(),
        signed_path: String::new(),
    });
    let next = Arc::new(AtomicU64::new(0));
    let prefix = Arc::new(args.token_prefix.clone());
    let tasks: Vec<_> = (0..args.connections.max(1))
        .map(|_| {
            let (plan, next, prefix) = (plan.clone(), next.clone(), prefix.clone());
            tokio::spawn(async move {
                let mut sender = connect(plan.addr).await?;
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= plan.devices {
                        return anyhow::Ok(());
                    }
                    let register = Bytes::from_static(br#"{"platform":"android","app_version":"1.0.0"}"#);
                    let token = Bytes::from(
                        serde_json::json!({"channel": channel.as_str(), "token": format!("{prefix}{index}")})
                            .to_string(),
                    );
                    for (path, body) in [("/device/v1/register", register), ("/device/v1/push-token", token)] {
                        let request = signed(&plan, push_device_id(index), &Method::POST, path, path, "", body)?;
                        let (status, answer) = exchange(&mut sender, request).await?;
                        if !(200..300).contains(&status) {
                            bail!("{path} of device {index}: {status} {}", String::from_utf8_lossy(&answer));
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let seconds = now.elapsed().as_secs_f64();
    println!(
        "RESULT label=register devices={} seconds={seconds:.2}",
        args.devices
    );
    Ok(())
}

async fn ceiling(args: CeilingArgs) -> Result<()> {
    let channel = PushChannel::parse(&args.channel).context("unknown --channel")?;
    let credentials: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&args.credentials).context("reading --credentials")?,
    )?;
    let provider = atoll_push_vendors::build_provider(
        channel,
        &credentials,
        &atoll_push_vendors::HttpOptions::default(),
    )?;
    let notification = |index: u64| atoll_push_vendors::Notification {
        msg_id: uuid_like(index),
        title: "Flash sale".into(),
        body: "now".into(),
        silent: false,
        style: atoll_push_vendors::Style::Default,
        click: None,
        extras: Default::default(),
        collapse_key: Some("flash".into()),
        expires_at_ms: now_ms() + 3_600_000,
        high_priority: true,
        vendor_options: Default::default(),
    };
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (provider, next, failed) = (provider.clone(), next.clone(), failed.clone());
            let prefix = args.token_prefix.clone();
            let total = args.messages;
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= total {
                        return;
                    }
                    let outcome = provider
                        .send(&notification(index), &format!("{prefix}{index}"), now_ms())
                        .await;
                    if !matches!(outcome, atoll_push_vendors::SendOutcome::Accepted { .. }) {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "RESULT label=ceiling channel={} messages={} concurrency={} seconds={seconds:.2} per_sec={:.0} failed={}",
        channel.as_str(),
        args.messages,
        args.concurrency,
        args.messages as f64 / seconds,
        failed.load(Ordering::Relaxed)
    );
    Ok(())
}

fn uuid_like(index: u64) -> String {
    format!("00000000-0000-7000-8000-{index:012x}")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An admin API connection.
struct AdminConn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    authority: HeaderValue,
    bearer: HeaderValue,
    base: String,
}

impl AdminConn {
    async fn new(admin: &Admin) -> Result<AdminConn> {
        let (addr, authority) = resolve(&admin.server.url, false).await?;
        Ok(AdminConn {
            sender: connect(addr).await?,
            authority,
            bearer: HeaderValue::from_str(&format!("Bearer {}", admin.token))?,
            base: format!(
                "/api/v1/workspaces/{}/apps/{}/push",
                admin.workspace, admin.server.app_key
            ),
        })
    }

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, serde_json::Value)> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(HOST, self.authority.clone())
            .header(AUTHORIZATION, self.bearer.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(bytes))?;
        let (status, answer) = exchange(&mut self.sender, request).await?;
        let value = serde_json::from_slice(&answer).unwrap_or(serde_json::Value::Null);
        Ok((status, value))
    }
}

async fn broadcast(args: BroadcastArgs) -> Result<()> {
    let mut admin = AdminConn::new(&args.admin).await?;
    let started = Instant::now();
    let (status, answer) = admin
        .call(
            Method::POST,
            "/broadcast",
            Some(serde_json::json!({
                "binding": "all", "title": "Flash sale", "body": "now",
                "collapse_key": "flash", "expires_in_secs": 3600,
                "task_name": args.label,
            })),
        )
        .await?;
    if status != 202 {
        bail!("the broadcast got {status}: {answer}");
    }
    let accepted_ms = started.elapsed().as_secs_f64() * 1000.0;
    let task = answer["task_id"].as_str().context("no task id")?.to_owned();
    let deadline = started + Duration::from_secs_f64(args.timeout);
    let (mut sent, mut failed, mut arrived);
    let mut progress = Instant::now();
    loop {
        let (status, detail) = admin
            .call(Method::GET, &format!("/tasks/{task}"), None)
            .await?;
        if status != 200 {
            bail!("the task got {status}: {detail}");
        }
        let counts = &detail["counts"];
        sent = counts["sent"].as_u64().unwrap_or(0);
        arrived = counts["arrived"].as_u64().unwrap_or(0);
        failed = counts["failed"].as_u64().unwrap_or(0);
        if progress.elapsed() >= Duration::from_secs(1) || sent + failed >= args.expected {
            progress = Instant::now();
            eprintln!(
                "  {:6.2} s: sent {sent}, failed {failed}, state {}",
                started.elapsed().as_secs_f64(),
                detail["state"].as_str().unwrap_or("?")
            );
        }
        if sent + failed >= args.expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "RESULT label={} expected={} sent={sent} arrived={arrived} failed={failed} seconds={seconds:.2} per_sec={:.0} accepted_ms={accepted_ms:.1}",
        args.label,
        args.expected,
        (sent + failed) as f64 / seconds
    );
    Ok(())
}

async fn latency(args: LatencyArgs) -> Result<()> {
    if args.rate <= 0.0 || args.devices == 0 {
        bail!("--rate and --devices must be positive");
    }
    let total = (args.rate * args.duration).ceil() as u64;
    let start = Instant::now() + Duration::from_millis(200);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let admin = Arc::new(args.admin);
    let mut tasks = Vec::new();
    for _ in 0..args.connections.max(1) {
        let (next, errors, admin) = (next.clone(), errors.clone(), admin.clone());
        let (rate, devices) = (args.rate, args.devices);
        tasks.push(tokio::spawn(async move {
            let mut conn = AdminConn::new(&admin).await?;
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            loop {
                let ticket = next.fetch_add(1, Ordering::Relaxed);
                if ticket >= total {
                    return anyhow::Ok(histogram);
                }
                let due = start + Duration::from_secs_f64(ticket as f64 / rate);
                crate::pace(due).await;
                let device = push_device_id(rand::random::<u64>() % devices);
                let (status, _) = conn
                    .call(
                        Method::POST,
                        "/simple",
                        Some(serde_json::json!({
                            "targets": [{"target": device}], "title": "Order shipped",
                            "body": "Your parcel is on its way", "expires_in_secs": 3600,
                        })),
                    )
                    .await?;
                if status != 202 {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                histogram.record(due.elapsed().as_micros().max(1) as u64)?;
            }
        }));
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for task in tasks {
        all.add(task.await??)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "RESULT label=send-latency rate={} sends={} per_sec={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} errors={}",
        args.rate,
        all.len(),
        all.len() as f64 / seconds,
        all.value_at_quantile(0.5) as f64 / 1000.0,
        all.value_at_quantile(0.99) as f64 / 1000.0,
        all.max() as f64 / 1000.0,
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}
