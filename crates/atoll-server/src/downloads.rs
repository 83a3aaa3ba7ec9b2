//! Package and patch downloads: `GET /device/v1/downloads/{app_key}/{sha256}`.
//!
//! Unlike the rest of the device API these requests are not signed: the OS
//! installer, a download manager or a CDN in front of Atoll must be able to
//! fetch and resume them, and a signature with a single-use nonce cannot be
//! replayed for each range. What protects them: a blob is served only under
//! the key of an app it belongs to (a package or a ready patch of that app);
//! its address is a SHA-256 nobody guesses; and devices check the signed
//! manifest's hash before using what they downloaded.
//!
//! `Range` (one range: `a-b`, `a-`, `-n`) answers `206` with `Content-Range`,
//! a range outside the file `416`; blobs are immutable, so the `ETag` is the
//! hash and the answer may be cached for a year.

use crate::http::{ApiError, ApiResult};
use crate::state::AppState;
use atoll_protocol::ErrorCode;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;

/// The downloads router.
pub fn router() -> Router<AppState> {
    Router::new().route("/device/v1/downloads/{app_key}/{sha256}", get(download))
}

/// A parsed `Range` header for a file of `size` bytes: `Ok(None)` for the
/// whole file (no header, or one this server ignores, as RFC 9110 allows),
/// `Err` when the range lies outside the file.
pub fn parse_range(value: Option<&str>, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(spec) = value.and_then(|value| value.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Several ranges: serve the whole file rather than multipart.
        return Ok(None);
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (start, end) = (start.trim(), end.trim());
    let range = match (start.is_empty(), end.is_empty()) {
        (true, true) => return Ok(None),
        (true, false) => {
            let Ok(suffix) = end.parse::<u64>() else {
                return Ok(None);
            };
            if suffix == 0 {
                return Err(());
            }
            size.saturating_sub(suffix)..size
        }
        (false, _) => {
            let Ok(first) = start.parse::<u64>() else {
                return Ok(None);
            };
            let last = if end.is_empty() {
                size.saturating_sub(1)
            } else {
                match end.parse::<u64>() {
                    Ok(last) if last >= first => last.min(size.saturating_sub(1)),
                    _ => return Ok(None),
                }
            };
            if first >= size {
                return Err(());
            }
            first..last + 1
        }
    };
    if range.is_empty() {
        return Err(());
    }
    Ok(Some(range))
}

async fn download(
    State(state): State<AppState>,
    Path((app_key, sha256)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let not_found = || ApiError::new(ErrorCode::NotFound, "no such download");
    let valid = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !valid || !state.delivery.downloadable(&app_key, &sha256).await? {
        return Err(not_found());
    }
    let blobs = state.delivery.blobs();
    let size = blobs
        .size(&sha256)
        .await
        .map_err(atoll_delivery::Error::Store)?
        .ok_or_else(not_found)?;
    let etag = format!("\"{sha256}\"");
    let range_header = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok());
    // If-Range with another validator means the client's partial copy is stale.
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|value| value.to_str().ok())
        .is_none_or(|value| value.trim() == etag);
    let range = match parse_range(range_header.filter(|_| if_range_ok), size) {
        Ok(range) => range,
        Err(()) => {
            let mut response = ApiError::new(
                ErrorCode::RangeNotSatisfiable,
                format!("the file has {size} bytes"),
            )
            .into_response();
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
            );
            return Ok(response);
        }
    };
    let read = blobs
        .read(&sha256, range.clone())
        .await
        .map_err(atoll_delivery::Error::Store)?
        .ok_or_else(not_found)?;
    let length = read.range.end - read.range.start;
    let body = Body::from_stream(
        read.stream
            .map(|chunk| chunk.map_err(std::io::Error::other)),
    );
    let mut response = (
        if range.is_some() {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        },
        body,
    )
        .into_response();
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex"));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if range.is_some() {
        out.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!(
                "bytes {}-{}/{size}",
                read.range.start,
                read.range.end - 1
            ))
            .expect("ascii"),
        );
    }
    metrics::counter!("atoll_delivery_download_bytes_total").increment(length);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ok(Some(0..10)));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Ok(Some(90..100)));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some(90..100)));
        assert_eq!(parse_range(Some("bytes=-1000"), 100), Ok(Some(0..100)));
        assert_eq!(parse_range(Some("bytes=50-5000"), 100), Ok(Some(50..100)));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=-0"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=5-1"), 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Err(()));
    }
}
