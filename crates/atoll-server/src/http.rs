//! The HTTP layer shared by every module: errors, request context, extractors,
//! limits and metrics. Module handlers only see typed extractors and return
//! `ApiResult`.

pub mod auth;
pub mod body;
pub mod context;
pub mod error;
pub mod extract;
pub mod rate_limit;

pub use error::{ApiError, ApiResult};
