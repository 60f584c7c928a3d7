//! The heap: one mapping of 4 KiB pages, side tables outside it, and the allocator.
//!
//! Layout: pages hold cells of one size class ([`size_class`]) or are part of a large
//! object's span. Everything the collector writes lives outside the mapping: the page
//! table ([`pages`]), the allocation bitmap and two mark bitmaps ([`bitmap`], one bit per
//! 16-byte granule), the free-page pool and the per-class lists of pages with free cells.
//! So **the collector never writes heap memory while the tracker is armed**; the only
//! collector write to the heap is the sweep zeroing the header of a dead cell, after the
//! tracker is disarmed.
//!
//! Allocation colour: every allocation sets its mark bit in the *allocation epoch*'s mark
//! bitmap before it claims the cell, and the epoch flips to the cycle's bitmap in the
//! initial-mark pause. So objects allocated during a cycle are black (never freed by that
//! cycle's sweep, never traced, and their later stores are recorded by the barrier),
//! while objects allocated between cycles carry marks in the other bitmap, which the next
//! cycle does not read. The other bitmap is cleared during the cycle, after the flip.

pub mod bitmap;
pub mod object;
pub mod pages;
pub mod size_class;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::barrier::{self, BarrierKind, DirtyTracker, DynBarrier, ServiceLayout, TrackerOptions};
use crate::collector::{Collector, Stats};
use crate::error::{Error, Result};
use crate::sys::mem::{Advice, Region};
use crate::sys::{PAGE_SHIFT, PAGE_SIZE};

use bitmap::Bitmap;
pub use object::{Header, ObjRef};
use pages::{PageKind, PagePool, PageTable};
use size_class::{CLASS_SIZES, GRANULE, GRANULE_SHIFT, NUM_CLASSES};

/// How a heap is built. A builder: `HeapConfig::new().heap_bytes(64 << 20).barrier(kind)`.
#[derive(Debug, Clone)]
pub struct HeapConfig {
    /// Size of the heap mapping in bytes (rounded up to pages).
    pub heap_bytes: usize,
    /// The write barrier.
    pub barrier: BarrierKind,
    /// Start a collection when this fraction of the heap's pages is in use.
    pub trigger: f64,
    /// Tracker options (card marking variant, fault-service layout, userfaultfd mode).
    pub tracker: TrackerOptions,
    /// At most this many pre-clean rounds per cycle.
    pub max_preclean_rounds: usize,
    /// Stop pre-cleaning when a round finds at most this many dirty granules.
    pub preclean_threshold: usize,
    /// Objects traced between two polls of the fault service (`uffd-wp`, collector layout).
    pub mark_poll_interval: usize,
    /// Ask for transparent huge pages on the heap (default: `MADV_NOHUGEPAGE`).
    pub huge_pages: bool,
    /// Run the verifier at every remark (a full re-trace; for tests).
    pub verify: bool,
    /// A planted bug for testing the verifier: drop every n-th harvested dirty granule.
    pub drop_every_nth_dirty: Option<usize>,
    /// Keep each cycle's first pre-clean dirty set, as heap page indices, in
    /// [`crate::collector::CycleStats::dirty_pages`] (for the study's heap map).
    pub record_dirty_pages: bool,
}

impl Default for HeapConfig {
    fn default() -> Self {
        HeapConfig {
            heap_bytes: 64 << 20,
            barrier: BarrierKind::CardTable,
            trigger: 0.6,
            tracker: TrackerOptions::default(),
            max_preclean_rounds: 3,
            preclean_threshold: 32,
            mark_poll_interval: 64,
            huge_pages: false,
            verify: false,
            drop_every_nth_dirty: None,
            record_dirty_pages: false,
        }
    }
}

