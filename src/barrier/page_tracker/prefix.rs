//! The in-use prefix: the part of the heap a page tracker protects, following the
//! heap's high-water mark rather than its reservation.
//!
//! The heap reports the prefix it has used so far ([`DirtyTracker::in_use`]), which never
//! shrinks. A tracker protects only that prefix at arm, so that a cycle costs what the
//! pages in use cost, not the reservation (a 64 GiB heap with a few MiB in use). Pages
//! that come into use during a cycle were never protected, so they may have been written
//! unseen: IF the heap grew since the prefix was last protected THEN the next harvest
//! reports every page it grew by ([`InUsePrefix::take_grown`]) and protects them.
//!
//! Shared, operation for operation, by the record of `uffd-wp`, `uffd-wp-sigbus` and
//! `mprotect` and by `uffd-wp-async`, whose record is the page table itself: arm protects
//! [`InUsePrefix::protect_used`], a harvest adds [`InUsePrefix::take_grown`], and disarm
//! unprotects the protected prefix a step at a time, ahead of the sweep
//! ([`InUsePrefix::take_unprotect`]); the record's hand-out changes the runs of
//! [`InUsePrefix::hand_out_runs`] (async write-protect hands nothing out).
//!
//! [`DirtyTracker::in_use`]: crate::barrier::DirtyTracker::in_use

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sys::{PAGE_SHIFT, PAGE_SIZE};

/// The used and the protected prefix of a heap of `len` bytes.
#[derive(Debug)]
pub(crate) struct InUsePrefix {
    len: usize,
    /// The prefix, in bytes, that the heap says it has used; the whole heap until it says.
    in_use: AtomicUsize,
    /// The prefix protected: arm protects the used prefix, and every harvest extends it
    /// to the latest used one. 0 when nothing is protected (before the first arm, or
    /// after an unprotect that took it).
    protected: AtomicUsize,
    /// How much of the protected prefix, from its start, the disarm's steps have taken
    /// to make writable; 0 from arm on.
    unprotected: AtomicUsize,
}

impl InUsePrefix {
    /// Nothing protected, the whole heap of `len` bytes counted as used.
    pub(crate) fn new(len: usize) -> InUsePrefix {
        InUsePrefix {
            len,
            in_use: AtomicUsize::new(len),
            protected: AtomicUsize::new(0),
            unprotected: AtomicUsize::new(0),
        }
    }

    /// The heap has used its first `bytes` (rounded up to a page, at most the heap).
    pub(crate) fn report(&self, bytes: usize) {
        let bytes = bytes.next_multiple_of(PAGE_SIZE).min(self.len);
        self.in_use.store(bytes, Ordering::Release);
    }

    /// The used prefix, in bytes.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }

    /// The protected prefix, in bytes.
    pub(crate) fn protected(&self) -> usize {
        self.protected.load(Ordering::Acquire)
    }

    /// The used prefix counts as protected from now on: returns it, in bytes, for the
    /// caller to protect (at arm, or after a failure that left the heap writable).
    pub(crate) fn protect_used(&self) -> usize {
        let extent = self.in_use();
        self.unprotected.store(0, Ordering::Release);
        self.protected.store(extent, Ordering::Release);
        extent
    }

    /// A step of the disarm: the pages of the protected prefix below `bytes` (rounded up
    /// to a page) that no step since arm has taken, for the caller to make writable. The
    /// steps come from one thread (the collector's), in increasing `bytes`; `usize::MAX`
    /// takes the rest. A step that finds nothing new returns an empty range.
    pub(crate) fn take_unprotect(&self, bytes: usize) -> Range<usize> {
        // The protected prefix is whole pages: rounding up within it cannot overflow.
        let end = bytes.min(self.protected()).next_multiple_of(PAGE_SIZE);
        let from = self.unprotected.fetch_max(end, Ordering::AcqRel);
        (from >> PAGE_SHIFT)..(end.max(from) >> PAGE_SHIFT)
    }

    /// The disarm's last step: the rest of the protected prefix, as
    /// [`take_unprotect`](Self::take_unprotect) without a bound. The prefix stays counted
    /// as protected (all of it taken) until the next arm, so that a harvest between
    /// cycles does not report it as grown.
    pub(crate) fn take_rest(&self) -> Range<usize> {
        self.take_unprotect(usize::MAX)
    }

    /// Nothing is protected any more (after `uffd-wp-async`'s last disarm step, whose
    /// harvest reads a zero prefix as "disarmed").
    pub(crate) fn forget_protected(&self) {
        self.protected.store(0, Ordering::Release);
        self.unprotected.store(0, Ordering::Release);
    }

    /// The prefix the disarm's steps have made writable so far, in bytes.
    pub(crate) fn unprotected(&self) -> usize {
        self.unprotected.load(Ordering::Acquire)
    }

    /// The pages in use beyond the protected prefix, if the heap grew since it was
    /// protected: the protected prefix is extended over them, and the caller reports them
    /// (they were never protected, so they may have been written unseen) and protects
    /// them. IF that protect fails THEN the caller degrades, which leaves the heap
    /// writable and reports everything, so the prefix counting them as protected loses
    /// nothing.
    pub(crate) fn take_grown(&self) -> Option<Range<usize>> {
        let (used, protected) = (self.in_use(), self.protected());
        if used <= protected {
            return None;
        }
        self.protected.store(used, Ordering::Release);
        Some(protected >> PAGE_SHIFT..used >> PAGE_SHIFT)
    }

    /// Hands out the pages of `[start, start + len)` (in a heap starting at `base`) that
    /// lie in the protected prefix and for which `skip` is false: calls `change(first, end)`
    /// for each maximal run of such pages, in address order, until one returns false (a
    /// protection change failed). Returns the runs tried: the protection changes, as
    /// [`Counters::handed_out`](crate::barrier::counters::Counters::handed_out) counts
    /// them.
    pub(crate) fn hand_out_runs(
        &self,
        base: usize,
        skip: impl Fn(usize) -> bool,
        start: usize,
        len: usize,
        mut change: impl FnMut(usize, usize) -> bool,
    ) -> usize {
        let protected = self.protected() >> PAGE_SHIFT;
        let first = start.wrapping_sub(base) >> PAGE_SHIFT;
        let end = (first + len.div_ceil(PAGE_SIZE)).min(protected);
        let mut runs = 0;
        // Below what the disarm's steps have made writable, nothing needs a change.
        let mut page = first.max(self.unprotected() >> PAGE_SHIFT);
        while page < end {
            if skip(page) {
                page += 1;
                continue;
            }
            let run = page;
            while page < end && !skip(page) {
                page += 1;
            }
            runs += 1;
            if !change(run, page) {
                break;
            }
        }
        runs
    }
}
