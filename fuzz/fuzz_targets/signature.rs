//! Untrusted signature inputs: any query, nonce or signature text is handled
//! without panicking, and a signature only verifies for the exact parts signed.
#![no_main]

use atoll_protocol::signing::{canonical_query, nonce_is_well_formed, sign, verify, SignedParts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let mut fields = text.splitn(3, '\n');
    let query = fields.next().unwrap_or_default();
    let nonce = fields.next().unwrap_or_default();
    let signature = fields.next().unwrap_or_default();
    let _ = canonical_query(query);
    let _ = nonce_is_well_formed(nonce);
    let parts = SignedParts {
        app_key: "ak_fuzz",
        device_id: "device",
        method: "POST",
        path: "/device/v1/register",
        query,
        timestamp: 0,
        nonce,
        body: input,
    };
    let expected = sign("secret", &parts);
    assert!(verify("secret", &parts, &expected));
    if signature != expected {
        assert!(!verify("secret", &parts, signature));
    }
});
