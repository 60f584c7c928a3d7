//! One collection cycle: the numbered list of the collector's module docs, one method
//! per step, and the full collection an allocation that found no room falls back to.
//!
//! Why a file of its own: the collector's module root holds what outlives a cycle (the
//! thread, the control block, the statistics); this file holds what lives for one
//! cycle (the marker, the dirty set, the cycle's statistics) and the pause sequence
//! every step runs through. Never: write a heap page before the tracker has made it
//! writable (the sweep writes a chunk only after `disarm_ahead` over it), or
//! leave a pause without resuming the world (the pause's `StoppedWorld` resumes it when
//! resumed or dropped, also while a panic unwinds).

use std::sync::Arc;
use std::time::Instant;

use super::mark::Marker;
use super::pace;
use super::pacer::CycleEnd;
use super::safepoint::{MutatorShared, Wanted};
use super::{Cause, CycleStats, Gc, Pause, PauseKind, Phase, verify};
use crate::barrier::{DirtySet, DirtyTracker};
use crate::error::Error;
use crate::heap::HeapConfig;
use crate::heap::size_class::CLASS_SIZES;

/// Applies the planted bug of [`crate::heap::testing::Testing::drop_every_nth_dirty`].
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
///
/// If the cycle fails (a panic: a bug, or a planted failure), the pause it was in has
/// resumed the world while unwinding; the tracker is disarmed here (best effort), so that
/// no writer waits for a fault service that no cycle will drive again, and the panic
/// goes on to the collector thread's loop, which fails every waiting and later
/// collection with [`Error::CollectorFailed`].
pub(crate) fn run_cycle(gc: &Gc<'_>, n: u64, cause: Cause) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cycle(gc, n, cause)));
    if let Err(panic) = outcome {
        gc.collector.enter_phase(Phase::Idle);
        if let Some(t) = gc.tracker {
            let _ = t.disarm();
        }
        std::panic::resume_unwind(panic);
    }
}

