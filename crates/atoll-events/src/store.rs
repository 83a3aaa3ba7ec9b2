//! `EventStore`: the writer thread (group commit), the tables queries read, and
//! checkpoints (log → Parquet + aggregates + manifest).

use crate::aggregates::AppAggregates;
use crate::dedup::RecentUuids;
use crate::persist::{self, AppManifest, Manifest, Objects, Segment};
use crate::row::{col, day_of, to_record_batch, Day, EventRow, Ordinals};
use crate::wal::{self, Wal};
use crate::Error;
use datafusion::arrow::array::{Array, FixedSizeBinaryArray};
use datafusion::arrow::record_batch::RecordBatch;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};

/// How the store is set up.
#[derive(Clone)]
pub struct EventStoreConfig {
    /// The local folder of the write-ahead log.
    pub wal_dir: PathBuf,
    /// Where segments, aggregates and the manifest live (a folder or S3).
    pub objects: Objects,
    /// Checkpoint at least this often when there is new data.
    pub flush_interval: Duration,
    /// Checkpoint early once this many rows are buffered.
    pub flush_rows: usize,
    /// Refuse appends (503) while this many rows wait for a checkpoint.
    pub max_unflushed_rows: usize,
    /// How many recent uuids the duplicate filter remembers.
    pub dedup_capacity: usize,
    /// Compact a day of an app once it has this many small segments (four times
    /// as many while ingest keeps the buffer full).
    pub compact_min_segments: usize,
    /// Appends waiting for the writer before new ones are refused (503).
    pub queue_capacity: usize,
    /// Threads a query may use.
    pub query_threads: usize,
}

impl EventStoreConfig {
    /// Defaults for a store with its log in `wal_dir` and objects in `objects`.
    pub fn new(wal_dir: PathBuf, objects: Objects) -> EventStoreConfig {
        EventStoreConfig {
            wal_dir,
            objects,
            flush_interval: Duration::from_secs(10),
            flush_rows: 250_000,
            max_unflushed_rows: 4_000_000,
            dedup_capacity: 2_000_000,
            compact_min_segments: 8,
            queue_capacity: 4096,
            query_threads: 2,
        }
    }
}

impl std::fmt::Debug for EventStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStoreConfig")
            .field("wal_dir", &self.wal_dir)
            .field("objects", &self.objects.to_string())
            .field("flush_interval", &self.flush_interval)
            .finish_non_exhaustive()
    }
}

/// The result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// Rows stored.
    pub accepted: u32,
    /// Rows whose uuid was seen recently; not stored again.
    pub duplicates: u32,
}

/// One app's data as queries see it.
#[derive(Debug, Default)]
pub(crate) struct AppTables {
    /// Acknowledged rows not yet in a checkpoint, by day.
    pub live: BTreeMap<Day, Vec<RecordBatch>>,
    /// Rows of the checkpoint in progress.
    pub frozen: BTreeMap<Day, Vec<RecordBatch>>,
    /// Persisted segments by day.
    pub segments: BTreeMap<Day, Vec<Segment>>,
    /// Pre-aggregates.
    pub aggregates: AppAggregates,
    /// Changes per day, for cache invalidation.
    pub versions: BTreeMap<Day, u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub apps: HashMap<Arc<str>, AppTables>,
    pub unflushed_rows: usize,
}

/// What a checkpoint writes.
#[derive(Debug, Default)]
struct FlushJob {
    wal_through: u64,
    parts: Vec<(Arc<str>, Day, Vec<RecordBatch>)>,
    chunks: Vec<(Arc<str>, &'static str, usize, Vec<String>)>,
    aggregates: Vec<(Arc<str>, Day, Vec<u8>)>,
}

impl FlushJob {
    fn is_empty(&self) -> bool {
        self.parts.is_empty() && self.chunks.is_empty() && self.aggregates.is_empty()
    }
}

enum Command {
    Append {
        app: Arc<str>,
        rows: Vec<EventRow>,
        reply: oneshot::Sender<Result<Appended, Error>>,
    },
    Rotate {
        reply: oneshot::Sender<Result<FlushJob, Error>>,
    },
}

/// The log record: one append of one app.
#[derive(Serialize, Deserialize)]
struct WalRecord<'a> {
    #[serde(borrow)]
    app: &'a str,
    rows: Vec<EventRow>,
}

