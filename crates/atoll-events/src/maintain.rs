//! Work on persisted data: compaction of small segments, retention, and privacy
//! requests (delete or export everything of one device or user).
//!
//! Each runs under the maintenance lock, so it never races a checkpoint; each
//! writes its new objects first and commits by writing the manifest.

use crate::persist::{self, Manifest, Segment};
use crate::row::{col, Day};
use crate::store::EventStore;
use crate::Error;
use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::array::{Array, FixedSizeBinaryArray, StringArray, UInt32Array};
use datafusion::arrow::compute::{
    concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch, SortColumn,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{col as column, lit};
use std::collections::HashSet;
use std::sync::atomic::Ordering;

/// Segments smaller than this are merged by compaction.
const SMALL_SEGMENT_ROWS: u64 = 1_000_000;
/// The most rows one compaction holds in memory.
const MAX_COMPACTION_ROWS: u64 = 2_000_000;

/// Whose events a privacy request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// One device id.
    Device(String),
    /// One user id.
    User(String),
}

impl Subject {
    fn column(&self) -> &'static str {
        match self {
            Subject::Device(_) => col::DEVICE_ID,
            Subject::User(_) => col::USER_ID,
        }
    }

    fn id(&self) -> &str {
        match self {
            Subject::Device(id) | Subject::User(id) => id,
        }
    }
}

fn next_generation(manifest: &mut Manifest) -> u64 {
    manifest.generation += 1;
    manifest.generation
}

async fn commit(store: &EventStore, manifest: &Manifest) -> Result<(), Error> {
    let bytes = serde_json::to_vec(manifest).map_err(|e| Error::Corrupt(e.to_string()))?;
    persist::write_object(&*store.inner.config.objects, persist::MANIFEST, bytes).await
}

async fn read_segment(store: &EventStore, path: &str) -> Result<Vec<RecordBatch>, Error> {
    let bytes = persist::read_object(&*store.inner.config.objects, path)
        .await?
        .ok_or_else(|| Error::Corrupt(format!("missing segment {path}")))?;
    tokio::task::spawn_blocking(move || persist::decode_parquet(bytes, None))
        .await
        .map_err(|e| Error::Corrupt(format!("decode task: {e}")))?
}

async fn write_segment(
    store: &EventStore,
    path: &str,
    batches: Vec<RecordBatch>,
) -> Result<Segment, Error> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let bytes = tokio::task::spawn_blocking(move || {
        persist::encode_parquet(&batches, persist::Packing::Tight)
    })
    .await
    .map_err(|e| Error::Corrupt(format!("encode task: {e}")))??;
    let segment = Segment {
        path: path.to_owned(),
        rows: rows as u64,
        bytes: bytes.len() as u64,
    };
    persist::write_object(&*store.inner.config.objects, path, bytes).await?;
    Ok(segment)
}

/// Keeps the first row of each uuid and sorts by event, device and time, which
/// packs the Parquet pages and lets funnel scans read events in order.
fn dedup_and_sort(batch: &RecordBatch) -> Result<RecordBatch, Error> {
    let uuids = batch
        .column_by_name(col::UUID)
        .and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>())
        .ok_or_else(|| Error::Corrupt("uuid column".into()))?;
    let mut seen = HashSet::with_capacity(uuids.len());
    let keep: BooleanArray = (0..uuids.len())
        .map(|i| Some(seen.insert(uuids.value(i))))
        .collect();
    let batch = filter_record_batch(batch, &keep)?;
    let key = |name: &str| SortColumn {
        values: batch.column_by_name(name).expect("schema column").clone(),
        options: None,
    };
    let indices = lexsort_to_indices(
        &[key(col::EVENT_ID), key(col::DEVICE_ORD), key(col::TIME)],
        None,
    )?;
    Ok(take_record_batch(&batch, &indices)?)
}

/// While ingest is heavy, a day waits for this many times the usual number of
/// small segments before it is merged.
const BUSY_COMPACTION_FACTOR: usize = 4;

