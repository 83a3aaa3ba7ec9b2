//! Local validation with the server's rules (atoll-analytics `ingest.rs`).
//!
//! The server refuses a whole batch for one bad event, so an event it would
//! refuse must never reach the queue: `track` reports it to the caller instead,
//! as the same [`Error::Api`] the server would have answered (status and code
//! from the catalogue), so apps handle both the same way.

use crate::Error;
use atoll_protocol::events::{limits, AttributeValue};
use atoll_protocol::{ErrorCode, Problem};
use std::collections::BTreeMap;

/// Characters in a page, referrer or user id. The server allows more than
/// [`limits::MAX_VALUE_CHARS`] here because pages are often URLs
/// (`IngestLimits::max_page_chars`).
pub(crate) const MAX_PAGE_CHARS: usize = 256;

pub(crate) fn refusal(code: ErrorCode, detail: impl Into<String>) -> Error {
    Error::Api {
        status: code.status(),
        problem: Box::new(Problem::new(code, detail)),
        retry_after_secs: None,
    }
}

/// An event or attribute name: 1 to 40 letters, digits, `_`, `.` or `-`.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let chars = name.chars().count();
    if chars == 0 {
        return Err(refusal(
            ErrorCode::InvalidEvent,
            format!("the {what} is empty"),
        ));
    }
    if chars > limits::MAX_NAME_CHARS {
        return Err(refusal(
            ErrorCode::NameTooLong,
            format!(
                "the {what} has {chars} characters; at most {} are allowed",
                limits::MAX_NAME_CHARS
            ),
        ));
    }
    // `is_alphanumeric`, not the ASCII variant: the server accepts any letter.
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(refusal(
            ErrorCode::InvalidEvent,
            format!("the {what} '{name}' may hold only letters, digits, '_', '.' and '-'"),
        ));
    }
    Ok(())
}

/// An app's own event name; `$` names belong to the tracker.
pub(crate) fn check_event_name(event_id: &str) -> Result<(), Error> {
    if event_id.starts_with('$') {
        return Err(refusal(
            ErrorCode::InvalidEvent,
            format!(
                "the event_id '{event_id}' starts with '$', which is reserved for built-in events"
            ),
        ));
    }
    check_name("event_id", event_id)
}

/// A free text field (page, user id, text attribute) against its length limit.
pub(crate) fn check_text(what: &str, value: &str, max: usize) -> Result<(), Error> {
    let chars = value.chars().count();
    if chars > max {
        return Err(refusal(
            ErrorCode::ValueTooLong,
            format!("the {what} has {chars} characters; at most {max} are allowed"),
        ));
    }
    Ok(())
}

/// Custom attributes: count, names, text lengths, and finite numbers (JSON has
/// no NaN: it would be sent as `null` and the server would refuse the batch).
pub(crate) fn check_attributes(attributes: &BTreeMap<String, AttributeValue>) -> Result<(), Error> {
    if attributes.len() > limits::MAX_ATTRIBUTES {
        return Err(refusal(
            ErrorCode::TooManyAttributes,
            format!(
                "the event has {} attributes; at most {} are allowed",
                attributes.len(),
                limits::MAX_ATTRIBUTES
            ),
        ));
    }
    for (name, value) in attributes {
        check_name("attribute name", name)?;
        match value {
            AttributeValue::Text(text) => check_text(
                &format!("attribute '{name}'"),
                text,
                limits::MAX_VALUE_CHARS,
            )?,
            AttributeValue::Number(number) if !number.is_finite() => {
                return Err(refusal(
                    ErrorCode::InvalidEvent,
                    format!("the attribute '{name}' is {number}; only finite numbers can be sent"),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(result: Result<(), Error>) -> Option<ErrorCode> {
        result.err().and_then(|error| error.code())
    }

    #[test]
    fn names_follow_the_server_rules() {
        assert!(check_event_name("purchase").is_ok());
        assert!(check_event_name("checkout.step-2_done").is_ok());
        assert!(
            check_event_name("achat_réussi").is_ok(),
            "any letter is a letter"
        );
        assert!(check_event_name(&"a".repeat(40)).is_ok());
        assert_eq!(
            code(check_event_name(&"a".repeat(41))),
            Some(ErrorCode::NameTooLong)
        );
        // Length is in characters, not bytes.
        assert!(check_event_name(&"é".repeat(40)).is_ok());
        assert_eq!(code(check_event_name("")), Some(ErrorCode::InvalidEvent));
        assert_eq!(
            code(check_event_name("has space")),
            Some(ErrorCode::InvalidEvent)
        );
        assert_eq!(code(check_event_name("a/b")), Some(ErrorCode::InvalidEvent));
        assert_eq!(
            code(check_event_name("$launch")),
            Some(ErrorCode::InvalidEvent)
        );
        assert_eq!(
            code(check_event_name("$custom")),
            Some(ErrorCode::InvalidEvent)
        );
        let error = check_event_name("$custom").unwrap_err();
        assert_eq!(error.status(), Some(422));
    }

    #[test]
    fn attributes_follow_the_server_rules() {
        let mut attributes: BTreeMap<String, AttributeValue> = (0..25)
            .map(|index| (format!("a{index}"), AttributeValue::from(index as i64)))
            .collect();
        assert!(check_attributes(&attributes).is_ok());
        attributes.insert("one_more".into(), true.into());
        assert_eq!(
            code(check_attributes(&attributes)),
            Some(ErrorCode::TooManyAttributes)
        );

        let one = |name: &str, value: AttributeValue| {
            check_attributes(&BTreeMap::from([(name.to_owned(), value)]))
        };
        assert!(one("color", "x".repeat(100).into()).is_ok());
        assert_eq!(
            code(one("color", "x".repeat(101).into())),
            Some(ErrorCode::ValueTooLong)
        );
        assert_eq!(
            code(one("bad name", 1i64.into())),
            Some(ErrorCode::InvalidEvent)
        );
        assert_eq!(code(one("$x", 1i64.into())), Some(ErrorCode::InvalidEvent));
        assert_eq!(
            code(one(&"n".repeat(41), 1i64.into())),
            Some(ErrorCode::NameTooLong)
        );
        assert_eq!(
            code(one("ratio", f64::NAN.into())),
            Some(ErrorCode::InvalidEvent)
        );
        assert_eq!(
            code(one("ratio", f64::INFINITY.into())),
            Some(ErrorCode::InvalidEvent)
        );
        assert!(one("ratio", 2.5.into()).is_ok());
    }
}
