//! What the store keeps in its object store: Parquet segments, dictionary chunks,
//! day aggregates, and the manifest that says which of them are current.
//!
//! The manifest is the commit point of a checkpoint: objects are written first,
//! then the manifest that names them and the log position they cover. An object
//! the manifest does not name is left over from a crashed checkpoint and removed
//! at the next start; log files after the manifest's position are replayed.

use crate::row::{schema, Day};
use crate::Error;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::{ArrowWriter, ProjectionMask};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// The manifest's object name.
pub const MANIFEST: &str = "manifest.json";

/// One Parquet file of one app and day.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Segment {
    /// Object path.
    pub path: String,
    /// Rows in it.
    pub rows: u64,
    /// Bytes in it.
    pub bytes: u64,
}

/// What the manifest records for one app.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppManifest {
    /// Segments by day.
    pub segments: BTreeMap<Day, Vec<Segment>>,
    /// Device dictionary chunks, in order.
    pub device_chunks: Vec<String>,
    /// User dictionary chunks, in order.
    pub user_chunks: Vec<String>,
    /// The current aggregate object of each day.
    pub aggregates: BTreeMap<Day, String>,
}

/// The commit record of the store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub version: u32,
    /// Checkpoint generation (grows by one per checkpoint).
    pub generation: u64,
    /// Every log file up to and including this number is covered by the objects.
    pub wal_through: u64,
    /// Per app.
    pub apps: BTreeMap<String, AppManifest>,
}

impl Manifest {
    /// Every object the manifest names.
    pub fn objects(&self) -> HashSet<String> {
        let mut names = HashSet::new();
        for app in self.apps.values() {
            names.extend(app.segments.values().flatten().map(|s| s.path.clone()));
            names.extend(app.device_chunks.iter().cloned());
            names.extend(app.user_chunks.iter().cloned());
            names.extend(app.aggregates.values().cloned());
        }
        names
    }
}

/// Object names are built from app ids, which are Atoll's own ids (letters,
/// digits, `_`, `-`), never from device input.
pub fn segment_path(app: &str, day: Day, generation: u64, part: usize) -> String {
    format!("segments/{app}/{day}/{generation:012}-{part:04}.parquet")
}

/// The object of a dictionary chunk starting at `start`.
pub fn chunk_path(app: &str, kind: &str, start: usize) -> String {
    format!("dict/{app}/{kind}-{start:012}.bin")
}

/// The object of a day's aggregates as of `generation`.
pub fn aggregate_path(app: &str, day: Day, generation: u64) -> String {
    format!("agg/{app}/{day}-{generation:012}.bin")
}

/// Reads an object, `None` when it does not exist.
pub async fn read_object(store: &dyn ObjectStore, name: &str) -> Result<Option<Vec<u8>>, Error> {
    match store.get(&Path::from(name)).await {
        Ok(result) => Ok(Some(result.bytes().await?.to_vec())),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Writes an object.
pub async fn write_object(
    store: &dyn ObjectStore,
    name: &str,
    bytes: Vec<u8>,
) -> Result<(), Error> {
    store
        .put(&Path::from(name), PutPayload::from(bytes))
        .await?;
    Ok(())
}

/// Deletes an object; a missing one is fine.
pub async fn delete_object(store: &dyn ObjectStore, name: &str) -> Result<(), Error> {
    match store.delete(&Path::from(name)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Every object under a prefix.
pub async fn list_objects(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<String>, Error> {
    let prefix = Path::from(prefix);
    let metas: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
    Ok(metas
        .into_iter()
        .map(|meta| meta.location.to_string())
        .collect())
}

/// How hard to compress a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// A checkpoint's segment: written on the ingest path and usually merged
    /// again by compaction soon, so zstd's fastest level (cheaper than level 3
    /// for a slightly larger file).
    Fast,
    /// A segment that stays: compaction output and rewrites (zstd level 3).
    Tight,
}

impl Packing {
    fn zstd_level(self) -> i32 {
        match self {
            Packing::Fast => 1,
            Packing::Tight => 3,
        }
    }
}

/// Encodes batches as one zstd-compressed Parquet file. CPU-heavy: call it from a
/// blocking thread.
pub fn encode_parquet(batches: &[RecordBatch], packing: Packing) -> Result<Vec<u8>, Error> {
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(packing.zstd_level()).expect("levels 1 and 3 are valid"),
        ))
        .set_max_row_group_row_count(Some(256 * 1024))
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema(), Some(properties))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(bytes)
}

/// Decodes a Parquet file of the event schema, optionally only some columns.
pub fn decode_parquet(bytes: Vec<u8>, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>, Error> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?;
    let builder = match columns {
        Some(columns) => {
            let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
            builder.with_projection(mask)
        }
        None => builder,
    };
    let reader = builder.build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

/// Shared handle to the object store.
pub type Objects = Arc<dyn ObjectStore>;
