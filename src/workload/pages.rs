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

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

use crate::barrier::{
    BareTracker, BarrierConfig, BarrierKind, CardMark, DirtySet, DynBarrier, Idle, NoStoreBarrier,
    StoreBarrier,
};
use crate::error::Result;
use crate::heap::Placement;
use crate::sys::PAGE_SIZE;
use crate::sys::mem::{Advice, Protection, Region};

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

/// A tracker over its own region ([`BareTracker`]), ready to run patterns.
pub struct PageLab {
    bare: BareTracker,
    path: DynBarrier,
    /// Where a round beside another thread puts the writer and the other thread.
    placement: Option<Placement>,
}

impl PageLab {
    /// A populated region of `pages` pages with the tracker `barrier` names over it (a
    /// [`BarrierKind`] converts into its defaults; for the `collector` layout of
    /// `uffd-wp`, a spinning thread stands in for the collector).
    pub fn new(barrier: impl Into<BarrierConfig>, pages: usize) -> Result<PageLab> {
        let bare = BareTracker::new(barrier, pages, pages, Idle::Spin)?;
        let path = bare.store_barrier();
        Ok(PageLab {
            bare,
            path,
            placement: None,
        })
    }

    /// Rounds beside another thread pin the writer to `placement.mutators` and the other
    /// thread to `placement.collector`, so that the TLB shootdowns each CPU receives say
    /// which of the two sent them (the tracker's own threads, if it has any, are not
    /// moved).
    pub fn placed(mut self, placement: Placement) -> PageLab {
        self.placement = Some(placement);
        self
    }

    /// The barrier.
    pub fn kind(&self) -> BarrierKind {
        self.bare.kind()
    }

    /// Runs one round of `pattern` (its `rounds` field is ignored).
    pub fn round(&self, pattern: &PagePattern, order: &[usize]) -> Result<RoundCost> {
        let mut cost = RoundCost::default();
        let t = Instant::now();
        if let Some(tr) = self.bare.tracker() {
            tr.arm()?;
        }
        cost.arm = t.elapsed();
        let pass = || {
            let t = Instant::now();
            match self.path {
                DynBarrier::None => self.stores(NoStoreBarrier, pattern.stores_per_page, order),
                DynBarrier::Card(c) => self.stores::<CardMark>(c, pattern.stores_per_page, order),
                DynBarrier::Watch(c) => self.stores(c, pattern.stores_per_page, order),
            }
            t.elapsed()
        };
        cost.stores = pass();
        cost.steady = pass();
        let t = Instant::now();
        if let Some(tr) = self.bare.tracker() {
            let mut set = DirtySet::default();
            tr.harvest(&mut set, false)?;
            tr.disarm()?;
            cost.dirty_granules = set.granules.len();
        }
        cost.harvest = t.elapsed();
        Ok(cost)
    }

    /// [`round`](PageLab::round) with another thread of this process spinning meanwhile,
    /// as a collector thread marks beside a mutator: a protection change that makes a page
    /// writable must then interrupt that thread's CPU to drop its cached translation (a
    /// TLB shootdown), which the writer waits for. On a machine with one CPU the two
    /// threads share it and nothing is shot down; the caller checks the CPUs it may use.
    pub fn round_beside_running(
        &self,
        pattern: &PagePattern,
        order: &[usize],
    ) -> Result<RoundCost> {
        self.round_beside(pattern, order, |_| Ok(()))
    }

    /// [`round`](PageLab::round) while another thread of this process changes the
    /// protection of a page of its own, back and forth, as fast as it can: each change
    /// interrupts this thread's CPU to drop its cached translations (a TLB shootdown it
    /// receives), as a collector's arms and harvests interrupt a running mutator. What
    /// the receiving end pays per shootdown is the difference to a plain round divided by
    /// the shootdowns counted; the caller counts them.
    pub fn round_shot_at(&self, pattern: &PagePattern, order: &[usize]) -> Result<RoundCost> {
        let own = Region::new(PAGE_SIZE)?;
        // SAFETY: the first word of the fresh, writable page this function owns.
        unsafe { (own.base() as *mut u64).write_volatile(1) };
        self.round_beside(pattern, order, |i| {
            let p = [Protection::Read, Protection::ReadWrite][i % 2];
            own.protect(own.base(), PAGE_SIZE, p)
        })
    }

    /// [`round`](PageLab::round) while another thread of this process changes the
    /// protection of a region of its own in which no page is mapped (its page tables are
    /// kept), back and forth, as fast as it can. Nothing is shot down, since no
    /// translation changes; but while each change walks the region, the process has a TLB
    /// flush pending, as it has while a collector arms, harvests or disarms a heap. A
    /// first write the kernel resolves meanwhile (`uffd-wp-async`) then flushes its
    /// page's translation on the other thread's CPU and waits for it (`do_wp_page`'s
    /// `mm_tlb_flush_pending` check): what the shootdowns the writer sent cost is the
    /// difference to a plain round divided by them; the caller counts them.
    pub fn round_beside_pending_flush(
        &self,
        pattern: &PagePattern,
        order: &[usize],
    ) -> Result<RoundCost> {
        // 64 MiB: a change walks 16,384 empty entries, long against its system call.
        const EMPTY: usize = 64 << 20;
        let own = Region::new(EMPTY)?;
        own.advise(own.base(), EMPTY, Advice::NoHugePage)?;
        // Faulted in, then dropped: the page tables stay, the pages go.
        own.advise(own.base(), EMPTY, Advice::PopulateWrite)?;
        own.advise(own.base(), EMPTY, Advice::DontNeed)?;
        self.round_beside(pattern, order, |i| {
            let p = [Protection::Read, Protection::ReadWrite][i % 2];
            own.protect(own.base(), EMPTY, p)
        })
    }

    /// [`round`](PageLab::round) while another thread runs `step(0)`, `step(1)`, … until
    /// the round ends (an empty step: it spins). The other thread is running before the
    /// round starts, and is told to stop however the round ends.
    fn round_beside(
        &self,
        pattern: &PagePattern,
        order: &[usize],
        step: impl Fn(usize) -> Result<()> + Sync,
    ) -> Result<RoundCost> {
        /// Tells the other thread to stop when dropped, so that a round that panics
        /// does not leave the scope waiting for it forever.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let (started, stop) = (AtomicBool::new(false), AtomicBool::new(false));
        let placement = self.placement;
        let _writer = placement
            .map(|p| crate::sys::cpu::pinned_for_now(p.mutators))
            .transpose()?;
        std::thread::scope(|s| {
            let other = s.spawn(|| -> Result<()> {
                if let Some(p) = placement {
                    crate::sys::cpu::pin_to_cpu(p.collector)?;
                }
                started.store(true, Ordering::Release);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    step(i)?;
                    i += 1;
                    std::hint::spin_loop();
                }
                Ok(())
            });
            let cost = {
                let _stop = Stop(&stop);
                while !started.load(Ordering::Acquire) && !other.is_finished() {
                    std::hint::spin_loop();
                }
                self.round(pattern, order)
            };
            let stepped = other.join().expect("the other thread does not panic");
            stepped.and(cost)
        })
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
        let base = self.bare.base();
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
