//! Tests across the modules: round trips, tampering, contexts, rotation, caps, and
//! the golden vectors of `contracts/envelope.json`.

use proptest::prelude::*;

use crate::envelope::seal_with;
use crate::*;

const CONTEXT: &[u8] = b"\0\0\0\x07ak_test\0\0\0\x0auser.login\0\0\0\x0a1700000000";

fn key(suite: Suite) -> ServerKeyPair {
    ServerKeyPair::generate(suite)
}

#[test]
fn requests_and_responses_round_trip_in_every_suite() {
    for suite in Suite::ALL {
        let server = key(suite);
        let (envelope, client_key) =
            seal_request(server.public_key(), b"{\"user\":\"ada\"}", CONTEXT).unwrap();
        assert_eq!(envelope[0], REQUEST_MAGIC);
        assert_eq!(envelope[1], suite.to_byte());
        assert_eq!(&envelope[2..10], server.key_id().as_bytes());
        let (plaintext, server_key) = open_request(&server, &envelope, CONTEXT).unwrap();
        assert_eq!(plaintext, b"{\"user\":\"ada\"}");
        assert_eq!(server_key.suite(), suite);

        let response = server_key.seal_response(b"{\"ok\":true}").unwrap();
        assert_eq!(response[0], RESPONSE_MAGIC);
        assert_eq!(
            client_key.open_response(&response).unwrap(),
            b"{\"ok\":true}"
        );
        // Each response gets its own nonce.
        assert_ne!(
            server_key.seal_response(b"{\"ok\":true}").unwrap(),
            response
        );
    }
}

#[test]
fn every_seal_uses_a_fresh_ephemeral_key_and_nonce() {
    let server = key(Suite::X25519Aes256Gcm);
    let (first, _) = seal_request(server.public_key(), b"same", CONTEXT).unwrap();
    let (second, _) = seal_request(server.public_key(), b"same", CONTEXT).unwrap();
    assert_ne!(first[11..43], second[11..43]);
    assert_ne!(first[43..55], second[43..55]);
}

#[test]
fn empty_payloads_and_contexts_work() {
    for suite in Suite::ALL {
        let server = key(suite);
        let (envelope, client_key) = seal_request(server.public_key(), b"", b"").unwrap();
        let (plaintext, server_key) = open_request(&server, &envelope, b"").unwrap();
        assert!(plaintext.is_empty());
        let response = server_key.seal_response(b"").unwrap();
        assert!(client_key.open_response(&response).unwrap().is_empty());
    }
}

/// Every single-byte change of a small envelope, with three masks (the low bit, the
/// high bit, which X25519 itself ignores in public keys, and all bits), fails, and so
/// does every truncation and an appended byte.
#[test]
fn tampering_with_any_byte_fails() {
    for suite in Suite::ALL {
        let server = key(suite);
        let (envelope, client_key) = seal_request(server.public_key(), b"hi", b"ctx").unwrap();
        for index in 0..envelope.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut tampered = envelope.clone();
                tampered[index] ^= mask;
                let error = open_request(&server, &tampered, b"ctx").unwrap_err();
                assert!(
                    matches!(
                        error,
                        EnvelopeError::Malformed(_)
                            | EnvelopeError::UnsupportedSuite
                            | EnvelopeError::UnknownKey
                            | EnvelopeError::DecryptFailed
                    ),
                    "{suite} byte {index} mask {mask:#x}: {error:?}"
                );
            }
        }
        for len in 0..envelope.len() {
            assert!(open_request(&server, &envelope[..len], b"ctx").is_err());
        }
        let mut longer = envelope.clone();
        longer.push(0);
        assert!(open_request(&server, &longer, b"ctx").is_err());

        let (_, server_key) = open_request(&server, &envelope, b"ctx").unwrap();
        let response = server_key.seal_response(b"ok").unwrap();
        for index in 0..response.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut tampered = response.clone();
                tampered[index] ^= mask;
                assert!(
                    client_key.open_response(&tampered).is_err(),
                    "{suite} {index}"
                );
            }
        }
        for len in 0..response.len() {
            assert!(client_key.open_response(&response[..len]).is_err());
        }
    }
}

