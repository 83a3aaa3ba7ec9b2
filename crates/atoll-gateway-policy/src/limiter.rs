//! Keyed token buckets: one bucket per key (an API, a device on an API, an app),
//! refilled continuously.
//!
//! Tokens are counted in billionths, and a bucket refills `rate` billionths per
//! elapsed nanosecond, so the arithmetic is exact integers: no per-second windows
//! (which let through twice the rate across a window boundary) and no float drift
//! that could let through one call too many over a long run.
//!
//! Memory is bounded by `max_keys`. A bucket that has refilled to full behaves
//! exactly like a new one, so full buckets are dropped whenever room is needed;
//! nothing is forgotten by doing so. If every bucket of a shard is still in use, a
//! call with a **new** key is refused (with `retry_after` = the time until some
//! bucket is full again) rather than let through untracked: failing closed keeps
//! every limit true, and with a sensible `max_keys` it only happens when more keys
//! than that are calling within one refill period, which is itself an overload.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::time::{Duration, Instant};

/// Billionths of a token: one token.
const TOKEN: u128 = 1_000_000_000;
/// Shards of the key space, so threads rarely wait on one another.
const SHARDS: usize = 16;

/// The answer for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the call may go ahead (it took one token).
    pub allowed: bool,
    /// The bucket's capacity (the burst): the most calls that can go at once.
    pub limit: u32,
    /// Whole tokens left after this call.
    pub remaining: u32,
    /// Zero when allowed; otherwise how long until one token is available.
    pub retry_after: Duration,
    /// How long until the bucket is full again.
    pub reset: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Billionths of a token.
    tokens: u128,
    last: Instant,
    /// The rate and capacity of the last call, to tell when the bucket is full
    /// without one.
    rate: u32,
    capacity: u128,
}

impl Bucket {
    fn refill(&mut self, now: Instant, rate: u32, capacity: u128) {
        self.rate = rate;
        self.capacity = capacity;
        // A caller may pass a slightly older `now` than another thread did: no
        // refill then, never a negative one.
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.tokens = (self.tokens + elapsed.saturating_mul(u128::from(rate))).min(capacity);
        if now > self.last {
            self.last = now;
        }
    }

