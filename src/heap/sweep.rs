//! The sweep: every page in use against a cycle's mark bitmap, zeroing and freeing the
//! dead cells and giving empty pages back to the pool (see the module docs of
//! [`crate::heap`] for why a free cell is all zero).
//!
//! The zeroing is most of the sweep's time (the memory it writes), and these ways of
//! cutting it were measured on GCBench (classic at 64 MiB, and 64 MiB live in 140 MiB)
//! against this one, in alternating runs on the 2-vCPU machine, and left out:
//! - zeroing each run on the allocating mutator instead, as bdwgc clears objects when it
//!   hands them out: the sweep took a fifth of the time, but runs were 7–14% (classic)
//!   and 15–25% (140 MiB) longer: the mutator paid more than the collector saved, and
//!   the stalls at 140 MiB are in marking, not here;
//! - one `memset` per run across the page's bitmap words, and a plain store for the
//!   allocation bits of a page the sweeper owns: no difference;
//! - non-temporal stores: runs 1.5 times as long, with 50 ms pauses.

use std::sync::atomic::Ordering;

use super::pages::PageKind;
use super::size_class::{CLASS_SIZES, GRANULE};
use super::{PAGE_GRANULES, PAGE_SWEEPER, PAGE_UNOWNED, SWEEP_CHUNK, Space};
use crate::bitmap::Bitmap;
use crate::sys::PAGE_SIZE;

impl Space {
    /// Frees every allocated cell without a mark in `marks`, and rebuilds the lists of
    /// pages with free cells. Returns (bytes, objects) freed.
    ///
    /// It zeroes what it frees, a chunk of [`SWEEP_CHUNK`] pages at a time: before it
    /// writes a chunk it calls `ahead(bytes)`, after which the heap's first `bytes` must
    /// be writable (the collector disarms its tracker there), and after it `progress()`:
    /// room may have come back (a mutator that found the heap full can try again).
    pub fn sweep(
        &self,
        marks: &Bitmap,
        mut progress: impl FnMut(),
        mut ahead: impl FnMut(usize),
    ) -> (u64, u64) {
        for list in &self.avail {
            list.lock().clear();
        }
        let (mut bytes, mut objects) = (0u64, 0u64);
        let mut p = 0;
        let mut chunk_end = SWEEP_CHUNK;
        let end = self.high_water();
        ahead(chunk_end * PAGE_SIZE);
        while p < end {
            if p >= chunk_end {
                progress();
                chunk_end = p + SWEEP_CHUNK;
                ahead(chunk_end * PAGE_SIZE);
            }
            match self.page_table.get(p) {
                PageKind::Small { class } => {
                    let (b, o) = self.sweep_small_page(p, class, marks);
                    bytes += b;
                    objects += o;
                    p += 1;
                }
                PageKind::LargeHead { pages } => {
                    let g = self.granule(self.page_addr(p));
                    if self.alloc_bits.get(g) && !marks.get(g) {
                        self.free_large(p, pages);
                        bytes += (pages * PAGE_SIZE) as u64;
                        objects += 1;
                    }
                    p += pages.max(1);
                }
                _ => p += 1,
            }
        }
        (bytes, objects)
    }

    /// Sweeps one small-object page, a word of bitmaps at a time: zeroes and frees every
    /// allocated cell not in `marks`. Frees the page, or lists it as having free cells,
    /// unless a mutator owns it.
    fn sweep_small_page(&self, p: usize, class: usize, marks: &Bitmap) -> (u64, u64) {
        let exclusive = self.owner[p]
            .compare_exchange(
                PAGE_UNOWNED,
                PAGE_SWEEPER,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok();
        let cs = CLASS_SIZES[class];
        let stride = cs / GRANULE;
        let page = self.page_addr(p);
        let w0 = self.granule(page) / 64;
        let (mut freed, mut live) = (0u64, 0u32);
        for k in 0..PAGE_GRANULES / 64 {
            // Allocation bits first (Acquire): a reservation set its marks before them,
            // so a reserved cell is never seen allocated and unmarked.
            let alloc = self.alloc_bits.word(w0 + k).load(Ordering::Acquire);
            let dead = alloc & !marks.word(w0 + k).load(Ordering::Acquire);
            live += (alloc & !dead).count_ones();
            if dead != 0 {
                // Dead cells die in runs (a structure dies as a whole): one `memset` per
                // run of consecutive dead cells, not one per cell. The allocation bits are
                // cleared after the zeroing (`AcqRel`), so a mutator that finds a cell
                // free finds it all zero.
                let mut d = dead;
                while d != 0 {
                    let g = d.trailing_zeros() as usize;
                    let mut cells = 1;
                    while g + cells * stride < 64 && d & (1 << (g + cells * stride)) != 0 {
                        cells += 1;
                    }
                    for c in 0..cells {
                        d &= !(1 << (g + c * stride));
                    }
                    let addr = page + (k * 64 + g) * GRANULE;
                    // SAFETY: allocated, unmarked cells are garbage no mutator can reach
                    // (marking is complete), consecutive, inside the heap, in a chunk
                    // `ahead` made writable.
                    unsafe { std::ptr::write_bytes(addr as *mut u8, 0, cells * cs) };
                }
                self.alloc_bits
                    .word(w0 + k)
                    .fetch_and(!dead, Ordering::AcqRel);
                freed += u64::from(dead.count_ones());
            }
        }
        if exclusive {
            if live == 0 {
                self.page_table.set(p, PageKind::Free);
                // Every cell was zero or is zeroed now: the page needs no zeroing.
                self.with_pool(|pool| pool.give_back(p, 1, false));
            } else if live < (PAGE_SIZE / cs) as u32 {
                self.avail[class].lock().push(p);
            }
            self.release_page(p);
        }
        (freed * cs as u64, freed)
    }

    /// Frees a dead large object starting at page `p` spanning `n` pages (zeroed when
    /// its pages are taken again).
    fn free_large(&self, p: usize, n: usize) {
        self.alloc_bits.clear(self.granule(self.page_addr(p)));
        for k in 0..n {
            self.page_table.set(p + k, PageKind::Free);
        }
        self.with_pool(|pool| pool.give_back(p, n, true));
    }
}
