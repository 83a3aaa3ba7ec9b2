//! Checks of what an admin saves: operation types, group names, URLs, header
//! names, paths and every limit, with messages that name the field. Saving is
//! the place to refuse a mistake; the runtime then trusts what it loads.

use crate::{Error, Result};
use atoll_gateway_policy::backends::BackendPolicy;
use atoll_gateway_policy::mock;
use atoll_gateway_policy::response_cache::CacheKeySpec;
use atoll_gateway_policy::template::PathTemplate;
use atoll_protocol::gateway::{limits, ApiGroupSpec, ApiSpec, GatewaySettings};

fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}

/// The mPaaS naming rule, kept strict so operation types read the same in every
/// app: at least three dot-separated segments, each starting with a lowercase
/// letter, then lowercase letters, digits or `_`. (`com.shop.order.create`)
pub fn operation_type(value: &str) -> Result<()> {
    let rule = "operation_type: at least three dot-separated segments of [a-z][a-z0-9_]* (like com.shop.order.create)";
    if value.len() > limits::MAX_OPERATION_TYPE_BYTES {
        return Err(invalid(format!(
            "operation_type: at most {} bytes",
            limits::MAX_OPERATION_TYPE_BYTES
        )));
    }
    let segments: Vec<&str> = value.split('.').collect();
    let well_formed = segments.len() >= 3
        && segments.iter().all(|segment| {
            let mut chars = segment.chars();
            chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if well_formed {
        Ok(())
    } else {
        Err(invalid(format!("{rule}; got '{value}'")))
    }
}

/// Group names as mPaaS has them: a letter or `_`, then `[A-Za-z0-9_-]`.
pub fn group_name(value: &str) -> Result<()> {
    let mut chars = value.chars();
    let well_formed = value.len() <= limits::MAX_GROUP_NAME_BYTES
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if well_formed {
        Ok(())
    } else {
        Err(invalid(format!(
            "name: a letter or '_', then letters, digits, '_' or '-', at most {} bytes; got '{value}'",
            limits::MAX_GROUP_NAME_BYTES
        )))
    }
}

/// A header name the gateway may set or remove: a valid HTTP token, and never
/// one of the headers the gateway owns (`x-atoll-*`) or that framing depends on.
fn header_name(field: &str, name: &str) -> Result<()> {
    let lower = name.to_ascii_lowercase();
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(invalid(format!("{field}: '{name}' is not a header name")));
    }
    const RESERVED: &[&str] = &[
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "proxy-connection",
    ];
    if lower.starts_with("x-atoll-") || RESERVED.contains(&lower.as_str()) {
        return Err(invalid(format!(
            "{field}: '{name}' is set by the gateway and cannot be changed"
        )));
    }
    Ok(())
}

fn timeout(field: &str, value: Option<u32>) -> Result<()> {
    match value {
        Some(ms) if ms == 0 || ms > limits::MAX_TIMEOUT_MS => Err(invalid(format!(
            "{field}: 1 to {} ms",
            limits::MAX_TIMEOUT_MS
        ))),
        _ => Ok(()),
    }
}

/// Checks a group; the base URL must pass the server's backend allow-list.
pub fn group(spec: &ApiGroupSpec, backends: &BackendPolicy) -> Result<url::Url> {
    group_name(&spec.name)?;
    let url =
        url::Url::parse(&spec.base_url).map_err(|error| invalid(format!("base_url: {error}")))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("base_url: no query or fragment"));
    }
    backends
        .check_url(&url)
        .map_err(|refusal| Error::BackendNotAllowed(format!("base_url: {refusal}")))?;
    timeout("timeout_ms", spec.timeout_ms)?;
    if spec.headers_add.len() > limits::MAX_GROUP_HEADERS
        || spec.headers_remove.len() > limits::MAX_GROUP_HEADERS
    {
        return Err(invalid(format!(
            "headers_add, headers_remove: at most {} each",
            limits::MAX_GROUP_HEADERS
        )));
    }
    for (name, value) in &spec.headers_add {
        header_name("headers_add", name)?;
        if http::HeaderValue::from_str(value).is_err() {
            return Err(invalid(format!(
                "headers_add: the value of '{name}' is not a valid header value"
            )));
        }
    }
    for name in &spec.headers_remove {
        header_name("headers_remove", name)?;
    }
    if spec.max_pending == Some(0) {
        return Err(invalid("max_pending: at least 1"));
    }
    if spec.breaker.failure_threshold == 0 || spec.breaker.open_secs == 0 {
        return Err(invalid(
            "breaker: failure_threshold and open_secs are at least 1",
        ));
    }
    Ok(url)
}