/// Merges the small segments of every app and day that has enough of them.
///
/// `busy` says the buffer filled before the checkpoint timer ran out. Merging
/// then would re-encode rows on the cores ingest needs, so it waits for the next
/// quiet checkpoint unless the segments pile up past the busy threshold; the
/// backlog stays bounded either way.
pub(crate) async fn compact_all(
    store: &EventStore,
    manifest: &mut Manifest,
    busy: bool,
) -> Result<(), Error> {
    let mut threshold = store.inner.config.compact_min_segments.max(2);
    if busy {
        threshold *= BUSY_COMPACTION_FACTOR;
    }
    let mut work = Vec::new();
    for (app, entry) in &manifest.apps {
        for (day, segments) in &entry.segments {
            let mut small: Vec<Segment> = segments
                .iter()
                .filter(|s| s.rows < SMALL_SEGMENT_ROWS)
                .cloned()
                .collect();
            if small.len() < threshold {
                continue;
            }
            small.sort_by_key(|s| s.rows);
            let mut total = 0;
            small.retain(|s| {
                total += s.rows;
                total <= MAX_COMPACTION_ROWS
            });
            if small.len() >= 2 {
                work.push((app.clone(), *day, small));
            }
        }
    }
    for (app, day, inputs) in work {
        compact(store, manifest, &app, day, inputs).await?;
    }
    Ok(())
}

