//! Tracing one grey object: scanning its slots and marking its children
//! ([`scan_entry`], [`scan`], [`rescan_in_place`]), and the prefetching pop that hides the header misses
//! ([`Ahead`]). Shared by the collector thread's mark (`mark.rs`) and the parallel drain
//! of the marker threads (`marker_pool.rs`); `#[inline]` throughout, since they are the
//! inner loop of both.

use std::sync::atomic::Ordering;

use crate::bitmap::Bitmap;
use crate::heap::Space;
use crate::heap::object::{self, Header};

/// Grey objects whose first cache line is fetched before the one being scanned: a popped
/// object waits this many scans before its own, which hides most of the miss on its
/// header (marking is bound by those misses: half of the marker's samples sat on the
/// header load before this).
pub(super) const FETCH_AHEAD: usize = 32;

/// The tag of a grey-stack entry that is a dirty granule to rescan, not an object:
/// remark pushes one such entry per dirty granule ([`granule_entry`]), and whichever
/// thread of the pause's parallel drain pops it rescans the granule in place
/// ([`rescan_in_place`]). So remark's rescan is shared by the drain's threads like any
/// tracing, instead of running on the collector thread alone before it, and it costs one
/// push per granule, not one per object. (Pushing each small marked object of a dirty
/// granule, to be scanned whole by whoever pops it, cost about five times as much per
/// object: GCBench's remarks rescanned 1,000–1,500 pages of 32-byte objects, all
/// allocated black during the cycle, in 3–4 ms.) Cells are 16-byte aligned and granules
/// at least 64-byte aligned, so the tag and the granule's shift fit in the low bits.
pub(super) const GRANULE: usize = 1;
/// Where an entry's granule shift sits (bits 1–5; shifts of 6 to 31).
const SHIFT_AT: u32 = 1;
const SHIFT_MASK: usize = 0x1f;

/// The grey-stack entry of the granule `[lo, lo + 2^shift)`, for [`scan_entry`].
#[inline]
pub(super) fn granule_entry(lo: usize, shift: u32) -> usize {
    debug_assert!((6..=31).contains(&shift) && lo % (1 << shift) == 0);
    lo | (shift as usize) << SHIFT_AT | GRANULE
}

/// What [`scan_entry`] did.
pub(super) enum Traced {
    /// Scanned a newly marked object of this many bytes (to count as marked).
    Marked(u64),
    /// Rescanned a dirty granule's marked objects, this many of them.
    Rescanned(u64),
}

impl Traced {
    /// The work it was, in objects, for pacing the sharing of a drain: a rescanned
    /// granule counts its objects, at least one.
    #[inline]
    pub(super) fn work(&self) -> u64 {
        match *self {
            Traced::Marked(_) => 1,
            Traced::Rescanned(objects) => objects.max(1),
        }
    }
}

/// Scans the object of grey-stack `entry` and pushes the children it marks, or, for a
/// [`GRANULE`] entry, rescans that granule in place.
///
/// A newly marked object's children are mostly unmarked, so each is marked with one
/// `fetch_or`; a rescanned object's are nearly all marked already, so each is tested
/// first ([`Bitmap::set_new`]). Testing first everywhere gained nothing on the
/// stop-the-world GCBench (wall 1.04× [0.98–1.09], ten alternating pairs); in rescans it
/// halved the LRU cache's remarks (median 11.8 → 6.0 ms, 64 MiB live, 100 MiB heap).
#[inline]
pub(super) fn scan_entry(
    space: &Space,
    marks: &Bitmap,
    entry: usize,
    stack: &mut Vec<usize>,
) -> Traced {
    if entry & GRANULE != 0 {
        let shift = (entry >> SHIFT_AT) & SHIFT_MASK;
        let lo = entry & !((1 << shift) - 1);
        return Traced::Rescanned(rescan_in_place(space, marks, lo, lo + (1 << shift), stack));
    }
    scan(entry, 0, usize::MAX, |child| {
        if !marks.set(space.granule(child)) {
            stack.push(child);
        }
    });
    Traced::Marked(space.cell_bytes(entry) as u64)
}

