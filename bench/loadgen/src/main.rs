//! `atoll-bench`: a load generator for Atoll's signed device API.
//!
//! Off-the-shelf tools (wrk, oha, hey) send the same bytes again and again, but a
//! device request carries an HMAC-SHA256 signature over a fresh timestamp and a
//! single-use nonce (`contracts/signing.json`), so every request must be signed on
//! its own. This tool does that with [`atoll_protocol::signing::sign`], the same
//! code the SDK uses, and rotates over N device ids so that
//! `POST /device/v1/register` upserts many devices rather than one row.
//!
//! It keeps C HTTP/1.1 keep-alive connections (hyper, no TLS) and runs in one of
//! two modes:
//!
//! - **closed loop** (default): every connection sends its next request as soon as
//!   the previous answer arrived, for D seconds. This measures maximum throughput.
//!   Latency here is service time under saturation, not a latency target.
//! - **open loop** (`--rate R`): request k is *due* at `start + k / R`, whatever
//!   happened before. The next free connection takes the next due request, and its
//!   latency is measured from the due time, not from when it was actually sent, so
//!   a stalled server is charged for the queue it causes (no coordinated
//!   omission). If all C connections are busy, due requests wait, and that wait is
//!   latency too. The time from the actual send is reported as "service" time.
//!
//! Both modes run a warm-up first (not recorded), then record D seconds: requests
//! per second, p50/p90/p99/max latency (HdrHistogram, microsecond resolution), the
//! status codes, and the count of non-2xx answers and transport errors. On Linux it
//! also reports how busy each CPU was during the recorded window (from
//! `/proc/stat`; hypervisor steal shown apart), so a reader can see whether the
//! server's core was saturated and whether the load generator's own core was the
//! bottleneck, and, given `--server-pid`, the server's own CPU time per request.
//!
//! With `--event-batch N` it posts `POST /device/v1/events` batches of N fresh
//! events (current time, new uuids, one session of the synthetic model in
//! `gen.rs`, about 12 KB for 50) instead, after registering every device id
//! first (the server refuses events of unknown devices), and also reports
//! events per second.
//!
//! Two more subcommands serve the analytics benchmark (`bench/analytics/`):
//! `atoll-bench events-gen` writes the deterministic synthetic dataset as NDJSON,
//! and `atoll-bench backfill` loads such a file through the admin backfill API.
//!
//! `atoll-bench push` (module `push`) drives the push benchmark
//! (`bench/push/`): devices with vendor tokens, the vendor ceiling, broadcasts
//! and send-API latency.
//!
//! `atoll-bench ws` (module `ws`) measures the device connection
//! `GET /device/v1/connect` side by side with nats-server's WebSocket listener:
//! idle density, fan-out and connect churn (`bench/sync/`).
//!
//! The last line of the output is machine readable (`RESULT key=value …`) for
//! `bench/device-api.sh`.
//!
//! By default it refuses targets that are not loopback addresses
//! (`--allow-remote` lifts that): it is meant for benchmarks on one machine.

mod commands;
mod gen;
mod push;
mod ws;

use anyhow::{bail, Context, Result};
use atoll_protocol::signing::{self, SignedParts};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;

/// A register body like the SDK sends (160 bytes).
const DEFAULT_BODY: &str = r#"{"platform":"android","os":"Android","os_version":"14","model":"Pixel 8","app_version":"3.2.1","channel":"play","locale":"en-GB","region":"GB","network":"wifi"}"#;

/// Highest latency the histograms track: 60 s, in microseconds.
const HISTOGRAM_MAX_US: u64 = 60_000_000;