    /// Time until the bucket holds `target` billionths.
    fn time_until(&self, target: u128, rate: u32) -> Duration {
        if self.tokens >= target {
            return Duration::ZERO;
        }
        if rate == 0 {
            return Duration::MAX;
        }
        let nanos = (target - self.tokens).div_ceil(u128::from(rate));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// When the bucket will be full (then it is the same as a new one).
    fn full_at(&self) -> Instant {
        let wait = self.time_until(self.capacity, self.rate);
        self.last
            .checked_add(wait)
            .unwrap_or(self.last + Duration::from_secs(86_400 * 365))
    }
}

#[derive(Debug)]
struct Shard<K> {
    buckets: HashMap<K, Bucket>,
    /// When the shard was last found full of buckets in use: no bucket can be full
    /// before this time, so new keys are refused without another scan.
    no_room_until: Option<Instant>,
}

/// Token buckets by key, bounded in number. Share it behind an `Arc`.
#[derive(Debug)]
pub struct RateLimiter<K> {
    shards: Box<[Mutex<Shard<K>>]>,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter that keeps at most about `max_keys` buckets (at least one per
    /// shard).
    pub fn new(max_keys: usize) -> RateLimiter<K> {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    buckets: HashMap::new(),
                    no_room_until: None,
                })
            })
            .collect();
        RateLimiter {
            shards,
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &K) -> &Mutex<Shard<K>> {
        let index = self.hasher.hash_one(key) as usize % SHARDS;
        &self.shards[index]
    }

    /// Takes one token from `key`'s bucket, which holds up to `burst` tokens
    /// (at least 1) and refills `rate_per_sec` per second. A rate of 0 refuses
    /// every call. The rate and burst may change between calls (the API's
    /// settings changed); the bucket keeps its tokens, capped to the new burst.
    pub fn check(&self, key: &K, rate_per_sec: u32, burst: u32, now: Instant) -> Decision {
        let burst = burst.max(1);
        let capacity = u128::from(burst) * TOKEN;
        if rate_per_sec == 0 {
            return Decision {
                allowed: false,
                limit: 0,
                remaining: 0,
                retry_after: Duration::MAX,
                reset: Duration::MAX,
            };
        }
        let mut shard = self.shard(key).lock();
        let bucket = match shard.buckets.get_mut(key) {
            Some(bucket) => {
                bucket.refill(now, rate_per_sec, capacity);
                bucket
            }
            None => {
                if shard.buckets.len() >= self.per_shard {
                    if let Some(wait) = make_room(&mut shard, self.per_shard, now) {
                        return Decision {
                            allowed: false,
                            limit: burst,
                            remaining: 0,
                            retry_after: wait,
                            reset: wait,
                        };
                    }
                }
                shard.buckets.entry(key.clone()).or_insert(Bucket {
                    tokens: capacity,
                    last: now,
                    rate: rate_per_sec,
                    capacity,
                })
            }
        };
        let allowed = bucket.tokens >= TOKEN;
        if allowed {
            bucket.tokens -= TOKEN;
        }
        Decision {
            allowed,
            limit: burst,
            remaining: u32::try_from(bucket.tokens / TOKEN).unwrap_or(u32::MAX),
            retry_after: if allowed {
                Duration::ZERO
            } else {
                bucket.time_until(TOKEN, rate_per_sec)
            },
            reset: bucket.time_until(capacity, rate_per_sec),
        }
    }

    /// Drops every bucket that is full at `now` (it would be recreated
    /// identically). Calls need not do this, room is made when needed; it returns
    /// memory after a burst of keys.
    pub fn sweep(&self, now: Instant) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.buckets.retain(|_, bucket| now < bucket.full_at());
            shard.no_room_until = None;
        }
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().buckets.len()).sum()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops full buckets; if none was, returns how long until one will be.
fn make_room<K: Hash + Eq>(shard: &mut Shard<K>, cap: usize, now: Instant) -> Option<Duration> {
    if let Some(until) = shard.no_room_until {
        if now < until {
            return Some(until - now);
        }
    }
    shard.buckets.retain(|_, bucket| now < bucket.full_at());
    if shard.buckets.len() < cap {
        shard.no_room_until = None;
        return None;
    }
    let soonest = shard
        .buckets
        .values()
        .map(Bucket::full_at)
        .min()
        .unwrap_or(now);
    shard.no_room_until = Some(soonest);
    Some(
        soonest
            .saturating_duration_since(now)
            .max(Duration::from_millis(1)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_then_refill() {
        let limiter = RateLimiter::new(100);
        let t0 = Instant::now();
        for i in 0..5 {
            let d = limiter.check(&"k", 10, 5, t0);
            assert!(d.allowed);
            assert_eq!(d.limit, 5);
            assert_eq!(d.remaining, 4 - i);
            assert_eq!(d.retry_after, Duration::ZERO);
            assert_eq!(d.reset, ms(100) * (i + 1));
        }
        let d = limiter.check(&"k", 10, 5, t0);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after, ms(100));
        assert_eq!(d.reset, ms(500));
        // Sub-token precision: 40 ms is 0.4 token, the wait is the rest.
        let d = limiter.check(&"k", 10, 5, t0 + ms(40));
        assert!(!d.allowed);
        assert_eq!(d.retry_after, ms(60));
        assert!(limiter.check(&"k", 10, 5, t0 + ms(100)).allowed);
        assert!(!limiter.check(&"k", 10, 5, t0 + ms(100)).allowed);
        // Other keys have their own bucket.
        assert!(limiter.check(&"other", 10, 5, t0).allowed);
    }

    #[test]
    fn time_going_backwards_does_not_refill() {
        let limiter = RateLimiter::new(10);
        let t0 = Instant::now() + Duration::from_secs(10);
        assert!(limiter.check(&1, 1, 1, t0).allowed);
        assert!(!limiter.check(&1, 1, 1, t0 - ms(500)).allowed);
        assert!(!limiter.check(&1, 1, 1, t0 + ms(999)).allowed);
        assert!(limiter.check(&1, 1, 1, t0 + ms(1000)).allowed);
    }

    #[test]
    fn zero_rate_refuses_and_zero_burst_is_one() {
        let limiter = RateLimiter::new(10);
        let t0 = Instant::now();
        let d = limiter.check(&1, 0, 10, t0);
        assert!(!d.allowed);
        assert!(limiter.is_empty());
        let d = limiter.check(&2, 5, 0, t0);
        assert!(d.allowed);
        assert_eq!(d.limit, 1);
        assert!(!limiter.check(&2, 5, 0, t0).allowed);
    }

    #[test]
    fn settings_change_caps_tokens() {
        let limiter = RateLimiter::new(10);
        let t0 = Instant::now();
        assert!(limiter.check(&1, 100, 100, t0).allowed);
        let d = limiter.check(&1, 1, 3, t0);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
    }

    #[test]
    fn keys_are_bounded_and_new_keys_wait_when_full() {
        // One bucket per shard.
        let limiter = RateLimiter::new(SHARDS);
        let t0 = Instant::now();
        let mut allowed = 0;
        for key in 0..200u32 {
            let d = limiter.check(&key, 1, 1, t0);
            if d.allowed {
                allowed += 1;
            } else {
                assert!(d.retry_after > Duration::ZERO && d.retry_after <= Duration::from_secs(1));
            }
        }
        assert_eq!(
            allowed, SHARDS,
            "one new key per shard until a bucket is full"
        );
        assert_eq!(limiter.len(), SHARDS);
        // Keys already held keep their exact state: still empty.
        let held: Vec<u32> = (0..200)
            .filter(|k| limiter.shard(k).lock().buckets.contains_key(k))
            .collect();
        for key in &held {
            assert!(!limiter.check(key, 1, 1, t0 + ms(500)).allowed);
        }
        // Once the buckets are full again they are dropped to make room.
        let later = t0 + Duration::from_secs(1);
        let fresh = (200..400u32)
            .filter(|k| limiter.check(k, 1, 1, later).allowed)
            .count();
        assert_eq!(fresh, SHARDS);
        assert_eq!(limiter.len(), SHARDS);
        limiter.sweep(later + Duration::from_secs(1));
        assert!(limiter.is_empty());
    }

    #[test]
    fn concurrent_calls_share_one_bucket() {
        let limiter = Arc::new(RateLimiter::new(1000));
        let t0 = Instant::now();
        let threads: Vec<_> = (0..8)
            .map(|n| {
                let limiter = Arc::clone(&limiter);
                std::thread::spawn(move || {
                    let mut shared = 0;
                    let mut own = 0;
                    for i in 0..1000u64 {
                        // All threads see time advance 1 ms per call, in any order.
                        let now = t0 + Duration::from_micros(i * 1000);
                        if limiter.check(&"shared".to_string(), 100, 50, now).allowed {
                            shared += 1;
                        }
                        if limiter.check(&format!("own-{n}"), 100, 50, now).allowed {
                            own += 1;
                        }
                    }
                    (shared, own)
                })
            })
            .collect();
        let results: Vec<(u32, u32)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let shared: u32 = results.iter().map(|r| r.0).sum();
        // 999 ms at 100/s plus the burst; refills are exact, so at most 149.
        assert!((140..=149).contains(&shared), "{shared}");
        for (_, own) in results {
            assert!((140..=149).contains(&own), "{own}");
        }
    }

    #[derive(Debug, Clone)]
    enum Pattern {
        /// Evenly spaced calls.
        Uniform,
        /// Evenly spaced slots, each call at a random point of its slot.
        Jittered(u64),
        /// All the calls of a period at once, the period short enough that the
        /// bucket holds what refills in it (else tokens are lost by design).
        /// The value scales the longest such period.
        Bursts(f64),
    }

    fn pattern() -> impl Strategy<Value = Pattern> {
        prop_oneof![
            Just(Pattern::Uniform),
            any::<u64>().prop_map(Pattern::Jittered),
            (0.05f64..=1.0).prop_map(Pattern::Bursts),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Offered twice the rate for 10 s, a bucket lets through `rate*T + burst`
        /// within 5 %, and never more. (A burst of 1 is left out of the lower
        /// bound: a bucket that holds one token loses the refill between a token
        /// completing and the next call, by design.)
        #[test]
        fn accepts_rate_times_t_plus_burst(rate in 10u32..400, burst_factor in 0.05f64..2.0, pattern in pattern()) {
            let burst = ((f64::from(rate) * burst_factor) as u32).max(2);
            let limiter = RateLimiter::new(4);
            let t0 = Instant::now();
            let period = Duration::from_secs(10);
            let offers = u64::from(rate) * 2 * 10;
            let step = period.as_nanos() as u64 / offers;
            let mut times: Vec<Duration> = Vec::new();
            match pattern {
                Pattern::Uniform => times.extend((0..=offers).map(|i| Duration::from_nanos(i * step))),
                Pattern::Jittered(seed) => {
                    let mut x = seed;
                    for i in 0..offers {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        times.push(Duration::from_nanos(i * step + (x >> 33) % step));
                    }
                    times.push(period);
                }
                Pattern::Bursts(fraction) => {
                    // Less than a token is left after a burst, so the bucket holds
                    // the refill of `(burst - 1) / rate` seconds without loss.
                    let every = Duration::from_secs_f64(f64::from(burst - 1) / f64::from(rate) * fraction);
                    let per_burst = (2.0 * f64::from(rate) * every.as_secs_f64()).ceil() as u32;
                    let mut at = Duration::ZERO;
                    while at <= period {
                        times.extend(std::iter::repeat_n(at, per_burst.max(1) as usize));
                        at += every;
                    }
                    times.extend(std::iter::repeat_n(period, per_burst.max(1) as usize));
                }
            }
            let accepted = times
                .iter()
                .filter(|&&t| limiter.check(&0u8, rate, burst, t0 + t).allowed)
                .count() as f64;
            let ideal = f64::from(rate) * 10.0 + f64::from(burst);
            prop_assert!(accepted <= ideal, "accepted {} > {}", accepted, ideal);
            prop_assert!(accepted >= ideal * 0.95, "accepted {} < 95% of {}", accepted, ideal);
        }
    }
}
