//! Queries: a DataFusion session whose `events` table is an app's Parquet segments
//! for a range of days plus its rows not yet flushed, so a query sees every
//! acknowledged event.

use crate::row::{schema, Day};
use crate::store::EventStore;
use crate::Error;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::prelude::DataFrame;
use std::ops::RangeInclusive;
use std::sync::Arc;
use url::Url;

/// The URL scheme under which the store's objects are registered with DataFusion.
const OBJECTS_URL: &str = "atoll-events://objects/";

/// The table name queries use.
pub const EVENTS: &str = "events";

/// What a query reads: segment objects and in-memory batches.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Segment object paths.
    pub segments: Vec<String>,
    /// Rows not yet in segments.
    pub batches: Vec<RecordBatch>,
}

impl Snapshot {
    /// Rows held in memory.
    pub fn buffered_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

impl EventStore {
    /// The segments and buffered rows of an app for a range of days (UTC).
    pub fn snapshot(&self, app: &str, days: RangeInclusive<Day>) -> Snapshot {
        let tables = self.inner.tables.read();
        let Some(app) = tables.apps.get(app) else {
            return Snapshot::default();
        };
        let segments = app
            .segments
            .range(days.clone())
            .flat_map(|(_, segments)| segments.iter().map(|s| s.path.clone()))
            .collect();
        let batches = app
            .frozen
            .range(days.clone())
            .chain(app.live.range(days))
            .flat_map(|(_, batches)| batches.iter().cloned())
            .collect();
        Snapshot { segments, batches }
    }

    /// A DataFusion session with a table `events` over the app's days.
    pub async fn session(
        &self,
        app: &str,
        days: RangeInclusive<Day>,
    ) -> Result<SessionContext, Error> {
        let snapshot = self.snapshot(app, days);
        let context = self.new_context();
        let frame = self.frame_of(&context, snapshot).await?;
        context.register_table(EVENTS, frame.into_view())?;
        Ok(context)
    }

    pub(crate) fn new_context(&self) -> SessionContext {
        let config = SessionConfig::new()
            .with_target_partitions(self.inner.config.query_threads.max(1))
            .with_information_schema(false);
        let context = SessionContext::new_with_config(config);
        let url = Url::parse(OBJECTS_URL).expect("a valid constant URL");
        context
            .runtime_env()
            .register_object_store(&url, self.inner.config.objects.clone());
        context
    }

    /// A data frame over a snapshot: a listing table of its segments united with a
    /// memory table of its batches.
    pub(crate) async fn frame_of(
        &self,
        context: &SessionContext,
        snapshot: Snapshot,
    ) -> Result<DataFrame, Error> {
        let memory = MemTable::try_new(schema(), vec![snapshot.batches])?;
        let memory = context.read_table(Arc::new(memory))?;
        if snapshot.segments.is_empty() {
            return Ok(memory);
        }
        let urls = snapshot
            .segments
            .iter()
            .map(|path| ListingTableUrl::parse(format!("{OBJECTS_URL}{path}")))
            .collect::<Result<Vec<_>, _>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema());
        let segments = context.read_table(Arc::new(ListingTable::try_new(config)?))?;
        Ok(segments.union(memory)?)
    }
}
