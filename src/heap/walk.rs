//! Walks over the heap's cells: every allocated cell, or those overlapping a range (the
//! remark's rescan of a dirty granule), and the count of live objects; and over its pages:
//! the runs allocated into since the last arm, and whether a page holds a marked object.

use std::ops::Range;
use std::sync::atomic::Ordering;

use super::pages::PageKind;
use super::size_class::{CLASS_SIZES, cell_index};
use super::{PAGE_GRANULES, Space, object};
use crate::bitmap::Bitmap;
use crate::sys::PAGE_SIZE;

impl Space {
    /// Objects with a header (allocated and initialised), by walking the heap.
    pub fn live_objects(&self) -> usize {
        let mut n = 0;
        self.for_each_cell(|a| {
            // SAFETY: a cell of this space, read atomically.
            if self.is_allocated(a) && unsafe { object::load_header(a) }.is_some() {
                n += 1;
            }
        });
        n
    }

    /// Calls `f` with the address of every cell and large-object start in use.
    pub fn for_each_cell(&self, mut f: impl FnMut(usize)) {
        let mut p = 0;
        let end = self.high_water();
        while p < end {
            match self.page_table.get(p) {
                PageKind::Small { class } => {
                    let cs = CLASS_SIZES[class];
                    for i in 0..PAGE_SIZE / cs {
                        f(self.page_addr(p) + i * cs);
                    }
                    p += 1;
                }
                PageKind::LargeHead { pages } => {
                    f(self.page_addr(p));
                    p += pages.max(1);
                }
                _ => p += 1,
            }
        }
    }

    /// Calls `f` with every cell or large-object start overlapping `[lo, hi)`, which lies
    /// within one page (the rescan of a dirty granule).
    pub fn for_each_cell_in(&self, lo: usize, hi: usize, mut f: impl FnMut(usize)) {
        let p = self.page_of(lo);
        let page = self.page_addr(p);
        match self.page_table.get(p) {
            PageKind::Small { class } => {
                let cs = CLASS_SIZES[class];
                let cells = cell_index(class, lo - page)..=cell_index(class, hi - 1 - page);
                for i in cells {
                    if (i + 1) * cs <= PAGE_SIZE {
                        f(page + i * cs);
                    }
                }
            }
            PageKind::LargeHead { .. } => f(page),
            PageKind::LargeTail { back } => f(page - back * PAGE_SIZE),
            PageKind::Free => {}
        }
    }

    /// The runs of pages whose cells were handed out since [`Space::begin_frontier`], as
    /// address ranges, lowest first: what a tracker's arm leaves writable and recorded
    /// ([`DirtyTracker::arm_with_young`]). Call before `begin_frontier`.
    pub(crate) fn frontier_runs(&self) -> Vec<Range<usize>> {
        let mut runs: Vec<Range<usize>> = Vec::new();
        let pages = self.high_water();
        let mut p = 0;
        while p < pages {
            if p % 64 == 0 && self.frontier.word(p / 64).load(Ordering::Relaxed) == 0 {
                p += 64;
                continue;
            }
            if self.frontier.get(p) {
                let addr = self.page_addr(p);
                match runs.last_mut() {
                    Some(last) if last.end == addr => last.end += PAGE_SIZE,
                    _ => runs.push(addr..addr + PAGE_SIZE),
                }
            }
            p += 1;
        }
        runs
    }

    /// Whether the page at `addr` holds an object marked in `marks`: a cell of it, or
    /// the large object it belongs to ([`DirtyTracker::harvest_marked`]).
    pub(crate) fn holds_marked(&self, marks: &Bitmap, addr: usize) -> bool {
        let p = self.page_of(addr);
        let page = self.page_addr(p);
        match self.page_table.get(p) {
            PageKind::Small { .. } => {
                let first = self.granule(page) / 64;
                (first..first + PAGE_GRANULES / 64)
                    .any(|w| marks.word(w).load(Ordering::Acquire) != 0)
            }
            PageKind::LargeHead { .. } => marks.get(self.granule(page)),
            PageKind::LargeTail { back } => marks.get(self.granule(page - back * PAGE_SIZE)),
            PageKind::Free => false,
        }
    }
}
