//! One stored event (`EventRow`), the Arrow schema of the event table, and the
//! conversion of rows into record batches.

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, FixedSizeBinaryBuilder, Int64Builder, MapBuilder, StringBuilder,
    UInt32Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, LazyLock};

/// Milliseconds in one day; partitions are UTC days.
pub const DAY_MS: i64 = 86_400_000;

/// A day number: days since 1970-01-01 (UTC).
pub type Day = i32;

/// The UTC day of a millisecond timestamp.
pub fn day_of(time_ms: i64) -> Day {
    time_ms.div_euclid(DAY_MS) as Day
}

/// An event as the store keeps it: the device's fields plus the context the server
/// added from the device registry. Ordinals are assigned by the store.
///
/// The device context is shared text (`Arc<str>`): every event of a batch
/// carries the same device, account and profile, and copying nine strings per
/// event was a tenth of the ingest CPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    /// The client-generated id; the store keeps one row per uuid.
    pub uuid: u128,
    /// Client time (after the ingest clamp), ms since the epoch; decides the partition.
    pub time: i64,
    /// Server receive time, ms since the epoch.
    pub received: i64,
    /// The event name.
    pub event_id: String,
    /// The device that sent it.
    pub device_id: Arc<str>,
    /// The account bound to the device when it happened.
    pub user_id: Option<Arc<str>>,
    /// The client session.
    pub session_id: Option<String>,
    /// The page shown.
    pub page: Option<String>,
    /// The page before (page views).
    pub referrer: Option<String>,
    /// Stay or foreground time, ms.
    pub duration_ms: Option<i64>,
    /// Device platform (`android`, `ios`, ...).
    pub platform: Option<Arc<str>>,
    /// OS version.
    pub os_version: Option<Arc<str>>,
    /// Device model.
    pub model: Option<Arc<str>>,
    /// App version.
    pub app_version: Option<Arc<str>>,
    /// Install channel.
    pub channel: Option<Arc<str>>,
    /// Region.
    pub region: Option<Arc<str>>,
    /// Network.
    pub network: Option<Arc<str>>,
    /// False when the event is not declared in the app's registry.
    pub registered: bool,
    /// Custom attributes as text, sorted by name.
    pub attributes: Vec<(String, String)>,
}

/// Column names, shared by writers and queries.
pub mod col {
    /// Event uuid (16 bytes).
    pub const UUID: &str = "uuid";
    /// Client time, ms.
    pub const TIME: &str = "time";
    /// Receive time, ms.
    pub const RECEIVED: &str = "received";
    /// Event name.
    pub const EVENT_ID: &str = "event_id";
    /// Device id.
    pub const DEVICE_ID: &str = "device_id";
    /// Dense per-app device number.
    pub const DEVICE_ORD: &str = "device_ord";
    /// User id.
    pub const USER_ID: &str = "user_id";
    /// Dense per-app user number.
    pub const USER_ORD: &str = "user_ord";
    /// Session id.
    pub const SESSION_ID: &str = "session_id";
    /// Page.
    pub const PAGE: &str = "page";
    /// Previous page.
    pub const REFERRER: &str = "referrer";
    /// Duration, ms.
    pub const DURATION_MS: &str = "duration_ms";
    /// Platform.
    pub const PLATFORM: &str = "platform";
    /// OS version.
    pub const OS_VERSION: &str = "os_version";
    /// Model.
    pub const MODEL: &str = "model";
    /// App version.
    pub const APP_VERSION: &str = "app_version";
    /// Channel.
    pub const CHANNEL: &str = "channel";
    /// Region.
    pub const REGION: &str = "region";
    /// Network.
    pub const NETWORK: &str = "network";
    /// Declared in the registry.
    pub const REGISTERED: &str = "registered";
    /// Custom attributes (map of text to text).
    pub const ATTRIBUTES: &str = "attributes";
}

/// The Arrow schema of the event table (one per app; the app is the partition).
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        Arc::new(Schema::new(vec![
            Field::new(col::UUID, DataType::FixedSizeBinary(16), false),
            Field::new(col::TIME, DataType::Int64, false),
            Field::new(col::RECEIVED, DataType::Int64, false),
            Field::new(col::EVENT_ID, DataType::Utf8, false),
            Field::new(col::DEVICE_ID, DataType::Utf8, false),
            Field::new(col::DEVICE_ORD, DataType::UInt32, false),
            text(col::USER_ID),
            Field::new(col::USER_ORD, DataType::UInt32, true),
            text(col::SESSION_ID),
            text(col::PAGE),
            text(col::REFERRER),
            Field::new(col::DURATION_MS, DataType::Int64, true),
            text(col::PLATFORM),
            text(col::OS_VERSION),
            text(col::MODEL),
            text(col::APP_VERSION),
            text(col::CHANNEL),
            text(col::REGION),
            text(col::NETWORK),
            Field::new(col::REGISTERED, DataType::Boolean, false),
            Field::new(col::ATTRIBUTES, attributes_type(), true),
        ]))
    });
    SCHEMA.clone()
}

fn attributes_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(
                vec![
                    Field::new("keys", DataType::Utf8, false),
                    Field::new("values", DataType::Utf8, true),
                ]
                .into(),
            ),
            false,
        )),
        false,
    )
}

/// A row with the ordinals the store assigned to its device and user.
#[derive(Debug, Clone, Copy)]
pub struct Ordinals {
    /// The device's number in the app.
    pub device: u32,
    /// The user's number in the app, when the event has a user.
    pub user: Option<u32>,
}

