//! Formatting of Unix-millisecond times and durations for people.
//!
//! The console shows every time in UTC, `YYYY-MM-DD HH:MM UTC`: operators of one
//! instance sit in different zones, and the audit log must read the same to all of
//! them. A few lines of calendar arithmetic spare a date-time dependency.

/// `1700000000000` → `2023-11-14 22:13 UTC`.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let second_of_day = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        second_of_day / 3600,
        second_of_day % 3600 / 60
    )
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, exact for every `i64` day the clock can produce).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

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
    fn formats_known_instants() {
        assert_eq!(format_ms(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_ms(1_700_000_000_000), "2023-11-14 22:13 UTC");
        // A leap day, and the last minute of a leap year.
        assert_eq!(format_ms(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(format_ms(1_735_689_599_999), "2024-12-31 23:59 UTC");
        assert_eq!(format_ms(1_735_689_600_000), "2025-01-01 00:00 UTC");
        // 2100 is not a leap year: Feb 28 is followed by Mar 1.
        assert_eq!(format_ms(4_107_542_400_000), "2100-03-01 00:00 UTC");
    }

    #[test]
    fn times_before_1970_round_down() {
        assert_eq!(format_ms(-1), "1969-12-31 23:59 UTC");
        assert_eq!(format_ms(-86_400_000), "1969-12-31 00:00 UTC");
    }

    #[test]
    fn agrees_with_day_by_day_counting() {
        // Walk four centuries day by day with a naive calendar and compare.
        let (mut year, mut month, mut day) = (1970_i64, 1_u32, 1_u32);
        for days in 0..146_097_i64 {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let length = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > length {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }

    #[test]
    fn waits_read_naturally() {
        assert_eq!(format_wait(1), "1 second");
        assert_eq!(format_wait(45), "45 seconds");
        assert_eq!(format_wait(120), "2 minutes");
        assert_eq!(format_wait(61), "1 minute 1 second");
        assert_eq!(format_wait(900), "15 minutes");
    }
}
