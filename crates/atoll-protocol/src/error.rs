//! The one catalogue of error codes, and the RFC 9457 problem body that carries them.
//!
//! Codes are part of the wire contract: clients match on them, so a code is never
//! renamed or reused for another meaning. Add new codes at the end of a group.

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($code:literal, $status:literal, $title:literal) ),+ $(,)?) => {
        /// A stable, machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )+
        }

        impl ErrorCode {
            /// Every code, in catalogue order.
            pub const ALL: &'static [ErrorCode] = &[ $(ErrorCode::$variant),+ ];

            /// The code as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)+ }
            }

            /// The HTTP status that accompanies the code.
            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)+ }
            }

            /// A short human title for the problem type.
            pub fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title,)+ }
            }

            /// Parses a wire code; unknown codes (from a newer server) give `None`.
            pub fn parse(code: &str) -> Option<ErrorCode> {
                match code { $($code => Some(ErrorCode::$variant),)+ _ => None }
            }
        }
    };
}

error_codes! {
    /// The request is malformed (bad JSON, missing header, wrong type).
    InvalidRequest = ("invalid_request", 400, "Invalid request"),
    /// A field failed validation; `detail` names the field.
    ValidationFailed = ("validation_failed", 422, "Validation failed"),
    /// No credentials, or credentials that are not valid.
    Unauthenticated = ("unauthenticated", 401, "Authentication required"),
    /// Wrong login or password.
    InvalidCredentials = ("invalid_credentials", 401, "Invalid credentials"),
    /// The caller is known but lacks the role or scope.
    Forbidden = ("forbidden", 403, "Forbidden"),
    /// The CSRF token of a console form is missing or wrong.
    CsrfFailed = ("csrf_failed", 403, "CSRF check failed"),
    /// The object does not exist, or is not visible to the caller.
    NotFound = ("not_found", 404, "Not found"),
    /// The route exists but not with this method.
    MethodNotAllowed = ("method_not_allowed", 405, "Method not allowed"),
    /// The object already exists (unique name, duplicate id).
    Conflict = ("conflict", 409, "Conflict"),
    /// The body (compressed or decompressed) is over its limit.
    PayloadTooLarge = ("payload_too_large", 413, "Payload too large"),
    /// The requested byte range lies outside the file.
    RangeNotSatisfiable = ("range_not_satisfiable", 416, "Range not satisfiable"),
    /// The `Content-Encoding` or `Content-Type` is not supported.
    UnsupportedMediaType = ("unsupported_media_type", 415, "Unsupported media type"),
    /// Too many requests; see `Retry-After`.
    RateLimited = ("rate_limited", 429, "Rate limited"),
    /// Too many failed logins; see `Retry-After`.
    LoginThrottled = ("login_throttled", 429, "Too many failed logins"),
    /// The device request signature headers are missing.
    MissingSignature = ("missing_signature", 401, "Missing signature"),
    /// The device request signature does not match.
    InvalidSignature = ("invalid_signature", 401, "Invalid signature"),
    /// The request timestamp is outside the accepted window.
    TimestampSkew = ("timestamp_skew", 401, "Timestamp outside the accepted window"),
    /// The nonce was already used inside the window.
    ReplayedNonce = ("replayed_nonce", 401, "Replayed nonce"),
    /// The app key is not known.
    UnknownApp = ("unknown_app", 401, "Unknown app"),
    /// The device is not registered with this app.
    UnknownDevice = ("unknown_device", 404, "Unknown device"),
    /// The server is overloaded or a dependency is down; see `Retry-After`.
    Unavailable = ("unavailable", 503, "Service unavailable"),
    /// A bug on the server; the request id helps find it in the logs.
    Internal = ("internal", 500, "Internal error"),
    /// An event batch holds more events than allowed.
    TooManyEvents = ("too_many_events", 422, "Too many events in one batch"),
    /// An event is malformed: bad uuid, bad name, negative duration; `detail` says which.
    InvalidEvent = ("invalid_event", 422, "Invalid event"),
    /// An event carries more custom attributes than allowed.
    TooManyAttributes = ("too_many_attributes", 422, "Too many attributes"),
    /// An event or attribute name is longer than allowed.
    NameTooLong = ("name_too_long", 422, "Name too long"),
    /// An attribute value (or page, session id) is longer than allowed.
    ValueTooLong = ("value_too_long", 422, "Value too long"),
    /// An event's client time is further from the server's clock than the rule allows.
    EventTimeOutOfRange = ("event_time_out_of_range", 422, "Event time out of range"),
    /// The app rejects events that are not declared in its registry.
    UnregisteredEvent = ("unregistered_event", 422, "Unregistered event"),
    /// An attribute value does not have the type its registry entry declares.
    AttributeTypeMismatch = ("attribute_type_mismatch", 422, "Attribute type mismatch"),
    /// A target rule does not parse or is not valid; the detail says where and why.
    InvalidRule = ("invalid_rule", 422, "Invalid target rule"),
    /// No API of the app has this operation type (mPaaS result 3000).
    UnknownOperation = ("unknown_operation", 404, "Unknown operation type"),
    /// The API exists but is disabled (mPaaS result 3000).
    ApiDisabled = ("api_disabled", 403, "API disabled"),
    /// The API requires an encrypted body and the request was not an envelope.
    EncryptionRequired = ("encryption_required", 400, "Encryption required"),
    /// The envelope's bytes are not an envelope of a known version.
    EnvelopeMalformed = ("envelope_malformed", 400, "Malformed envelope"),
    /// The envelope is sealed to a key this server does not hold.
    EnvelopeUnknownKey = ("envelope_unknown_key", 400, "Unknown envelope key"),
    /// The envelope is sealed to a rotated key whose overlap has ended: fetch the current key.
    EnvelopeKeyExpired = ("envelope_key_expired", 400, "Envelope key expired"),
    /// The envelope names a suite this server does not support.
    EnvelopeUnsupportedSuite = ("envelope_unsupported_suite", 400, "Unsupported envelope suite"),
    /// The envelope did not open: altered bytes, wrong key or wrong context (mPaaS result 3003).
    EnvelopeDecryptFailed = ("envelope_decrypt_failed", 400, "Envelope could not be decrypted"),
    /// The authorizer refused the caller (mPaaS result 1005).
    AuthorizerDenied = ("authorizer_denied", 401, "Not authorized"),
    /// The authorizer could not be asked or gave no principal.
    AuthorizerFailed = ("authorizer_failed", 502, "Authorizer failed"),
    /// The backend did not answer within the API's timeout (mPaaS result 4001).
    BackendTimeout = ("backend_timeout", 504, "Backend timeout"),
    /// The backend could not be reached.
    BackendUnavailable = ("backend_unavailable", 502, "Backend unavailable"),
    /// The backend answered with a server error, or an answer over the size limit.
    BackendError = ("backend_error", 502, "Backend error"),
    /// The group's circuit breaker is open after repeated failures; see `Retry-After`.
    CircuitOpen = ("circuit_open", 503, "Circuit open"),
    /// A backend URL or address is not on the server's backend allow-list.
    BackendNotAllowed = ("backend_not_allowed", 422, "Backend not allowed"),
    /// An API's mock cannot produce an answer (mPaaS result 1001).
    MockInvalid = ("mock_invalid", 500, "Invalid mock"),
    /// The sync biz type is offline: it accepts no orders and delivers nothing.
    BizTypeOffline = ("biz_type_offline", 409, "Biz type offline"),
    /// The WebSocket upgrade request is not valid (RFC 6455 handshake).
    UpgradeRequired = ("upgrade_required", 426, "Upgrade required"),
    /// A push names more targets than its send type allows (10 simple/template, 100 multiple).
    TooManyTargets = ("too_many_targets", 422, "Too many targets"),
    /// A template push lacks values for some placeholders; the detail lists them (mPaaS 3023).
    TemplateValuesMissing = ("template_values_missing", 422, "Template values missing"),
    /// A push's expiry is missing, too short or too long (mPaaS 3020, 3026).
    ExpiryOutOfRange = ("expiry_out_of_range", 422, "Expiry out of range"),
    /// A push carries more than 20 extra parameters (mPaaS 3035).
    TooManyExtras = ("too_many_extras", 422, "Too many extra parameters"),
    /// The message is older than the 7-day revoke window.
    RevokeWindowPassed = ("revoke_window_passed", 409, "Revoke window passed"),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An RFC 9457 problem document, as every Atoll error response carries it
/// (`Content-Type: application/problem+json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A URI naming the problem type (`urn:atoll:error:<code>`).
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short human title of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The stable error code.
    pub code: String,
    /// What went wrong in this occurrence, for a human.
    pub detail: String,
    /// The id of the request, also in the `x-request-id` header and the logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    /// Builds the problem body of a code with a detail message.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: format!("urn:atoll:error:{}", code.as_str()),
            title: code.title().to_owned(),
            status: code.status(),
            code: code.as_str().to_owned(),
            detail: detail.into(),
            request_id: None,
        }
    }

    /// The parsed error code, if this client knows it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::parse(&self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate code {code}");
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
            assert!((400..600).contains(&code.status()));
        }
    }
}
