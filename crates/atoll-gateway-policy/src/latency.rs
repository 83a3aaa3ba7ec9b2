//! A lock-free latency histogram for the per-API p50/p95/p99 of the console.
//!
//! Log-linear buckets (as in HdrHistogram): each power of two of nanoseconds from
//! 512 ns up is split into 16 equal buckets, so a bucket is at most 1/16 of its
//! lower bound wide and its midpoint is within 1/32 (3.2 %) of any value in it.
//! The last power of two ends at 2^36 ns (about 68.7 s); longer calls are counted
//! in the last bucket (the gateway's timeouts stop well before). Under 512 ns is
//! one bucket. That is 433 counters, about 3.4 KiB per histogram.
//!
//! Recording is one relaxed atomic add, so every call can record without
//! contention; a quantile reads a snapshot that may be a few calls behind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets per power of two.
const SUB: u64 = 16;
const SUB_BITS: u32 = 4;
/// The first power of two split into buckets: 2^9 ns = 512 ns.
const FIRST_EXP: u32 = 9;
/// The last one: 2^35..2^36 ns.
const LAST_EXP: u32 = 35;
const BUCKETS: usize = 1 + ((LAST_EXP - FIRST_EXP + 1) as usize) * SUB as usize;

/// A histogram of durations.
#[derive(Debug)]
pub struct LatencyHistogram {
    counts: Box<[AtomicU64]>,
    total: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

fn bucket_of(nanos: u64) -> usize {
    if nanos < 1 << FIRST_EXP {
        return 0;
    }
    let exp = (63 - nanos.leading_zeros()).min(LAST_EXP);
    let nanos = nanos.min((1 << (LAST_EXP + 1)) - 1);
    let sub = (nanos >> (exp - SUB_BITS)) - SUB;
    1 + ((exp - FIRST_EXP) as usize) * SUB as usize + sub as usize
}

/// The value reported for a bucket: its midpoint.
fn value_of(bucket: usize) -> Duration {
    if bucket == 0 {
        return Duration::from_nanos(1 << (FIRST_EXP - 1));
    }
    let index = (bucket - 1) as u64;
    let exp = FIRST_EXP + (index / SUB) as u32;
    let width = 1u64 << (exp - SUB_BITS);
    let low = (SUB + index % SUB) * width;
    Duration::from_nanos(low + width / 2)
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> LatencyHistogram {
        LatencyHistogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicU64::new(0),
        }
    }

    /// Counts one call.
    pub fn record(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls counted.
    pub fn count(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The `q`-quantile (`0.0..=1.0`, clamped): the smallest recorded value such
    /// that a fraction `q` of the calls took at most that long, within 3.2 %
    /// between 1 µs and 68 s. Zero when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Duration {
        self.quantiles(&[q])[0]
    }

    /// Several quantiles from one snapshot (e.g. p50, p95, p99 together).
    pub fn quantiles(&self, qs: &[f64]) -> Vec<Duration> {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        // The total of this snapshot, not `self.total`, so the ranks fit the counts.
        let total: u64 = counts.iter().sum();
        qs.iter()
            .map(|&q| {
                if total == 0 {
                    return Duration::ZERO;
                }
                let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
                let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
                let mut seen = 0;
                for (bucket, count) in counts.iter().enumerate() {
                    seen += count;
                    if seen >= rank {
                        return value_of(bucket);
                    }
                }
                value_of(BUCKETS - 1)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn exact(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    fn close(got: Duration, want_nanos: u64) -> bool {
        let got = got.as_nanos() as f64;
        let want = want_nanos as f64;
        (got - want).abs() <= want * 0.05
    }

    #[test]
    fn buckets_are_contiguous_and_midpoints_close() {
        let mut previous = 0;
        for nanos in (512u64..1 << 20).chain((1 << 20..1 << 36).step_by(99_991)) {
            let bucket = bucket_of(nanos);
            // Consecutive values: the same bucket or the next (none skipped).
            if nanos < 1 << 20 {
                assert!(bucket == previous || bucket == previous + 1, "{nanos}");
            } else {
                assert!(bucket >= previous, "{nanos}");
            }
            previous = bucket;
            let mid = value_of(bucket).as_nanos() as f64;
            assert!(
                (mid - nanos as f64).abs() <= nanos as f64 / 32.0,
                "{nanos} -> {mid}"
            );
        }
        assert_eq!(bucket_of((1 << 36) - 1), BUCKETS - 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_of(0), 0);
    }

    #[test]
    fn empty_and_edges() {
        let h = LatencyHistogram::new();
        assert_eq!(h.quantile(0.5), Duration::ZERO);
        h.record(Duration::from_millis(5));
        assert_eq!(h.count(), 1);
        for q in [0.0, 0.5, 1.0, -3.0, 7.0, f64::NAN] {
            assert!(close(h.quantile(q), 5_000_000), "{q}");
        }
        h.record(Duration::from_secs(3600));
        assert!(h.quantile(1.0) < Duration::from_secs(69));
        assert!(h.quantile(1.0) > Duration::from_secs(60));
    }

    #[test]
    fn quantiles_match_sorted_values() {
        let h = LatencyHistogram::new();
        let mut values: Vec<u64> = (0..10_000u64)
            .map(|i| 1_000 + (i * i * 7_919) % 60_000_000_000)
            .collect();
        for &v in &values {
            h.record(Duration::from_nanos(v));
        }
        values.sort_unstable();
        let got = h.quantiles(&[0.5, 0.95, 0.99, 0.999]);
        for (q, got) in [0.5, 0.95, 0.99, 0.999].into_iter().zip(got) {
            assert!(
                close(got, exact(&values, q)),
                "q{q}: {got:?} vs {}",
                exact(&values, q)
            );
        }
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let h = Arc::new(LatencyHistogram::new());
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let h = Arc::clone(&h);
                scope.spawn(move || {
                    for i in 0..10_000 {
                        h.record(Duration::from_micros(1 + (i + t) % 1000));
                    }
                });
            }
        });
        assert_eq!(h.count(), 40_000);
        let total: u64 = h.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        assert_eq!(total, 40_000);
    }

    proptest! {
        /// Any sample between 1 µs and 60 s: every quantile is within 5 % of the
        /// exact one.
        #[test]
        fn quantiles_within_five_percent(
            values in proptest::collection::vec(1_000u64..60_000_000_000, 1..500),
            q in 0.0f64..=1.0,
        ) {
            let h = LatencyHistogram::new();
            for &v in &values {
                h.record(Duration::from_nanos(v));
            }
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let want = exact(&sorted, q);
            let got = h.quantile(q);
            prop_assert!(close(got, want), "q{}: {:?} vs {}", q, got, want);
        }
    }
}
