//! Lab internals: the fault-injection and race-widening knobs of a tracker, for tests.

// The setters are called only with the `lab-internals` feature (by the tests).
#![cfg_attr(not(feature = "lab-internals"), allow(dead_code))]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Lab internals: the test knobs of a page tracker
/// (`DirtyTracker::test_knobs`). Tests set them; a
/// measurement leaves them at zero, where each costs one relaxed load on its path.
#[derive(Debug, Default)]
pub struct TestKnobs {
    fail_next: AtomicU32,
    widen: AtomicU32,
    forget_hand_outs: AtomicBool,
}

impl TestKnobs {
    /// The next `n` protection changes at the mechanism's injection point fail as if the
    /// kernel had refused them. For the page trackers the point is a change of a run of
    /// pages (a fault's unprotect, a harvest's run-by-run re-protect, a hand-out), with
    /// `ENOMEM` for `mprotect` (as at `vm.max_map_count`) and `EIO` for userfaultfd;
    /// `uffd-wp-async` fails its next scans with `EIO`.
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::Relaxed);
    }

    /// Spin `spins` times between the two steps of serving a fault (unprotect | record)
    /// and of a harvest (take | re-protect), to widen the races between them.
    pub fn widen_races(&self, spins: u32) {
        self.widen.store(spins, Ordering::Relaxed);
    }

    /// A planted bug: pages handed to the allocator while armed are made writable but not
    /// recorded, so that writes to objects allocated in them are lost to the barrier (the
    /// verifier must catch it). Has no effect on `uffd-wp-async`, whose record is the
    /// protection itself: a page made writable is reported written.
    pub fn forget_hand_outs(&self, yes: bool) {
        self.forget_hand_outs.store(yes, Ordering::Relaxed);
    }

    /// Whether [`TestKnobs::forget_hand_outs`] is on.
    pub(crate) fn forgets_hand_outs(&self) -> bool {
        self.forget_hand_outs.load(Ordering::Relaxed)
    }

    /// The one injection point of [`TestKnobs::fail_next`]: `Err(errno)` if this
    /// protection change (or scan) is one to fail, counting it. Async-signal-safe.
    pub(crate) fn injected(&self, errno: i32) -> Result<(), i32> {
        match self
            .fail_next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        {
            Ok(_) => Err(errno),
            Err(_) => Ok(()),
        }
    }

    /// Spins as [`TestKnobs::widen_races`] asked. Async-signal-safe.
    pub(crate) fn widen(&self) {
        for _ in 0..self.widen.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
    }
}
