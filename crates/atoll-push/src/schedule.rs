//! Scheduled and recurring sends: when the next send of a [`Recurrence`] is.
//! Pure arithmetic on milliseconds with a fixed UTC offset (no time-zone
//! database: the sender states the offset, as mPaaS's console does).

use crate::{Error, Result};
use atoll_protocol::push::{limits, Recurrence, RecurrenceUnit};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// Minutes after local midnight of `HH:MM`.
fn minute_of_day(time: &str) -> Option<i64> {
    let (h, m) = time.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 60 + m)
}

/// ISO weekday (1 = Monday) of a day number since 1970-01-01 (a Thursday).
fn weekday(day: i64) -> u8 {
    ((day + 3).rem_euclid(7) + 1) as u8
}

/// Checks a recurrence sent at `now`.
pub fn check(recurrence: &Recurrence, now: i64) -> Result<()> {
    if minute_of_day(&recurrence.time).is_none() {
        return Err(Error::Invalid(format!(
            "recurrence time '{}' must be HH:MM",
            recurrence.time
        )));
    }
    if recurrence.utc_offset_minutes.abs() > 14 * 60 {
        return Err(Error::Invalid(
            "utc_offset_minutes must be within ±840".into(),
        ));
    }
    match recurrence.every {
        RecurrenceUnit::Weekly
            if recurrence.weekdays.is_empty()
                || recurrence.weekdays.iter().any(|d| !(1..=7).contains(d)) =>
        {
            return Err(Error::Invalid(
                "a weekly recurrence needs weekdays from 1 (Monday) to 7 (Sunday)".into(),
            ))
        }
        RecurrenceUnit::Daily if !recurrence.weekdays.is_empty() => {
            return Err(Error::Invalid("weekdays are for weekly recurrences".into()))
        }
        _ => {}
    }
    if recurrence.end_ms <= recurrence.start_ms || recurrence.end_ms <= now {
        return Err(Error::Invalid(
            "a recurrence's end must be after its start and in the future".into(),
        ));
    }
    if recurrence.end_ms - now > limits::MAX_SCHEDULE_AHEAD_DAYS * DAY_MS {
        return Err(Error::Invalid(format!(
            "a recurrence ends at most {} days ahead",
            limits::MAX_SCHEDULE_AHEAD_DAYS
        )));
    }
    if next_after(recurrence, now).is_none() {
        return Err(Error::Invalid(
            "the recurrence has no send between now and its end".into(),
        ));
    }
    Ok(())
}

/// The first send strictly after `after` (and not before the start), or
/// `None` when the window has none left.
pub fn next_after(recurrence: &Recurrence, after: i64) -> Option<i64> {
    let minute = minute_of_day(&recurrence.time)?;
    let offset = recurrence.utc_offset_minutes as i64 * MINUTE_MS;
    let after = after.max(recurrence.start_ms - 1);
    let first_day = (after + offset).div_euclid(DAY_MS);
    // At most a week of days to look at (a weekly rule matches within 7).
    for day in first_day..=first_day + 8 {
        let at = day * DAY_MS + minute * MINUTE_MS - offset;
        let day_matches = match recurrence.every {
            RecurrenceUnit::Daily => true,
            RecurrenceUnit::Weekly => recurrence.weekdays.contains(&weekday(day)),
        };
        if at > after && day_matches {
            return (at <= recurrence.end_ms).then_some(at);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn daily(time: &str, offset: i32, start: i64, end: i64) -> Recurrence {
        Recurrence {
            every: RecurrenceUnit::Daily,
            weekdays: vec![],
            time: time.into(),
            utc_offset_minutes: offset,
            start_ms: start,
            end_ms: end,
        }
    }

    #[test]
    fn daily_at_local_time() {
        // 2026-11-30 is a Monday; 00:00 UTC = 1_795_996_800_000 ms.
        let monday = 1_795_996_800_000;
        assert_eq!(weekday(monday / DAY_MS), 1);
        let r = daily("09:30", 480, monday - DAY_MS, monday + 10 * DAY_MS);
        // 09:30 at UTC+8 is 01:30 UTC.
        assert_eq!(next_after(&r, monday), Some(monday + 90 * MINUTE_MS));
        assert_eq!(
            next_after(&r, monday + 90 * MINUTE_MS),
            Some(monday + DAY_MS + 90 * MINUTE_MS),
            "strictly after: a send does not repeat itself"
        );
        assert_eq!(next_after(&r, monday + 10 * DAY_MS), None);
    }

    #[test]
    fn weekly_picks_listed_days() {
        let monday = 1_795_996_800_000;
        let r = Recurrence {
            every: RecurrenceUnit::Weekly,
            weekdays: vec![3, 6],
            time: "12:00".into(),
            utc_offset_minutes: 0,
            start_ms: monday,
            end_ms: monday + 30 * DAY_MS,
        };
        let first = next_after(&r, monday).unwrap();
        assert_eq!(
            first,
            monday + 2 * DAY_MS + 12 * 60 * MINUTE_MS,
            "Wednesday"
        );
        let second = next_after(&r, first).unwrap();
        assert_eq!(
            second,
            monday + 5 * DAY_MS + 12 * 60 * MINUTE_MS,
            "Saturday"
        );
        assert!(check(&r, monday).is_ok());
        let mut bad = r.clone();
        bad.weekdays = vec![0];
        assert!(check(&bad, monday).is_err());
    }

    proptest! {
        /// The next send is after `after`, inside the window, at the local
        /// time on an allowed day, and no allowed send lies in between.
        #[test]
        fn next_is_the_first_valid_instant(
            after in 1_700_000_000_000i64..1_900_000_000_000,
            hour in 0u8..24, minute in 0u8..60,
            offset in -840i32..=840,
            days in proptest::collection::btree_set(1u8..=7, 1..4),
            weekly: bool,
            start_back in 0i64..20, span in 1i64..40,
        ) {
            let r = Recurrence {
                every: if weekly { RecurrenceUnit::Weekly } else { RecurrenceUnit::Daily },
                weekdays: if weekly { days.into_iter().collect() } else { vec![] },
                time: format!("{hour:02}:{minute:02}"),
                utc_offset_minutes: offset,
                start_ms: after - start_back * DAY_MS,
                end_ms: after + span * DAY_MS,
            };
            let valid = |t: i64| {
                let local = t + offset as i64 * MINUTE_MS;
                local.rem_euclid(DAY_MS) == (hour as i64 * 60 + minute as i64) * MINUTE_MS
                    && (!weekly || r.weekdays.contains(&weekday(local.div_euclid(DAY_MS))))
                    && t >= r.start_ms && t <= r.end_ms
            };
            let next = next_after(&r, after);
            // Brute force over every minute-aligned instant of the local times.
            let mut t = after + 1;
            let first = loop {
                let local = t + offset as i64 * MINUTE_MS;
                let rem = local.rem_euclid(MINUTE_MS);
                if rem != 0 { t += MINUTE_MS - rem; continue; }
                if t > r.end_ms { break None; }
                if valid(t) { break Some(t); }
                // Jump to the next day's local time once aligned.
                t += MINUTE_MS;
                let local = t + offset as i64 * MINUTE_MS;
                let target = (hour as i64 * 60 + minute as i64) * MINUTE_MS;
                let into_day = local.rem_euclid(DAY_MS);
                if into_day != target {
                    let wait = (target - into_day).rem_euclid(DAY_MS);
                    t += wait;
                }
            };
            prop_assert_eq!(next, first);
        }
    }
}