fn schema(field: &str, value: &Option<serde_json::Value>) -> Result<()> {
    if let Some(value) = value {
        if !value.is_object() {
            return Err(invalid(format!("{field}: a JSON schema object")));
        }
        if value.to_string().len() > limits::MAX_SCHEMA_BYTES {
            return Err(invalid(format!(
                "{field}: at most {} bytes",
                limits::MAX_SCHEMA_BYTES
            )));
        }
    }
    Ok(())
}

/// Checks an API (the group and authorizer are checked against the app by the
/// caller, which knows them).
pub fn api(spec: &ApiSpec) -> Result<PathTemplate> {
    operation_type(&spec.operation_type)?;
    group_name(&spec.group).map_err(|error| invalid(format!("group: {error}")))?;
    if spec.path.len() > limits::MAX_PATH_BYTES {
        return Err(invalid(format!(
            "path: at most {} bytes",
            limits::MAX_PATH_BYTES
        )));
    }
    let template =
        PathTemplate::parse(&spec.path).map_err(|error| invalid(format!("path: {error}")))?;
    timeout("timeout_ms", spec.timeout_ms)?;
    if spec.retries > limits::MAX_RETRIES {
        return Err(invalid(format!("retries: 0 to {}", limits::MAX_RETRIES)));
    }
    if spec.retries > 0 && !spec.method.is_idempotent() {
        return Err(invalid(format!(
            "retries: only idempotent methods are retried, and {} is not",
            spec.method
        )));
    }
    if let Some(bytes) = spec.max_request_bytes {
        if bytes == 0 || bytes > limits::DEFAULT_MAX_REQUEST_BYTES {
            return Err(invalid(format!(
                "max_request_bytes: 1 to {}",
                limits::DEFAULT_MAX_REQUEST_BYTES
            )));
        }
    }
    if let Some(bytes) = spec.max_response_bytes {
        if bytes == 0 || bytes > limits::MAX_RESPONSE_BYTES {
            return Err(invalid(format!(
                "max_response_bytes: 1 to {}",
                limits::MAX_RESPONSE_BYTES
            )));
        }
    }
    if spec.description.len() > limits::MAX_DESCRIPTION_BYTES {
        return Err(invalid(format!(
            "description: at most {} bytes",
            limits::MAX_DESCRIPTION_BYTES
        )));
    }
    schema("request_schema", &spec.request_schema)?;
    schema("response_schema", &spec.response_schema)?;
    for (field, value) in [
        ("rate_limit.qps", spec.rate_limit.qps),
        ("rate_limit.per_device_qps", spec.rate_limit.per_device_qps),
    ] {
        if value == Some(0) {
            return Err(invalid(format!(
                "{field}: at least 1 (leave it out for no limit)"
            )));
        }
    }
    if let Some(cache) = &spec.cache {
        if cache.ttl_secs == 0 || cache.ttl_secs > limits::MAX_CACHE_TTL_SECS {
            return Err(invalid(format!(
                "cache.ttl_secs: 1 to {}",
                limits::MAX_CACHE_TTL_SECS
            )));
        }
        if cache.key.len() > limits::MAX_CACHE_KEY_PARTS {
            return Err(invalid(format!(
                "cache.key: at most {} parts",
                limits::MAX_CACHE_KEY_PARTS
            )));
        }
        CacheKeySpec::parse(&cache.key).map_err(|error| invalid(format!("cache.key: {error}")))?;
    }
    if let Some(mock_spec) = &spec.mock {
        if !(100..=599).contains(&mock_spec.status) {
            return Err(invalid("mock.status: an HTTP status, 100 to 599"));
        }
        if mock_spec.delay_ms > limits::MAX_MOCK_DELAY_MS {
            return Err(invalid(format!(
                "mock.delay_ms: at most {}",
                limits::MAX_MOCK_DELAY_MS
            )));
        }
        if mock_spec.body.is_none() {
            let schema = spec.response_schema.as_ref().ok_or_else(|| {
                invalid("mock: give a body, or a response_schema to generate one from")
            })?;
            mock::generate(schema, 0).map_err(|error| invalid(format!("mock: {error}")))?;
        }
    }
    if let Some(authorizer) = &spec.authorizer {
        operation_type(&authorizer.operation_type)
            .map_err(|error| invalid(format!("authorizer.{error}")))?;
        if authorizer.operation_type == spec.operation_type {
            return Err(invalid("authorizer: an API cannot authorize itself"));
        }
        if authorizer.headers.is_empty()
            || authorizer.headers.len() > limits::MAX_AUTHORIZER_HEADERS
        {
            return Err(invalid(format!(
                "authorizer.headers: 1 to {} header names",
                limits::MAX_AUTHORIZER_HEADERS
            )));
        }
        for name in &authorizer.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(format!(
                    "authorizer.headers: '{name}' is not a header name"
                )));
            }
        }
        if authorizer.cache_ttl_secs > limits::MAX_CACHE_TTL_SECS {
            return Err(invalid(format!(
                "authorizer.cache_ttl_secs: at most {}",
                limits::MAX_CACHE_TTL_SECS
            )));
        }
    }
    Ok(template)
}

