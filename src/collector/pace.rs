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
//! A share can still be too large: a round of the LRU cache under the write watch
//! (140 MiB heap) rescanned 1,700 to 2,600 pages while the mutator, paced at half the
//! time, dirtied as many again, and remark inherited 1,700 pages: 1.5 to 3 ms. So while
//! paced rounds stay slow and do not shrink by a quarter, the collector halves the
//! share ([`Pace::tighten`]), down to [`TIGHTEST`]; the next pre-clean starts again
//! from the configured share.
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

/// [`Pace::tighten`] halves the mutators' share down to this (or the configured share,
/// if that is smaller): an eighth of the time, two halvings from the default half.
pub(crate) const TIGHTEST: f64 = 0.125;

/// What one pre-clean round found, for [`next_step`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Round {
    /// The round, from 1.
    pub round: usize,
    /// The granules it found dirty.
    pub count: usize,
    /// The granules the round before found (`usize::MAX` for the first).
    pub previous: usize,
    /// How long the round took (harvest, rescan and trace).
    pub took: Duration,
    /// The round after which pacing began or its share last changed, if any.
    pub last_change: Option<usize>,
    /// Whether the mutators are paced.
    pub paced: bool,
}

/// What holds for every round of one pre-clean, for [`next_step`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rule {
    /// A round that finds at most this many dirty granules ends pre-cleaning.
    pub threshold: usize,
    /// The tracker's re-arm costs the mutators a fault per page written again (a page
    /// tracker), so rounds that stop shrinking are not worth their faults.
    pub rearm_costs_faults: bool,
    /// Pacing is configured.
    pub may_pace: bool,
    /// The test knob `Testing::pace_from_first_round`.
    pub forced: bool,
}

/// What the collector does after a pre-clean round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Stop pre-cleaning: remark takes the rest.
    Done,
    /// Turn pacing on for the rest of the pre-clean.
    StartPacing,
    /// Halve the mutators' share ([`Pace::tighten`]).
    Halve,
    /// Another round as it is.
    Next,
}

/// The pre-clean's rule, round by round (`collector/cycle.rs`, step 4, says why):
/// - IF a round found at most `threshold` granules THEN stop;
/// - IF the mutators are not paced, pacing is configured, and the round was slow (at
///   least [`SLOW_ROUND`] and fewer than a quarter below the round before) THEN pace;
/// - IF, for a page tracker, a settled round found no fewer than the round before THEN
///   stop (a round is settled unless pacing began or changed after the round before:
///   that round found what was written before the change);
/// - IF the mutators are paced and a settled round was slow THEN halve their share;
/// - otherwise run another round (up to `HeapConfig::max_preclean_rounds`).
pub(crate) fn next_step(r: &Round, rule: &Rule) -> Step {
    if r.count <= rule.threshold {
        return Step::Done;
    }
    let converging = r.count.saturating_mul(4) < r.previous.saturating_mul(3);
    let slow = !converging && r.took >= SLOW_ROUND;
    let settled = r.last_change.is_none_or(|c| r.round > c + 1);
    if !r.paced && rule.may_pace && (slow || rule.forced) {
        Step::StartPacing
    } else if rule.rearm_costs_faults && r.count >= r.previous && settled {
        Step::Done
    } else if r.paced && slow && settled {
        Step::Halve
    } else {
        Step::Next
    }
}

/// The collector's side: whether pacing is on, and the wake-up when it ends.
#[derive(Debug)]
pub(crate) struct Pace {
    /// The mutators' share of the time while pacing, as configured; `None`: never pace.
    share: Option<f64>,
    /// The share in force, as `f64` bits: the configured one from [`Pace::start`], less
    /// after each [`Pace::tighten`].
    current: AtomicU64,
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
            current: AtomicU64::new(config.preclean_pacing.unwrap_or(1.0).to_bits()),
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
        let share = self.share.unwrap_or(1.0);
        self.current.store(share.to_bits(), Ordering::Relaxed);
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

    /// The mutators' share of the time in force.
    pub(crate) fn share(&self) -> f64 {
        f64::from_bits(self.current.load(Ordering::Relaxed))
    }

    /// Halves the mutators' share, down to [`TIGHTEST`] (never below the configured
    /// share); returns the new share, or `None` if it was already there. A mutator owes
    /// its waits at the new share from its next poll on.
    pub(crate) fn tighten(&self) -> Option<f64> {
        let configured = self.share?;
        let floor = TIGHTEST.min(configured);
        let share = self.share();
        if share <= floor {
            return None;
        }
        let halved = (share / 2.0).max(floor);
        self.current.store(halved.to_bits(), Ordering::Relaxed);
        Some(halved)
    }

