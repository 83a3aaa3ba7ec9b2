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
}

impl Error {
    /// The catalogue code, for API errors this SDK knows.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api { problem, .. } => problem.error_code(),
            _ => None,
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
