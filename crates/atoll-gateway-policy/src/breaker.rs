//! A circuit breaker per backend (API group).
//!
//! Closed: every call goes through; `failure_threshold` consecutive failures open
//! it. Open: calls are refused at once for `open_for`, so a struggling backend is
//! not buried under retries and devices get a fast answer. Then half-open: exactly
//! one probe goes through at a time; its success closes the breaker, its failure
//! opens it for another `open_for`.
//!
//! Every state change starts a new *generation*, and an [`Admission`] only counts
//! in the generation it was given in: a call that started before the breaker
//! opened and fails late must not reopen it after a successful probe, nor count
//! against the fresh closed state.
//!
//! A probe whose call is cancelled (the device hung up, the future was dropped)
//! says nothing about the backend; dropping its admission frees the probe slot so
//! the next call probes instead of the breaker staying half-open forever.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// How long other calls are told to wait while a probe is in flight.
const PROBE_WAIT: Duration = Duration::from_secs(1);

/// The state, for the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused.
    Open,
    /// One probe call at a time goes through.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half-open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// A refused call: the breaker is open (or a probe is in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the backend's circuit breaker is open; retry in {retry_after:?}")]
pub struct Open {
    /// When to try again.
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct Inner {
    state: State,
    generation: u64,
}

impl Inner {
    fn enter(&mut self, state: State) {
        self.state = state;
        self.generation += 1;
    }

    /// Moves an open breaker whose time is up to half-open.
    fn advance(&mut self, now: Instant) {
        if let State::Open { until } = self.state {
            if now >= until {
                self.enter(State::HalfOpen { probing: false });
            }
        }
    }
}

/// A circuit breaker. Share it behind an `Arc`; calls lock a small mutex briefly.
#[derive(Debug)]
pub struct CircuitBreaker {
    inner: Mutex<Inner>,
    failure_threshold: u32,
    open_for: Duration,
}

/// Permission for one call. Report its outcome with [`Admission::record`];
/// dropping it unrecorded (the call was cancelled) counts as nothing.
#[derive(Debug)]
#[must_use = "record the outcome of the call"]
pub struct Admission<'a> {
    breaker: &'a CircuitBreaker,
    generation: u64,
    probe: bool,
    done: bool,
}

impl CircuitBreaker {
    /// A closed breaker. A threshold of 0 is taken as 1.
    pub fn new(failure_threshold: u32, open_for: Duration) -> CircuitBreaker {
        CircuitBreaker {
            inner: Mutex::new(Inner {
                state: State::Closed { failures: 0 },
                generation: 0,
            }),
            failure_threshold: failure_threshold.max(1),
            open_for,
        }
    }

    /// Asks to make a call.
    pub fn acquire(&self, now: Instant) -> Result<Admission<'_>, Open> {
        let mut inner = self.inner.lock();
        inner.advance(now);
        let probe = match &mut inner.state {
            State::Closed { .. } => false,
            State::Open { until } => {
                return Err(Open {
                    retry_after: *until - now,
                })
            }
            State::HalfOpen { probing: true } => {
                return Err(Open {
                    retry_after: PROBE_WAIT.min(self.open_for),
                })
            }
            State::HalfOpen { probing } => {
                *probing = true;
                true
            }
        };
        Ok(Admission {
            breaker: self,
            generation: inner.generation,
            probe,
            done: false,
        })
    }

    /// The state at `now` (an open breaker whose time is up shows as half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        let mut inner = self.inner.lock();
        inner.advance(now);
        match inner.state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// The consecutive failures counted while closed (0 otherwise).
    pub fn failures(&self) -> u32 {
        match self.inner.lock().state {
            State::Closed { failures } => failures,
            _ => 0,
        }
    }

    fn record(&self, generation: u64, probe: bool, success: bool, now: Instant) {
        let mut inner = self.inner.lock();
        if inner.generation != generation {
            // Started in an earlier state: says nothing about this one.
            return;
        }
        match inner.state {
            State::Closed { failures } => {
                if success {
                    inner.state = State::Closed { failures: 0 };
                } else if failures + 1 >= self.failure_threshold {
                    inner.enter(State::Open {
                        until: now + self.open_for,
                    });
                } else {
                    inner.state = State::Closed {
                        failures: failures + 1,
                    };
                }
            }
            State::HalfOpen { probing: true } if probe => {
                if success {
                    inner.enter(State::Closed { failures: 0 });
                } else {
                    inner.enter(State::Open {
                        until: now + self.open_for,
                    });
                }
            }
            // Same generation means the state has not changed since the
            // admission was given, so no other combination can occur.
            _ => {}
        }
    }

    fn release_probe(&self, generation: u64) {
        let mut inner = self.inner.lock();
        if inner.generation == generation {
            if let State::HalfOpen { probing } = &mut inner.state {
                *probing = false;
            }
        }
    }
}

