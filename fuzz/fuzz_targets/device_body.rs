//! Untrusted device bodies: any bytes under any encoding must inflate within the
//! cap or be refused with an error, and parse or be refused, never panic.
#![no_main]

use atoll_protocol::device::RegisterRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, body)) = input.split_first() else { return };
    let encoding = match selector % 5 {
        0 => None,
        1 => Some("gzip"),
        2 => Some("zstd"),
        3 => Some("identity"),
        _ => Some("br"),
    };
    let limit = 64 * 1024;
    if let Ok(inflated) = atoll_server::fuzzing::decode_device_body(encoding, bytes::Bytes::copy_from_slice(body), limit) {
        assert!(inflated.len() <= limit);
        let _ = serde_json::from_slice::<RegisterRequest>(&inflated);
    }
});