async fn compact(
    store: &EventStore,
    manifest: &mut Manifest,
    app: &str,
    day: Day,
    inputs: Vec<Segment>,
) -> Result<(), Error> {
    let mut batches = Vec::new();
    for segment in &inputs {
        batches.extend(read_segment(store, &segment.path).await?);
    }
    let merged = tokio::task::spawn_blocking(move || -> Result<RecordBatch, Error> {
        let all = concat_batches(&crate::row::schema(), &batches)?;
        dedup_and_sort(&all)
    })
    .await
    .map_err(|e| Error::Corrupt(format!("compaction task: {e}")))??;
    let generation = next_generation(manifest);
    let path = persist::segment_path(app, day, generation, 0);
    let output = write_segment(store, &path, vec![merged]).await?;
    let replaced: HashSet<&str> = inputs.iter().map(|s| s.path.as_str()).collect();
    let mut next = manifest.clone();
    let day_segments = next
        .apps
        .get_mut(app)
        .and_then(|entry| entry.segments.get_mut(&day))
        .ok_or_else(|| Error::Corrupt("compacted day vanished".into()))?;
    day_segments.retain(|s| !replaced.contains(s.path.as_str()));
    day_segments.push(output);
    commit(store, &next).await?;
    *manifest = next;
    publish_segments(store, manifest, app, day);
    store.bury(inputs.into_iter().map(|s| s.path).collect());
    store
        .inner
        .stats
        .compactions
        .fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Makes the tables' segment list of one day equal the manifest's.
fn publish_segments(store: &EventStore, manifest: &Manifest, app: &str, day: Day) {
    let segments = manifest
        .apps
        .get(app)
        .and_then(|entry| entry.segments.get(&day))
        .cloned()
        .unwrap_or_default();
    let mut tables = store.inner.tables.write();
    if let Some(app_tables) = tables.apps.get_mut(app) {
        if segments.is_empty() {
            app_tables.segments.remove(&day);
        } else {
            app_tables.segments.insert(day, segments);
        }
        *app_tables.versions.entry(day).or_default() += 1;
    }
}

impl EventStore {
    /// Merges small segments now (the checkpoint loop also does it).
    pub async fn compact(&self) -> Result<(), Error> {
        let mut manifest = self.maintenance().await;
        self.checkpoint(&mut manifest).await?;
        compact_all(self, &mut manifest, false).await
    }

    /// Deletes every event of an app dated before `day`, with its aggregates.
    /// Returns the number of rows removed from segments.
    pub async fn drop_days_before(&self, app: &str, day: Day) -> Result<u64, Error> {
        let mut manifest = self.maintenance().await;
        self.checkpoint(&mut manifest).await?;
        let mut next = manifest.clone();
        let Some(entry) = next.apps.get_mut(app) else {
            return Ok(0);
        };
        let kept_segments = entry.segments.split_off(&day);
        let dropped_segments = std::mem::replace(&mut entry.segments, kept_segments);
        let kept_aggregates = entry.aggregates.split_off(&day);
        let dropped_aggregates = std::mem::replace(&mut entry.aggregates, kept_aggregates);
        if dropped_segments.is_empty() && dropped_aggregates.is_empty() {
            return Ok(0);
        }
        commit(self, &next).await?;
        *manifest = next;
        let rows = dropped_segments.values().flatten().map(|s| s.rows).sum();
        {
            let mut tables = self.inner.tables.write();
            if let Some(app_tables) = tables.apps.get_mut(app) {
                app_tables.segments = app_tables.segments.split_off(&day);
                app_tables.live = app_tables.live.split_off(&day);
                let aggregates = &mut app_tables.aggregates;
                aggregates.days = aggregates.days.split_off(&day);
                aggregates.dirty = aggregates.dirty.split_off(&day);
                aggregates.rebuild_first_days();
                for version in app_tables.versions.values_mut() {
                    *version += 1;
                }
            }
        }
        let mut graves: Vec<String> = dropped_segments
            .into_values()
            .flatten()
            .map(|s| s.path)
            .collect();
        graves.extend(dropped_aggregates.into_values());
        self.bury(graves);
        Ok(rows)
    }

    /// Every event of one device or user (a privacy export), oldest first.
    pub async fn export_subject(
        &self,
        app: &str,
        subject: &Subject,
    ) -> Result<Vec<RecordBatch>, Error> {
        let context = self.session(app, Day::MIN..=Day::MAX).await?;
        let frame = context
            .table(crate::query::EVENTS)
            .await?
            .filter(column(subject.column()).eq(lit(subject.id())))?
            .sort(vec![column(col::TIME).sort(true, false)])?;
        Ok(frame.collect().await?)
    }

    /// Deletes every event of one device or user (a privacy request) from segments,
    /// buffers and aggregates. Returns the number of rows deleted.
    pub async fn delete_subject(&self, app: &str, subject: &Subject) -> Result<u64, Error> {
        let mut manifest = self.maintenance().await;
        self.checkpoint(&mut manifest).await?;
        let mut next = manifest.clone();
        let Some(entry) = next.apps.get_mut(app) else {
            return Ok(0);
        };
        let generation = next.generation + 1;
        next.generation = generation;
        let mut deleted = 0u64;
        let mut graves = Vec::new();
        let mut changed_days = Vec::new();
        for (day, segments) in entry.segments.iter_mut() {
            for (part, segment) in segments.iter_mut().enumerate() {
                let batches = read_segment(self, &segment.path).await?;
                let mut kept = Vec::with_capacity(batches.len());
                let mut removed = 0u64;
                for batch in batches {
                    let (rest, gone) = without_subject(&batch, subject)?;
                    removed += gone;
                    kept.push(rest);
                }
                if removed == 0 {
                    continue;
                }
                deleted += removed;
                let path = persist::segment_path(app, *day, generation, part);
                let replacement = write_segment(self, &path, kept).await?;
                graves.push(std::mem::replace(segment, replacement).path);
                changed_days.push(*day);
            }
        }
        for segments in entry.segments.values_mut() {
            segments.retain(|s| s.rows > 0);
        }
        entry.segments.retain(|_, segments| !segments.is_empty());
        commit(self, &next).await?;
        *manifest = next;
        {
            let mut tables = self.inner.tables.write();
            if let Some(app_tables) = tables.apps.get_mut(app) {
                app_tables.segments = manifest.apps[app].segments.clone();
                for batches in app_tables.live.values_mut() {
                    for batch in batches.iter_mut() {
                        let (rest, gone) = without_subject(batch, subject)?;
                        deleted += gone;
                        *batch = rest;
                    }
                }
                let aggregates = &mut app_tables.aggregates;
                let (device, user) = match subject {
                    Subject::Device(id) => (aggregates.devices.get(id), None),
                    Subject::User(id) => (None, aggregates.users.get(id)),
                };
                aggregates.forget(device, user);
                for version in app_tables.versions.values_mut() {
                    *version += 1;
                }
            }
        }
        self.bury(graves);
        // Persist the cleared aggregates, and retire the log that still holds the
        // subject's buffered rows.
        self.checkpoint(&mut manifest).await?;
        Ok(deleted)
    }
}

/// The batch without the subject's rows, and how many were removed.
fn without_subject(batch: &RecordBatch, subject: &Subject) -> Result<(RecordBatch, u64), Error> {
    let ids = batch
        .column_by_name(subject.column())
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| Error::Corrupt("subject column".into()))?;
    let keep: BooleanArray = ids
        .iter()
        .map(|id| Some(id != Some(subject.id())))
        .collect();
    let removed = keep.false_count() as u64;
    if removed == 0 {
        return Ok((batch.clone(), 0));
    }
    Ok((filter_record_batch(batch, &keep)?, removed))
}

/// The device numbers in a batch (tests and the scan-based reference checks).
pub fn device_ordinals(batch: &RecordBatch) -> Vec<u32> {
    batch
        .column_by_name(col::DEVICE_ORD)
        .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
        .map(|a| a.values().to_vec())
        .unwrap_or_default()
}
