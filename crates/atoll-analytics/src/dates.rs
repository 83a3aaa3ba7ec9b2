//! Day ranges of report filters, weeks and months of cohorts.

use crate::{Error, Result};
use atoll_events::Day;
use atoll_protocol::analytics::Granularity;
use atoll_protocol::time::{civil_from_days, days_from_civil};

/// The longest range a report covers.
pub const MAX_RANGE_DAYS: i32 = 366;

/// `YYYY-MM-DD` of a day number.
pub fn format_day(day: Day) -> String {
    let (y, m, d) = civil_from_days(i64::from(day));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Result<Day> {
    let invalid = || Error::Invalid(format!("'{text}' is not a date (YYYY-MM-DD)"));
    let mut parts = text.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let (y, m, d): (i64, u32, u32) = (
        y.parse().map_err(|_| invalid())?,
        m.parse().map_err(|_| invalid())?,
        d.parse().map_err(|_| invalid())?,
    );
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(invalid());
    }
    let day = days_from_civil(y, m, d);
    // Round-trip to reject 2026-02-30.
    if civil_from_days(day) != (y, m, d) {
        return Err(invalid());
    }
    Ok(day as Day)
}

/// The inclusive day range of a filter: `to` defaults to `today`, `from` to six
/// days before `to`.
pub fn range(from: Option<&str>, to: Option<&str>, today: Day) -> Result<(Day, Day)> {
    let to = to.map(parse_day).transpose()?.unwrap_or(today);
    let from = from.map(parse_day).transpose()?.unwrap_or(to - 6);
    if from > to {
        return Err(Error::Invalid(format!(
            "the range starts ({}) after it ends ({})",
            format_day(from),
            format_day(to)
        )));
    }
    if to - from + 1 > MAX_RANGE_DAYS {
        return Err(Error::Invalid(format!(
            "the range covers {} days; at most {MAX_RANGE_DAYS} are allowed",
            to - from + 1
        )));
    }
    Ok((from, to))
}

/// The first day of the period holding `day`.
pub fn period_start(day: Day, granularity: Granularity) -> Day {
    match granularity {
        Granularity::Hour | Granularity::Day => day,
        // 1970-01-01 was a Thursday: day 4 is a Monday.
        Granularity::Week => day - (day - 4).rem_euclid(7),
        Granularity::Month => {
            let (y, m, _) = civil_from_days(i64::from(day));
            days_from_civil(y, m, 1) as Day
        }
    }
}

/// The first day of the period after the one starting at `start`.
pub fn next_period(start: Day, granularity: Granularity) -> Day {
    match granularity {
        Granularity::Hour | Granularity::Day => start + 1,
        Granularity::Week => start + 7,
        Granularity::Month => {
            let (y, m, _) = civil_from_days(i64::from(start));
            let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            days_from_civil(y, m, 1) as Day
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_and_print() {
        let day = parse_day("2026-11-28").unwrap();
        assert_eq!(format_day(day), "2026-11-28");
        assert!(parse_day("2026-02-30").is_err());
        assert!(parse_day("2026-1-1x").is_err());
        assert!(parse_day("28/11/2026").is_err());
    }

    #[test]
    fn ranges_default_and_are_capped() {
        let today = parse_day("2026-11-28").unwrap();
        assert_eq!(range(None, None, today).unwrap(), (today - 6, today));
        assert!(range(Some("2026-11-29"), Some("2026-11-28"), today).is_err());
        assert!(range(Some("2020-01-01"), None, today).is_err());
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let saturday = parse_day("2026-11-28").unwrap();
        assert_eq!(
            format_day(period_start(saturday, Granularity::Week)),
            "2026-11-23"
        );
        assert_eq!(
            format_day(period_start(saturday, Granularity::Month)),
            "2026-11-01"
        );
        let december = next_period(parse_day("2026-12-01").unwrap(), Granularity::Month);
        assert_eq!(format_day(december), "2027-01-01");
    }
}
