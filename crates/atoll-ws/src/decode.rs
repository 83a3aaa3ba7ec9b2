//! The sans-I/O frame decoder (RFC 6455 §5–§7).
//!
//! [`Decoder::decode`] looks at the front of the caller's read buffer, and
//! only once a whole frame is there does it take it out. Every rule that can
//! be judged from the header (role and mask, RSV bits, opcode, control frame
//! rules, fragmentation order, size limits) is checked before the payload is
//! waited for, so a hostile peer cannot make us buffer a frame we would
//! refuse anyway.

use bytes::{Buf, Bytes, BytesMut};

use crate::close_code;
use crate::frame::{apply_mask, Opcode, MAX_CONTROL_PAYLOAD};

/// Which end of the connection the decoder sits on. The RFC requires client
/// frames to be masked and server frames not to be (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Decodes what a client sends: frames must be masked.
    Server,
    /// Decodes what a server sends: frames must not be masked.
    Client,
}

/// Size limits, checked against frame headers before any payload is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload of one frame.
    pub max_frame_payload: usize,
    /// Largest data message, summed over its fragments.
    pub max_message: usize,
}

impl Default for Limits {
    /// 1 MiB frames and 4 MiB messages: far above what the device connection
    /// carries, far below what would hurt a server holding many connections.
    fn default() -> Self {
        Limits {
            max_frame_payload: 1 << 20,
            max_message: 4 << 20,
        }
    }
}

/// A whole message taken off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message; the bytes are valid UTF-8 (checked over the whole message).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A Ping; the receiver should answer with a Pong carrying the same bytes.
    Ping(Bytes),
    /// A Pong.
    Pong(Bytes),
    /// A Close frame, with its status code and reason if it carried any.
    Close(Option<CloseFrame>),
}

impl Message {
    /// The text of a [`Message::Text`], `None` for other kinds.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            // Validated by the decoder; checked again because this crate has
            // no unsafe code, which costs one pass over the bytes.
            Message::Text(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// The body of a Close frame (RFC 6455 §5.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code (see [`crate::close_code`]).
    pub code: u16,
    /// The reason, possibly empty.
    pub reason: String,
}

/// Why the peer's bytes are not valid WebSocket. After any of these the
/// connection must be closed with [`ProtocolError::close_code`]; the decoder
/// must not be used again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// RSV1–3 set although no extension was negotiated.
    #[error("reserved bits set in frame header ({0:#x})")]
    ReservedBits(u8),
    /// An opcode RFC 6455 does not define.
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// A client sent an unmasked frame.
    #[error("client frame is not masked")]
    UnmaskedFrame,
    /// A server sent a masked frame.
    #[error("server frame is masked")]
    MaskedFrame,
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload.
    #[error("control frame payload exceeds 125 bytes")]
    ControlTooLong,
    /// A continuation frame while no fragmented message was in progress.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new Text/Binary frame while a fragmented message was in progress.
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    /// A 64-bit payload length with the most significant bit set.
    #[error("64-bit payload length has its top bit set")]
    LengthOverflow,
    /// A frame longer than [`Limits::max_frame_payload`].
    #[error("frame payload of {len} bytes exceeds the limit of {max}")]
    FrameTooBig {
        /// Payload length announced by the frame.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A message longer than [`Limits::max_message`].
    #[error("message of at least {len} bytes exceeds the limit of {max}")]
    MessageTooBig {
        /// Message length including the announced frame.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A text message that is not UTF-8.
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// A Close frame with a 1-byte payload.
    #[error("close frame with a 1-byte payload")]
    CloseLengthOne,
    /// A Close frame with a code that may not be sent on the wire.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A Close frame whose reason is not UTF-8.
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
}

impl ProtocolError {
    /// The close code the endpoint should send before dropping the
    /// connection: 1007 for bad UTF-8, 1009 for size limits, else 1002.
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCloseReason => {
                close_code::INVALID_DATA
            }
            ProtocolError::FrameTooBig { .. } | ProtocolError::MessageTooBig { .. } => {
                close_code::TOO_BIG
            }
            _ => close_code::PROTOCOL_ERROR,
        }
    }
}

/// Turns frames into messages for one connection.
///
/// Its size is 56 bytes on 64-bit targets (two `usize` limits, an empty
/// `BytesMut` and two flag bytes), and it owns heap memory only while a
/// fragmented message is half-received: the fragment buffer is taken (and so
/// released to the message) when the last fragment arrives.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    /// Payload of the fragmented message in progress; empty with capacity 0
    /// otherwise.
    fragments: BytesMut,
    /// Opcode (Text or Binary) of the fragmented message in progress.
    fragmented: Option<Opcode>,
    role: Role,
}

impl Decoder {
    /// A decoder for the given end of the connection.
    pub fn new(role: Role, limits: Limits) -> Self {
        Decoder {
            limits,
            fragments: BytesMut::new(),
            fragmented: None,
            role,
        }
    }

