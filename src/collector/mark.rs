//! Marking: the grey stack, tracing, the rescan of dirty granules, and parallel draining
//! in pauses.
//!
//! Mark bits are set with an atomic `fetch_or`, so any number of threads may trace into
//! one bitmap: the thread whose `fetch_or` set the bit owns the object and scans it. The
//! collector thread traces alone while mutators run (it serves `uffd-wp` faults between
//! increments); in a pause, once the grey stack shows there is enough work, the parked
//! helper threads join ([`Marker::drain_parallel`], `collector/marker_pool.rs`), because
//! the mutators' CPUs are idle then. They join a concurrent drain too when no mutator
//! is running (every one waits for room), for the same reason ([`Marker::drain`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::marker_pool::MarkerPool;
use crate::barrier::{DirtySet, DirtyTracker, FaultService};
use crate::bitmap::Bitmap;
use crate::heap::Space;
use crate::heap::object::{self, Header};
use crate::heap::size_class::MAX_SMALL;
use crate::sys::PAGE_SIZE;

/// Objects a pause traces alone before it calls helpers: below this, waking threads
/// costs more than it saves (a wake-up is 25–50 µs on a VM).
const PARALLEL_AFTER: u64 = 4096;
/// A thread shares grey objects only while it holds more than this many; it then moves
/// the older half of its stack (the entries nearest the roots, which in a depth-first
/// trace head the largest unexplored subgraphs) to the shared pool.
const SHARE_ABOVE: usize = 1;
/// Objects a concurrent drain traces between two looks at whether any mutator runs.
const IDLE_CHECK_EVERY: u32 = 1024;
/// Grey objects whose first cache line is fetched before the one being scanned: a popped
/// object waits this many scans before its own, which hides most of the miss on its
/// header (marking is bound by those misses: half of the marker's samples sat on the
/// header load before this).
const FETCH_AHEAD: usize = 32;

/// The tag of a grey-stack entry that is an object to scan again, not one newly marked:
/// remark's rescan of a dirty granule pushes the small marked objects overlapping it so
/// tagged (cells are 16-byte aligned, so the low bit is free), and whichever thread pops
/// the entry scans the whole object without counting it as marked again. So remark's
/// rescan is shared by the threads of the pause's parallel drain like any tracing,
/// instead of running on the collector thread alone before it: on the LRU cache (64 MiB
/// live, 100 MiB heap, card table) remarks of ~48,000 dirty cards took 11–19 ms alone and
/// 9–12 ms shared by two threads (then 6 ms with [`scan_entry`]'s test before marking).
/// Pre-cleaning, which has one thread, rescans in place: pushing whole objects made
/// GCBench 3–4% slower there (five alternating pairs).
const RESCAN: usize = 1;

/// The marking state of one cycle.
pub(crate) struct Marker<'h> {
    pub(crate) space: &'h Space,
    /// The faults to serve between increments of marking, if the collector serves them.
    service: Option<FaultService<'h>>,
    pub(crate) marks: &'h Bitmap,
    stack: Vec<usize>,
    pub(crate) objects_marked: u64,
    pub(crate) bytes_marked: u64,
    poll_interval: usize,
    since_poll: usize,
    /// The current rescan pushes small objects to be scanned by the drain.
    share_rescans: bool,
}

