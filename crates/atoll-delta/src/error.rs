//! The crate's one error type; every variant has a stable code.

use std::io;

/// What went wrong while making or applying a patch.
///
/// [`Error::code`] gives a stable, machine-readable code for each variant; the
/// SDK reports it to the server and the server counts it, so the codes never
/// change meaning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The patch is malformed: bad magic, truncated, counts or sizes out of
    /// range, or streams that do not add up. Never retry with the same bytes.
    #[error("patch is corrupt: {0}")]
    PatchCorrupt(String),
    /// The patch was written by a newer format version than this reader knows.
    #[error("unsupported patch format version {0}")]
    UnsupportedVersion(u8),
    /// The old file given to `apply` is not the one the patch was made from
    /// (size or SHA-256 differ). The device should download the full file.
    #[error("the old file is not the patch's base: {0}")]
    BaseMismatch(String),
    /// The rebuilt file does not have the size or SHA-256 the patch promises.
    /// Whatever was written to the output must be thrown away.
    #[error("the rebuilt file does not match the patch: {0}")]
    ResultMismatch(String),
    /// An input is larger than this crate accepts (see [`crate::limits`]).
    #[error("{what} is too large: {size} bytes, limit {limit}")]
    TooLarge {
        /// Which input or structure.
        what: &'static str,
        /// Its size (or count).
        size: u64,
        /// The limit it broke.
        limit: u64,
    },
    /// `diff` was told the inputs are zips but one of them is not.
    #[error("not a zip archive: {0}")]
    NotAZip(String),
    /// zstd or zlib refused to work (out of memory, bad parameters).
    #[error("compression failed: {0}")]
    Compression(String),
    /// Reading the old file, a scratch file or writing the output failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// The stable code of this error, for APIs, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Error::PatchCorrupt(_) => "patch_corrupt",
            Error::UnsupportedVersion(_) => "unsupported_version",
            Error::BaseMismatch(_) => "base_mismatch",
            Error::ResultMismatch(_) => "result_mismatch",
            Error::TooLarge { .. } => "too_large",
            Error::NotAZip(_) => "not_a_zip",
            Error::Compression(_) => "compression_failed",
            Error::Io(_) => "io",
        }
    }

    pub(crate) fn corrupt(detail: impl Into<String>) -> Self {
        Error::PatchCorrupt(detail.into())
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
