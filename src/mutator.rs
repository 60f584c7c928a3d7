//! Mutators: the threads that allocate and write the heap.
//!
//! One [`Mutator`] per thread (made on the thread that uses it). Everything it does to the heap
//! goes through it: allocation, reference loads and stores (the store runs the barrier's
//! store path), payload bytes, and the root stack, which is all the collector knows of the
//! mutator's own variables. An [`ObjRef`] held only in a Rust variable is not a root: push
//! it on the root stack, or keep it reachable from a rooted object, across any
//! allocation or safepoint.
//!
//! Safepoints are polled at every allocation and at [`Mutator::safepoint`]. Code that
//! blocks (sleep, I/O, a lock another mutator holds) runs inside [`Mutator::blocking`], so
//! that it does not hold up a pause.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::barrier::{DynBarrier, StoreBarrier};
use crate::collector::safepoint::{MutatorShared, Wanted};
use crate::collector::{Cause, Phase};
use crate::error::{Error, Result};
use crate::heap::object::{self, Header, ObjRef};
use crate::heap::size_class::{self, CLASS_SIZES, MAX_SMALL};
use crate::heap::{AllocBuffers, Space};
use crate::runtime::{Heap, HeapInner};

mod heap_methods;
mod payload;
mod registry;
mod roots;

pub use payload::Scalar;
pub use roots::RootScope;

use registry::while_blocked;

/// Full collections an allocation waits for before it reports out of memory. A full
/// collection stops every mutator, returns their allocation buffers, and marks and sweeps
/// the whole heap in one pause, so when it ends every free cell and page is free; other
/// mutators may still take them before this one retries, so it tries again, but a few
/// full collections in a row without room mean the heap is full of live data.
const OOM_COLLECTIONS: usize = 4;

/// A mutator thread's handle on a heap. `B` is its store path: [`DynBarrier`] (chosen at
/// run time, one predictable branch per store) unless built by [`Heap::run_typed`].
pub struct Mutator<B: StoreBarrier = DynBarrier> {
    /// This mutator's allocation buffers (in `shared`; written only by this thread).
    buffers: NonNull<AllocBuffers>,
    /// The heap's safepoint word, polled at every allocation.
    poll: NonNull<AtomicU64>,
    barrier: B,
    heap: Heap,
    shared: Arc<MutatorShared>,
    /// The allocation stall in progress, if the current allocation found the heap full.
    stall: AllocationStall,
    /// While a pre-clean paces the mutators: the pacing period and when this mutator
    /// last started to run in it (`collector/pace.rs`).
    paced_since: Option<(u64, std::time::Instant)>,
    /// Neither `Send` nor `Sync`: a mutator belongs to the thread that made it (the
    /// thread's safepoint bookkeeping refers to it, and it writes its root stack and
    /// buffers without synchronisation).
    _thread_bound: std::marker::PhantomData<*const ()>,
}

/// An allocation that found the heap full while a cycle runs: it waits for the sweep to
/// give room back, possibly several times, and the whole wait, from the first to the
/// allocation that succeeds (or falls back), is one stall in
/// [`crate::Stats::allocation_stalls`].
#[derive(Debug, Default)]
struct AllocationStall {
    since: Option<(std::time::Instant, Phase)>,
}

impl AllocationStall {
    /// Waits for room if a cycle is running or requested (counting this mutator as
    /// stopped meanwhile): `true` to try again; `false`, ending the stall, if there is no
    /// such cycle.
    #[cold]
    fn wait_for_room(&mut self, heap: &Heap) -> Result<bool> {
        let collector = &heap.inner.collector;
        self.since
            .get_or_insert_with(|| (std::time::Instant::now(), collector.phase()));
        let room = while_blocked(|| heap.inner.collector.wait_for_room())?;
        if !room {
            self.end(heap);
        }
        Ok(room)
    }

    /// The allocation went through (or falls back): records the stall, if there was one.
    #[inline]
    fn end(&mut self, heap: &Heap) {
        if let Some((start, phase)) = self.since.take() {
            heap.inner.collector.record_allocation_stall(start, phase);
        }
    }
}

