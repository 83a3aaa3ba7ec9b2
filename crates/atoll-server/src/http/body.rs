//! Device request bodies: bounded read, signature check, per-app rate limit, then
//! bounded decompression and JSON parsing, in that order, so unauthenticated
//! senders cannot make the server inflate anything.

use super::error::ApiError;
use crate::state::AppState;
use atoll_platform::{DeviceCaller, SignatureHeaders};
use atoll_protocol::signing;
use atoll_protocol::ErrorCode;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use std::io::Read;
use std::time::Duration;

/// How much of an oversized body is read and thrown away before the 413 is sent.
/// Answering while the client is still sending makes the server close the
/// connection under it, and most clients then report a reset instead of the
/// answer (nginx's "lingering close" exists for the same reason). Past this many
/// bytes, or this long, the connection is simply closed.
const OVERSIZED_DRAIN_BYTES: usize = 16 * 1024 * 1024;
const OVERSIZED_DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads and discards what is left of a body the server has already refused, so
/// the sender gets to read the refusal; bounded in bytes and time.
async fn drain_refused(mut stream: axum::body::BodyDataStream, mut read: usize) {
    let _ = tokio::time::timeout(OVERSIZED_DRAIN_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
            if read > OVERSIZED_DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

/// Collects a body of at most `limit` bytes; a longer one is drained (see
/// [`drain_refused`]) and refused with `payload_too_large`.
pub(crate) async fn read_bounded(
    body: Body,
    limit: usize,
    declared: Option<usize>,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is over {limit} bytes"),
        )
    };
    let mut stream = body.into_data_stream();
    if let Some(length) = declared.filter(|length| *length > limit) {
        if length <= OVERSIZED_DRAIN_BYTES {
            drain_refused(stream, 0).await;
        }
        return Err(too_large());
    }
    let mut collected = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("the body could not be read: {error}"),
            )
        })?;
        if collected.len() + chunk.len() > limit {
            drain_refused(stream, collected.len() + chunk.len()).await;
            return Err(too_large());
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(collected.freeze())
}

/// A verified device request with its JSON body.
#[derive(Debug)]
pub struct Signed<T> {
    /// Which app and device sent it.
    pub caller: DeviceCaller,
    /// The parsed body.
    pub body: T,
}

pub(crate) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// The device signature headers of a request.
pub(crate) fn signature_headers(headers: &HeaderMap) -> SignatureHeaders {
    SignatureHeaders {
        app_key: header_text(headers, signing::HEADER_APP_KEY),
        device_id: header_text(headers, signing::HEADER_DEVICE_ID),
        timestamp: header_text(headers, signing::HEADER_TIMESTAMP),
        nonce: header_text(headers, signing::HEADER_NONCE),
        signature: header_text(headers, signing::HEADER_SIGNATURE),
    }
}

/// Inflates `body` according to `Content-Encoding`, refusing to produce more than
/// `limit` bytes: the decoder is read through a `take(limit + 1)`, so a bomb costs
/// at most `limit + 1` bytes of memory before it is refused.
pub fn decode_body(encoding: Option<&str>, body: Bytes, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body inflates to more than {limit} bytes"),
        )
    };
    let mut inflated = Vec::new();
    let outcome = match encoding.map(str::trim) {
        None | Some("") | Some("identity") => {
            return if body.len() > limit {
                Err(too_large())
            } else {
                Ok(body)
            };
        }
        Some("gzip") => flate2::read::GzDecoder::new(&body[..])
            .take(limit as u64 + 1)
            .read_to_end(&mut inflated),
        Some("zstd") => match zstd::stream::read::Decoder::new(&body[..]) {
            Ok(decoder) => decoder.take(limit as u64 + 1).read_to_end(&mut inflated),
            Err(error) => Err(error),
        },
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!("Content-Encoding '{other}' is not supported (use gzip, zstd or none)"),
            ))
        }
    };
    outcome.map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the body does not decompress: {error}"),
        )
    })?;
    if inflated.len() > limit {
        return Err(too_large());
    }
    Ok(Bytes::from(inflated))
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Signed<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limits = &state.config.device;
        let (parts, body) = request.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        let raw = read_bounded(body, limits.max_body_bytes, declared).await?;
        let headers = signature_headers(&parts.headers);
        let caller = state
            .platform
            .verifier()
            .verify(
                &headers,
                parts.method.as_str(),
                parts.uri.path(),
                parts.uri.query().unwrap_or(""),
                &raw,
            )
            .await?;
        state.limiter.check(&caller.app_id)?;
        let encoding = header_text(&parts.headers, header::CONTENT_ENCODING.as_str());
        let inflated = decode_body(encoding.as_deref(), raw, limits.max_decompressed_bytes)?;
        let body = serde_json::from_slice(if inflated.is_empty() {
            b"{}"
        } else {
            &inflated
        })
        .map_err(|error| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("invalid JSON body: {error}"),
            )
        })?;
        Ok(Signed { caller, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    #[test]
    fn decodes_gzip_zstd_and_identity() {
        let data = b"{\"a\":1}";
        assert_eq!(
            decode_body(Some("gzip"), gzip(data), 100).unwrap(),
            Bytes::from_static(data)
        );
        let zstd = Bytes::from(zstd::encode_all(&data[..], 3).unwrap());
        assert_eq!(
            decode_body(Some("zstd"), zstd, 100).unwrap(),
            Bytes::from_static(data)
        );
        assert_eq!(
            decode_body(None, Bytes::from_static(data), 100).unwrap(),
            Bytes::from_static(data)
        );
        let error = decode_body(Some("br"), Bytes::from_static(data), 100).unwrap_err();
        assert_eq!(error.code, ErrorCode::UnsupportedMediaType);
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
        assert!(bomb.len() < 100 * 1024, "the bomb is small on the wire");
        let error = decode_body(Some("gzip"), bomb, 1024 * 1024).unwrap_err();
        assert_eq!(error.code, ErrorCode::PayloadTooLarge);
        let error = decode_body(Some("gzip"), Bytes::from_static(b"not gzip"), 100).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidRequest);
    }
}
