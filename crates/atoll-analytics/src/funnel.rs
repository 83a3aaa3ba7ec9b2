//! The funnel rule: how far each unit (device or account) got through ordered
//! steps within a time window, computed in one pass per unit.
//!
//! Semantics (the same as ClickHouse's `windowFunnel` in its default mode): a unit
//! reaches level `k` when it has events matching steps 1..k in that order (times
//! not decreasing) and the k-th is at most `window` after the first. Its level is
//! the highest such `k` over all its events. Step counts are the units whose level
//! is at least the step.
//!
//! One pass keeps, per level, the latest start time of a chain reaching it; a
//! later start never hurts, because it leaves more of the window for what
//! follows. An event matching several steps advances each from the level below
//! as it was before the event (levels are visited highest first), so one event
//! never counts twice in a chain.

/// One event of a unit: its time and the steps it matches (bit `m` = step `m`).
pub type StepEvent = (i64, u16);

/// The level (0..=steps) one unit reached. `events` must be sorted by time.
pub fn level(events: &[StepEvent], steps: usize, window_ms: i64) -> usize {
    debug_assert!(steps <= 16);
    let mut starts: [Option<i64>; 16] = [None; 16];
    let mut best = 0usize;
    for &(time, mask) in events {
        for step in (0..steps).rev() {
            if mask & (1 << step) == 0 {
                continue;
            }
            if step == 0 {
                starts[0] = Some(time);
            } else if let Some(start) = starts[step - 1] {
                if time - start <= window_ms {
                    starts[step] = Some(starts[step].map_or(start, |s| s.max(start)));
                }
            }
            if starts[step].is_some() {
                best = best.max(step + 1);
                if best == steps {
                    return best;
                }
            }
        }
    }
    best
}

/// Adds one unit's level to per-step counts.
pub fn count_level(counts: &mut [u64], level: usize) {
    for count in counts.iter_mut().take(level) {
        *count += 1;
    }
}

/// Groups `(unit, time, mask)` rows by unit (dense unit numbers) and returns the
/// per-step counts. Counting sort by unit, then a time sort within each unit:
/// linear in the rows apart from the small per-unit sorts.
pub fn count_units(rows: &[(u32, i64, u16)], steps: usize, window_ms: i64) -> Vec<u64> {
    let mut counts = vec![0u64; steps];
    if rows.is_empty() {
        return counts;
    }
    let units = rows.iter().map(|r| r.0).max().unwrap_or(0) as usize + 1;
    let mut offsets = vec![0usize; units + 1];
    for row in rows {
        offsets[row.0 as usize + 1] += 1;
    }
    for i in 0..units {
        offsets[i + 1] += offsets[i];
    }
    let mut placed: Vec<StepEvent> = vec![(0, 0); rows.len()];
    let mut cursor = offsets.clone();
    for &(unit, time, mask) in rows {
        placed[cursor[unit as usize]] = (time, mask);
        cursor[unit as usize] += 1;
    }
    for unit in 0..units {
        let events = &mut placed[offsets[unit]..offsets[unit + 1]];
        if events.is_empty() {
            continue;
        }
        // Stable, so events with the same time keep their stored order.
        events.sort_by_key(|e| e.0);
        count_level(&mut counts, level(events, steps, window_ms));
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, by brute force: the longest ordered chain within the window.
    fn reference(events: &[StepEvent], steps: usize, window: i64) -> usize {
        fn extend(
            events: &[StepEvent],
            from: usize,
            step: usize,
            steps: usize,
            start: i64,
            window: i64,
        ) -> usize {
            if step == steps {
                return steps;
            }
            let mut best = step;
            for i in from..events.len() {
                let (time, mask) = events[i];
                if mask & (1 << step) != 0 && time - start <= window {
                    best = best.max(extend(events, i + 1, step + 1, steps, start, window));
                }
            }
            best
        }
        let mut best = 0;
        for (i, &(time, mask)) in events.iter().enumerate() {
            if mask & 1 != 0 {
                best = best.max(extend(events, i + 1, 1, steps, time, window));
            }
        }
        best
    }

    #[test]
    fn order_and_window_matter() {
        // a, b, c within the window.
        assert_eq!(level(&[(0, 1), (5, 2), (9, 4)], 3, 10), 3);
        // c before b: only two steps.
        assert_eq!(level(&[(0, 1), (5, 4), (9, 2)], 3, 10), 2);
        // c too late for the first a, but a later a restarts the chain.
        assert_eq!(level(&[(0, 1), (5, 2), (11, 4)], 3, 10), 2);
        assert_eq!(level(&[(0, 1), (3, 1), (5, 2), (11, 4)], 3, 10), 3);
        // One event matching two steps does not count twice.
        assert_eq!(level(&[(0, 1 | 2)], 2, 10), 1);
        assert_eq!(level(&[(0, 1 | 2), (1, 1 | 2)], 2, 10), 2);
        assert_eq!(level(&[], 3, 10), 0);
    }

    #[test]
    fn counts_group_rows_by_unit() {
        let rows = [
            (1, 5, 2),
            (0, 0, 1),
            (1, 0, 1),
            (0, 3, 2),
            (2, 0, 2),
            (1, 9, 4),
        ];
        assert_eq!(count_units(&rows, 3, 10), vec![2, 2, 1]);
    }

    proptest! {
        #[test]
        fn the_one_pass_rule_equals_the_definition(
            mut events in proptest::collection::vec((0i64..50, 1u16..8), 0..12),
            window in 0i64..60,
        ) {
            events.sort_by_key(|e| e.0);
            prop_assert_eq!(level(&events, 3, window), reference(&events, 3, window));
        }
    }
}
