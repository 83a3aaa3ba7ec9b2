//! The analytics subcommands: `events-gen` (write the synthetic NDJSON) and
//! `backfill` (load an NDJSON file through the admin backfill API).

use crate::gen::{self, DAY_MS};
use crate::{connect, exchange, micros, process_ticks, resolve, TICKS_PER_SEC};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Writes deterministic synthetic mobile events as NDJSON (one event a line,
/// grouped by device, oldest first).
#[derive(Debug, Parser)]
#[command(name = "atoll-bench events-gen")]
pub struct GenArgs {
    /// Events to write (the last device is cut short to hit it exactly).
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Seed; the same seed and sizes give the same bytes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Days of history.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Last day of the window (UTC, `YYYY-MM-DD`).
    #[arg(long, default_value = "2026-11-27")]
    end_date: String,
    /// Output file (`-` for stdout).
    #[arg(long, default_value = "-")]
    out: PathBuf,
}

pub fn events_gen(args: GenArgs) -> Result<()> {
    let end_day = gen::parse_day(&args.end_date).context("--end-date must be YYYY-MM-DD")?;
    if args.days == 0 {
        bail!("--days must be at least 1");
    }
    let first_day_ms = (end_day - i64::from(args.days) + 1) * DAY_MS;
    let started = Instant::now();
    let sink: Box<dyn Write> = if args.out.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(&args.out)
                .with_context(|| format!("cannot create {}", args.out.display()))?,
        )
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let mut written = 0u64;
    let mut bytes = 0u64;
    let mut devices = 0u64;
    let mut line = String::with_capacity(1 << 16);
    while written < args.events {
        let (device, events) = gen::device_events(args.seed, devices, first_day_ms, args.days);
        devices += 1;
        line.clear();
        for event in events.iter().take((args.events - written) as usize) {
            gen::write_row(&mut line, event, &device);
            written += 1;
        }
        bytes += line.len() as u64;
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "events-gen: {written} events, {devices} devices, {:.1} MB, {:.0} B/event, days {} .. {} (UTC), {seconds:.1} s",
        bytes as f64 / 1e6,
        bytes as f64 / written.max(1) as f64,
        format_day(first_day_ms / DAY_MS),
        args.end_date,
    );
    eprintln!(
        "RESULT label=events-gen events={written} devices={devices} bytes={bytes} from={} to={} seconds={seconds:.2}",
        format_day(first_day_ms / DAY_MS),
        args.end_date
    );
    Ok(())
}

/// `YYYY-MM-DD` of a day number (days since the epoch).
fn format_day(day: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = day + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Loads an NDJSON file (as written by `events-gen`) through
/// `POST /api/v1/workspaces/{ws}/apps/{app}/analytics/backfill`, one device per
/// call, at most `--batch` events a call, over C connections; reports events/s.
#[derive(Debug, Parser)]
#[command(name = "atoll-bench backfill")]
pub struct BackfillArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:7420.
    #[arg(long)]
    url: String,
    /// Bearer token of an admin of the app.
    #[arg(long, env = "ATOLL_BENCH_TOKEN", hide_env_values = true)]
    token: String,
    /// Workspace slug.
    #[arg(long, default_value = "demo")]
    workspace: String,
    /// App key.
    #[arg(long, env = "ATOLL_BENCH_APP_KEY")]
    app: String,
    /// The NDJSON file.
    #[arg(long)]
    file: PathBuf,
    /// Events per call (≤ 500).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, short = 'c', default_value_t = 8)]
    connections: usize,
    /// Allow targets that are not loopback addresses.
    #[arg(long)]
    allow_remote: bool,
    /// Server processes whose CPU time is reported (as in the other modes).
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// Name printed with the results.
    #[arg(long, default_value = "backfill")]
    label: String,
    /// After preparing the bodies (on every CPU), move all of this process's
    /// threads to these CPUs (`taskset -a -p -c LIST`) before sending, e.g. `0`.
    #[arg(long)]
    send_cpus: Option<String>,
}

/// Device-level columns that are not part of a `TrackedEvent`.
const DEVICE_KEYS: [&str; 5] = ["device_id", "user_id", "platform", "app_version", "channel"];

