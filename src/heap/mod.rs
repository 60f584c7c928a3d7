//! The heap's space: one mapping of 4 KiB pages, the side tables outside it, and the
//! allocation primitives. It knows neither the collector nor the mutators: it hands out
//! runs of free cells and large spans, sweeps a page against a mark bitmap it is given,
//! and answers questions about addresses. The collector ([`crate::collector`]) and the
//! mutators ([`crate::Mutator`]) are built on it.
//!
//! Layout: pages hold cells of one size class ([`size_class`]) or are part of a large
//! object's span. Everything the collector writes lives outside the mapping: the page
//! table ([`pages`]), the allocation bitmap and two mark bitmaps (the crate's one `Bitmap`, one bit per
//! 16-byte granule), the free-page pool and the per-class lists of pages with free cells.
//! So **the collector never writes a heap page the tracker may protect**: its only writes
//! to the heap are the sweep's zeroing of dead cells, after remark, a chunk at a time,
//! each after the tracker has made the chunk writable (`DirtyTracker::disarm_ahead`).
//!
//! # Allocation: runs of free cells
//! A mutator allocates small objects from an [`AllocBuffer`] per size class: a *run* of
//! consecutive free cells in one page, `[cursor, limit)`. The fast path
//! ([`crate::Mutator::alloc`]) bumps `cursor` by the cell size after one compare and
//! writes the object's header; it touches no side table and no atomic. Everything else
//! is per run, in `Space::refill`: find the next run of free cells in the page (from
//! the allocation bitmap, which the sweep maintains), then reserve it in bulk, one atomic
//! `fetch_or` per 64 granules.
//!
//! **A free cell is all zero** (header and body): fresh pages come zero from the kernel
//! or from [`PagePool::take`], and the sweep zeroes every cell it frees. So the fast path
//! writes only the header, and the zeroing happens in bulk, on the collector's thread.
//!
//! # Allocation colour
//! Objects allocated during a cycle must be black: never freed by that cycle's sweep,
//! never traced. The invariants that make them so, without a per-object atomic:
//! 1. IF a run is reserved THEN its cells' bits are set in the *allocation epoch*'s mark
//!    bitmap before their allocation bits (`Space::refill`); the sweep reads the
//!    allocation bit first, so it never sees a reserved cell without its mark.
//! 2. The allocation epoch flips to the cycle's bitmap in the initial-mark pause, with
//!    every mutator stopped; in the same pause the collector marks the unused rest of
//!    every run a mutator holds in the new epoch's bitmap (`Space::blacken`). So IF a
//!    cell is allocated after the flip THEN it is marked in the cycle's bitmap, whether
//!    its run was reserved before or after the flip.
//! 3. Cells reserved but not yet allocated have a zero header: the marker and the
//!    verifier skip them, and `Space::check_obj` accepts them as cells but the mutator
//!    rejects them as objects (no header).
//!
//! Marks that allocation sets between cycles land in the bitmap the next cycle does not
//! use; the collector clears that bitmap during each cycle, after the flip.
//!
//! # The allocation frontier is dirty by construction
//! IF the allocator hands a page to a mutator while the tracker is armed THEN the page
//! is in the dirty set and writable before any mutator writes it
//! ([`DirtyTracker::hand_out`], called by `Space::refill` for every new run, by the
//! page taking under it for fresh, reused and large-object pages before it zeroes them,
//! and by `Space::blacken` for the pages mutators hold at the flip). So the page
//! trackers pay no fault for new objects, and remark still rescans the pages that new
//! objects were written into. A page taken from the pool is handed out together with the
//! free pages after it (up to `HAND_OUT_BATCH`, 64, in all), which the pool, lowest page
//! first, hands out next ([`DirtyTracker::hand_out_and_open`], called under the pool's
//! lock, so that no other thread takes one of them before they are open): a page
//! tracker makes them writable in the same call without recording them, nothing writes
//! them while they are free, and taking one later records it with no protection change. A large object's run
//! is placed from the top ([`PagePool::take_high`]), so it is handed out alone. The
//! collector arms the tracker with the pool's free runs (`Space::for_each_free_run`,
//! [`DirtyTracker::arm_with_free`]): a page tracker leaves them open, so that the pages
//! the mutators allocate into during the cycle cost neither the arm nor the hand-out a
//! protection change.

