//! The collector: Boehm–Demers–Shenker "mostly parallel" mark-sweep with an
//! incremental-update write barrier, on its own thread.
//!
//! # A cycle
//! 1. **Arm** the tracker (concurrent, mutators running), telling it which pages the
//!    allocator holds free and, with [`HeapConfig::keep_young_pages`](crate::HeapConfig::keep_young_pages)
//!    (off by default), which runs of pages were allocated into since the last
//!    arm ([`DirtyTracker::arm_with_young`]): a page tracker protects only the pages in
//!    use, and (but `uffd-wp-async`) of those not the long young runs, mostly garbage
//!    by now, which it keeps writable and recorded. Every harvest tells it which pages hold a marked object
//!    ([`DirtyTracker::harvest_marked`]), and it takes and protects a kept page only
//!    then: a write to an object the mark has not scanned hides nothing.
//! 2. **Initial mark** (pause): flip the allocation epoch (from now on allocations are
//!    black, including the rest of every run a mutator holds), mark the roots.
//! 3. **Concurrent mark**: trace from the roots while mutators run; the `uffd-wp`
//!    collector layout serves faults between increments. When no mutator is running
//!    (each waits for room), the marker helpers join, as in a pause.
//! 4. **Pre-clean** (a few concurrent rounds): harvest the dirty set with re-arm, rescan
//!    the marked objects in the dirty granules, trace; stop when a round finds little
//!    (a page tracker also when a round finds no fewer than the one before: each of
//!    its re-arms costs the mutators a fault per page written again). When the rounds
//!    stop shrinking, the mutators are paced: they wait at their allocations so as to
//!    run only part of the time until remark (`collector/pace.rs`), so that remark
//!    inherits a short round.
//! 5. **Remark** (pause): harvest without re-arm, rescan the dirty granules and the roots,
//!    trace to completion. Marking is complete.
//! 6. **Sweep** (concurrent): free every allocated, unmarked cell, disarming the tracker
//!    ahead of itself: before it zeroes the dead cells of a chunk of pages, the tracker
//!    makes them writable ([`DirtyTracker::disarm_ahead`]): only that chunk while every
//!    mutator waits for room (they get the first chunk's room after one chunk's
//!    unprotect, not the whole heap's), the rest of the heap at once while one runs (its
//!    writes to pages still protected would fault for nothing).
//! 7. **Disarm**: recording stops; a page tracker unprotects what the steps left.
//!
//! With [`BarrierKind::None`](crate::BarrierKind::None) steps 2–5 are one pause: the whole mark stops the world.
//! Marking in a pause uses up to [`HeapConfig::marker_threads`] threads (`collector/mark.rs`),
//! and so does a concurrent mark or pre-clean round that finds no mutator running.
//!
//! `run_cycle` (`collector/cycle.rs`) is this list, one function per step; every pause runs through one
//! sequence (stop the world, work, verify, resume, record).
//!
//! # When a cycle runs
//! The pacer (`collector/pacer.rs`) requests a cycle from bytes: the bytes allocated
//! since the last cycle against the room its heap goal leaves, less the allocation it
//! predicts during the next cycle, and never before half of that room is used; the
//! module states the rule in full. A mutator whose allocation finds the heap full waits
//! for the cycle that is running or requested: an allocation stall, recorded in
//! [`Stats::allocation_stalls`] with the phase it began in. Only when there is no such
//! cycle does the allocation fall back to a full collection ([`Cause::AllocationFailure`],
//! counted by [`Stats::fallbacks`]), as CMS and G1 do after a concurrent-mode failure.
//!
//! # The allocation frontier
//! While the tracker is armed, every page the allocator hands to a mutator goes through
//! [`DirtyTracker::hand_out`] first: IF a page is handed out while armed THEN it is in the
//! dirty set and writable before any write to it (see [`crate::heap`]). So remark rescans
//! the pages new objects were written into (a black new object can receive the only
//! pointer to a white one) without the page trackers paying a fault for each.
//!
//! # What the collector sees of a heap
//! A cycle works on a `Gc` view: the `Space` (through its methods: mark bitmaps, page
//! walks, the sweep), the tracker, the configuration and the collector's own state. It
//! never reaches into a mutator except for the root stacks and allocation buffers of
//! stopped mutators (`collector/safepoint.rs`).
//!
//! # Invariants (checked by the verifier and the tests)
//! - The collector never writes heap memory while the tracker is armed (mark bits,
//!   allocation bits and free lists are side tables; see [`crate::heap`]).
//! - IF a marked object is written after arm AND before remark, THEN its granule is in
//!   the dirty set at remark (the tracker's contract), so remark rescans it.
//! - When remark ends, no marked object points to an unmarked one (tri-colour).
//! - Garbage stays garbage: every object unreachable when a cycle starts is free when
//!   that cycle's sweep ends (only objects that die during the cycle may float).
//! - No object reachable from a root at a safepoint is ever freed.

