//! Field rules shared by the admin API and the console. Each returns a message
//! naming the field, for a `validation_failed` error.

/// A workspace slug: 2–40 of `a-z`, `0-9`, `-`, starting with a letter.
pub fn slug(value: &str) -> Result<(), String> {
    let ok = (2..=40).contains(&value.len())
        && value.starts_with(|first: char| first.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err("slug: 2-40 characters of a-z, 0-9 and '-', starting with a letter".into())
    }
}

/// A display name: 1–`max` characters after trimming, no control characters.
pub fn display_name(field: &str, value: &str, max: usize) -> Result<(), String> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max {
        return Err(format!("{field}: 1-{max} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(format!("{field}: control characters are not allowed"));
    }
    Ok(())
}

/// An email: one `@` with text on both sides, at most 254 characters.
pub fn email(value: &str) -> Result<(), String> {
    let ok = value.len() <= 254
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        })
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err("email: not a valid address".into())
    }
}

/// A password: at least 10 characters, at most 1024 (argon2 input bound).
pub fn password(value: &str) -> Result<(), String> {
    if (10..=1024).contains(&value.chars().count()) {
        Ok(())
    } else {
        Err("password: 10-1024 characters".into())
    }
}

/// An id sent by a device (device id, user id): 1–128 printable ASCII characters.
pub fn device_text_id(field: &str, value: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(format!("{field}: 1-128 printable ASCII characters"))
    }
}

/// An optional descriptive device attribute: at most 100 characters, no control characters.
pub fn attribute(field: &str, value: Option<&str>) -> Result<(), String> {
    match value {
        Some(text) if text.chars().count() > 100 || text.chars().any(char::is_control) => Err(
            format!("{field}: at most 100 characters, no control characters"),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(slug("demo").is_ok());
        assert!(slug("prod-2").is_ok());
        assert!(slug("D").is_err());
        assert!(slug("2x").is_err());
        assert!(slug("a_b").is_err());
    }

    #[test]
    fn emails_and_ids() {
        assert!(email("admin@atoll.local").is_ok());
        assert!(email("nobody").is_err());
        assert!(email("a b@c.d").is_err());
        assert!(device_text_id("device_id", "abc-123").is_ok());
        assert!(device_text_id("device_id", "").is_err());
        assert!(device_text_id("device_id", "has space").is_err());
    }
}
