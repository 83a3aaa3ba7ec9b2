//! Delivery receipts for the app's backend: when an app sets a `receipt_url`,
//! every delivery that is sent, arrives, is opened or dismissed, or fails is
//! POSTed there in batches (`{"receipts": [...]}`), signed with
//! `X-Atoll-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` and
//! `X-Atoll-Timestamp` (seconds), so the backend can check both the sender and
//! the freshness.
//!
//! Receipts are a notification, not the record (the record is the deliveries
//! table, readable through the API): they wait in a bounded queue (the oldest
//! are dropped and counted when it is full), a batch is retried three times,
//! and receipts still queued at a crash are not sent.

use crate::PushService;
pub use atoll_protocol::push::{receipt_signature as signature, Receipt};
use atoll_protocol::push::{RECEIPT_SIGNATURE_HEADER, RECEIPT_TIMESTAMP_HEADER};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Receipts waiting at most (all apps).
const QUEUE_CAP: usize = 100_000;
/// Receipts per POST at most.
const BATCH: usize = 500;
/// Attempts per batch.
const ATTEMPTS: u32 = 3;

/// The queue of receipts.
#[derive(Default)]
pub struct Receipts {
    queue: Mutex<VecDeque<(String, Receipt)>>,
    ready: Notify,
}

impl Receipts {
    /// Queues receipts of an app (which has a receipt URL).
    pub(crate) fn push(&self, app_id: &str, receipts: impl IntoIterator<Item = Receipt>) {
        let mut queue = self.queue.lock();
        for receipt in receipts {
            if queue.len() >= QUEUE_CAP {
                queue.pop_front();
                metrics::counter!("atoll_push_receipts_dropped_total", "reason" => "queue_full")
                    .increment(1);
            }
            queue.push_back((app_id.to_owned(), receipt));
        }
        drop(queue);
        self.ready.notify_one();
    }

    fn take(&self) -> HashMap<String, Vec<Receipt>> {
        let mut queue = self.queue.lock();
        let mut by_app: HashMap<String, Vec<Receipt>> = HashMap::new();
        let n = queue.len().min(BATCH * 4);
        for (app, receipt) in queue.drain(..n) {
            by_app.entry(app).or_default().push(receipt);
        }
        by_app
    }
}

impl PushService {
    /// Queues receipts for apps that asked for them.
    pub(crate) async fn emit_receipts(&self, receipts: Vec<(String, Receipt)>) {
        let mut by_app: HashMap<String, Vec<Receipt>> = HashMap::new();
        for (app, receipt) in receipts {
            by_app.entry(app).or_default().push(receipt);
        }
        for (app, receipts) in by_app {
            if self.settings_of(&app).await.settings.receipt_url.is_some() {
                self.receipts.push(&app, receipts);
            }
        }
    }
}

/// Starts the sender.
pub(crate) fn spawn(service: &Arc<PushService>) {
    let weak = Arc::downgrade(service);
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "no HTTP client for push receipts");
                return;
            }
        };
        loop {
            let Some(service) = weak.upgrade() else { break };
            let _ = tokio::time::timeout(Duration::from_secs(1), service.receipts.ready.notified())
                .await;
            for (app, receipts) in service.receipts.take() {
                let settings = service.settings_of(&app).await;
                let Some(url) = settings.settings.receipt_url.clone() else {
                    continue;
                };
                for batch in receipts.chunks(BATCH) {
                    send_batch(
                        &client,
                        &service,
                        &url,
                        settings.receipt_secret.as_deref(),
                        batch,
                    )
                    .await;
                }
            }
        }
    });
}

async fn send_batch(
    client: &reqwest::Client,
    service: &PushService,
    url: &str,
    secret: Option<&str>,
    batch: &[Receipt],
) {
    let body =
        serde_json::to_vec(&serde_json::json!({ "receipts": batch })).expect("receipts serialise");
    for attempt in 1..=ATTEMPTS {
        let timestamp = service.clock.now_ms() / 1000;
        let mut request = client
            .post(url)
            .header("content-type", "application/json")
            .header(RECEIPT_TIMESTAMP_HEADER, timestamp.to_string())
            .body(body.clone());
        if let Some(secret) = secret {
            request = request.header(
                RECEIPT_SIGNATURE_HEADER,
                signature(secret, timestamp, &body),
            );
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                metrics::counter!("atoll_push_receipts_sent_total").increment(batch.len() as u64);
                return;
            }
            Ok(response) => {
                tracing::info!(status = %response.status(), url, attempt, "push receipts refused");
            }
            Err(error) => tracing::info!(%error, url, attempt, "push receipts not delivered"),
        }
        tokio::time::sleep(Duration::from_secs(attempt as u64)).await;
    }
    metrics::counter!("atoll_push_receipts_dropped_total", "reason" => "undeliverable")
        .increment(batch.len() as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_timestamp_and_body() {
        let a = signature("secret-of-16-chars", 1, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, signature("secret-of-16-chars", 2, b"{}"));
        assert_ne!(a, signature("secret-of-16-chars", 1, b"{ }"));
        assert_ne!(a, signature("another-secret-16", 1, b"{}"));
    }

    #[test]
    fn the_queue_is_bounded() {
        let receipts = Receipts::default();
        let receipt = Receipt {
            msg_id: "m".into(),
            task_id: "t".into(),
            device_id: "d".into(),
            event: "sent".into(),
            channel: "atoll".into(),
            reason: None,
            at: 0,
        };
        receipts.push("app", std::iter::repeat_n(receipt, QUEUE_CAP + 10));
        assert_eq!(receipts.queue.lock().len(), QUEUE_CAP);
    }
}