impl HeapConfig {
    /// The defaults: 64 MiB, card table, collection at 60% occupancy.
    pub fn new() -> Self {
        Self::default()
    }
    /// Heap size in bytes.
    pub fn heap_bytes(mut self, bytes: usize) -> Self {
        self.heap_bytes = bytes;
        self
    }
    /// The write barrier.
    pub fn barrier(mut self, kind: BarrierKind) -> Self {
        self.barrier = kind;
        self
    }
    /// Occupancy (0..1) at which a collection starts.
    pub fn trigger(mut self, fraction: f64) -> Self {
        self.trigger = fraction;
        self
    }
    /// Who serves `uffd-wp` faults.
    pub fn service_layout(mut self, layout: ServiceLayout) -> Self {
        self.tracker.service = layout;
        self
    }
    /// Conditional card marking.
    pub fn conditional_cards(mut self, yes: bool) -> Self {
        self.tracker.conditional_cards = yes;
        self
    }
    /// Open userfaultfd with `UFFD_USER_MODE_ONLY`.
    pub fn user_mode_only(mut self, yes: bool) -> Self {
        self.tracker.user_mode_only = yes;
        self
    }
    /// Pre-clean rounds at most.
    pub fn max_preclean_rounds(mut self, n: usize) -> Self {
        self.max_preclean_rounds = n;
        self
    }
    /// Pre-clean stops at this many dirty granules.
    pub fn preclean_threshold(mut self, n: usize) -> Self {
        self.preclean_threshold = n;
        self
    }
    /// Transparent huge pages on the heap.
    pub fn huge_pages(mut self, yes: bool) -> Self {
        self.huge_pages = yes;
        self
    }
    /// Verify the tri-colour invariant at every remark.
    pub fn verify(mut self, yes: bool) -> Self {
        self.verify = yes;
        self
    }
    /// Plant a bug: drop every n-th harvested dirty granule (to test the verifier).
    pub fn drop_every_nth_dirty(mut self, n: Option<usize>) -> Self {
        self.drop_every_nth_dirty = n;
        self
    }

    /// Record each cycle's dirty pages (see [`HeapConfig::record_dirty_pages`]).
    pub fn record_dirty_pages(mut self, yes: bool) -> Self {
        self.record_dirty_pages = yes;
        self
    }