/// Work generic over the store path; see [`Heap::run_typed`].
pub trait MutatorTask {
    /// What the task returns.
    type Output;
    /// Runs with a mutator of the heap's store path.
    fn run<B: StoreBarrier>(self, m: &mut Mutator<B>) -> Self::Output;
}

impl<B: StoreBarrier> Mutator<B> {
    /// A registered, running mutator (see [`Heap::typed_mutator`]).
    pub(crate) fn new(heap: Heap, shared: Arc<MutatorShared>, barrier: B) -> Mutator<B> {
        // SAFETY: this thread owns the new mutator; no other reference to its buffers
        // exists yet.
        let buffers = NonNull::from(unsafe { shared.buffers_mut() });
        let poll = NonNull::from(heap.inner.collector.safepoints.poll_word());
        Mutator {
            buffers,
            poll,
            barrier,
            heap,
            shared,
            stall: AllocationStall::default(),
            paced_since: None,
            _thread_bound: std::marker::PhantomData,
        }
    }

    /// The heap.
    pub fn heap(&self) -> &Heap {
        &self.heap
    }

    fn inner(&self) -> &HeapInner {
        &self.heap.inner
    }

    fn space(&self) -> &Space {
        &self.heap.inner.space
    }

    /// The root stack.
    #[inline(always)]
    fn roots(&self) -> &Vec<usize> {
        // SAFETY: this mutator's own root stack, on its own thread; `&self` rules out a
        // live `&mut` from `roots_mut`.
        unsafe { self.shared.roots_mut() }
    }

    #[inline(always)]
    fn roots_mut(&mut self) -> &mut Vec<usize> {
        // SAFETY: as in `roots`; `&mut self` makes the reference exclusive.
        unsafe { self.shared.roots_mut() }
    }

    /// A safepoint: stops here if the collector asked for a pause. (In a child of `fork`,
    /// where no collector runs, it never stops: see [`Heap`].)
    #[inline]
    pub fn safepoint(&mut self) {
        // SAFETY: the word lives in the heap, which this mutator keeps alive.
        if unsafe { self.poll.as_ref() }.load(Ordering::Relaxed) & 1 == 1
            && self.inner().collector.check_process().is_ok()
        {
            registry::park(self.inner(), &self.shared);
        }
        if self.inner().collector.pace.is_on() {
            self.pace();
        }
    }

    /// Runs `f`, which may block, without holding up a pause of this heap or of any
    /// other heap this thread has a mutator of. `f` cannot use this mutator (it is
    /// borrowed); [`ObjRef`]s must be rooted across the call. If `f` panics, the mutators
    /// are running again (and seen so by their collectors) when the panic leaves.
    pub fn blocking<R>(&mut self, f: impl FnOnce() -> R) -> R {
        while_blocked(f)
    }

    /// Runs a full collection and waits for it (this mutator is at a safepoint meanwhile).
    /// [`Error::CollectorFailed`] if the collector thread has failed;
    /// [`Error::ForkedChild`] in a child of `fork` (see [`Heap`]).
    pub fn collect(&mut self) -> Result<()> {
        self.collect_for(Cause::Explicit)
    }

    fn collect_for(&mut self, cause: Cause) -> Result<()> {
        self.inner().collector.check_process()?;
        let heap = self.heap.clone();
        self.blocking(|| heap.inner.collector.collect_and_wait(cause))
    }

