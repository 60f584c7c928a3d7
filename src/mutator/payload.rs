//! A mutator's access to object payloads: the checked byte copies a learner starts
//! with, typed reads and writes of plain scalars ([`Scalar`]) for a runtime author, their
//! unchecked forms for a compiled language's loads and stores, and the raw pointer for
//! what neither covers.
//!
//! Payload bytes hold no references, so no store path runs for them; a page tracker still
//! sees a payload write (it dirties the page), which costs a fault while the page is
//! protected, as any write does.

use super::Mutator;
use crate::barrier::StoreBarrier;
use crate::error::{Error, Result};
use crate::heap::object::{self, ObjRef};

mod sealed {
    pub trait Sealed {}
}

/// A plain value a payload holds: an integer or a float, read and written by value, in
/// the machine's byte order and without any alignment requirement (a payload may start
/// at any 8-byte boundary after the reference slots). Implemented for the primitive
/// integers and floats only: a type with padding, pointers or invalid bit patterns could
/// not be read back from arbitrary bytes.
pub trait Scalar: Copy + sealed::Sealed + 'static {}

macro_rules! scalars {
    ($($t:ty)*) => {$(
        impl sealed::Sealed for $t {}
        impl Scalar for $t {}
    )*};
}
scalars!(u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize f32 f64);

impl<B: StoreBarrier> Mutator<B> {
    /// The address of payload bytes `offset..offset + len` of `obj`, checking that `obj`
    /// is a live object of this heap and that the range is inside its payload.
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

    /// A raw pointer to the payload of `obj`, with its length.
    ///
    /// # Handing it to the kernel
    /// A system call that writes the payload (`read(2)`, `recv(2)`, `pread(2)`, ...) is
    /// a *kernel* write, and a page tracker may have the page write-protected: while a
    /// cycle marks, from its arm to its disarm (a write unprotects a page until the next
    /// harvest protects it again). What such a write does then depends on the barrier (the
    /// `read(2)` row of the edge table in [`crate::barrier`], tested in `tests/barrier/edges.rs`
    /// and `tests/collector/payload_io.rs`):
    /// - `none`, `card-table`, `write-watch`: nothing is ever protected; the call works.
    /// - `uffd-wp`, full mode (the default where allowed): the kernel's write faults like
    ///   a user write; the calling thread waits in the system call until the fault is
    ///   served (by the service thread, or by the collector in the `collector` layout),
    ///   then the call completes and the page is recorded.
    /// - `uffd-wp` in user-mode-only mode (asked for, or the fallback when full mode is
    ///   refused; [`crate::barrier::TrackerStats::uffd`] says which): the call fails with
    ///   `EFAULT`.
    /// - `uffd-wp-async`: the kernel resolves the fault itself; the call works and the
    ///   page is recorded.
    /// - `uffd-wp-sigbus`, `mprotect`: no signal can be delivered for a kernel access, so
    ///   the call fails with `EFAULT` (or, if it wrote some bytes before the protected
    ///   page, returns a short count) whenever a cycle has the page protected.
    ///
    /// So a program that must work on every barrier does not hand this pointer to the
    /// kernel: it reads into a buffer of its own, then copies the bytes in with
    /// [`Mutator::write_bytes`], a user-mode write that every barrier handles:
    ///
    /// ```
    /// use std::io::Read;
    /// use barrierlab::{BarrierKind, Heap, HeapConfig};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let heap = Heap::new(HeapConfig::new().heap_bytes(1 << 20).barrier(BarrierKind::Mprotect))?;
    /// let mut m = heap.mutator();
    /// let obj = m.alloc(0, 16)?;
    /// m.push_root(obj)?;
    /// let mut input: &[u8] = b"sixteen bytes!!!"; // a file, a socket, a pipe
    /// let mut buf = [0u8; 16];
    /// input.read_exact(&mut buf)?; // the kernel writes the program's own buffer
    /// m.write_bytes(obj, 0, &buf)?; // the payload is written in user mode
    /// let mut back = [0u8; 16];
    /// m.read_bytes(obj, 0, &mut back)?;
    /// assert_eq!(&back, b"sixteen bytes!!!");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Reading from the pointer (a `write(2)` of the payload) is never affected: the
    /// trackers protect against writes only.
    pub fn payload_ptr(&self, obj: ObjRef) -> Result<(*mut u8, usize)> {
        let h = self.header(obj)?;
        let start = self.payload_range(obj, 0, 0)?;
        Ok((start as *mut u8, h.payload))
    }

