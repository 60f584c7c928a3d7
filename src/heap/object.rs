//! Object layout and references.
//!
//! An object is one header word, then its reference slots, then its payload bytes:
//!
//! ```text
//! +--------------------------+-----------+-----------+-----+------------------+
//! | header: payload << 32 | n | slot 0    | slot 1    | ... | payload bytes    |
//! +--------------------------+-----------+-----------+-----+------------------+
//!   8 bytes                    8 bytes each (0 = null)       rounded up to 16
//! ```
//!
//! The header is written last when an object is created (`Release`), and a free cell's
//! header is always zero: the collector, which may look at a cell while a mutator is
//! still initialising it, reads the header with `Acquire` and skips a zero one.
//! Reference slots are `AtomicUsize`: on x86-64 a `Release` store and an `Acquire` load
//! are plain `mov`s, and they give the collector's read of a target's header a
//! happens-before edge from the mutator that created it.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Size of the header.
pub const HEADER_BYTES: usize = 8;
/// Size of a reference slot.
pub const SLOT_BYTES: usize = 8;

/// A reference to an object in a heap: its address. `Copy`, and only as valid as the
/// object: once unreachable and swept, using it is an error ([`crate::Error::StaleRef`]),
/// unless the cell has been reused, which this heap cannot detect (as in C).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjRef(NonZeroUsize);

impl ObjRef {
    /// The object's address.
    pub fn addr(self) -> usize {
        self.0.get()
    }

    pub(crate) fn from_addr(addr: usize) -> Option<ObjRef> {
        NonZeroUsize::new(addr).map(ObjRef)
    }

    /// # Safety
    /// `addr` must be non-zero.
    #[inline(always)]
    pub(crate) unsafe fn from_addr_unchecked(addr: usize) -> ObjRef {
        // SAFETY: forwarded to the caller.
        ObjRef(unsafe { NonZeroUsize::new_unchecked(addr) })
    }
}

impl std::fmt::Debug for ObjRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjRef({:#x})", self.0)
    }
}

/// The decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Number of reference slots.
    pub nrefs: usize,
    /// Payload bytes.
    pub payload: usize,
}

impl Header {
    /// Encodes; zero is reserved for "no object", so callers never encode an empty one
    /// (an object has at least its header, and `payload` or `nrefs` may be zero but the
    /// encoding adds a marker bit).
    pub fn encode(self) -> u64 {
        debug_assert!(self.nrefs < 1 << 31 && self.payload < 1 << 32);
        (self.payload as u64) << 32 | (self.nrefs as u64) << 1 | 1
    }

    /// Decodes a non-zero header word.
    pub fn decode(word: u64) -> Option<Header> {
        (word & 1 == 1).then_some(Header {
            nrefs: (word as u32 >> 1) as usize,
            payload: (word >> 32) as usize,
        })
    }

    /// Bytes the object occupies (before rounding to a cell).
    pub fn size(self) -> usize {
        object_size(self.nrefs, self.payload)
    }
}

/// Bytes an object with `nrefs` slots and `payload` bytes occupies, or `usize::MAX` on
/// overflow.
pub fn object_size(nrefs: usize, payload: usize) -> usize {
    nrefs
        .checked_mul(SLOT_BYTES)
        .and_then(|s| s.checked_add(HEADER_BYTES))
        .and_then(|s| s.checked_add(payload))
        .unwrap_or(usize::MAX)
}

/// The header word of the object at `addr`.
///
/// # Safety
/// `addr` must be a 16-aligned address inside a live heap mapping.
#[inline]
pub unsafe fn header_word<'a>(addr: usize) -> &'a AtomicU64 {
    // SAFETY: the caller guarantees `addr` is aligned and mapped; all accesses to header
    // words are atomic.
    unsafe { &*(addr as *const AtomicU64) }
}

/// Reference slot `i` of the object at `addr`.
///
/// # Safety
/// `addr` must be a live object of a live heap with more than `i` slots.
#[inline]
pub unsafe fn slot<'a>(addr: usize, i: usize) -> &'a AtomicUsize {
    // SAFETY: within the object, as the caller guarantees; slots are accessed atomically.
    unsafe { &*((addr + HEADER_BYTES + i * SLOT_BYTES) as *const AtomicUsize) }
}

/// Reads a header word with `Acquire`.
///
/// # Safety
/// As [`header_word`].
#[inline]
pub unsafe fn load_header(addr: usize) -> Option<Header> {
    // SAFETY: forwarded to the caller.
    Header::decode(unsafe { header_word(addr) }.load(Ordering::Acquire))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_are_never_zero() {
        for (n, p) in [
            (0, 0),
            (1, 0),
            (0, 1),
            (3, 100),
            ((1 << 31) - 1, (1 << 32) - 1),
        ] {
            let h = Header {
                nrefs: n,
                payload: p,
            };
            assert_ne!(h.encode(), 0);
            assert_eq!(Header::decode(h.encode()), Some(h));
        }
        assert_eq!(Header::decode(0), None);
        assert_eq!(object_size(2, 5), 8 + 16 + 5);
        assert_eq!(object_size(usize::MAX, 0), usize::MAX);
    }
}