impl<'h> Marker<'h> {
    pub(crate) fn new(
        space: &'h Space,
        tracker: Option<&'h dyn DirtyTracker>,
        marks: &'h Bitmap,
        poll_interval: usize,
    ) -> Marker<'h> {
        Marker {
            space,
            service: tracker.and_then(|t| t.fault_service()),
            marks,
            stack: Vec::new(),
            objects_marked: 0,
            bytes_marked: 0,
            poll_interval,
            since_poll: 0,
            share_rescans: false,
        }
    }

    /// Marks `addr` grey (pushes it) unless it is already marked.
    #[inline]
    pub(crate) fn mark(&mut self, addr: usize) {
        if !self.marks.set(self.space.granule(addr)) {
            self.stack.push(addr);
        }
    }

    /// Marks every non-null root that is a live object of the space, and returns how
    /// many were not. Those are skipped: a mark bit, header or slot read outside the
    /// space's objects would be a read of memory that is not the heap's, or an index
    /// out of the bitmap. (`Mutator::push_root` and `set_root` refuse such objects, so a
    /// root goes stale only if the program broke the rooting rule: it kept an
    /// unreachable object in a variable across a cycle, then pushed it.)
    pub(crate) fn mark_roots(&mut self, roots: &[usize]) -> usize {
        let mut stale = 0;
        for &r in roots {
            if r == 0 {
                continue;
            }
            if self.space.check_obj(r).is_ok() {
                self.mark(r);
            } else {
                stale += 1;
            }
        }
        stale
    }

    /// Traces while mutators may run, until the grey stack is empty, serving faults
    /// every few objects. Returns the threads that marked: 1, or more when the helpers
    /// of `markers` finished it.
    ///
    /// Every [`IDLE_CHECK_EVERY`] objects it asks `idle` whether any mutator is running.
    /// When none is (each waits for room, sleeps or has left), their CPUs are idle as in
    /// a pause, and the helpers join as they do there: a mutator that found the heap full
    /// waits for this mark, so marking in parallel shortens its stall. Helpers read the
    /// heap as this thread does (atomic slot loads, atomic mark bits), so a mutator that
    /// comes back meanwhile is safe; only its `uffd-wp` faults, if this thread serves
    /// them, wait until the parallel drain ends.
    pub(crate) fn drain(&mut self, markers: &MarkerPool, idle: impl Fn() -> bool) -> usize {
        let mut ahead = Ahead::new();
        let mut since_idle_check = 0;
        while let Some(addr) = ahead.next(&mut self.stack) {
            self.trace_one(addr);
            self.since_poll += 1;
            if self.since_poll >= self.poll_interval {
                self.since_poll = 0;
                if let Some(s) = self.service {
                    s.serve_pending();
                }
            }
            since_idle_check += 1;
            if since_idle_check >= IDLE_CHECK_EVERY {
                since_idle_check = 0;
                if markers.helpers() > 0 && self.stack.len() > SHARE_ABOVE && idle() {
                    ahead.give_back(&mut self.stack);
                    return self.finish_in_parallel(markers);
                }
            }
        }
        1
    }

    #[inline]
    fn trace_one(&mut self, entry: usize) {
        if let Some(bytes) = scan_entry(self.space, self.marks, entry, &mut self.stack) {
            self.objects_marked += 1;
            self.bytes_marked += bytes;
        }
    }

    /// Traces to completion in a pause, with the parked helpers of `markers` once there
    /// is enough work to share. Returns how many threads marked.
    pub(crate) fn drain_parallel(&mut self, markers: &MarkerPool) -> usize {
        let mut traced = 0;
        let mut ahead = Ahead::new();
        while let Some(addr) = ahead.next(&mut self.stack) {
            self.trace_one(addr);
            traced += 1;
            if traced >= PARALLEL_AFTER && markers.helpers() > 0 && self.stack.len() > SHARE_ABOVE {
                ahead.give_back(&mut self.stack);
                return self.finish_in_parallel(markers);
            }
        }
        1
    }

    fn finish_in_parallel(&mut self, markers: &MarkerPool) -> usize {
        let helpers = markers.helpers();
        let pool = Pool {
            chunks: Mutex::new(Vec::new()),
            available: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            workers: 1 + helpers,
            objects: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        };
        // This thread starts with the whole stack; helpers take shares of it.
        let first = std::mem::take(&mut self.stack);
        let (objects, bytes) = markers.drain(self.space, self.marks, &pool, first, helpers);
        self.objects_marked += objects;
        self.bytes_marked += bytes;
        1 + helpers
    }

    /// Rescans the marked objects overlapping each dirty granule: their slots inside the
    /// granule are scanned here, or with `share`, a small object is pushed on the grey
    /// stack to be scanned whole by the (parallel) drain that follows ([`RESCAN`]; once,
    /// where consecutive granules overlap it). Returns the number of objects rescanned.
    pub(crate) fn rescan(&mut self, set: &DirtySet, shift: u32, share: bool) -> usize {
        self.share_rescans = share;
        let mut objects = 0;
        let mut last = 0;
        if set.all {
            for p in 0..self.space.high_water() {
                let lo = self.space.page_addr(p);
                objects += self.rescan_range(lo, lo + PAGE_SIZE, &mut last);
            }
        } else {
            for &g in &set.granules {
                let lo = self.space.base() + (g << shift);
                objects += self.rescan_range(lo, lo + (1 << shift), &mut last);
            }
        }
        objects
    }

    /// `[lo, hi)` lies within one page; `last` is the small object pushed last.
    fn rescan_range(&mut self, lo: usize, hi: usize, last: &mut usize) -> usize {
        let (space, marks, share) = (self.space, self.marks, self.share_rescans);
        let mut objects = 0;
        let stack = &mut self.stack;
        space.for_each_cell_in(lo, hi, |obj| {
            if !marks.get(space.granule(obj)) {
                return;
            }
            if !share || space.cell_bytes(obj) > MAX_SMALL {
                // The slots outside the granule were not written.
                scan(obj, lo, hi, |child| {
                    if marks.set_new(space.granule(child)) {
                        stack.push(child);
                    }
                });
                objects += 1;
            } else if obj != *last {
                stack.push(obj | RESCAN);
                *last = obj;
                objects += 1;
            }
        });
        objects
    }
}