fn cycle(gc: &Gc<'_>, n: u64, cause: Cause) {
    let mut c = Cycle::new(gc, n);
    c.stats.cause = cause;
    if cause == Cause::AllocationFailure {
        c.full_collection();
    } else {
        match c.arm() {
            Some(t) => {
                c.initial_mark();
                c.concurrent_mark();
                let pacing = c.preclean(t);
                c.remark(t, pacing);
                c.sweep(Some(t));
                c.disarm(t);
            }
            None => {
                c.stop_the_world_mark();
                c.sweep(None);
            }
        }
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
        let young = match self.gc.config.keeps_young_pages() {
            true => self.gc.space.frontier_runs(),
            false => Vec::new(),
        };
        self.gc.space.begin_frontier();
        t.in_use(self.gc.space.high_water() * crate::sys::PAGE_SIZE);
        // The sweep, the only writer of free pages, ran before this arm and runs again
        // only after the disarm.
        let armed = t.arm_with_young(&|f| self.gc.space.for_each_free_run(f), &young);
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
    /// asked, resume, record. The world resumes when `world` is dropped: at the end, or
    /// while a panic in `work` unwinds (see [`run_cycle`]).
    fn pause(&mut self, kind: PauseKind, work: impl FnOnce(&mut Self, &[Arc<MutatorShared>])) {
        let cpu_before = crate::sys::cpu::thread_cpu_time().unwrap_or_default();
        let world = self.gc.collector.safepoints.stop_world(self.gc.tracker);
        let (mutators, ttsp) = (&world.mutators, world.time_to_safepoint);
        self.gc.collector.enter_phase(match kind {
            PauseKind::InitialMark => Phase::InitialMark,
            PauseKind::Remark => Phase::Remark,
            PauseKind::StopTheWorld | PauseKind::Full => Phase::StopTheWorld,
        });
        let started = Instant::now() - ttsp;
        let threads_before = self.stats.marker_threads_max;
        work(self, mutators);
        if self.gc.config.testing.fail_in_pause_of_cycle == Some(self.n) {
            std::panic::resume_unwind(Box::new(format!(
                "planted failure in the {} pause of cycle {}",
                kind.name(),
                self.n
            )));
        }
        if kind != PauseKind::InitialMark && self.gc.config.verify {
            // SAFETY: every mutator in `mutators` is stopped until `world` is dropped.
            let roots = mutators.iter().map(|m| unsafe { m.roots() });
            let found = verify::verify(self.gc, self.marker.marks, &self.dirty, roots);
            self.verifier_failures.extend(found);
        }
        let duration = world.resume().saturating_duration_since(started);
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
            collector.log(&pause.log_line());
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
            self.stats.stale_roots += self.marker.mark_roots(unsafe { m.roots() });
            // An object a full collection allocated for `m` that `m` has not taken yet
            // (it has not run since): reachable only from here.
            // SAFETY: as above.
            if let Wanted::GrantedLarge(addr) | Wanted::GrantedSmall(addr) = unsafe { *m.wanted() }
            {
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
            c.sweep(None);
            // Serve the allocations that asked for this collection, before any mutator
            // runs again and takes the room.
            for m in mutators {
                // SAFETY: `m` is stopped for the whole pause.
                let (wanted, bufs) = unsafe { (m.wanted(), m.buffers_while_stopped()) };
                match *wanted {
                    Wanted::Small(class) => {
                        // The cell itself, not only a run: the buffer may be returned by
                        // another full collection before `m` runs again (a thread that
                        // falls back while `m` still waits to be scheduled), and `m` would
                        // find it empty, fall back again, and could run out of tries
                        // with the heap all but empty.
                        let buf = &mut bufs.classes[class];
                        *wanted = if space.refill(buf, class, c.gc.tracker) {
                            let cell = buf.cursor;
                            buf.cursor += CLASS_SIZES[class];
                            Wanted::GrantedSmall(cell)
                        } else {
                            Wanted::Nothing
                        };
                    }
                    Wanted::Large(bytes) => {
                        *wanted = space
                            .alloc_large(bytes, c.gc.tracker)
                            .map_or(Wanted::Nothing, Wanted::GrantedLarge);
                    }
                    Wanted::Nothing | Wanted::GrantedLarge(_) | Wanted::GrantedSmall(_) => {}
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
        self.drain_concurrently();
        self.stats.mark += t0.elapsed();
    }

    /// Traces while mutators run, with the helpers once no mutator is running.
    fn drain_concurrently(&mut self) {
        let collector = self.gc.collector;
        let threads =
            (self.marker).drain(&collector.markers, || collector.safepoints.none_running());
        if threads > 1 {
            self.stats.helped_drains += 1;
        }
    }

    /// Harvests into `self.dirty`; a failed harvest makes the whole heap dirty.
    fn harvest(&mut self, t: &dyn DirtyTracker, rearm: bool) {
        let t0 = Instant::now();
        t.in_use(self.gc.space.high_water() * crate::sys::PAGE_SIZE);
        let (space, marks) = (self.gc.space, self.marker.marks);
        let deny = self.gc.config.testing.deny_marks;
        let marked = |addr: usize| !deny && space.holds_marked(marks, addr);
        if let Err(e) = t.harvest_marked(&mut self.dirty, rearm, &marked) {
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
    ///    the rounds run out. What a round rescans is what was written during the round
    ///    before, so while rescanning is faster than the mutators dirty memory the
    ///    rounds shrink geometrically, and so does remark's share.
    ///
    ///    A round that took long and found no fewer than three quarters of the round
    ///    before (the mutators dirty memory about as fast as a round cleans it) turns
    ///    pacing on for the rounds after it: the mutators then run only part of the
    ///    time (`collector/pace.rs`), so the rounds shrink again and remark inherits a
    ///    short one. Without pacing, remark took the whole of such a round (the LRU
    ///    cache at 140 MiB under the card table: 7,800 cards, 4 to 7 ms). A paced
    ///    round that is still slow and still does not shrink by a quarter halves the
    ///    mutators' share (`Pace::tighten`, down to an eighth): at half the time, the
    ///    write watch's rounds on the same cache stayed at 1,700 to 2,600 pages, and
    ///    remark took 1.5 to 3 ms.
    ///
    ///    A round that finds no fewer than the one before, with the mutators paced
    ///    during the whole of it (or pacing off), ends pre-cleaning for a page
    ///    tracker, and remark takes the rest: its re-arm write-protects the pages
    ///    again, so each further round costs the mutators a fault on every page they
    ///    write again, for no smaller remark (binary trees at 132 MiB ran 2.0 times as
    ///    long under `mprotect` when such rounds went on). A store-path tracker's
    ///    re-arm clears bytes the mutators never wait for, so it goes on: a mutator
    ///    allocating at full speed dirties the frontier as fast as a round cleans it
    ///    (GCBench at 64 MiB: 8,695 cards, then 10,411) until the heap fills and it
    ///    waits for this cycle, and the next round then finds almost nothing; stopping
    ///    at the first such round handed remark 8,000 to 10,000 cards (1.2 to 1.7 ms
    ///    pauses).
    ///
    ///    Pacing, if on, stays on until remark has stopped the world (the returned
    ///    guard): ended earlier, it let the mutators dirty pages at full speed until the
    ///    pause began (binary trees under `uffd-wp-async`: 800 to 3,600 pages in the
    ///    0.2 to 0.5 ms before remark, after a last round that found fewer than 32).
    fn preclean(&mut self, t: &dyn DirtyTracker) -> Option<pace::PaceGuard<'g>> {
        self.gc.collector.enter_phase(Phase::Preclean);
        let t0 = Instant::now();
        let shift = t.granule_shift();
        let pace = &self.gc.collector.pace;
        let rule = pace::Rule {
            threshold: self.gc.config.preclean_threshold,
            rearm_costs_faults: t.kind().is_page_level(),
            may_pace: pace.enabled(),
            forced: self.gc.config.testing.pace_from_first_round,
        };
        let (mut pacing, mut pacing_since) = (None, None);
        let mut last_change = None;
        let mut previous = usize::MAX;
        for round in 1..=self.gc.config.max_preclean_rounds {
            let started = Instant::now();
            self.harvest(t, true);
            let count = self.dirty.count(self.granules(shift));
            if self.gc.config.record_dirty_pages && self.stats.preclean_dirty.is_empty() {
                let pages = self.dirty.granules.iter().map(|g| g >> (12 - shift));
                self.stats.dirty_pages = pages.collect();
                self.stats.dirty_pages.dedup();
            }
            self.stats.preclean_dirty.push(count);
            let before = self.marker.objects_rescanned;
            self.marker.rescan(&self.dirty, shift, false);
            self.stats.preclean_rescanned += (self.marker.objects_rescanned - before) as usize;
            self.drain_concurrently();
            let found = pace::Round {
                round,
                count,
                previous,
                took: started.elapsed(),
                last_change,
                paced: pacing.is_some(),
            };
            match pace::next_step(&found, &rule) {
                pace::Step::Done => break,
                pace::Step::Next => {}
                pace::Step::StartPacing => {
                    pacing = Some(pace.start());
                    pacing_since = Some(Instant::now());
                    self.stats.paced_from_round = Some(round);
                    last_change = Some(round);
                }
                pace::Step::Halve => {
                    if pace.tighten().is_some() {
                        self.stats.pace_halved_after.push(round);
                        last_change = Some(round);
                    }
                }
            }
            previous = count;
        }
        // A test that forces pacing holds it on long enough to be seen (`pace::TEST_HOLD`).
        let forced = self.gc.config.testing.pace_from_first_round;
        if let Some(since) = pacing_since.filter(|_| forced) {
            std::thread::sleep(pace::TEST_HOLD.saturating_sub(since.elapsed()));
        }
        self.stats.mark += t0.elapsed();
        pacing
    }

    /// 5. Remark (pause): end the pre-clean's pacing (the mutators are stopped now),
    ///    harvest without re-arm, rescan the dirty granules and the roots, trace to
    ///    completion.
    fn remark(&mut self, t: &dyn DirtyTracker, pacing: Option<pace::PaceGuard<'_>>) {
        let shift = t.granule_shift();
        self.pause(PauseKind::Remark, |c, mutators| {
            drop(pacing);
            let t0 = Instant::now();
            c.harvest(t, false);
            let t1 = Instant::now();
            c.stats.remark_dirty = c.dirty.count(c.granules(shift));
            let (marked, rescanned) = (c.marker.objects_marked, c.marker.objects_rescanned);
            c.marker.rescan(&c.dirty, shift, true);
            c.mark_roots(mutators);
            c.drain_in_pause();
            (c.stats.remark_harvest, c.stats.remark_trace) = (t1 - t0, t1.elapsed());
            c.stats.remark_rescanned = (c.marker.objects_rescanned - rescanned) as usize;
            c.stats.remark_traced = c.marker.objects_marked - marked;
        });
    }

    /// 6. Sweep, concurrently; with `armed`, the tracker armed for this cycle, disarming
    ///    it ahead of the sweep (`disarm_ahead` before each chunk's zeroing: that chunk
    ///    while no mutator runs, else the rest), and serving the faults queued for the
    ///    collector meanwhile (a mutator that wrote a page the steps have not reached, in
    ///    the `uffd-wp` collector layout). The steps count as disarm time, not sweep time.
    ///
    ///    Measured against a step per chunk whatever the mutators do, each against the
    ///    build before: on GCBench at 64 MiB that took 4–14% off the page trackers' wall
    ///    time, but on the LRU cache and binary trees at 2x (140 and 132 MiB) their
    ///    faults rose by 10% to 3.5 times (writes to old objects on pages the steps had
    ///    not reached, for the length of the sweep rather than of an unprotect), binary
    ///    trees ran slower under `mprotect` in two series (1.10× [1.05–1.15], 95% t over
    ///    3 rounds; 1.17×, rounds 1.11–1.18, over 4), and GCBench at 140 MiB fell back to full collections in 1–4 of
    ///    4 runs per page tracker, each after a cycle that ended with the heap full
    ///    (none before it, nor with this rule).
    fn sweep(&mut self, armed: Option<&dyn DirtyTracker>) {
        self.gc.collector.enter_phase(Phase::Sweep);
        self.allocated_at_sweep = self.gc.space.bytes_allocated();
        self.stats.objects_marked = self.marker.objects_marked;
        self.stats.bytes_marked = self.marker.bytes_marked;
        let space = self.gc.space;
        // The other bitmap: no reservation marks it since the flip.
        space.clear_marks(1 - self.epoch);
        let t0 = Instant::now();
        let collector = self.gc.collector;
        let mut disarm = std::time::Duration::ZERO;
        let mut failed = None;
        let service = armed.and_then(|t| t.fault_service());
        let ahead = |bytes: usize| {
            let Some(t) = armed.filter(|_| failed.is_none()) else {
                return;
            };
            let t1 = Instant::now();
            // A step at a time only while no mutator runs (each waits for room): a step
            // then gives them room one chunk sooner. With a mutator running, the rest at
            // once: its writes to pages still protected after remark would fault for
            // nothing, and more of them the longer the steps take.
            let bytes = if collector.safepoints.none_running() {
                bytes
            } else {
                usize::MAX
            };
            failed = t.disarm_ahead(bytes).err();
            if let Some(s) = &service {
                s.serve_pending();
            }
            disarm += t1.elapsed();
        };
        let (bytes, objects) = space.sweep(self.marker.marks, || collector.swept_more(), ahead);
        if let Some(e) = failed {
            self.degrade("disarm", &e);
        }
        self.stats.disarm = disarm;
        self.stats.sweep = t0.elapsed().saturating_sub(disarm);
        self.stats.bytes_freed = bytes;
        self.stats.objects_freed = objects;
    }

    /// 7. Disarm: recording stops, and what the sweep's steps left is made writable.
    fn disarm(&mut self, t: &dyn DirtyTracker) {
        self.gc.collector.enter_phase(Phase::Disarm);
        let t0 = Instant::now();
        if let Err(e) = t.disarm() {
            self.degrade("disarm", &e);
        }
        self.stats.disarm += t0.elapsed();
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
            collector.log(&self.stats.log_line(space.len()));
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
