//! The counters of a tracker: [`TrackerStats`], which defines each once for every
//! mechanism, and [`Counters`], the atomics that keep them (with the cause of the latest
//! degraded cycle and the tracker's test knobs).
//!
//! Never: allocate, lock or panic in the counting calls a signal handler makes
//! ([`Counters::served`], [`Counters::frontier_fault`], [`Counters::degraded`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::degradation::{CauseCell, Degradation};
use super::{TestKnobs, UffdMode};

/// Counters every tracker keeps, each with one definition for every mechanism.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrackerStats {
    /// Write faults served by the tracker's own code: one per userfaultfd write-protect
    /// message served (`uffd-wp`), one per page made writable by the signal handler
    /// (`uffd-wp-sigbus`, `mprotect`). `uffd-wp-async`'s faults are resolved by the
    /// kernel unseen and the card table takes none: 0 for both.
    pub faults: u64,
    /// Of `faults`, those on pages handed to the allocator during the cycle
    /// ([`DirtyTracker::hand_out`](super::DirtyTracker::hand_out)): a page a harvest
    /// protected again while a mutator was still allocating into it. The others are first
    /// writes to older objects.
    pub frontier_faults: u64,
    /// Pages made writable and recorded as the allocator handed them out while armed
    /// ([`DirtyTracker::hand_out`](super::DirtyTracker::hand_out)), instead of taking a
    /// fault at their first write.
    pub handed_out: u64,
    /// Protection changes those hand-outs made (one per run of pages).
    pub hand_out_calls: u64,
    /// Free pages that arms left writable instead of protecting, summed over arms
    /// ([`DirtyTracker::arm_with_free`](super::DirtyTracker::arm_with_free)): handing
    /// one out during the cycle records it with no protection change.
    pub opened_at_arm: u64,
    /// Young pages that arms left writable and recorded instead of protecting, summed
    /// over arms ([`DirtyTracker::arm_with_young`](super::DirtyTracker::arm_with_young)):
    /// a harvest protects one only once it holds a marked object.
    pub kept_at_arm: u64,
    /// Of those, the pages a harvest took because they had come to hold a marked
    /// object ([`DirtyTracker::harvest_marked`](super::DirtyTracker::harvest_marked)):
    /// each is rescanned whole, written or not.
    pub kept_released: u64,
    /// Granules handed over by harvests, each counted once per harvest that lists it:
    /// written pages, or dirty cards for the card table.
    pub recorded: u64,
    /// Fault messages read from a userfaultfd (`uffd-wp`).
    pub messages: u64,
    /// `read(2)` calls that returned at least one message (`uffd-wp`).
    pub reads: u64,
    /// `EAGAIN` retries of userfaultfd ioctls.
    pub eagain_retries: u64,
    /// Cycles (counted from each arm) in which the tracker could not record precisely: it
    /// could not arm, or a protection change, a scan or the fault service failed and its
    /// harvests reported "everything dirty". Each such cycle counts once.
    pub degradations: u64,
    /// The first failure of the latest cycle counted in `degradations`.
    pub last_degradation: Option<Degradation>,
    /// The userfaultfd in use, for the trackers that open one: full or user-mode-only,
    /// how it was opened, and whether user-mode-only is a fallback.
    pub uffd: Option<UffdMode>,
    /// How this tracker measures a writer's fault stall
    /// ([`DirtyTracker::take_stalls`](super::DirtyTracker::take_stalls)), in a sentence;
    /// empty where there are no stalls to measure.
    pub stall_method: &'static str,
    /// Stalls not kept because the log was full.
    pub stalls_dropped: u64,
}

impl TrackerStats {
    /// The counts after `earlier`, an earlier snapshot of the same tracker
    /// ([`crate::Stats::since`]); the latest degradation, the userfaultfd and the stall
    /// method are this snapshot's.
    pub fn since(&self, earlier: &TrackerStats) -> TrackerStats {
        let d = |now: u64, then: u64| now.saturating_sub(then);
        TrackerStats {
            faults: d(self.faults, earlier.faults),
            frontier_faults: d(self.frontier_faults, earlier.frontier_faults),
            handed_out: d(self.handed_out, earlier.handed_out),
            hand_out_calls: d(self.hand_out_calls, earlier.hand_out_calls),
            opened_at_arm: d(self.opened_at_arm, earlier.opened_at_arm),
            kept_at_arm: d(self.kept_at_arm, earlier.kept_at_arm),
            kept_released: d(self.kept_released, earlier.kept_released),
            recorded: d(self.recorded, earlier.recorded),
            messages: d(self.messages, earlier.messages),
            reads: d(self.reads, earlier.reads),
            eagain_retries: d(self.eagain_retries, earlier.eagain_retries),
            degradations: d(self.degradations, earlier.degradations),
            last_degradation: self.last_degradation,
            uffd: self.uffd,
            stall_method: self.stall_method,
            stalls_dropped: d(self.stalls_dropped, earlier.stalls_dropped),
        }
    }
}