/// Scans the object of grey-stack `entry` and pushes the children it marks. Returns the
/// object's bytes for an object newly marked (to count), `None` for a [`RESCAN`].
///
/// A newly marked object's children are mostly unmarked, so each is marked with one
/// `fetch_or`; a rescanned object's are nearly all marked already, so each is tested
/// first ([`Bitmap::set_new`]). Testing first everywhere gained nothing on the
/// stop-the-world GCBench (wall 1.04× [0.98–1.09], ten alternating pairs); in rescans it
/// halved the LRU cache's remarks (median 11.8 → 6.0 ms, 64 MiB live, 100 MiB heap).
#[inline]
fn scan_entry(space: &Space, marks: &Bitmap, entry: usize, stack: &mut Vec<usize>) -> Option<u64> {
    let addr = entry & !RESCAN;
    if entry & RESCAN != 0 {
        scan(addr, 0, usize::MAX, |child| {
            if marks.set_new(space.granule(child)) {
                stack.push(child);
            }
        });
        return None;
    }
    scan(addr, 0, usize::MAX, |child| {
        if !marks.set(space.granule(child)) {
            stack.push(child);
        }
    });
    Some(space.cell_bytes(addr) as u64)
}

/// Calls `child` with every non-null reference in the slots of the object at `addr` that
/// lie in `[lo, hi)`.
#[inline]
fn scan(addr: usize, lo: usize, hi: usize, mut child: impl FnMut(usize)) {
    // SAFETY: `addr` is a marked cell or large-object start of the space (marked only
    // when reached from a validated reference, or reserved black), inside the mapping.
    let Some(Header { nrefs, .. }) = (unsafe { object::load_header(addr) }) else {
        return; // reserved, not yet allocated: no slots
    };
    let first = lo
        .saturating_sub(addr + object::HEADER_BYTES)
        .div_ceil(object::SLOT_BYTES);
    let last = (hi.saturating_sub(addr + object::HEADER_BYTES) / object::SLOT_BYTES).min(nrefs);
    for i in first.min(nrefs)..last {
        // SAFETY: `i < nrefs` of an object whose header was published (`Acquire`).
        let v = unsafe { object::slot(addr, i) }.load(Ordering::Acquire);
        if v != 0 {
            child(v);
        }
    }
}

/// The grey objects popped from a stack and being fetched into the cache, oldest first.
///
/// A depth-first trace pops the child it pushed last, whose header is not in the cache
/// yet: scanning it at once stalls on the miss. Popping [`FETCH_AHEAD`] objects early,
/// with a prefetch of each, lets the misses overlap with the scans in between. The
/// order stays nearly depth-first (each scan's children are pushed on the stack, and
/// the next pop takes the newest of them).
struct Ahead {
    ring: [usize; FETCH_AHEAD],
    /// Index of the oldest entry.
    first: usize,
    len: usize,
}

impl Ahead {
    fn new() -> Ahead {
        Ahead {
            ring: [0; FETCH_AHEAD],
            first: 0,
            len: 0,
        }
    }