mod cycle;
mod duty;
mod mark;
mod marker_pool;
mod pace;
mod pacer;
pub(crate) mod safepoint;
mod stats;
mod trace;
mod verify;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::barrier::DirtyTracker;
use crate::error::{Error, Result};
use crate::heap::{HeapConfig, Space};
pub(crate) use cycle::run_cycle;
pub(crate) use duty::{Idle, period as duty_period};
pub use marker_pool::MARKER_THREAD;
use marker_pool::MarkerPool;
use pacer::Pacer;
pub use pacer::{GOAL, MARGIN, Schedule};
use safepoint::Safepoints;
pub use stats::{Cause, CycleStats, DutyStats, Pause, PauseKind, Phase, Stall, Stats};

#[derive(Debug, Default)]
struct Control {
    requested: u64,
    started: u64,
    completed: u64,
    /// Counts the sweep's reports of progress: room may have come back.
    swept: u64,
    /// The cause of the pending request; `AllocationFailure` asks for a full collection.
    cause: Cause,
    shutdown: bool,
    failed: Option<String>,
}

impl Control {
    /// Asks for a cycle that starts after now, for `cause` (the strongest pending cause
    /// wins: a full collection is never downgraded).
    fn want(&mut self, cause: Cause) -> u64 {
        let target = if self.started > self.completed {
            self.started + 1
        } else {
            self.completed + 1
        };
        self.requested = self.requested.max(target);
        if self.cause != Cause::AllocationFailure {
            self.cause = cause;
        }
        target
    }
}

/// The collector's control block, shared with its thread.
#[derive(Debug)]
struct Shared {
    control: Mutex<Control>,
    request_cv: Condvar,
    done_cv: Condvar,
}

/// What a cycle works on: the narrow view of one heap.
pub(crate) struct Gc<'a> {
    pub(crate) space: &'a Space,
    pub(crate) tracker: Option<&'a dyn DirtyTracker>,
    pub(crate) config: &'a HeapConfig,
    pub(crate) collector: &'a Collector,
}

/// The collector half of a heap: its thread, the safepoint handshake, the trigger and
/// the statistics.
pub(crate) struct Collector {
    shared: Arc<Shared>,
    pub(crate) safepoints: Safepoints,
    stats: Mutex<Stats>,
    created: Instant,
    /// `created` in `CLOCK_MONOTONIC` nanoseconds (`Instant` is that clock on Linux):
    /// the origin the trackers' stall times are converted from.
    created_ns: u64,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// When the next cycle starts (`collector/pacer.rs`).
    pacer: Pacer,
    /// The helpers that mark in pauses, parked between them.
    markers: MarkerPool,
    /// Whether a pre-clean that does not converge paces the mutators now
    /// (`collector/pace.rs`).
    pub(crate) pace: pace::Pace,
    /// The current [`Phase`].
    phase: AtomicU8,
    /// The process that made the heap, which alone has its collector thread
    /// ([`Collector::check_process`]).
    pid: u32,
}

impl Collector {
    pub(crate) fn new(config: &HeapConfig) -> Result<Collector> {
        Ok(Collector {
            shared: Arc::new(Shared {
                control: Mutex::new(Control::default()),
                request_cv: Condvar::new(),
                done_cv: Condvar::new(),
            }),
            safepoints: Safepoints::new()?,
            stats: Mutex::new(Stats::default()),
            created: Instant::now(),
            created_ns: crate::sys::monotonic_ns(),
            thread: Mutex::new(None),
            pacer: Pacer::new(config),
            markers: MarkerPool::new(config.marker_threads - 1, config.testing.fail_in_marker)?,
            pace: pace::Pace::new(config),
            phase: AtomicU8::new(Phase::Idle as u8),
            pid: crate::sys::process::pid(),
        })
    }