/// One call's body and its event count.
fn backfill_body(
    device: &serde_json::Value,
    events: &[serde_json::Value],
) -> Result<(Bytes, usize)> {
    let mut body = Vec::with_capacity(events.len() * 260 + 256);
    body.extend_from_slice(br#"{"device":"#);
    serde_json::to_writer(&mut body, device)?;
    body.extend_from_slice(br#","events":["#);
    for (index, event) in events.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, event)?;
    }
    body.extend_from_slice(b"]}");
    Ok((Bytes::from(body), events.len()))
}

/// Reads the file into request bodies (untimed), on every CPU: the file is cut
/// into one chunk per thread at line ends (a device cut in two just makes one
/// more call).
fn prepare(file: &PathBuf, batch: usize) -> Result<Vec<(Bytes, usize)>> {
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1);
    let mut cuts = vec![0usize];
    for part in 1..threads {
        let mut at = (text.len() * part / threads).max(*cuts.last().unwrap_or(&0));
        while at < text.len() && text[at] != b'\n' {
            at += 1;
        }
        cuts.push((at + 1).min(text.len()));
    }
    cuts.push(text.len());
    let chunks: Vec<&[u8]> = cuts.windows(2).map(|w| &text[w[0]..w[1]]).collect();
    let parts: Vec<Result<Vec<(Bytes, usize)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| scope.spawn(move || prepare_chunk(chunk, batch)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a parser thread panicked")))
            })
            .collect()
    });
    let mut bodies = Vec::new();
    for part in parts {
        bodies.extend(part?);
    }
    Ok(bodies)
}

fn prepare_chunk(chunk: &[u8], batch: usize) -> Result<Vec<(Bytes, usize)>> {
    let mut bodies = Vec::new();
    let mut current: Option<(String, serde_json::Value)> = None;
    let mut pending: Vec<serde_json::Value> = Vec::with_capacity(batch);
    for line in chunk.split(|byte| *byte == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut row: serde_json::Value =
            serde_json::from_slice(line).context("a line is not JSON")?;
        let object = row.as_object_mut().context("a line is not a JSON object")?;
        let device_id = object
            .get("device_id")
            .and_then(|v| v.as_str())
            .context("a line has no device_id")?
            .to_owned();
        let mut device = serde_json::Map::new();
        for key in DEVICE_KEYS {
            if let Some(value) = object.remove(key) {
                if !value.is_null() {
                    device.insert(key.to_owned(), value);
                }
            }
        }
        // The account is the device's; a TrackedEvent names it on `$login` only.
        if object.get("event_id").and_then(|v| v.as_str()) == Some("$login") {
            if let Some(user) = device.get("user_id") {
                object.insert("user_id".to_owned(), user.clone());
            }
        }
        object.retain(|_, value| !value.is_null());
        if object
            .get("attributes")
            .is_some_and(|a| a.as_object().is_some_and(|m| m.is_empty()))
        {
            object.remove("attributes");
        }
        let same_device = current.as_ref().is_some_and(|(id, _)| *id == device_id);
        if !same_device || pending.len() >= batch {
            if let Some((_, device)) = &current {
                if !pending.is_empty() {
                    bodies.push(backfill_body(device, &pending)?);
                    pending.clear();
                }
            }
            if !same_device {
                current = Some((device_id, serde_json::Value::Object(device)));
            }
        }
        pending.push(row);
    }
    if let Some((_, device)) = &current {
        if !pending.is_empty() {
            bodies.push(backfill_body(device, &pending)?);
        }
    }
    Ok(bodies)
}