/// Checks app-wide settings.
pub fn settings(settings: &GatewaySettings) -> Result<()> {
    for (field, value) in [
        ("default_api_qps", settings.default_api_qps),
        ("app_total_qps", settings.app_total_qps),
        ("default_per_device_qps", settings.default_per_device_qps),
    ] {
        if value == Some(0) {
            return Err(invalid(format!(
                "{field}: at least 1 (leave it out for no limit)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn operation_types_follow_the_naming_rule() {
        for good in ["com.shop.order.create", "a.b.c", "com.shop2.get_order"] {
            operation_type(good).unwrap();
        }
        for bad in [
            "",
            "com.shop",
            "Com.shop.order",
            "com..order",
            "com.shop.order.",
            "com.shop.1order",
            "com.shop.order-create",
            "com.shop.order create",
        ] {
            assert!(operation_type(bad).is_err(), "{bad}");
        }
        assert!(operation_type(&format!("a.b.{}", "c".repeat(200))).is_err());
    }

    #[test]
    fn group_names_follow_the_mpaas_rule() {
        for good in ["orders", "_internal", "Shop-API_2"] {
            group_name(good).unwrap();
        }
        for bad in ["", "2shop", "-shop", "shop api", "shop.api"] {
            assert!(group_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gateway_owned_headers_cannot_be_added_or_removed() {
        assert!(header_name("headers_add", "X-Atoll-User-Id").is_err());
        assert!(header_name("headers_remove", "Host").is_err());
        assert!(header_name("headers_add", "bad header").is_err());
        header_name("headers_add", "x-tenant").unwrap();
    }

    proptest! {
        #[test]
        fn accepted_operation_types_are_header_safe(value in "[a-z][a-z0-9_]{0,8}(\\.[a-z][a-z0-9_]{0,8}){2,5}") {
            prop_assert!(operation_type(&value).is_ok());
            prop_assert!(http::HeaderValue::from_str(&value).is_ok());
        }

        #[test]
        fn no_accepted_operation_type_has_unsafe_bytes(value in "\\PC{0,40}") {
            if operation_type(&value).is_ok() {
                prop_assert!(value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.'));
            }
        }
    }
}