    /// [`Error::ForkedChild`] if this is not the process that made the heap: a child of
    /// `fork` has the heap's memory but no collector thread, and would wait for ever for
    /// a collection, for room, or at a safepoint of a pause that was on at the fork. Called
    /// first on every such path: one load and a compare, no lock, no allocation, so that
    /// it is safe even in the child of a multi-threaded process.
    #[inline]
    pub(crate) fn check_process(&self) -> Result<()> {
        let pid = crate::sys::process::pid();
        if pid == self.pid {
            Ok(())
        } else {
            Err(Error::ForkedChild {
                heap_pid: self.pid,
                pid,
            })
        }
    }

    /// Starts the collector thread. `cycle(n, cause)` runs cycle `n`; `idle`, if given,
    /// runs while no cycle is wanted, again and again (barrier-only mode's periods,
    /// `collector/duty.rs`). Either returns `false` when the heap is gone, and the thread
    /// then ends.
    pub(crate) fn start(
        &self,
        cycle: impl FnMut(u64, Cause) -> bool + Send + 'static,
        idle: Option<impl FnMut(&Idle<'_>) -> bool + Send + 'static>,
    ) -> Result<()> {
        let shared = self.shared.clone();
        let handle = crate::sys::cpu::ThreadRole::Collector
            .builder(None)
            .spawn(move || collector_loop(shared, cycle, idle))
            .map_err(|e| Error::io("spawn the collector thread", e))?;
        *self.thread.lock() = Some(handle);
        Ok(())
    }

    /// Asks for a cycle if none is running or pending; does not wait.
    pub(crate) fn request(&self) {
        let mut c = self.shared.control.lock();
        if c.requested <= c.completed && c.started <= c.completed {
            c.requested = c.completed + 1;
            c.cause = Cause::Trigger;
            self.shared.request_cv.notify_all();
        }
    }

    /// Runs a cycle that starts after this call and waits for it: a normal one for
    /// [`Cause::Explicit`], a full stop-the-world collection for
    /// [`Cause::AllocationFailure`]. The caller must not be a running mutator (see
    /// `mutator::registry::while_blocked`). [`Error::CollectorFailed`] if the collector thread
    /// has failed (before or during the wait): no cycle can complete then.
    pub(crate) fn collect_and_wait(&self, cause: Cause) -> Result<()> {
        let mut c = self.shared.control.lock();
        let target = c.want(cause);
        self.shared.request_cv.notify_all();
        loop {
            if let Some(msg) = &c.failed {
                return Err(Error::CollectorFailed(msg.clone()));
            }
            if c.completed >= target {
                return Ok(());
            }
            self.shared.done_cv.wait(&mut c);
        }
    }

    /// Waits until no cycle is running or requested (or the collector thread failed).
    pub(crate) fn wait_idle(&self) {
        let mut c = self.shared.control.lock();
        while (c.started > c.completed || c.requested > c.completed) && c.failed.is_none() {
            self.shared.done_cv.wait(&mut c);
        }
    }

    /// The caller found the heap full: if a cycle is running or requested, waits until
    /// its sweep has freed more pages or it has completed, and returns `true` (try the
    /// allocation again); `false` if there is no such cycle (fall back to a full
    /// collection). A wait that returns `true` is part of an allocation stall. The caller
    /// must not be a running mutator (see `mutator::registry::while_blocked`).
    /// [`Error::CollectorFailed`] if the collector thread has failed.
    pub(crate) fn wait_for_room(&self) -> Result<bool> {
        let mut c = self.shared.control.lock();
        let target = c.started.max(c.requested);
        if target <= c.completed {
            return Ok(false);
        }
        let swept = c.swept;
        loop {
            if let Some(msg) = &c.failed {
                return Err(Error::CollectorFailed(msg.clone()));
            }
            if c.completed >= target || c.swept != swept {
                return Ok(true);
            }
            self.shared.done_cv.wait(&mut c);
        }
    }

    /// The sweep reports progress: wakes the allocations waiting for room.
    fn swept_more(&self) {
        self.shared.control.lock().swept += 1;
        self.shared.done_cv.notify_all();
    }

    /// Records an allocation stall that began at `start`, in `phase`, and ends now.
    pub(crate) fn record_allocation_stall(&self, start: Instant, phase: Phase) {
        let stall = self.stall_until_now(start, phase);
        self.stats.lock().allocation_stalls.push(stall);
    }

    /// A mutator's wait that began at `start`, in `phase`, and ends now.
    fn stall_until_now(&self, start: Instant, phase: Phase) -> Stall {
        Stall {
            start: start.saturating_duration_since(self.created),
            duration: start.elapsed(),
            phase: Some(phase),
        }
    }

    /// Records a mutator's wait for a non-converging pre-clean (`collector/pace.rs`)
    /// that began at `start` and ends now.
    pub(crate) fn record_paced(&self, start: Instant) {
        let stall = self.stall_until_now(start, Phase::Preclean);
        self.stats.lock().paced.push(stall);
    }

    /// The trigger, called by a mutator after it took a run or a large object: requests
    /// a cycle when the pacer says so (`collector/pacer.rs`: bytes allocated since the
    /// last cycle against the room it predicts the next cycle needs).
    #[inline]
    pub(crate) fn allocation_poll(&self, space: &Space) {
        if self
            .pacer
            .should_start(space.bytes_allocated(), space.free_pages_estimate())
        {
            self.request();
        }
    }

    /// Live bytes after the last cycle (marked, plus allocated during it).
    pub(crate) fn live_bytes(&self) -> u64 {
        self.pacer.live()
    }

    /// What the collector is doing now.
    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    fn enter_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
    }

