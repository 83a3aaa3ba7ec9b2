//! The event store against its promises: durable appends, replay after a crash,
//! checkpoints, compaction, duplicates, privacy and retention, and pre-aggregates
//! that always equal a full scan.

use atoll_events::{day_of, EventRow, EventStore, EventStoreConfig, Subject, DAY_MS, EVENTS};
use datafusion::arrow::array::{AsArray, Int64Array};
use datafusion::arrow::datatypes::Int64Type;
use object_store::local::LocalFileSystem;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn config(dir: &Path) -> EventStoreConfig {
    std::fs::create_dir_all(dir.join("objects")).unwrap();
    let objects = LocalFileSystem::new_with_prefix(dir.join("objects")).unwrap();
    let mut config = EventStoreConfig::new(dir.join("wal"), Arc::new(objects));
    // Tests checkpoint explicitly.
    config.flush_interval = Duration::from_secs(3600);
    config.compact_min_segments = 3;
    config
}

fn row(uuid: u128, device: &str, time: i64) -> EventRow {
    EventRow {
        uuid,
        time,
        received: time,
        event_id: "tap".into(),
        device_id: device.into(),
        platform: Some("ios".into()),
        app_version: Some("1.0".into()),
        registered: true,
        ..EventRow::default()
    }
}

async fn count(store: &EventStore, app: &str, sql: &str) -> i64 {
    let context = store.session(app, i32::MIN..=i32::MAX).await.unwrap();
    let batches = context.sql(sql).await.unwrap().collect().await.unwrap();
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

/// Copies a folder tree: the state a `kill -9` would leave on disk at this moment.
fn snapshot(from: &Path, to: &Path) {
    for entry in walk(from) {
        let target = to.join(entry.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &target).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn acknowledged_rows_survive_a_crash_at_any_point_and_are_never_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(config(dir.path())).await.unwrap();
    let t = 20_000 * DAY_MS;
    store
        .append(
            "app",
            (0..100).map(|i| row(i, "d1", t + i as i64)).collect(),
        )
        .await
        .unwrap();
    store.flush().await.unwrap();
    store
        .append(
            "app",
            (100..150).map(|i| row(i, "d2", t + i as i64)).collect(),
        )
        .await
        .unwrap();
    // A crash now: segments hold 100 rows, the log 50.
    let crashed = tempfile::tempdir().unwrap();
    snapshot(dir.path(), crashed.path());
    let recovered = EventStore::open(config(crashed.path())).await.unwrap();
    assert_eq!(
        count(&recovered, "app", "SELECT COUNT(*) FROM events").await,
        150
    );
    assert_eq!(
        count(&recovered, "app", "SELECT COUNT(DISTINCT uuid) FROM events").await,
        150
    );
    // The replayed rows are flushed once, and a second recovery still counts 150.
    recovered.flush().await.unwrap();
    recovered.close().await.unwrap();
    let again = EventStore::open(config(crashed.path())).await.unwrap();
    assert_eq!(
        count(&again, "app", "SELECT COUNT(*) FROM events").await,
        150
    );
    // A retry of rows stored before the crash is recognised after it.
    let retry = again
        .append(
            "app",
            (140..160).map(|i| row(i, "d2", t + i as i64)).collect(),
        )
        .await
        .unwrap();
    assert_eq!((retry.accepted, retry.duplicates), (10, 10));
    assert_eq!(
        again.with_aggregates("app", |a| a.days[&day_of(t)].active_devices.len()),
        Some(2)
    );
}

#[tokio::test]
async fn a_torn_log_tail_loses_only_the_unacknowledged_frame() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(config(dir.path())).await.unwrap();
    let t = 20_000 * DAY_MS;
    store.append("app", vec![row(1, "d1", t)]).await.unwrap();
    store.append("app", vec![row(2, "d1", t)]).await.unwrap();
    let crashed = tempfile::tempdir().unwrap();
    snapshot(dir.path(), crashed.path());
    // Half a frame at the end of the newest log file, as a crash mid-write leaves it.
    let newest = walk(&crashed.path().join("wal")).into_iter().max().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&newest, bytes).unwrap();
    let recovered = EventStore::open(config(crashed.path())).await.unwrap();
    assert_eq!(
        count(&recovered, "app", "SELECT COUNT(*) FROM events").await,
        2
    );
}

#[tokio::test]
async fn compaction_merges_and_deduplicates_while_queries_see_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(config(dir.path())).await.unwrap();
    let t = 20_000 * DAY_MS;
    for round in 0..4u128 {
        store
            .append(
                "app",
                (0..10)
                    .map(|i| row(round * 10 + i, "d1", t + i as i64))
                    .collect(),
            )
            .await
            .unwrap();
        store.flush().await.unwrap();
    }
    let segments = store.snapshot("app", day_of(t)..=day_of(t)).segments.len();
    assert!(segments >= 3, "{segments} segments before compaction");
    store.compact().await.unwrap();
    assert_eq!(
        store.snapshot("app", day_of(t)..=day_of(t)).segments.len(),
        1
    );
    assert_eq!(
        count(&store, "app", "SELECT COUNT(*) FROM events").await,
        40
    );
    store.close().await.unwrap();
    let reopened = EventStore::open(config(dir.path())).await.unwrap();
    assert_eq!(
        count(&reopened, "app", "SELECT COUNT(*) FROM events").await,
        40
    );
}

