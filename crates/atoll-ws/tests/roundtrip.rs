//! Property tests: whatever one side encodes, the other decodes unchanged,
//! however the bytes are fragmented into frames and split into reads; and no
//! input makes the decoder panic.

use atoll_ws::frame::encode_frame;
use atoll_ws::{Decoder, Limits, Message, Opcode, Role};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Control {
    ping: bool,
    payload: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Data {
    text: bool,
    payload: Vec<u8>,
    /// Fragment boundaries (byte offsets, taken modulo the length + 1).
    cuts: Vec<usize>,
    /// Control frames sent after fragment `.0` (modulo the fragment count).
    interleaved: Vec<(usize, Control)>,
}

#[derive(Debug, Clone)]
enum Item {
    Data(Data),
    Control(Control),
}

fn control() -> impl Strategy<Value = Control> {
    (any::<bool>(), prop::collection::vec(any::<u8>(), 0..=125))
        .prop_map(|(ping, payload)| Control { ping, payload })
}

fn item() -> impl Strategy<Value = Item> {
    let payload = prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| (false, b)),
        8 => any::<String>().prop_map(|s| (true, s.into_bytes())),
        1 => prop::collection::vec(any::<u8>(), 65_536..66_000).prop_map(|b| (false, b)),
    ];
    let data = (
        payload,
        prop::collection::vec(any::<usize>(), 0..5),
        prop::collection::vec((any::<usize>(), control()), 0..3),
    )
        .prop_map(|((text, payload), cuts, interleaved)| {
            Item::Data(Data {
                text,
                payload,
                cuts,
                interleaved,
            })
        });
    prop_oneof![3 => data, 1 => control().prop_map(Item::Control)]
}

fn control_message(c: &Control) -> Message {
    let b = Bytes::from(c.payload.clone());
    if c.ping {
        Message::Ping(b)
    } else {
        Message::Pong(b)
    }
}

/// Encodes the items as `role` would send them; returns the wire bytes and
/// the messages the peer should decode, in order.
fn encode_items(items: &[Item], sender: Role, mask_seed: u32) -> (BytesMut, Vec<Message>) {
    let mut frame_no = mask_seed;
    let mut next_mask = || {
        frame_no = frame_no.wrapping_mul(2_654_435_761).wrapping_add(1);
        (sender == Role::Client).then(|| frame_no.to_be_bytes())
    };
    let mut out = BytesMut::new();
    let mut expected = Vec::new();
    let send_control = |c: &Control, out: &mut BytesMut, expected: &mut Vec<Message>, mask| {
        let op = if c.ping { Opcode::Ping } else { Opcode::Pong };
        encode_frame(op, true, &c.payload, mask, out);
        expected.push(control_message(c));
    };
    for item in items {
        match item {
            Item::Control(c) => send_control(c, &mut out, &mut expected, next_mask()),
            Item::Data(d) => {
                let mut bounds: Vec<usize> =
                    d.cuts.iter().map(|c| c % (d.payload.len() + 1)).collect();
                bounds.sort_unstable();
                bounds.push(d.payload.len());
                let fragments = bounds.len();
                let mut start = 0;
                for (i, &end) in bounds.iter().enumerate() {
                    let op = match (i, d.text) {
                        (0, true) => Opcode::Text,
                        (0, false) => Opcode::Binary,
                        _ => Opcode::Continuation,
                    };
                    encode_frame(
                        op,
                        i + 1 == fragments,
                        &d.payload[start..end],
                        next_mask(),
                        &mut out,
                    );
                    start = end;
                    if i + 1 < fragments {
                        for (_, c) in d.interleaved.iter().filter(|(at, _)| at % fragments == i) {
                            send_control(c, &mut out, &mut expected, next_mask());
                        }
                    }
                }
                let b = Bytes::from(d.payload.clone());
                expected.push(if d.text {
                    Message::Text(b)
                } else {
                    Message::Binary(b)
                });
            }
        }
    }
    (out, expected)
}

/// Feeds `wire` to a decoder in chunks of the given sizes (cycled).
fn decode_in_chunks(
    role: Role,
    wire: &[u8],
    chunks: &[usize],
) -> Result<Vec<Message>, atoll_ws::ProtocolError> {
    let mut decoder = Decoder::new(role, Limits::default());
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut rest = wire;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(m) = decoder.decode(&mut buf)? {
            if let Message::Text(t) = &m {
                assert!(std::str::from_utf8(t).is_ok());
            }
            got.push(m);
        }
    }
    Ok(got)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn client_to_server_round_trips(
        items in prop::collection::vec(item(), 0..8),
        chunks in prop::collection::vec(1usize..200, 1..10),
        seed in any::<u32>(),
    ) {
        let (wire, expected) = encode_items(&items, Role::Client, seed);
        prop_assert_eq!(decode_in_chunks(Role::Server, &wire, &chunks).unwrap(), expected);
    }

    #[test]
    fn server_to_client_round_trips(
        items in prop::collection::vec(item(), 0..8),
        chunks in prop::collection::vec(1usize..200, 1..10),
    ) {
        let (wire, expected) = encode_items(&items, Role::Server, 0);
        prop_assert_eq!(decode_in_chunks(Role::Client, &wire, &chunks).unwrap(), expected);
    }

    #[test]
    fn garbage_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        chunks in prop::collection::vec(1usize..64, 1..6),
    ) {
        let _ = decode_in_chunks(Role::Server, &bytes, &chunks);
        let _ = decode_in_chunks(Role::Client, &bytes, &chunks);
    }

    #[test]
    fn mutated_streams_never_panic(
        items in prop::collection::vec(item(), 1..5),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        chunks in prop::collection::vec(1usize..64, 1..6),
    ) {
        let (wire, _) = encode_items(&items, Role::Client, 7);
        let mut wire = wire.to_vec();
        for (at, x) in flips {
            let i = at % wire.len();
            wire[i] ^= x;
        }
        let _ = decode_in_chunks(Role::Server, &wire, &chunks);
    }
}