    /// The scalar at byte `offset` of `obj`'s payload: checked like
    /// [`Mutator::read_bytes`] (a live object of this heap, the value inside its
    /// payload), without a buffer.
    ///
    /// ```
    /// use barrierlab::{Heap, HeapConfig};
    ///
    /// # fn main() -> barrierlab::Result<()> {
    /// let heap = Heap::new(HeapConfig::new().heap_bytes(1 << 20))?;
    /// let mut m = heap.mutator();
    /// let node = m.alloc(2, 16)?; // two reference slots, a key and a weight
    /// m.write_payload(node, 0, 42u64)?;
    /// m.write_payload(node, 8, 0.5f64)?;
    /// assert_eq!(m.read_payload::<u64>(node, 0)?, 42);
    /// assert_eq!(m.read_payload::<f64>(node, 8)?, 0.5);
    /// assert!(m.read_payload::<u64>(node, 9).is_err()); // past the payload's end
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn read_payload<T: Scalar>(&self, obj: ObjRef, offset: usize) -> Result<T> {
        let at = self.payload_range(obj, offset, std::mem::size_of::<T>())?;
        // SAFETY: inside the live object's payload (checked); any bit pattern is a valid
        // `T` (a `Scalar`); unaligned reads are allowed by `read_unaligned`. Races on
        // payload bytes are the mutators' own, as in `read_bytes`.
        Ok(unsafe { std::ptr::read_unaligned(at as *const T) })
    }

    /// Writes `value` at byte `offset` of `obj`'s payload, checked as
    /// [`Mutator::read_payload`].
    #[inline]
    pub fn write_payload<T: Scalar>(&mut self, obj: ObjRef, offset: usize, value: T) -> Result<()> {
        let at = self.payload_range(obj, offset, std::mem::size_of::<T>())?;
        // SAFETY: as in `read_payload`.
        unsafe { std::ptr::write_unaligned(at as *mut T, value) };
        Ok(())
    }

    /// [`Mutator::read_payload`] without its checks (they run as debug assertions): a
    /// compiled language's load of a scalar field.
    ///
    /// # Safety
    /// `obj` must be a live object of this heap whose payload holds at least
    /// `offset + size_of::<T>()` bytes.
    #[inline(always)]
    pub unsafe fn read_payload_unchecked<T: Scalar>(&self, obj: ObjRef, offset: usize) -> T {
        debug_assert!(
            self.read_payload::<T>(obj, offset).is_ok(),
            "{obj:?} +{offset}"
        );
        // SAFETY: the caller guarantees the object and the range.
        unsafe { std::ptr::read_unaligned(payload_at(obj, offset) as *const T) }
    }

    /// [`Mutator::write_payload`] without its checks (they run as debug assertions): a
    /// compiled language's store of a scalar field.
    ///
    /// # Safety
    /// As for [`Mutator::read_payload_unchecked`].
    #[inline(always)]
    pub unsafe fn write_payload_unchecked<T: Scalar>(
        &mut self,
        obj: ObjRef,
        offset: usize,
        value: T,
    ) {
        debug_assert!(
            self.read_payload::<T>(obj, offset).is_ok(),
            "{obj:?} +{offset}"
        );
        // SAFETY: the caller guarantees the object and the range.
        unsafe { std::ptr::write_unaligned(payload_at(obj, offset) as *mut T, value) };
    }
}

/// The address of byte `offset` of a live object's payload, from its header.
///
/// # Safety
/// `obj` must be a live object of a heap.
#[inline(always)]
unsafe fn payload_at(obj: ObjRef, offset: usize) -> usize {
    // SAFETY: the caller guarantees a live object, whose header is valid.
    let nrefs = unsafe { object::load_header(obj.addr()) }.map_or(0, |h| h.nrefs);
    obj.addr() + object::HEADER_BYTES + nrefs * object::SLOT_BYTES + offset
}