/// Load generator for Atoll's signed device API (signs every request).
#[derive(Debug, Parser)]
#[command(name = "atoll-bench", version, about)]
struct Args {
    /// Base URL of the server, http only, e.g. http://127.0.0.1:7420.
    #[arg(long)]
    url: String,
    /// Request path, optionally with a query string.
    #[arg(long, default_value = "/device/v1/register")]
    path: String,
    /// HTTP method.
    #[arg(long, default_value = "POST")]
    method: String,
    /// The app key (x-atoll-app-key).
    #[arg(long, env = "ATOLL_BENCH_APP_KEY")]
    app_key: String,
    /// The app secret that signs requests (never sent).
    #[arg(long, env = "ATOLL_BENCH_APP_SECRET", hide_env_values = true)]
    app_secret: String,
    /// Send this file's bytes as the body (default: a typical register body).
    #[arg(long, conflicts_with = "body_size")]
    body_file: Option<PathBuf>,
    /// Send a JSON body of exactly this many bytes, `{"pad":"xxx…"}` (at least 10).
    /// Atoll's register answers it 400 after the signature was verified.
    #[arg(long)]
    body_size: Option<usize>,
    /// Distinct device ids to rotate over (bench-device-00000000 …).
    #[arg(long, default_value_t = 10_000)]
    devices: u64,
    /// Keep-alive connections.
    #[arg(long, short = 'c', default_value_t = 64)]
    connections: usize,
    /// Recorded seconds.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before recording starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Open loop: requests per second, each due at a fixed time. Without it: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Runtime threads (0: one per CPU this process may run on).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Count answers with another status than this one as unexpected (default: non-2xx).
    #[arg(long)]
    expect_status: Option<u16>,
    /// Time limit of one request, in seconds (a request over it is an error).
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Name printed with the results.
    #[arg(long, default_value = "run")]
    label: String,
    /// Allow targets that are not loopback addresses.
    #[arg(long)]
    allow_remote: bool,
    /// A server process (repeat for several, e.g. nginx's master and worker) whose
    /// CPU time during the recorded window is reported, per second and per request
    /// (Linux, from /proc/PID/stat). Unlike the per-CPU figures, this is not skewed
    /// by other work on the machine.
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// Post batches of this many fresh events to `--path` (default
    /// /device/v1/events) instead of the fixed body, after registering all
    /// `--devices` device ids.
    #[arg(long, conflicts_with_all = ["body_file", "body_size"])]
    event_batch: Option<usize>,
    /// An extra request header, `name: value` (repeat for more); not signed.
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Sign this path instead of `--path`'s (a gateway call is sent to `/gw/v1`
    /// and signed as `/gw/v1/<operation type>`).
    #[arg(long)]
    signed_path: Option<String>,
}

/// What every connection task needs.
#[derive(Debug)]
struct Plan {
    addr: SocketAddr,
    authority: HeaderValue,
    method: Method,
    /// Path and query as sent.
    target: String,
    /// Raw query, as signed.
    query: String,
    app_key: HeaderValue,
    app_key_text: String,
    app_secret: String,
    body: Bytes,
    devices: u64,
    rate: Option<f64>,
    timeout: Duration,
    start: Instant,
    record_from: Instant,
    record_until: Instant,
    next_device: AtomicU64,
    next_ticket: AtomicU64,
    event_batch: Option<usize>,
    /// Extra headers of every request.
    headers: Vec<(hyper::header::HeaderName, HeaderValue)>,
    /// The path the load's requests are signed with.
    signed_path: String,
}

/// What one connection task measured.
#[derive(Debug)]
struct Stats {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    reconnects: u64,
}

impl Stats {
    fn new() -> Result<Stats> {
        Ok(Stats {
            latency: Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3)?,
            service: Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3)?,
            statuses: BTreeMap::new(),
            errors: 0,
            reconnects: 0,
        })
    }

    fn merge(&mut self, other: Stats) -> Result<()> {
        self.latency.add(&other.latency)?;
        self.service.add(&other.service)?;
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.errors += other.errors;
        self.reconnects += other.reconnects;
        Ok(())
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, HISTOGRAM_MAX_US)
}

/// Builds the body to send.
fn body_of(args: &Args) -> Result<Bytes> {
    if let Some(path) = &args.body_file {
        return Ok(Bytes::from(
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        ));
    }
    if let Some(size) = args.body_size {
        const FRAME: usize = r#"{"pad":""}"#.len();
        if size < FRAME {
            bail!("--body-size must be at least {FRAME}");
        }
        return Ok(Bytes::from(format!(
            r#"{{"pad":"{}"}}"#,
            "x".repeat(size - FRAME)
        )));
    }
    Ok(Bytes::from_static(DEFAULT_BODY.as_bytes()))
}

/// Parses the target URL into an address and a `Host` value.
async fn resolve(url: &str, allow_remote: bool) -> Result<(SocketAddr, HeaderValue)> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("invalid --url '{url}'"))?;
    if uri.scheme_str() != Some("http") {
        bail!("--url must start with http:// (no TLS here)");
    }
    let host = uri.host().context("--url has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri.authority().context("--url has no host")?.as_str();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addr = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} resolves to no address"))?;
    if !addr.ip().is_loopback() && !allow_remote {
        bail!("{addr} is not a loopback address; pass --allow-remote to load it anyway");
    }
    Ok((addr, HeaderValue::from_str(authority)?))
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the server closes the connection or the sender is dropped.
        let _ = connection.await;
    });
    Ok(sender)
}

