//! SDK errors: the server's problem documents, typed.

use atoll_protocol::{ErrorCode, Problem};

/// An SDK error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error.
    #[error("{} ({}): {}", problem.code, status, problem.detail)]
    Api {
        /// HTTP status.
        status: u16,
        /// The problem document (boxed: errors stay small on the happy path).
        problem: Box<Problem>,
        /// `Retry-After`, in seconds.
        retry_after_secs: Option<u64>,
    },
    /// The request did not reach the server or the answer was cut.
    #[error("transport error: {0}")]
    Transport(#[from] reqwest::Error),
    /// The answer was not what the protocol says.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// Local storage (the device id file) failed.
    #[error("local storage error: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration is unusable.
    #[error("configuration error: {0}")]
    Config(String),
    /// A gateway payload could not be sealed, or an encrypted answer did not open.
    #[error("envelope error: {0}")]
    Envelope(#[from] atoll_envelope::EnvelopeError),
    /// A package, patch or downloaded file failed a check and was not used.
    #[error("{}: {detail}", reason.code())]
    Refused {
        /// Why, with a stable code.
        reason: Refusal,
        /// What exactly did not match, for logs.
        detail: String,
    },
}

/// Why a package or file was refused. The codes are stable: they are what an
/// install report's `error` carries and what the server counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// The manifest's Ed25519 signature does not verify with the pinned key.
    SignatureInvalid,
    /// The signed manifest says something else than the update (kind, id,
    /// version, app, size or SHA-256), or cannot be read.
    ManifestMismatch,
    /// The downloaded or rebuilt file does not have the signed size or SHA-256.
    HashMismatch,
    /// The update has no file to download (a store link, a removal).
    NothingToDownload,
    /// An offline package is not a readable zip, lacks or contradicts its
    /// `manifest.json`, or uses an unsupported compression.
    PackageInvalid,
    /// An offline package names a file outside its folder (absolute path,
    /// `..`, backslash) or an id or version unusable as a folder name.
    UnsafePath,
    /// An offline package has too many entries or expands to too many bytes.
    TooLarge,
    /// The version asked for is not on the device.
    NotInstalled,
}

impl Refusal {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::SignatureInvalid => "signature_invalid",
            Refusal::ManifestMismatch => "manifest_mismatch",
            Refusal::HashMismatch => "hash_mismatch",
            Refusal::NothingToDownload => "nothing_to_download",
            Refusal::PackageInvalid => "package_invalid",
            Refusal::UnsafePath => "unsafe_path",
            Refusal::TooLarge => "too_large",
            Refusal::NotInstalled => "not_installed",
        }
    }
}

impl Error {
    /// The catalogue code, for API errors this SDK knows.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api { problem, .. } => problem.error_code(),
            _ => None,
        }
    }

    /// A stable code for any error, for the `error` of an install report:
    /// the refusal's code, the server's problem code, or the error's family
    /// (`network`, `io`, `decode`, `config`), or the envelope's code.
    pub fn report_code(&self) -> &'static str {
        match self {
            Error::Refused { reason, .. } => reason.code(),
            Error::Api { problem, .. } => problem
                .error_code()
                .map_or("api_error", |code| code.as_str()),
            Error::Transport(_) => "network",
            Error::Io(error) if error.kind() == std::io::ErrorKind::TimedOut => "timeout",
            Error::Io(_) => "io",
            Error::Decode(_) => "decode",
            Error::Config(_) => "config",
            Error::Envelope(error) => error.code(),
        }
    }

    pub(crate) fn refused(reason: Refusal, detail: impl Into<String>) -> Error {
        Error::Refused {
            reason,
            detail: detail.into(),
        }
    }

    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Result with the SDK error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Turns a non-success response into [`Error::Api`].
pub(crate) async fn check(response: reqwest::Response) -> Result<reqwest::Response> {
    let status = response.status();
    // 304 answers a conditional request: the caller's copy is current.
    if status.is_success() || status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(response);
    }
    let retry_after_secs = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    let text = response.text().await.unwrap_or_default();
    let problem = serde_json::from_str::<Problem>(&text).unwrap_or_else(|_| {
        let code = match status.as_u16() {
            404 => ErrorCode::NotFound,
            429 => ErrorCode::RateLimited,
            503 => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        };
        Problem::new(code, text.chars().take(200).collect::<String>())
    });
    Err(Error::Api {
        status: status.as_u16(),
        problem: Box::new(problem),
        retry_after_secs,
    })
}
