//! Atoll's shared vocabulary, used by every server crate.
//!
//! - [`clock`]: an injectable time source, so tests can fix the time;
//! - [`ids`]: ids and secrets;
//! - [`access`]: who is calling (principals), what a route needs, and the one rule
//!   that decides whether a role or a token scope grants it;
//! - [`validate`]: field rules shared by the API and the console;
//! - [`bucketing`]: the one percentage function (MurmurHash3 buckets);
//! - [`rules`]: target rules, the one targeting language of releases, switches,
//!   experiments, campaigns and push audiences.
//!
//! This crate does no IO and knows no web framework or database.

pub mod access;
pub mod bucketing;
pub mod cache;
pub mod clock;
pub mod ids;
pub mod rules;
pub mod validate;

pub use atoll_protocol::ErrorCode;
