//! The platform's errors, each with its catalogue code.

use atoll_protocol::ErrorCode;

/// Errors of the platform service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field failed validation.
    #[error("{0}")]
    Validation(String),
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Wrong email or password.
    #[error("wrong email or password")]
    InvalidCredentials,
    /// Too many failed logins.
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    LoginThrottled {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Known caller, insufficient role or scope.
    #[error("{0}")]
    Forbidden(String),
    /// Missing or invisible object.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name or id is taken.
    #[error("{0}")]
    Conflict(String),
    /// Device signature headers missing or malformed.
    #[error("{0}")]
    MissingSignature(String),
    /// Signature mismatch.
    #[error("the request signature does not match")]
    InvalidSignature,
    /// Timestamp outside the window.
    #[error("{0}")]
    TimestampSkew(String),
    /// Nonce already used.
    #[error("this nonce was already used")]
    ReplayedNonce,
    /// Unknown app key.
    #[error("unknown app key")]
    UnknownApp,
    /// Device not registered.
    #[error("device is not registered; call register first")]
    UnknownDevice,
    /// Overloaded (nonce memory full).
    #[error("{0}")]
    Unavailable(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] atoll_store::Error),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Error::Store(error.into())
    }
}

impl Error {
    /// The catalogue code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Validation(_) => ErrorCode::ValidationFailed,
            Error::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Error::InvalidCredentials => ErrorCode::InvalidCredentials,
            Error::LoginThrottled { .. } => ErrorCode::LoginThrottled,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::MissingSignature(_) => ErrorCode::MissingSignature,
            Error::InvalidSignature => ErrorCode::InvalidSignature,
            Error::TimestampSkew(_) => ErrorCode::TimestampSkew,
            Error::ReplayedNonce => ErrorCode::ReplayedNonce,
            Error::UnknownApp => ErrorCode::UnknownApp,
            Error::UnknownDevice => ErrorCode::UnknownDevice,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Store(error) if error.is_unique_violation() => ErrorCode::Conflict,
            Error::Store(_) => ErrorCode::Unavailable,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Seconds the client should wait before retrying, where that is known.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::LoginThrottled { retry_after_secs } => Some(*retry_after_secs),
            Error::Unavailable(_) | Error::Store(_) => Some(1),
            _ => None,
        }
    }

    /// Whether the message may be shown to the client (storage details stay inside).
    pub fn is_internal(&self) -> bool {
        matches!(self, Error::Store(_) | Error::Internal(_))
    }
}

/// Result with the platform error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps a validation message into the error.
pub(crate) fn check(outcome: std::result::Result<(), String>) -> Result<()> {
    outcome.map_err(Error::Validation)
}

/// The answers every module's error gives the HTTP layer — its catalogue
/// code, a retry hint, whether its detail stays in the log — and the
/// conversion from `sqlx::Error`, written once from a table:
///
/// ```ignore
/// atoll_platform::module_error!(Error {
///     delegate: [Platform, Lists],       // wrap an error that answers for itself
///     internal: [Store, Internal],       // `internal` code, detail only logged
///     codes: { Invalid => ValidationFailed, NotFound => NotFound },
/// });
/// ```
///
/// The enum must have a `Store(atoll_store::Error)` variant (for `sqlx`
/// errors) and the calling crate must depend on `sqlx` and `atoll-store`.
#[macro_export]
macro_rules! module_error {
    ($error:ident {
        delegate: [$($delegate:ident),* $(,)?],
        internal: [$($internal:ident),* $(,)?],
        codes: { $($variant:ident => $code:ident),* $(,)? } $(,)?
    }) => {
        impl From<sqlx::Error> for $error {
            fn from(error: sqlx::Error) -> Self {
                $error::Store(atoll_store::Error::Database(error))
            }
        }

        impl $error {
            /// The catalogue code.
            pub fn code(&self) -> atoll_protocol::ErrorCode {
                match self {
                    $($error::$delegate(error) => error.code(),)*
                    $($error::$internal { .. } => atoll_protocol::ErrorCode::Internal,)*
                    $($error::$variant { .. } => atoll_protocol::ErrorCode::$code,)*
                }
            }

            /// Seconds a client should wait before retrying, for overload.
            pub fn retry_after_secs(&self) -> Option<u64> {
                match self {
                    $($error::$delegate(error) => error.retry_after_secs(),)*
                    _ => None,
                }
            }

            /// Whether the detail is for the log only (storage and bugs).
            pub fn is_internal(&self) -> bool {
                match self {
                    $($error::$delegate(error) => error.is_internal(),)*
                    $($error::$internal { .. } => true,)*
                    _ => false,
                }
            }
        }
    };
}
