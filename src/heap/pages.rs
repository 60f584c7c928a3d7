//! The page table (what each heap page holds) and the pool of free pages.
//!
//! Each page's entry is one `AtomicU32` outside the heap: a tag (free, small-object page of
//! some class, first page of a large object, later page of a large object) and a value
//! (the class, the span length, or the distance back to the first page). The pool hands
//! out single pages lowest address first and a large object's run as high as it fits
//! below the high-water mark ([`PagePool::take_high`]), and keeps that mark: pages above it were never used, so a cycle's walks (sweep, mark-bitmap clear,
//! verifier) stop there and cost what the heap uses, not what it reserved.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::bitmap::Bitmap;
use crate::error::Result;
use crate::side_table::SideTable;

/// What a page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    /// In the pool.
    Free,
    /// Cells of one size class.
    Small {
        /// The size class.
        class: usize,
    },
    /// The first page of a large object spanning `pages` pages.
    LargeHead {
        /// Length of the span.
        pages: usize,
    },
    /// A later page of a large object whose first page is `back` pages before.
    LargeTail {
        /// Distance to the first page.
        back: usize,
    },
}

const TAG_FREE: u32 = 0;
const TAG_SMALL: u32 = 1;
const TAG_HEAD: u32 = 2;
const TAG_TAIL: u32 = 3;

impl PageKind {
    fn encode(self) -> u32 {
        match self {
            PageKind::Free => TAG_FREE,
            PageKind::Small { class } => TAG_SMALL | (class as u32) << 2,
            PageKind::LargeHead { pages } => TAG_HEAD | (pages as u32) << 2,
            PageKind::LargeTail { back } => TAG_TAIL | (back as u32) << 2,
        }
    }

    fn decode(v: u32) -> PageKind {
        let value = (v >> 2) as usize;
        match v & 3 {
            TAG_FREE => PageKind::Free,
            TAG_SMALL => PageKind::Small { class: value },
            TAG_HEAD => PageKind::LargeHead { pages: value },
            _ => PageKind::LargeTail { back: value },
        }
    }
}

/// The page table.
#[derive(Debug)]
pub struct PageTable {
    entries: SideTable<AtomicU32>,
}

impl PageTable {
    /// All pages free (`TAG_FREE` is zero).
    pub fn new(pages: usize) -> Result<PageTable> {
        Ok(PageTable {
            entries: SideTable::new(pages)?,
        })
    }

    /// What page `p` holds.
    #[inline]
    pub fn get(&self, p: usize) -> PageKind {
        PageKind::decode(self.entries[p].load(Ordering::Acquire))
    }

    /// Sets what page `p` holds.
    pub fn set(&self, p: usize, kind: PageKind) {
        self.entries[p].store(kind.encode(), Ordering::Release);
    }

    /// Number of pages.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Free pages. Guarded by the heap's pool lock.
#[derive(Debug)]
pub struct PagePool {
    /// One bit per page in use (a fresh bitmap is all zero: every page free).
    taken: Bitmap,
    /// Pages that held objects since they were last zeroed.
    used_before: Bitmap,
    free_count: usize,
    /// No page below this one is free.
    lowest_free: usize,
    /// No page at or above this one was ever taken.
    high_water: usize,
    pages: usize,
}

impl PagePool {
    /// Every page free and zero.
    pub fn new(pages: usize) -> Result<PagePool> {
        Ok(PagePool {
            taken: Bitmap::new(pages)?,
            used_before: Bitmap::new(pages)?,
            free_count: pages,
            lowest_free: 0,
            high_water: 0,
            pages,
        })
    }

    /// Number of free pages.
    pub fn free_pages(&self) -> usize {
        self.free_count
    }

    /// One past the highest page ever taken.
    pub fn high_water(&self) -> usize {
        self.high_water
    }

    /// Takes a run of `n` free pages, lowest first; returns its first page and whether
    /// any page of it must be zeroed before use.
    pub fn take(&mut self, n: usize) -> Option<(usize, bool)> {
        if n == 0 || n > self.free_count {
            return None;
        }
        let start = self.find_run(n)?;
        Some(self.claim(start, n))
    }

