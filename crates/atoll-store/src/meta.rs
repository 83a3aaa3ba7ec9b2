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
    /// `PRAGMA synchronous` (2 = FULL).
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
}

/// A write transaction; commit it, or drop it to roll back.
#[derive(Debug)]
pub struct WriteTx {
    tx: sqlx::Transaction<'static, Any>,
    started: Instant,
    _writer: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Makes the changes durable: on SQLite this returns after the WAL is fsynced.
    pub async fn commit(self) -> Result<()> {
        let started = self.started;
        self.tx.commit().await?;
        metrics::histogram!("atoll_store_write_tx_seconds").record(started.elapsed());
        Ok(())
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
                        // WAL lets readers run beside the writer; FULL fsyncs the WAL
                        // on every commit, so an acknowledged write survives kill -9
                        // and power loss alike.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect_options)
            .await?;
        let store = MetaStore {
            pool,
            backend,
            writer: (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(()))),
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
            _writer: writer,
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

    /// Refuses to run when SQLite is not in WAL mode with `synchronous=FULL` and
    /// foreign keys on: the durability promise depends on all three.
    async fn verify_durability(&self) -> Result<()> {
        if let Some(found) = self.durability().await? {
            let expected = Durability {
                journal_mode: "wal".into(),
                synchronous: 2,
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
