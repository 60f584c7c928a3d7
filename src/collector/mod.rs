//! The collector: Boehm–Demers–Shenker "mostly parallel" mark-sweep with an
//! incremental-update write barrier, on its own thread.
//!
//! # A cycle
//! 1. **Arm** the tracker (concurrent, mutators running).
//! 2. **Initial mark** (pause): flip the allocation epoch (from now on allocations are
//!    black, including the rest of every run a mutator holds), mark the roots.
//! 3. **Concurrent mark**: trace from the roots while mutators run; the `uffd-wp`
//!    collector layout serves faults between increments.
//! 4. **Pre-clean** (a few concurrent rounds): harvest the dirty set with re-arm, rescan
//!    the marked objects in the dirty granules, trace; stop when a round finds little.
//! 5. **Remark** (pause): harvest without re-arm, rescan the dirty granules and the roots,
//!    trace to completion. Marking is complete.
//! 6. **Disarm** (after the pause, mutators running).
//! 7. **Sweep** (concurrent): free every allocated, unmarked cell.
//!
//! With [`BarrierKind::None`](crate::BarrierKind::None) steps 2–5 are one pause: the whole mark stops the world.
//! Marking in a pause uses up to [`HeapConfig::marker_threads`] threads (`collector/mark.rs`).
//!
//! `run_cycle` is this list, one function per step; every pause runs through one
//! sequence (stop the world, work, verify, resume, record).
//!
//! # When a cycle runs
//! The pacer (`collector/pacer.rs`) requests a cycle from bytes: the bytes allocated
//! since the last cycle against the room its heap goal leaves, less the allocation it
//! predicts during the next cycle, and never before half of that room is used; the
//! module states the rule in full. A mutator whose allocation finds the heap full waits
//! for the cycle that is running or requested (an allocation stall, recorded in
//! [`Stats::allocation_stalls`]); only when none is does the allocation fall back to a
//! full collection ([`Cause::AllocationFailure`], counted by [`Stats::fallbacks`]), as CMS
//! and G1 do after a concurrent-mode failure.
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

mod mark;
mod marker_pool;
mod pacer;
pub(crate) mod safepoint;
mod stats;
mod verify;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::barrier::{DirtySet, DirtyTracker};
use crate::error::{Error, Result};
use crate::heap::{HeapConfig, Space};
use mark::Marker;
pub use marker_pool::MARKER_THREAD;
use marker_pool::MarkerPool;
use pacer::{CycleEnd, Pacer};
pub use pacer::{GOAL, MARGIN, Schedule};
use safepoint::{MutatorShared, Safepoints, Wanted};
pub use stats::{Cause, CycleStats, Pause, PauseKind, Phase, Stall, Stats};

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
    /// The current [`Phase`].
    phase: AtomicU8,
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
            markers: MarkerPool::new(config.marker_threads - 1)?,
            phase: AtomicU8::new(Phase::Idle as u8),
        })
    }

    /// Starts the collector thread. `cycle(n, cause)` runs cycle `n`; it returns `false`
    /// when the heap is gone, and the thread then ends.
    pub(crate) fn start(
        &self,
        cycle: impl FnMut(u64, Cause) -> bool + Send + 'static,
    ) -> Result<()> {
        let shared = self.shared.clone();
        let handle = crate::sys::cpu::ThreadRole::Collector
            .builder(None)
            .spawn(move || collector_loop(shared, cycle))
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

    /// Records an allocation stall that began at `start` and ends now.
    pub(crate) fn record_allocation_stall(&self, start: Instant) {
        let stall = Stall {
            start: start.saturating_duration_since(self.created),
            duration: start.elapsed(),
        };
        self.stats.lock().allocation_stalls.push(stall);
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
            }));
    }

    pub(crate) fn stats(&self, gc: &Gc<'_>) -> Stats {
        let mut s = {
            let mut stats = self.stats.lock();
            self.collect_stalls(gc.tracker, &mut stats);
            stats.clone()
        };
        s.barrier = Some(gc.config.barrier);
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

fn collector_loop(shared: Arc<Shared>, mut cycle: impl FnMut(u64, Cause) -> bool) {
    loop {
        let (n, cause) = {
            let mut c = shared.control.lock();
            while c.requested <= c.completed && !c.shutdown {
                shared.request_cv.wait(&mut c);
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
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                c.failed = Some(msg);
                c.completed = u64::MAX;
                shared.done_cv.notify_all();
                return;
            }
        }
    }
}

/// Applies the planted bug of [`crate::heap::Testing::drop_every_nth_dirty`].
fn plant_bug(config: &HeapConfig, set: &mut DirtySet) {
    if let Some(n) = config.testing.drop_every_nth_dirty {
        let mut i = 0;
        set.granules.retain(|_| {
            i += 1;
            i % n != 0
        });
    }
}

/// One cycle in progress.
struct Cycle<'g> {
    gc: &'g Gc<'g>,
    n: u64,
    epoch: usize,
    marker: Marker<'g>,
    dirty: DirtySet,
    stats: CycleStats,
    verifier_failures: Vec<String>,
    started: Instant,
    /// The tracker's counters when the cycle began (the cycle's own are the differences
    /// at the end).
    tracker_at_start: crate::barrier::TrackerStats,
    /// `Space::bytes_allocated` when the cycle began, and at its flip (from which on
    /// allocation is black).
    allocated_at_start: u64,
    allocated_at_flip: u64,
    /// `Space::bytes_allocated` when the sweep began: the pacer's measure of what the
    /// mutators need while a cycle runs ends here, since the sweep gives room back as it
    /// goes (page by page, faster than mutators allocate).
    allocated_at_sweep: u64,
}