pub mod config;
pub mod object;
pub mod pages;
pub mod size_class;
mod sweep;
pub(crate) mod testing;
mod walk;

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::barrier::DirtyTracker;
use crate::error::{Error, Result};
use crate::sys::mem::{Advice, Region};
use crate::sys::{PAGE_SHIFT, PAGE_SIZE};

use crate::bitmap::Bitmap;
use crate::side_table::SideTable;
pub use config::{DutyCycle, HeapConfig, Placement};
pub use object::{Header, ObjRef};
use pages::{PageKind, PagePool, PageTable};
use size_class::{CLASS_SIZES, GRANULE, GRANULE_SHIFT, NUM_CLASSES};

/// Who may allocate in a small-object page right now.
const PAGE_UNOWNED: u8 = 0;
const PAGE_MUTATOR: u8 = 1;
const PAGE_SWEEPER: u8 = 2;

/// No page: an empty buffer.
const NO_PAGE: usize = usize::MAX;

/// Granules per page.
const PAGE_GRANULES: usize = PAGE_SIZE / GRANULE;

/// Pages handed to the tracker in one call when the allocator takes a page from the pool
/// (the page and the free pages after it, which a page tracker opens). An unprotect
/// costs ~1 µs for one page plus ~70 ns per further page, and its TLB flush makes the
/// asking mutator wait for the other CPUs (tens of µs on a 2-vCPU VM); a write fault
/// costs 0.8–58 µs.
pub(crate) const HAND_OUT_BATCH: usize = 64;

/// Pages the sweep frees between two reports of progress (see [`Space::sweep`]).
pub(crate) const SWEEP_CHUNK: usize = 1024;

/// The tracker the allocator tells about the pages it hands out (`None`: no tracker).
pub(crate) type Frontier<'a> = Option<&'a dyn DirtyTracker>;

/// One mutator's run of free cells in one size class: `[cursor, limit)`, in the page
/// `page`. The allocation fast path reads and writes only `cursor` and `limit`.
#[derive(Debug, Clone, Copy)]
pub struct AllocBuffer {
    /// Address of the next free cell.
    pub(crate) cursor: usize,
    /// End of the run (`cursor == limit`: empty).
    pub(crate) limit: usize,
    /// The page the run is in, owned by this mutator, or `NO_PAGE`.
    page: usize,
}

impl AllocBuffer {
    pub(crate) const EMPTY: AllocBuffer = AllocBuffer {
        cursor: 0,
        limit: 0,
        page: NO_PAGE,
    };
}

/// A mutator's allocation buffers, one per size class. It lives where the collector can
/// read it while that mutator is stopped (see `Space::blacken`).
#[derive(Debug)]
pub struct AllocBuffers {
    pub(crate) classes: [AllocBuffer; NUM_CLASSES],
}

impl Default for AllocBuffers {
    fn default() -> Self {
        AllocBuffers {
            classes: [AllocBuffer::EMPTY; NUM_CLASSES],
        }
    }
}

/// The space. Shared by the mutators and the collector of one heap.
pub(crate) struct Space {
    region: Region,
    base: usize,
    pages: usize,
    page_table: PageTable,
    owner: SideTable<AtomicU8>,
    pool: Mutex<PagePool>,
    /// Per class: pages that had free cells at the last sweep.
    avail: [Mutex<Vec<usize>>; NUM_CLASSES],
    alloc_bits: Bitmap,
    mark_bits: [Bitmap; 2],
    /// Which mark bitmap reservations set (flipped in the initial-mark pause).
    alloc_epoch: AtomicUsize,
    /// Bytes handed to mutators: runs reserved plus large objects, less the unused
    /// rest of runs given back.
    bytes_allocated: AtomicU64,
    /// A copy of the pool's free-page count, for the trigger to read without the lock.
    free_pages: AtomicUsize,
    /// A copy of the pool's high-water mark: no page at or above it was ever used.
    high_water: AtomicUsize,
    /// One bit per page: cells of it were handed out since [`Space::begin_frontier`] (the
    /// allocation frontier of the cycle), for the study's split of dirty granules into
    /// first writes to new objects and writes to objects older than the cycle.
    frontier: Bitmap,
}