    /// Writes a `--log-cycles` line ([`HeapConfig::log_cycles`]) to stderr. A write that
    /// fails (stderr closed or full, a pipe nobody reads) is counted in
    /// [`Stats::log_lines_lost`] and otherwise ignored: logging never takes the collector,
    /// and with it every mutator, down.
    fn log(&self, line: &str) {
        use std::io::Write as _;
        if writeln!(std::io::stderr().lock(), "{line}").is_err() {
            self.stats.lock().log_lines_lost += 1;
        }
    }

    /// Time since the heap was created: the origin of [`Pause::start`].
    pub(crate) fn uptime(&self) -> Duration {
        self.created.elapsed()
    }

    /// Moves the tracker's measured stalls into the statistics.
    fn collect_stalls(&self, tracker: Option<&dyn DirtyTracker>, stats: &mut Stats) {
        let Some(t) = tracker else { return };
        let mut raw = Vec::new();
        t.take_stalls(&mut raw);
        stats
            .stalls
            .extend(raw.into_iter().map(|(start, duration)| Stall {
                start: Duration::from_nanos(start.saturating_sub(self.created_ns)),
                duration: Duration::from_nanos(duration),
                phase: None,
            }));
    }

    pub(crate) fn stats(&self, gc: &Gc<'_>) -> Stats {
        let mut s = {
            let mut stats = self.stats.lock();
            self.collect_stalls(gc.tracker, &mut stats);
            stats.clone()
        };
        s.barrier = Some(gc.config.barrier.kind());
        s.marker_threads = gc.config.marker_threads;
        if let Some(t) = gc.tracker {
            s.tracker = t.stats();
        }
        s.bytes_allocated = gc.space.bytes_allocated();
        s
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.shared.control.lock().shutdown = true;
        self.shared.request_cv.notify_all();
        if let Some(t) = self.thread.lock().take() {
            // The last handle may be dropped by the collector thread itself (it holds the
            // heap during a cycle); it exits on its own then.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

fn collector_loop(
    shared: Arc<Shared>,
    mut cycle: impl FnMut(u64, Cause) -> bool,
    mut idle: Option<impl FnMut(&Idle<'_>) -> bool>,
) {
    loop {
        let (n, cause) = {
            let mut c = shared.control.lock();
            while c.requested <= c.completed && !c.shutdown {
                match idle.as_mut() {
                    None => shared.request_cv.wait(&mut c),
                    Some(run) => {
                        let idle = Idle { shared: &shared };
                        if !parking_lot::MutexGuard::unlocked(&mut c, || run(&idle)) {
                            return;
                        }
                    }
                }
            }
            if c.shutdown {
                return;
            }
            c.started = c.completed + 1;
            (c.started, std::mem::take(&mut c.cause))
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cycle(n, cause)));
        let mut c = shared.control.lock();
        c.completed = n;
        match outcome {
            Ok(true) => {
                shared.done_cv.notify_all();
            }
            Ok(false) => {
                shared.done_cv.notify_all();
                return;
            }
            Err(p) => {
                c.failed = Some(marker_pool::panic_message(&*p));
                c.completed = u64::MAX;
                shared.done_cv.notify_all();
                return;
            }
        }
    }
}