#[test]
fn a_wrong_context_fails() {
    for suite in Suite::ALL {
        let server = key(suite);
        let login = encode_context(&[b"ak_test", b"user.login", b"1700000000"]);
        let pay = encode_context(&[b"ak_test", b"order.pay", b"1700000000"]);
        let later = encode_context(&[b"ak_test", b"user.login", b"1700000001"]);
        let (envelope, _) = seal_request(server.public_key(), b"{}", &login).unwrap();
        for context in [&pay[..], &later[..], b"", &login[..login.len() - 1]] {
            assert_eq!(
                open_request(&server, &envelope, context).unwrap_err(),
                EnvelopeError::DecryptFailed
            );
        }
        assert!(open_request(&server, &envelope, &login).is_ok());
    }
}

#[test]
fn context_parts_are_length_prefixed() {
    assert_eq!(
        encode_context(&[b"ak_test", b"user.login", b"1700000000"]),
        CONTEXT
    );
    assert_ne!(
        encode_context(&[b"ab", b"c"]),
        encode_context(&[b"a", b"bc"])
    );
    assert!(encode_context(&[]).is_empty());
}

#[test]
fn another_servers_key_or_suite_does_not_open() {
    let server = key(Suite::X25519Aes256Gcm);
    let other = key(Suite::X25519Aes256Gcm);
    let (envelope, _) = seal_request(server.public_key(), b"{}", CONTEXT).unwrap();
    assert_eq!(
        open_request(&other, &envelope, CONTEXT).unwrap_err(),
        EnvelopeError::UnknownKey
    );
    // The same key id under another suite byte names no key either.
    let mut wrong_suite = envelope.clone();
    wrong_suite[1] = Suite::P256Aes256Gcm.to_byte();
    assert!(open_request(&server, &wrong_suite, CONTEXT).is_err());
    let mut unknown_suite = envelope.clone();
    unknown_suite[1] = 0x7f;
    assert_eq!(
        open_request(&server, &unknown_suite, CONTEXT).unwrap_err(),
        EnvelopeError::UnsupportedSuite
    );
    let mut version_2 = envelope;
    version_2[0] = 0xA2;
    assert!(matches!(
        open_request(&server, &version_2, CONTEXT),
        Err(EnvelopeError::Malformed(_))
    ));
}

#[test]
fn a_response_opens_only_with_its_own_exchange() {
    let server = key(Suite::P256Aes256Gcm);
    let (first, first_client) = seal_request(server.public_key(), b"1", CONTEXT).unwrap();
    let (_, second_client) = seal_request(server.public_key(), b"2", CONTEXT).unwrap();
    let (_, server_key) = open_request(&server, &first, CONTEXT).unwrap();
    let response = server_key.seal_response(b"for the first").unwrap();
    assert_eq!(
        second_client.open_response(&response).unwrap_err(),
        EnvelopeError::DecryptFailed
    );
    assert!(first_client.open_response(&response).is_ok());
    // A response is never accepted as a request, nor a request as a response.
    assert!(open_request(&server, &response, CONTEXT).is_err());
    assert!(first_client.open_response(&first).is_err());
}

#[test]
fn low_order_x25519_ephemeral_keys_are_refused() {
    let server = key(Suite::X25519Aes256Gcm);
    let (mut envelope, _) = seal_request(server.public_key(), b"{}", CONTEXT).unwrap();
    // The all-zero point has order 1: the shared secret would be all zeros.
    envelope[11..43].fill(0);
    assert!(matches!(
        open_request(&server, &envelope, CONTEXT),
        Err(EnvelopeError::Malformed(_))
    ));
    let zero = ServerPublicKey::from_bytes(Suite::X25519Aes256Gcm, &[0; 32]).unwrap();
    assert!(matches!(
        seal_request(&zero, b"{}", CONTEXT),
        Err(EnvelopeError::InvalidKey(_))
    ));
}