    /// The next object to scan: the one fetched longest ago, after topping the ring up
    /// from `stack`. `None` when both are empty.
    #[inline]
    fn next(&mut self, stack: &mut Vec<usize>) -> Option<usize> {
        while self.len < FETCH_AHEAD {
            let Some(addr) = stack.pop() else { break };
            prefetch(addr);
            self.ring[(self.first + self.len) % FETCH_AHEAD] = addr;
            self.len += 1;
        }
        if self.len == 0 {
            return None;
        }
        let addr = self.ring[self.first];
        self.first = (self.first + 1) % FETCH_AHEAD;
        self.len -= 1;
        Some(addr)
    }

    /// Puts the objects not yet scanned back on `stack` (before it is handed on).
    fn give_back(&mut self, stack: &mut Vec<usize>) {
        while self.len > 0 {
            self.len -= 1;
            stack.push(self.ring[(self.first + self.len) % FETCH_AHEAD]);
        }
    }
}

/// Asks the CPU to bring the cache line at `addr` in: a hint, which never faults.
#[inline(always)]
fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is part of SSE, which every x86-64 CPU has, and it reads
    // nothing architecturally: an address that is not mapped is ignored, never a fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// Grey objects shared between the threads of a parallel drain. Threads out of work
/// spin rather than sleep: the pause is short, the mutators' CPUs are idle, and a
/// sleep and wake-up would cost more than the pause itself on a VM.
pub(crate) struct Pool {
    chunks: Mutex<Vec<Vec<usize>>>,
    /// `chunks.len()`, readable without the lock.
    available: AtomicUsize,
    /// Threads that found no work: a busy thread shares while this is non-zero, and
    /// marking is complete when every thread is idle and no chunk is left.
    idle: AtomicUsize,
    workers: usize,
    /// What the helpers traced, added as each finishes.
    objects: AtomicU64,
    bytes: AtomicU64,
}

