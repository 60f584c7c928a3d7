//! The collector: Boehm–Demers–Shenker "mostly parallel" mark-sweep with an
//! incremental-update write barrier, on its own thread.
//!
//! # A cycle
//! 1. **Arm** the tracker (concurrent, mutators running).
//! 2. **Initial mark** (pause): flip the allocation epoch (from now on allocations are
//!    black), mark the roots.
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

pub(crate) mod safepoint;
mod stats;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::barrier::{DirtySet, DirtyTracker};
use crate::error::Result;
use crate::heap::HeapInner;
use crate::heap::bitmap::Bitmap;
use crate::heap::object::{self, Header};
use crate::heap::pages::PageKind;
use crate::heap::size_class::CLASS_SIZES;
use crate::sys::PAGE_SIZE;
use safepoint::Safepoints;
pub use stats::{CycleStats, Pause, PauseKind, Stats};

#[derive(Debug, Default)]
struct Control {
    requested: u64,
    started: u64,
    completed: u64,
    shutdown: bool,
    failed: Option<String>,
}

/// The collector's control block, shared with its thread.
#[derive(Debug)]
struct Shared {
    control: Mutex<Control>,
    request_cv: Condvar,
    done_cv: Condvar,
}

/// The collector half of a heap.
pub(crate) struct Collector {
    shared: Arc<Shared>,
    pub(crate) safepoints: Safepoints,
    stats: Mutex<Stats>,
    created: Instant,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Collector {
    pub(crate) fn new() -> Result<Collector> {
        Ok(Collector {
            shared: Arc::new(Shared {
                control: Mutex::new(Control::default()),
                request_cv: Condvar::new(),
                done_cv: Condvar::new(),
            }),
            safepoints: Safepoints::new()?,
            stats: Mutex::new(Stats::default()),
            created: Instant::now(),
            thread: Mutex::new(None),
        })
    }

    /// Starts the collector thread of `heap`.
    pub(crate) fn start(heap: &Arc<HeapInner>) -> Result<()> {
        let weak: Weak<HeapInner> = Arc::downgrade(heap);
        let shared = heap.collector.shared.clone();
        let handle = std::thread::Builder::new()
            .name("barrierlab-collector".into())
            .spawn(move || collector_loop(shared, weak))
            .map_err(|e| crate::Error::io("spawn the collector thread", e))?;
        *heap.collector.thread.lock() = Some(handle);
        Ok(())
    }

    /// Asks for a cycle if none is running or pending; does not wait.
    pub(crate) fn request(&self) {
        let mut c = self.shared.control.lock();
        if c.requested <= c.completed && c.started <= c.completed {
            c.requested = c.completed + 1;
            self.shared.request_cv.notify_all();
        }
    }

    /// Runs a cycle that starts after this call and waits for it. The caller must not be
    /// a running mutator (see `mutator::while_blocked`).
    pub(crate) fn collect_and_wait(&self) {
        let mut c = self.shared.control.lock();
        let target = if c.started > c.completed {
            c.started + 1
        } else {
            c.completed + 1
        };
        c.requested = c.requested.max(target);
        self.shared.request_cv.notify_all();
        while c.completed < target {
            if let Some(msg) = &c.failed {
                panic!("the collector thread failed: {msg}");
            }
            self.shared.done_cv.wait(&mut c);
        }
    }

    /// Time since the heap was created: the origin of [`Pause::start`].
    pub(crate) fn uptime(&self) -> Duration {
        self.created.elapsed()
    }

    pub(crate) fn stats(&self, heap: &HeapInner) -> Stats {
        let mut s = self.stats.lock().clone();
        s.barrier = Some(heap.config.barrier);
        if let Some(t) = heap.tracker.as_deref() {
            s.tracker = t.stats();
        }
        s.bytes_allocated = heap.bytes_allocated.load(Ordering::Relaxed);
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

fn collector_loop(shared: Arc<Shared>, heap: Weak<HeapInner>) {
    loop {
        let n = {
            let mut c = shared.control.lock();
            while c.requested <= c.completed && !c.shutdown {
                shared.request_cv.wait(&mut c);
            }
            if c.shutdown {
                return;
            }
            c.started = c.completed + 1;
            c.started
        };
        let Some(h) = heap.upgrade() else { return };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_cycle(&h, n)));
        drop(h);
        let mut c = shared.control.lock();
        c.completed = n;
        if let Err(p) = outcome {
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
        shared.done_cv.notify_all();
    }
}

/// The marking state of one cycle.
struct Marker<'h> {
    h: &'h HeapInner,
    tracker: Option<&'h dyn DirtyTracker>,
    marks: &'h Bitmap,
    stack: Vec<usize>,
    objects_marked: u64,
    bytes_marked: u64,
    since_poll: usize,
}

impl<'h> Marker<'h> {
    /// Marks `addr` grey (pushes it) unless it is already marked.
    #[inline]
    fn mark(&mut self, addr: usize) {
        if !self.marks.set(self.h.granule(addr)) {
            self.stack.push(addr);
        }
    }

