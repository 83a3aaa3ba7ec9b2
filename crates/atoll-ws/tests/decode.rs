//! Decoder behaviour: RFC 6455 §5.7 examples and every rejection rule.

use atoll_ws::frame::{encode, encode_frame};
use atoll_ws::{CloseFrame, Decoder, Limits, Message, Opcode, ProtocolError, Role};
use bytes::{Bytes, BytesMut};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn decode_all(role: Role, input: &[u8]) -> Result<Vec<Message>, ProtocolError> {
    let mut decoder = Decoder::new(role, Limits::default());
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(m) = decoder.decode(&mut buf)? {
        out.push(m);
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    Ok(out)
}

/// Masks frames written as if unmasked (server form) for the Server role.
fn masked(opcode: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(opcode, fin, payload, Some(MASK), &mut out);
    out.to_vec()
}

fn err(role: Role, input: &[u8]) -> (ProtocolError, u16) {
    let e = decode_all(role, input).unwrap_err();
    let code = e.close_code();
    (e, code)
}

fn text(s: &str) -> Message {
    Message::Text(Bytes::copy_from_slice(s.as_bytes()))
}

#[test]
fn rfc_5_7_examples() {
    assert_eq!(
        decode_all(Role::Client, b"\x81\x05Hello").unwrap(),
        [text("Hello")]
    );
    let m = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(decode_all(Role::Server, &m).unwrap(), [text("Hello")]);
    assert_eq!(
        decode_all(Role::Client, b"\x01\x03Hel\x80\x02lo").unwrap(),
        [text("Hello")]
    );
    assert_eq!(
        decode_all(Role::Client, b"\x89\x05Hello").unwrap(),
        [Message::Ping(Bytes::from_static(b"Hello"))]
    );
    let pong = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(
        decode_all(Role::Server, &pong).unwrap(),
        [Message::Pong(Bytes::from_static(b"Hello"))]
    );

    let mut f = vec![0x82, 0x7e, 0x01, 0x00];
    f.extend((0..256).map(|i| i as u8));
    let got = decode_all(Role::Client, &f).unwrap();
    assert_eq!(got, [Message::Binary(Bytes::copy_from_slice(&f[4..]))]);

    let mut f = vec![0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
    f.extend((0..65536).map(|i| (i * 7) as u8));
    let got = decode_all(Role::Client, &f).unwrap();
    assert_eq!(got, [Message::Binary(Bytes::copy_from_slice(&f[10..]))]);
}

#[test]
fn partial_input_waits_and_keeps_bytes() {
    let frame = masked(Opcode::Binary, true, &[9; 300]);
    let mut decoder = Decoder::new(Role::Server, Limits::default());
    let mut buf = BytesMut::new();
    for (i, &b) in frame.iter().enumerate() {
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), i);
        buf.extend_from_slice(&[b]);
    }
    assert_eq!(
        decoder.decode(&mut buf).unwrap(),
        Some(Message::Binary(Bytes::from(vec![9; 300])))
    );
    assert!(buf.is_empty());
}

#[test]
fn control_frames_between_fragments() {
    let mut input = masked(Opcode::Binary, false, b"ab");
    input.extend(masked(Opcode::Ping, true, b"p"));
    input.extend(masked(Opcode::Continuation, false, b""));
    input.extend(masked(Opcode::Pong, true, b""));
    input.extend(masked(Opcode::Continuation, true, b"cd"));
    input.extend(masked(Opcode::Close, true, b"\x03\xe8bye"));
    assert_eq!(
        decode_all(Role::Server, &input).unwrap(),
        [
            Message::Ping(Bytes::from_static(b"p")),
            Message::Pong(Bytes::new()),
            Message::Binary(Bytes::from_static(b"abcd")),
            Message::Close(Some(CloseFrame {
                code: 1000,
                reason: "bye".into()
            })),
        ]
    );
    assert_eq!(
        decode_all(Role::Server, &masked(Opcode::Close, true, b"")).unwrap(),
        [Message::Close(None)]
    );
}

#[test]
fn decoder_is_small_and_holds_nothing_when_idle() {
    assert!(
        std::mem::size_of::<Decoder>() <= 64,
        "{}",
        std::mem::size_of::<Decoder>()
    );
    let mut decoder = Decoder::new(Role::Server, Limits::default());
    assert_eq!(decoder.buffered_capacity(), 0);
    let mut buf = BytesMut::new();
    buf.extend(masked(Opcode::Text, true, b"whole"));
    buf.extend(masked(Opcode::Text, false, b"frag"));
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(text("whole")));
    assert_eq!(decoder.buffered_capacity(), 0);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert!(decoder.in_fragmented_message());
    assert!(decoder.buffered_capacity() > 0);
    buf.extend(masked(Opcode::Continuation, true, b"ment"));
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(text("fragment")));
    assert!(!decoder.in_fragmented_message());
    assert_eq!(decoder.buffered_capacity(), 0);
}

#[test]
fn role_and_mask() {
    assert_eq!(
        err(Role::Server, b"\x81\x05Hello"),
        (ProtocolError::UnmaskedFrame, 1002)
    );
    assert_eq!(
        err(Role::Client, &masked(Opcode::Text, true, b"x")),
        (ProtocolError::MaskedFrame, 1002)
    );
}