/// Rescans the marked objects overlapping `[lo, hi)` (within one page): only their slots
/// inside it, since the slots outside were not written; pushes the children it marks.
/// Returns the objects rescanned.
#[inline]
pub(super) fn rescan_in_place(
    space: &Space,
    marks: &Bitmap,
    lo: usize,
    hi: usize,
    stack: &mut Vec<usize>,
) -> u64 {
    let mut objects = 0;
    space.for_each_cell_in(lo, hi, |obj| {
        if !marks.get(space.granule(obj)) {
            return;
        }
        scan(obj, lo, hi, |child| {
            if marks.set_new(space.granule(child)) {
                stack.push(child);
            }
        });
        objects += 1;
    });
    objects
}

/// Calls `child` with every non-null reference in the slots of the object at `addr` that
/// lie in `[lo, hi)`.
#[inline]
pub(super) fn scan(addr: usize, lo: usize, hi: usize, mut child: impl FnMut(usize)) {
    // SAFETY: `addr` is a marked cell or large-object start of the space (marked only
    // when reached from a validated reference, or reserved black), inside the mapping.
    let Some(Header { nrefs, .. }) = (unsafe { object::load_header(addr) }) else {
        return; // reserved, not yet allocated: no slots
    };
    let first = lo
        .saturating_sub(addr + object::HEADER_BYTES)
        .div_ceil(object::SLOT_BYTES);
    let last = (hi.saturating_sub(addr + object::HEADER_BYTES) / object::SLOT_BYTES).min(nrefs);
    for i in first.min(nrefs)..last {
        // SAFETY: `i < nrefs` of an object whose header was published (`Acquire`).
        let v = unsafe { object::slot(addr, i) }.load(Ordering::Acquire);
        if v != 0 {
            child(v);
        }
    }
}

/// The grey objects popped from a stack and being fetched into the cache, oldest first.
///
/// A depth-first trace pops the child it pushed last, whose header is not in the cache
/// yet: scanning it at once stalls on the miss. Popping [`FETCH_AHEAD`] objects early,
/// with a prefetch of each, lets the misses overlap with the scans in between. The
/// order stays nearly depth-first (each scan's children are pushed on the stack, and
/// the next pop takes the newest of them).
pub(super) struct Ahead {
    ring: [usize; FETCH_AHEAD],
    /// Index of the oldest entry.
    first: usize,
    len: usize,
}

impl Ahead {
    #[inline]
    pub(super) fn new() -> Ahead {
        Ahead {
            ring: [0; FETCH_AHEAD],
            first: 0,
            len: 0,
        }
    }

    /// The next object to scan: the one fetched longest ago, after topping the ring up
    /// from `stack`. `None` when both are empty.
    #[inline]
    pub(super) fn next(&mut self, stack: &mut Vec<usize>) -> Option<usize> {
        while self.len < FETCH_AHEAD {
            let Some(addr) = stack.pop() else { break };
            prefetch(addr);
            self.ring[(self.first + self.len) % FETCH_AHEAD] = addr;
            self.len += 1;
        }
        if self.len == 0 {
            return None;
        }
        let addr = self.ring[self.first];
        self.first = (self.first + 1) % FETCH_AHEAD;
        self.len -= 1;
        Some(addr)
    }

    /// Puts the objects not yet scanned back on `stack` (before it is handed on).
    #[inline]
    pub(super) fn give_back(&mut self, stack: &mut Vec<usize>) {
        while self.len > 0 {
            self.len -= 1;
            stack.push(self.ring[(self.first + self.len) % FETCH_AHEAD]);
        }
    }
}

/// Asks the CPU to bring the cache line at `addr` in: a hint, which never faults.
#[inline(always)]
fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is part of SSE, which every x86-64 CPU has, and it reads
    // nothing architecturally: an address that is not mapped is ignored, never a fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}