    /// Marks the children of the object at `addr` whose slots lie in `[lo, hi)`.
    fn scan(&mut self, addr: usize, lo: usize, hi: usize) {
        // SAFETY: `addr` is a marked cell or large-object start of this heap (marked
        // only when reached from a validated reference, or allocated black).
        let Some(Header { nrefs, .. }) = (unsafe { object::load_header(addr) }) else {
            return; // claimed, not yet initialised: its slots are null
        };
        let first = lo
            .saturating_sub(addr + object::HEADER_BYTES)
            .div_ceil(object::SLOT_BYTES);
        let last = (hi.saturating_sub(addr + object::HEADER_BYTES) / object::SLOT_BYTES).min(nrefs);
        for i in first.min(nrefs)..last {
            // SAFETY: `i < nrefs` of a live object.
            let v = unsafe { object::slot(addr, i) }.load(Ordering::Acquire);
            if v != 0 {
                self.mark(v);
            }
        }
    }

    /// Traces until the mark stack is empty, serving faults every few objects.
    fn drain(&mut self) {
        let interval = self.h.config.mark_poll_interval;
        while let Some(addr) = self.stack.pop() {
            self.objects_marked += 1;
            self.bytes_marked += self.h.cell_bytes(addr) as u64;
            self.scan(addr, 0, usize::MAX);
            self.since_poll += 1;
            if self.since_poll >= interval {
                self.since_poll = 0;
                self.serve();
            }
        }
    }

    fn serve(&self) {
        if let Some(t) = self.tracker {
            t.serve_pending();
        }
    }

    /// Rescans the marked objects overlapping each dirty granule (only their slots inside
    /// the granule). Returns the number of objects rescanned.
    fn rescan(&mut self, set: &DirtySet, shift: u32) -> usize {
        let mut objects = 0;
        if set.all {
            for p in 0..self.h.pages {
                objects += self.rescan_range(self.h.page_addr(p), self.h.page_addr(p) + PAGE_SIZE);
            }
        } else {
            for &g in &set.granules {
                let lo = self.h.base + (g << shift);
                objects += self.rescan_range(lo, lo + (1 << shift));
            }
        }
        objects
    }

    /// `[lo, hi)` lies within one page.
    fn rescan_range(&mut self, lo: usize, hi: usize) -> usize {
        let h = self.h;
        let p = h.page_of(lo);
        let page = h.page_addr(p);
        let mut objects = 0;
        let mut visit = |m: &mut Self, obj: usize| {
            if m.marks.get(h.granule(obj)) {
                m.scan(obj, lo, hi);
                objects += 1;
            }
        };
        match h.page_table.get(p) {
            PageKind::Small { class } => {
                let cs = CLASS_SIZES[class];
                for i in (lo - page) / cs..=(hi - 1 - page) / cs {
                    if (i + 1) * cs <= PAGE_SIZE {
                        visit(self, page + i * cs);
                    }
                }
            }
            PageKind::LargeHead { .. } => visit(self, page),
            PageKind::LargeTail { back } => visit(self, page - back * PAGE_SIZE),
            PageKind::Free => {}
        }
        objects
    }