/// [`TrackerStats::stall_method`] of a tracker whose fault is served on the writing
/// thread.
pub const STALL_IN_HANDLER: &str = "time in the signal handler, from its entry to the \
    page made writable and recorded (a lower bound: the kernel's signal delivery and \
    sigreturn are not included)";
/// [`TrackerStats::stall_method`] of `uffd-wp`.
pub const STALL_SERVICE: &str = "time on the serving thread from reading the fault \
    message to the unprotect that wakes the writer (a lower bound: the wake-up of the \
    serving thread before the read is not included)";
/// [`TrackerStats::stall_method`] of `uffd-wp-async`.
pub const STALL_KERNEL: &str = "not measured: the kernel resolves the fault inside the \
    page-fault handler, and its cost is part of the mutator's own time";

/// The counters of a tracker, each as [`TrackerStats`] defines it.
#[derive(Debug)]
pub(crate) struct Counters {
    faults: AtomicU64,
    frontier_faults: AtomicU64,
    handed_out: AtomicU64,
    hand_out_calls: AtomicU64,
    opened_at_arm: AtomicU64,
    kept_at_arm: AtomicU64,
    kept_released: AtomicU64,
    recorded: AtomicU64,
    degradations: AtomicU64,
    /// This cycle is counted in `degradations` already.
    cycle_degraded: AtomicBool,
    cause: CauseCell,
    mode: Option<UffdMode>,
    knobs: TestKnobs,
}

impl Counters {
    /// Counters for a tracker on the userfaultfd `mode` (`None`: it has none).
    pub(crate) fn new(mode: Option<UffdMode>) -> Counters {
        Counters {
            faults: AtomicU64::new(0),
            frontier_faults: AtomicU64::new(0),
            handed_out: AtomicU64::new(0),
            hand_out_calls: AtomicU64::new(0),
            opened_at_arm: AtomicU64::new(0),
            kept_at_arm: AtomicU64::new(0),
            kept_released: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            degradations: AtomicU64::new(0),
            cycle_degraded: AtomicBool::new(false),
            cause: CauseCell::default(),
            mode,
            knobs: TestKnobs::default(),
        }
    }

    /// A new cycle (arm): it has not degraded yet.
    pub(crate) fn begin_cycle(&self) {
        self.cycle_degraded.store(false, Ordering::Release);
    }

    /// `n` faults served. Async-signal-safe.
    pub(crate) fn served(&self, n: u64) {
        self.faults.fetch_add(n, Ordering::Relaxed);
    }

    /// A fault served on a page handed to the allocator this cycle (one that a harvest
    /// had protected again). Async-signal-safe.
    pub(crate) fn frontier_fault(&self) {
        self.frontier_faults.fetch_add(1, Ordering::Relaxed);
    }

    /// `pages` pages made writable and recorded at hand-out, with `calls` protection
    /// changes.
    pub(crate) fn handed_out(&self, pages: usize, calls: usize) {
        self.handed_out.fetch_add(pages as u64, Ordering::Relaxed);
        self.hand_out_calls
            .fetch_add(calls as u64, Ordering::Relaxed);
    }

    /// An arm left `pages` free pages writable.
    pub(crate) fn armed_open(&self, pages: usize) {
        self.opened_at_arm
            .fetch_add(pages as u64, Ordering::Relaxed);
    }

    /// An arm kept `pages` young pages writable and recorded.
    pub(crate) fn armed_kept(&self, pages: usize) {
        self.kept_at_arm.fetch_add(pages as u64, Ordering::Relaxed);
    }

    /// A harvest took `pages` kept pages that had come to hold a marked object.
    pub(crate) fn released_kept(&self, pages: usize) {
        self.kept_released
            .fetch_add(pages as u64, Ordering::Relaxed);
    }

    /// A harvest handed over `n` granules.
    pub(crate) fn recorded(&self, n: usize) {
        self.recorded.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// This cycle degraded because of `cause`: counted once per cycle, the first cause
    /// kept. Async-signal-safe.
    pub(crate) fn degraded(&self, cause: Degradation) {
        if !self.cycle_degraded.swap(true, Ordering::AcqRel) {
            self.cause.write(&cause);
            self.degradations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The test knobs.
    pub(crate) fn knobs(&self) -> &TestKnobs {
        &self.knobs
    }

    /// The counters kept here; the mechanism adds its own (`messages`, `reads`,
    /// `eagain_retries`).
    pub(crate) fn stats(&self) -> TrackerStats {
        TrackerStats {
            faults: self.faults.load(Ordering::Relaxed),
            frontier_faults: self.frontier_faults.load(Ordering::Relaxed),
            handed_out: self.handed_out.load(Ordering::Relaxed),
            hand_out_calls: self.hand_out_calls.load(Ordering::Relaxed),
            opened_at_arm: self.opened_at_arm.load(Ordering::Relaxed),
            kept_at_arm: self.kept_at_arm.load(Ordering::Relaxed),
            kept_released: self.kept_released.load(Ordering::Relaxed),
            recorded: self.recorded.load(Ordering::Relaxed),
            degradations: self.degradations.load(Ordering::Relaxed),
            last_degradation: self.cause.read(),
            uffd: self.mode,
            ..TrackerStats::default()
        }
    }
}
