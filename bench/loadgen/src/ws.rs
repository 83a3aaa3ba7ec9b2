//! `atoll-bench ws`: many long-lived WebSocket connections, to Atoll's device
//! connection (`GET /device/v1/connect`, signed upgrade, JSON frames) or to
//! nats-server's WebSocket listener (NATS protocol text inside binary frames),
//! with the same client (`atoll_ws::client::WsClient`) on both sides.
//!
//! - `register`: registers the Atoll device ids `bench-dev-<i>` (devices must be
//!   known before they may connect).
//! - `idle`: opens N connections (at most `--in-flight` connects at a time,
//!   spread over `--source-ips` by binding each socket before it connects),
//!   each subscribed (Atoll: a `subscribe` frame for `--biz`, answered
//!   `subscribed`, with any retained history read and acknowledged; NATS:
//!   `CONNECT`, `SUB`, `PING`, answered `PONG`). Then it holds them and reports
//!   the server's VmRSS before and after (ΔRSS / N), the kernel's TCP memory
//!   (`/proc/net/sockstat`), the connect rate and the failures.
//! - `fanout`: the same connections, then `--messages` times one message to all
//!   of them (Atoll: a global sync order through the admin API; NATS: `PUB` from
//!   a plain TCP client), each waited for until every connection got it. The
//!   time to the last delivery and the per-connection latency are measured
//!   from the instant the message was sent (one clock: everything runs on one
//!   machine). Atoll clients acknowledge every datum as the protocol asks.
//! - `churn`: C loops of connect → subscribe → answer → close, for D seconds.
//!
//! Clients never ping: they only answer the server's pings (NATS pings every
//! two minutes by default; Atoll's idle timeout is raised by the script).
//!
//! The client side is kept small (one task, one socket and a 1 KiB read buffer
//! per connection) so that one process holds 100k connections.

use crate::{
    connect, exchange, micros, process_ticks, register_devices, resolve, Plan, DEFAULT_BODY,
    HISTOGRAM_MAX_US, TICKS_PER_SEC,
};
use anyhow::{anyhow, bail, Context, Result};
use atoll_protocol::signing::{self, SignedParts};
use atoll_protocol::sync::{BizSubscription, ClientFrame, ServerFrame, CONNECT_PATH};
use atoll_ws::client::{ClientError, WsClient};
use atoll_ws::Message;
use bytes::Bytes;
use clap::{Args, Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, Semaphore};

/// WebSocket load: idle density, fan-out and churn, Atoll or NATS.
#[derive(Debug, Parser)]
#[command(name = "atoll-bench ws")]
pub struct WsArgs {
    #[command(subcommand)]
    mode: Mode,
    /// Runtime threads (0: one per CPU this process may run on).
    #[arg(long, global = true, default_value_t = 0)]
    threads: usize,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Register the Atoll device ids bench-dev-<offset> … bench-dev-<offset+N-1>.
    Register(RegisterArgs),
    /// Open N subscribed connections, hold them, report the server's memory.
    Idle(IdleArgs),
    /// Open N subscribed connections, send K messages to all, time the delivery.
    Fanout(FanoutArgs),
    /// C loops of connect, subscribe, close for D seconds.
    Churn(ChurnArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// Atoll's GET /device/v1/connect (signed upgrade, JSON frames).
    Atoll,
    /// nats-server's websocket listener (NATS protocol in binary frames).
    Nats,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Atoll => "atoll",
            Target::Nats => "nats",
        }
    }
}

#[derive(Debug, Args)]
struct RegisterArgs {
    /// Atoll's base URL, e.g. http://127.0.0.1:7420.
    #[arg(long)]
    url: String,
    /// The app key.
    #[arg(long, env = "ATOLL_BENCH_APP_KEY")]
    app_key: String,
    /// The app secret (signs requests, never sent).
    #[arg(long, env = "ATOLL_BENCH_APP_SECRET", hide_env_values = true)]
    app_secret: String,
    /// Device ids to register.
    #[arg(long)]
    devices: u64,
    /// Keep-alive connections used to register.
    #[arg(long, short = 'c', default_value_t = 32)]
    connections: usize,
    /// Allow targets that are not loopback addresses.
    #[arg(long)]
    allow_remote: bool,
}

/// What every connection mode shares.
#[derive(Debug, Args)]
struct Common {
    /// Server kind.
    #[arg(long, value_enum)]
    target: Target,
    /// Atoll: its base URL (http://127.0.0.1:PORT). NATS: its websocket
    /// listener (ws://127.0.0.1:PORT).
    #[arg(long)]
    url: String,
    /// Atoll app key.
    #[arg(long, env = "ATOLL_BENCH_APP_KEY")]
    app_key: Option<String>,
    /// Atoll app secret (signs the upgrade requests).
    #[arg(long, env = "ATOLL_BENCH_APP_SECRET", hide_env_values = true)]
    app_secret: Option<String>,
    /// Atoll: the biz type every connection subscribes to.
    #[arg(long, default_value = "FEED")]
    biz: String,
    /// NATS: the subject every connection subscribes to.
    #[arg(long, default_value = "feed")]
    subject: String,
    /// Atoll: connection i is device bench-dev-<offset+i>.
    #[arg(long, default_value_t = 0)]
    device_offset: u64,
    /// Source addresses, e.g. `127.0.0.2-127.0.0.6` or `127.0.0.2,127.0.0.3`;
    /// connection i binds to address i mod count (empty: the kernel's choice).
    /// One address gives at most about 28k connections to one server port with
    /// the default ephemeral port range.
    #[arg(long, default_value = "")]
    source_ips: String,
    /// Connects (TCP + upgrade + subscribe) in flight at once.
    #[arg(long, default_value_t = 500)]
    in_flight: usize,
    /// Seconds one connect + subscribe may take.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// The server process whose VmRSS and CPU time are reported.
    #[arg(long = "server-pid")]
    server_pid: Option<u32>,
    /// Name printed with the results.
    #[arg(long, default_value = "ws")]
    label: String,
    /// Allow targets that are not loopback addresses.
    #[arg(long)]
    allow_remote: bool,
}

#[derive(Debug, Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to open.
    #[arg(long, short = 'c')]
    connections: usize,
    /// Seconds to hold them (idle) before the memory is read again.
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
}

#[derive(Debug, Args)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// Connections (subscribers).
    #[arg(long, short = 'c')]
    connections: usize,
    /// Messages, one at a time, each waited for on every connection.
    #[arg(long, default_value_t = 5)]
    messages: usize,
    /// Seconds between the last delivery of one message and the next send
    /// (lets acknowledgements settle).
    #[arg(long, default_value_t = 1.0)]
    gap: f64,
    /// Seconds between the last connection being ready and the first message.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Seconds to wait for one message to reach every connection.
    #[arg(long, default_value_t = 120.0)]
    round_timeout: f64,
    /// NATS: the client port the publisher uses (127.0.0.1:4222).
    #[arg(long)]
    nats_addr: Option<String>,
    /// Atoll: bearer token of an admin of the app (global sync orders).
    #[arg(long, env = "ATOLL_BENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Atoll: workspace slug.
    #[arg(long, default_value = "demo")]
    workspace: String,
    /// Atoll: each message is a push broadcast (binding all) instead of a
    /// global sync order; devices acknowledge with `push_ack`.
    #[arg(long)]
    push: bool,
}

