//! Background delta patches. When a package is uploaded, patches from the
//! [`limits::DELTA_BASES`] versions just below it are queued in the store
//! (`delta_patches`, state `pending`); one worker per node makes them one at a
//! time with `atoll_delta::diff` on a blocking thread, stores each patch as a
//! blob and marks it `ready` (or `failed` with the reason). The queue is in the
//! store, so a restart resumes where it stopped; on a cluster, two nodes may
//! make the same patch, which is harmless: the blob is content-addressed and
//! the last writer's row wins.
//!
//! A patch that is not clearly smaller than the full file (over
//! [`MAX_PATCH_RATIO`] of it) is marked failed: downloading the full package is
//! then as cheap and simpler.

use crate::storage::{self, PatchRow};
use crate::Result;
use atoll_delta::{DiffOptions, Format};
use atoll_protocol::delivery::limits;
use atoll_store::{BlobStore, MetaStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// A patch over this share of the new file's size is not kept.
pub const MAX_PATCH_RATIO: f64 = 0.9;
/// How often the queue is polled when nobody wakes the worker.
const POLL_INTERVAL: Duration = Duration::from_secs(30);

/// The worker's handles.
#[derive(Debug, Clone)]
pub struct DeltaWorker {
    store: MetaStore,
    blobs: BlobStore,
    wake: Arc<Notify>,
    max_file_bytes: u64,
}

impl DeltaWorker {
    /// A worker over the store and blobs; files over `max_file_bytes` get no patch.
    pub fn new(store: MetaStore, blobs: BlobStore, max_file_bytes: u64) -> DeltaWorker {
        DeltaWorker {
            store,
            blobs,
            wake: Arc::new(Notify::new()),
            max_file_bytes: max_file_bytes.min(atoll_delta::limits::MAX_FILE),
        }
    }

    /// Tells the worker new patches are queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        loop {
            match self.run_once().await {
                Ok(0) => {
                    let _ = tokio::time::timeout(POLL_INTERVAL, self.wake.notified()).await;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "delta worker failed; retrying");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }

    /// Makes the pending patches now; how many were handled.
    pub async fn run_once(&self) -> Result<usize> {
        let pending = storage::pending_patches(&self.store, 16).await?;
        let count = pending.len();
        for (app_id, patch) in pending {
            let outcome = self.make(&app_id, &patch).await;
            if let Err(error) = &outcome {
                tracing::info!(from = %patch.from_package, to = %patch.to_package, %error, "no delta patch");
            }
            metrics::counter!("atoll_delivery_patches_total",
                "outcome" => if outcome.is_ok() { "ready" } else { "failed" })
            .increment(1);
            storage::finish_patch(&self.store, &patch.from_package, &patch.to_package, outcome)
                .await?;
        }
        Ok(count)
    }

    async fn load(
        &self,
        app_id: &str,
        package_id: &str,
    ) -> std::result::Result<bytes::Bytes, String> {
        let package = storage::package(&self.store, app_id, package_id)
            .await
            .map_err(|error| error.to_string())?
            .ok_or("the package was deleted")?;
        let sha256 = package.sha256.ok_or("a store link has no file")?;
        if package.size > self.max_file_bytes {
            return Err(format!(
                "the file is over {} bytes, the largest this server diffs",
                self.max_file_bytes
            ));
        }
        self.blobs
            .get(&sha256)
            .await
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("blob {sha256} is missing"))
    }

    async fn make(
        &self,
        app_id: &str,
        patch: &PatchRow,
    ) -> std::result::Result<(String, u64), String> {
        let old = self.load(app_id, &patch.from_package).await?;
        let new = self.load(app_id, &patch.to_package).await?;
        let new_size = new.len();
        let made = tokio::task::spawn_blocking(move || {
            atoll_delta::diff(
                &old,
                &new,
                &DiffOptions {
                    format: Format::Auto,
                    ..DiffOptions::default()
                },
            )
        })
        .await
        .map_err(|error| format!("the diff panicked: {error}"))?
        .map_err(|error| format!("{}: {error}", error.code()))?;
        if made.len() as f64 > new_size as f64 * MAX_PATCH_RATIO {
            return Err(format!(
                "the patch ({} bytes) is not much smaller than the file ({new_size} bytes)",
                made.len()
            ));
        }
        let blob = self
            .blobs
            .put(bytes::Bytes::from(made))
            .await
            .map_err(|error| error.to_string())?;
        Ok((blob.sha256, blob.size))
    }
}

/// Queues patches to a new package from the versions just below it.
pub async fn queue_for(
    store: &MetaStore,
    tx: &mut atoll_store::WriteTx,
    app_id: &str,
    package: &atoll_protocol::delivery::Package,
    now: i64,
) -> Result<usize> {
    if package.sha256.is_none() {
        return Ok(0);
    }
    let bases = storage::earlier_packages(store, app_id, package, limits::DELTA_BASES).await?;
    for base in &bases {
        storage::queue_patch(tx, app_id, &base.id, &package.id, now).await?;
    }
    Ok(bases.len())
}