impl std::fmt::Debug for Space {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Space")
            .field("base", &format_args!("{:#x}", self.base))
            .field("pages", &self.pages)
            .finish()
    }
}

impl Space {
    /// Maps `bytes` (rounded up to pages), 2 MiB aligned, with `MADV_NOHUGEPAGE` unless
    /// `huge_pages`.
    pub fn new(bytes: usize, huge_pages: bool) -> Result<Space> {
        // 2 MiB alignment lets huge pages line up with the heap when they are asked for.
        let region = Region::with_alignment(bytes, 2 << 20)?;
        let advice = if huge_pages {
            Advice::HugePage
        } else {
            Advice::NoHugePage
        };
        region.advise(region.base(), region.len(), advice)?;
        let base = region.base();
        let pages = region.pages();
        let granules = region.len() / GRANULE;
        // Side tables on mappings of their own, committed as they are touched: a heap
        // that cannot be reserved fails here with an error (`PAGE_UNOWNED` is zero).
        Ok(Space {
            base,
            pages,
            page_table: PageTable::new(pages)?,
            owner: SideTable::new(pages)?,
            pool: Mutex::new(PagePool::new(pages)?),
            avail: std::array::from_fn(|_| Mutex::new(Vec::new())),
            alloc_bits: Bitmap::new(granules)?,
            mark_bits: [Bitmap::new(granules)?, Bitmap::new(granules)?],
            alloc_epoch: AtomicUsize::new(0),
            bytes_allocated: AtomicU64::new(0),
            free_pages: AtomicUsize::new(pages),
            high_water: AtomicUsize::new(0),
            frontier: Bitmap::new(pages)?,
            region,
        })
    }

    /// First address of the mapping.
    #[inline]
    pub fn base(&self) -> usize {
        self.base
    }

