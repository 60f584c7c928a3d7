//! Marking: the grey stack, the drains, the rescan of dirty granules, and the hand-over
//! to the marker threads for a parallel drain (one object is traced in `trace.rs`).
//!
//! Mark bits are set with an atomic `fetch_or`, so any number of threads may trace into
//! one bitmap: the thread whose `fetch_or` set the bit owns the object and scans it. The
//! collector thread traces alone while mutators run (it serves `uffd-wp` faults between
//! increments); in a pause, once the grey stack shows there is enough work, the parked
//! helper threads join ([`Marker::drain_parallel`], `collector/marker_pool.rs`), because
//! the mutators' CPUs are idle then. They join a concurrent drain too when no mutator
//! is running (every one waits for room), for the same reason ([`Marker::drain`]).

use super::marker_pool::{MarkerPool, SHARE_ABOVE};
use super::trace::{Ahead, Traced, granule_entry, rescan_in_place, scan_entry};
use crate::barrier::{DirtySet, DirtyTracker, FaultService};
use crate::bitmap::Bitmap;
use crate::heap::Space;
use crate::sys::PAGE_SHIFT;

/// Objects a pause traces alone before it calls helpers: below this, waking threads
/// costs more than it saves (a wake-up is 25–50 µs on a VM).
const PARALLEL_AFTER: u64 = 4096;
/// Objects a concurrent drain traces between two looks at whether any mutator runs.
const IDLE_CHECK_EVERY: u32 = 1024;
/// The marking state of one cycle.
pub(crate) struct Marker<'h> {
    pub(crate) space: &'h Space,
    /// The faults to serve between increments of marking, if the collector serves them.
    service: Option<FaultService<'h>>,
    pub(crate) marks: &'h Bitmap,
    stack: Vec<usize>,
    pub(crate) objects_marked: u64,
    pub(crate) bytes_marked: u64,
    /// Objects rescanned in dirty granules (each once per granule it overlaps).
    pub(crate) objects_rescanned: u64,
    poll_interval: usize,
    since_poll: usize,
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
            objects_rescanned: 0,
            poll_interval,
            since_poll: 0,
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

    /// Traces one grey-stack entry; returns its work ([`Traced::work`]).
    #[inline]
    fn trace_one(&mut self, entry: usize) -> u64 {
        let traced = scan_entry(self.space, self.marks, entry, &mut self.stack);
        match traced {
            Traced::Marked(bytes) => {
                self.objects_marked += 1;
                self.bytes_marked += bytes;
            }
            Traced::Rescanned(objects) => self.objects_rescanned += objects,
        }
        traced.work()
    }

    /// Traces to completion in a pause, with the parked helpers of `markers` once there
    /// is enough work to share. Returns how many threads marked.
    pub(crate) fn drain_parallel(&mut self, markers: &MarkerPool) -> usize {
        let mut traced = 0;
        let mut ahead = Ahead::new();
        while let Some(addr) = ahead.next(&mut self.stack) {
            traced += self.trace_one(addr);
            if traced >= PARALLEL_AFTER && markers.helpers() > 0 && self.stack.len() > SHARE_ABOVE {
                ahead.give_back(&mut self.stack);
                return self.finish_in_parallel(markers);
            }
        }
        1
    }

    fn finish_in_parallel(&mut self, markers: &MarkerPool) -> usize {
        let helpers = markers.helpers();
        // This thread starts with the whole stack; helpers take shares of it.
        let first = std::mem::take(&mut self.stack);
        let (totals, threads) = markers.drain(self.space, self.marks, first, helpers);
        self.objects_marked += totals.objects;
        self.bytes_marked += totals.bytes;
        self.objects_rescanned += totals.rescanned;
        threads
    }

    /// Rescans the marked objects overlapping each dirty granule of `set` (granules of
    /// `2^shift` bytes): only their slots inside the granule, since the slots outside
    /// were not written. Here, one granule after another; or with `share`, each granule
    /// is pushed on the grey stack ([`super::trace::GRANULE`]) for the (parallel) drain
    /// that follows to rescan. [`Marker::objects_rescanned`] counts the objects either
    /// way.
    pub(crate) fn rescan(&mut self, set: &DirtySet, shift: u32, share: bool) {
        if set.all {
            for p in 0..self.space.high_water() {
                self.rescan_granule(self.space.page_addr(p), PAGE_SHIFT, share);
            }
        } else {
            for &g in &set.granules {
                self.rescan_granule(self.space.base() + (g << shift), shift, share);
            }
        }
    }

    #[inline]
    fn rescan_granule(&mut self, lo: usize, shift: u32, share: bool) {
        if share {
            self.stack.push(granule_entry(lo, shift));
        } else {
            let hi = lo + (1 << shift);
            self.objects_rescanned +=
                rescan_in_place(self.space, self.marks, lo, hi, &mut self.stack);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::trace::{Ahead, FETCH_AHEAD, granule_entry};
    use super::Marker;
    use crate::barrier::DirtySet;
    use crate::heap::object::{self, Header};
    use crate::heap::{AllocBuffer, Space};

    /// Remark's shared rescan: the dirty granule goes on the stack tagged, the drain
    /// rescans its marked objects and marks their unmarked children, and only the child
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
        marker.rescan(&set, 9, true);
        let card = space.base() + ((parent - space.base()) >> 9 << 9);
        assert_eq!(
            marker.stack,
            vec![granule_entry(card, 9)],
            "one entry per granule"
        );
        assert_eq!(
            marker.objects_rescanned, 0,
            "nothing rescanned before the drain"
        );
        let pool = super::super::marker_pool::MarkerPool::new(0, false).unwrap();
        marker.drain_parallel(&pool);
        assert!(
            marks.get(space.granule(child)),
            "the drain marked the child"
        );
        assert_eq!((marker.objects_marked, marker.bytes_marked), (1, 32));
        // The parent, then the child (marked by then): the card's marked objects.
        assert_eq!(marker.objects_rescanned, 2);
        // In place (pre-cleaning): the same child found, nothing on the stack for the parent.
        // (Bitmap 0 holds the reservation's marks, the card's 16 cells: the child's is
        // cleared; the scan of the parent marks it before the walk reaches it.)
        let mut marker = Marker::new(&space, None, space.marks(0), 64);
        space.marks(0).clear(space.granule(child));
        marker.rescan(&set, 9, false);
        assert_eq!(marker.objects_rescanned, 16);
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