    /// Takes a run of `n` free pages for a large object: the highest run that ends at or
    /// below the high-water mark, else the lowest run (which raises the mark); returns
    /// as [`PagePool::take`] does. Single pages are taken lowest first, so small-object
    /// pages fill the heap from the bottom and large objects from the top, and the span
    /// of a large object that died stays whole for the next one instead of being cut
    /// into by the refills of the small classes.
    pub fn take_high(&mut self, n: usize) -> Option<(usize, bool)> {
        if n == 0 || n > self.free_count {
            return None;
        }
        let start = self
            .find_run_below(n, self.high_water)
            .or_else(|| self.find_run(n))?;
        Some(self.claim(start, n))
    }

    /// The highest run of `n` free pages that ends at or below page `end`, found a page
    /// at a time from the top: a large object's allocation is rare beside its zeroing.
    fn find_run_below(&self, n: usize, end: usize) -> Option<usize> {
        let mut len = 0;
        for p in (self.lowest_free..end.min(self.pages)).rev() {
            if self.taken.get(p) {
                len = 0;
            } else {
                len += 1;
                if len == n {
                    return Some(p);
                }
            }
        }
        None
    }

    /// Marks the free run of `n` pages at `start` taken; whether any must be zeroed.
    fn claim(&mut self, start: usize, n: usize) -> (usize, bool) {
        let mut needs_zero = false;
        for p in start..start + n {
            self.taken.set(p);
            if self.used_before.get(p) {
                needs_zero = true;
                self.used_before.clear(p);
            }
        }
        self.free_count -= n;
        if start == self.lowest_free {
            self.lowest_free = start + n;
        }
        self.high_water = self.high_water.max(start + n);
        (start, needs_zero)
    }

    fn find_run(&self, n: usize) -> Option<usize> {
        let mut p = self.lowest_free;
        while p + n <= self.pages {
            p = self.next_free(p)?;
            if p + n > self.pages {
                return None;
            }
            let mut len = 1;
            while len < n && !self.taken.get(p + len) {
                len += 1;
            }
            if len == n {
                return Some(p);
            }
            p += len + 1;
        }
        None
    }

    /// The first free page at or after `p`, found a word of the bitmap (64 pages) at a
    /// time.
    fn next_free(&self, p: usize) -> Option<usize> {
        self.next(p, false)
    }

    /// The first page in use at or after `p`, a word at a time.
    fn next_taken(&self, p: usize) -> Option<usize> {
        self.next(p, true)
    }

    /// The first page at or after `p` that is in use if `taken`, else free.
    fn next(&self, p: usize, taken: bool) -> Option<usize> {
        let bits = |w: usize| {
            let word = self.taken.word(w).load(Ordering::Relaxed);
            if taken { word } else { !word }
        };
        let mut w = p / 64;
        let mut found = bits(w) & (u64::MAX << (p % 64));
        loop {
            if found != 0 {
                let q = 64 * w + found.trailing_zeros() as usize;
                return (q < self.pages).then_some(q);
            }
            w += 1;
            if 64 * w >= self.pages {
                return None;
            }
            found = bits(w);
        }
    }

    /// How many pages from `p` on are free, counting at most `max` (0 if `p` is taken
    /// or past the end): the allocator hands the run after a page it takes to the
    /// tracker in the same call, since the pool takes the lowest free page next.
    pub fn free_run(&self, p: usize, max: usize) -> usize {
        let end = (p + max).min(self.pages);
        (p..end).take_while(|&q| !self.taken.get(q)).count()
    }

    /// Calls `f(first, count)` for each maximal run of free pages below the high-water
    /// mark, lowest first (the pages above it were never taken: no tracker protected
    /// them).
    pub fn for_each_free_run(&self, mut f: impl FnMut(usize, usize)) {
        let end = self.high_water;
        let mut p = self.lowest_free;
        while p < end {
            let Some(first) = self.next_free(p).filter(|&q| q < end) else {
                return;
            };
            let q = self.next_taken(first).unwrap_or(end).min(end);
            f(first, q - first);
            p = q;
        }
    }