/// A signed request with a fresh timestamp and nonce, for the next device id.
fn signed_request(plan: &Plan) -> Result<Request<Full<Bytes>>> {
    let device_index = plan.next_device.fetch_add(1, Ordering::Relaxed) % plan.devices;
    let device_id = http_device_id(device_index);
    let body = match plan.event_batch {
        Some(count) => {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .context("the clock is before 1970")?
                .as_millis() as i64;
            let mut rng = gen::Rng::new(rand::random::<u64>());
            Bytes::from(gen::live_batch(&mut rng, device_index, now_ms, count))
        }
        None => plan.body.clone(),
    };
    let mut request = signed(
        plan,
        device_id,
        &plan.method,
        &plan.target,
        &plan.signed_path,
        &plan.query,
        body,
    )?;
    for (name, value) in &plan.headers {
        request.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(request)
}

/// Signs one request of `device_id` (fresh timestamp and nonce).
fn signed(
    plan: &Plan,
    device_id: String,
    method: &Method,
    target: &str,
    path: &str,
    query: &str,
    body: Bytes,
) -> Result<Request<Full<Bytes>>> {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs() as i64;
    let nonce = format!("{:032x}", rand::random::<u128>());
    let signature = signing::sign(
        &plan.app_secret,
        &SignedParts {
            app_key: &plan.app_key_text,
            device_id: &device_id,
            method: method.as_str(),
            path,
            query,
            timestamp,
            nonce: &nonce,
            body: &body,
        },
    );
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(target)
        .header(HOST, plan.authority.clone())
        .header(signing::HEADER_APP_KEY, plan.app_key.clone())
        .header(signing::HEADER_DEVICE_ID, device_id)
        .header(signing::HEADER_TIMESTAMP, timestamp)
        .header(signing::HEADER_NONCE, nonce)
        .header(signing::HEADER_SIGNATURE, signature);
    if !body.is_empty() {
        builder = builder.header(CONTENT_TYPE, "application/json");
    }
    Ok(builder.body(Full::new(body))?)
}

/// The device id of index `index` in the HTTP load (`bench-device-00000042`).
fn http_device_id(index: u64) -> String {
    format!("bench-device-{index:08}")
}

/// Registers device ids `0..plan.devices` (named by `device_id`) over
/// `connections` connections (for `--event-batch`: events of an unknown device
/// are refused; for `ws`: unknown devices cannot connect).
async fn register_devices(
    plan: Arc<Plan>,
    connections: usize,
    device_id: fn(u64) -> String,
) -> Result<()> {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..connections.min(plan.devices as usize).max(1))
        .map(|_| {
            let plan = plan.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut sender = connect(plan.addr).await?;
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= plan.devices {
                        return anyhow::Ok(());
                    }
                    let request = signed(
                        &plan,
                        device_id(index),
                        &Method::POST,
                        "/device/v1/register",
                        "/device/v1/register",
                        "",
                        Bytes::from_static(DEFAULT_BODY.as_bytes()),
                    )?;
                    let (status, answer) = exchange(&mut sender, request).await?;
                    if !(200..300).contains(&status) {
                        bail!(
                            "registering device {index} got {status}: {}",
                            String::from_utf8_lossy(&answer)
                        );
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    eprintln!(
        "registered {} devices in {:.1} s",
        plan.devices,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Sends one request and reads the whole answer; returns the status and the body.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<(u16, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Waits until `due`: a timer for the coarse part (tokio's timer ticks in
/// milliseconds), then yields to the runtime until the exact instant, so open-loop
/// requests leave on time instead of in millisecond clumps.
async fn pace(due: Instant) {
    const COARSE: Duration = Duration::from_millis(2);
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        if due - now > COARSE {
            tokio::time::sleep_until((due - COARSE).into()).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

/// One keep-alive connection's loop.
async fn connection_task(plan: Arc<Plan>) -> Result<Stats> {
    let mut stats = Stats::new()?;
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        let due = match plan.rate {
            None => {
                let now = Instant::now();
                if now >= plan.record_until {
                    break;
                }
                now
            }
            Some(rate) => {
                let ticket = plan.next_ticket.fetch_add(1, Ordering::Relaxed);
                let due = plan.start + Duration::from_secs_f64(ticket as f64 / rate);
                if due >= plan.record_until {
                    break;
                }
                pace(due).await;
                due
            }
        };
        let recorded = due >= plan.record_from;
        if sender.is_none() {
            match connect(plan.addr).await {
                Ok(connected) => sender = Some(connected),
                Err(_) => {
                    if recorded {
                        stats.errors += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(live) = sender.as_mut() else {
            continue;
        };
        let request = signed_request(&plan)?;
        let sent = Instant::now();
        let outcome = tokio::time::timeout(plan.timeout, exchange(live, request)).await;
        let done = Instant::now();
        match outcome {
            Ok(Ok((status, _))) => {
                if recorded {
                    stats.latency.record(micros(done - due))?;
                    stats.service.record(micros(done - sent))?;
                    *stats.statuses.entry(status).or_default() += 1;
                }
            }
            Ok(Err(_)) | Err(_) => {
                if recorded {
                    stats.errors += 1;
                }
                stats.reconnects += 1;
                sender = None;
            }
        }
    }
    Ok(stats)
}

/// Clock ticks of one CPU, from `/proc/stat`.
#[derive(Debug, Clone, Copy)]
struct CpuTicks {
    /// user, nice, system, irq and softirq.
    busy: u64,
    /// Time the hypervisor gave this virtual CPU's turn to someone else.
    steal: u64,
    /// Everything, idle and iowait included.
    total: u64,
}

/// Ticks per CPU, from `/proc/stat` (Linux only).
fn cpu_times() -> Option<Vec<CpuTicks>> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let mut cpus = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        if !rest.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        // user nice system idle iowait irq softirq steal (guest is inside user).
        let fields: Vec<u64> = rest
            .split_whitespace()
            .skip(1)
            .filter_map(|field| field.parse().ok())
            .collect();
        let at = |index: usize| fields.get(index).copied().unwrap_or(0);
        cpus.push(CpuTicks {
            busy: at(0) + at(1) + at(2) + at(5) + at(6),
            steal: at(7),
            total: (0..8).map(at).sum(),
        });
    }
    Some(cpus)
}

/// User plus system time of these processes (all their threads), in clock ticks.
fn process_ticks(pids: &[u32]) -> Option<u64> {
    let mut ticks = 0;
    for pid in pids {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command (which may hold spaces) start with the state;
        // utime and stime are the 14th and 15th fields of the line.
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        ticks += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    }
    Some(ticks)
}

/// Clock ticks per second in /proc (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// Busy and steal percentages per CPU between two readings.
fn busy_percent(before: &[CpuTicks], after: &[CpuTicks]) -> Vec<(f64, f64)> {
    before
        .iter()
        .zip(after)
        .map(|(before, after)| {
            let total = after.total.saturating_sub(before.total);
            let share = |ticks: u64| {
                if total == 0 {
                    0.0
                } else {
                    100.0 * ticks as f64 / total as f64
                }
            };
            (
                share(after.busy.saturating_sub(before.busy)),
                share(after.steal.saturating_sub(before.steal)),
            )
        })
        .collect()
}

fn format_us(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else if us >= 1000 {
        format!("{:.2} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

async fn run(args: Args) -> Result<()> {
    if args.connections == 0 || args.devices == 0 {
        bail!("--connections and --devices must be at least 1");
    }
    if !(args.duration > 0.0 && args.warmup >= 0.0 && args.timeout > 0.0) {
        bail!("--duration and --timeout must be positive, --warmup not negative");
    }
    if args.rate.is_some_and(|rate| rate.is_nan() || rate <= 0.0) {
        bail!("--rate must be positive");
    }
    let (addr, authority) = resolve(&args.url, args.allow_remote).await?;
    let method: Method = args.method.to_ascii_uppercase().parse()?;
    let target = match args.event_batch {
        Some(count) => {
            if count == 0 || count > 500 {
                bail!("--event-batch must be 1-500");
            }
            if args.path == "/device/v1/register" {
                "/device/v1/events".to_owned()
            } else {
                args.path.clone()
            }
        }
        None => args.path.clone(),
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), query.to_owned()),
        None => (target.clone(), String::new()),
    };
    if !path.starts_with('/') {
        bail!("--path must start with /");
    }
    let expected = |status: u16| match args.expect_status {
        Some(wanted) => status == wanted,
        None => (200..300).contains(&status),
    };

    let body = body_of(&args)?;
    let mut headers = Vec::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("--header '{header}': use 'name: value'"))?;
        headers.push((
            hyper::header::HeaderName::from_bytes(name.trim().as_bytes())?,
            HeaderValue::from_str(value.trim())?,
        ));
    }
    // Without --signed-path the path as sent (without the query) is signed.
    let signed_path = args.signed_path.clone().unwrap_or(path);
    let now = Instant::now();
    let plan = Plan {
        addr,
        authority,
        method,
        target: target.clone(),
        query,
        app_key: HeaderValue::from_str(&args.app_key)?,
        app_key_text: args.app_key.clone(),
        app_secret: args.app_secret.clone(),
        body,
        devices: args.devices,
        rate: args.rate,
        timeout: Duration::from_secs_f64(args.timeout),
        start: now,
        record_from: now,
        record_until: now,
        next_device: AtomicU64::new(0),
        next_ticket: AtomicU64::new(0),
        event_batch: args.event_batch,
        headers,
        signed_path,
    };
    let mut plan = if args.event_batch.is_some() {
        let shared = Arc::new(plan);
        register_devices(shared.clone(), args.connections, http_device_id).await?;
        Arc::try_unwrap(shared).map_err(|_| anyhow::anyhow!("registration still running"))?
    } else {
        plan
    };

    // One probe first, so a wrong key, secret or path fails loudly instead of
    // producing a fast table of errors.
    let mut probe = connect(addr).await?;
    let (status, answer) = exchange(&mut probe, signed_request(&plan)?).await?;
    drop(probe);
    if !expected(status) {
        bail!(
            "the probe request got {status}, not the expected status: {}",
            String::from_utf8_lossy(&answer)
        );
    }

    let start = Instant::now();
    plan.start = start;
    plan.record_from = start + Duration::from_secs_f64(args.warmup);
    plan.record_until = plan.record_from + Duration::from_secs_f64(args.duration);
    let plan = Arc::new(plan);
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| tokio::spawn(connection_task(plan.clone())))
        .collect();

    tokio::time::sleep_until(plan.record_from.into()).await;
    let cpu_before = cpu_times();
    let server_before = process_ticks(&args.server_pids);
    tokio::time::sleep_until(plan.record_until.into()).await;
    let cpu_after = cpu_times();
    let server_after = process_ticks(&args.server_pids);

    let mut total = Stats::new()?;
    for task in tasks {
        total.merge(task.await??)?;
    }

    let completed: u64 = total.statuses.values().sum();
    let non_2xx: u64 = total
        .statuses
        .iter()
        .filter(|(status, _)| !(200..300).contains(*status))
        .map(|(_, count)| count)
        .sum();
    let unexpected: u64 = total
        .statuses
        .iter()
        .filter(|(status, _)| !expected(**status))
        .map(|(_, count)| count)
        .sum();
    let rps = completed as f64 / args.duration;
    let cpus = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => busy_percent(&before, &after),
        _ => Vec::new(),
    };

    // The server's CPU time in the window: share of one core, and per answer.
    let server_cpu = match (server_before, server_after) {
        (Some(before), Some(after)) if !args.server_pids.is_empty() => {
            let seconds = after.saturating_sub(before) as f64 / TICKS_PER_SEC;
            Some((
                100.0 * seconds / args.duration,
                1e6 * seconds / completed.max(1) as f64,
            ))
        }
        _ => None,
    };

    let mode = match args.rate {
        Some(rate) => format!("open loop at {rate:.0} req/s (latency from the due time)"),
        None => "closed loop (max throughput)".to_owned(),
    };
    println!("== {} ==", args.label);
    let body_bytes = match args.event_batch {
        Some(count) => gen::live_batch(&mut gen::Rng::new(1), 0, 0, count).len(),
        None => plan.body.len(),
    };
    println!(
        "target      {} {}{} ({} device ids, {} B body{})",
        plan.method,
        args.url.trim_end_matches('/'),
        target,
        args.devices,
        body_bytes,
        args.event_batch.map_or(String::new(), |count| format!(
            ", {count} fresh events each"
        ))
    );
    println!(
        "mode        {mode}, {} connections, {:.1} s recorded after {:.1} s warm-up",
        args.connections, args.duration, args.warmup
    );
    println!("requests/s  {rps:.0}  ({completed} answered)");
    let per_request = args.event_batch.unwrap_or(1) as f64;
    if args.event_batch.is_some() {
        println!(
            "events/s    {:.0}  (2xx answers × {per_request:.0})",
            (completed - non_2xx) as f64 * per_request / args.duration
        );
    }
    let latency = &total.latency;
    let service = &total.service;
    println!(
        "latency     p50 {}  p90 {}  p99 {}  max {}",
        format_us(latency.value_at_quantile(0.50)),
        format_us(latency.value_at_quantile(0.90)),
        format_us(latency.value_at_quantile(0.99)),
        format_us(latency.max()),
    );
    if args.rate.is_some() {
        println!(
            "service     p50 {}  p90 {}  p99 {}  max {}  (from the actual send)",
            format_us(service.value_at_quantile(0.50)),
            format_us(service.value_at_quantile(0.90)),
            format_us(service.value_at_quantile(0.99)),
            format_us(service.max()),
        );
    }
    let statuses: Vec<String> = total
        .statuses
        .iter()
        .map(|(status, count)| format!("{status}×{count}"))
        .collect();
    println!(
        "statuses    {}  non-2xx {non_2xx}  unexpected {unexpected}  errors {}  reconnects {}",
        statuses.join(" "),
        total.errors,
        total.reconnects
    );
    if !cpus.is_empty() {
        let busy: Vec<String> = cpus
            .iter()
            .enumerate()
            .map(|(index, (busy, steal))| format!("cpu{index} {busy:.0}% (steal {steal:.0}%)"))
            .collect();
        println!("cpu busy    {}", busy.join("  "));
    }
    if let Some((percent, per_request)) = server_cpu {
        println!("server cpu  {percent:.0}% of one core, {per_request:.0} µs per answered request");
    }
    let mut cpu_fields: String = cpus
        .iter()
        .enumerate()
        .map(|(index, (busy, steal))| format!(" cpu{index}={busy:.1} steal{index}={steal:.1}"))
        .collect();
    if let Some((percent, per_request)) = server_cpu {
        cpu_fields.push_str(&format!(
            " server_cpu={percent:.1} server_us_per_req={per_request:.1}"
        ));
    }
    if let Some(count) = args.event_batch {
        cpu_fields.push_str(&format!(
            " events_per_req={count} events_per_s={:.1}",
            (completed - non_2xx) as f64 * count as f64 / args.duration
        ));
        if let Some((_, per_request)) = server_cpu {
            cpu_fields.push_str(&format!(
                " server_us_per_event={:.2}",
                per_request / count as f64
            ));
        }
    }
    println!(
        "RESULT label={} mode={} rate={} connections={} rps={rps:.1} p50_us={} p90_us={} p99_us={} max_us={} svc_p50_us={} svc_p99_us={} completed={completed} non2xx={non_2xx} unexpected={unexpected} errors={}{cpu_fields}",
        args.label,
        if args.rate.is_some() { "open" } else { "closed" },
        args.rate.map_or("0".to_owned(), |rate| format!("{rate:.0}")),
        args.connections,
        latency.value_at_quantile(0.50),
        latency.value_at_quantile(0.90),
        latency.value_at_quantile(0.99),
        latency.max(),
        service.value_at_quantile(0.50),
        service.value_at_quantile(0.99),
        total.errors,
    );
    if completed == 0 {
        bail!("no request was answered");
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let subcommand = argv.get(1).and_then(|arg| arg.to_str()).map(str::to_owned);
    match subcommand.as_deref() {
        Some("events-gen") => {
            argv.remove(1);
            let args = commands::GenArgs::parse_from(argv);
            return finish(commands::events_gen(args));
        }
        Some("ws") => {
            argv.remove(1);
            return finish(ws::main(ws::WsArgs::parse_from(argv)));
        }
        Some("push") => {
            argv.remove(1);
            let args = push::PushArgs::parse_from(argv);
            let outcome = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(push::main(args)));
            return finish(outcome);
        }
        Some("backfill") => {
            argv.remove(1);
            let args = commands::BackfillArgs::parse_from(argv);
            let outcome = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(commands::backfill(args)));
            return finish(outcome);
        }
        _ => {}
    }
    let args = Args::parse();
    let threads = if args.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.threads
    };
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let outcome = runtime
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(args)));
    finish(outcome)
}

fn finish(outcome: Result<()>) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("atoll-bench: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
