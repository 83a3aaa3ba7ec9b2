//! Frame encoding (RFC 6455 §5.2).
//!
//! Every function appends exactly one frame to the caller's buffer, so a
//! server can write a message straight into the buffer it is about to flush
//! and keep nothing per connection in between.

use bytes::{BufMut, BytesMut};

/// A frame opcode (RFC 6455 §5.2). Values 3–7 and 0xB–0xF are reserved and
/// rejected by the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// Continues a fragmented Text or Binary message.
    Continuation = 0x0,
    /// Starts a UTF-8 text message.
    Text = 0x1,
    /// Starts a binary message.
    Binary = 0x2,
    /// Starts the closing handshake.
    Close = 0x8,
    /// Keep-alive probe; the peer answers with a Pong carrying the same data.
    Ping = 0x9,
    /// Answer to a Ping (or an unsolicited heartbeat).
    Pong = 0xA,
}

impl Opcode {
    /// The opcode for the low nibble of a frame's first byte, if it is defined.
    pub fn from_u8(value: u8) -> Option<Opcode> {
        Some(match value {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    /// Control frames (Close, Ping, Pong) may not be fragmented and carry at
    /// most [`MAX_CONTROL_PAYLOAD`] bytes.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// Largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Largest frame header: 2 bytes, 8 bytes of extended length, 4 of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// Appends one final (FIN set) frame. `mask` must be `Some` for frames a
/// client sends and `None` for frames a server sends (RFC 6455 §5.1).
pub fn encode(opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>, out: &mut BytesMut) {
    encode_frame(opcode, true, payload, mask, out);
}

/// Appends one frame with an explicit FIN bit, for senders that fragment a
/// message: the first frame carries Text/Binary, the rest
/// [`Opcode::Continuation`], and only the last has `fin` set.
pub fn encode_frame(
    opcode: Opcode,
    fin: bool,
    payload: &[u8],
    mask: Option<[u8; 4]>,
    out: &mut BytesMut,
) {
    let len = payload.len();
    out.reserve(MAX_HEADER_LEN + len);
    out.put_u8(if fin { 0x80 } else { 0 } | opcode as u8);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    // The RFC requires the shortest length form.
    if len < 126 {
        out.put_u8(mask_bit | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.put_u8(mask_bit | 126);
        out.put_u16(short);
    } else {
        out.put_u8(mask_bit | 127);
        out.put_u64(len as u64);
    }
    match mask {
        None => out.extend_from_slice(payload),
        Some(key) => {
            out.extend_from_slice(&key);
            let start = out.len();
            out.extend_from_slice(payload);
            apply_mask(&mut out[start..], key);
        }
    }
}

/// Appends a final Text frame.
pub fn encode_text(text: &str, mask: Option<[u8; 4]>, out: &mut BytesMut) {
    encode(Opcode::Text, text.as_bytes(), mask, out);
}

/// Appends a Close frame with a status code and reason. The reason is cut at
/// a character boundary to the 123 bytes a control frame has room for, so a
/// long error text can never make us send a frame the peer must reject.
pub fn encode_close(code: u16, reason: &str, mask: Option<[u8; 4]>, out: &mut BytesMut) {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    encode(Opcode::Close, &payload[..2 + end], mask, out);
}

/// XORs `data` with the 4-byte masking key (RFC 6455 §5.3), starting at key
/// offset 0. Masking and unmasking are the same operation.
///
/// Works on 8-byte words: the key repeated twice is one `u64`, and since every
/// word starts at a multiple of 4 it lines up with the key.
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(opcode, payload, mask, &mut out);
        out.to_vec()
    }

    #[test]
    fn rfc_examples() {
        // RFC 6455 §5.7.
        assert_eq!(bytes(Opcode::Text, b"Hello", None), b"\x81\x05Hello");
        assert_eq!(
            bytes(Opcode::Text, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d])),
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        let mut out = BytesMut::new();
        encode_frame(Opcode::Text, false, b"Hel", None, &mut out);
        encode_frame(Opcode::Continuation, true, b"lo", None, &mut out);
        assert_eq!(&out[..], b"\x01\x03Hel\x80\x02lo");
        assert_eq!(bytes(Opcode::Ping, b"Hello", None), b"\x89\x05Hello");
        assert_eq!(
            bytes(Opcode::Pong, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d])),
            [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        let big = bytes(Opcode::Binary, &[7; 256], None);
        assert_eq!(big[..4], [0x82, 0x7e, 0x01, 0x00]);
        assert_eq!(big.len(), 4 + 256);
        let huge = bytes(Opcode::Binary, &[7; 65536], None);
        assert_eq!(huge[..10], [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(huge.len(), 10 + 65536);
    }

    #[test]
    fn shortest_length_form_at_the_edges() {
        assert_eq!(bytes(Opcode::Binary, &[0; 125], None)[1], 125);
        assert_eq!(bytes(Opcode::Binary, &[0; 126], None)[1..4], [126, 0, 126]);
        assert_eq!(
            bytes(Opcode::Binary, &[0; 65535], None)[1..4],
            [126, 0xff, 0xff]
        );
        assert_eq!(bytes(Opcode::Binary, &[0; 65536], None)[1], 127);
    }

    #[test]
    fn word_mask_matches_bytewise_mask() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for len in 0..40 {
            let original: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(31)).collect();
            let mut fast = original.clone();
            apply_mask(&mut fast, key);
            let slow: Vec<u8> = original
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(fast, slow, "len {len}");
        }
    }

    #[test]
    fn close_reason_is_cut_at_a_char_boundary() {
        let reason = "é".repeat(100); // 200 bytes
        let frame = bytes(Opcode::Close, b"", None);
        assert_eq!(frame, [0x88, 0]);
        let mut out = BytesMut::new();
        encode_close(1000, &reason, None, &mut out);
        assert_eq!(out[1] as usize, 2 + 122); // 61 two-byte chars fit in 123
        assert!(std::str::from_utf8(&out[4..]).is_ok());
        assert_eq!(out[2..4], [0x03, 0xe8]);
    }
}
