//! `atoll sim`: simulated devices using an app through the real device API.
//!
//! Each device is a persona from the analytics behaviour model: it registers
//! with its platform, versions and channel, then plays sessions (launch, pages,
//! searches, items, carts, purchases, sign-ins) whose events are shifted to end
//! now and posted through the SDK, signed, batched, compressed and retried like
//! an app would. Useful to watch the real-time view move, and as a load source.

use anyhow::Context;
use atoll_protocol::device::{Platform, RegisterRequest};
use atoll_protocol::events::{EventBatch, EventBatchResponse};
use atoll_sdk::{DeviceClient, DeviceConfig, RequestOptions};
use atoll_server::simulate::Persona;
use futures::StreamExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub server: String,
    pub app_key: String,
    pub app_secret: String,
    pub devices: u64,
    pub sessions: u64,
    pub concurrency: usize,
    pub seed: u64,
    pub state_dir: PathBuf,
    pub batch: usize,
}

/// Runs the simulation and prints a summary.
pub async fn run(options: SimOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.state_dir)
        .with_context(|| format!("cannot create {}", options.state_dir.display()))?;
    let started = Instant::now();
    let accepted = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let options = Arc::new(options);
    let mut runs = futures::stream::iter(0..options.devices)
        .map(|index| {
            let options = options.clone();
            let accepted = accepted.clone();
            let requests = requests.clone();
            async move { device(&options, index, &accepted, &requests).await }
        })
        .buffer_unordered(options.concurrency.max(1));
    let mut failed = 0u64;
    while let Some(outcome) = runs.next().await {
        if let Err(error) = outcome {
            failed += 1;
            if failed <= 3 {
                eprintln!("a simulated device failed: {error:#}");
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let events = accepted.load(Ordering::Relaxed);
    println!(
        "{} devices, {} requests, {events} events accepted in {elapsed:.1} s ({:.0} events/s){}",
        options.devices,
        requests.load(Ordering::Relaxed),
        events as f64 / elapsed.max(1e-3),
        if failed > 0 {
            format!(", {failed} devices failed")
        } else {
            String::new()
        }
    );
    if failed > 0 {
        anyhow::bail!("{failed} simulated devices failed");
    }
    Ok(())
}

async fn device(
    options: &SimOptions,
    index: u64,
    accepted: &AtomicU64,
    requests: &AtomicU64,
) -> anyhow::Result<()> {
    let persona = Persona::new(options.seed, index);
    let dir = options.state_dir.join(&persona.device_id);
    let mut config = DeviceConfig::new(&options.server, &options.app_key, &options.app_secret, dir);
    config.timeout = Duration::from_secs(30);
    let client = DeviceClient::new(config)?;
    client
        .register(&RegisterRequest {
            platform: Platform::parse(persona.platform),
            os: Some(persona.platform.to_owned()),
            os_version: Some(persona.os_version.clone()),
            model: Some(persona.model.clone()),
            app_version: Some(persona.app_version.to_owned()),
            channel: Some(persona.channel.to_owned()),
            region: Some(persona.region.to_owned()),
            network: Some(persona.network.to_owned()),
            ..RegisterRequest::default()
        })
        .await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut events = Vec::new();
    for session in 0..options.sessions {
        let day = now.div_euclid(86_400_000) + session as i64;
        let mut day_events = persona.day_events(options.seed, day, 0, session == 0);
        // Shift the day's events so that they end now, as if just played.
        if let Some(last) = day_events.iter().map(|e| e.time).max() {
            for event in &mut day_events {
                event.time = now - (last - event.time).min(6 * 3_600_000);
            }
        }
        events.extend(day_events);
    }
    for chunk in events.chunks(options.batch.clamp(1, 500)) {
        let answer: EventBatchResponse = client
            .post(
                "/device/v1/events",
                &EventBatch {
                    events: chunk.to_vec(),
                    network: None,
                },
                &RequestOptions::default(),
            )
            .await?;
        requests.fetch_add(1, Ordering::Relaxed);
        accepted.fetch_add(u64::from(answer.accepted), Ordering::Relaxed);
    }
    Ok(())
}
