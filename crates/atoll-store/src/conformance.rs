//! The conformance suite every [`MetaStore`] backend must pass.
//!
//! It checks what the modules rely on: migrations are idempotent, the portable SQL
//! subset behaves the same (parameters, `ON CONFLICT`, `RETURNING`, 64-bit integers,
//! NULLs, Unicode), unique violations are recognisable, rolled-back transactions
//! leave nothing behind, and concurrent writers neither fail nor lose updates.
//! Module crates run their own store tests on both backends with [`TestDatabase`].

use crate::{Backend, MetaStore, MetaStoreOptions, Result};
use sqlx::Row;

/// Runs every check of the suite against `store`.
pub async fn run_all(store: &MetaStore) -> Result<()> {
    migrations_are_idempotent(store).await?;
    round_trips_portable_types(store).await?;
    detects_unique_violations(store).await?;
    rollback_leaves_nothing(store).await?;
    concurrent_writers_do_not_lose_updates(store).await?;
    identity_ids_increase(store).await?;
    durability_is_configured(store).await?;
    concurrent_commits_share_fsyncs(store).await?;
    Ok(())
}

/// On SQLite, commits that wait at the same time are covered by shared fsyncs.
async fn concurrent_commits_share_fsyncs(store: &MetaStore) -> Result<()> {
    if store.backend() != Backend::Sqlite {
        return Ok(());
    }
    let before = store.wal_syncs();
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for index in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = store.begin_write().await?;
            sqlx::query("INSERT INTO kv (key, value, updated_at) VALUES ($1, $2, $3)")
                .bind(format!("conformance.group.{index}"))
                .bind("x")
                .bind(1_i64)
                .execute(&mut **tx)
                .await?;
            tx.commit().await
        }));
    }
    for task in tasks {
        task.await.expect("writer task panicked")?;
    }
    let syncs = store.wal_syncs() - before;
    let per_commit = started.elapsed() / 64;
    assert!(syncs >= 1, "commits must be synced");
    // Grouping happens when commits queue up behind a running fsync. Where an
    // fsync is nearly free (a RAM-backed folder), every commit may finish
    // before the next one arrives and one sync each is the right outcome; a
    // real disk takes far longer per sync than a commit takes to queue.
    assert!(
        syncs < 64 || per_commit < std::time::Duration::from_micros(300),
        "64 concurrent commits took {syncs} fsyncs ({per_commit:?} each): no grouping"
    );
    Ok(())
}

async fn migrations_are_idempotent(store: &MetaStore) -> Result<()> {
    store.migrate().await?;
    store.migrate().await?;
    store.ping().await
}

async fn round_trips_portable_types(store: &MetaStore) -> Result<()> {
    let text = "héllo · 你好 · 🌴";
    sqlx::query("INSERT INTO kv (key, value, updated_at) VALUES ($1, $2, $3)")
        .bind("conformance.types")
        .bind(text)
        .bind(i64::MAX)
        .execute(store.pool())
        .await?;
    let row = sqlx::query("SELECT value, updated_at FROM kv WHERE key = $1")
        .bind("conformance.types")
        .fetch_one(store.pool())
        .await?;
    assert_eq!(row.try_get::<String, _>(0)?, text);
    assert_eq!(row.try_get::<i64, _>(1)?, i64::MAX);

    let upserted = sqlx::query(
        "INSERT INTO kv (key, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at \
         RETURNING value",
    )
    .bind("conformance.types")
    .bind("second")
    .bind(-1_i64)
    .fetch_one(store.pool())
    .await?;
    assert_eq!(upserted.try_get::<String, _>(0)?, "second");

    let missing: Option<i64> = sqlx::query("SELECT expires_at FROM api_tokens WHERE id = $1")
        .bind("none")
        .fetch_optional(store.pool())
        .await?
        .map(|row| row.try_get::<Option<i64>, _>(0))
        .transpose()?
        .flatten();
    assert_eq!(missing, None);
    Ok(())
}