#[test]
fn reserved_bits_and_unknown_opcodes() {
    for rsv in [0x40u8, 0x20, 0x10] {
        assert_eq!(
            err(Role::Client, &[0x81 | rsv, 0]),
            (ProtocolError::ReservedBits(rsv), 1002)
        );
    }
    for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
        assert_eq!(
            err(Role::Client, &[0x80 | op, 0]),
            (ProtocolError::UnknownOpcode(op), 1002)
        );
    }
}

#[test]
fn control_frame_rules() {
    assert_eq!(
        err(Role::Client, &[0x09, 0]),
        (ProtocolError::FragmentedControl, 1002)
    );
    let mut long = vec![0x89, 126, 0, 126];
    long.extend([0; 126]);
    assert_eq!(
        err(Role::Client, &long),
        (ProtocolError::ControlTooLong, 1002)
    );
    // 125 is the largest allowed.
    let mut ok = vec![0x8a, 125];
    ok.extend([0; 125]);
    assert_eq!(
        decode_all(Role::Client, &ok).unwrap(),
        [Message::Pong(Bytes::from(vec![0; 125]))]
    );
}

#[test]
fn fragmentation_order() {
    assert_eq!(
        err(Role::Client, b"\x80\x01a"),
        (ProtocolError::UnexpectedContinuation, 1002)
    );
    assert_eq!(
        err(Role::Client, b"\x01\x01a\x81\x01b"),
        (ProtocolError::ExpectedContinuation, 1002)
    );
    assert_eq!(
        err(Role::Client, b"\x02\x01a\x02\x01b"),
        (ProtocolError::ExpectedContinuation, 1002)
    );
}

#[test]
fn length_rules() {
    let top = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        err(Role::Client, &top),
        (ProtocolError::LengthOverflow, 1002)
    );

    // Limits are judged from the header alone: no payload bytes are present.
    let limits = Limits {
        max_frame_payload: 100,
        max_message: 150,
    };
    let mut d = Decoder::new(Role::Client, limits);
    let e = d
        .decode(&mut BytesMut::from(&[0x82u8, 126, 0, 101][..]))
        .unwrap_err();
    assert_eq!(
        (e.clone(), e.close_code()),
        (ProtocolError::FrameTooBig { len: 101, max: 100 }, 1009)
    );

    let mut d = Decoder::new(Role::Client, limits);
    let mut buf = BytesMut::new();
    encode_frame(Opcode::Binary, false, &[0; 100], None, &mut buf);
    buf.extend_from_slice(&[0x80, 51]);
    let e = d.decode(&mut buf).unwrap_err();
    assert_eq!(
        (e.clone(), e.close_code()),
        (ProtocolError::MessageTooBig { len: 151, max: 150 }, 1009)
    );
    assert_eq!(buf.len(), 2, "the too-big frame's header was not consumed");

    let mut d = Decoder::new(
        Role::Client,
        Limits {
            max_frame_payload: 100,
            max_message: 50,
        },
    );
    let e = d
        .decode(&mut BytesMut::from(&[0x82u8, 51][..]))
        .unwrap_err();
    assert_eq!(e, ProtocolError::MessageTooBig { len: 51, max: 50 });
}

#[test]
fn text_must_be_utf8_over_the_whole_message() {
    assert_eq!(
        err(Role::Client, b"\x81\x02\xc3\x28"),
        (ProtocolError::InvalidUtf8, 1007)
    );
    // "é" = c3 a9 split across fragments is fine ...
    assert_eq!(
        decode_all(Role::Client, b"\x01\x01\xc3\x80\x01\xa9").unwrap(),
        [text("é")]
    );
    // ... but a truncated sequence at the end is not.
    assert_eq!(
        err(Role::Client, b"\x01\x01a\x80\x01\xc3"),
        (ProtocolError::InvalidUtf8, 1007)
    );
    // Binary is not checked.
    assert!(decode_all(Role::Client, b"\x82\x01\xff").is_ok());
}

#[test]
fn close_frame_rules() {
    assert_eq!(
        err(Role::Client, b"\x88\x01\x03"),
        (ProtocolError::CloseLengthOne, 1002)
    );
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        let mut f = vec![0x88, 2];
        f.extend(code.to_be_bytes());
        assert_eq!(
            err(Role::Client, &f),
            (ProtocolError::InvalidCloseCode(code), 1002),
            "code {code}"
        );
    }
    for code in [1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
        let mut f = vec![0x88, 2];
        f.extend(code.to_be_bytes());
        let want = Message::Close(Some(CloseFrame {
            code,
            reason: String::new(),
        }));
        assert_eq!(decode_all(Role::Client, &f).unwrap(), [want]);
    }
    assert_eq!(
        err(Role::Client, b"\x88\x04\x03\xe8\xc3\x28"),
        (ProtocolError::InvalidCloseReason, 1007)
    );
}

#[test]
fn encoded_messages_round_trip_and_as_text() {
    let mut buf = BytesMut::new();
    encode(Opcode::Text, "héllo".as_bytes(), Some(MASK), &mut buf);
    let m = Decoder::new(Role::Server, Limits::default())
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    assert_eq!(m.as_text(), Some("héllo"));
    assert_eq!(Message::Binary(Bytes::new()).as_text(), None);
}