impl Pool {
    /// Adds a helper's (objects, bytes) traced.
    pub(crate) fn add_totals(&self, (objects, bytes): (u64, u64)) {
        self.objects.fetch_add(objects, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A thread's `work` panicked (it can only while tracing, counted busy): count it
    /// idle for good, so that the others still see the end of the marking (every thread
    /// idle, the pool empty) instead of waiting for it.
    pub(crate) fn abandon(&self) {
        self.idle.fetch_add(1, Ordering::AcqRel);
    }

    /// The helpers' (objects, bytes) traced.
    pub(crate) fn totals(&self) -> (u64, u64) {
        (
            self.objects.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    fn put(&self, chunk: Vec<usize>) {
        let mut c = self.chunks.lock();
        c.push(chunk);
        self.available.store(c.len(), Ordering::Release);
    }

    fn take(&self) -> Option<Vec<usize>> {
        let mut c = self.chunks.lock();
        let chunk = c.pop();
        self.available.store(c.len(), Ordering::Release);
        chunk
    }
}

/// Objects a thread traces between two shares.
const SHARE_EVERY: u32 = 64;

/// One thread of a parallel drain: trace from `stack`, share while others are idle, take
/// from the pool when out of work. Returns (objects, bytes) traced.
///
/// A thread leaves only when its own stack is empty, every thread is idle and the pool
/// is empty, so no grey object is left behind. (A thread may see that state for an
/// instant while another has just taken the last chunk; it then leaves early, and the
/// other finishes alone: less parallel, never incomplete.)
pub(crate) fn work(
    space: &Space,
    marks: &Bitmap,
    pool: &Pool,
    mut stack: Vec<usize>,
) -> (u64, u64) {
    let (mut objects, mut bytes) = (0u64, 0u64);
    let mut since_share = 0u32;
    let mut ahead = Ahead::new();
    loop {
        while let Some(entry) = ahead.next(&mut stack) {
            if let Some(b) = scan_entry(space, marks, entry, &mut stack) {
                objects += 1;
                bytes += b;
            }
            since_share += 1;
            if since_share >= SHARE_EVERY
                && stack.len() > SHARE_ABOVE
                && pool.idle.load(Ordering::Relaxed) > 0
                && pool.available.load(Ordering::Relaxed) == 0
            {
                since_share = 0;
                pool.put(stack.drain(..stack.len() / 2).collect());
            }
        }
        pool.idle.fetch_add(1, Ordering::AcqRel);
        let mut spins = 0u32;
        loop {
            if pool.available.load(Ordering::Acquire) > 0 {
                if let Some(c) = pool.take() {
                    pool.idle.fetch_sub(1, Ordering::AcqRel);
                    stack = c;
                    break;
                }
            } else if pool.idle.load(Ordering::Acquire) == pool.workers {
                return (objects, bytes);
            }
            spins += 1;
            if spins % 64 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Ahead, FETCH_AHEAD, Marker, RESCAN};
    use crate::barrier::DirtySet;
    use crate::heap::object::{self, Header};
    use crate::heap::{AllocBuffer, Space};

    /// Remark's shared rescan: a marked object in a dirty granule goes on the stack
    /// tagged, its unmarked child is marked when the drain scans it, and only the child
    /// counts as marked (the pacer reads the bytes marked).
    #[test]
    fn a_shared_rescan_marks_the_children_and_counts_only_them() {
        let space = Space::new(64 << 10, false).unwrap();
        let mut buf = AllocBuffer::EMPTY;
        assert!(space.refill(&mut buf, 1, None)); // 32-byte cells
        let (parent, child) = (buf.cursor, buf.cursor + 32);
        for (addr, nrefs) in [(parent, 1), (child, 0)] {
            let h = Header { nrefs, payload: 0 };
            // SAFETY: reserved cells of the space, written by this thread only.
            unsafe {
                object::header_word(addr).store(h.encode(), std::sync::atomic::Ordering::Release)
            };
        }
        // SAFETY: as above; slot 0 of a one-slot object.
        unsafe { object::slot(parent, 0).store(child, std::sync::atomic::Ordering::Release) };
        let marks = space.marks(1);
        marks.set(space.granule(parent)); // the parent was marked before the store
        let mut marker = Marker::new(&space, None, marks, 64);
        // Parent and child share the first 512 bytes: one dirty card.
        let set = DirtySet {
            granules: vec![(parent - space.base()) >> 9],
            all: false,
        };
        assert_eq!(marker.rescan(&set, 9, true), 1, "the marked parent only");
        assert_eq!(
            marker.stack,
            vec![parent | RESCAN],
            "the unmarked child is skipped"
        );
        let pool = super::super::marker_pool::MarkerPool::new(0, false).unwrap();
        marker.drain_parallel(&pool);
        assert!(
            marks.get(space.granule(child)),
            "the drain marked the child"
        );
        assert_eq!((marker.objects_marked, marker.bytes_marked), (1, 32));
        // In place (pre-cleaning): the same child found, nothing on the stack for the parent.
        // (Bitmap 0 holds the reservation's marks, the card's 16 cells: the child's is
        // cleared; the scan of the parent marks it before the walk reaches it.)
        let mut marker = Marker::new(&space, None, space.marks(0), 64);
        space.marks(0).clear(space.granule(child));
        assert_eq!(marker.rescan(&set, 9, false), 16);
        assert_eq!(marker.stack, vec![child]);
    }

    #[test]
    fn fetching_ahead_yields_every_grey_object_once_newest_first_in_batches() {
        let mut stack: Vec<usize> = (1..=100).collect();
        let mut ahead = Ahead::new();
        let mut seen = Vec::new();
        while let Some(a) = ahead.next(&mut stack) {
            seen.push(a);
            // A scan pushes children; the next pops take the newest of them.
            if a <= 100 && a % 10 == 0 {
                stack.push(1000 + a);
            }
        }
        // The first batch is the stack's top, in the order it was popped.
        let first: Vec<usize> = (100 - FETCH_AHEAD + 1..=100).rev().collect();
        assert_eq!(&seen[..FETCH_AHEAD], &first[..]);
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        let mut expected: Vec<usize> = (1..=100).collect();
        expected.extend((1..=10).map(|k| 1000 + 10 * k));
        assert_eq!(sorted, expected, "each object exactly once");
    }

    #[test]
    fn objects_fetched_but_not_scanned_go_back_on_the_stack() {
        let mut stack: Vec<usize> = (1..=100).collect();
        let mut ahead = Ahead::new();
        let scanned = ahead.next(&mut stack).unwrap();
        ahead.give_back(&mut stack);
        assert_eq!(stack.len(), 99);
        assert!(!stack.contains(&scanned));
        // Given back in their stack order: the next pops are as before the fetch.
        assert_eq!(
            &stack[100 - FETCH_AHEAD..],
            &(100 - FETCH_AHEAD + 1..100).collect::<Vec<_>>()[..]
        );
        assert_eq!(ahead.next(&mut Vec::new()), None);
    }
}