    /// One past the last address.
    pub fn end(&self) -> usize {
        self.region.end()
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// Pages mapped.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// The mark-bitmap index of `addr`.
    #[inline]
    pub fn granule(&self, addr: usize) -> usize {
        (addr - self.base) >> GRANULE_SHIFT
    }

    /// The page index of `addr`.
    #[inline]
    pub fn page_of(&self, addr: usize) -> usize {
        (addr - self.base) >> PAGE_SHIFT
    }

    /// The address of page `p`.
    #[inline]
    pub fn page_addr(&self, p: usize) -> usize {
        self.base + (p << PAGE_SHIFT)
    }

    /// Mark bitmap `epoch` (0 or 1).
    #[inline]
    pub fn marks(&self, epoch: usize) -> &Bitmap {
        &self.mark_bits[epoch]
    }

    /// Makes `epoch` the bitmap that reservations mark. Call only with every mutator
    /// stopped, together with [`Space::blacken`] for each of them.
    pub fn set_alloc_epoch(&self, epoch: usize) {
        self.alloc_epoch.store(epoch, Ordering::Relaxed);
    }

    /// Bytes handed to mutators so far.
    pub fn bytes_allocated(&self) -> u64 {
        self.bytes_allocated.load(Ordering::Relaxed)
    }

    /// Pages not in the free-page pool.
    pub fn pages_in_use(&self) -> usize {
        self.pages - self.pool.lock().free_pages()
    }

    /// Pages in the free-page pool, without the pool's lock (a moment old).
    pub fn free_pages_estimate(&self) -> usize {
        self.free_pages.load(Ordering::Relaxed)
    }

    /// One past the highest page ever used: walks over the heap stop here.
    pub fn high_water(&self) -> usize {
        self.high_water.load(Ordering::Acquire)
    }

    /// Calls `f(address, bytes)` for each run of free pages below the high-water mark,
    /// holding the pool's lock: no page of a run can be taken before `f` returns. What a
    /// tracker's arm needs to leave free pages unprotected
    /// ([`DirtyTracker::arm_with_free`]).
    pub fn for_each_free_run(&self, f: &mut dyn FnMut(usize, usize)) {
        let pool = self.pool.lock();
        pool.for_each_free_run(|first, count| f(self.page_addr(first), count * PAGE_SIZE));
    }

    /// Starts a new allocation frontier: no page counts as allocated into from now on
    /// until cells of it are handed out.
    pub fn begin_frontier(&self) {
        self.frontier.clear_prefix(self.high_water());
    }

    /// Whether cells of page `p` were handed out since [`Space::begin_frontier`].
    pub fn in_frontier(&self, p: usize) -> bool {
        self.frontier.get(p)
    }

    /// Clears mark bitmap `epoch` over the pages ever used.
    pub fn clear_marks(&self, epoch: usize) {
        self.mark_bits[epoch].clear_prefix(self.high_water() * PAGE_GRANULES);
    }

    /// Runs `f` on the pool and keeps the lock-free copies of its counters.
    fn with_pool<R>(&self, f: impl FnOnce(&mut PagePool) -> R) -> R {
        let mut pool = self.pool.lock();
        let r = f(&mut pool);
        self.free_pages.store(pool.free_pages(), Ordering::Relaxed);
        self.high_water.store(pool.high_water(), Ordering::Release);
        r
    }

    /// Whether the allocation bit of the cell at `addr` is set (allocated or reserved).
    #[inline]
    pub fn is_allocated(&self, addr: usize) -> bool {
        self.alloc_bits.get(self.granule(addr))
    }

    /// The cell size of the object starting at `addr`, from the page table.
    pub fn cell_bytes(&self, addr: usize) -> usize {
        match self.page_table.get(self.page_of(addr)) {
            PageKind::Small { class } => CLASS_SIZES[class],
            PageKind::LargeHead { pages } => pages * PAGE_SIZE,
            _ => 0,
        }
    }

    /// `Ok` if `addr` is the start of an allocated (or reserved) cell of this space.
    #[inline]
    pub fn check_obj(&self, addr: usize) -> Result<()> {
        if !self.region.contains(addr)
            || addr % GRANULE != 0
            || !self.alloc_bits.get(self.granule(addr))
        {
            return Err(Error::StaleRef(addr));
        }
        let page_start = addr & !(PAGE_SIZE - 1);
        let ok = match self.page_table.get(self.page_of(addr)) {
            PageKind::Small { class } => {
                let offset = addr - page_start;
                size_class::cell_index(class, offset) * CLASS_SIZES[class] == offset
            }
            PageKind::LargeHead { .. } => addr == page_start,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::StaleRef(addr))
        }
    }

    // ---- allocation -------------------------------------------------------------------

    /// The most one mutator's allocation buffers can hold: one page per size class (a
    /// buffer's run lies in its current page), which no collection takes from it.
    pub const fn most_a_mutator_holds() -> usize {
        NUM_CLASSES * PAGE_SIZE
    }

    /// Refills `buf` (class `class`) with the next run of free cells: first in its
    /// current page, then in a page from the class's list, then in a fresh page. Returns
    /// `false` when no page is left (the caller collects, or reports out of memory).
    ///
    /// The run's page is handed to `frontier` first (see the module docs): nothing if it
    /// is still recorded from an earlier run, one protection change if a harvest has
    /// protected it again since.
    #[cold]
    pub fn refill(&self, buf: &mut AllocBuffer, class: usize, frontier: Frontier<'_>) -> bool {
        debug_assert!(buf.cursor == buf.limit, "refill of a non-empty buffer");
        loop {
            if buf.page != NO_PAGE {
                let from = (buf.limit - self.page_addr(buf.page)) / CLASS_SIZES[class];
                if self.reserve_next_run(buf, class, from) {
                    self.frontier.set(buf.page);
                    if let Some(t) = frontier {
                        t.hand_out(self.page_addr(buf.page), PAGE_SIZE);
                    }
                    return true;
                }
                self.release_page(buf.page);
                *buf = AllocBuffer::EMPTY;
            }
            match self.acquire_small_page(class, frontier) {
                Some(p) => {
                    buf.page = p;
                    buf.cursor = self.page_addr(p);
                    buf.limit = buf.cursor;
                }
                None => return false,
            }
        }
    }