async fn detects_unique_violations(store: &MetaStore) -> Result<()> {
    let insert = || {
        sqlx::query("INSERT INTO workspaces (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(format!("ws_conf_{}", uuid::Uuid::new_v4().simple()))
            .bind("conformance-unique")
            .bind("Conformance")
            .bind(1_i64)
    };
    insert().execute(store.pool()).await?;
    let duplicate = insert()
        .execute(store.pool())
        .await
        .map_err(crate::Error::from)
        .expect_err("a duplicate slug must be refused");
    assert!(duplicate.is_unique_violation(), "{duplicate}");
    Ok(())
}

async fn rollback_leaves_nothing(store: &MetaStore) -> Result<()> {
    {
        let mut tx = store.begin_write().await?;
        sqlx::query("INSERT INTO kv (key, value, updated_at) VALUES ($1, $2, $3)")
            .bind("conformance.rollback")
            .bind("x")
            .bind(1_i64)
            .execute(&mut **tx)
            .await?;
        // Dropped without commit.
    }
    let found = sqlx::query("SELECT 1 FROM kv WHERE key = $1")
        .bind("conformance.rollback")
        .fetch_optional(store.pool())
        .await?;
    assert!(found.is_none(), "a dropped transaction must roll back");
    Ok(())
}

async fn concurrent_writers_do_not_lose_updates(store: &MetaStore) -> Result<()> {
    sqlx::query("INSERT INTO kv (key, value, updated_at) VALUES ($1, $2, $3)")
        .bind("conformance.counter")
        .bind("0")
        .bind(0_i64)
        .execute(store.pool())
        .await?;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                // Read-modify-write: the classic lost-update pattern.
                let mut tx = store.begin_write().await?;
                let select = format!(
                    "SELECT updated_at FROM kv WHERE key = $1{}",
                    store.lock_rows_clause()
                );
                let current: i64 = sqlx::query(&select)
                    .bind("conformance.counter")
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get(0)?;
                sqlx::query("UPDATE kv SET updated_at = $1 WHERE key = $2")
                    .bind(current + 1)
                    .bind("conformance.counter")
                    .execute(&mut **tx)
                    .await?;
                tx.commit().await?;
            }
            Ok::<_, crate::Error>(())
        }));
    }
    for task in tasks {
        task.await.expect("writer task panicked")?;
    }
    let total: i64 = sqlx::query("SELECT updated_at FROM kv WHERE key = $1")
        .bind("conformance.counter")
        .fetch_one(store.pool())
        .await?
        .try_get(0)?;
    assert_eq!(total, 80, "concurrent writers lost updates");
    Ok(())
}

async fn identity_ids_increase(store: &MetaStore) -> Result<()> {
    let mut previous = 0_i64;
    for index in 0..3_i64 {
        let id: i64 = sqlx::query(
            "INSERT INTO audit_log (workspace_id, at, actor, action, object_type, object_id, summary) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(Option::<String>::None)
        .bind(index)
        .bind("system")
        .bind("conformance.check")
        .bind("test")
        .bind("1")
        .bind("{}")
        .fetch_one(store.pool())
        .await?
        .try_get(0)?;
        assert!(id > previous, "identity ids must increase");
        previous = id;
    }
    Ok(())
}

async fn durability_is_configured(store: &MetaStore) -> Result<()> {
    match (store.backend(), store.durability().await?) {
        (Backend::Sqlite, Some(found)) => {
            assert_eq!(found.journal_mode, "wal");
            assert_eq!(
                found.synchronous, 1,
                "commits are synced by the group syncer"
            );
            assert!(found.foreign_keys);
        }
        (Backend::Postgres, None) => {}
        (backend, found) => panic!("unexpected durability report {found:?} for {backend:?}"),
    }
    Ok(())
}

/// A throwaway database for tests: a temporary SQLite file, or a fresh PostgreSQL
/// database created on the server named by `ATOLL_TEST_POSTGRES_URL` (default: the
/// local server's `test` database) and dropped by [`TestDatabase::cleanup`].
#[derive(Debug)]
pub struct TestDatabase {
    /// The store, migrated.
    pub store: MetaStore,
    /// The database URL (for starting a server on the same database).
    pub url: String,
    admin_url: Option<String>,
    name: String,
    _dir: Option<tempfile_dir::TempDir>,
}

mod tempfile_dir {
    /// A folder removed on drop (kept tiny to avoid a dependency for one use).
    #[derive(Debug)]
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The PostgreSQL server tests use.
pub fn test_postgres_url() -> String {
    std::env::var("ATOLL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

impl TestDatabase {
    /// A fresh SQLite store in a temporary folder.
    pub async fn sqlite() -> Result<TestDatabase> {
        let dir =
            std::env::temp_dir().join(format!("atoll-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)
            .map_err(|error| crate::Error::Durability(error.to_string()))?;
        let url = MetaStore::sqlite_url_for(&dir.join("meta.db"));
        let store = MetaStore::open(&url, &MetaStoreOptions::default()).await?;
        Ok(TestDatabase {
            store,
            url,
            admin_url: None,
            name: String::new(),
            _dir: Some(tempfile_dir::TempDir(dir)),
        })
    }

    /// A fresh PostgreSQL database.
    pub async fn postgres() -> Result<TestDatabase> {
        sqlx::any::install_default_drivers();
        let admin_url = test_postgres_url();
        let name = format!("atoll_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::AnyPool::connect(&admin_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        admin.close().await;
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => return Err(crate::Error::UnsupportedUrl(admin_url)),
        };
        let options = MetaStoreOptions {
            max_connections: 8,
            ..MetaStoreOptions::default()
        };
        let store = MetaStore::open(&url, &options).await?;
        Ok(TestDatabase {
            store,
            url,
            admin_url: Some(admin_url),
            name,
            _dir: None,
        })
    }

    /// Closes the store and drops the PostgreSQL database.
    pub async fn cleanup(self) -> Result<()> {
        self.store.close().await;
        if let Some(admin_url) = &self.admin_url {
            let admin = sqlx::AnyPool::connect(admin_url).await?;
            sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&admin)
            .await?;
            admin.close().await;
        }
        Ok(())
    }
}
