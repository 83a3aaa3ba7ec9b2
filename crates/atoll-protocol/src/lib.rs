//! Wire types shared by the Atoll server and every client (SDK, CLI, tests).
//!
//! This is the only crate that defines what travels over the network: device API
//! bodies, admin API DTOs, the error-code catalogue with its RFC 9457 problem body,
//! and the device request signature. Server and SDK both depend on it, so the two
//! sides cannot drift apart. It must stay free of IO and of server-only dependencies.
#![warn(missing_docs)]

pub mod admin;
pub mod device;
pub mod error;
pub mod signing;
pub mod time;

pub use error::{ErrorCode, Problem};
