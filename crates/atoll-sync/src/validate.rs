//! The rules a biz type and a sync order must follow, with messages that say
//! which field is wrong and why.

use crate::{Error, Result};
use atoll_core::rules::version::Version;
use atoll_protocol::sync::{
    BizTypeSpec, DeliveryFilter, Dimension, MAX_BACKLOG_THRESHOLD, MAX_BIZ_TYPE_LEN,
    MAX_PAYLOAD_CHARS, MAX_RETENTION_DAYS, MAX_THIRD_MSG_ID_BYTES,
};

/// Longest biz type description.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}

/// `ORDER-STATUS`: upper-case letters and digits in hyphen-separated words.
pub fn biz_type_id(id: &str) -> Result<()> {
    let words_ok = id.split('-').all(|word| {
        !word.is_empty()
            && word
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    if id.is_empty() || id.len() > MAX_BIZ_TYPE_LEN || !words_ok {
        return Err(invalid(format!(
            "biz type id '{id}': 1-{MAX_BIZ_TYPE_LEN} upper-case letters and digits in words joined by single hyphens (e.g. ORDER-STATUS)"
        )));
    }
    Ok(())
}

/// A whole biz type.
pub fn spec(spec: &BizTypeSpec) -> Result<()> {
    biz_type_id(&spec.id)?;
    if spec.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(format!(
            "description: at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    if !(1..=MAX_RETENTION_DAYS).contains(&spec.retention_days) {
        return Err(invalid(format!("retention_days: 1-{MAX_RETENTION_DAYS}")));
    }
    if let Some(keep) = spec.backlog_threshold {
        if !(1..=MAX_BACKLOG_THRESHOLD).contains(&keep) {
            return Err(invalid(format!(
                "backlog_threshold: 1-{MAX_BACKLOG_THRESHOLD} (omit it to keep the whole backlog)"
            )));
        }
    }
    if spec.dimension == Dimension::Device && (spec.multi_device || spec.user_consistency) {
        return Err(invalid(
            "multi_device and user_consistency apply to user-dimension biz types only",
        ));
    }
    if !spec.persistent && spec.backlog_threshold.is_some() {
        return Err(invalid(
            "backlog_threshold needs a persistent biz type (non-persistent data is never stored)",
        ));
    }
    Ok(())
}

/// The sender's id of a datum.
pub fn third_msg_id(value: &str) -> Result<()> {
    if value.is_empty()
        || value.len() > MAX_THIRD_MSG_ID_BYTES
        || value.chars().any(char::is_control)
    {
        return Err(invalid(format!(
            "third_msg_id: 1-{MAX_THIRD_MSG_ID_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

/// A user or device id.
pub fn link_token(value: &str) -> Result<()> {
    atoll_core::validate::device_text_id("link_token", value).map_err(Error::Invalid)
}

/// The data itself.
pub fn payload(value: &str) -> Result<()> {
    if value.chars().count() > MAX_PAYLOAD_CHARS {
        return Err(Error::TooLarge(format!(
            "payload: at most {MAX_PAYLOAD_CHARS} characters"
        )));
    }
    Ok(())
}

/// The validity, which the biz type's retention caps.
pub fn valid_seconds(value: Option<u64>, retention_days: u32) -> Result<u64> {
    let cap = u64::from(retention_days) * 86_400;
    match value {
        None => Ok(cap),
        Some(0) => Err(invalid("valid_seconds: at least 1")),
        Some(seconds) if seconds > cap => Err(invalid(format!(
            "valid_seconds: at most the biz type's retention ({cap} s)"
        ))),
        Some(seconds) => Ok(seconds),
    }
}

/// The delivery filter: versions must parse and the range must not be empty.
pub fn filter(filter: &DeliveryFilter) -> Result<()> {
    let parse = |field: &str, text: &Option<String>| -> Result<Option<Version>> {
        text.as_deref()
            .map(|text| Version::parse(text).map_err(|error| invalid(format!("{field}: {error}"))))
            .transpose()
    };
    let min = parse("app_min_version", &filter.app_min_version)?;
    let max = parse("app_max_version", &filter.app_max_version)?;
    if let (Some(min), Some(max)) = (&min, &max) {
        if min.compare(max) == std::cmp::Ordering::Greater {
            return Err(invalid("app_min_version is above app_max_version"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BizTypeSpec {
        BizTypeSpec {
            id: "ORDER-STATUS".into(),
            description: String::new(),
            dimension: Dimension::User,
            persistent: true,
            backlog_threshold: None,
            multi_device: true,
            global_allowed: false,
            retention_days: 30,
            user_consistency: false,
            enabled: true,
        }
    }

    #[test]
    fn biz_type_ids() {
        for good in ["ORDER-STATUS", "A", "DEVICE-LOCK-2", "X1"] {
            assert!(biz_type_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "order",
            "ORDER_STATUS",
            "-A",
            "A-",
            "A--B",
            "ÄB",
            &"A".repeat(65),
        ] {
            assert!(biz_type_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn specs() {
        assert!(spec(&base()).is_ok());
        let device = BizTypeSpec {
            dimension: Dimension::Device,
            ..base()
        };
        assert!(spec(&device).is_err(), "multi_device on a device biz type");
        assert!(spec(&BizTypeSpec {
            retention_days: 0,
            ..base()
        })
        .is_err());
        assert!(spec(&BizTypeSpec {
            backlog_threshold: Some(0),
            ..base()
        })
        .is_err());
        assert!(spec(&BizTypeSpec {
            persistent: false,
            backlog_threshold: Some(3),
            ..base()
        })
        .is_err());
    }

    #[test]
    fn order_fields() {
        assert!(third_msg_id(&"x".repeat(100)).is_ok());
        assert!(third_msg_id(&"x".repeat(101)).is_err());
        assert!(third_msg_id("a\nb").is_err());
        assert!(payload(&"é".repeat(4096)).is_ok(), "characters, not bytes");
        assert!(matches!(
            payload(&"x".repeat(4097)),
            Err(Error::TooLarge(_))
        ));
        assert_eq!(valid_seconds(None, 1).unwrap(), 86_400);
        assert!(valid_seconds(Some(86_401), 1).is_err());
        assert!(filter(&DeliveryFilter {
            platforms: vec![],
            app_min_version: Some("2.0".into()),
            app_max_version: Some("1.9".into()),
        })
        .is_err());
    }
}