    /// Gives back the unused rest of `buf` and its page (a mutator going away, or a
    /// collection that needs every free cell back).
    pub fn retire(&self, buf: &mut AllocBuffer, class: usize) {
        if buf.page == NO_PAGE {
            return;
        }
        let cs = CLASS_SIZES[class];
        let unused = (buf.limit - buf.cursor) / cs;
        if unused > 0 {
            // The cells were never written (zero) and hold no object: unreserve them.
            self.alloc_bits
                .clear_strided(self.granule(buf.cursor), unused, cs / GRANULE);
            self.bytes_allocated
                .fetch_sub((unused * cs) as u64, Ordering::Relaxed);
        }
        self.release_page(buf.page);
        *buf = AllocBuffer::EMPTY;
    }

    /// Marks the unused rest of every run in `bufs` in mark bitmap `epoch` (invariant 2
    /// of the module docs), and hands those runs' pages to `frontier`: the mutator goes
    /// on allocating into them during the cycle. Call in the pause that flips the epoch,
    /// with the owning mutator stopped.
    pub fn blacken(&self, bufs: &AllocBuffers, epoch: usize, frontier: Frontier<'_>) {
        for (class, b) in bufs.classes.iter().enumerate() {
            let cs = CLASS_SIZES[class];
            let unused = (b.limit - b.cursor) / cs;
            if unused > 0 {
                self.mark_bits[epoch].set_strided(self.granule(b.cursor), unused, cs / GRANULE);
                // The rest of the run is allocated during the cycle: its page is part of
                // the allocation frontier.
                self.frontier.set(b.page);
                if let Some(t) = frontier {
                    t.hand_out(self.page_addr(b.page), PAGE_SIZE);
                }
            }
        }
    }

    /// Finds the first run of free cells of page `buf.page` at or after cell `from` and
    /// reserves it into `buf`: mark bits (allocation epoch) first, then allocation bits.
    fn reserve_next_run(&self, buf: &mut AllocBuffer, class: usize, from: usize) -> bool {
        let cs = CLASS_SIZES[class];
        let stride = cs / GRANULE;
        let cells = PAGE_SIZE / cs;
        let first_granule = self.granule(self.page_addr(buf.page));
        // The page's allocation bits, one load per word; a cell freed by a concurrent
        // sweep after this snapshot is only found at the next refill.
        let mut words = [0u64; PAGE_GRANULES / 64];
        for (k, w) in words.iter_mut().enumerate() {
            *w = self
                .alloc_bits
                .word(first_granule / 64 + k)
                .load(Ordering::Acquire);
        }
        let allocated = |cell: usize| {
            let g = cell * stride;
            words[g / 64] & (1 << (g % 64)) != 0
        };
        let Some(start) = (from..cells).find(|&c| !allocated(c)) else {
            return false;
        };
        let end = (start..cells).find(|&c| allocated(c)).unwrap_or(cells);
        let n = end - start;
        let g = first_granule + start * stride;
        let epoch = self.alloc_epoch.load(Ordering::Relaxed);
        self.mark_bits[epoch].set_strided(g, n, stride);
        self.alloc_bits.set_strided(g, n, stride);
        self.bytes_allocated
            .fetch_add((n * cs) as u64, Ordering::Relaxed);
        let page = self.page_addr(buf.page);
        buf.cursor = page + start * cs;
        buf.limit = page + end * cs;
        true
    }

    /// Takes a run of pages from the pool and hands it to `frontier` (with the free pages
    /// after it, up to [`HAND_OUT_BATCH`] pages in all), then zeroes it if it held
    /// objects before: the zeroing is the first write.
    fn take_pages(&self, n: usize, frontier: Frontier<'_>) -> Option<usize> {
        self.take_pages_placed(n, false, frontier)
    }

