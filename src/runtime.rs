//! The assembled heap: a `Space`, its dirty tracker, its collector thread, and the
//! [`Heap`] handle users hold. Everything `impl Heap` is here.
//!
//! This is the layer where the parts meet: the space knows nothing of the collector or
//! the mutators, the collector sees a heap only through a `Gc` view, and the
//! [`Mutator`]s are made here. It also keeps, per thread, the mutators
//! that thread runs, so that a thread waiting for a collection counts as stopped for
//! each of them.

use std::cell::RefCell;
use std::sync::Arc;

use crate::barrier::{self, BarrierKind, DirtyTracker, DynBarrier, StoreBarrier};
use crate::collector::safepoint::MutatorShared;
use crate::collector::{self, Cause, Collector, Gc, Phase, Stats};
use crate::error::Result;
use crate::heap::{HeapConfig, ObjRef, Space};
use crate::mutator::{Mutator, MutatorTask};

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
/// collector ([`Heap::collect`], [`Mutator::collect`], an allocation that needs a new
/// run, a large object or a collection, [`Heap::try_mutator`]) returns
/// [`crate::Error::ForkedChild`]; [`Heap::mutator`] panics with that message,
/// [`Heap::wait_for_cycle`] and [`Mutator::safepoint`] return at once. Those checks take
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
        let tracker = barrier::build(config.barrier, space.base(), space.len(), &config.tracker)?;
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
        self.inner.config.barrier
    }

    /// `[base, end)` of the heap mapping.
    pub fn range(&self) -> (usize, usize) {
        (self.inner.space.base(), self.inner.space.end())
    }

    /// Runs a full collection cycle that starts after this call, and returns when it is
    /// done. Callable from a thread that has [`Mutator`]s (of this heap or others): they
    /// are all at a safepoint for the duration. [`crate::Error::CollectorFailed`] if the
    /// collector thread has failed.
    pub fn collect(&self) -> Result<()> {
        self.inner.collector.check_process()?;
        while_blocked(|| self.inner.collector.collect_and_wait(Cause::Explicit))
    }

    /// Waits until no cycle is running or requested (without starting one). Call it with
    /// no mutator running, or it may wait for as long as they keep triggering cycles.
    /// Returns at once in a child of `fork` (see [`Heap`]).
    pub fn wait_for_cycle(&self) {
        if self.inner.collector.check_process().is_ok() {
            while_blocked(|| self.inner.collector.wait_idle());
        }
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

    /// A mutator for the calling thread, with the run-time store path.
    ///
    /// # Panics
    /// In a child of `fork` (see [`Heap`]; [`Heap::try_mutator`] returns the error).
    pub fn mutator(&self) -> Mutator {
        self.try_mutator().unwrap_or_else(|e| panic!("{e}"))
    }

    /// A mutator for the calling thread, with the run-time store path;
    /// [`crate::Error::ForkedChild`] in a child of `fork` (see [`Heap`]).
    pub fn try_mutator(&self) -> Result<Mutator> {
        self.inner.collector.check_process()?;
        Ok(self
            .typed_mutator::<DynBarrier>()
            .expect("the dynamic store path fits every barrier"))
    }

    /// A mutator with the store path `B`; `None` if `B` is not this heap's store path.
    ///
    /// # Panics
    /// In a child of `fork` (see [`Heap`]).
    pub fn typed_mutator<B: StoreBarrier>(&self) -> Option<Mutator<B>> {
        if let Err(e) = self.inner.collector.check_process() {
            panic!("{e}");
        }
        let barrier = B::from_dyn(self.inner.store_barrier)?;
        let sp = &self.inner.collector.safepoints;
        // The new mutator starts blocked; it enters together with this thread's other
        // running mutators (left meanwhile), so that if this heap pauses now, the thread
        // waits for it as stopped for every heap, not as a running mutator of the others.
        let mut left = Left::leave_all();
        let shared = sp.register();
        // A thread whose thread-locals are being destroyed cannot wait for a collection
        // anyway; the registry is only for `while_blocked` and `park`.
        let _ = ACTIVE.try_with(|a| a.borrow_mut().push((self.inner.clone(), shared.clone())));
        left.mutators.push((self.inner.clone(), shared.clone()));
        drop(left);
        Some(Mutator::new(self.clone(), shared, barrier))
    }

    /// Runs `task` on the calling thread with a mutator whose store path is monomorphised
    /// for this heap's barrier: the page trackers' and `None`'s reference store is then a
    /// single `mov`, the card table's a `mov` and a byte store.
    pub fn run_typed<T: MutatorTask>(&self, task: T) -> T::Output {
        match self.inner.store_barrier {
            DynBarrier::None => {
                let mut m = self
                    .typed_mutator::<crate::barrier::NoStoreBarrier>()
                    .expect("store path matches");
                task.run(&mut m)
            }
            DynBarrier::Card(_) => {
                let mut m = self
                    .typed_mutator::<crate::barrier::CardMark>()
                    .expect("store path matches");
                task.run(&mut m)
            }
        }
    }
}

