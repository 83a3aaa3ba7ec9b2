//! Atoll's event store: where analytics events live.
//!
//! ```text
//!  append(app, rows) ──► writer thread ──► WAL file (one fdatasync per group) ──► ack
//!                             │
//!                             └──► live Arrow batches + bitmap aggregates (queryable at once)
//!  checkpoint (timer / size): rotate WAL ─► Parquet segments per app+day (zstd),
//!                             dictionary chunks, day aggregates ─► manifest ─► drop WAL files
//!  compaction: small segments of a day ─► one sorted, de-duplicated segment
//!  queries: DataFusion over segments ∪ buffered batches; reports on the bitmaps
//! ```
//!
//! - **Durability.** [`EventStore::append`] answers only after the rows are in the
//!   write-ahead log on disk. Concurrent appends share one sync (group commit).
//!   The manifest in the object store is the commit point of a checkpoint; on open,
//!   objects it does not name are removed and log files after its position are
//!   replayed, so a `kill -9` at any moment loses nothing acknowledged and
//!   duplicates nothing.
//! - **Duplicates.** A client retry carries the same event uuids; a bounded
//!   recent-uuid filter stores them once, and compaction removes any older
//!   repeat within a day.
//! - **Layout.** Objects live behind `object_store` (a local folder or S3):
//!   `segments/<app>/<day>/<generation>-<part>.parquet`, `dict/<app>/…`,
//!   `agg/<app>/<day>-<generation>.bin`, `manifest.json`. Days are UTC days.
//! - **Pre-aggregates.** Every device and user gets a dense number per app; each
//!   day keeps roaring bitmaps of the active and new ones (also by platform, app
//!   version and channel), so DAU/MAU, unique counts over ranges and retention are
//!   set operations (see [`aggregates`]). Tests check them against full scans.
//! - **Bounds.** The append queue, the unflushed rows, the uuid filter and the
//!   values per dimension are capped; over a cap, appends fail with
//!   [`Error::Overloaded`] (the API answers 503 with `Retry-After`).
#![warn(missing_docs)]

pub mod aggregates;
mod dedup;
pub mod maintain;
pub mod persist;
pub mod query;
pub mod row;
mod store;
pub mod wal;

pub use aggregates::{AppAggregates, DayAggregate, Dimension};
pub use maintain::Subject;
pub use query::{Snapshot, EVENTS};
pub use row::{day_of, Day, EventRow, DAY_MS};
pub use store::{Appended, EventStore, EventStoreConfig, Stats};

/// What can go wrong in the event store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store cannot take more now; retry after a moment.
    #[error("the event store is overloaded: {0}")]
    Overloaded(&'static str),
    /// The store was closed.
    #[error("the event store is closed")]
    Closed,
    /// A local file operation failed.
    #[error("event store I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The object store failed.
    #[error("event object store: {0}")]
    Objects(#[from] object_store::Error),
    /// A query failed.
    #[error("event query: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    /// Arrow failed on a batch.
    #[error("event batch: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// Parquet encoding or decoding failed.
    #[error("event segment: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    /// Stored data does not read back as written.
    #[error("event store data is damaged: {0}")]
    Corrupt(String),
}
