//! The mutators each thread runs, with their heaps.
//!
//! A thread that waits (for a collection, for room, or in
//! [`Mutator::blocking`](super::Mutator::blocking)) must count as stopped for every heap
//! it has a running mutator of: otherwise two threads, each waiting for a collection of
//! one heap while holding a running mutator of the other, would wait for each other for
//! ever. So each thread keeps a registry of its mutators (`ACTIVE`), filled when
//! [`Heap::typed_mutator`](crate::Heap::typed_mutator) makes one ([`register`]) and
//! emptied when it drops ([`forget_mutator`]), and every wait runs inside
//! [`while_blocked`].

use std::cell::RefCell;
use std::sync::Arc;

use crate::collector::safepoint::MutatorShared;
use crate::runtime::HeapInner;

thread_local! {
    /// The mutators of this thread, with their heaps (see the module docs).
    static ACTIVE: RefCell<Vec<(Arc<HeapInner>, Arc<MutatorShared>)>> = const { RefCell::new(Vec::new()) };
}

/// Registers a new mutator of this thread, of the heap `inner`. A thread whose
/// thread-locals are being destroyed cannot wait for a collection anyway, so then it is
/// not registered: the registry is only for [`while_blocked`].
pub(super) fn register(inner: &Arc<HeapInner>, shared: &Arc<MutatorShared>) {
    let _ = ACTIVE.try_with(|a| a.borrow_mut().push((inner.clone(), shared.clone())));
}

/// Forgets a mutator of this thread (it is being dropped). Safe during thread exit: if
/// the registry is already destroyed, there is nothing to forget.
pub(super) fn forget_mutator(shared: &Arc<MutatorShared>) {
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
        for (h, m) in &self.mutators {
            h.collector.safepoints.enter(m);
        }
    }
}

/// Runs `f` with every running mutator of this thread counted as stopped.
pub(crate) fn while_blocked<R>(f: impl FnOnce() -> R) -> R {
    let _left = Left::leave_all();
    f()
}