thread_local! {
    /// The mutators running on this thread, with their heaps, so that a thread that
    /// waits (for a collection, for room, at a safepoint, or in [`Mutator::blocking`])
    /// counts as stopped for every heap it has a mutator of: otherwise two threads, each
    /// waiting for a collection or a pause of one heap while holding a running mutator
    /// of the other, would wait for each other for ever.
    static ACTIVE: RefCell<Vec<(Arc<HeapInner>, Arc<MutatorShared>)>> = const { RefCell::new(Vec::new()) };
}

/// Forgets a mutator of this thread (it is being dropped). Safe during thread exit: if
/// the registry is already destroyed, there is nothing to forget.
pub(crate) fn forget_mutator(shared: &Arc<MutatorShared>) {
    let _ = ACTIVE.try_with(|a| a.borrow_mut().retain(|(_, m)| !Arc::ptr_eq(m, shared)));
}

/// Counts this thread's running mutators as stopped while it lives, and as running
/// again when dropped, also when the code in between unwinds: a mutator is never running
/// unseen.
pub(crate) struct Left {
    mutators: Vec<(Arc<HeapInner>, Arc<MutatorShared>)>,
}

impl Left {
    /// Leaves for every running mutator of this thread.
    pub(crate) fn leave_all() -> Left {
        let mutators: Vec<_> = ACTIVE
            .try_with(|a| {
                a.borrow()
                    .iter()
                    .filter(|(h, m)| h.collector.safepoints.is_running(m))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for (h, m) in &mutators {
            h.collector.safepoints.leave(m);
        }
        Left { mutators }
    }
}

impl Drop for Left {
    fn drop(&mut self) {
        enter_all(&self.mutators);
    }
}

/// Counts `mutators` (this thread's, all left) as running again once no heap of theirs
/// pauses. A single mutator enters as usual (parking there if its heap pauses). Several
/// never park one by one: parked at one heap's safepoint, the thread would hold up a
/// pause of another heap as a running mutator of it; so all enter, and if any heap's
/// pause is on, all leave again and the thread waits for that pause to end, counted as
/// stopped for every heap. (A mutator counted as running for a moment touches nothing:
/// it reads the epochs first, and the collector reads its roots only after it saw it
/// stopped or blocked: the Dekker order of `collector/safepoint.rs`.)
fn enter_all(mutators: &[(Arc<HeapInner>, Arc<MutatorShared>)]) {
    if let [(h, m)] = mutators {
        h.collector.safepoints.enter(m);
        return;
    }
    loop {
        for (h, m) in mutators {
            h.collector.safepoints.set_running(m);
        }
        let pausing = mutators.iter().find_map(|(h, _)| {
            let sp = &h.collector.safepoints;
            sp.pause_requested().map(|e| (sp, e))
        });
        let Some((sp, e)) = pausing else {
            return;
        };
        for (h, m) in mutators {
            h.collector.safepoints.leave(m);
        }
        sp.wait_for_resume(e);
    }
}

/// The slow path of `m`'s safepoint poll: `heap` wants a pause. A thread with no other
/// mutator parks as the handshake says; one with mutators of other heaps (or more of
/// this one) waits with all of them counted as stopped (see [`enter_all`]).
#[cold]
pub(crate) fn park(heap: &HeapInner, m: &Arc<MutatorShared>) {
    let alone = ACTIVE
        .try_with(|a| {
            let a = a.borrow();
            a.len() <= 1 || !a.iter().any(|(_, x)| Arc::ptr_eq(x, m))
        })
        .unwrap_or(true);
    if alone {
        heap.collector.safepoints.park(m);
    } else {
        // Leaves every running mutator of this thread, `m` among them; the drop enters
        // them once no heap of theirs pauses.
        drop(Left::leave_all());
    }
}

/// Runs `f` with every running mutator of this thread counted as stopped.
pub(crate) fn while_blocked<R>(f: impl FnOnce() -> R) -> R {
    let _left = Left::leave_all();
    f()
}