    /// [`Space::take_pages`], for a large object's run when `high` (placed from the top:
    /// [`PagePool::take_high`]), with no free pages after it handed out: the next single
    /// page comes from the bottom.
    ///
    /// The free pages after the run are handed out (opened) before the pool's lock is
    /// released: IF another thread took one of them before it was opened THEN the late
    /// open would make a page in use writable without recording it (that thread's
    /// hand-out recorded it, a harvest may have taken the record and protected it
    /// again), and writes to it would be lost. The run alone is handed out after the
    /// lock, since nobody else takes it.
    fn take_pages_placed(&self, n: usize, high: bool, frontier: Frontier<'_>) -> Option<usize> {
        let (start, needs_zero, opened) = self.with_pool(|pool| {
            let (start, needs_zero) = if high {
                pool.take_high(n)?
            } else {
                pool.take(n)?
            };
            let after = match frontier {
                Some(_) if !high => pool.free_run(start + n, HAND_OUT_BATCH.saturating_sub(n)),
                _ => 0,
            };
            if let Some(t) = frontier.filter(|_| after > 0) {
                t.hand_out_and_open(self.page_addr(start), n * PAGE_SIZE, after * PAGE_SIZE);
            }
            Some((start, needs_zero, after > 0))
        })?;
        if let Some(t) = frontier.filter(|_| !opened) {
            t.hand_out(self.page_addr(start), n * PAGE_SIZE);
        }
        if needs_zero {
            // SAFETY: the run was just taken from the pool: no object lives there and no
            // other thread allocates in it; the collector skips free pages.
            unsafe { std::ptr::write_bytes(self.page_addr(start) as *mut u8, 0, n * PAGE_SIZE) };
        }
        Some(start)
    }

    /// Finds a page with free cells of `class` for a mutator, marking it owned. A page
    /// from the pool is handed to `frontier` here (before it is zeroed); the caller hands
    /// out the run it reserves in a listed page.
    fn acquire_small_page(&self, class: usize, frontier: Frontier<'_>) -> Option<usize> {
        loop {
            let Some(p) = self.avail[class].lock().pop() else {
                break;
            };
            if self.claim_page(p) {
                if self.page_table.get(p) == (PageKind::Small { class }) {
                    return Some(p);
                }
                self.release_page(p);
            }
        }
        let p = self.take_pages(1, frontier)?;
        // A mutator holding a stale list entry may own this free page for an instant
        // (it checks the kind and lets go): wait for it rather than overwrite its claim.
        while !self.claim_page(p) {
            std::hint::spin_loop();
        }
        self.page_table.set(p, PageKind::Small { class });
        Some(p)
    }

    fn claim_page(&self, p: usize) -> bool {
        self.owner[p]
            .compare_exchange(
                PAGE_UNOWNED,
                PAGE_MUTATOR,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    fn release_page(&self, p: usize) {
        self.owner[p].store(PAGE_UNOWNED, Ordering::Release);
    }

    /// Allocates a large object of `bytes`, marked in the allocation epoch; returns its
    /// address (zeroed, header not yet written). Its span is handed to `frontier`.
    pub fn alloc_large(&self, bytes: usize, frontier: Frontier<'_>) -> Option<usize> {
        let n = bytes.div_ceil(PAGE_SIZE);
        let start = self.take_pages_placed(n, true, frontier)?;
        for k in 1..n {
            self.page_table
                .set(start + k, PageKind::LargeTail { back: k });
        }
        self.page_table.set(start, PageKind::LargeHead { pages: n });
        let addr = self.page_addr(start);
        let g = self.granule(addr);
        for p in start..start + n {
            self.frontier.set(p);
        }
        self.mark_bits[self.alloc_epoch.load(Ordering::Relaxed)].set(g);
        self.alloc_bits.set(g);
        self.bytes_allocated
            .fetch_add((n * PAGE_SIZE) as u64, Ordering::Relaxed);
        Some(addr)
    }

    // ---- sweeping ---------------------------------------------------------------------
}