/// Runs cycle `n`: the numbered list of the module docs, or, for an allocation that
/// found no room, a full collection in one pause.
pub(crate) fn run_cycle(gc: &Gc<'_>, n: u64, cause: Cause) {
    let mut c = Cycle::new(gc, n);
    c.stats.cause = cause;
    if cause == Cause::AllocationFailure {
        c.full_collection();
    } else {
        match c.arm() {
            Some(t) => {
                c.initial_mark();
                c.concurrent_mark();
                c.preclean(t);
                c.remark(t);
                c.disarm(t);
            }
            None => c.stop_the_world_mark(),
        }
        c.sweep();
    }
    c.finish();
}

impl<'g> Cycle<'g> {
    fn new(gc: &'g Gc<'g>, n: u64) -> Cycle<'g> {
        let epoch = (n % 2) as usize;
        let allocated = gc.space.bytes_allocated();
        Cycle {
            gc,
            n,
            epoch,
            marker: Marker::new(
                gc.space,
                gc.tracker,
                gc.space.marks(epoch),
                gc.config.mark_poll_interval,
            ),
            dirty: DirtySet::default(),
            stats: CycleStats {
                cycle: n,
                heap_before: gc.collector.live_bytes() + gc.collector.pacer.since(allocated),
                ..CycleStats::default()
            },
            tracker_at_start: gc.tracker.map(|t| t.stats()).unwrap_or_default(),
            verifier_failures: Vec::new(),
            started: Instant::now(),
            allocated_at_start: allocated,
            allocated_at_flip: allocated,
            allocated_at_sweep: allocated,
        }
    }

    /// The tracker's granule count over the whole heap.
    fn granules(&self, shift: u32) -> usize {
        self.gc.space.pages() << (12 - shift)
    }

    /// Records a tracker failure: the cycle degrades, and keeps the cause.
    fn degrade(&mut self, what: &str, e: &Error) {
        self.stats.degraded = true;
        if self.stats.degradation.is_none() {
            self.stats.degradation = Some(format!("{what}: {e}"));
        }
    }

    /// 1. Arm the tracker, mutators running. `None`: no tracker, or it could not arm, so
    ///    this cycle stops the world for the whole mark.
    fn arm(&mut self) -> Option<&'g dyn DirtyTracker> {
        let t = self.gc.tracker?;
        self.gc.collector.enter_phase(Phase::Arm);
        let t0 = Instant::now();
        self.gc.space.begin_frontier();
        t.in_use(self.gc.space.high_water() * crate::sys::PAGE_SIZE);
        let armed = t.arm();
        self.stats.arm = t0.elapsed();
        match armed {
            Ok(()) => Some(t),
            Err(e) => {
                self.degrade("arm", &e);
                None
            }
        }
    }

    /// Every pause: stop the world, run `work` with the stopped mutators, verify where
    /// asked, resume, record (the threads that marked are recorded in the pause's stats).
    fn pause(&mut self, kind: PauseKind, work: impl FnOnce(&mut Self, &[Arc<MutatorShared>])) {
        let sp = &self.gc.collector.safepoints;
        let cpu_before = crate::sys::cpu::thread_cpu_time().unwrap_or_default();
        let (mutators, ttsp) = sp.stop_world(self.gc.tracker);
        self.gc.collector.enter_phase(match kind {
            PauseKind::InitialMark => Phase::InitialMark,
            PauseKind::Remark => Phase::Remark,
            PauseKind::StopTheWorld | PauseKind::Full => Phase::StopTheWorld,
        });
        let started = Instant::now() - ttsp;
        let threads_before = self.stats.marker_threads_max;
        work(self, &mutators);
        if kind != PauseKind::InitialMark && self.gc.config.verify {
            // SAFETY: every mutator in `mutators` is stopped until `resume_world`.
            let roots = mutators.iter().map(|m| unsafe { m.roots() });
            self.verifier_failures
                .extend(verify::verify(self.gc.space, self.marker.marks, roots));
        }
        sp.resume_world();
        let duration = started.elapsed();
        let collector_cpu = crate::sys::cpu::thread_cpu_time()
            .unwrap_or_default()
            .saturating_sub(cpu_before);
        let threads = self.stats.marker_threads_max.max(threads_before).max(1);
        let collector = self.gc.collector;
        let pause = Pause {
            kind,
            cycle: self.n,
            start: started.saturating_duration_since(collector.created),
            duration,
            time_to_safepoint: ttsp,
            collector_cpu,
            marker_threads: threads,
        };
        if self.gc.config.log_cycles {
            eprintln!("{}", pause.log_line());
        }
        collector.stats.lock().pauses.push(pause);
    }

    /// In the pause that starts marking: from now on reservations mark this cycle's
    /// bitmap, the unused rest of every held run is marked too (allocation is black),
    /// and the trigger counts allocation from here. Then the roots are marked.
    fn flip_and_mark_roots(&mut self, mutators: &[Arc<MutatorShared>]) {
        let space = self.gc.space;
        space.set_alloc_epoch(self.epoch);
        for m in mutators {
            // SAFETY: `m` is stopped for the whole pause.
            space.blacken(unsafe { m.buffers() }, self.epoch, self.gc.tracker);
        }
        self.allocated_at_flip = space.bytes_allocated();
        self.mark_roots(mutators);
    }

    fn mark_roots(&mut self, mutators: &[Arc<MutatorShared>]) {
        for m in mutators {
            // SAFETY: `m` is stopped for the whole pause.
            self.marker.mark_all(unsafe { m.roots() });
            // A large object a full collection allocated for `m` that `m` has not taken
            // yet (it has not run since): reachable only from here.
            // SAFETY: as above.
            if let Wanted::GrantedLarge(addr) = unsafe { *m.wanted() } {
                self.marker.mark(addr);
            }
        }
    }

    /// Traces to completion inside a pause, in parallel where there is enough work.
    fn drain_in_pause(&mut self) {
        let threads = self.marker.drain_parallel(&self.gc.collector.markers);
        self.stats.marker_threads_max = self.stats.marker_threads_max.max(threads);
    }

    /// 2–5 in one pause, for `none` or a tracker that could not arm.
    fn stop_the_world_mark(&mut self) {
        self.pause(PauseKind::StopTheWorld, |c, mutators| {
            c.flip_and_mark_roots(mutators);
            c.drain_in_pause();
        });
    }

    /// The fall-back for an allocation that found no room: every mutator stopped, their
    /// allocation buffers returned (no black allocation, no page held back), the whole
    /// heap marked and swept before anyone allocates again. The tracker stays disarmed.
    fn full_collection(&mut self) {
        self.pause(PauseKind::Full, |c, mutators| {
            let space = c.gc.space;
            space.set_alloc_epoch(c.epoch);
            for m in mutators {
                // SAFETY: `m` is stopped for the whole pause.
                let bufs = unsafe { m.buffers_while_stopped() };
                for (class, b) in bufs.classes.iter_mut().enumerate() {
                    space.retire(b, class);
                }
            }
            c.allocated_at_flip = space.bytes_allocated();
            c.mark_roots(mutators);
            c.drain_in_pause();
            c.sweep();
            // Serve the allocations that asked for this collection, before any mutator
            // runs again and takes the room.
            for m in mutators {
                // SAFETY: `m` is stopped for the whole pause.
                let (wanted, bufs) = unsafe { (m.wanted(), m.buffers_while_stopped()) };
                match *wanted {
                    Wanted::Small(class) => {
                        space.refill(&mut bufs.classes[class], class, c.gc.tracker);
                        *wanted = Wanted::Nothing;
                    }
                    Wanted::Large(bytes) => {
                        *wanted = space
                            .alloc_large(bytes, c.gc.tracker)
                            .map_or(Wanted::Nothing, Wanted::GrantedLarge);
                    }
                    Wanted::Nothing | Wanted::GrantedLarge(_) => {}
                }
            }
        });
    }

    /// 2. Initial mark (pause): flip, mark the roots.
    fn initial_mark(&mut self) {
        self.pause(PauseKind::InitialMark, |c, mutators| {
            c.flip_and_mark_roots(mutators)
        });
    }

    /// 3. Concurrent mark: trace from the roots while mutators run.
    fn concurrent_mark(&mut self) {
        self.gc.collector.enter_phase(Phase::ConcurrentMark);
        let t0 = Instant::now();
        self.marker.drain();
        self.stats.mark += t0.elapsed();
    }

    /// Harvests into `self.dirty`; a failed harvest makes the whole heap dirty.
    fn harvest(&mut self, t: &dyn DirtyTracker, rearm: bool) {
        let t0 = Instant::now();
        t.in_use(self.gc.space.high_water() * crate::sys::PAGE_SIZE);
        if let Err(e) = t.harvest(&mut self.dirty, rearm) {
            self.degrade(
                if rearm {
                    "pre-clean harvest"
                } else {
                    "remark harvest"
                },
                &e,
            );
            self.dirty.all = true;
        }
        self.stats.harvest += t0.elapsed();
        plant_bug(self.gc.config, &mut self.dirty);
        self.split_by_frontier(t.granule_shift());
    }

    /// Counts the harvested granules on pages allocated into during the cycle (first
    /// writes to new objects, and to the pages that came into use) apart from the others
    /// (writes to objects older than the cycle). Not for an "everything" harvest.
    fn split_by_frontier(&mut self, shift: u32) {
        if self.dirty.all {
            return;
        }
        let space = self.gc.space;
        let page_shift = crate::sys::PAGE_SHIFT - shift;
        let frontier = (self.dirty.granules.iter())
            .filter(|&&g| space.in_frontier(g >> page_shift))
            .count();
        self.stats.dirty_frontier += frontier;
        self.stats.dirty_old += self.dirty.granules.len() - frontier;
    }

    /// 4. Pre-clean: harvest with re-arm, rescan, trace; until a round finds little, or
    ///    no less than the round before (the mutators dirty granules as fast as they are
    ///    cleaned, and remark takes the rest). What a round rescans is what was written
    ///    during the round before, so while rescanning is faster than the mutators dirty
    ///    memory the rounds shrink geometrically, and so does remark's share.
    fn preclean(&mut self, t: &dyn DirtyTracker) {
        self.gc.collector.enter_phase(Phase::Preclean);
        let t0 = Instant::now();
        let shift = t.granule_shift();
        let mut previous = usize::MAX;
        for _ in 0..self.gc.config.max_preclean_rounds {
            self.harvest(t, true);
            let count = self.dirty.count(self.granules(shift));
            if self.gc.config.record_dirty_pages && self.stats.preclean_dirty.is_empty() {
                let pages = self.dirty.granules.iter().map(|g| g >> (12 - shift));
                self.stats.dirty_pages = pages.collect();
                self.stats.dirty_pages.dedup();
            }
            self.stats.preclean_dirty.push(count);
            self.stats.preclean_rescanned += self.marker.rescan(&self.dirty, shift);
            self.marker.drain();
            if count <= self.gc.config.preclean_threshold || count >= previous {
                break;
            }
            previous = count;
        }
        self.stats.mark += t0.elapsed();
    }

    /// 5. Remark (pause): harvest without re-arm, rescan the dirty granules and the
    ///    roots, trace to completion.
    fn remark(&mut self, t: &dyn DirtyTracker) {
        let shift = t.granule_shift();
        self.pause(PauseKind::Remark, |c, mutators| {
            c.harvest(t, false);
            c.stats.remark_dirty = c.dirty.count(c.granules(shift));
            c.stats.remark_rescanned = c.marker.rescan(&c.dirty, shift);
            c.mark_roots(mutators);
            let before = c.marker.objects_marked;
            c.drain_in_pause();
            c.stats.remark_traced = c.marker.objects_marked - before;
        });
    }

    /// 6. Disarm, lazily: mutators are running again.
    fn disarm(&mut self, t: &dyn DirtyTracker) {
        self.gc.collector.enter_phase(Phase::Disarm);
        let t0 = Instant::now();
        if let Err(e) = t.disarm() {
            self.degrade("disarm", &e);
        }
        self.stats.disarm = t0.elapsed();
    }

    /// 7. Sweep, concurrently.
    fn sweep(&mut self) {
        self.gc.collector.enter_phase(Phase::Sweep);
        self.allocated_at_sweep = self.gc.space.bytes_allocated();
        self.stats.objects_marked = self.marker.objects_marked;
        self.stats.bytes_marked = self.marker.bytes_marked;
        let space = self.gc.space;
        // The other bitmap: no reservation marks it since the flip.
        space.clear_marks(1 - self.epoch);
        let t0 = Instant::now();
        let collector = self.gc.collector;
        let (bytes, objects) = space.sweep(self.marker.marks, || collector.swept_more());
        self.stats.sweep = t0.elapsed();
        self.stats.bytes_freed = bytes;
        self.stats.objects_freed = objects;
    }

    /// Tells the pacer what the cycle measured and files the cycle's statistics.
    fn finish(mut self) {
        self.gc.collector.enter_phase(Phase::Idle);
        self.stats.total = self.started.elapsed();
        let (space, collector) = (self.gc.space, self.gc.collector);
        // Live now: what was marked, plus what was allocated (black) since the flip.
        let now = space.bytes_allocated();
        let live = self.marker.bytes_marked + now.saturating_sub(self.allocated_at_flip);
        self.stats.heap_after = live;
        self.stats.allocated = now.saturating_sub(self.allocated_at_start);
        self.stats.schedule = collector.pacer.cycle_ended(CycleEnd {
            allocated_now: now,
            during: self
                .allocated_at_sweep
                .saturating_sub(self.allocated_at_start),
            marked: self.marker.bytes_marked,
            live,
            mutators: collector.safepoints.mutators(),
            full: self.stats.cause == Cause::AllocationFailure,
        });
        if let Some(t) = self.gc.tracker {
            let (now, start) = (t.stats(), &self.tracker_at_start);
            self.stats.faults = now.faults.saturating_sub(start.faults);
            self.stats.frontier_faults = now.frontier_faults.saturating_sub(start.frontier_faults);
            self.stats.handed_out = now.handed_out.saturating_sub(start.handed_out);
        }
        if self.gc.config.log_cycles {
            eprintln!("{}", self.stats.log_line(space.len()));
        }
        let mut stats = collector.stats.lock();
        collector.collect_stalls(self.gc.tracker, &mut stats);
        stats.cycles = self.n;
        stats.verifier_failures += self.verifier_failures.len() as u64;
        for msg in self.verifier_failures.into_iter().take(8) {
            if stats.verifier_messages.len() < 32 {
                stats.verifier_messages.push(msg);
            }
        }
        stats.cycle_log.push(self.stats);
    }
}
