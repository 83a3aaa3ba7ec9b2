//! Starts the three fakes and prints, as one JSON line, where they listen and
//! the credentials to use with them, then runs until interrupted.
//!
//! ```text
//! atoll-push-fakes [--apns-port N] [--fcm-port N] [--hms-port N]
//!                  [--topic BUNDLE_ID] [--latency-ms N]
//! ```
//!
//! Output: `{"apns": {"url", "ca_pem", "credentials"}, "fcm": {"url",
//! "credentials"}, "hms": {"url", "credentials"}}`. Port 0 (the default)
//! picks a free port. On SIGINT the counters of each fake go to stderr.

use atoll_push_fakes::{FakeApns, FakeFcm, FakeHms};
use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: atoll-push-fakes [--apns-port N] [--fcm-port N] [--hms-port N] [--topic BUNDLE_ID] [--latency-ms N]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut apns_port = 0u16;
    let mut fcm_port = 0u16;
    let mut hms_port = 0u16;
    let mut topic = "com.example.atoll".to_string();
    let mut latency_ms = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--apns-port" => apns_port = value.parse().unwrap_or_else(|_| usage()),
            "--fcm-port" => fcm_port = value.parse().unwrap_or_else(|_| usage()),
            "--hms-port" => hms_port = value.parse().unwrap_or_else(|_| usage()),
            "--topic" => topic = value,
            "--latency-ms" => latency_ms = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let apns = FakeApns::start_on(apns_port).await?;
    let fcm = FakeFcm::start_on(fcm_port).await?;
    let hms = FakeHms::start_on(hms_port).await?;
    let latency = Duration::from_millis(latency_ms);
    apns.set_latency(latency);
    fcm.set_latency(latency);
    hms.set_latency(latency);
    let out = serde_json::json!({
        "apns": {"url": apns.url(), "ca_pem": apns.ca_pem(), "credentials": apns.credentials(&topic)},
        "fcm": {"url": fcm.url(), "credentials": fcm.credentials()},
        "hms": {"url": hms.url(), "credentials": hms.credentials()},
    });
    println!("{out}");
    tokio::signal::ctrl_c().await?;
    eprintln!("apns: {:?}", apns.stats());
    eprintln!("fcm: {:?}", fcm.stats());
    eprintln!("hms: {:?}", hms.stats());
    Ok(())
}