    fn mark_roots(&mut self, mutators: &[Arc<safepoint::MutatorShared>]) {
        for m in mutators {
            for &r in m.roots.lock().iter() {
                if r != 0 {
                    self.mark(r);
                }
            }
        }
    }
}

/// Applies the planted bug of [`crate::HeapConfig::drop_every_nth_dirty`].
fn plant_bug(h: &HeapInner, set: &mut DirtySet) {
    if let Some(n) = h.config.drop_every_nth_dirty {
        let mut i = 0;
        set.granules.retain(|_| {
            i += 1;
            i % n != 0
        });
    }
}

fn run_cycle(h: &HeapInner, n: u64) {
    let t0 = Instant::now();
    let epoch = (n % 2) as usize;
    let tracker = h.tracker.as_deref();
    let mut cs = CycleStats {
        cycle: n,
        ..CycleStats::default()
    };
    let mut marker = Marker {
        h,
        tracker,
        marks: &h.mark_bits[epoch],
        stack: Vec::new(),
        objects_marked: 0,
        bytes_marked: 0,
        since_poll: 0,
    };
    let sp = &h.collector.safepoints;
    let armed = match tracker {
        Some(t) => {
            let t1 = Instant::now();
            let ok = t.arm().is_ok();
            cs.arm = t1.elapsed();
            ok
        }
        None => false,
    };
    let mut dirty = DirtySet::default();
    let verifier_failures;

    if !armed {
        // Stop-the-world mark: `None`, or a tracker that could not arm (degraded).
        cs.degraded = tracker.is_some();
        let (mutators, ttsp) = sp.stop_world(tracker);
        let p0 = Instant::now() - ttsp;
        flip_allocation_epoch(h, epoch);
        marker.mark_roots(&mutators);
        marker.drain();
        verifier_failures = verify(h, &marker, &mutators);
        sp.resume_world();
        record_pause(h, PauseKind::StopTheWorld, n, p0, ttsp);
    } else {
        let t = tracker.expect("armed implies a tracker");
        let shift = t.granule_shift();
        // Initial mark.
        let (mutators, ttsp) = sp.stop_world(tracker);
        let p0 = Instant::now() - ttsp;
        flip_allocation_epoch(h, epoch);
        marker.mark_roots(&mutators);
        sp.resume_world();
        record_pause(h, PauseKind::InitialMark, n, p0, ttsp);
        drop(mutators);
        // Concurrent mark.
        let tm = Instant::now();
        marker.drain();
        // Pre-clean.
        for _ in 0..h.config.max_preclean_rounds {
            let th = Instant::now();
            if t.harvest(&mut dirty, true).is_err() {
                dirty.all = true;
            }
            cs.harvest += th.elapsed();
            plant_bug(h, &mut dirty);
            let count = dirty.count(h.pages << (12 - shift));
            if h.config.record_dirty_pages && cs.preclean_dirty.is_empty() {
                cs.dirty_pages = dirty.granules.iter().map(|g| g >> (12 - shift)).collect();
                cs.dirty_pages.dedup();
            }
            cs.preclean_dirty.push(count);
            cs.preclean_rescanned += marker.rescan(&dirty, shift);
            marker.drain();
            if count <= h.config.preclean_threshold {
                break;
            }
        }
        cs.mark = tm.elapsed();
        // Remark.
        let (mutators, ttsp) = sp.stop_world(tracker);
        let p0 = Instant::now() - ttsp;
        let th = Instant::now();
        if t.harvest(&mut dirty, false).is_err() {
            dirty.all = true;
        }
        cs.harvest += th.elapsed();
        plant_bug(h, &mut dirty);
        cs.degraded |= dirty.all;
        cs.remark_dirty = dirty.count(h.pages << (12 - shift));
        cs.remark_rescanned = marker.rescan(&dirty, shift);
        marker.mark_roots(&mutators);
        let before = marker.objects_marked;
        marker.drain();
        cs.remark_traced = marker.objects_marked - before;
        verifier_failures = verify(h, &marker, &mutators);
        sp.resume_world();
        record_pause(h, PauseKind::Remark, n, p0, ttsp);
        drop(mutators);
        // Disarm, lazily: mutators are running again.
        let td = Instant::now();
        if t.disarm().is_err() {
            cs.degraded = true;
        }
        cs.disarm = td.elapsed();
    }
    cs.objects_marked = marker.objects_marked;
    cs.bytes_marked = marker.bytes_marked;
    // The other mark bitmap: no allocation sets it since the flip.
    h.mark_bits[1 - epoch].clear_all();
    let ts = Instant::now();
    let (freed_bytes, freed_objects) = sweep(h, marker.marks);
    cs.sweep = ts.elapsed();
    cs.bytes_freed = freed_bytes;
    cs.objects_freed = freed_objects;
    cs.total = t0.elapsed();
    // Live now: what was marked, plus what was allocated (black) since the initial mark.
    let during = h.bytes_allocated.load(Ordering::Relaxed)
        - h.allocated_at_cycle_start.load(Ordering::Relaxed);
    h.live_estimate
        .store(marker.bytes_marked + during, Ordering::Relaxed);
    h.allocated_at_cycle_start
        .store(h.bytes_allocated.load(Ordering::Relaxed), Ordering::Relaxed);
    let mut stats = h.collector.stats.lock();
    stats.cycles = n;
    stats.verifier_failures += verifier_failures.len() as u64;
    for msg in verifier_failures.into_iter().take(8) {
        if stats.verifier_messages.len() < 32 {
            stats.verifier_messages.push(msg);
        }
    }
    stats.cycle_log.push(cs);
}

/// In the pause that starts marking: from now on allocations are black in this cycle's
/// mark bitmap, and the trigger counts allocation from here.
fn flip_allocation_epoch(h: &HeapInner, epoch: usize) {
    h.alloc_epoch.store(epoch, Ordering::Relaxed);
    h.allocated_at_cycle_start
        .store(h.bytes_allocated.load(Ordering::Relaxed), Ordering::Relaxed);
}

fn record_pause(h: &HeapInner, kind: PauseKind, cycle: u64, started: Instant, ttsp: Duration) {
    let duration = started.elapsed();
    h.collector.stats.lock().pauses.push(Pause {
        kind,
        cycle,
        start: started.saturating_duration_since(h.collector.created),
        duration,
        time_to_safepoint: ttsp,
    });
}

/// Frees every allocated, unmarked object. Returns (bytes, objects) freed.
fn sweep(h: &HeapInner, marks: &Bitmap) -> (u64, u64) {
    h.reset_avail_lists();
    let mut bytes = 0u64;
    let live_before = h.alloc_bits.count() as u64;
    let mut p = 0;
    while p < h.pages {
        match h.page_table.get(p) {
            PageKind::Small { class } => {
                bytes += h.sweep_small_page(p, class, marks) as u64;
                p += 1;
            }
            PageKind::LargeHead { pages } => {
                let g = h.granule(h.page_addr(p));
                if h.alloc_bits.get(g) && !marks.get(g) {
                    h.free_large(p, pages);
                    bytes += (pages * PAGE_SIZE) as u64;
                }
                p += pages.max(1);
            }
            _ => p += 1,
        }
    }
    let live_after = h.alloc_bits.count() as u64;
    (bytes, live_before.saturating_sub(live_after))
}

/// The verifier: with every mutator stopped at the end of remark, re-checks the
/// tri-colour invariant over the whole heap: every root is marked, and no marked,
/// initialised object has an unmarked child. Returns one message per violation.
fn verify(
    h: &HeapInner,
    marker: &Marker<'_>,
    mutators: &[Arc<safepoint::MutatorShared>],
) -> Vec<String> {
    let mut failures = Vec::new();
    if !h.config.verify {
        return failures;
    }
    let marks = marker.marks;
    let marked = |a: usize| marks.get(h.granule(a));
    for m in mutators {
        for &r in m.roots.lock().iter() {
            if r != 0 && !marked(r) {
                failures.push(format!("root {r:#x} is not marked at remark"));
            }
        }
    }
    let mut check = |obj: usize| {
        if !h.alloc_bits.get(h.granule(obj)) || !marked(obj) {
            return;
        }
        // SAFETY: an allocated cell of this heap.
        let Some(hdr) = (unsafe { object::load_header(obj) }) else {
            return;
        };
        for i in 0..hdr.nrefs {
            // SAFETY: `i < nrefs` of an allocated object.
            let v = unsafe { object::slot(obj, i) }.load(Ordering::Acquire);
            if v != 0 && !marked(v) {
                failures.push(format!(
                    "marked object {obj:#x} slot {i} points to unmarked {v:#x} at remark"
                ));
            }
        }
    };
    let mut p = 0;
    while p < h.pages {
        match h.page_table.get(p) {
            PageKind::Small { class } => {
                let cs = CLASS_SIZES[class];
                for i in 0..PAGE_SIZE / cs {
                    check(h.page_addr(p) + i * cs);
                }
                p += 1;
            }
            PageKind::LargeHead { pages } => {
                check(h.page_addr(p));
                p += pages.max(1);
            }
            _ => p += 1,
        }
    }
    failures
}
