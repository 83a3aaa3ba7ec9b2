//! The MetaStore conformance suite, run against both backends.

use atoll_store::conformance::{run_all, TestDatabase};

#[tokio::test]
async fn sqlite_passes_the_conformance_suite() {
    let db = TestDatabase::sqlite().await.unwrap();
    run_all(&db.store).await.unwrap();
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn postgres_passes_the_conformance_suite() {
    let db = TestDatabase::postgres().await.unwrap();
    let outcome = run_all(&db.store).await;
    db.cleanup().await.unwrap();
    outcome.unwrap();
}
