//! Atoll's storage layer: the traits and backends every module stores through.
//!
//! - [`MetaStore`]: relational metadata over sqlx, on SQLite (default, a file in the
//!   data folder, WAL with `synchronous=FULL`) or PostgreSQL. One set of versioned,
//!   embedded migrations per backend; SQL is written once in the portable subset both
//!   understand (`$n` parameters, `ON CONFLICT`, `RETURNING`, integers for times and
//!   booleans). [`conformance`] is the suite every backend must pass.
//! - [`BlobStore`]: content-addressed blobs over `object_store` (a local folder by
//!   default; S3 later in cluster mode).
//! - [`Bus`]: subject-based publish/subscribe between the parts of a node, and later
//!   between nodes (NATS); [`MemoryBus`] is the in-process implementation.
//!
//! Modules write their own queries in their own `store.rs` against [`MetaStore`];
//! this crate knows no module's domain.
#![warn(missing_docs)]

mod blob;
mod bus;
pub mod conformance;
mod meta;

pub use blob::{BlobRead, BlobRef, BlobStore};
pub use bus::{Bus, BusMessage, MemoryBus, Subscription};
pub use meta::{Backend, Durability, MetaStore, MetaStoreOptions, WriteTx};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database answered with an error or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed to apply.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database URL names no supported backend.
    #[error("unsupported database url (expected sqlite:// or postgres://): {0}")]
    UnsupportedUrl(String),
    /// SQLite is not set up for the durability Atoll promises.
    #[error("durability check failed: {0}")]
    Durability(String),
    /// The blob store failed.
    #[error("blob store error: {0}")]
    Blob(#[from] object_store::Error),
    /// The bus is closed.
    #[error("bus closed")]
    BusClosed,
}

impl Error {
    /// Whether the error is a unique-constraint violation (a duplicate).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Error::Database(sqlx::Error::Database(db)) => {
                db.kind() == sqlx::error::ErrorKind::UniqueViolation
            }
            _ => false,
        }
    }
}

/// Result with the storage error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
