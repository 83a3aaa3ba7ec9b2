//! Untrusted gateway calls: header lines (`name: value`, as an HTTP parser hands
//! them over) and a body, read as `POST /gw/v1` reads them up to forwarding —
//! the operation type header, the JSON body, the path template filled from it.
//! Any input gives a path or a stable error code, never a panic, and a filled
//! path never escapes its template's segments.
#![no_main]

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first blank line separates headers from the body.
    let split = data
        .windows(2)
        .position(|pair| pair == b"\n\n")
        .unwrap_or(data.len());
    let (head, body) = data.split_at(split);
    let body = body.get(2..).unwrap_or(&[]);
    let mut headers = HeaderMap::new();
    for line in head.split(|byte| *byte == b'\n') {
        let Some(colon) = line.iter().position(|byte| *byte == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value[1..].trim_ascii()),
        ) {
            headers.append(name, value);
        }
    }
    for template in ["/orders/${id}", "/a/${x.y}/b", "/static"] {
        if let Ok(path) = atoll_server::fuzzing::gateway_call(&headers, body, template) {
            let prefix = template.split("${").next().unwrap_or("");
            assert!(path.starts_with(prefix), "{path} escaped {template}");
            assert!(!path.contains("/../") && !path.contains("/./"), "{path}");
        }
    }
});