#[test]
fn a_rotated_key_opens_during_the_overlap_and_not_after() {
    let old = key(Suite::X25519Aes256Gcm);
    let old_public = old.public_key().clone();
    let mut ring = ServerKeyRing::new(old);
    let (before, _) = seal_request(&old_public, b"old", CONTEXT).unwrap();
    assert_eq!(ring.open(&before, CONTEXT, 500).unwrap().0, b"old");

    let new = key(Suite::X25519Aes256Gcm);
    let new_public = new.public_key().clone();
    ring.rotate(new, 1_000);
    assert_eq!(ring.public_keys().collect::<Vec<_>>(), [&new_public]);
    assert_eq!(
        ring.current(Suite::X25519Aes256Gcm).unwrap().key_id(),
        new_public.key_id()
    );

    let (after, client_key) = seal_request(&new_public, b"new", CONTEXT).unwrap();
    let (plaintext, server_key) = ring.open(&after, CONTEXT, 5_000).unwrap();
    assert_eq!(plaintext, b"new");
    let response = server_key.seal_response(b"ok").unwrap();
    assert_eq!(client_key.open_response(&response).unwrap(), b"ok");

    assert_eq!(ring.open(&before, CONTEXT, 999).unwrap().0, b"old");
    assert_eq!(
        ring.open(&before, CONTEXT, 1_000).unwrap_err(),
        EnvelopeError::KeyExpired
    );
    // A wrong context on a still-valid old key is a decryption failure, not expiry.
    assert_eq!(
        ring.open(&before, b"other", 999).unwrap_err(),
        EnvelopeError::DecryptFailed
    );

    ring.prune(999);
    assert_eq!(
        ring.open(&before, CONTEXT, 1_000).unwrap_err(),
        EnvelopeError::KeyExpired
    );
    ring.prune(1_000);
    assert_eq!(
        ring.open(&before, CONTEXT, 1_000).unwrap_err(),
        EnvelopeError::UnknownKey
    );
    assert!(ring.open(&after, CONTEXT, 1_000).is_ok());

    let stranger = key(Suite::X25519Aes256Gcm);
    let (theirs, _) = seal_request(stranger.public_key(), b"{}", CONTEXT).unwrap();
    assert_eq!(
        ring.open(&theirs, CONTEXT, 0).unwrap_err(),
        EnvelopeError::UnknownKey
    );
}

#[test]
fn a_ring_holds_one_current_key_per_suite() {
    let x25519 = key(Suite::X25519Aes256Gcm);
    let sm2 = key(Suite::Sm2Sm4Gcm);
    let previous = key(Suite::Sm2Sm4Gcm);
    let (sm2_public, previous_public) = (sm2.public_key().clone(), previous.public_key().clone());
    let mut ring = ServerKeyRing::new(x25519);
    ring.rotate(sm2, 100);
    ring.add_previous(previous, 100);
    assert_eq!(ring.public_keys().count(), 2);
    assert!(ring.current(Suite::P256Aes256Gcm).is_none());
    assert_eq!(ring.get(previous_public.key_id()).unwrap().1, Some(100));
    for public in [&sm2_public, &previous_public] {
        let (envelope, _) = seal_request(public, b"sm", CONTEXT).unwrap();
        assert_eq!(ring.open(&envelope, CONTEXT, 99).unwrap().0, b"sm");
    }
    // Rotating the SM2 key leaves the X25519 key current.
    ring.rotate(key(Suite::Sm2Sm4Gcm), 200);
    assert!(ring.current(Suite::X25519Aes256Gcm).is_some());
    assert_eq!(ring.get(sm2_public.key_id()).unwrap().1, Some(200));
}

#[test]
fn sizes_are_capped_before_allocation() {
    let server = key(Suite::X25519Aes256Gcm);
    let overhead = 2 + 8 + 1 + 32 + 12 + 16;
    let largest = vec![0u8; MAX_ENVELOPE_LEN - overhead];
    let (envelope, client_key) = seal_request(server.public_key(), &largest, b"").unwrap();
    assert_eq!(envelope.len(), MAX_ENVELOPE_LEN);
    let (_, server_key) = open_request(&server, &envelope, b"").unwrap();
    assert_eq!(
        seal_request(
            server.public_key(),
            &[0u8; 1].repeat(largest.len() + 1),
            b""
        )
        .unwrap_err(),
        EnvelopeError::TooLarge
    );
    let mut too_long = envelope;
    too_long.push(0);
    assert!(matches!(
        open_request(&server, &too_long, b""),
        Err(EnvelopeError::Malformed(_))
    ));

    let largest_response = vec![0u8; MAX_ENVELOPE_LEN - 14 - 16];
    let response = server_key.seal_response(&largest_response).unwrap();
    assert_eq!(response.len(), MAX_ENVELOPE_LEN);
    assert!(client_key.open_response(&response).is_ok());
    let too_large = vec![0u8; largest_response.len() + 1];
    assert_eq!(
        server_key.seal_response(&too_large).unwrap_err(),
        EnvelopeError::TooLarge
    );
    let mut too_long = response;
    too_long.push(0);
    assert!(matches!(
        client_key.open_response(&too_long),
        Err(EnvelopeError::Malformed(_))
    ));
}

