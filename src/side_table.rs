//! Side tables that cost nothing until they are used: an array of atomics on its own
//! anonymous mapping (`MAP_NORESERVE`), so that the kernel commits a page of the table
//! only when it is first written, and a table that cannot be reserved is an error from
//! [`crate::Heap::new`], never an abort. A 1 TiB heap reserves gigabytes of side tables
//! but touches only the part over the pages it uses.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};

use crate::error::Result;
use crate::sys::mem::Region;

/// Types whose all-zero bit pattern is a valid value (the mapping starts zeroed).
///
/// # Safety
/// Implementors must be valid when every byte is zero, and have no drop glue.
pub(crate) unsafe trait Zeroable: Sized {}

// SAFETY: an atomic integer of zero bits is the value 0, and has no drop glue.
unsafe impl Zeroable for AtomicU8 {}
// SAFETY: as above.
unsafe impl Zeroable for AtomicU32 {}
// SAFETY: as above.
unsafe impl Zeroable for AtomicU64 {}

/// `len` zeroed `T`s on a mapping of their own.
pub(crate) struct SideTable<T: Zeroable> {
    region: Region,
    len: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T: Zeroable> SideTable<T> {
    /// Reserves a table of `len` zero entries (at least one page is mapped).
    pub(crate) fn new(len: usize) -> Result<SideTable<T>> {
        let bytes = (len.max(1) * std::mem::size_of::<T>()).next_multiple_of(crate::sys::PAGE_SIZE);
        Ok(SideTable {
            region: Region::new(bytes)?,
            len,
            _t: std::marker::PhantomData,
        })
    }
}

impl<T: Zeroable> std::ops::Deref for SideTable<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // The mapping holds at least `len` `T`s, page aligned (so aligned for `T`),
        // zero-initialised by the kernel, which `Zeroable` makes valid.
        // SAFETY: it lives as long as `self`, and the entries are atomics, only ever
        // accessed through shared references.
        unsafe { std::slice::from_raw_parts(self.region.base() as *const T, self.len) }
    }
}

impl<T: Zeroable> std::fmt::Debug for SideTable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SideTable({} entries)", self.len)
    }
}