    /// Allocates a zeroed object with `nrefs` null reference slots and `payload_bytes`
    /// zero bytes. Polls a safepoint. A full heap triggers a collection; if the heap is
    /// still full after a full collection, the result is [`Error::OutOfMemory`]. In a
    /// child of `fork`, an allocation that needs more than the mutator's current run is
    /// [`Error::ForkedChild`] (see [`Heap`]).
    ///
    /// The fast path, inlined: one compare of the size class's run, a bump, the header
    /// store (the cell is already zero: see [`crate::heap`]). Everything else is in
    /// `Mutator::alloc_slow`.
    #[inline(always)]
    pub fn alloc(&mut self, nrefs: usize, payload_bytes: usize) -> Result<ObjRef> {
        if nrefs <= MAX_SMALL / object::SLOT_BYTES && payload_bytes <= MAX_SMALL {
            let bytes = object::HEADER_BYTES + nrefs * object::SLOT_BYTES + payload_bytes;
            if let Some(class) = size_class::class_for(bytes) {
                // SAFETY: the word lives in the heap, which this mutator keeps alive.
                let poll = unsafe { self.poll.as_ref() }.load(Ordering::Relaxed);
                // SAFETY: this mutator's own buffers, written only on this thread; the
                // collector reads them only while this mutator is stopped.
                let buf = unsafe { &mut self.buffers.as_mut().classes[class] };
                let addr = buf.cursor;
                if addr < buf.limit && poll & 1 == 0 {
                    buf.cursor = addr + CLASS_SIZES[class];
                    let header = Header {
                        nrefs,
                        payload: payload_bytes,
                    };
                    // SAFETY: `addr` is the next cell of this mutator's reserved run: zero,
                    // inside the heap, written by no other thread. The collector reads it
                    // only after this `Release` store of a non-zero header.
                    unsafe { object::header_word(addr).store(header.encode(), Ordering::Release) };
                    // SAFETY: heap addresses are non-zero.
                    return Ok(unsafe { ObjRef::from_addr_unchecked(addr) });
                }
            }
        }
        self.alloc_slow(nrefs, payload_bytes)
    }

    /// Everything the fast path does not do: the safepoint, size checks, a new run (and
    /// a collection when there is none), large objects.
    #[cold]
    #[inline(never)]
    fn alloc_slow(&mut self, nrefs: usize, payload_bytes: usize) -> Result<ObjRef> {
        // First: in a child of fork, before anything that may lock or wait.
        self.inner().collector.check_process()?;
        self.safepoint();
        let bytes = object::object_size(nrefs, payload_bytes);
        if nrefs >= 1 << 31 || payload_bytes >= 1 << 32 || bytes > self.space().len() {
            return Err(Error::InvalidArgument(format!(
                "object with {nrefs} slots and {payload_bytes} payload bytes ({bytes} bytes) \
                 does not fit this heap ({} bytes)",
                self.space().len()
            )));
        }
        let addr = match size_class::class_for(bytes) {
            Some(c) => self.alloc_small_slow(c, bytes)?,
            None => self.alloc_large(bytes)?,
        };
        let header = Header {
            nrefs,
            payload: payload_bytes,
        };
        // SAFETY: `addr` is a zero cell or span this mutator just took; the collector
        // reads it only after this `Release` store of a non-zero header.
        unsafe { object::header_word(addr).store(header.encode(), Ordering::Release) };
        Ok(ObjRef::from_addr(addr).expect("heap addresses are non-zero"))
    }

    /// A pre-clean that does not converge paces the mutators: having run for a while
    /// in this pacing period since it last waited, this one waits in proportion
    /// (counted as stopped, so that a pause does not wait for it), or until pacing ends
    /// (`collector/pace.rs`). Never in a child of `fork`, where no collector ends it.
    #[cold]
    #[inline(never)]
    fn pace(&mut self) {
        let collector = &self.heap.inner.collector;
        if collector.check_process().is_err() {
            return;
        }
        let (period, now) = (collector.pace.period(), std::time::Instant::now());
        let since = match self.paced_since {
            Some((p, since)) if p == period => since,
            _ => {
                self.paced_since = Some((period, now));
                return;
            }
        };
        let Some(owed) = collector.pace.owed(now - since) else {
            return;
        };
        while_blocked(|| collector.pace.wait(owed));
        collector.record_paced(now);
        self.paced_since = Some((period, std::time::Instant::now()));
    }

