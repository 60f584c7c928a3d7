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

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::barrier::{DynBarrier, StoreBarrier};
use crate::collector::safepoint::MutatorShared;
use crate::error::{Error, Result};
use crate::heap::object::{self, Header, ObjRef};
use crate::heap::size_class::{self, CLASS_SIZES, NUM_CLASSES};
use crate::heap::{Heap, HeapInner};
use crate::sys::PAGE_SIZE;

const NO_PAGE: usize = usize::MAX;

/// Full collections an allocation waits for before it reports out of memory: other
/// mutators keep allocating during a collection (black), so one may not be enough for
/// this one to find room, but a few in a row that free nothing usable mean the heap is
/// full.
const OOM_COLLECTIONS: usize = 3;

thread_local! {
    /// The mutators running on this thread, by heap id, so that [`Heap::collect`] can
    /// count a calling mutator as stopped while it waits.
    static ACTIVE: RefCell<Vec<(usize, Arc<MutatorShared>)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's running mutators of `heap` counted as stopped.
pub(crate) fn while_blocked<R>(heap: &HeapInner, f: impl FnOnce() -> R) -> R {
    let sp = &heap.collector.safepoints;
    let mine: Vec<Arc<MutatorShared>> = ACTIVE.with(|a| {
        a.borrow()
            .iter()
            .filter(|(h, m)| *h == heap.id && sp.is_running(m))
            .map(|(_, m)| m.clone())
            .collect()
    });
    for m in &mine {
        sp.leave(m);
    }
    let r = f();
    for m in &mine {
        sp.enter(m);
    }
    r
}

/// A mutator thread's handle on a heap. `B` is its store path: [`DynBarrier`] (chosen at
/// run time, one predictable branch per store) unless built by [`Heap::run_typed`].
pub struct Mutator<B: StoreBarrier = DynBarrier> {
    heap: Heap,
    shared: Arc<MutatorShared>,
    barrier: B,
    current: [usize; NUM_CLASSES],
    cursor: [usize; NUM_CLASSES],
    /// Bytes allocated since the last flush to the heap's counter.
    unflushed: u64,
    /// Neither `Send` nor `Sync`: a mutator belongs to the thread that made it (the
    /// thread's safepoint bookkeeping refers to it).
    _thread_bound: std::marker::PhantomData<*const ()>,
}

impl Heap {
    /// A mutator for the calling thread, with the run-time store path.
    pub fn mutator(&self) -> Mutator {
        self.typed_mutator::<DynBarrier>()
            .expect("the dynamic store path fits every barrier")
    }

    /// A mutator with the store path `B`; `None` if `B` is not this heap's store path.
    pub fn typed_mutator<B: StoreBarrier>(&self) -> Option<Mutator<B>> {
        let barrier = B::from_dyn(self.inner.store_barrier)?;
        let shared = self.inner.collector.safepoints.register();
        ACTIVE.with(|a| a.borrow_mut().push((self.inner.id, shared.clone())));
        self.inner.collector.safepoints.enter(&shared);
        Some(Mutator {
            heap: self.clone(),
            shared,
            barrier,
            current: [NO_PAGE; NUM_CLASSES],
            cursor: [0; NUM_CLASSES],
            unflushed: 0,
            _thread_bound: std::marker::PhantomData,
        })
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

/// Work generic over the store path; see [`Heap::run_typed`].
pub trait MutatorTask {
    /// What the task returns.
    type Output;
    /// Runs with a mutator of the heap's store path.
    fn run<B: StoreBarrier>(self, m: &mut Mutator<B>) -> Self::Output;
}

impl<B: StoreBarrier> Mutator<B> {
    /// The heap.
    pub fn heap(&self) -> &Heap {
        &self.heap
    }

    fn inner(&self) -> &HeapInner {
        &self.heap.inner
    }

    /// A safepoint: stops here if the collector asked for a pause.
    #[inline]
    pub fn safepoint(&mut self) {
        let sp = &self.heap.inner.collector.safepoints;
        if sp.requested() {
            sp.park(&self.shared);
        }
    }

    /// Runs `f`, which may block, without holding up a pause. `f` cannot use this mutator
    /// (it is borrowed); [`ObjRef`]s must be rooted across the call.
    pub fn blocking<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let sp = &self.heap.inner.collector.safepoints;
        sp.leave(&self.shared);
        let r = f();
        sp.enter(&self.shared);
        r
    }

    /// Runs a full collection and waits for it (this mutator is at a safepoint meanwhile).
    pub fn collect(&mut self) {
        let heap = self.heap.clone();
        self.blocking(|| heap.inner.collector.collect_and_wait());
    }

    /// Allocates a zeroed object with `nrefs` null reference slots and `payload_bytes`
    /// zero bytes. Polls a safepoint. A full heap triggers a collection; if the heap is
    /// still full after a full collection, the result is [`Error::OutOfMemory`].
    pub fn alloc(&mut self, nrefs: usize, payload_bytes: usize) -> Result<ObjRef> {
        self.safepoint();
        let bytes = object::object_size(nrefs, payload_bytes);
        if nrefs >= 1 << 31 || payload_bytes >= 1 << 32 || bytes > self.inner().region.len() {
            return Err(Error::InvalidArgument(format!(
                "object with {nrefs} slots and {payload_bytes} payload bytes ({bytes} bytes) \
                 does not fit this heap ({} bytes)",
                self.inner().region.len()
            )));
        }
        let (addr, cell) = match size_class::class_for(bytes) {
            Some(c) => (self.alloc_small(c, bytes)?, CLASS_SIZES[c]),
            None => (
                self.alloc_large(bytes)?,
                bytes.div_ceil(PAGE_SIZE) * PAGE_SIZE,
            ),
        };
        // SAFETY: `addr` is a cell this mutator just claimed: no other thread writes it,
        // the collector reads it only after seeing a non-zero header (written last, with
        // Release), and its header is zero until then.
        unsafe {
            std::ptr::write_bytes(
                (addr + object::HEADER_BYTES) as *mut u8,
                0,
                bytes - object::HEADER_BYTES,
            );
            object::header_word(addr).store(
                Header {
                    nrefs,
                    payload: payload_bytes,
                }
                .encode(),
                Ordering::Release,
            );
        }
        self.unflushed += cell as u64;
        Ok(ObjRef::from_addr(addr).expect("heap addresses are non-zero"))
    }

    fn alloc_small(&mut self, class: usize, bytes: usize) -> Result<usize> {
        let mut collections = 0;
        loop {
            let p = self.current[class];
            if p != NO_PAGE {
                if let Some(i) = self.inner().claim_cell(p, class, self.cursor[class]) {
                    self.cursor[class] = i + 1;
                    return Ok(self.inner().page_addr(p) + i * CLASS_SIZES[class]);
                }
                self.inner().release_small_page(p);
                self.current[class] = NO_PAGE;
            }
            self.flush_allocated();
            match self.inner().acquire_small_page(class) {
                Some(p) => {
                    self.current[class] = p;
                    self.cursor[class] = 0;
                }
                None if collections < OOM_COLLECTIONS => {
                    self.collect();
                    collections += 1;
                }
                None => return Err(Error::OutOfMemory { requested: bytes }),
            }
        }
    }

    fn flush_allocated(&mut self) {
        let n = std::mem::take(&mut self.unflushed);
        self.heap.inner.account(n);
    }

    fn alloc_large(&mut self, bytes: usize) -> Result<usize> {
        self.flush_allocated();
        for _ in 0..OOM_COLLECTIONS {
            if let Some(a) = self.inner().alloc_large(bytes) {
                return Ok(a);
            }
            self.collect();
        }
        self.inner()
            .alloc_large(bytes)
            .ok_or(Error::OutOfMemory { requested: bytes })
    }

    /// The header of `obj`, checking that it is a live object of this heap.
    #[inline]
    fn header(&self, obj: ObjRef) -> Result<Header> {
        self.inner().check_obj(obj.addr())?;
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
            self.inner().check_obj(v.addr())?;
        }
        // SAFETY: both checked above.
        unsafe { self.write_ref_unchecked(obj, i, value) };
        Ok(())
    }

    /// The barriered store without the checks of [`Mutator::write_ref`]: what a compiled
    /// language's store would be (for benchmarks of the store path).
    ///
    /// # Safety
    /// `obj` must be a live object of this heap with more than `i` slots, and `value`
    /// a live object of this heap or `None`.
    #[inline(always)]
    pub unsafe fn write_ref_unchecked(&mut self, obj: ObjRef, i: usize, value: Option<ObjRef>) {
        // SAFETY: the caller guarantees the slot exists.
        let slot: &AtomicUsize = unsafe { object::slot(obj.addr(), i) };
        slot.store(value.map_or(0, ObjRef::addr), Ordering::Release);
        // SAFETY: the slot is in this heap, whose tracker lives as long as the heap,
        // which this mutator keeps alive.
        unsafe { self.barrier.on_store(slot as *const AtomicUsize as usize) };
    }

    /// Number of reference slots and payload bytes of `obj`.
    pub fn shape(&self, obj: ObjRef) -> Result<(usize, usize)> {
        let h = self.header(obj)?;
        Ok((h.nrefs, h.payload))
    }

    fn payload_range(&self, obj: ObjRef, offset: usize, len: usize) -> Result<usize> {
        let h = self.header(obj)?;
        if offset.checked_add(len).is_none_or(|end| end > h.payload) {
            return Err(Error::InvalidArgument(format!(
                "payload range {offset}..{} out of range: {obj:?} has {} payload bytes",
                offset.saturating_add(len),
                h.payload
            )));
        }
        Ok(obj.addr() + object::HEADER_BYTES + h.nrefs * object::SLOT_BYTES + offset)
    }

    /// Copies payload bytes `offset..offset + out.len()` of `obj` into `out`.
    pub fn read_bytes(&self, obj: ObjRef, offset: usize, out: &mut [u8]) -> Result<()> {
        let src = self.payload_range(obj, offset, out.len())?;
        // SAFETY: inside the live object's payload (checked); the collector never reads
        // or writes payloads, and mutators are responsible for their own data races on
        // payload bytes, as with any shared memory.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Writes `data` into the payload of `obj` at `offset`. Payload writes need no store
    /// path (they cannot create edges), but page trackers see them: they dirty the page.
    pub fn write_bytes(&mut self, obj: ObjRef, offset: usize, data: &[u8]) -> Result<()> {
        let dst = self.payload_range(obj, offset, data.len())?;
        // SAFETY: as in `read_bytes`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst as *mut u8, data.len()) };
        Ok(())
    }

    /// A raw pointer to the payload of `obj` (for handing it to a system call such as
    /// `read(2)`), with its length.
    pub fn payload_ptr(&self, obj: ObjRef) -> Result<(*mut u8, usize)> {
        let h = self.header(obj)?;
        let start = self.payload_range(obj, 0, 0)?;
        Ok((start as *mut u8, h.payload))
    }

    /// Pushes a root; returns its index.
    pub fn push_root(&mut self, obj: ObjRef) -> usize {
        let mut roots = self.shared.roots.lock();
        roots.push(obj.addr());
        roots.len() - 1
    }

    /// Pops the top root.
    pub fn pop_root(&mut self) -> Option<ObjRef> {
        self.shared.roots.lock().pop().and_then(ObjRef::from_addr)
    }

    /// Root `i`, if set.
    pub fn root(&self, i: usize) -> Option<ObjRef> {
        self.shared
            .roots
            .lock()
            .get(i)
            .copied()
            .and_then(ObjRef::from_addr)
    }

    /// Sets root `i` (which must exist) to `obj` or null.
    pub fn set_root(&mut self, i: usize, obj: Option<ObjRef>) -> Result<()> {
        let mut roots = self.shared.roots.lock();
        let n = roots.len();
        let r = roots
            .get_mut(i)
            .ok_or_else(|| Error::InvalidArgument(format!("root {i} out of range ({n} roots)")))?;
        *r = obj.map_or(0, ObjRef::addr);
        Ok(())
    }

    /// Number of roots.
    pub fn roots_len(&self) -> usize {
        self.shared.roots.lock().len()
    }

    /// Truncates the root stack to `len` entries.
    pub fn truncate_roots(&mut self, len: usize) {
        self.shared.roots.lock().truncate(len);
    }
}

impl<B: StoreBarrier> Drop for Mutator<B> {
    fn drop(&mut self) {
        for p in self.current.iter_mut() {
            if *p != NO_PAGE {
                self.heap.inner.release_small_page(*p);
                *p = NO_PAGE;
            }
        }
        self.flush_allocated();
        let sp = &self.heap.inner.collector.safepoints;
        sp.leave(&self.shared);
        sp.unregister(&self.shared);
        ACTIVE.with(|a| {
            a.borrow_mut()
                .retain(|(_, m)| !Arc::ptr_eq(m, &self.shared))
        });
    }
}
