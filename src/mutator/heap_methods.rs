//! The [`Heap`] methods of the calling thread: making a mutator for it, and waiting on
//! its behalf (a collection, the end of a cycle), with every running mutator of the
//! thread counted as stopped meanwhile ([`registry`](super::registry)).
//!
//! Why here and not in `runtime`: these are the mutators' side of the heap. With them
//! here, `runtime` (the assembled heap) imports nothing from `mutator`, and the arrow
//! between the two goes one way: a mutator holds a [`Heap`].

use super::registry;
use super::{Mutator, MutatorTask};
use crate::barrier::{DynBarrier, StoreBarrier};
use crate::collector::Cause;
use crate::error::Result;
use crate::runtime::Heap;

impl Heap {
    /// Runs a full collection cycle that starts after this call, and returns when it is
    /// done. Callable from a thread that has [`Mutator`]s (of this heap or others): they
    /// are all at a safepoint for the duration. [`crate::Error::CollectorFailed`] if the
    /// collector thread has failed.
    pub fn collect(&self) -> Result<()> {
        self.inner.collector.check_process()?;
        registry::while_blocked(|| self.inner.collector.collect_and_wait(Cause::Explicit))
    }

    /// Waits until no cycle is running or requested (without starting one). Call it with
    /// no mutator running, or it may wait for as long as they keep triggering cycles.
    /// Returns at once in a child of `fork` (see [`Heap`]).
    pub fn wait_for_cycle(&self) {
        if self.inner.collector.check_process().is_ok() {
            registry::while_blocked(|| self.inner.collector.wait_idle());
        }
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
        let shared = self.inner.collector.safepoints.register();
        // The new mutator starts blocked and enters together with this thread's other
        // running mutators (see `registry::register_entering`).
        registry::register_entering(&self.inner, &shared);
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
            DynBarrier::Watch(_) => {
                let mut m = self
                    .typed_mutator::<crate::barrier::CardMark<{ crate::sys::PAGE_SHIFT }>>()
                    .expect("store path matches");
                task.run(&mut m)
            }
        }
    }
}