/// Builds one record batch of rows with their ordinals (same length, same order).
pub fn to_record_batch(rows: &[&EventRow], ordinals: &[Ordinals]) -> RecordBatch {
    debug_assert_eq!(rows.len(), ordinals.len());
    let n = rows.len();
    // Every text column sized to what it will hold: `StringBuilder::new()`
    // reserves 1,024 values and 1,024 bytes, ~5 KB a column, so a batch of 50
    // rows cost ~70 KB of fresh memory (kept in the live buffer until the flush)
    // and its allocation was a sixth of the ingest CPU.
    let text = |value: &dyn Fn(&EventRow) -> Option<&str>| {
        let bytes = rows.iter().filter_map(|row| value(row)).map(str::len).sum();
        StringBuilder::with_capacity(n, bytes)
    };
    let mut uuid = FixedSizeBinaryBuilder::with_capacity(n, 16);
    let mut time = Int64Builder::with_capacity(n);
    let mut received = Int64Builder::with_capacity(n);
    let mut event_id = text(&|row| Some(&row.event_id));
    let mut device_id = text(&|row| Some(&row.device_id));
    let mut device_ord = UInt32Builder::with_capacity(n);
    let mut user_id = text(&|row| row.user_id.as_deref());
    let mut user_ord = UInt32Builder::with_capacity(n);
    let mut session_id = text(&|row| row.session_id.as_deref());
    let mut page = text(&|row| row.page.as_deref());
    let mut referrer = text(&|row| row.referrer.as_deref());
    let mut duration = Int64Builder::with_capacity(n);
    let mut texts: [StringBuilder; 7] = [
        text(&|row| row.platform.as_deref()),
        text(&|row| row.os_version.as_deref()),
        text(&|row| row.model.as_deref()),
        text(&|row| row.app_version.as_deref()),
        text(&|row| row.channel.as_deref()),
        text(&|row| row.region.as_deref()),
        text(&|row| row.network.as_deref()),
    ];
    let mut registered = BooleanBuilder::with_capacity(n);
    let pairs: usize = rows.iter().map(|row| row.attributes.len()).sum();
    let (key_bytes, value_bytes) = rows
        .iter()
        .flat_map(|row| &row.attributes)
        .fold((0, 0), |(k, v), (key, value)| {
            (k + key.len(), v + value.len())
        });
    let mut attributes = MapBuilder::with_capacity(
        None,
        StringBuilder::with_capacity(pairs, key_bytes),
        StringBuilder::with_capacity(pairs, value_bytes),
        n,
    );
    for (row, ords) in rows.iter().zip(ordinals) {
        uuid.append_value(row.uuid.to_be_bytes())
            .expect("16-byte values always fit");
        time.append_value(row.time);
        received.append_value(row.received);
        event_id.append_value(&row.event_id);
        device_id.append_value(&row.device_id);
        device_ord.append_value(ords.device);
        user_id.append_option(row.user_id.as_deref());
        user_ord.append_option(ords.user);
        session_id.append_option(row.session_id.as_deref());
        page.append_option(row.page.as_deref());
        referrer.append_option(row.referrer.as_deref());
        duration.append_option(row.duration_ms);
        let context = [
            &row.platform,
            &row.os_version,
            &row.model,
            &row.app_version,
            &row.channel,
            &row.region,
            &row.network,
        ];
        for (builder, value) in texts.iter_mut().zip(context) {
            builder.append_option(value.as_deref());
        }
        registered.append_value(row.registered);
        for (key, value) in &row.attributes {
            attributes.keys().append_value(key);
            attributes.values().append_value(value);
        }
        attributes
            .append(true)
            .expect("keys and values are appended in pairs");
    }
    let [mut platform, mut os_version, mut model, mut app_version, mut channel, mut region, mut network] =
        texts;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(uuid.finish()),
        Arc::new(time.finish()),
        Arc::new(received.finish()),
        Arc::new(event_id.finish()),
        Arc::new(device_id.finish()),
        Arc::new(device_ord.finish()),
        Arc::new(user_id.finish()),
        Arc::new(user_ord.finish()),
        Arc::new(session_id.finish()),
        Arc::new(page.finish()),
        Arc::new(referrer.finish()),
        Arc::new(duration.finish()),
        Arc::new(platform.finish()),
        Arc::new(os_version.finish()),
        Arc::new(model.finish()),
        Arc::new(app_version.finish()),
        Arc::new(channel.finish()),
        Arc::new(region.finish()),
        Arc::new(network.finish()),
        Arc::new(registered.finish()),
        Arc::new(attributes.finish()),
    ];
    RecordBatch::try_new(schema(), columns).expect("columns follow the schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_and_floor_negative_times() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(DAY_MS), 1);
        assert_eq!(day_of(-1), -1);
    }

    #[test]
    fn rows_become_a_batch_of_the_schema() {
        let row = EventRow {
            uuid: 7,
            time: 1,
            received: 2,
            event_id: "buy".into(),
            device_id: "d1".into(),
            user_id: Some("u1".into()),
            attributes: vec![("color".into(), "red".into())],
            registered: true,
            ..EventRow::default()
        };
        let batch = to_record_batch(
            &[&row, &row],
            &[Ordinals {
                device: 0,
                user: Some(0),
            }; 2],
        );
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), schema());
    }
}