    fn validate(&self) -> Result<()> {
        if self.heap_bytes < 16 * PAGE_SIZE {
            return Err(Error::InvalidArgument(format!(
                "heap_bytes {} is too small: at least 16 pages ({} bytes)",
                self.heap_bytes,
                16 * PAGE_SIZE
            )));
        }
        if self.heap_bytes > 1 << 40 {
            return Err(Error::InvalidArgument(format!(
                "heap_bytes {} is larger than the 1 TiB this heap supports",
                self.heap_bytes
            )));
        }
        if !(self.trigger > 0.0 && self.trigger <= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "trigger {} must be in (0, 1]",
                self.trigger
            )));
        }
        if self.drop_every_nth_dirty == Some(0) || self.mark_poll_interval == 0 {
            return Err(Error::InvalidArgument(
                "drop_every_nth_dirty and mark_poll_interval must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Who may allocate in a small-object page right now.
const PAGE_UNOWNED: u8 = 0;
const PAGE_MUTATOR: u8 = 1;
const PAGE_SWEEPER: u8 = 2;

/// Everything a heap is; shared by its handles, mutators and collector thread.
pub(crate) struct HeapInner {
    pub(crate) config: HeapConfig,
    /// Declared before `region`: dropped (unregistered, threads joined) before the unmap.
    pub(crate) tracker: Option<Box<dyn DirtyTracker>>,
    pub(crate) store_barrier: DynBarrier,
    pub(crate) region: Region,
    pub(crate) base: usize,
    pub(crate) pages: usize,
    pub(crate) page_table: PageTable,
    owner: Box<[AtomicU8]>,
    pub(crate) pool: Mutex<PagePool>,
    /// Per class: pages that had free cells at the last sweep.
    avail: [Mutex<Vec<usize>>; NUM_CLASSES],
    pub(crate) alloc_bits: Bitmap,
    pub(crate) mark_bits: [Bitmap; 2],
    /// Which mark bitmap allocations set (flipped in the initial-mark pause).
    pub(crate) alloc_epoch: AtomicUsize,
    pub(crate) collector: Collector,
    /// Bytes allocated (cell sizes), flushed by mutators when they take a page.
    pub(crate) bytes_allocated: AtomicU64,
    /// `bytes_allocated` when the last cycle's initial mark ran.
    pub(crate) allocated_at_cycle_start: AtomicU64,
    /// Bytes the last cycle found live (marked, plus allocated during the cycle).
    pub(crate) live_estimate: AtomicU64,
    pub(crate) id: usize,
}

/// A heap handle: cheap to clone, `Send + Sync`. The heap (and its collector thread) lives
/// until the last handle and the last mutator are gone.
#[derive(Clone)]
pub struct Heap {
    pub(crate) inner: Arc<HeapInner>,
}

impl std::fmt::Debug for Heap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heap")
            .field("base", &format_args!("{:#x}", self.inner.base))
            .field("pages", &self.inner.pages)
            .field("barrier", &self.inner.config.barrier)
            .finish()
    }
}

static NEXT_HEAP_ID: AtomicUsize = AtomicUsize::new(1);

impl Heap {
    /// Maps the heap, builds its tracker and starts its collector thread.
    pub fn new(config: HeapConfig) -> Result<Heap> {
        config.validate()?;
        // 2 MiB alignment lets huge pages line up with the heap when they are asked for.
        let region = Region::with_alignment(config.heap_bytes, 2 << 20)?;
        let advice = if config.huge_pages {
            Advice::HugePage
        } else {
            Advice::NoHugePage
        };
        region.advise(region.base(), region.len(), advice)?;
        let base = region.base();
        let pages = region.pages();
        let tracker = barrier::build(config.barrier, base, region.len(), &config.tracker)?;
        let store_barrier = tracker
            .as_ref()
            .map(|t| t.store_barrier())
            .unwrap_or(DynBarrier::None);
        let granules = region.len() / GRANULE;
        let inner = Arc::new(HeapInner {
            tracker,
            store_barrier,
            base,
            pages,
            page_table: PageTable::new(pages),
            owner: (0..pages).map(|_| AtomicU8::new(PAGE_UNOWNED)).collect(),
            pool: Mutex::new(PagePool::new(pages)),
            avail: std::array::from_fn(|_| Mutex::new(Vec::new())),
            alloc_bits: Bitmap::new(granules),
            mark_bits: [Bitmap::new(granules), Bitmap::new(granules)],
            alloc_epoch: AtomicUsize::new(0),
            collector: Collector::new()?,
            bytes_allocated: AtomicU64::new(0),
            allocated_at_cycle_start: AtomicU64::new(0),
            live_estimate: AtomicU64::new(0),
            id: NEXT_HEAP_ID.fetch_add(1, Ordering::Relaxed),
            region,
            config,
        });
        Collector::start(&inner)?;
        Ok(Heap { inner })
    }

    /// The configuration the heap was built with.
    pub fn config(&self) -> &HeapConfig {
        &self.inner.config
    }

    /// The write barrier in use.
    pub fn barrier(&self) -> BarrierKind {
        self.inner.config.barrier
    }

    /// `[base, end)` of the heap mapping.
    pub fn range(&self) -> (usize, usize) {
        (self.inner.base, self.inner.region.end())
    }

    /// Runs a full collection cycle that starts after this call, and returns when it is
    /// done. Callable from a thread that has a [`crate::Mutator`] of this heap: it is then
    /// at a safepoint for the duration.
    pub fn collect(&self) {
        crate::mutator::while_blocked(&self.inner, || self.inner.collector.collect_and_wait());
    }

    /// Time since the heap was created: the origin of [`crate::Pause::start`].
    pub fn uptime(&self) -> std::time::Duration {
        self.inner.collector.uptime()
    }

    /// A snapshot of the statistics so far.
    pub fn stats(&self) -> Stats {
        self.inner.collector.stats(&self.inner)
    }

    /// Whether `obj` is the start of a live (allocated) object of this heap.
    pub fn is_live(&self, obj: ObjRef) -> bool {
        self.inner.check_obj(obj.addr()).is_ok()
    }

    /// Pages not in the free-page pool.
    pub fn pages_in_use(&self) -> usize {
        self.inner.pages - self.inner.pool.lock().free_pages()
    }

    /// Number of live (allocated) objects; walks the allocation bitmap.
    pub fn live_objects(&self) -> usize {
        self.inner.alloc_bits.count()
    }
}

impl HeapInner {
    /// The allocation-bitmap index of `addr`.
    #[inline]
    pub(crate) fn granule(&self, addr: usize) -> usize {
        (addr - self.base) >> GRANULE_SHIFT
    }

    /// The page index of `addr`.
    #[inline]
    pub(crate) fn page_of(&self, addr: usize) -> usize {
        (addr - self.base) >> PAGE_SHIFT
    }

    /// The address of page `p`.
    #[inline]
    pub(crate) fn page_addr(&self, p: usize) -> usize {
        self.base + (p << PAGE_SHIFT)
    }

    /// The cell size of the object starting at `addr`, from the page table.
    pub(crate) fn cell_bytes(&self, addr: usize) -> usize {
        match self.page_table.get(self.page_of(addr)) {
            PageKind::Small { class } => CLASS_SIZES[class],
            PageKind::LargeHead { pages } => pages * PAGE_SIZE,
            _ => 0,
        }
    }

    /// `Ok` if `addr` is the start of an allocated object of this heap.
    #[inline]
    pub(crate) fn check_obj(&self, addr: usize) -> Result<()> {
        if !self.region.contains(addr)
            || addr % GRANULE != 0
            || !self.alloc_bits.get(self.granule(addr))
        {
            return Err(Error::StaleRef(addr));
        }
        let page_start = addr & !(PAGE_SIZE - 1);
        let ok = match self.page_table.get(self.page_of(addr)) {
            PageKind::Small { class } => (addr - page_start) % CLASS_SIZES[class] == 0,
            PageKind::LargeHead { .. } => addr == page_start,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::StaleRef(addr))
        }
    }

    /// Adds a mutator's allocation count and requests a collection when the estimated
    /// occupancy (live after the last cycle + allocated since it started) crosses the
    /// trigger, or when the free-page pool runs low.
    pub(crate) fn account(&self, bytes: u64) {
        let total = self.bytes_allocated.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let since = total.saturating_sub(self.allocated_at_cycle_start.load(Ordering::Relaxed));
        let used = self.live_estimate.load(Ordering::Relaxed) + since;
        if used as f64 >= self.config.trigger * self.region.len() as f64 {
            self.collector.request();
        }
    }

    /// Takes a run of pages from the pool, zeroing them if they held objects before;
    /// requests a collection when occupancy crosses the trigger.
    fn take_pages(&self, n: usize) -> Option<usize> {
        let (start, needs_zero, free_after) = {
            let mut pool = self.pool.lock();
            let (start, z) = pool.take(n)?;
            (start, z, pool.free_pages())
        };
        if 1.0 - free_after as f64 / self.pages as f64 >= self.config.trigger {
            self.collector.request();
        }
        if needs_zero {
            // SAFETY: the run was just taken from the pool: no object lives there and no
            // other thread allocates in it; the collector skips free pages.
            unsafe { std::ptr::write_bytes(self.page_addr(start) as *mut u8, 0, n * PAGE_SIZE) };
        }
        Some(start)
    }

    /// Finds a page with free cells of `class` for a mutator, marking it owned.
    pub(crate) fn acquire_small_page(&self, class: usize) -> Option<usize> {
        loop {
            let Some(p) = self.avail[class].lock().pop() else {
                break;
            };
            if self.owner[p]
                .compare_exchange(
                    PAGE_UNOWNED,
                    PAGE_MUTATOR,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                if self.page_table.get(p) == (PageKind::Small { class }) {
                    return Some(p);
                }
                self.owner[p].store(PAGE_UNOWNED, Ordering::Release);
            }
        }
        let p = self.take_pages(1)?;
        // A mutator holding a stale list entry may own this free page for an instant
        // (it checks the kind and lets go): wait for it rather than overwrite its claim.
        while self.owner[p]
            .compare_exchange(
                PAGE_UNOWNED,
                PAGE_MUTATOR,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            std::hint::spin_loop();
        }
        self.page_table.set(p, PageKind::Small { class });
        Some(p)
    }

    /// Gives up a mutator's claim on a small page.
    pub(crate) fn release_small_page(&self, p: usize) {
        self.owner[p].store(PAGE_UNOWNED, Ordering::Release);
    }

    /// Claims the first free cell of page `p` at or after cell `from`; returns its index.
    /// Sets the mark bit of the allocation epoch first (allocate black), then claims the
    /// allocation bit; see the module docs for why in that order.
    pub(crate) fn claim_cell(&self, p: usize, class: usize, from: usize) -> Option<usize> {
        let cs = CLASS_SIZES[class];
        let cells = PAGE_SIZE / cs;
        let page = self.page_addr(p);
        let marks = &self.mark_bits[self.alloc_epoch.load(Ordering::Relaxed)];
        for i in from..cells {
            let g = self.granule(page + i * cs);
            if self.alloc_bits.get(g) {
                continue;
            }
            marks.set(g);
            if !self.alloc_bits.set(g) {
                return Some(i);
            }
        }
        None
    }

    /// Allocates a large object of `bytes`; returns its address, header not yet written.
    pub(crate) fn alloc_large(&self, bytes: usize) -> Option<usize> {
        let n = bytes.div_ceil(PAGE_SIZE);
        let start = self.take_pages(n)?;
        for k in 1..n {
            self.page_table
                .set(start + k, PageKind::LargeTail { back: k });
        }
        self.page_table.set(start, PageKind::LargeHead { pages: n });
        let addr = self.page_addr(start);
        let g = self.granule(addr);
        self.mark_bits[self.alloc_epoch.load(Ordering::Relaxed)].set(g);
        self.alloc_bits.set(g);
        Some(addr)
    }

    /// Sweeps one small-object page: frees (zeroes the header of, clears the allocation
    /// bit of) every allocated cell without a mark in `marks`. Returns the bytes freed.
    /// Frees the page, or lists it as having free cells, unless a mutator owns it.
    pub(crate) fn sweep_small_page(&self, p: usize, class: usize, marks: &Bitmap) -> usize {
        let exclusive = self.owner[p]
            .compare_exchange(
                PAGE_UNOWNED,
                PAGE_SWEEPER,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok();
        let cs = CLASS_SIZES[class];
        let page = self.page_addr(p);
        let mut freed = 0;
        let mut live = 0;
        for i in 0..PAGE_SIZE / cs {
            let addr = page + i * cs;
            let g = self.granule(addr);
            // Allocation bit first (Acquire): an allocation set its mark bit before it.
            if !self.alloc_bits.get(g) {
                continue;
            }
            if marks.get(g) {
                live += 1;
                continue;
            }
            // SAFETY: an allocated, unmarked cell is garbage that no mutator can reach,
            // inside the heap; the tracker is disarmed during the sweep. Zeroing the
            // header before freeing keeps "a free cell's header is zero".
            unsafe { object::header_word(addr) }.store(0, Ordering::Relaxed);
            self.alloc_bits.clear(g);
            freed += cs;
        }
        if exclusive {
            if live == 0 {
                self.page_table.set(p, PageKind::Free);
                self.pool.lock().give_back(p, 1);
            } else if live < PAGE_SIZE / cs {
                self.avail[class].lock().push(p);
            }
            self.owner[p].store(PAGE_UNOWNED, Ordering::Release);
        }
        freed
    }

    /// Frees a dead large object starting at page `p` spanning `n` pages.
    pub(crate) fn free_large(&self, p: usize, n: usize) {
        self.alloc_bits.clear(self.granule(self.page_addr(p)));
        for k in 0..n {
            self.page_table.set(p + k, PageKind::Free);
        }
        self.pool.lock().give_back(p, n);
    }

    /// Forgets the lists of pages with free cells (the sweep rebuilds them).
    pub(crate) fn reset_avail_lists(&self) {
        for list in &self.avail {
            list.lock().clear();
        }
    }
}