#[derive(Debug, Args)]
struct ChurnArgs {
    #[command(flatten)]
    common: Common,
    /// Concurrent connect/subscribe/close loops.
    #[arg(long, short = 'c', default_value_t = 64)]
    connections: usize,
    /// Recorded seconds.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    /// Seconds of churn before recording starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
}

/// Entry point of `atoll-bench ws`.
pub fn main(args: WsArgs) -> Result<()> {
    let threads = if args.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.threads
    };
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    let outcome = runtime.block_on(async move {
        match args.mode {
            Mode::Register(args) => register(args).await,
            Mode::Idle(args) => idle(args).await,
            Mode::Fanout(args) => fanout(args).await,
            Mode::Churn(args) => churn(args).await,
        }
    });
    // 100k tasks and sockets: let the process exit drop them, not the runtime.
    std::mem::forget(runtime);
    outcome
}

/// The Atoll device id of connection index `index`.
fn device_id(index: u64) -> String {
    format!("bench-dev-{index}")
}

async fn register(args: RegisterArgs) -> Result<()> {
    if args.devices == 0 {
        bail!("--devices must be at least 1");
    }
    let (addr, authority) = resolve(&args.url, args.allow_remote).await?;
    let now = Instant::now();
    let plan = Plan {
        addr,
        authority,
        method: Method::POST,
        target: "/device/v1/register".to_owned(),
        query: String::new(),
        app_key: HeaderValue::from_str(&args.app_key)?,
        app_key_text: args.app_key.clone(),
        app_secret: args.app_secret.clone(),
        body: Bytes::from_static(DEFAULT_BODY.as_bytes()),
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
        signed_path: "/device/v1/register".to_owned(),
    };
    let started = Instant::now();
    register_devices(Arc::new(plan), args.connections, device_id).await?;
    println!(
        "RESULT label=register devices={} seconds={:.2}",
        args.devices,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// --- configuration shared by every connection ---------------------------------

/// Everything a connection needs, shared.
#[derive(Debug)]
struct Cfg {
    target: Target,
    addr: SocketAddr,
    /// `Host` header value.
    host: String,
    sources: Vec<IpAddr>,
    app_key: String,
    app_secret: String,
    device_offset: u64,
    /// Atoll: the subscribe frame; NATS: CONNECT + SUB + PING.
    hello: Bytes,
    timeout: Duration,
}

impl Cfg {
    async fn new(common: &Common) -> Result<Cfg> {
        let url = match common.url.strip_prefix("ws://") {
            Some(rest) => format!("http://{rest}"),
            None => common.url.clone(),
        };
        let (addr, authority) = resolve(&url, common.allow_remote).await?;
        let (app_key, app_secret) = match common.target {
            Target::Atoll => (
                common
                    .app_key
                    .clone()
                    .context("--app-key (or ATOLL_BENCH_APP_KEY) is needed for atoll")?,
                common
                    .app_secret
                    .clone()
                    .context("--app-secret (or ATOLL_BENCH_APP_SECRET) is needed for atoll")?,
            ),
            Target::Nats => (String::new(), String::new()),
        };
        let hello = match common.target {
            Target::Atoll => Bytes::from(serde_json::to_vec(&ClientFrame::Subscribe {
                subs: vec![BizSubscription {
                    biz: common.biz.clone(),
                    cursors: Vec::new(),
                }],
                user_id: None,
            })?),
            Target::Nats => {
                if common.subject.is_empty() || common.subject.contains(char::is_whitespace) {
                    bail!("--subject must be one word");
                }
                Bytes::from(format!(
                    "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB {} 1\r\nPING\r\n",
                    common.subject
                ))
            }
        };
        if common.in_flight == 0 {
            bail!("--in-flight must be at least 1");
        }
        if common.timeout.is_nan() || common.timeout <= 0.0 {
            bail!("--timeout must be positive");
        }
        Ok(Cfg {
            target: common.target,
            addr,
            host: authority.to_str()?.to_owned(),
            sources: parse_sources(&common.source_ips)?,
            app_key,
            app_secret,
            device_offset: common.device_offset,
            hello,
            timeout: Duration::from_secs_f64(common.timeout),
        })
    }

    fn source(&self, index: u64) -> Option<IpAddr> {
        if self.sources.is_empty() {
            None
        } else {
            Some(self.sources[(index % self.sources.len() as u64) as usize])
        }
    }
}

/// `127.0.0.2-127.0.0.6`, `127.0.0.2,127.0.0.9` or a mix.
fn parse_sources(text: &str) -> Result<Vec<IpAddr>> {
    let mut sources = Vec::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        match item.split_once('-') {
            Some((first, last)) => {
                let first: Ipv4Addr = first
                    .trim()
                    .parse()
                    .with_context(|| format!("bad address in '{item}'"))?;
                let last: Ipv4Addr = last
                    .trim()
                    .parse()
                    .with_context(|| format!("bad address in '{item}'"))?;
                let (first, last) = (u32::from(first), u32::from(last));
                if last < first || last - first > 65_535 {
                    bail!("bad address range '{item}'");
                }
                sources.extend((first..=last).map(|ip| IpAddr::V4(Ipv4Addr::from(ip))));
            }
            None => sources.push(
                item.parse()
                    .with_context(|| format!("bad address '{item}'"))?,
            ),
        }
    }
    Ok(sources)
}

/// The open-file limit of this process (soft), from /proc/self/limits.
fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn check_fd_limit(connections: usize) {
    if let Some(limit) = open_file_limit() {
        if (connections as u64) + 64 > limit {
            eprintln!(
                "warning: {connections} connections need more file descriptors than this process may open ({limit}); raise `ulimit -n`"
            );
        }
    }
}

// --- one connection -------------------------------------------------------------

/// A subscribed connection.
struct Session {
    ws: WsClient<TcpStream>,
    target: Target,
    /// NATS: bytes of a protocol line or message cut by a frame boundary.
    carry: Vec<u8>,
}

/// Opens a TCP connection from `source` (bound before connecting, with
/// SO_REUSEADDR so that ports in TIME_WAIT may be taken again).
async fn open_tcp(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(source) = source {
        socket.set_reuseaddr(true)?;
        socket
            .bind(SocketAddr::new(source, 0))
            .with_context(|| format!("cannot bind to {source}"))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The five signature headers of an upgrade request (empty body, fresh nonce).
fn upgrade_headers(cfg: &Cfg, device: &str) -> Result<Vec<(String, String)>> {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs() as i64;
    let nonce = format!("{:032x}", rand::random::<u128>());
    let signature = signing::sign(
        &cfg.app_secret,
        &SignedParts {
            app_key: &cfg.app_key,
            device_id: device,
            method: "GET",
            path: CONNECT_PATH,
            query: "",
            timestamp,
            nonce: &nonce,
            body: b"",
        },
    );
    Ok(vec![
        (signing::HEADER_APP_KEY.to_owned(), cfg.app_key.clone()),
        (signing::HEADER_DEVICE_ID.to_owned(), device.to_owned()),
        (signing::HEADER_TIMESTAMP.to_owned(), timestamp.to_string()),
        (signing::HEADER_NONCE.to_owned(), nonce),
        (signing::HEADER_SIGNATURE.to_owned(), signature),
    ])
}

/// A readable description of a client error (a refused upgrade with its body).
fn describe(error: &anyhow::Error) -> String {
    let text = match error.downcast_ref::<ClientError>() {
        Some(ClientError::Rejected { status, body, .. }) => {
            format!(
                "upgrade refused: {status} {}",
                String::from_utf8_lossy(body).trim()
            )
        }
        _ => format!("{error:#}"),
    };
    text.chars().take(300).collect()
}

/// Where a stream stands while the subscription catches up.
struct Behind {
    stream: String,
    head: u64,
    have: u64,
}

impl Session {
    /// Connects, upgrades, subscribes. With `catch_up`, an Atoll connection is
    /// ready only once the retained history of its streams was delivered (and
    /// acknowledged), so that the next datum is live.
    /// Connection `index` is device `bench-dev-<offset+index>`; the source
    /// address is number `source` of the list.
    async fn open(cfg: &Cfg, index: u64, source: u64, catch_up: bool) -> Result<Session> {
        let stream = open_tcp(cfg.addr, cfg.source(source)).await?;
        let (path, headers) = match cfg.target {
            Target::Atoll => (
                CONNECT_PATH,
                upgrade_headers(cfg, &device_id(cfg.device_offset + index))?,
            ),
            Target::Nats => ("/", Vec::new()),
        };
        let (ws, _) = WsClient::connect(stream, &cfg.host, path, &headers).await?;
        let mut session = Session {
            ws,
            target: cfg.target,
            carry: Vec::new(),
        };
        match cfg.target {
            Target::Atoll => {
                // The server reads it once it has queued its welcome.
                session.ws.send_text(text_of(&cfg.hello)?).await?;
                session.atoll_subscribed(catch_up).await?;
            }
            Target::Nats => {
                session.ws.send_binary(&cfg.hello).await?;
                session.nats_pong().await?;
            }
        }
        Ok(session)
    }

    async fn atoll_subscribed(&mut self, catch_up: bool) -> Result<()> {
        let mut subscribed = false;
        let mut behind: Vec<Behind> = Vec::new();
        loop {
            if subscribed && (!catch_up || behind.iter().all(|b| b.have >= b.head)) {
                return Ok(());
            }
            let message = self
                .ws
                .recv()
                .await?
                .ok_or_else(|| anyhow!("the server closed before subscribed"))?;
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => bail!("the server closed before subscribed: {frame:?}"),
                Message::Binary(_) => bail!("unexpected binary frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            let frame: ServerFrame = serde_json::from_slice(&text).with_context(|| {
                format!("not a server frame: {}", String::from_utf8_lossy(&text))
            })?;
            match frame {
                ServerFrame::Welcome { .. } => {}
                ServerFrame::Subscribed { streams, refused } => {
                    if let Some(refusal) = refused.first() {
                        bail!("subscribe refused: {} {}", refusal.biz, refusal.code);
                    }
                    behind = streams
                        .into_iter()
                        .map(|start| Behind {
                            stream: start.stream,
                            head: start.head,
                            have: start.cursor,
                        })
                        .collect();
                    subscribed = true;
                }
                ServerFrame::Data {
                    biz, stream, seq, ..
                } => {
                    if seq > 0 {
                        if let Some(entry) = behind.iter_mut().find(|b| b.stream == stream) {
                            entry.have = entry.have.max(seq);
                        }
                        self.ack(biz, stream, seq).await?;
                    }
                }
                ServerFrame::Resync { stream, to, .. } => {
                    if let Some(entry) = behind.iter_mut().find(|b| b.stream == stream) {
                        entry.have = entry.have.max(to);
                    }
                }
                ServerFrame::Reconnect { after_ms, reason } => {
                    bail!("told to reconnect after {after_ms} ms: {reason}")
                }
                ServerFrame::Error { code, detail } => bail!("error frame {code}: {detail}"),
                // Push frames are not part of the sync benchmark.
                ServerFrame::Push(_) | ServerFrame::PushRevoke { .. } => {}
            }
        }
    }

    async fn ack(&mut self, biz: String, stream: String, seq: u64) -> Result<()> {
        let ack = serde_json::to_string(&ClientFrame::Ack { biz, stream, seq })?;
        self.ws.send_text(&ack).await?;
        Ok(())
    }

    async fn nats_pong(&mut self) -> Result<()> {
        let mut events = Vec::new();
        loop {
            let message = self
                .ws
                .recv()
                .await?
                .ok_or_else(|| anyhow!("the server closed before PONG"))?;
            let data = match message {
                Message::Binary(data) | Message::Text(data) => data,
                Message::Close(frame) => bail!("the server closed before PONG: {frame:?}"),
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            events.clear();
            nats_parse(&mut self.carry, &data, &mut events)?;
            let mut pong = false;
            for event in events.drain(..) {
                match event {
                    NatsEvent::Pong => pong = true,
                    NatsEvent::Ping => self.ws.send_binary(b"PONG\r\n").await?,
                    NatsEvent::Err(text) => bail!("nats error: {text}"),
                    NatsEvent::Msg(_) | NatsEvent::Other => {}
                }
            }
            if pong {
                return Ok(());
            }
        }
    }

    /// Handles one incoming message: answers pings, acknowledges data, and
    /// calls `on` with each benchmark payload (run id, message number).
    /// `Ok(false)`: the connection ended.
    async fn pump(&mut self, on: &mut impl FnMut(u32, u64)) -> Result<bool> {
        let Some(message) = self.ws.recv().await? else {
            return Ok(false);
        };
        match (self.target, message) {
            (Target::Atoll, Message::Text(text)) => {
                match serde_json::from_slice::<ServerFrame>(&text)? {
                    ServerFrame::Data {
                        biz,
                        stream,
                        seq,
                        payload,
                        ..
                    } => {
                        if let Some((run, number)) = parse_payload(payload.as_bytes()) {
                            on(run, number);
                        }
                        if seq > 0 {
                            self.ack(biz, stream, seq).await?;
                        }
                    }
                    ServerFrame::Push(message) => {
                        if let Some((run, number)) = parse_payload(message.body.as_bytes()) {
                            on(run, number);
                        }
                        let ack = serde_json::to_string(&ClientFrame::PushAck {
                            msg_ids: vec![message.msg_id],
                        })?;
                        self.ws.send_text(&ack).await?;
                    }
                    ServerFrame::Reconnect { after_ms, reason } => {
                        bail!("told to reconnect after {after_ms} ms: {reason}")
                    }
                    ServerFrame::Error { code, detail } => bail!("error frame {code}: {detail}"),
                    _ => {}
                }
            }
            (Target::Nats, Message::Binary(data) | Message::Text(data)) => {
                let mut events = Vec::new();
                nats_parse(&mut self.carry, &data, &mut events)?;
                for event in events {
                    match event {
                        NatsEvent::Msg(Some((run, number))) => on(run, number),
                        NatsEvent::Ping => self.ws.send_binary(b"PONG\r\n").await?,
                        NatsEvent::Err(text) => bail!("nats error: {text}"),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        Ok(true)
    }

    /// Closes politely: sends a Close and waits (briefly) for the server's.
    async fn close(mut self) {
        if self
            .ws
            .close(atoll_ws::close_code::NORMAL, "")
            .await
            .is_err()
        {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(_)) = self.ws.recv().await {}
        })
        .await;
    }
}

fn text_of(bytes: &Bytes) -> Result<&str> {
    std::str::from_utf8(bytes).context("the subscribe frame is not UTF-8")
}

/// The benchmark payload: 16 hex digits, the run id then the message number.
fn payload_of(run: u32, number: u64) -> String {
    format!("{run:08x}{:08x}", number as u32)
}

fn parse_payload(payload: &[u8]) -> Option<(u32, u64)> {
    if payload.len() != 16 {
        return None;
    }
    let text = std::str::from_utf8(payload).ok()?;
    let run = u32::from_str_radix(&text[..8], 16).ok()?;
    let number = u64::from_str_radix(&text[8..], 16).ok()?;
    Some((run, number))
}

// --- the NATS client protocol (what a subscriber receives) ---------------------

#[derive(Debug, PartialEq, Eq)]
enum NatsEvent {
    Ping,
    Pong,
    /// A message, with its benchmark payload if it is one.
    Msg(Option<(u32, u64)>),
    Err(String),
    /// INFO, +OK.
    Other,
}

/// Parses what arrived, after whatever an earlier frame left cut off in
/// `carry`; leaves an incomplete tail there (and an empty, unallocated
/// `carry` otherwise).
fn nats_parse(carry: &mut Vec<u8>, data: &[u8], events: &mut Vec<NatsEvent>) -> Result<()> {
    let joined;
    let bytes: &[u8] = if carry.is_empty() {
        data
    } else {
        carry.extend_from_slice(data);
        joined = std::mem::take(carry);
        &joined
    };
    let mut at = 0;
    while let Some(end) = find_crlf(&bytes[at..]) {
        let line = &bytes[at..at + end];
        let after_line = at + end + 2;
        if line.starts_with(b"MSG ") || line.starts_with(b"msg ") {
            let size: usize = std::str::from_utf8(line)
                .ok()
                .and_then(|line| line.split_whitespace().last())
                .and_then(|size| size.parse().ok())
                .with_context(|| format!("bad MSG line: {}", String::from_utf8_lossy(line)))?;
            if bytes.len() < after_line + size + 2 {
                break;
            }
            events.push(NatsEvent::Msg(parse_payload(
                &bytes[after_line..after_line + size],
            )));
            at = after_line + size + 2;
            continue;
        }
        events.push(match line {
            b"PING" | b"ping" => NatsEvent::Ping,
            b"PONG" | b"pong" => NatsEvent::Pong,
            _ if line.starts_with(b"-ERR") => {
                NatsEvent::Err(String::from_utf8_lossy(line).into_owned())
            }
            _ => NatsEvent::Other,
        });
        at = after_line;
    }
    if at < bytes.len() {
        carry.extend_from_slice(&bytes[at..]);
    }
    Ok(())
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|pair| pair == b"\r\n")
}

// --- many connections ------------------------------------------------------------

/// State shared by the connection tasks and the coordinator.
struct Shared {
    cfg: Cfg,
    base: Instant,
    /// Connections subscribed (and caught up).
    ready: AtomicUsize,
    failed: AtomicUsize,
    /// Connections that ended after being ready.
    dropped: AtomicUsize,
    /// Ready + failed reached the goal.
    settled: Notify,
    goal: usize,
    /// Connect-to-ready time of each connection.
    setup: Mutex<Histogram<u64>>,
    /// Error texts and how often they occurred.
    errors: Mutex<BTreeMap<String, u64>>,
    /// This run's id in payloads (older data is ignored).
    run: u32,
    /// The message being timed (u64::MAX: none).
    round: AtomicU64,
    /// Connections that got it.
    got: AtomicUsize,
    /// The connections to wait for in this round.
    expected: AtomicUsize,
    /// Per connection: receive time of the current round, µs after `base` + 1 (0: not yet).
    received_at: Vec<AtomicU64>,
    round_done: Notify,
}

impl Shared {
    fn new(cfg: Cfg, goal: usize, track: bool) -> Result<Shared> {
        Ok(Shared {
            cfg,
            base: Instant::now(),
            ready: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            settled: Notify::new(),
            goal,
            setup: Mutex::new(Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3)?),
            errors: Mutex::new(BTreeMap::new()),
            run: rand::random(),
            round: AtomicU64::new(u64::MAX),
            got: AtomicUsize::new(0),
            expected: AtomicUsize::new(usize::MAX),
            received_at: (0..if track { goal } else { 0 })
                .map(|_| AtomicU64::new(0))
                .collect(),
            round_done: Notify::new(),
        })
    }

    fn error(&self, text: String) {
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(text).or_default() += 1;
        }
    }

    fn settle_one(&self) {
        if self.ready.load(Ordering::Acquire) + self.failed.load(Ordering::Acquire) >= self.goal {
            self.settled.notify_one();
        }
    }

    fn receive(&self, index: usize, run: u32, number: u64) {
        if run != self.run || number != self.round.load(Ordering::Acquire) {
            return;
        }
        let Some(slot) = self.received_at.get(index) else {
            return;
        };
        let at = self.base.elapsed().as_micros() as u64 + 1;
        if slot
            .compare_exchange(0, at, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
            && self.got.fetch_add(1, Ordering::AcqRel) + 1 >= self.expected.load(Ordering::Acquire)
        {
            self.round_done.notify_one();
        }
    }
}

/// One long-lived connection: open, report ready, then pump until it ends.
async fn connection_task(
    shared: Arc<Shared>,
    index: usize,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let opened = tokio::time::timeout(
        shared.cfg.timeout,
        Session::open(&shared.cfg, index as u64, index as u64, true),
    )
    .await;
    drop(permit);
    let mut session = match opened {
        Ok(Ok(session)) => session,
        Ok(Err(error)) => {
            shared.error(describe(&error));
            shared.failed.fetch_add(1, Ordering::AcqRel);
            shared.settle_one();
            return;
        }
        Err(_) => {
            shared.error("connect + subscribe timed out".to_owned());
            shared.failed.fetch_add(1, Ordering::AcqRel);
            shared.settle_one();
            return;
        }
    };
    if let Ok(mut setup) = shared.setup.lock() {
        let _ = setup.record(micros(started.elapsed()));
    }
    shared.ready.fetch_add(1, Ordering::AcqRel);
    shared.settle_one();
    let mut on = |run: u32, number: u64| shared.receive(index, run, number);
    loop {
        match session.pump(&mut on).await {
            Ok(true) => {}
            Ok(false) => {
                shared.error("closed by the server after subscribing".to_owned());
                break;
            }
            Err(error) => {
                shared.error(format!("after subscribing: {}", describe(&error)));
                break;
            }
        }
    }
    shared.dropped.fetch_add(1, Ordering::AcqRel);
}

/// What opening the connections measured.
struct Opened {
    seconds: f64,
    ready: usize,
    failed: usize,
}

/// Opens `shared.goal` connections, at most `in_flight` connects at a time.
async fn open_all(shared: &Arc<Shared>, in_flight: usize) -> Opened {
    open_range(shared, in_flight, 0..shared.goal).await
}

/// Opens connections `range` (indexes into the devices) and waits until each
/// of them is ready or failed; the counts returned are totals so far.
async fn open_range(
    shared: &Arc<Shared>,
    in_flight: usize,
    range: std::ops::Range<usize>,
) -> Opened {
    let started = Instant::now();
    let slots = Arc::new(Semaphore::new(in_flight));
    let progress_every = (shared.goal / 10).max(1000);
    let settled_at = range.end;
    for index in range {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        tokio::spawn(connection_task(shared.clone(), index, permit));
        if index > 0 && index % progress_every == 0 {
            eprintln!(
                "  {index} connects started, {} ready, {} failed, {:.1} s",
                shared.ready.load(Ordering::Relaxed),
                shared.failed.load(Ordering::Relaxed),
                started.elapsed().as_secs_f64()
            );
        }
    }
    while shared.ready.load(Ordering::Acquire) + shared.failed.load(Ordering::Acquire) < settled_at
    {
        let _ = tokio::time::timeout(Duration::from_millis(200), shared.settled.notified()).await;
    }
    Opened {
        seconds: started.elapsed().as_secs_f64(),
        ready: shared.ready.load(Ordering::Acquire),
        failed: shared.failed.load(Ordering::Acquire),
    }
}

// --- memory readings -------------------------------------------------------------

/// VmRSS of a process in KiB.
fn vm_rss_kb(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The TCP line of /proc/net/sockstat: sockets in use and memory pages.
#[derive(Debug, Clone, Copy, Default)]
struct Sockstat {
    inuse: u64,
    mem_pages: u64,
}

fn sockstat() -> Sockstat {
    let text = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let mut stat = Sockstat::default();
    if let Some(line) = text.lines().find(|line| line.starts_with("TCP:")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        for pair in fields[1..].chunks(2) {
            if let [name, value] = pair {
                let value = value.parse().unwrap_or(0);
                match *name {
                    "inuse" => stat.inuse = value,
                    "mem" => stat.mem_pages = value,
                    _ => {}
                }
            }
        }
    }
    stat
}

/// The kernel's slab memory (all of it, machine-wide) in KiB, from /proc/meminfo:
/// sockets, inodes, epoll entries and the like of both ends of every connection.
fn slab_kb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("Slab:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0)
}

fn page_size() -> u64 {
    // Every Linux this runs on (x86-64, arm64 with 4K pages) uses 4 KiB pages;
    // /proc/self/smaps says so without unsafe code.
    std::fs::read_to_string("/proc/self/smaps")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("KernelPageSize:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(4096, |kb| kb * 1024)
}

fn self_rss_kb() -> u64 {
    vm_rss_kb(std::process::id()).unwrap_or(0)
}

fn print_errors(shared: &Shared) -> String {
    let errors = shared.errors.lock().map(|e| e.clone()).unwrap_or_default();
    for (text, count) in errors.iter().take(10) {
        eprintln!("  error ×{count}: {text}");
    }
    errors.values().sum::<u64>().to_string()
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

// --- idle ----------------------------------------------------------------------------

async fn idle(args: IdleArgs) -> Result<()> {
    let common = &args.common;
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    check_fd_limit(args.connections);
    let cfg = Cfg::new(common).await?;
    let pid = common.server_pid;
    let page = page_size();
    let rss_before = pid.and_then(vm_rss_kb);
    let sock_before = sockstat();
    let slab_before = slab_kb();
    let client_before = self_rss_kb();
    let shared = Arc::new(Shared::new(cfg, args.connections, false)?);
    eprintln!(
        "{}: opening {} connections to {} ({}), {} in flight, {} source addresses",
        common.label,
        args.connections,
        common.url,
        common.target.name(),
        common.in_flight,
        shared.cfg.sources.len().max(1)
    );
    // Half first, then the rest: the memory the second half adds is the
    // marginal cost of a connection, without what fills up once (caches of
    // the server's store, pools, tables) and is bounded.
    let half = args.connections / 2;
    let first = open_range(&shared, common.in_flight, 0..half).await;
    let rss_half = pid.and_then(vm_rss_kb);
    let mut opened = open_range(&shared, common.in_flight, half..args.connections).await;
    opened.seconds += first.seconds;
    let rss_connected = pid.and_then(vm_rss_kb);
    let marginal = match (rss_half, rss_connected) {
        (Some(half_kb), Some(all_kb)) if opened.ready > first.ready => {
            Some((all_kb as f64 - half_kb as f64) * 1024.0 / (opened.ready - first.ready) as f64)
        }
        _ => None,
    };
    tokio::time::sleep(Duration::from_secs_f64(args.hold.max(0.0))).await;
    let rss_after = pid.and_then(vm_rss_kb);
    let sock_after = sockstat();
    let slab_after = slab_kb();
    let client_after = self_rss_kb();
    let dropped = shared.dropped.load(Ordering::Acquire);
    let setup = shared
        .setup
        .lock()
        .map(|h| h.clone())
        .map_err(|_| anyhow!("poisoned"))?;
    let errors = print_errors(&shared);

    let n = opened.ready.max(1) as f64;
    let per_conn = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(before), Some(after)) => Some((after as f64 - before as f64) * 1024.0 / n),
        _ => None,
    };
    let server_per_conn = per_conn(rss_before, rss_after);
    let kernel_per_conn =
        (sock_after.mem_pages as f64 - sock_before.mem_pages as f64) * page as f64 / n;
    let slab_per_conn = (slab_after as f64 - slab_before as f64) * 1024.0 / n;
    let rate = opened.ready as f64 / opened.seconds.max(1e-9);
    println!("== {} ==", common.label);
    println!(
        "target      {} {} ({}), {} connections, {} source addresses, {} in flight",
        common.target.name(),
        common.url,
        if common.target == Target::Atoll {
            format!("biz type {}", common.biz)
        } else {
            format!("subject {}", common.subject)
        },
        args.connections,
        shared.cfg.sources.len().max(1),
        common.in_flight
    );
    println!(
        "connected   {} ready, {} failed in {:.1} s: {rate:.0} conn/s; connect+subscribe p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
        opened.ready,
        opened.failed,
        opened.seconds,
        ms(setup.value_at_quantile(0.5)),
        ms(setup.value_at_quantile(0.99)),
        ms(setup.max()),
    );
    let fmt_kb = |kb: Option<u64>| {
        kb.map_or("-".to_owned(), |kb| {
            format!("{:.1} MiB", kb as f64 / 1024.0)
        })
    };
    println!(
        "server rss  before {}  connected {}  after {:.0} s hold {}  => {} per connection",
        fmt_kb(rss_before),
        fmt_kb(rss_connected),
        args.hold,
        fmt_kb(rss_after),
        server_per_conn.map_or("-".to_owned(), |b| format!("{b:.0} B")),
    );
    println!(
        "server rss  at half {}  => the second half added {} per connection",
        fmt_kb(rss_half),
        marginal.map_or("-".to_owned(), |b| format!("{b:.0} B")),
    );
    println!(
        "kernel tcp  sockets in use {} -> {}, buffer memory {} -> {} pages => {kernel_per_conn:.0} B per connection (both ends)",
        sock_before.inuse, sock_after.inuse, sock_before.mem_pages, sock_after.mem_pages,
    );
    println!(
        "kernel slab {:.1} MiB -> {:.1} MiB => {slab_per_conn:.0} B per connection (both ends, machine-wide)",
        slab_before as f64 / 1024.0,
        slab_after as f64 / 1024.0,
    );
    println!(
        "client rss  {:.1} MiB -> {:.1} MiB ({:.0} B per connection); dropped during hold {dropped}",
        client_before as f64 / 1024.0,
        client_after as f64 / 1024.0,
        (client_after as f64 - client_before as f64) * 1024.0 / n,
    );
    let opt = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
    println!(
        "RESULT label={} target={} mode=idle connections={} ready={} failed={} dropped={dropped} errors={errors} connect_s={:.2} conn_per_s={rate:.1} setup_p50_us={} setup_p99_us={} setup_max_us={} rss_before_kb={} rss_connected_kb={} rss_after_kb={} server_bytes_per_conn={} server_marginal_bytes_per_conn={} tcp_inuse_before={} tcp_inuse_after={} tcp_mem_pages_before={} tcp_mem_pages_after={} kernel_bytes_per_conn={kernel_per_conn:.0} slab_kb_before={slab_before} slab_kb_after={slab_after} slab_bytes_per_conn={slab_per_conn:.0} client_rss_kb={client_after}",
        common.label,
        common.target.name(),
        args.connections,
        opened.ready,
        opened.failed,
        opened.seconds,
        setup.value_at_quantile(0.5),
        setup.value_at_quantile(0.99),
        setup.max(),
        opt(rss_before),
        opt(rss_connected),
        opt(rss_after),
        server_per_conn.map_or("-".to_owned(), |b| format!("{b:.0}")),
        marginal.map_or("-".to_owned(), |b| format!("{b:.0}")),
        sock_before.inuse,
        sock_after.inuse,
        sock_before.mem_pages,
        sock_after.mem_pages,
    );
    if opened.ready == 0 {
        bail!("no connection was established");
    }
    Ok(())
}

// --- fan-out ---------------------------------------------------------------------------

/// Sends one message to every subscriber.
enum Publisher {
    Atoll {
        sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        authority: HeaderValue,
        path: String,
        token: HeaderValue,
        biz: String,
        push: bool,
    },
    Nats {
        stream: BufReader<TcpStream>,
        subject: String,
    },
}

impl Publisher {
    async fn new(args: &FanoutArgs, cfg: &Cfg) -> Result<Publisher> {
        let common = &args.common;
        match common.target {
            Target::Atoll => {
                let token = args
                    .token
                    .as_deref()
                    .context("--token (or ATOLL_BENCH_TOKEN) is needed for atoll fan-out")?;
                let (addr, authority) = resolve(&common.url, common.allow_remote).await?;
                Ok(Publisher::Atoll {
                    sender: connect(addr).await?,
                    authority,
                    path: if args.push {
                        format!(
                            "/api/v1/workspaces/{}/apps/{}/push/broadcast",
                            args.workspace, cfg.app_key
                        )
                    } else {
                        format!(
                            "/api/v1/workspaces/{}/apps/{}/sync/orders/global",
                            args.workspace, cfg.app_key
                        )
                    },
                    token: HeaderValue::from_str(&format!("Bearer {token}"))?,
                    biz: common.biz.clone(),
                    push: args.push,
                })
            }
            Target::Nats => {
                let addr = args
                    .nats_addr
                    .as_deref()
                    .context("--nats-addr (the NATS client port) is needed for nats fan-out")?;
                let stream = TcpStream::connect(addr)
                    .await
                    .with_context(|| format!("cannot connect to {addr}"))?;
                stream.set_nodelay(true)?;
                let mut stream = BufReader::new(stream);
                stream
                    .get_mut()
                    .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")
                    .await?;
                let mut line = String::new();
                loop {
                    line.clear();
                    if stream.read_line(&mut line).await? == 0 {
                        bail!("nats closed the publisher's connection");
                    }
                    if line.starts_with("PONG") {
                        break;
                    }
                    if line.starts_with("-ERR") {
                        bail!("nats refused the publisher: {}", line.trim());
                    }
                }
                Ok(Publisher::Nats {
                    stream,
                    subject: common.subject.clone(),
                })
            }
        }
    }

    /// Sends message `number`; returns the send instant (µs after `base`)
    /// and, for Atoll, how long the order took to be answered.
    async fn send(&mut self, base: Instant, run: u32, number: u64) -> Result<(u64, Option<u64>)> {
        let payload = payload_of(run, number);
        match self {
            Publisher::Atoll {
                sender,
                authority,
                path,
                token,
                biz,
                push,
            } => {
                let body = if *push {
                    serde_json::json!({
                        "binding": "all", "title": "bench", "body": payload,
                        "expires_in_secs": 600, "msg_key": format!("bench-{run:08x}-{number}"),
                    })
                } else {
                    serde_json::json!({
                        "biz_type": biz,
                        "third_msg_id": format!("bench-{run:08x}-{number}"),
                        "payload": payload,
                    })
                }
                .to_string();
                let request = Request::builder()
                    .method(Method::POST)
                    .uri(path.as_str())
                    .header(HOST, authority.clone())
                    .header(AUTHORIZATION, token.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))?;
                let sent = Instant::now();
                let at = (sent - base).as_micros() as u64;
                let (status, answer) = exchange(sender, request).await?;
                let answered = sent.elapsed().as_micros() as u64;
                if !(200..300).contains(&status) {
                    bail!(
                        "the global order got {status}: {}",
                        String::from_utf8_lossy(&answer)
                    );
                }
                Ok((at, Some(answered)))
            }
            Publisher::Nats { stream, subject } => {
                let frame = format!("PUB {subject} {}\r\n{payload}\r\n", payload.len());
                let at = base.elapsed().as_micros() as u64;
                let writer = stream.get_mut();
                writer.write_all(frame.as_bytes()).await?;
                writer.flush().await?;
                Ok((at, None))
            }
        }
    }
}

/// What one fan-out message measured.
struct Round {
    /// Send to last delivery (µs), if every connection got it.
    complete_us: Option<u64>,
    received: usize,
    expected: usize,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    answer_us: Option<u64>,
    server_cpu_ms: Option<f64>,
}

async fn fanout(args: FanoutArgs) -> Result<()> {
    let common = &args.common;
    if args.connections == 0 || args.messages == 0 {
        bail!("--connections and --messages must be at least 1");
    }
    check_fd_limit(args.connections + 1);
    let cfg = Cfg::new(common).await?;
    let mut publisher = Publisher::new(&args, &cfg).await?;
    let shared = Arc::new(Shared::new(cfg, args.connections, true)?);
    eprintln!(
        "{}: opening {} connections to {} ({}), {} in flight",
        common.label,
        args.connections,
        common.url,
        common.target.name(),
        common.in_flight
    );
    let opened = open_all(&shared, common.in_flight).await;
    if opened.ready == 0 {
        print_errors(&shared);
        bail!("no connection was established");
    }
    let rss_connected = common.server_pid.and_then(vm_rss_kb);
    tokio::time::sleep(Duration::from_secs_f64(args.settle.max(0.0))).await;
    let pids: Vec<u32> = common.server_pid.into_iter().collect();
    let mut rounds = Vec::new();
    for number in 0..args.messages as u64 {
        for slot in &shared.received_at {
            slot.store(0, Ordering::Release);
        }
        shared.got.store(0, Ordering::Release);
        let expected =
            shared.ready.load(Ordering::Acquire) - shared.dropped.load(Ordering::Acquire);
        shared.expected.store(expected, Ordering::Release);
        shared.round.store(number, Ordering::Release);
        let cpu_before = process_ticks(&pids);
        let (sent_at, answer_us) = publisher.send(shared.base, shared.run, number).await?;
        let deadline = Instant::now() + Duration::from_secs_f64(args.round_timeout);
        while shared.got.load(Ordering::Acquire) < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let _ = tokio::time::timeout(
                left.min(Duration::from_millis(500)),
                shared.round_done.notified(),
            )
            .await;
        }
        // Stop counting this message (late deliveries are not recorded).
        shared.round.store(u64::MAX, Ordering::Release);
        let mut latencies: Vec<u64> = shared
            .received_at
            .iter()
            .map(|slot| slot.load(Ordering::Acquire))
            .filter(|&at| at > 0)
            .map(|at| (at - 1).saturating_sub(sent_at))
            .collect();
        latencies.sort_unstable();
        let received = latencies.len();
        let at = |q: f64| {
            latencies
                .get(((received as f64 * q).ceil() as usize).saturating_sub(1))
                .copied()
                .unwrap_or(0)
        };
        let max_us = latencies.last().copied().unwrap_or(0);
        tokio::time::sleep(Duration::from_secs_f64(args.gap.max(0.0))).await;
        let cpu_after = process_ticks(&pids);
        let server_cpu_ms = match (cpu_before, cpu_after) {
            (Some(before), Some(after)) if !pids.is_empty() => {
                Some(after.saturating_sub(before) as f64 * 1000.0 / TICKS_PER_SEC)
            }
            _ => None,
        };
        let round = Round {
            complete_us: (received >= expected && expected > 0).then_some(max_us),
            received,
            expected,
            p50_us: at(0.5),
            p99_us: at(0.99),
            max_us,
            answer_us,
            server_cpu_ms,
        };
        eprintln!(
            "  message {number}: {}/{} in {} (p50 {:.1} ms, p99 {:.1} ms{}{})",
            round.received,
            round.expected,
            round
                .complete_us
                .map_or("incomplete".to_owned(), |us| format!("{:.1} ms", ms(us))),
            ms(round.p50_us),
            ms(round.p99_us),
            round.answer_us.map_or(String::new(), |us| format!(
                ", order answered in {:.1} ms",
                ms(us)
            )),
            round.server_cpu_ms.map_or(String::new(), |cpu| format!(
                ", server cpu {cpu:.0} ms incl. {:.1} s gap",
                args.gap
            )),
        );
        rounds.push(round);
    }
    let errors = print_errors(&shared);
    let complete: Vec<&Round> = rounds.iter().filter(|r| r.complete_us.is_some()).collect();
    let mut by_time = complete.clone();
    by_time.sort_by_key(|r| r.complete_us);
    let best = by_time.first();
    let median = by_time.get(by_time.len().saturating_sub(1) / 2);
    // Messages delivered per second: subscribers / time to the last delivery.
    let rate = |round: Option<&&Round>| {
        round.and_then(|r| {
            r.complete_us
                .map(|us| r.expected as f64 / (us.max(1) as f64 / 1e6))
        })
    };
    let best_rate = rate(best);
    let median_rate = rate(median);
    let mut cpus: Vec<f64> = rounds.iter().filter_map(|r| r.server_cpu_ms).collect();
    cpus.sort_by(f64::total_cmp);
    let cpu_median = cpus.get(cpus.len().saturating_sub(1) / 2).copied();
    let mut answers: Vec<u64> = rounds.iter().filter_map(|r| r.answer_us).collect();
    answers.sort_unstable();
    let answer_median = answers.get(answers.len().saturating_sub(1) / 2).copied();

    println!("== {} ==", common.label);
    println!(
        "target      {} {}, {} subscribers ({} failed to connect, {} dropped), {} messages of 16 B",
        common.target.name(),
        common.url,
        opened.ready,
        opened.failed,
        shared.dropped.load(Ordering::Acquire),
        args.messages
    );
    println!(
        "delivered   {}/{} messages to every subscriber",
        complete.len(),
        rounds.len()
    );
    if let (Some(best), Some(median)) = (best, median) {
        println!(
            "all got it  best {:.1} ms ({:.0} msg/s), median {:.1} ms ({:.0} msg/s)",
            ms(best.complete_us.unwrap_or(0)),
            best_rate.unwrap_or(0.0),
            ms(median.complete_us.unwrap_or(0)),
            median_rate.unwrap_or(0.0)
        );
        println!(
            "latency     median message: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms (from the send)",
            ms(median.p50_us),
            ms(median.p99_us),
            ms(median.max_us)
        );
    }
    if let Some(cpu) = cpu_median {
        println!(
            "server cpu  {cpu:.0} ms per message (median; send to {:.1} s after the last delivery, acknowledgements included)",
            args.gap
        );
    }
    let opt_us = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
    println!(
        "RESULT label={} target={} mode=fanout connections={} ready={} failed={} dropped={} errors={errors} messages={} complete={} best_us={} median_us={} best_msgs_per_s={} median_msgs_per_s={} p50_us={} p99_us={} max_us={} order_answer_us={} server_cpu_ms={} rss_connected_kb={} conn_per_s={:.1}",
        common.label,
        common.target.name(),
        args.connections,
        opened.ready,
        opened.failed,
        shared.dropped.load(Ordering::Acquire),
        args.messages,
        complete.len(),
        opt_us(best.and_then(|r| r.complete_us)),
        opt_us(median.and_then(|r| r.complete_us)),
        best_rate.map_or("-".to_owned(), |r| format!("{r:.0}")),
        median_rate.map_or("-".to_owned(), |r| format!("{r:.0}")),
        opt_us(median.map(|r| r.p50_us)),
        opt_us(median.map(|r| r.p99_us)),
        opt_us(median.map(|r| r.max_us)),
        opt_us(answer_median),
        cpu_median.map_or("-".to_owned(), |c| format!("{c:.0}")),
        opt_us(rss_connected),
        opened.ready as f64 / opened.seconds.max(1e-9),
    );
    if complete.is_empty() {
        bail!("no message reached every subscriber");
    }
    Ok(())
}

// --- churn -------------------------------------------------------------------------------

async fn churn(args: ChurnArgs) -> Result<()> {
    let common = &args.common;
    if args.connections == 0 || args.duration.is_nan() || args.duration <= 0.0 || args.warmup < 0.0
    {
        bail!("--connections and --duration must be positive, --warmup not negative");
    }
    let cfg = Cfg::new(common).await?;
    let shared = Arc::new(Shared::new(cfg, args.connections, false)?);
    let start = Instant::now();
    let record_from = start + Duration::from_secs_f64(args.warmup);
    let record_until = record_from + Duration::from_secs_f64(args.duration);
    let completed = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let next_source = Arc::new(AtomicU64::new(0));
    let pids: Vec<u32> = common.server_pid.into_iter().collect();
    let tasks: Vec<_> = (0..args.connections)
        .map(|index| {
            let shared = shared.clone();
            let completed = completed.clone();
            let failures = failures.clone();
            let next_source = next_source.clone();
            tokio::spawn(async move {
                let mut latency = Histogram::<u64>::new_with_bounds(1, HISTOGRAM_MAX_US, 3)?;
                let cfg = &shared.cfg;
                loop {
                    let began = Instant::now();
                    if began >= record_until {
                        break;
                    }
                    let recorded = began >= record_from;
                    // The device is the loop's; the source address rotates.
                    let source = next_source.fetch_add(1, Ordering::Relaxed);
                    let opened = tokio::time::timeout(
                        cfg.timeout,
                        Session::open(cfg, index as u64, source, false),
                    )
                    .await;
                    match opened {
                        Ok(Ok(session)) => {
                            let done = Instant::now();
                            if recorded && done <= record_until {
                                latency.record(micros(done - began))?;
                                completed.fetch_add(1, Ordering::Relaxed);
                            }
                            session.close().await;
                        }
                        Ok(Err(error)) => {
                            if recorded {
                                failures.fetch_add(1, Ordering::Relaxed);
                                shared.error(describe(&error));
                            }
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(_) => {
                            if recorded {
                                failures.fetch_add(1, Ordering::Relaxed);
                                shared.error("connect + subscribe timed out".to_owned());
                            }
                        }
                    }
                }
                anyhow::Ok(latency)
            })
        })
        .collect();
    tokio::time::sleep_until(record_from.into()).await;
    let cpu_before = process_ticks(&pids);
    tokio::time::sleep_until(record_until.into()).await;
    let cpu_after = process_ticks(&pids);
    let mut latency = Histogram::<u64>::new_with_bounds(1, HISTOGRAM_MAX_US, 3)?;
    for task in tasks {
        latency.add(task.await??)?;
    }
    let errors = print_errors(&shared);
    let completed = completed.load(Ordering::Relaxed);
    let failures = failures.load(Ordering::Relaxed);
    let rate = completed as f64 / args.duration;
    let server_cpu = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) if !pids.is_empty() => {
            let seconds = after.saturating_sub(before) as f64 / TICKS_PER_SEC;
            Some((
                100.0 * seconds / args.duration,
                1e6 * seconds / completed.max(1) as f64,
            ))
        }
        _ => None,
    };
    println!("== {} ==", common.label);
    println!(
        "target      {} {}, {} loops of connect → subscribe → answer → close, {:.1} s recorded after {:.1} s warm-up",
        common.target.name(),
        common.url,
        args.connections,
        args.duration,
        args.warmup
    );
    println!("connects/s  {rate:.0}  ({completed} subscribed, {failures} failed)");
    println!(
        "latency     p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.1} ms (TCP connect to subscribed)",
        ms(latency.value_at_quantile(0.5)),
        ms(latency.value_at_quantile(0.9)),
        ms(latency.value_at_quantile(0.99)),
        ms(latency.max())
    );
    if let Some((percent, per_connect)) = server_cpu {
        println!("server cpu  {percent:.0}% of one core, {per_connect:.0} µs per connect (close included)");
    }
    println!(
        "RESULT label={} target={} mode=churn loops={} duration={} connects_per_s={rate:.1} completed={completed} failed={failures} errors={errors} p50_us={} p90_us={} p99_us={} max_us={}{}",
        common.label,
        common.target.name(),
        args.connections,
        args.duration,
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.9),
        latency.value_at_quantile(0.99),
        latency.max(),
        server_cpu.map_or(String::new(), |(percent, per)| format!(
            " server_cpu={percent:.1} server_us_per_connect={per:.1}"
        )),
    );
    if completed == 0 {
        bail!("no connection subscribed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        let ips = parse_sources("127.0.0.2-127.0.0.4, 127.0.0.9").unwrap();
        assert_eq!(ips.len(), 4);
        assert_eq!(ips[3], "127.0.0.9".parse::<IpAddr>().unwrap());
        assert!(parse_sources("").unwrap().is_empty());
        assert!(parse_sources("127.0.0.4-127.0.0.2").is_err());
    }

    #[test]
    fn payload_round_trips() {
        let text = payload_of(0xdead_beef, 7);
        assert_eq!(text.len(), 16);
        assert_eq!(parse_payload(text.as_bytes()), Some((0xdead_beef, 7)));
        assert_eq!(parse_payload(b"short"), None);
    }

    #[test]
    fn nats_lines_and_split_messages() {
        let mut carry = Vec::new();
        let mut events = Vec::new();
        let payload = payload_of(1, 2);
        let whole = format!("INFO {{}}\r\nPONG\r\nMSG feed 1 16\r\n{payload}\r\nPING\r\n");
        let (a, b) = whole.as_bytes().split_at(30);
        nats_parse(&mut carry, a, &mut events).unwrap();
        assert!(!carry.is_empty());
        nats_parse(&mut carry, b, &mut events).unwrap();
        assert!(carry.is_empty());
        assert_eq!(
            events,
            vec![
                NatsEvent::Other,
                NatsEvent::Pong,
                NatsEvent::Msg(Some((1, 2))),
                NatsEvent::Ping
            ]
        );
    }
}