    /// Takes a cell of `class`, refilling the run (and collecting) as needed.
    fn alloc_small_slow(&mut self, class: usize, bytes: usize) -> Result<usize> {
        let mut collections = 0;
        loop {
            // SAFETY: as in `alloc`; no other reference to the buffers is alive.
            let buf = unsafe { &mut self.buffers.as_mut().classes[class] };
            if buf.cursor < buf.limit {
                let addr = buf.cursor;
                buf.cursor += CLASS_SIZES[class];
                self.stall.end(&self.heap);
                return Ok(addr);
            }
            let h = &self.heap.inner;
            if h.space.refill(buf, class, h.tracker.as_deref()) {
                h.collector.allocation_poll(&h.space);
                continue;
            }
            if self.stall.wait_for_room(&self.heap)? {
                continue;
            }
            if collections == OOM_COLLECTIONS {
                return Err(self.out_of_memory(bytes));
            }
            // The full collection refills this buffer in its pause if it can, and takes
            // the cell for this allocation.
            self.set_wanted(Wanted::Small(class));
            let collected = self.collect_for(Cause::AllocationFailure);
            // SAFETY: this mutator's own request, on its own thread, running again.
            let granted = std::mem::take(unsafe { self.shared.wanted() });
            collected?;
            if let Wanted::GrantedSmall(addr) = granted {
                self.stall.end(&self.heap);
                return Ok(addr);
            }
            collections += 1;
        }
    }

    fn set_wanted(&mut self, w: Wanted) {
        // SAFETY: this mutator's own request, on its own thread, while it runs.
        unsafe { *self.shared.wanted() = w };
    }

    /// A large object that finds no free run with no cycle running first requests a
    /// cycle of the heap's own kind and waits for its sweep (an allocation stall), and
    /// only if that cycle leaves no run falls back to a full collection: the run it
    /// needs is usually the span of a large object that died since the last cycle
    /// (GCBench's array of the pass before), which any cycle frees, while the bytes the
    /// pacer counts said there was room.
    fn alloc_large(&mut self, bytes: usize) -> Result<usize> {
        let mut collections = 0;
        let mut requested = false;
        while collections <= OOM_COLLECTIONS {
            let h = &self.heap.inner;
            if let Some(a) = h.space.alloc_large(bytes, h.tracker.as_deref()) {
                self.stall.end(&self.heap);
                h.collector.allocation_poll(&h.space);
                return Ok(a);
            }
            if self.stall.wait_for_room(&self.heap)? {
                continue;
            }
            if !requested {
                requested = true;
                h.collector.request();
                continue;
            }
            if collections < OOM_COLLECTIONS {
                // The full collection allocates it in its pause if it can.
                self.set_wanted(Wanted::Large(bytes));
                let collected = self.collect_for(Cause::AllocationFailure);
                // SAFETY: this mutator's own request, on its own thread, running again.
                let granted = std::mem::take(unsafe { self.shared.wanted() });
                collected?;
                if let Wanted::GrantedLarge(a) = granted {
                    return Ok(a);
                }
            }
            collections += 1;
        }
        Err(self.out_of_memory(bytes))
    }

    /// The error for a request of `bytes` that failed after full collections, with the
    /// heap's sizing.
    #[cold]
    fn out_of_memory(&self, bytes: usize) -> Error {
        let h = &self.heap.inner;
        let live = h.collector.live_bytes();
        let mutators = h.collector.safepoints.mutators();
        let each = crate::heap::Space::most_a_mutator_holds();
        Error::OutOfMemory {
            requested: bytes,
            sizing: Some(crate::error::Sizing::new(
                h.space.len(),
                live,
                mutators,
                each,
                bytes,
            )),
        }
    }

    /// The header of `obj`, checking that it is a live object of this heap.
    #[inline]
    fn header(&self, obj: ObjRef) -> Result<Header> {
        self.space().check_obj(obj.addr())?;
        // SAFETY: checked above: a live object of this heap.
        unsafe { object::load_header(obj.addr()) }.ok_or(Error::StaleRef(obj.addr()))
    }