#[tokio::test]
async fn privacy_deletion_and_retention_reach_segments_buffers_and_bitmaps() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(config(dir.path())).await.unwrap();
    let t = 20_000 * DAY_MS;
    store
        .append("app", vec![row(1, "keep", t), row(2, "gone", t)])
        .await
        .unwrap();
    store.flush().await.unwrap();
    store
        .append(
            "app",
            vec![row(3, "gone", t + 1), row(4, "keep", t - DAY_MS)],
        )
        .await
        .unwrap();
    let exported = store
        .export_subject("app", &Subject::Device("gone".into()))
        .await
        .unwrap();
    assert_eq!(exported.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    let deleted = store
        .delete_subject("app", &Subject::Device("gone".into()))
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    assert_eq!(
        count(
            &store,
            "app",
            "SELECT COUNT(*) FROM events WHERE device_id = 'gone'"
        )
        .await,
        0
    );
    assert_eq!(
        store.with_aggregates("app", |a| a.days[&day_of(t)].active_devices.len()),
        Some(1)
    );
    // Retention: the day before `t` goes, with its aggregates.
    store.drop_days_before("app", day_of(t)).await.unwrap();
    assert_eq!(count(&store, "app", "SELECT COUNT(*) FROM events").await, 1);
    assert_eq!(
        store.with_aggregates("app", |a| a.days.contains_key(&(day_of(t) - 1))),
        Some(false)
    );
    store.close().await.unwrap();
    let reopened = EventStore::open(config(dir.path())).await.unwrap();
    assert_eq!(
        count(&reopened, "app", "SELECT COUNT(*) FROM events").await,
        1
    );
    assert_eq!(
        reopened.with_aggregates("app", |a| a.days[&day_of(t)].active_devices.len()),
        Some(1)
    );
}

/// Per day: distinct devices and devices whose first event is that day, by scan.
async fn scanned(store: &EventStore) -> (BTreeMap<i64, i64>, BTreeMap<i64, i64>) {
    let context = store.session("app", i32::MIN..=i32::MAX).await.unwrap();
    let mut dau = BTreeMap::new();
    let mut fresh = BTreeMap::new();
    for (sql, into) in [
        ("SELECT CAST(time / 86400000 AS BIGINT), COUNT(DISTINCT device_id) FROM events GROUP BY 1", &mut dau),
        (
            "SELECT d, COUNT(*) FROM (SELECT device_id, MIN(CAST(time / 86400000 AS BIGINT)) AS d FROM events GROUP BY device_id) GROUP BY d",
            &mut fresh,
        ),
    ] {
        for batch in context.sql(sql).await.unwrap().collect().await.unwrap() {
            let days = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let counts = batch.column(1).as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                into.insert(days.value(i), counts.value(i));
            }
        }
    }
    (dau, fresh)
}

fn from_bitmaps(store: &EventStore) -> (BTreeMap<i64, i64>, BTreeMap<i64, i64>) {
    store
        .with_aggregates("app", |a| {
            let dau = a
                .days
                .iter()
                .filter(|(_, d)| !d.active_devices.is_empty())
                .map(|(day, d)| (i64::from(*day), d.active_devices.len() as i64))
                .collect();
            let fresh = a
                .days
                .iter()
                .filter(|(_, d)| !d.new_devices.is_empty())
                .map(|(day, d)| (i64::from(*day), d.new_devices.len() as i64))
                .collect();
            (dau, fresh)
        })
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Whatever order events arrive in (late ones included), across checkpoints
    /// and a reopen, the bitmaps' DAU and new devices equal a full scan.
    #[test]
    fn pre_aggregates_equal_a_full_scan(
        events in proptest::collection::vec((0u8..12, 0i64..5, 0i64..DAY_MS), 1..200),
        flush_after in proptest::collection::btree_set(0usize..200, 0..3),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = EventStore::open(config(dir.path())).await.unwrap();
            let base = 20_000 * DAY_MS;
            let flush_after: BTreeSet<usize> = flush_after;
            for (i, (device, day, offset)) in events.iter().enumerate() {
                let row = row(i as u128, &format!("d{device}"), base + day * DAY_MS + offset);
                store.append("app", vec![row]).await.unwrap();
                if flush_after.contains(&i) {
                    store.flush().await.unwrap();
                }
            }
            assert_eq!(from_bitmaps(&store), scanned(&store).await);
            store.close().await.unwrap();
            let reopened = EventStore::open(config(dir.path())).await.unwrap();
            assert_eq!(from_bitmaps(&reopened), scanned(&reopened).await);
            let total = events.len() as i64;
            assert_eq!(count(&reopened, "app", "SELECT COUNT(*) FROM events").await, total);
            reopened.close().await.unwrap();
        });
    }
}

#[tokio::test]
async fn queries_see_rows_as_soon_as_they_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(config(dir.path())).await.unwrap();
    let t = 20_000 * DAY_MS;
    let appended = store.append("app", vec![row(9, "d", t)]).await.unwrap();
    assert_eq!(appended.accepted, 1);
    let context = store.session("app", day_of(t)..=day_of(t)).await.unwrap();
    let rows: usize = context
        .table(EVENTS)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 1, "visible before any checkpoint");
}
