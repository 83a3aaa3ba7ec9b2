//! Times and durations for people. Instants are formatted by
//! `atoll_protocol::time` (shared with the CLI and SDK); waits are console-only.

pub use atoll_protocol::time::format_ms;

/// A wait for people: `45 seconds`, `2 minutes`, `1 minute 30 seconds`.
pub fn format_wait(secs: u64) -> String {
    fn unit(count: u64, name: &str) -> String {
        format!("{count} {name}{}", if count == 1 { "" } else { "s" })
    }
    let (minutes, seconds) = (secs / 60, secs % 60);
    match (minutes, seconds) {
        (0, seconds) => unit(seconds, "second"),
        (minutes, 0) => unit(minutes, "minute"),
        (minutes, seconds) => format!("{} {}", unit(minutes, "minute"), unit(seconds, "second")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_naturally() {
        assert_eq!(format_wait(1), "1 second");
        assert_eq!(format_wait(45), "45 seconds");
        assert_eq!(format_wait(120), "2 minutes");
        assert_eq!(format_wait(61), "1 minute 1 second");
        assert_eq!(format_wait(900), "15 minutes");
    }
}
