//! The device WebSocket decoder on untrusted bytes: a server-role `Decoder`
//! fed the input in chunks must never panic, never hand out invalid UTF-8 as
//! text, and never leave a buffer behind once no fragmented message is open.
//!
//! The first input byte picks the chunk size (1–256), so the fuzzer also
//! explores frames split across reads at every position.
#![no_main]

use atoll_ws::{Decoder, Limits, Message, Role};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&first, body)) = input.split_first() else {
        return;
    };
    let chunk = usize::from(first) + 1;
    // Small limits so the size checks are reached by short inputs.
    let mut decoder = Decoder::new(
        Role::Server,
        Limits {
            max_frame_payload: 4096,
            max_message: 16384,
        },
    );
    let mut buf = BytesMut::new();
    for piece in body.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(message)) => {
                    if let Message::Text(text) = &message {
                        assert!(std::str::from_utf8(text).is_ok());
                    }
                    if !decoder.in_fragmented_message() {
                        assert_eq!(decoder.buffered_capacity(), 0);
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    let _ = error.close_code();
                    return;
                }
            }
        }
    }
});
