//! A tracker alone over a bare region: what a store pattern costs under each barrier,
//! with no heap, no allocation and no collector in the way.
//!
//! One round: arm the tracker, perform `stores_per_page` 8-byte stores (each followed by
//! the barrier's store path) on each of `pages` pages, in sequential or random page
//! order, perform the same stores again (the steady state: nothing left to fault), then
//! harvest and disarm. The pages are populated before the first round, so first-touch
//! faults are not counted. This is the experiment behind the crossover: card marking pays
//! per store, a page tracker per dirtied page, so the cost per store of a page tracker
//! falls as `1 / stores_per_page` while the card table's stays flat.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

use crate::barrier::{
    self, BarrierKind, CardMark, DirtySet, DirtyTracker, DynBarrier, NoStoreBarrier, StoreBarrier,
    TrackerOptions,
};
use crate::error::Result;
use crate::sys::PAGE_SIZE;
use crate::sys::mem::{Advice, Region};

/// A store pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagePattern {
    /// Pages written per round.
    pub pages: usize,
    /// Stores to each page per round.
    pub stores_per_page: u64,
    /// Visit pages in a random order (else ascending).
    pub random: bool,
    /// Rounds to measure.
    pub rounds: usize,
}

/// One round's costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundCost {
    /// Arming.
    pub arm: Duration,
    /// The stores (including every fault they took).
    pub stores: Duration,
    /// The same stores again while still armed: pages already dirtied (no fault), cards
    /// already marked; what every store pays in steady state.
    pub steady: Duration,
    /// The harvest and the disarm.
    pub harvest: Duration,
    /// Granules the harvest returned.
    pub dirty_granules: usize,
}

/// A tracker over its own region, ready to run patterns.
pub struct PageLab {
    kind: BarrierKind,
    /// Declared before `region`: dropped (unregistered) before the unmap.
    tracker: Option<Box<dyn DirtyTracker>>,
    path: DynBarrier,
    /// Serves faults for the `collector` layout of `uffd-wp`, standing in for a collector.
    server: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    region: Region,
}

impl PageLab {
    /// A populated region of `pages` pages with the tracker of `kind` over it.
    pub fn new(kind: BarrierKind, pages: usize, options: &TrackerOptions) -> Result<PageLab> {
        let region = Region::new(pages * PAGE_SIZE)?;
        region.advise(region.base(), region.len(), Advice::NoHugePage)?;
        for p in 0..pages {
            // SAFETY: inside the fresh writable region; populates the page.
            unsafe { ((region.base() + p * PAGE_SIZE) as *mut u8).write_volatile(1) };
        }
        let tracker = barrier::build(kind, region.base(), region.len(), options)?;
        let path = tracker
            .as_ref()
            .map_or(DynBarrier::None, |t| t.store_barrier());
        let server = match tracker.as_deref().and_then(|t| t.service_fd()) {
            Some(_) => {
                let stop = Arc::new(AtomicBool::new(false));
                let s = stop.clone();
                let t: &dyn DirtyTracker = tracker.as_deref().expect("checked");
                // SAFETY: the tracker is boxed (stable address) and outlives the thread:
                // `Drop for PageLab` stops and joins the thread before the box is dropped.
                let t: &'static dyn DirtyTracker = unsafe { &*(t as *const dyn DirtyTracker) };
                let handle = std::thread::spawn(move || {
                    while !s.load(Ordering::Acquire) {
                        if t.serve_pending() == 0 {
                            std::hint::spin_loop();
                        }
                    }
                });
                Some((stop, handle))
            }
            None => None,
        };
        Ok(PageLab {
            kind,
            tracker,
            path,
            server,
            region,
        })
    }

    /// The barrier.
    pub fn kind(&self) -> BarrierKind {
        self.kind
    }

    /// Runs one round of `pattern` (its `rounds` field is ignored).
    pub fn round(&self, pattern: &PagePattern, order: &[usize]) -> Result<RoundCost> {
        let mut cost = RoundCost::default();
        let t = Instant::now();
        if let Some(tr) = &self.tracker {
            tr.arm()?;
        }
        cost.arm = t.elapsed();
        let pass = || {
            let t = Instant::now();
            match self.path {
                DynBarrier::None => self.stores(NoStoreBarrier, pattern.stores_per_page, order),
                DynBarrier::Card(c) => self.stores::<CardMark>(c, pattern.stores_per_page, order),
            }
            t.elapsed()
        };
        cost.stores = pass();
        cost.steady = pass();
        let t = Instant::now();
        if let Some(tr) = &self.tracker {
            let mut set = DirtySet::default();
            tr.harvest(&mut set, false)?;
            tr.disarm()?;
            cost.dirty_granules = set.granules.len();
        }
        cost.harvest = t.elapsed();
        Ok(cost)
    }

    /// The page order of a pattern (ascending or a seeded shuffle).
    pub fn order(pattern: &PagePattern, seed: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..pattern.pages).collect();
        if pattern.random {
            order.shuffle(&mut SmallRng::seed_from_u64(seed));
        }
        order
    }

    #[inline(never)]
    fn stores<B: StoreBarrier>(&self, path: B, per_page: u64, order: &[usize]) {
        let base = self.region.base();
        for &p in order {
            let page = base + p * PAGE_SIZE;
            for s in 0..per_page {
                // Spread the stores over the page's 512 words.
                let addr = page + ((s as usize * 8 * 61) & (PAGE_SIZE - 8));
                // SAFETY: an aligned word inside the region.
                let slot = unsafe { &*(addr as *const AtomicUsize) };
                slot.store(s as usize, Ordering::Relaxed);
                // SAFETY: `addr` is in the region the tracker (alive in `self`) covers.
                unsafe { path.on_store(addr) };
            }
        }
    }

    /// Runs `pattern.rounds` rounds and returns each.
    pub fn run(&self, pattern: &PagePattern, seed: u64) -> Result<Vec<RoundCost>> {
        let order = Self::order(pattern, seed);
        (0..pattern.rounds)
            .map(|_| self.round(pattern, &order))
            .collect()
    }
}

impl Drop for PageLab {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.server.take() {
            stop.store(true, Ordering::Release);
            let _ = handle.join();
        }
    }
}