pub(crate) struct Inner {
    pub config: EventStoreConfig,
    pub tables: RwLock<Tables>,
    commands: Mutex<Option<SyncSender<Command>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Serialises checkpoints, compactions, deletions and retention.
    maintenance: tokio::sync::Mutex<Manifest>,
    flush_wanted: Arc<Notify>,
    /// Objects replaced by a checkpoint, deleted once no query can still read them.
    graveyard: Mutex<Vec<(Instant, String)>>,
    pub stats: Stats,
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Rows stored.
    pub rows_accepted: AtomicU64,
    /// Rows refused as duplicates.
    pub rows_duplicate: AtomicU64,
    /// Log groups synced.
    pub wal_syncs: AtomicU64,
    /// Checkpoints completed.
    pub checkpoints: AtomicU64,
    /// Segments written by compaction.
    pub compactions: AtomicU64,
}

/// How long a replaced object stays readable for queries already running.
const GRAVE_TIME: Duration = Duration::from_secs(120);

/// The event store. Cheap to clone.
#[derive(Clone)]
pub struct EventStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl EventStore {
    /// Opens the store: loads the manifest and the aggregates it names, removes
    /// leftovers of a crashed checkpoint, replays the log, and starts the writer
    /// and the checkpoint loop (on the current tokio runtime).
    pub async fn open(config: EventStoreConfig) -> Result<EventStore, Error> {
        let objects = config.objects.clone();
        let manifest: Manifest = match persist::read_object(&*objects, persist::MANIFEST).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt(format!("manifest: {e}")))?,
            None => Manifest {
                version: 1,
                ..Manifest::default()
            },
        };
        let mut tables = Tables::default();
        for (app, entry) in &manifest.apps {
            let mut app_tables = AppTables {
                segments: entry.segments.clone(),
                ..AppTables::default()
            };
            load_aggregates(&*objects, entry, &mut app_tables.aggregates).await?;
            tables.apps.insert(Arc::from(app.as_str()), app_tables);
        }
        remove_orphans(&*objects, &manifest).await?;

        std::fs::create_dir_all(&config.wal_dir)?;
        let mut dedup = RecentUuids::new(config.dedup_capacity);
        warm_dedup(&*objects, &manifest, &mut dedup).await?;
        let mut highest = manifest.wal_through;
        let mut replayed = 0usize;
        for file in wal::list(&config.wal_dir)? {
            highest = highest.max(file.seq);
            if file.seq <= manifest.wal_through {
                std::fs::remove_file(&file.path)?;
                continue;
            }
            for frame in wal::read_frames(&file.path)? {
                let record: WalRecord = postcard::from_bytes(&frame)
                    .map_err(|e| Error::Corrupt(format!("log {}: {e}", file.path.display())))?;
                let app: Arc<str> = Arc::from(record.app);
                for row in &record.rows {
                    dedup.insert(row.uuid);
                }
                replayed += record.rows.len();
                apply(&mut tables, &app, &record.rows);
            }
        }
        if replayed > 0 {
            tracing::info!(rows = replayed, "replayed the event log");
        }
        tracing::debug!(uuids = dedup.len(), "duplicate filter warmed");
        let wal = Wal::create(&config.wal_dir, highest)?;
        let (sender, receiver) = sync_channel(config.queue_capacity);
        let inner = Arc::new(Inner {
            config,
            tables: RwLock::new(tables),
            commands: Mutex::new(Some(sender)),
            writer: Mutex::new(None),
            maintenance: tokio::sync::Mutex::new(manifest),
            flush_wanted: Arc::new(Notify::new()),
            graveyard: Mutex::new(Vec::new()),
            stats: Stats::default(),
        });
        let writer_inner = inner.clone();
        let handle = std::thread::Builder::new()
            .name("atoll-events-wal".into())
            .spawn(move || run_writer(writer_inner, wal, receiver, dedup))?;
        *inner.writer.lock() = Some(handle);
        let store = EventStore { inner };
        tokio::spawn(checkpoint_loop(
            Arc::downgrade(&store.inner),
            store.inner.flush_wanted.clone(),
            store.inner.config.flush_interval,
        ));
        Ok(store)
    }

    /// Stores rows of one app durably: returns once they are in the log on disk
    /// and visible to queries. Rows whose uuid was seen recently are skipped.
    pub async fn append(&self, app: &str, rows: Vec<EventRow>) -> Result<Appended, Error> {
        if self.inner.tables.read().unflushed_rows >= self.inner.config.max_unflushed_rows {
            self.inner.flush_wanted.notify_one();
            return Err(Error::Overloaded("the event buffer is full"));
        }
        let (reply, answer) = oneshot::channel();
        let command = Command::Append {
            app: Arc::from(app),
            rows,
            reply,
        };
        self.send(command)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        let guard = self.inner.commands.lock();
        let sender = guard.as_ref().ok_or(Error::Closed)?;
        match sender.try_send(command) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::Overloaded("the event log queue is full")),
            Err(TrySendError::Disconnected(_)) => Err(Error::Closed),
        }
    }

    /// Writes everything acknowledged so far into segments now.
    pub async fn flush(&self) -> Result<(), Error> {
        let mut manifest = self.inner.maintenance.lock().await;
        self.checkpoint(&mut manifest).await
    }

    /// Flushes, stops the writer, and waits for it. Appends after this fail.
    pub async fn close(&self) -> Result<(), Error> {
        self.flush().await?;
        self.inner.commands.lock().take();
        let handle = self.inner.writer.lock().take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| Error::Corrupt(format!("writer join: {e}")))?
                .map_err(|_| Error::Corrupt("the log writer panicked".into()))?;
        }
        Ok(())
    }

    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Reads an app's pre-aggregates; `None` when the app has no events.
    pub fn with_aggregates<R>(
        &self,
        app: &str,
        read: impl FnOnce(&AppAggregates) -> R,
    ) -> Option<R> {
        let tables = self.inner.tables.read();
        tables.apps.get(app).map(|t| read(&t.aggregates))
    }

    /// A number that changes whenever data of the app in `days` changes.
    pub fn version(&self, app: &str, days: std::ops::RangeInclusive<Day>) -> u64 {
        let tables = self.inner.tables.read();
        tables.apps.get(app).map_or(0, |t| {
            t.versions.range(days).fold(0u64, |acc, (day, v)| {
                acc.wrapping_mul(31).wrapping_add(*v ^ (*day as u64))
            })
        })
    }

    /// Rows waiting for a checkpoint.
    pub fn unflushed_rows(&self) -> usize {
        self.inner.tables.read().unflushed_rows
    }

    pub(crate) async fn checkpoint(&self, manifest: &mut Manifest) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        // Rotation must not be refused for a full queue: wait for room.
        let sender = self.inner.commands.lock().clone().ok_or(Error::Closed)?;
        tokio::task::spawn_blocking(move || sender.send(Command::Rotate { reply }))
            .await
            .map_err(|_| Error::Closed)?
            .map_err(|_| Error::Closed)?;
        let job = answer.await.map_err(|_| Error::Closed)??;
        let outcome = self.persist_job(manifest, &job).await;
        if outcome.is_err() {
            self.restore_unpersisted(&job);
        }
        outcome
    }

    /// After a failed checkpoint: the job's dictionary entries and days must be
    /// written again by the next one.
    fn restore_unpersisted(&self, job: &FlushJob) {
        let mut tables = self.inner.tables.write();
        for (app, kind, start, _) in &job.chunks {
            if let Some(app) = tables.apps.get_mut(app) {
                let dictionary = if *kind == "devices" {
                    &mut app.aggregates.devices
                } else {
                    &mut app.aggregates.users
                };
                dictionary.unpersist_from(*start);
            }
        }
        for (app, day, _) in &job.aggregates {
            if let Some(app) = tables.apps.get_mut(app) {
                app.aggregates.dirty.insert(*day);
            }
        }
    }

    /// Writes a job's objects, commits the manifest, then publishes the segments
    /// and deletes the covered log files. On failure the rows stay frozen in memory
    /// and in the log; the next checkpoint writes them again.
    async fn persist_job(&self, manifest: &mut Manifest, job: &FlushJob) -> Result<(), Error> {
        let objects = self.inner.config.objects.clone();
        if job.is_empty() {
            wal::Wal::remove_through(&self.inner.config.wal_dir, job.wal_through)?;
            return Ok(());
        }
        let generation = manifest.generation + 1;
        let mut next = manifest.clone();
        next.generation = generation;
        next.wal_through = job.wal_through;
        let mut published: Vec<(Arc<str>, Day, Segment)> = Vec::new();
        let mut replaced = Vec::new();
        for (part, (app, day, batches)) in job.parts.iter().enumerate() {
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            if rows == 0 {
                continue;
            }
            let batches = batches.clone();
            let bytes = tokio::task::spawn_blocking(move || {
                persist::encode_parquet(&batches, persist::Packing::Fast)
            })
            .await
            .map_err(|e| Error::Corrupt(format!("encode task: {e}")))??;
            let path = persist::segment_path(app, *day, generation, part);
            let segment = Segment {
                path: path.clone(),
                rows: rows as u64,
                bytes: bytes.len() as u64,
            };
            persist::write_object(&*objects, &path, bytes).await?;
            next.apps
                .entry(app.to_string())
                .or_default()
                .segments
                .entry(*day)
                .or_default()
                .push(segment.clone());
            published.push((app.clone(), *day, segment));
        }
        for (app, kind, start, ids) in &job.chunks {
            let path = persist::chunk_path(app, kind, *start);
            let bytes = postcard::to_stdvec(ids).map_err(|e| Error::Corrupt(e.to_string()))?;
            persist::write_object(&*objects, &path, bytes).await?;
            let entry = next.apps.entry(app.to_string()).or_default();
            let chunks = if *kind == "devices" {
                &mut entry.device_chunks
            } else {
                &mut entry.user_chunks
            };
            if !chunks.contains(&path) {
                chunks.push(path);
            }
        }
        for (app, day, bytes) in &job.aggregates {
            let path = persist::aggregate_path(app, *day, generation);
            persist::write_object(&*objects, &path, bytes.clone()).await?;
            let entry = next.apps.entry(app.to_string()).or_default();
            if let Some(old) = entry.aggregates.insert(*day, path) {
                replaced.push(old);
            }
        }
        let bytes = serde_json::to_vec(&next).map_err(|e| Error::Corrupt(e.to_string()))?;
        persist::write_object(&*objects, persist::MANIFEST, bytes).await?;
        *manifest = next;
        {
            let mut tables = self.inner.tables.write();
            let mut frozen_rows = 0usize;
            for app in tables.apps.values_mut() {
                frozen_rows += app
                    .frozen
                    .values()
                    .flatten()
                    .map(RecordBatch::num_rows)
                    .sum::<usize>();
                app.frozen.clear();
            }
            tables.unflushed_rows = tables.unflushed_rows.saturating_sub(frozen_rows);
            for (app, day, segment) in published {
                tables
                    .apps
                    .entry(app)
                    .or_default()
                    .segments
                    .entry(day)
                    .or_default()
                    .push(segment);
            }
        }
        wal::Wal::remove_through(&self.inner.config.wal_dir, job.wal_through)?;
        self.bury(replaced);
        self.inner.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn bury(&self, names: Vec<String>) {
        let now = Instant::now();
        self.inner
            .graveyard
            .lock()
            .extend(names.into_iter().map(|name| (now, name)));
    }

    async fn empty_graveyard(&self, force: bool) {
        let due: Vec<String> = {
            let mut graves = self.inner.graveyard.lock();
            let (due, keep): (Vec<_>, Vec<_>) = graves
                .drain(..)
                .partition(|(at, _)| force || at.elapsed() >= GRAVE_TIME);
            *graves = keep;
            due.into_iter().map(|(_, name)| name).collect()
        };
        for name in due {
            if let Err(error) = persist::delete_object(&*self.inner.config.objects, &name).await {
                tracing::warn!(%error, object = name, "could not delete a replaced event object");
            }
        }
    }

    pub(crate) async fn maintenance(&self) -> tokio::sync::MutexGuard<'_, Manifest> {
        self.inner.maintenance.lock().await
    }
}

