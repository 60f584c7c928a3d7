//! Pacing the mutators while pre-cleaning does not converge.
//!
//! Remark rescans what the mutators dirtied during the last pre-clean round, with the
//! world stopped. A round takes time in proportion to what it rescans, and the mutators
//! dirty memory in proportion to the time they run, so while they dirty granules as fast
//! as a round cleans them (the LRU cache's stores into old entries, binary trees' fresh
//! trees) the rounds stop shrinking, and remark inherits a whole round: milliseconds.
//! Concurrent collectors with an incremental-update barrier answer this by slowing the
//! mutators, not by stopping them: CMS's abortable pre-clean waits for the young
//! generation; Go charges an allocating goroutine with marking work (an assist).
//!
//! Here: when a pre-clean round took longer than [`SLOW_ROUND`] and found no fewer
//! than three quarters of the round before, the collector turns pacing on for the rest
//! of the pre-clean. A mutator then waits, at its safepoint polls (its allocation slow
//! path, a new run of cells or a large object, and [`crate::Mutator::safepoint`]; not the
//! allocation fast path), so that it runs at most
//! [`HeapConfig::preclean_pacing`] of the time: after running `t` since its last wait
//! it waits `t × (1 − share) / share`, counted as stopped (a pause does not wait for it)
//! and recorded in [`Stats::paced`](super::Stats::paced), which the study's MMU with
//! stalls counts as time the mutator did not run. The wait ends early when pacing ends
//! (inside remark's pause). The rounds then shrink, down to a floor: what the mutators
//! dirty in their share of a round, which for random stores at page granularity stays
//! at hundreds of pages (the README's known problems).
//!
//! A mutator that dirties memory without reaching a safepoint poll is not paced.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::heap::HeapConfig;

/// A pre-clean round that took at least this long and did not shrink by a quarter turns
/// pacing on (a remark inheriting such a round would exceed half a millisecond).
pub(crate) const SLOW_ROUND: Duration = Duration::from_micros(500);

/// A paced mutator runs at least this long between two waits, so that the waits are
/// few and long enough to be worth a sleep.
pub(crate) const SLICE: Duration = Duration::from_micros(100);

/// How long pacing forced by the test knob `Testing::pace_from_first_round` stays on at
/// least before remark ends it. Forced from round 1, pacing stayed on for 70 µs to 2 ms
/// (measured in the pacing test), often less than the [`SLICE`] a mutator must run before
/// it owes a wait; held this long, a mutator that polls every few microseconds owes one.
pub(crate) const TEST_HOLD: Duration = Duration::from_millis(5);

/// The collector's side: whether pacing is on, and the wake-up when it ends.
#[derive(Debug)]
pub(crate) struct Pace {
    /// The mutators' share of the time while pacing; `None`: never pace.
    share: Option<f64>,
    on: AtomicBool,
    /// Counts the times pacing was turned on: a mutator's run is measured from when it
    /// first saw this period.
    period: AtomicU64,
    lock: Mutex<()>,
    ended: Condvar,
}

impl Pace {
    pub(crate) fn new(config: &HeapConfig) -> Pace {
        Pace {
            share: config.preclean_pacing,
            on: AtomicBool::new(false),
            period: AtomicU64::new(0),
            lock: Mutex::new(()),
            ended: Condvar::new(),
        }
    }

    /// Whether pacing is configured at all.
    pub(crate) fn enabled(&self) -> bool {
        self.share.is_some()
    }

    /// Whether the mutators are being paced now (one relaxed load: a mutator that reads
    /// a stale value waits once too often or once too few, which only moves time).
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Turns pacing on; it stays on until the returned guard is dropped (at the end of
    /// the pre-clean, or while a panic unwinds through it).
    pub(crate) fn start(&self) -> PaceGuard<'_> {
        self.period.fetch_add(1, Ordering::Relaxed);
        self.on.store(true, Ordering::Relaxed);
        PaceGuard(self)
    }

    fn stop(&self) {
        let _guard = self.lock.lock();
        self.on.store(false, Ordering::Relaxed);
        self.ended.notify_all();
    }

    /// The current pacing period (see [`Pace::start`]).
    pub(crate) fn period(&self) -> u64 {
        self.period.load(Ordering::Relaxed)
    }

    /// How long a mutator that has run for `ran` since its last wait must wait now, if
    /// at all.
    pub(crate) fn owed(&self, ran: Duration) -> Option<Duration> {
        let share = self.share?;
        (ran >= SLICE).then(|| ran.mul_f64((1.0 - share) / share))
    }

    /// Waits up to `wait`, or until pacing ends. The caller must not be a running
    /// mutator (see `mutator::registry::while_blocked`).
    pub(crate) fn wait(&self, wait: Duration) {
        let deadline = Instant::now() + wait;
        let mut guard = self.lock.lock();
        while self.is_on() {
            if self.ended.wait_until(&mut guard, deadline).timed_out() {
                break;
            }
        }
    }
}

/// Pacing is on while this lives.
pub(crate) struct PaceGuard<'a>(&'a Pace);

impl Drop for PaceGuard<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_mutator_owes_its_run_scaled_by_the_share_and_nothing_within_a_slice() {
        let pace = Pace::new(&HeapConfig::default().preclean_pacing(Some(0.25)));
        assert_eq!(pace.owed(SLICE / 2), None);
        let owed = pace.owed(Duration::from_millis(1)).unwrap();
        assert_eq!(owed, Duration::from_millis(3));
        let never = Pace::new(&HeapConfig::default().preclean_pacing(None));
        assert!(!never.enabled());
        assert_eq!(never.owed(Duration::from_secs(1)), None);
    }

    #[test]
    fn a_wait_ends_when_pacing_ends() {
        let pace = Pace::new(&HeapConfig::default());
        let guard = pace.start();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let t0 = Instant::now();
                pace.wait(Duration::from_secs(30));
                t0.elapsed()
            });
            std::thread::sleep(Duration::from_millis(20));
            drop(guard);
            let waited = waiter.join().unwrap();
            assert!(waited < Duration::from_secs(10), "waited {waited:?}");
        });
        assert!(!pace.is_on());
    }
}
