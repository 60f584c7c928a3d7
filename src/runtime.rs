//! The assembled heap: a `Space`, its dirty tracker, its collector thread, and the
//! [`Heap`] handle users hold.
//!
//! This is the layer where the parts meet: the space knows nothing of the collector or
//! the mutators, and the collector sees a heap only through a `Gc` view. The `Heap`
//! methods that make a [`Mutator`](crate::Mutator) for the calling thread or wait on its
//! behalf ([`Heap::mutator`], [`Heap::collect`], ...) are in `mutator/heap_methods.rs`,
//! with the mutators (and the per-thread registry they keep, `mutator/registry.rs`):
//! this module imports nothing from `mutator`.

use std::sync::Arc;

use crate::barrier::{self, BarrierKind, DirtyTracker, DynBarrier};
use crate::collector::{self, Collector, Gc, Phase, Stats};
use crate::error::Result;
use crate::heap::{HeapConfig, ObjRef, Space};

/// Everything a heap is; shared by its handles, its mutators and its collector thread.
/// Fields drop in order: the collector thread is joined before the tracker is
/// unregistered, and both before the space is unmapped.
pub(crate) struct HeapInner {
    pub(crate) collector: Collector,
    pub(crate) tracker: Option<Box<dyn DirtyTracker>>,
    pub(crate) store_barrier: DynBarrier,
    pub(crate) space: Space,
    pub(crate) config: HeapConfig,
}

impl HeapInner {
    /// The collector's view of this heap.
    pub(crate) fn gc(&self) -> Gc<'_> {
        Gc {
            space: &self.space,
            tracker: self.tracker.as_deref(),
            config: &self.config,
            collector: &self.collector,
        }
    }
}

/// A heap handle: cheap to clone, `Send + Sync`. The heap (and its collector thread) lives
/// until the last handle and the last mutator are gone.
///
/// # A heap and `fork`
/// A heap cannot be used in a child of `fork(2)`: the child gets a copy of the heap's
/// memory, but not its collector thread (nor its marker and fault-service threads;
/// `fork` copies only the thread that calls it), so its first collection would wait for
/// ever. barrierlab detects it instead: in the child, every call that needs the
/// collector ([`Heap::collect`], [`Mutator::collect`](crate::Mutator::collect), an allocation that needs a new
/// run, a large object or a collection, [`Heap::try_mutator`]) returns
/// [`crate::Error::ForkedChild`]; [`Heap::mutator`] panics with that message,
/// [`Heap::wait_for_cycle`] and [`Mutator::safepoint`](crate::Mutator::safepoint) return at once. Those checks take
/// no lock and allocate nothing, so they are safe in the child of a multi-threaded
/// process (where a lock another thread held at the fork stays held). Dropping the
/// heap's last handle in the child leaks it (its threads cannot be joined there). The
/// other calls (stores, reads, a cell from a run the mutator already holds) act on the
/// child's copy, unchecked; nothing is written back to the parent. Make a new heap in
/// the child, or `exec`. (The detection relies on `fork(3)`'s `pthread_atfork`
/// handlers; a child made by a raw `clone` system call is not detected.)
#[derive(Clone)]
pub struct Heap {
    pub(crate) inner: Arc<HeapInner>,
}

impl Drop for Heap {
    fn drop(&mut self) {
        // In a child of fork the last handle must not drop the heap: dropping joins its
        // collector (and the tracker's service) thread, which exists only in the parent.
        if self.inner.collector.check_process().is_err() {
            std::mem::forget(self.inner.clone());
        }
    }
}

impl std::fmt::Debug for Heap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heap")
            .field("base", &format_args!("{:#x}", self.inner.space.base()))
            .field("pages", &self.inner.space.pages())
            .field("barrier", &self.inner.config.barrier)
            .finish()
    }
}

impl Heap {
    /// Maps the heap, builds its tracker and starts its collector thread.
    pub fn new(config: HeapConfig) -> Result<Heap> {
        config.validate()?;
        let space = Space::new(config.heap_bytes, config.huge_pages)?;
        // Built before the placement below: a tracker's own thread (`uffd-wp`'s fault
        // service) keeps this thread's CPUs.
        let tracker = barrier::build(&config.barrier, space.base(), space.len())?;
        // The collector and its marker helpers inherit the mask of the thread that starts
        // them: this one, pinned to the collector's CPU until they have started.
        let _placed = config
            .placement
            .map(|p| crate::sys::cpu::pinned_for_now(p.collector))
            .transpose()?;
        #[cfg(feature = "lab-internals")]
        if config.testing.forget_hand_outs
            && let Some(knobs) = tracker.as_ref().and_then(|t| t.test_knobs())
        {
            knobs.forget_hand_outs(true);
        }
        let store_barrier = tracker
            .as_ref()
            .map(|t| t.store_barrier())
            .unwrap_or(DynBarrier::None);
        let inner = Arc::new(HeapInner {
            collector: Collector::new(&config)?,
            tracker,
            store_barrier,
            space,
            config,
        });
        let weak = Arc::downgrade(&inner);
        // Barrier-only mode: the duty cycle's periods run while no cycle is wanted.
        let idle = inner.config.duty_cycle.map(|duty| {
            let weak = weak.clone();
            move |idle: &collector::Idle<'_>| {
                let Some(h) = weak.upgrade() else {
                    return false;
                };
                collector::duty_period(&h.gc(), duty, idle);
                true
            }
        });
        inner.collector.start(
            move |n, cause| {
                let Some(h) = weak.upgrade() else {
                    return false;
                };
                collector::run_cycle(&h.gc(), n, cause);
                true
            },
            idle,
        )?;
        Ok(Heap { inner })
    }

    /// The configuration the heap was built with.
    pub fn config(&self) -> &HeapConfig {
        &self.inner.config
    }

    /// The write barrier in use.
    pub fn barrier(&self) -> BarrierKind {
        self.inner.config.barrier.kind()
    }

    /// `[base, end)` of the heap mapping.
    pub fn range(&self) -> (usize, usize) {
        (self.inner.space.base(), self.inner.space.end())
    }

    /// What the collector is doing now (a moment's snapshot).
    pub fn phase(&self) -> Phase {
        self.inner.collector.phase()
    }

    /// Time since the heap was created: the origin of [`crate::Pause::start`].
    pub fn uptime(&self) -> std::time::Duration {
        self.inner.collector.uptime()
    }

    /// A snapshot of the statistics so far.
    pub fn stats(&self) -> Stats {
        self.inner.collector.stats(&self.inner.gc())
    }

    /// Whether `obj` is the start of a live (allocated) object of this heap.
    pub fn is_live(&self, obj: ObjRef) -> bool {
        self.inner.space.check_obj(obj.addr()).is_ok()
    }

    /// Pages not in the free-page pool.
    pub fn pages_in_use(&self) -> usize {
        self.inner.space.pages_in_use()
    }

    /// Number of live (allocated and initialised) objects; walks the heap.
    pub fn live_objects(&self) -> usize {
        self.inner.space.live_objects()
    }
}