async fn load_aggregates(
    objects: &dyn object_store::ObjectStore,
    entry: &AppManifest,
    aggregates: &mut AppAggregates,
) -> Result<(), Error> {
    for (chunks, dictionary) in [
        (&entry.device_chunks, &mut aggregates.devices),
        (&entry.user_chunks, &mut aggregates.users),
    ] {
        for name in chunks {
            let bytes = persist::read_object(objects, name)
                .await?
                .ok_or_else(|| Error::Corrupt(format!("missing dictionary chunk {name}")))?;
            let ids: Vec<String> =
                postcard::from_bytes(&bytes).map_err(|e| Error::Corrupt(format!("{name}: {e}")))?;
            let start = name
                .rsplit('-')
                .next()
                .and_then(|s| s.trim_end_matches(".bin").parse::<usize>().ok())
                .ok_or_else(|| Error::Corrupt(format!("bad chunk name {name}")))?;
            dictionary.load_chunk(start, ids).map_err(Error::Corrupt)?;
        }
    }
    for (day, name) in &entry.aggregates {
        let bytes = persist::read_object(objects, name)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("missing aggregate {name}")))?;
        let aggregate =
            postcard::from_bytes(&bytes).map_err(|e| Error::Corrupt(format!("{name}: {e}")))?;
        aggregates.days.insert(*day, aggregate);
    }
    aggregates.rebuild_first_days();
    Ok(())
}

