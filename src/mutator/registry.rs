//! The mutators each thread runs, with their heaps.
//!
//! A thread that waits (for a collection, for room, at a safepoint, or in
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
        enter_all(&self.mutators);
    }
}

/// Registers a new mutator of this thread, of the heap `inner`, and counts it as
/// running together with the thread's other running mutators: all leave, the new one
/// joins them, and all enter at once (see [`enter_all`]), so that if its heap pauses
/// now, the thread waits as stopped for every heap, not as a running mutator of the
/// others.
pub(super) fn register_entering(inner: &Arc<HeapInner>, shared: &Arc<MutatorShared>) {
    let mut left = Left::leave_all();
    register(inner, shared);
    left.mutators.push((inner.clone(), shared.clone()));
    drop(left);
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