    /// Changes the limits (e.g. once the device is authenticated).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Whether a fragmented message is half-received (and buffered).
    pub fn in_fragmented_message(&self) -> bool {
        self.fragmented.is_some()
    }

    /// Capacity of the internal fragment buffer; 0 unless a fragmented
    /// message is in progress. For memory accounting and tests.
    pub fn buffered_capacity(&self) -> usize {
        self.fragments.capacity()
    }

    /// Takes whole frames from the front of `buf` until one completes a
    /// message, and returns it. Returns `Ok(None)` when `buf` holds no whole
    /// frame any more (a partial frame is left in `buf`; append more bytes
    /// and call again). Returned payloads share `buf`'s allocation where
    /// possible instead of being copied.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ProtocolError> {
        loop {
            let Some(header) = self.parse_header(buf)? else {
                return Ok(None);
            };
            if buf.len() - header.header_len < header.payload_len {
                return Ok(None);
            }
            buf.advance(header.header_len);
            let mut payload = buf.split_to(header.payload_len);
            if let Some(key) = header.mask {
                apply_mask(&mut payload, key);
            }
            if let Some(message) = self.complete(header.opcode, header.fin, payload)? {
                return Ok(Some(message));
            }
        }
    }

    /// Validates the header at the front of `buf`, if it is all there.
    fn parse_header(&self, buf: &[u8]) -> Result<Option<Header>, ProtocolError> {
        let [b0, b1, ..] = *buf else { return Ok(None) };
        let fin = b0 & 0x80 != 0;
        if b0 & 0x70 != 0 {
            return Err(ProtocolError::ReservedBits(b0 & 0x70));
        }
        let opcode = Opcode::from_u8(b0 & 0x0f).ok_or(ProtocolError::UnknownOpcode(b0 & 0x0f))?;
        let masked = b1 & 0x80 != 0;
        match (self.role, masked) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        let len7 = b1 & 0x7f;
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::ControlTooLong);
            }
        } else {
            match (opcode, self.fragmented) {
                (Opcode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
                (Opcode::Text | Opcode::Binary, Some(_)) => {
                    return Err(ProtocolError::ExpectedContinuation)
                }
                _ => {}
            }
        }
        let (len, mut at) = match len7 {
            126 => match buf.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(b) => {
                    let mut raw = [0u8; 8];
                    raw.copy_from_slice(b);
                    (u64::from_be_bytes(raw), 10)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        if len >> 63 != 0 {
            return Err(ProtocolError::LengthOverflow);
        }
        if !opcode.is_control() {
            let max = self.limits.max_frame_payload;
            if len > max as u64 {
                return Err(ProtocolError::FrameTooBig { len, max });
            }
            let total = self.fragments.len() as u64 + len;
            let max = self.limits.max_message;
            if total > max as u64 {
                return Err(ProtocolError::MessageTooBig { len: total, max });
            }
        }
        let mask = if masked {
            let Some(b) = buf.get(at..at + 4) else {
                return Ok(None);
            };
            at += 4;
            Some([b[0], b[1], b[2], b[3]])
        } else {
            None
        };
        // Fits: it is at most max_frame_payload (a usize) or 125.
        let payload_len = len as usize;
        Ok(Some(Header {
            fin,
            opcode,
            mask,
            header_len: at,
            payload_len,
        }))
    }

    /// Folds one frame's payload into the message state.
    fn complete(
        &mut self,
        opcode: Opcode,
        fin: bool,
        payload: BytesMut,
    ) -> Result<Option<Message>, ProtocolError> {
        let (kind, data) = match opcode {
            Opcode::Ping => return Ok(Some(Message::Ping(payload.freeze()))),
            Opcode::Pong => return Ok(Some(Message::Pong(payload.freeze()))),
            Opcode::Close => return parse_close(&payload).map(|c| Some(Message::Close(c))),
            Opcode::Text | Opcode::Binary if fin => (opcode, payload.freeze()),
            Opcode::Text | Opcode::Binary => {
                // Copy rather than keep `payload`: it would pin the caller's
                // read buffer for as long as the message takes to arrive.
                self.fragments.extend_from_slice(&payload);
                self.fragmented = Some(opcode);
                return Ok(None);
            }
            Opcode::Continuation => {
                self.fragments.extend_from_slice(&payload);
                if !fin {
                    return Ok(None);
                }
                let kind = self.fragmented.take().unwrap_or(Opcode::Binary);
                // `take` leaves an empty BytesMut without an allocation.
                (kind, std::mem::take(&mut self.fragments).freeze())
            }
        };
        if kind == Opcode::Text {
            std::str::from_utf8(&data).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Some(Message::Text(data)))
        } else {
            Ok(Some(Message::Binary(data)))
        }
    }
}

/// What a frame header said.
struct Header {
    fin: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    header_len: usize,
    payload_len: usize,
}

fn parse_close(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::CloseLengthOne),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !close_code::is_valid_on_wire(code) {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok(Some(CloseFrame {
                code,
                reason: reason.to_owned(),
            }))
        }
    }
}