    /// Returns `n` pages starting at `start`; unless the caller zeroed them, they are
    /// zeroed before their next use.
    pub fn give_back(&mut self, start: usize, n: usize, needs_zero: bool) {
        for p in start..start + n {
            debug_assert!(self.taken.get(p), "page {p} freed twice");
            self.taken.clear(p);
            if needs_zero {
                self.used_before.set(p);
            }
        }
        self.free_count += n;
        self.lowest_free = self.lowest_free.min(start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time search for free pages: lowest first, across words, up to a
    /// size that is not a multiple of 64, and none when all are taken.
    #[test]
    fn the_lowest_free_pages_are_found_across_words() {
        let mut pool = PagePool::new(130).unwrap();
        for p in 0..130 {
            assert_eq!(pool.take(1), Some((p, false)));
        }
        assert_eq!(pool.take(1), None);
        for p in [129, 64, 5, 6] {
            pool.give_back(p, 1, p == 64);
        }
        assert_eq!(pool.take(2), Some((5, false)), "the run 5-6");
        assert_eq!(pool.take(2), None, "no other run of two");
        assert_eq!(pool.take(1), Some((64, true)), "64 held objects");
        assert_eq!(pool.take(1), Some((129, false)), "the last page");
        assert_eq!(pool.take(1), None);
    }

    /// The free runs below the high-water mark, lowest first, each whole; none above it.
    #[test]
    fn free_runs_below_the_high_water_mark_are_listed_whole() {
        let mut pool = PagePool::new(300).unwrap();
        assert_eq!(pool.take(200), Some((0, false)));
        for (start, n) in [(3, 2), (60, 10), (127, 2), (199, 1)] {
            pool.give_back(start, n, false);
        }
        let mut runs = Vec::new();
        pool.for_each_free_run(|first, count| runs.push((first, count)));
        assert_eq!(runs, [(3, 2), (60, 10), (127, 2), (199, 1)]);
        assert_eq!(pool.take(1), Some((3, false)));
        let mut runs = Vec::new();
        pool.for_each_free_run(|first, count| runs.push((first, count)));
        assert_eq!(runs, [(4, 1), (60, 10), (127, 2), (199, 1)], "{runs:?}");
        let empty = PagePool::new(10).unwrap();
        empty.for_each_free_run(|_, _| panic!("nothing was ever taken"));
    }

    #[test]
    fn page_kinds_round_trip() {
        let t = PageTable::new(4).unwrap();
        for k in [
            PageKind::Free,
            PageKind::Small { class: 19 },
            PageKind::LargeHead { pages: 1 << 20 },
            PageKind::LargeTail { back: 77 },
        ] {
            t.set(2, k);
            assert_eq!(t.get(2), k);
        }
    }

    #[test]
    fn pool_takes_runs_lowest_first_and_tracks_zeroing() {
        let mut pool = PagePool::new(200).unwrap();
        assert_eq!(pool.take(3), Some((0, false)));
        assert_eq!(pool.take(100), Some((3, false)));
        assert_eq!(pool.free_pages(), 97);
        assert_eq!(pool.high_water(), 103);
        pool.give_back(1, 1, true);
        // A one-page hole at 1; a 2-page run must not use it.
        assert_eq!(pool.take(2), Some((103, false)));
        // The hole is the lowest free page, and must be zeroed before reuse.
        assert_eq!(pool.take(1), Some((1, true)));
        assert_eq!(pool.take(1), Some((105, false)));
        while pool.take(1).is_some() {}
        assert_eq!(pool.free_pages(), 0);
        assert_eq!(pool.high_water(), 200);
        assert_eq!(pool.take(1), None);
    }

    #[test]
    fn large_runs_are_taken_from_the_top_below_the_high_water_mark() {
        let mut pool = PagePool::new(100).unwrap();
        // Nothing used yet: no run below the mark, so the lowest (which raises it).
        assert_eq!(pool.take_high(10), Some((0, false)));
        for _ in 0..50 {
            pool.take(1).unwrap();
        }
        assert_eq!(pool.high_water(), 60);
        // Free 20-39 (a dead large object's span) and one page at 5.
        pool.give_back(20, 20, true);
        pool.give_back(5, 1, true);
        // Small refills take the lowest page; a large run the highest that fits.
        assert_eq!(pool.take_high(8), Some((32, true)), "the top of the hole");
        assert_eq!(
            pool.take(1),
            Some((5, true)),
            "a single page from the bottom"
        );
        assert_eq!(
            pool.take_high(12),
            Some((20, true)),
            "the rest of the hole, whole"
        );
        // No run of 5 below the mark: the lowest above it.
        assert_eq!(pool.take_high(5), Some((60, false)));
        assert_eq!(pool.high_water(), 65);
        assert_eq!(pool.take_high(36), None, "35 pages left");
    }
}