    fn slot_index(&self, obj: ObjRef, i: usize) -> Result<()> {
        let h = self.header(obj)?;
        if i >= h.nrefs {
            return Err(Error::InvalidArgument(format!(
                "slot {i} out of range: {obj:?} has {} reference slots",
                h.nrefs
            )));
        }
        Ok(())
    }

    /// Reference slot `i` of `obj`.
    #[inline]
    pub fn read_ref(&self, obj: ObjRef, i: usize) -> Result<Option<ObjRef>> {
        self.slot_index(obj, i)?;
        // SAFETY: `i` is in range for the live object `obj`.
        let v = unsafe { object::slot(obj.addr(), i) }.load(Ordering::Acquire);
        Ok(ObjRef::from_addr(v))
    }

    /// Stores `value` in reference slot `i` of `obj`: the barriered store.
    #[inline]
    pub fn write_ref(&mut self, obj: ObjRef, i: usize, value: Option<ObjRef>) -> Result<()> {
        self.slot_index(obj, i)?;
        if let Some(v) = value {
            self.space().check_obj(v.addr())?;
        }
        // SAFETY: both checked above.
        unsafe { self.write_ref_unchecked(obj, i, value) };
        Ok(())
    }

    /// The barriered store without the checks of [`Mutator::write_ref`]: what a compiled
    /// language's store is (the slot store, then the barrier's fast path). The workloads
    /// use it; the checks of `write_ref` run as debug assertions.
    ///
    /// # Safety
    /// `obj` must be a live object of this heap with more than `i` slots, and `value`
    /// a live object of this heap or `None`.
    #[inline(always)]
    pub unsafe fn write_ref_unchecked(&mut self, obj: ObjRef, i: usize, value: Option<ObjRef>) {
        debug_assert!(self.slot_index(obj, i).is_ok(), "{obj:?} slot {i}");
        debug_assert!(value.is_none_or(|v| self.header(v).is_ok()), "{value:?}");
        // SAFETY: the caller guarantees the slot exists.
        let slot: &AtomicUsize = unsafe { object::slot(obj.addr(), i) };
        slot.store(value.map_or(0, ObjRef::addr), Ordering::Release);
        // SAFETY: the slot is in this heap, whose tracker lives as long as the heap,
        // which this mutator keeps alive.
        unsafe { self.barrier.on_store(slot as *const AtomicUsize as usize) };
    }

    /// Reference slot `i` of `obj` without the checks of [`Mutator::read_ref`] (a
    /// compiled language's load; the checks run as debug assertions).
    ///
    /// # Safety
    /// `obj` must be a live object of this heap with more than `i` slots.
    #[inline(always)]
    pub unsafe fn read_ref_unchecked(&self, obj: ObjRef, i: usize) -> Option<ObjRef> {
        debug_assert!(self.slot_index(obj, i).is_ok(), "{obj:?} slot {i}");
        // SAFETY: the caller guarantees the slot exists.
        let v = unsafe { object::slot(obj.addr(), i) }.load(Ordering::Acquire);
        ObjRef::from_addr(v)
    }

    /// Number of reference slots and payload bytes of `obj`.
    pub fn shape(&self, obj: ObjRef) -> Result<(usize, usize)> {
        let h = self.header(obj)?;
        Ok((h.nrefs, h.payload))
    }
}

impl<B: StoreBarrier> Drop for Mutator<B> {
    fn drop(&mut self) {
        if self.inner().collector.check_process().is_err() {
            // A child of fork: the heap's locks may be held for good by threads that
            // were not copied, and no collector reads this mutator; leave it as it is
            // (the heap is leaked in the child, see `Heap`).
            registry::forget_mutator(&self.shared);
            return;
        }
        // SAFETY: this mutator's own buffers; it is still running, so the collector does
        // not read them now.
        let bufs = unsafe { self.buffers.as_mut() };
        for (class, b) in bufs.classes.iter_mut().enumerate() {
            self.heap.inner.space.retire(b, class);
        }
        let sp = &self.heap.inner.collector.safepoints;
        sp.leave(&self.shared);
        sp.unregister(&self.shared);
        registry::forget_mutator(&self.shared);
    }
}
