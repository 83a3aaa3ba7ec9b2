//! The relational metadata store.

use crate::{Error, Result};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Row};
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OwnedMutexGuard};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a [`MetaStore`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Tuning of a [`MetaStore`].
#[derive(Debug, Clone)]
pub struct MetaStoreOptions {
    /// Connections in the pool.
    pub max_connections: u32,
    /// How long a query waits for a free connection.
    pub acquire_timeout: Duration,
}

impl Default for MetaStoreOptions {
    fn default() -> Self {
        MetaStoreOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// SQLite's settings as read back from a live connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// `PRAGMA journal_mode`.
    pub journal_mode: String,
    /// `PRAGMA synchronous` (1 = NORMAL: commits are synced by the group syncer).
    pub synchronous: i64,
    /// `PRAGMA foreign_keys`.
    pub foreign_keys: bool,
}

/// Metadata storage on SQLite or PostgreSQL, behind one API.
///
/// Reads go straight to the pool. Writes that need a transaction take
/// [`MetaStore::begin_write`], which on SQLite also takes the store's single writer
/// lock: SQLite allows one writer at a time, and queueing writers here (instead of
/// letting them collide on the file lock) means no `SQLITE_BUSY` under load and
/// no deadlock when a read-then-write transaction upgrades its lock.
#[derive(Debug, Clone)]
pub struct MetaStore {
    pool: AnyPool,
    backend: Backend,
    writer: Option<Arc<Mutex<()>>>,
    wal_sync: Option<Arc<WalSync>>,
}

/// A write transaction; commit it, or drop it to roll back.
#[derive(Debug)]
pub struct WriteTx {
    tx: sqlx::Transaction<'static, Any>,
    started: Instant,
    writer: Option<OwnedMutexGuard<()>>,
    wal_sync: Option<Arc<WalSync>>,
}

impl WriteTx {
    /// Makes the changes durable: returns once they are on disk. On SQLite the
    /// commit itself only appends to the WAL; the writer lock is released at once
    /// and the caller then waits for a group fsync of the WAL that began after its
    /// commit, shared with every other commit waiting at the same time.
    pub async fn commit(self) -> Result<()> {
        let WriteTx {
            tx,
            started,
            writer,
            wal_sync,
        } = self;
        tx.commit().await?;
        drop(writer);
        if let Some(wal_sync) = wal_sync {
            wal_sync.wait_durable().await?;
        }
        metrics::histogram!("atoll_store_write_tx_seconds").record(started.elapsed());
        Ok(())
    }
}

/// Group commit for SQLite: one fsync of the WAL file serves every commit that
/// finished before it started.
///
/// Each commit takes a ticket (a sequence number) after its `COMMIT` returned,
/// then waits until a sync that started after the ticket was taken has finished.
/// A single syncer task runs one `fdatasync` at a time; while it runs, new
/// tickets accumulate and are covered together by the next one. fsync works on
/// the file, not the descriptor, so syncing our own handle of `<db>-wal` flushes
/// what SQLite's connections wrote.
#[derive(Debug)]
pub(crate) struct WalSync {
    wal_path: std::path::PathBuf,
    committed: std::sync::atomic::AtomicU64,
    synced: tokio::sync::watch::Sender<SyncState>,
    wake: Arc<tokio::sync::Notify>,
    syncs: std::sync::atomic::AtomicU64,
}

impl Drop for WalSync {
    fn drop(&mut self) {
        // Lets the syncer task see that the store is gone and end.
        self.wake.notify_one();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncState {
    /// Every ticket up to this one is durable.
    Durable(u64),
    /// The last fsync failed: nothing more can be promised.
    Failed,
}

impl WalSync {
    fn start(wal_path: std::path::PathBuf) -> Arc<WalSync> {
        let (synced, _) = tokio::sync::watch::channel(SyncState::Durable(0));
        let wake = Arc::new(tokio::sync::Notify::new());
        let shared = Arc::new(WalSync {
            wal_path,
            committed: std::sync::atomic::AtomicU64::new(0),
            synced,
            wake: wake.clone(),
            syncs: std::sync::atomic::AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&shared);
        // The task holds the store's state only while it syncs, so dropping the
        // store ends it.
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                let Some(shared) = weak.upgrade() else { break };
                let target = shared.committed.load(std::sync::atomic::Ordering::SeqCst);
                let path = shared.wal_path.clone();
                let outcome =
                    tokio::task::spawn_blocking(move || match std::fs::File::open(&path) {
                        Ok(file) => file.sync_data(),
                        // No WAL file: it was checkpointed into the database (which
                        // SQLite syncs) and removed.
                        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                        Err(error) => Err(error),
                    })
                    .await;
                shared
                    .syncs
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let state = match outcome {
                    Ok(Ok(())) => SyncState::Durable(target),
                    Ok(Err(error)) => {
                        tracing::error!(%error, "fsync of the WAL failed");
                        SyncState::Failed
                    }
                    Err(error) => {
                        tracing::error!(%error, "fsync task failed");
                        SyncState::Failed
                    }
                };
                shared.synced.send_replace(state);
            }
        });
        shared
    }

    async fn wait_durable(&self) -> Result<()> {
        let ticket = self
            .committed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let mut synced = self.synced.subscribe();
        // Ask for a sync; a wake-up sent while one runs is kept for the next one,
        // which then covers this ticket.
        self.wake.notify_one();
        let state = *synced
            .wait_for(|state| match state {
                SyncState::Durable(done) => *done >= ticket,
                SyncState::Failed => true,
            })
            .await
            .map_err(|_| Error::Durability("the WAL syncer stopped".into()))?;
        match state {
            SyncState::Durable(_) => Ok(()),
            SyncState::Failed => Err(Error::Durability("could not fsync the WAL".into())),
        }
    }
}

impl Deref for WriteTx {
    type Target = sqlx::Transaction<'static, Any>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl MetaStore {
    /// Opens the store at `url` (`sqlite://path` or `postgres://…`) and applies
    /// pending migrations.
    pub async fn open(url: &str, options: &MetaStoreOptions) -> Result<MetaStore> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(Error::UnsupportedUrl(url.to_owned()));
        };
        let connect_options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer. NORMAL does not
                        // fsync at commit: `WriteTx::commit` waits for the group
                        // sync instead, so concurrent commits share one fsync and
                        // an acknowledged write still survives kill -9 and power loss.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect_options)
            .await?;
        let wal_sync = match backend {
            Backend::Sqlite => Some(WalSync::start(sqlite_wal_path(url)?)),
            Backend::Postgres => None,
        };
        let store = MetaStore {
            pool,
            backend,
            writer: (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(()))),
            wal_sync,
        };
        store.migrate().await?;
        if backend == Backend::Sqlite {
            store.verify_durability().await?;
        }
        Ok(store)
    }

    /// Opens (creating if needed) an SQLite file.
    pub async fn open_sqlite(
        path: &std::path::Path,
        options: &MetaStoreOptions,
    ) -> Result<MetaStore> {
        MetaStore::open(&MetaStore::sqlite_url_for(path), options).await
    }

    /// The URL of an SQLite file (created if missing).
    pub fn sqlite_url_for(path: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    /// Applies pending migrations of this backend.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool, for reads and single-statement writes.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a write transaction (serialised with other writers on SQLite).
    pub async fn begin_write(&self) -> Result<WriteTx> {
        let started = Instant::now();
        let writer = match &self.writer {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let tx = self.pool.begin().await?;
        Ok(WriteTx {
            tx,
            started,
            writer,
            wal_sync: self.wal_sync.clone(),
        })
    }

    /// The clause that locks the rows a `SELECT` reads inside a write transaction:
    /// ` FOR UPDATE` on PostgreSQL; nothing on SQLite, whose writers are already
    /// serialised by [`MetaStore::begin_write`].
    pub fn lock_rows_clause(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// How many group fsyncs of the WAL have run (SQLite; for tests and metrics).
    pub fn wal_syncs(&self) -> u64 {
        self.wal_sync.as_ref().map_or(0, |sync| {
            sync.syncs.load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// Reads SQLite's durability settings back from a pooled connection.
    pub async fn durability(&self) -> Result<Option<Durability>> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let mut conn = self.pool.acquire().await?;
        let journal_mode: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        let synchronous: i64 = sqlx::query("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        let foreign_keys: i64 = sqlx::query("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        Ok(Some(Durability {
            journal_mode: journal_mode.to_ascii_lowercase(),
            synchronous,
            foreign_keys: foreign_keys == 1,
        }))
    }

    /// Refuses to run when SQLite is not in WAL mode with `synchronous=NORMAL`
    /// (commits then synced by [`WalSync`]) and foreign keys on: the durability
    /// promise depends on all three.
    async fn verify_durability(&self) -> Result<()> {
        if let Some(found) = self.durability().await? {
            let expected = Durability {
                journal_mode: "wal".into(),
                synchronous: 1,
                foreign_keys: true,
            };
            if found != expected {
                return Err(Error::Durability(format!(
                    "expected {expected:?}, found {found:?}"
                )));
            }
        }
        Ok(())
    }

    /// Closes every connection (flushes SQLite's WAL on the last one).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The `-wal` file next to the database an SQLite URL names.
fn sqlite_wal_path(url: &str) -> Result<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| Error::UnsupportedUrl(url.to_owned()))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        return Err(Error::UnsupportedUrl(format!(
            "{url}: Atoll needs an SQLite file, not an in-memory database"
        )));
    }
    Ok(std::path::PathBuf::from(format!("{path}-wal")))
}
