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
//! unprotects the protected prefix ([`InUsePrefix::protected`]); the record's hand-out
//! changes the runs of [`InUsePrefix::hand_out_runs`] (async write-protect hands nothing
//! out).
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
}

impl InUsePrefix {
    /// Nothing protected, the whole heap of `len` bytes counted as used.
    pub(crate) fn new(len: usize) -> InUsePrefix {
        InUsePrefix {
            len,
            in_use: AtomicUsize::new(len),
            protected: AtomicUsize::new(0),
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
        self.protected.store(extent, Ordering::Release);
        extent
    }

    /// Nothing is protected any more: returns the prefix that was.
    pub(crate) fn take_protected(&self) -> usize {
        self.protected.swap(0, Ordering::AcqRel)
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
        let mut page = first;
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
