//! A tracker alone over a region of its own: no heap, no allocator, no collector. The
//! one harness that the `pages` workload ([`PageLab`](crate::workload::pages::PageLab)),
//! the benches, the examples and the tests build a bare tracker with.
//!
//! What a collector would do for a tracker is done here where the tracker needs it: a
//! tracker whose faults the collector serves ([`DirtyTracker::fault_service`], the
//! `collector` layout of `uffd-wp`) gets a thread that stands in for the collector and
//! serves them for as long as the harness lives. Without it a write to an armed page
//! would block for ever, since nobody else reads the descriptor.
//!
//! Drop order: the stand-in thread is stopped and joined first, then the tracker is
//! dropped (unregistered, its region left writable), then the region is unmapped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::{BarrierConfig, BarrierKind, DirtyTracker, DynBarrier, build};
use crate::error::Result;
use crate::sys::PAGE_SIZE;
use crate::sys::mem::{Advice, Region};

/// What the stand-in collector thread does when there is no fault to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Spins: the shortest round trip, for measurements (it keeps a CPU busy).
    Spin,
    /// Yields the CPU: for tests, which share the machine's CPUs with their writers.
    Yield,
}

/// A tracker of one kind over a fresh region of its own, populated page by page before
/// the tracker is built, and a thread standing in for the collector when the tracker
/// needs its faults served.
pub struct BareTracker {
    kind: BarrierKind,
    /// Declared first: stopped and joined before the tracker drops.
    _server: Option<StandIn>,
    /// Declared before `region`: dropped (unregistered, unprotected) before the unmap.
    tracker: Option<Arc<dyn DirtyTracker>>,
    region: Region,
}

impl std::fmt::Debug for BareTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BareTracker")
            .field("kind", &self.kind)
            .field("base", &format_args!("{:#x}", self.region.base()))
            .field("pages", &(self.region.len() / PAGE_SIZE))
            .finish()
    }
}

impl BareTracker {
    /// The tracker `config` names (a [`BarrierKind`] converts into its defaults) over a
    /// fresh region of `pages` pages (without transparent huge pages), whose first
    /// `populated` pages are written once (the word at each page's start set to 1) before
    /// the tracker is built; the others stay unpopulated. With `idle` the stand-in collector thread, if the tracker needs
    /// one, spins or yields between faults. `BarrierKind::None` has no tracker.
    pub fn new(
        config: impl Into<BarrierConfig>,
        pages: usize,
        populated: usize,
        idle: Idle,
    ) -> Result<BareTracker> {
        let config = config.into();
        let kind = config.kind();
        let region = Region::new(pages * PAGE_SIZE)?;
        region.advise(region.base(), region.len(), Advice::NoHugePage)?;
        for p in 0..populated.min(pages) {
            // SAFETY: an aligned word inside the fresh writable region; populates the page.
            unsafe { ((region.base() + p * PAGE_SIZE) as *mut u64).write_volatile(1) };
        }
        let tracker: Option<Arc<dyn DirtyTracker>> =
            build(&config, region.base(), region.len())?.map(Arc::from);
        let server = tracker
            .as_ref()
            .filter(|t| t.fault_service().is_some())
            .map(|t| StandIn::start(t.clone(), idle));
        Ok(BareTracker {
            kind,
            _server: server,
            tracker,
            region,
        })
    }

    /// The kind.
    pub fn kind(&self) -> BarrierKind {
        self.kind
    }

    /// The tracker (`None` for `BarrierKind::None`).
    pub fn tracker(&self) -> Option<&dyn DirtyTracker> {
        self.tracker.as_deref()
    }

    /// The store path to run after each store into the region.
    pub fn store_barrier(&self) -> DynBarrier {
        self.tracker
            .as_ref()
            .map_or(DynBarrier::None, |t| t.store_barrier())
    }

    /// The region.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The region's first address.
    pub fn base(&self) -> usize {
        self.region.base()
    }
}

/// The thread standing in for the collector: serves the tracker's pending faults until
/// dropped.
struct StandIn {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl StandIn {
    fn start(tracker: Arc<dyn DirtyTracker>, idle: Idle) -> StandIn {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                if tracker.fault_service().map_or(0, |f| f.serve_pending()) == 0 {
                    match idle {
                        Idle::Spin => std::hint::spin_loop(),
                        Idle::Yield => std::thread::yield_now(),
                    }
                }
            }
        });
        StandIn {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