pub async fn backfill(args: BackfillArgs) -> Result<()> {
    if args.batch == 0 || args.batch > 500 || args.connections == 0 {
        bail!("--batch must be 1-500 and --connections at least 1");
    }
    let (addr, authority) = resolve(&args.url, args.allow_remote).await?;
    let prepared = Instant::now();
    let bodies = prepare(&args.file, args.batch)?;
    let total_events: usize = bodies.iter().map(|(_, n)| n).sum();
    eprintln!(
        "backfill: {} calls, {total_events} events prepared in {:.1} s",
        bodies.len(),
        prepared.elapsed().as_secs_f64()
    );
    if let Some(cpus) = &args.send_cpus {
        let status = std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .context("cannot run taskset")?;
        if !status.success() {
            bail!("taskset -a -p -c {cpus} failed");
        }
    }
    let target = format!(
        "/api/v1/workspaces/{}/apps/{}/analytics/backfill",
        args.workspace, args.app
    );
    let bearer = HeaderValue::from_str(&format!("Bearer {}", args.token))?;
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let server_before = process_ticks(&args.server_pids);
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            let bodies = bodies.clone();
            let next = next.clone();
            let target = target.clone();
            let bearer = bearer.clone();
            let authority = authority.clone();
            tokio::spawn(async move {
                let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
                let mut accepted = 0u64;
                let mut failure: Option<String> = None;
                let mut sender = connect(addr).await?;
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some((body, _)) = bodies.get(index) else {
                        break;
                    };
                    let request = Request::builder()
                        .method(Method::POST)
                        .uri(target.as_str())
                        .header(HOST, authority.clone())
                        .header(AUTHORIZATION, bearer.clone())
                        .header(CONTENT_TYPE, "application/json")
                        .body(Full::new(body.clone()))?;
                    let sent = Instant::now();
                    let (status, answer) = match exchange(&mut sender, request).await {
                        Ok(answer) => answer,
                        Err(error) => {
                            failure.get_or_insert(format!("transport: {error:#}"));
                            sender = connect(addr).await?;
                            continue;
                        }
                    };
                    latency.record(micros(sent.elapsed()))?;
                    *statuses.entry(status).or_default() += 1;
                    if (200..300).contains(&status) {
                        let answer: serde_json::Value =
                            serde_json::from_slice(&answer).unwrap_or_default();
                        accepted += answer["accepted"].as_u64().unwrap_or(0)
                            + answer["duplicates"].as_u64().unwrap_or(0);
                    } else if failure.is_none() {
                        failure = Some(format!(
                            "{status}: {}",
                            String::from_utf8_lossy(&answer[..answer.len().min(400)])
                        ));
                    }
                }
                anyhow::Ok((latency, statuses, accepted, failure))
            })
        })
        .collect();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut stored = 0u64;
    let mut failure = None;
    for task in tasks {
        let (part, part_statuses, part_stored, part_failure) = task.await??;
        latency.add(&part)?;
        for (status, count) in part_statuses {
            *statuses.entry(status).or_default() += count;
        }
        stored += part_stored;
        failure = failure.or(part_failure);
    }
    let seconds = started.elapsed().as_secs_f64();
    let server_after = process_ticks(&args.server_pids);
    let calls: u64 = statuses.values().sum();
    let events_per_s = total_events as f64 / seconds;
    println!("== {} ==", args.label);
    println!(
        "backfill    {total_events} events in {calls} calls over {} connections: {seconds:.2} s, {events_per_s:.0} events/s, {:.0} calls/s",
        args.connections,
        calls as f64 / seconds
    );
    println!(
        "latency     p50 {} µs  p99 {} µs  max {} µs (per call)",
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
        latency.max()
    );
    let shown: Vec<String> = statuses.iter().map(|(s, c)| format!("{s}×{c}")).collect();
    println!(
        "statuses    {}  stored (accepted + duplicates) {stored}",
        shown.join(" ")
    );
    let mut server = String::new();
    if let (Some(before), Some(after)) = (server_before, server_after) {
        if !args.server_pids.is_empty() {
            let cpu = after.saturating_sub(before) as f64 / TICKS_PER_SEC;
            println!(
                "server cpu  {cpu:.1} s, {:.0}% of one core, {:.2} µs per event",
                100.0 * cpu / seconds,
                1e6 * cpu / total_events.max(1) as f64
            );
            server = format!(
                " server_cpu_s={cpu:.2} server_us_per_event={:.3}",
                1e6 * cpu / total_events.max(1) as f64
            );
        }
    }
    println!(
        "RESULT label={} mode=backfill events={total_events} calls={calls} seconds={seconds:.3} events_per_s={events_per_s:.1} p50_us={} p99_us={} stored={stored}{server}",
        args.label,
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
    );
    if let Some(failure) = failure {
        bail!("some calls failed; first: {failure}");
    }
    if stored != total_events as u64 {
        bail!("the server stored {stored} of {total_events} events");
    }
    Ok(())
}