#[test]
fn error_codes_are_stable() {
    let codes = [
        (EnvelopeError::Malformed("x"), "envelope_malformed"),
        (EnvelopeError::UnknownKey, "envelope_unknown_key"),
        (EnvelopeError::KeyExpired, "envelope_key_expired"),
        (
            EnvelopeError::UnsupportedSuite,
            "envelope_unsupported_suite",
        ),
        (EnvelopeError::DecryptFailed, "envelope_decrypt_failed"),
        (EnvelopeError::TooLarge, "envelope_too_large"),
        (EnvelopeError::InvalidKey("x"), "envelope_invalid_key"),
    ];
    for (error, code) in codes {
        assert_eq!(error.code(), code);
    }
}

fn suite_strategy() -> impl Strategy<Value = Suite> {
    prop::sample::select(Suite::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_payloads_round_trip(
        suite in suite_strategy(),
        request in prop::collection::vec(any::<u8>(), 0..4096),
        response in prop::collection::vec(any::<u8>(), 0..4096),
        context in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let server = key(suite);
        let (envelope, client_key) = seal_request(server.public_key(), &request, &context).unwrap();
        prop_assert_eq!(envelope.len(), 11 + suite.public_key_len() + 12 + request.len() + 16);
        let (opened, server_key) = open_request(&server, &envelope, &context).unwrap();
        prop_assert_eq!(&opened, &request);
        let sealed = server_key.seal_response(&response).unwrap();
        prop_assert_eq!(client_key.open_response(&sealed).unwrap(), response);
    }

    #[test]
    fn arbitrary_bytes_never_open(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let server = ServerKeyPair::from_bytes(&[1; 33]).unwrap();
        let mut ring = ServerKeyRing::new(ServerKeyPair::from_bytes(&[1; 33]).unwrap());
        ring.rotate(ServerKeyPair::from_bytes(&[3; 33]).unwrap(), 0);
        prop_assert!(open_request(&server, &bytes, b"").is_err());
        prop_assert!(ring.open(&bytes, b"", 0).is_err());
    }
}

// ---- golden vectors ------------------------------------------------------------

const GOLDEN_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../contracts/envelope.json");

/// The inputs of one golden vector.
struct GoldenInput {
    suite: Suite,
    label: &'static str,
    plaintext: &'static str,
    context_parts: [&'static str; 3],
    response: &'static str,
}

const GOLDEN_INPUTS: [GoldenInput; 6] = {
    const fn input(
        suite: Suite,
        label: &'static str,
        plaintext: &'static str,
        response: &'static str,
    ) -> GoldenInput {
        GoldenInput {
            suite,
            label,
            plaintext,
            context_parts: ["ak_demo", "user.login", "1700000000"],
            response,
        }
    }
    [
        input(
            Suite::X25519Aes256Gcm,
            "a",
            "{\"user\":\"ada\",\"pin\":\"1234\"}",
            "{\"ok\":true}",
        ),
        input(Suite::X25519Aes256Gcm, "b", "", ""),
        input(
            Suite::P256Aes256Gcm,
            "a",
            "{\"user\":\"ada\",\"pin\":\"1234\"}",
            "{\"ok\":true}",
        ),
        input(Suite::P256Aes256Gcm, "b", "", ""),
        input(
            Suite::Sm2Sm4Gcm,
            "a",
            "{\"user\":\"ada\",\"pin\":\"1234\"}",
            "{\"ok\":true}",
        ),
        input(Suite::Sm2Sm4Gcm, "b", "", ""),
    ]
};

/// Deterministic "random" bytes: SHA-256 of a label, so the vectors can be rebuilt.
fn fixed<const N: usize>(label: &str) -> [u8; N] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(label.as_bytes());
    let mut out = [0u8; N];
    out.copy_from_slice(&digest[..N]);
    out
}

fn build_vector(input: &GoldenInput) -> serde_json::Value {
    let name = format!("{}/{}", input.suite, input.label);
    let mut key_bytes = vec![input.suite.to_byte()];
    key_bytes.extend(fixed::<32>(&format!("{name} server secret")));
    let server = ServerKeyPair::from_bytes(&key_bytes).unwrap();
    let ephemeral = fixed::<32>(&format!("{name} ephemeral secret"));
    let nonce = fixed::<12>(&format!("{name} nonce"));
    let response_nonce = fixed::<12>(&format!("{name} response nonce"));
    let parts: Vec<&[u8]> = input
        .context_parts
        .iter()
        .map(|part| part.as_bytes())
        .collect();
    let context = encode_context(&parts);
    let (envelope, _) = seal_with(
        server.public_key(),
        &ephemeral,
        nonce,
        input.plaintext.as_bytes(),
        &context,
    )
    .unwrap();
    let (_, response_key) = open_request(&server, &envelope, &context).unwrap();
    let response = response_key
        .seal_response_with(input.response.as_bytes(), response_nonce)
        .unwrap();
    serde_json::json!({
        "name": name,
        "suite": input.suite.name(),
        "server_key_pair": hex::encode(&key_bytes[..]),
        "server_public_key": hex::encode(server.public_key().as_bytes()),
        "key_id": server.key_id().to_string(),
        "ephemeral_secret": hex::encode(ephemeral),
        "nonce": hex::encode(nonce),
        "context_parts": input.context_parts,
        "context": hex::encode(&context),
        "plaintext": input.plaintext,
        "envelope": hex::encode(&envelope),
        "response_nonce": hex::encode(response_nonce),
        "response_plaintext": input.response,
        "response": hex::encode(&response),
    })
}

fn hex_field(vector: &serde_json::Value, field: &str) -> Vec<u8> {
    hex::decode(vector[field].as_str().unwrap()).unwrap()
}

#[test]
fn golden_vectors_match() {
    let text = std::fs::read_to_string(GOLDEN_PATH).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), GOLDEN_INPUTS.len());
    for vector in vectors {
        let name = vector["name"].as_str().unwrap();
        let server = ServerKeyPair::from_bytes(&hex_field(vector, "server_key_pair")).unwrap();
        let suite: Suite = vector["suite"].as_str().unwrap().parse().unwrap();
        assert_eq!(server.suite(), suite, "{name}");
        assert_eq!(
            server.public_key().as_bytes(),
            hex_field(vector, "server_public_key"),
            "{name}"
        );
        assert_eq!(
            server.key_id().to_string(),
            vector["key_id"].as_str().unwrap()
        );

        let parts: Vec<Vec<u8>> = vector["context_parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|part| part.as_str().unwrap().as_bytes().to_vec())
            .collect();
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let context = hex_field(vector, "context");
        assert_eq!(encode_context(&parts), context, "{name}");

        // The device side reproduces the envelope byte for byte ...
        let plaintext = vector["plaintext"].as_str().unwrap().as_bytes();
        let envelope = hex_field(vector, "envelope");
        let (sealed, client_key) = seal_with(
            server.public_key(),
            &hex_field(vector, "ephemeral_secret").try_into().unwrap(),
            hex_field(vector, "nonce").try_into().unwrap(),
            plaintext,
            &context,
        )
        .unwrap();
        assert_eq!(hex::encode(&sealed), hex::encode(&envelope), "{name}");

        // ... the server opens it and reproduces the response ...
        let (opened, server_key) = open_request(&server, &envelope, &context).unwrap();
        assert_eq!(opened, plaintext, "{name}");
        let response_plaintext = vector["response_plaintext"].as_str().unwrap().as_bytes();
        let response = hex_field(vector, "response");
        let resealed = server_key
            .seal_response_with(
                response_plaintext,
                hex_field(vector, "response_nonce").try_into().unwrap(),
            )
            .unwrap();
        assert_eq!(hex::encode(resealed), hex::encode(&response), "{name}");

        // ... and the device opens the response.
        assert_eq!(
            client_key.open_response(&response).unwrap(),
            response_plaintext
        );
    }
}

/// Rewrites `contracts/envelope.json`. Run after a deliberate change of the format:
/// `cargo test -p atoll-envelope -- --ignored regenerate_golden_vectors`.
#[test]
#[ignore = "rewrites contracts/envelope.json"]
fn regenerate_golden_vectors() {
    let doc = serde_json::json!({
        "description": concat!(
            "Golden vectors of the payload-encryption envelope (crates/atoll-envelope). ",
            "Hex everywhere except plaintexts and context parts. server_key_pair is the suite ",
            "byte and the 32-byte secret; context is the context parts length-prefixed ",
            "(4-byte big-endian). Sealing with ephemeral_secret and nonce gives envelope; ",
            "opening it with the server key gives plaintext; the response key sealing ",
            "response_plaintext with response_nonce gives response. Regenerate with ",
            "`cargo test -p atoll-envelope -- --ignored regenerate_golden_vectors`; ",
            "contracts/check_envelope.py checks them independently."
        ),
        "vectors": GOLDEN_INPUTS.iter().map(build_vector).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    std::fs::write(GOLDEN_PATH, text).unwrap();
}