    /// How long a mutator that has run for `ran` since its last wait must wait now, if
    /// at all.
    pub(crate) fn owed(&self, ran: Duration) -> Option<Duration> {
        self.share?;
        let share = self.share();
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

    fn round(round: usize, count: usize, previous: usize, took_us: u64) -> Round {
        Round {
            round,
            count,
            previous,
            took: Duration::from_micros(took_us),
            last_change: None,
            paced: false,
        }
    }

    const STORE_PATH: Rule = Rule {
        threshold: 32,
        rearm_costs_faults: false,
        may_pace: true,
        forced: false,
    };

    #[test]
    fn a_small_round_ends_the_pre_clean_whatever_else_holds() {
        let paced = Round {
            paced: true,
            ..round(5, 32, 10, 9_000)
        };
        assert_eq!(next_step(&paced, &STORE_PATH), Step::Done);
        let forced = Rule {
            forced: true,
            ..STORE_PATH
        };
        assert_eq!(next_step(&round(1, 20, usize::MAX, 0), &forced), Step::Done);
    }

    #[test]
    fn a_slow_round_that_does_not_shrink_by_a_quarter_starts_pacing() {
        // 760 is not below three quarters of 1,000; 740 is.
        assert_eq!(
            next_step(&round(2, 760, 1_000, 600), &STORE_PATH),
            Step::StartPacing
        );
        assert_eq!(
            next_step(&round(2, 740, 1_000, 600), &STORE_PATH),
            Step::Next
        );
        // Fast rounds never pace, unless the test knob forces it.
        assert_eq!(
            next_step(&round(2, 1_000, 1_000, 400), &STORE_PATH),
            Step::Next
        );
        let forced = Rule {
            forced: true,
            ..STORE_PATH
        };
        assert_eq!(
            next_step(&round(1, 100, usize::MAX, 1), &forced),
            Step::StartPacing
        );
        let never = Rule {
            may_pace: false,
            ..STORE_PATH
        };
        assert_eq!(next_step(&round(2, 1_000, 1_000, 600), &never), Step::Next);
    }

    #[test]
    fn a_settled_paced_round_still_slow_halves_the_share() {
        let paced = |r: usize, change: usize, count: usize, previous: usize| Round {
            last_change: Some(change),
            paced: true,
            ..round(r, count, previous, 3_000)
        };
        // Round 3 found what was written before pacing began after round 2.
        assert_eq!(
            next_step(&paced(3, 2, 2_500, 2_500), &STORE_PATH),
            Step::Next
        );
        assert_eq!(
            next_step(&paced(4, 2, 2_000, 2_500), &STORE_PATH),
            Step::Halve
        );
        // Shrinking by more than a quarter: leave the share.
        assert_eq!(
            next_step(&paced(4, 2, 1_800, 2_500), &STORE_PATH),
            Step::Next
        );
        // Not slow: leave the share.
        let quick = Round {
            took: Duration::from_micros(100),
            ..paced(4, 2, 2_000, 2_500)
        };
        assert_eq!(next_step(&quick, &STORE_PATH), Step::Next);
    }

    #[test]
    fn a_page_tracker_stops_at_a_settled_round_that_did_not_shrink() {
        let pages = Rule {
            rearm_costs_faults: true,
            ..STORE_PATH
        };
        // Fast, not shrinking, not paced: stop rather than fault again.
        assert_eq!(next_step(&round(2, 500, 400, 100), &pages), Step::Done);
        // The round just after pacing began goes on; the one after stops.
        let paced = |r: usize| Round {
            last_change: Some(2),
            paced: true,
            ..round(r, 900, 800, 3_000)
        };
        assert_eq!(next_step(&paced(3), &pages), Step::Next);
        assert_eq!(next_step(&paced(4), &pages), Step::Done);
        // Shrinking a little but slow: halve, as for a store-path tracker.
        let slow = Round {
            count: 700,
            ..paced(4)
        };
        assert_eq!(next_step(&slow, &pages), Step::Halve);
        // A store-path tracker goes on where a page tracker stops.
        assert_eq!(next_step(&round(2, 500, 400, 100), &STORE_PATH), Step::Next);
    }

    #[test]
    fn tightening_halves_the_share_down_to_an_eighth_and_a_new_start_restores_it() {
        let pace = Pace::new(&HeapConfig::default().preclean_pacing(Some(0.5)));
        let guard = pace.start();
        assert_eq!(pace.tighten(), Some(0.25));
        assert_eq!(
            pace.owed(Duration::from_millis(1)),
            Some(Duration::from_millis(3))
        );
        assert_eq!(pace.tighten(), Some(TIGHTEST));
        assert_eq!(
            pace.owed(Duration::from_millis(1)),
            Some(Duration::from_millis(7))
        );
        assert_eq!(pace.tighten(), None);
        assert_eq!(pace.share(), TIGHTEST);
        drop(guard);
        let _guard = pace.start();
        assert_eq!(pace.share(), 0.5);
        // A configured share below the floor is never tightened.
        let low = Pace::new(&HeapConfig::default().preclean_pacing(Some(0.1)));
        let _low = low.start();
        assert_eq!(low.tighten(), None);
        assert_eq!(low.share(), 0.1);
        let never = Pace::new(&HeapConfig::default().preclean_pacing(None));
        assert_eq!(never.tighten(), None);
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