/// Deletes objects under the store's prefixes that the manifest does not name.
async fn remove_orphans(
    objects: &dyn object_store::ObjectStore,
    manifest: &Manifest,
) -> Result<(), Error> {
    let named = manifest.objects();
    for prefix in ["segments", "agg", "dict"] {
        for name in persist::list_objects(objects, prefix).await? {
            if !named.contains(&name) {
                tracing::info!(
                    object = name,
                    "removing an event object left by an unfinished checkpoint"
                );
                persist::delete_object(objects, &name).await?;
            }
        }
    }
    Ok(())
}

/// Fills the duplicate filter with the uuids of the two newest days of every app,
/// so a retry that straddles a restart is still recognised.
async fn warm_dedup(
    objects: &dyn object_store::ObjectStore,
    manifest: &Manifest,
    dedup: &mut RecentUuids,
) -> Result<(), Error> {
    for entry in manifest.apps.values() {
        for segments in entry.segments.values().rev().take(2) {
            for segment in segments {
                let Some(bytes) = persist::read_object(objects, &segment.path).await? else {
                    continue;
                };
                for batch in persist::decode_parquet(bytes, Some(&[col::UUID]))? {
                    let uuids = batch
                        .column(0)
                        .as_any()
                        .downcast_ref::<FixedSizeBinaryArray>()
                        .ok_or_else(|| Error::Corrupt("uuid column type".into()))?;
                    for i in 0..uuids.len() {
                        let bytes: [u8; 16] = uuids.value(i).try_into().expect("16 bytes");
                        dedup.insert(u128::from_be_bytes(bytes));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Adds rows to an app's tables and aggregates (the writer after the sync, and
/// the replay at start).
fn apply(tables: &mut Tables, app: &Arc<str>, rows: &[EventRow]) {
    if rows.is_empty() {
        return;
    }
    let app_tables = tables.apps.entry(app.clone()).or_default();
    let mut by_day: BTreeMap<Day, (Vec<&EventRow>, Vec<Ordinals>)> = BTreeMap::new();
    for row in rows {
        let day = day_of(row.time);
        let ordinals = app_tables.aggregates.add(row, day);
        let entry = by_day.entry(day).or_default();
        entry.0.push(row);
        entry.1.push(ordinals);
    }
    for (day, (rows, ordinals)) in by_day {
        app_tables
            .live
            .entry(day)
            .or_default()
            .push(to_record_batch(&rows, &ordinals));
        *app_tables.versions.entry(day).or_default() += 1;
    }
    tables.unflushed_rows += rows.len();
}

/// The writer thread: takes every waiting command, writes the appends' frames with
/// one sync, applies them, then answers; rotations are handled in queue order so a
/// checkpoint covers exactly what was acknowledged before it.
fn run_writer(
    inner: Arc<Inner>,
    mut wal: Wal,
    commands: Receiver<Command>,
    mut dedup: RecentUuids,
) {
    let mut pending: Vec<Command> = Vec::new();
    while let Ok(first) = commands.recv() {
        pending.push(first);
        while pending.len() < 1024 {
            match commands.try_recv() {
                Ok(command) => pending.push(command),
                Err(_) => break,
            }
        }
        let mut group = Vec::new();
        for command in pending.drain(..) {
            match command {
                Command::Append { app, rows, reply } => group.push((app, rows, reply)),
                Command::Rotate { reply } => {
                    commit_group(&inner, &mut wal, &mut dedup, std::mem::take(&mut group));
                    let _ = reply.send(rotate(&inner, &mut wal));
                }
            }
        }
        commit_group(&inner, &mut wal, &mut dedup, group);
    }
}

type Group = Vec<(
    Arc<str>,
    Vec<EventRow>,
    oneshot::Sender<Result<Appended, Error>>,
)>;

fn commit_group(inner: &Inner, wal: &mut Wal, dedup: &mut RecentUuids, group: Group) {
    if group.is_empty() {
        return;
    }
    let mut frames = Vec::new();
    let mut staged = Vec::with_capacity(group.len());
    for (app, rows, reply) in group {
        let before = rows.len();
        let mut seen_here = Vec::new();
        let kept: Vec<EventRow> = rows
            .into_iter()
            .filter(|row| {
                let fresh = dedup.insert(row.uuid);
                if fresh {
                    seen_here.push(row.uuid);
                }
                fresh
            })
            .collect();
        let duplicates = (before - kept.len()) as u32;
        if !kept.is_empty() {
            let record = WalRecord {
                app: &app,
                rows: kept,
            };
            match postcard::to_stdvec(&record) {
                Ok(payload) => wal::encode_frame(&payload, &mut frames),
                Err(error) => {
                    for uuid in seen_here {
                        dedup.remove(uuid);
                    }
                    let _ = reply.send(Err(Error::Corrupt(format!("encode: {error}"))));
                    continue;
                }
            }
            let rows = record.rows;
            staged.push((app, rows, duplicates, seen_here, reply));
        } else {
            staged.push((app, Vec::new(), duplicates, seen_here, reply));
        }
    }
    if !frames.is_empty() {
        if let Err(error) = wal.write_durably(&frames) {
            tracing::error!(%error, "the event log write failed; refusing the group");
            for (_, _, _, seen_here, reply) in staged {
                for uuid in seen_here {
                    dedup.remove(uuid);
                }
                let _ = reply.send(Err(Error::Io(std::io::Error::new(
                    error.kind(),
                    error.to_string(),
                ))));
            }
            return;
        }
        inner.stats.wal_syncs.fetch_add(1, Ordering::Relaxed);
    }
    let mut answers = Vec::with_capacity(staged.len());
    {
        let mut tables = inner.tables.write();
        for (app, rows, duplicates, _, reply) in staged {
            apply(&mut tables, &app, &rows);
            answers.push((
                Appended {
                    accepted: rows.len() as u32,
                    duplicates,
                },
                reply,
            ));
        }
        if tables.unflushed_rows >= inner.config.flush_rows {
            inner.flush_wanted.notify_one();
        }
    }
    for (appended, reply) in answers {
        inner
            .stats
            .rows_accepted
            .fetch_add(u64::from(appended.accepted), Ordering::Relaxed);
        inner
            .stats
            .rows_duplicate
            .fetch_add(u64::from(appended.duplicates), Ordering::Relaxed);
        let _ = reply.send(Ok(appended));
    }
}

/// Closes the log file and freezes everything it holds for the checkpoint.
fn rotate(inner: &Inner, wal: &mut Wal) -> Result<FlushJob, Error> {
    let wal_through = wal.rotate()?;
    let mut job = FlushJob {
        wal_through,
        ..FlushJob::default()
    };
    let mut tables = inner.tables.write();
    for (app, app_tables) in tables.apps.iter_mut() {
        // A failed earlier checkpoint leaves rows frozen: they go out with these.
        for (day, batches) in std::mem::take(&mut app_tables.live) {
            app_tables.frozen.entry(day).or_default().extend(batches);
        }
        for (day, batches) in &app_tables.frozen {
            job.parts.push((app.clone(), *day, batches.clone()));
        }
        let aggregates = &mut app_tables.aggregates;
        for (kind, dictionary) in [
            ("devices", &mut aggregates.devices),
            ("users", &mut aggregates.users),
        ] {
            if let Some((start, ids)) = dictionary.take_unpersisted() {
                job.chunks.push((app.clone(), kind, start, ids));
            }
        }
        for day in std::mem::take(&mut aggregates.dirty) {
            if let Some(aggregate) = aggregates.days.get(&day) {
                let bytes =
                    postcard::to_stdvec(aggregate).map_err(|e| Error::Corrupt(e.to_string()))?;
                job.aggregates.push((app.clone(), day, bytes));
            }
        }
    }
    Ok(job)
}

/// Checkpoints on a timer or when the buffer grows, compacts, and empties the
/// graveyard; stops when the store is dropped.
async fn checkpoint_loop(inner: std::sync::Weak<Inner>, wanted: Arc<Notify>, interval: Duration) {
    loop {
        // Holds no reference to the store while waiting, so dropping the store ends the loop.
        // Woken before the timer means the buffer filled: ingest is busy.
        let busy = tokio::time::timeout(interval, wanted.notified())
            .await
            .is_ok();
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let store = EventStore { inner: strong };
        if store.inner.commands.lock().is_none() {
            return;
        }
        let mut manifest = store.maintenance().await;
        if let Err(error) = store.checkpoint(&mut manifest).await {
            tracing::error!(%error, "event checkpoint failed; will retry");
            continue;
        }
        if let Err(error) = crate::maintain::compact_all(&store, &mut manifest, busy).await {
            tracing::error!(%error, "event compaction failed; will retry");
        }
        drop(manifest);
        store.empty_graveyard(false).await;
    }
}

impl EventStore {
    /// Deletes replaced objects now (tests and shutdown).
    pub async fn purge_replaced(&self) {
        self.empty_graveyard(true).await;
    }
}
