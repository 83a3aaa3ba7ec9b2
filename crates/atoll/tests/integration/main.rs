//! Black-box tests: each starts the real `atoll` binary and drives it with
//! `atoll-sdk`, as an app and an operator would.

mod analytics;
mod cli;
mod delivery;
mod device;
mod durability;
mod gateway;
mod limits;
mod ops;
mod push;
mod push_vendors;
mod signatures;
mod support;
mod switches;
mod sync;
mod tenancy;
