//! The sync log against an in-memory model: random sequences of appends
//! (with repeated idempotence keys and backlog thresholds), reads and cursor
//! saves on a real SQLite store must give exactly the model's answers.

use atoll_protocol::sync::DeliveryFilter;
use atoll_store::conformance::TestDatabase;
use atoll_store::MetaStore;
use atoll_sync::log::{Appended, CursorKey, NewDatum, SyncLog};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};

/// Streams of the test, each with its backlog threshold.
const STREAMS: [(&str, Option<u32>); 3] = [("u:alice", None), ("d:phone", Some(3)), ("g", Some(1))];

#[derive(Debug, Clone)]
enum Op {
    Append {
        stream: usize,
        key: u8,
    },
    Read {
        stream: usize,
        after: u64,
        limit: usize,
    },
    Ack {
        device: u8,
        stream: usize,
        acked: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..STREAMS.len(), 0u8..10).prop_map(|(stream, key)| Op::Append { stream, key }),
        2 => (0..STREAMS.len(), 0u64..12, 1usize..6).prop_map(|(stream, after, limit)| Op::Read { stream, after, limit }),
        1 => (0u8..2, 0..STREAMS.len(), 0u64..12).prop_map(|(device, stream, acked)| Op::Ack { device, stream, acked }),
    ]
}

#[derive(Debug, Default)]
struct StreamModel {
    head: u64,
    floor: u64,
    /// seq → third msg id.
    data: BTreeMap<u64, String>,
}

#[derive(Debug, Default)]
struct Model {
    streams: HashMap<usize, StreamModel>,
    /// (stream, third msg id) → (msg id, seq).
    keys: HashMap<(usize, String), (String, u64)>,
    cursors: HashMap<(u8, usize), u64>,
}

async fn with_workspace(database: TestDatabase) -> TestDatabase {
    sqlx::query("INSERT INTO workspaces (id, slug, name, created_at) VALUES ('ws_1', 'w', 'W', 0)")
        .execute(database.store.pool())
        .await
        .unwrap();
    database
}

async fn run_case(store: &MetaStore, case: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let app_id = format!("app_{case}");
    sqlx::query(
        "INSERT INTO apps (id, workspace_id, app_key, name, platforms, secret, secret_rotated_at, created_at) \
         VALUES ($1, 'ws_1', $1, 'A', '[]', 's', 0, 0)",
    )
    .bind(&app_id)
    .execute(store.pool())
    .await
    .unwrap();
    let log = SyncLog::new(store.clone());
    let mut model = Model::default();
    let filter = DeliveryFilter::default();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Append { stream, key } => {
                let (name, keep) = STREAMS[*stream];
                let third = format!("k{key}");
                let msg_id = format!("m{step}");
                let appended = log
                    .append(&NewDatum {
                        app_id: &app_id,
                        biz_type: "B",
                        stream: name,
                        link_token: name,
                        third_msg_id: &third,
                        msg_id: &msg_id,
                        payload: "p",
                        filter: Some(&filter),
                        created_at: 1,
                        expires_at: i64::MAX,
                        keep_newest: keep,
                    })
                    .await
                    .unwrap();
                match model.keys.get(&(*stream, third.clone())) {
                    Some((first_id, first_seq)) => prop_assert_eq!(
                        appended,
                        Appended::Duplicate {
                            msg_id: first_id.clone(),
                            stream: name.to_owned(),
                            seq: *first_seq
                        }
                    ),
                    None => {
                        let state = model.streams.entry(*stream).or_default();
                        state.head += 1;
                        if state.floor == 0 {
                            state.floor = 1;
                        }
                        let seq = state.head;
                        state.data.insert(seq, third.clone());
                        let mut trimmed = 0;
                        if let Some(keep) = keep {
                            let new_floor = seq.saturating_sub(u64::from(keep)) + 1;
                            if new_floor > state.floor {
                                state.floor = new_floor;
                            }
                            let before = state.data.len();
                            state.data.retain(|kept, _| *kept >= new_floor);
                            trimmed = (before - state.data.len()) as u64;
                        }
                        prop_assert_eq!(appended, Appended::New { seq, trimmed });
                        model.keys.insert((*stream, third), (msg_id, seq));
                    }
                }
            }
            Op::Read {
                stream,
                after,
                limit,
            } => {
                let (name, _) = STREAMS[*stream];
                let got: Vec<(u64, String)> = log
                    .read(&app_id, "B", name, *after, *limit, 0)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|datum| (datum.seq, datum.third_msg_id))
                    .collect();
                let want: Vec<(u64, String)> = model
                    .streams
                    .get(stream)
                    .map(|state| {
                        state
                            .data
                            .range(after + 1..)
                            .take(*limit)
                            .map(|(seq, third)| (*seq, third.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                prop_assert_eq!(got, want);
                let bounds = log.bounds(&app_id, "B", name).await.unwrap();
                let state = model.streams.get(stream);
                prop_assert_eq!(bounds.head, state.map_or(0, |s| s.head));
                prop_assert_eq!(bounds.floor, state.map_or(0, |s| s.floor));
            }
            Op::Ack {
                device,
                stream,
                acked,
            } => {
                let (name, _) = STREAMS[*stream];
                let key = CursorKey {
                    app_id: app_id.as_str().into(),
                    device_id: format!("dev{device}").into(),
                    biz_type: "B".into(),
                    stream: name.into(),
                };
                log.save_cursors(&[(key, *acked, 1)], 0).await.unwrap();
                let cursor = model.cursors.entry((*device, *stream)).or_insert(0);
                *cursor = (*cursor).max(*acked);
                let stored = log
                    .cursor(&app_id, &format!("dev{device}"), "B", name)
                    .await
                    .unwrap()
                    .map(|(acked, _)| acked);
                prop_assert_eq!(stored, Some(*cursor), "a cursor never moves back");
            }
        }
    }
    Ok(())
}

fn check_against_the_model(open: impl std::future::Future<Output = TestDatabase>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let database = runtime.block_on(async { with_workspace(open.await).await });
    let case = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in proptest::collection::vec(op(), 1..40))| {
        let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        runtime.block_on(run_case(&database.store, case, &ops))?;
    });
    runtime.block_on(database.cleanup()).unwrap();
}

#[test]
fn sync_log_matches_the_model_on_sqlite() {
    check_against_the_model(async { TestDatabase::sqlite().await.unwrap() });
}

#[test]
fn sync_log_matches_the_model_on_postgres() {
    check_against_the_model(async { TestDatabase::postgres().await.unwrap() });
}