impl Admission<'_> {
    /// Whether this call is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Reports the call's outcome: `success` is false for connection errors,
    /// timeouts and 5xx answers.
    pub fn record(mut self, success: bool, now: Instant) {
        self.done = true;
        self.breaker
            .record(self.generation, self.probe, success, now);
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.breaker.release_probe(self.generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    const OPEN: Duration = Duration::from_secs(10);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn opens_after_consecutive_failures_and_closes_on_probe_success() {
        let b = CircuitBreaker::new(3, OPEN);
        let t0 = Instant::now();
        b.acquire(t0).unwrap().record(false, t0);
        b.acquire(t0).unwrap().record(false, t0);
        // A success resets the count.
        b.acquire(t0).unwrap().record(true, t0);
        assert_eq!(b.failures(), 0);
        for _ in 0..2 {
            b.acquire(t0).unwrap().record(false, t0);
        }
        assert_eq!(b.state(t0), BreakerState::Closed);
        assert_eq!(b.failures(), 2);
        b.acquire(t0).unwrap().record(false, t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert_eq!(b.acquire(t0 + secs(4)).unwrap_err().retry_after, secs(6));
        // Time is up: one probe, others wait a little.
        let t1 = t0 + OPEN;
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        let probe = b.acquire(t1).unwrap();
        assert!(probe.is_probe());
        assert_eq!(b.acquire(t1).unwrap_err().retry_after, PROBE_WAIT);
        probe.record(true, t1);
        assert_eq!(b.state(t1), BreakerState::Closed);
        let call = b.acquire(t1).unwrap();
        assert!(!call.is_probe());
        call.record(true, t1);
    }

    #[test]
    fn probe_failure_reopens() {
        let b = CircuitBreaker::new(1, OPEN);
        let t0 = Instant::now();
        b.acquire(t0).unwrap().record(false, t0);
        let t1 = t0 + secs(15);
        b.acquire(t1).unwrap().record(false, t1);
        assert_eq!(b.state(t1 + secs(9)), BreakerState::Open);
        assert_eq!(b.acquire(t1 + secs(9)).unwrap_err().retry_after, secs(1));
        assert_eq!(b.state(t1 + OPEN), BreakerState::HalfOpen);
    }

    #[test]
    fn dropped_probe_frees_the_slot() {
        let b = CircuitBreaker::new(1, OPEN);
        let t0 = Instant::now();
        b.acquire(t0).unwrap().record(false, t0);
        let t1 = t0 + OPEN;
        let probe = b.acquire(t1).unwrap();
        assert!(b.acquire(t1).is_err());
        drop(probe);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        let probe = b.acquire(t1).unwrap();
        assert!(probe.is_probe());
        probe.record(true, t1);
        assert_eq!(b.state(t1), BreakerState::Closed);
    }

    #[test]
    fn late_results_of_earlier_states_do_not_count() {
        let b = CircuitBreaker::new(2, OPEN);
        let t0 = Instant::now();
        let slow_fail = b.acquire(t0).unwrap();
        let slow_ok = b.acquire(t0).unwrap();
        b.acquire(t0).unwrap().record(false, t0);
        b.acquire(t0).unwrap().record(false, t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        let t1 = t0 + OPEN;
        let probe = b.acquire(t1).unwrap();
        // A call from before the breaker opened succeeds: not the probe's answer.
        slow_ok.record(true, t1);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        probe.record(true, t1);
        // One from before fails late: the fresh closed state does not count it.
        slow_fail.record(false, t1);
        assert_eq!(b.failures(), 0);
        // Dropping a stale closed-state admission does nothing either.
        let stale = b.acquire(t1).unwrap();
        b.acquire(t1).unwrap().record(false, t1);
        b.acquire(t1).unwrap().record(false, t1);
        drop(stale);
        assert_eq!(b.state(t1), BreakerState::Open);
    }

    #[test]
    fn threads_agree_on_one_probe() {
        let b = Arc::new(CircuitBreaker::new(1, OPEN));
        let t0 = Instant::now();
        b.acquire(t0).unwrap().record(false, t0);
        let t1 = t0 + OPEN;
        let probes = Arc::new(AtomicU32::new(0));
        std::thread::scope(|scope| {
            for _ in 0..8 {
                let (b, probes) = (Arc::clone(&b), Arc::clone(&probes));
                scope.spawn(move || {
                    for _ in 0..1000 {
                        if let Ok(admission) = b.acquire(t1) {
                            assert!(admission.is_probe());
                            probes.fetch_add(1, Ordering::SeqCst);
                            // Hold it, then give it up as if cancelled.
                            std::thread::yield_now();
                            assert_eq!(
                                probes.fetch_sub(1, Ordering::SeqCst),
                                1,
                                "two probes at once"
                            );
                            drop(admission);
                        }
                    }
                });
            }
        });
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
    }

    proptest! {
        /// Against a model: random outcomes and cancellations never admit two
        /// probes, never admit while open, and the breaker never wedges.
        #[test]
        fn follows_the_model(steps in proptest::collection::vec((0u8..4, 0u64..4000), 1..200), threshold in 1u32..5) {
            let b = CircuitBreaker::new(threshold, OPEN);
            let mut now = Instant::now();
            let mut held: Vec<Admission<'_>> = Vec::new();
            for (action, advance_ms) in steps {
                now += Duration::from_millis(advance_ms);
                let state = b.state(now);
                match b.acquire(now) {
                    Ok(admission) => {
                        prop_assert_ne!(state, BreakerState::Open);
                        prop_assert_eq!(admission.is_probe(), state == BreakerState::HalfOpen);
                        held.push(admission);
                    }
                    Err(open) => {
                        prop_assert_ne!(state, BreakerState::Closed);
                        prop_assert!(open.retry_after > Duration::ZERO);
                    }
                }
                if !held.is_empty() {
                    let admission = held.remove(usize::from(action) % held.len());
                    match action {
                        0 => drop(admission),
                        1 => held.push(admission),
                        2 => admission.record(true, now),
                        _ => admission.record(false, now),
                    }
                }
                let probes = held.iter().filter(|a| a.is_probe() && a.generation == b.inner.lock().generation).count();
                prop_assert!(probes <= 1);
            }
            held.clear();
            // Nothing held: after `open_for` a call is always admitted.
            let later = now + OPEN;
            prop_assert!(b.acquire(later).is_ok());
        }
    }
}
