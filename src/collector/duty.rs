//! Barrier-only mode ([`crate::HeapConfig::duty_cycle`]): what a barrier costs the
//! mutators with the collection held fixed, as Blackburn and Hosking measure barriers.
//!
//! While no cycle runs, the collector thread repeats one period: arm the tracker, keep it
//! armed (serving faults where the collector serves them) for `armed_share` of the period
//! from the moment the arm returns, harvest without re-arming (the dirty set is counted
//! and dropped: nothing is marked), disarm, and sleep for the rest of the period from the
//! moment the disarm returns. So every barrier is armed for the same time and then
//! unarmed for the same time; the tracker's own arm, harvest and disarm come on top, and
//! a page tracker whose arm takes milliseconds (11–15 ms per GiB of heap in use on a
//! 2-vCPU VM: the micro's 42–58 ns per page, and 20 ms for 1.6 GiB in a barrier-only run)
//! lengthens its periods rather than eating into its armed or unarmed time. A run whose
//! heap holds everything it allocates measures the barrier and nothing else: no marking,
//! no sweep, no pause.
//!
//! While the collector thread arms, harvests or disarms, it runs on a CPU of its own, and
//! every protection change a mutator makes meanwhile (unprotecting a page it faulted on)
//! must shoot down that CPU's TLB, as must, under `uffd-wp-async`, every first write the
//! kernel resolves while the change is in flight. The studies count those interrupts
//! beside the faults, on each side's CPU where the run is placed on two
//! ([`crate::HeapConfig::placement`]).
//!
//! A collection request ends the armed window early (the tracker is harvested and
//! disarmed first, so the cycle arms a clean tracker); the period counts as interrupted.
//! A run that meant to measure the barrier alone must check that no cycle ran
//! ([`crate::Stats::cycles`]).
//!
//! Never: arm while a cycle runs (the collector thread runs periods only between
//! cycles), or leave a period with the tracker armed.

use std::time::{Duration, Instant};

use super::{Gc, Phase, Shared};
use crate::barrier::{DirtySet, DirtyTracker};
use crate::heap::DutyCycle;

/// The collector thread's view of its requests while it runs periods.
pub(crate) struct Idle<'a> {
    pub(super) shared: &'a Shared,
}

impl Idle<'_> {
    /// Whether a cycle was requested or the heap is shutting down.
    fn wanted(&self) -> bool {
        let c = self.shared.control.lock();
        c.requested > c.completed || c.shutdown
    }

    /// Sleeps until `deadline`, or until a cycle is requested or the heap shuts down
    /// (then returns `true`).
    fn sleep_until(&self, deadline: Instant) -> bool {
        let mut c = self.shared.control.lock();
        loop {
            if c.requested > c.completed || c.shutdown {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.shared.request_cv.wait_until(&mut c, deadline);
        }
    }
}

/// Runs one period of `duty` on `gc`'s tracker (sleeps it out when there is none, as
/// for `none`, or while the heap has used no page yet), and adds what it did to the
/// statistics.
pub(crate) fn period(gc: &Gc<'_>, duty: DutyCycle, idle: &Idle<'_>) {
    let start = Instant::now();
    // Nothing to arm without a tracker, or before the heap has used a page.
    let Some(t) = gc.tracker.filter(|_| gc.space.high_water() > 0) else {
        idle.sleep_until(start + duty.period);
        return;
    };
    gc.collector.enter_phase(Phase::Duty);
    t.in_use(gc.space.high_water() * crate::sys::PAGE_SIZE);
    // No sweep runs in a duty cycle: nothing writes a free page.
    let armed = t.arm_with_free(&|f| gc.space.for_each_free_run(f));
    let armed_at = Instant::now();
    let arm = armed_at - start;
    let (mut harvest, mut disarm, mut recorded) = (Duration::ZERO, Duration::ZERO, 0);
    let mut armed_for = Duration::ZERO;
    let mut failed = armed.is_err();
    let mut interrupted = false;
    if armed.is_ok() {
        interrupted = serve_until(t, armed_at + duty.period.mul_f64(duty.armed_share), idle);
        let t0 = Instant::now();
        let mut set = DirtySet::default();
        failed |= t.harvest(&mut set, false).is_err();
        harvest = t0.elapsed();
        let in_use = gc.space.high_water() * crate::sys::PAGE_SIZE;
        recorded = set.count(in_use >> t.granule_shift()) as u64;
        let t0 = Instant::now();
        armed_for = t0 - armed_at;
        failed |= t.disarm().is_err();
        disarm = t0.elapsed();
    }
    let rest = Instant::now() + duty.period.mul_f64(1.0 - duty.armed_share);
    gc.collector.enter_phase(Phase::Idle);
    {
        let mut stats = gc.collector.stats.lock();
        let d = &mut stats.duty;
        d.periods += 1;
        d.interrupted += u64::from(interrupted);
        d.armed += armed_for;
        d.arm += arm;
        d.harvest += harvest;
        d.disarm += disarm;
        d.recorded += recorded;
        d.failures += u64::from(failed);
    }
    if !interrupted {
        idle.sleep_until(rest);
    }
}

/// Waits until `deadline` with the tracker armed, serving its faults if the collector
/// serves them. Returns `true` if a request cut the wait short.
fn serve_until(t: &dyn DirtyTracker, deadline: Instant, idle: &Idle<'_>) -> bool {
    let Some(service) = t.fault_service() else {
        return idle.sleep_until(deadline);
    };
    let fd = service.fd();
    loop {
        if idle.wanted() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        // 1 ms at most between looks at the requests; a failed poll serves anyway.
        if crate::sys::eventfd::poll_readable([fd], 1).unwrap_or([true])[0] {
            service.serve_pending();
        }
    }
}
