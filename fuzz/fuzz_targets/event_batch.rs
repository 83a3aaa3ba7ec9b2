//! Untrusted event batches: any bytes under any encoding are inflated within the
//! cap, parsed and validated, or refused with a catalogue code; never a panic, and
//! an accepted batch always respects the limits it was checked against.
#![no_main]

use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000_000;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, body)) = input.split_first() else { return };
    let encoding = match selector % 3 {
        0 => None,
        1 => Some("gzip"),
        _ => Some("zstd"),
    };
    let limit = 256 * 1024;
    if let Ok(rows) = atoll_server::fuzzing::decode_event_batch(
        encoding,
        bytes::Bytes::copy_from_slice(body),
        limit,
        NOW,
    ) {
        assert!(rows.len() <= 500);
        for row in &rows {
            assert!(row.attributes.len() <= 25);
            assert!(row.event_id.chars().count() <= 40);
            assert!(row.time <= NOW + 600_000, "future times are clamped");
            assert!(row.time >= NOW - 7 * 86_400_000, "old times are refused");
        }
    }
});
