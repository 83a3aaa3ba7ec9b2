//! Atoll's WebSocket codec (RFC 6455), built for many idle connections.
//!
//! The device connection `/device/v1/connect` is one long-lived WebSocket per
//! phone, and one server must hold 100k of them with at most a few KiB of
//! user-space memory each. General-purpose WebSocket crates keep 64–128 KiB of
//! read and write buffers per connection whether or not anything is moving, so
//! Atoll has this small codec instead:
//!
//! - [`handshake`]: the HTTP/1.1 upgrade checks for both sides
//!   ([`handshake::check_upgrade_request`], [`handshake::accept_key`],
//!   [`handshake::check_upgrade_response`]).
//! - [`frame`]: the encoder. One call writes one frame into a caller's
//!   [`bytes::BytesMut`]; server frames go out unmasked, client frames masked.
//! - [`decode`]: a sans-I/O [`Decoder`] that takes whole frames from the front
//!   of the caller's read buffer and returns whole [`Message`]s. It enforces
//!   the protocol rules and the size limits from frame headers alone, before
//!   any payload is buffered, and holds no heap allocation unless a fragmented
//!   message is half-received.
//! - `client` (feature `client`): a small tokio client (`client::WsClient`)
//!   for the Rust SDK and the benchmark load generator.
//!
//! The core does no I/O: the server reads into its own buffer (dropped while a
//! connection is idle), hands it to [`Decoder::decode`], and writes what
//! [`frame::encode`] produced. No extensions (no permessage-deflate) and no
//! subprotocols are negotiated; frames with RSV bits set are rejected.
#![warn(missing_docs)]

pub mod decode;
pub mod frame;
pub mod handshake;

#[cfg(feature = "client")]
pub mod client;

pub use decode::{CloseFrame, Decoder, Limits, Message, ProtocolError, Role};
pub use frame::Opcode;
pub use handshake::HandshakeError;

/// Close codes (RFC 6455 §7.4.1) used by this crate and its callers.
pub mod close_code {
    /// Normal closure: the purpose of the connection is fulfilled.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away (server shutdown, app in background).
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// The endpoint got a data type it cannot accept.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text message (or close reason) was not valid UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// The endpoint's policy was violated.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame or message exceeded the endpoint's size limit.
    pub const TOO_BIG: u16 = 1009;
    /// The server hit an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;

    /// Whether `code` may appear in a Close frame on the wire (RFC 6455 §7.4):
    /// 1000–1003, 1007–1014 and the registered/private range 3000–4999.
    /// 1004 is reserved, 1005/1006/1015 are only ever reported locally, and
    /// 1016–2999 are reserved for future revisions of the protocol.
    pub fn is_valid_on_wire(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}
