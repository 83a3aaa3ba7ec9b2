//! Unix-millisecond times, as Atoll stores and sends them, turned into calendar
//! dates and back. Every client shows times in UTC (`YYYY-MM-DD HH:MM UTC`):
//! operators of one instance sit in different zones, and the audit log must read
//! the same to all of them. A few lines of calendar arithmetic spare a date-time
//! dependency in the SDK.

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
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

/// Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`, the inverse of [`civil_from_days`]).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400;
    let month_index = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_index + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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
    fn days_from_civil_inverts_civil_from_days() {
        for days in (-800_000_i64..800_000).step_by(997) {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
    }
}
