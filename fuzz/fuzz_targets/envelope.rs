//! Untrusted envelopes: any bytes (and any context) given to `open_request`, to the
//! key ring and to `open_response` fail cleanly, never panic, and never open.
#![no_main]

use std::sync::OnceLock;

use atoll_envelope::{
    open_request, seal_request, ResponseKey, ServerKeyPair, ServerKeyRing, Suite,
};
use libfuzzer_sys::fuzz_target;

/// A fixed server key of a suite: the suite byte, then `7..7`, a scalar of every curve.
fn fixed_key(suite: Suite) -> ServerKeyPair {
    let mut bytes = vec![suite.to_byte()];
    bytes.extend([7u8; 32]);
    ServerKeyPair::from_bytes(&bytes).expect("7..7 is a scalar of every curve")
}

struct Fixture {
    keys: Vec<ServerKeyPair>,
    ring: ServerKeyRing,
    response_keys: Vec<ResponseKey>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let keys: Vec<ServerKeyPair> = Suite::ALL.into_iter().map(fixed_key).collect();
        let mut ring = ServerKeyRing::new(fixed_key(Suite::X25519Aes256Gcm));
        ring.add_previous(fixed_key(Suite::P256Aes256Gcm), 10);
        ring.rotate(fixed_key(Suite::Sm2Sm4Gcm), 0);
        // The response keys of one real exchange per suite (random, made once: the
        // parsing paths that the fuzzer explores do not depend on the key).
        let response_keys = keys
            .iter()
            .map(|key| {
                seal_request(key.public_key(), b"", b"")
                    .expect("sealing an empty payload")
                    .1
            })
            .collect();
        Fixture {
            keys,
            ring,
            response_keys,
        }
    })
}

fuzz_target!(|input: &[u8]| {
    // The first byte, if any, says how many of the following bytes are context.
    let (context, envelope) = match input.split_first() {
        Some((&split, rest)) => rest.split_at(usize::from(split).min(rest.len())),
        None => (&[][..], input),
    };
    let fixture = fixture();
    for key in &fixture.keys {
        // Forging an envelope to a key without its secret means breaking the AEAD.
        assert!(open_request(key, envelope, context).is_err());
    }
    for now in [0, 5, 10] {
        assert!(fixture.ring.open(envelope, context, now).is_err());
    }
    for response_key in &fixture.response_keys {
        assert!(response_key.open_response(envelope).is_err());
    }
});
