//! Wire types shared by the Atoll server and every client (SDK, CLI, tests).
//!
//! This is the only crate that defines what travels over the network: device API
//! bodies, admin API DTOs, the error-code catalogue with its RFC 9457 problem body,
//! and the device request signature. Server and SDK both depend on it, so the two
//! sides cannot drift apart. It must stay free of IO and of server-only dependencies.
#![warn(missing_docs)]

pub mod admin;
pub mod analytics;
pub mod delivery;
pub mod device;
pub mod error;
pub mod events;
pub mod gateway;
pub mod gateway_signing;
pub mod push;
pub mod signing;
pub mod switches;
pub mod sync;
pub mod time;

pub use error::{ErrorCode, Problem};

/// Percent-encodes a value for one URL path segment. Device and user ids come
/// from apps and may hold any character; unreserved ones stay readable.
pub fn encode_path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
