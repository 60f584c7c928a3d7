//! The store path: what the mutator runs after every reference store ([`StoreBarrier`]),
//! for each kind of barrier. Empty for `none` and the page trackers ([`NoStoreBarrier`]:
//! their record is made by the fault, or by the kernel), a byte store for the card table
//! and the write watch ([`CardMark`]), and the run-time choice between them
//! ([`DynBarrier`]) for a mutator that is not monomorphised.

use std::sync::atomic::AtomicU8;

use super::card_table;
use super::mechanism::CARD_SHIFT;

/// The mutator-side half of a barrier: what runs after a reference store.
///
/// Implementations are `Copy` values held by the mutator, so the compiler sees the whole
/// store path and inlines it.
pub trait StoreBarrier: Copy + Send + 'static {
    /// Builds the store path from a tracker's description, if it is this type.
    fn from_dyn(d: DynBarrier) -> Option<Self>;

    /// Called after the reference store to `slot` completed.
    ///
    /// # Safety
    /// `slot` must be an address inside the heap (or region) whose tracker built this
    /// store path, and that tracker must still be alive: the card table's path writes
    /// `cards[slot >> 9]` without a bounds check, as a compiled barrier would.
    unsafe fn on_store(&self, slot: usize);
}

/// No store path: the page-level trackers and `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStoreBarrier;

impl StoreBarrier for NoStoreBarrier {
    fn from_dyn(d: DynBarrier) -> Option<Self> {
        matches!(d, DynBarrier::None).then_some(NoStoreBarrier)
    }

    #[inline(always)]
    unsafe fn on_store(&self, _slot: usize) {}
}

/// Card marking: `cards[slot >> SHIFT] = DIRTY`, through a pointer biased by the heap
/// base so that the index needs no subtraction. `SHIFT` is 9 for the card table's
/// 512-byte cards and 12 for the write watch's 4 KiB pages: a constant, so that the
/// store path shifts by an immediate, as the card table's always has.
#[derive(Debug, Clone, Copy)]
pub struct CardMark<const SHIFT: u32 = CARD_SHIFT> {
    biased: *const AtomicU8,
    conditional: bool,
}

// SAFETY: the pointer refers to the card table, which outlives every mutator (the heap
// keeps the tracker alive while any mutator exists) and is only accessed atomically.
unsafe impl<const SHIFT: u32> Send for CardMark<SHIFT> {}
// SAFETY: as above: shared access only performs atomic byte stores and loads.
unsafe impl<const SHIFT: u32> Sync for CardMark<SHIFT> {}

impl<const SHIFT: u32> CardMark<SHIFT> {
    /// # Safety
    /// `biased.wrapping_add(addr >> SHIFT)` must point into a live card table for every
    /// heap address `addr` the mutator will store to, for as long as this value is used.
    pub(crate) unsafe fn new(biased: *const AtomicU8, conditional: bool) -> CardMark<SHIFT> {
        CardMark {
            biased,
            conditional,
        }
    }

    /// The same table as `other`'s, at this type's granule (the caller checked that the
    /// granules agree).
    fn same_as<const S: u32>(other: CardMark<S>) -> CardMark<SHIFT> {
        CardMark {
            biased: other.biased,
            conditional: other.conditional,
        }
    }
}

impl<const SHIFT: u32> StoreBarrier for CardMark<SHIFT> {
    fn from_dyn(d: DynBarrier) -> Option<Self> {
        match d {
            DynBarrier::Card(c) if SHIFT == CARD_SHIFT => Some(Self::same_as(c)),
            DynBarrier::Watch(c) if SHIFT == crate::sys::PAGE_SHIFT => Some(Self::same_as(c)),
            _ => None,
        }
    }

    #[inline(always)]
    unsafe fn on_store(&self, slot: usize) {
        // SAFETY: by the contracts of `CardMark::new` and `on_store`, the biased pointer
        // plus the card index of a heap address is a card of the live table.
        let card = unsafe { &*self.biased.wrapping_add(slot >> SHIFT) };
        if self.conditional {
            if card.load(std::sync::atomic::Ordering::Relaxed) != card_table::DIRTY {
                card.store(card_table::DIRTY, std::sync::atomic::Ordering::Relaxed);
            }
        } else {
            card.store(card_table::DIRTY, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The store path chosen at run time (one predictable branch per store). Workloads that
/// want the monomorphised path use [`crate::Heap::run_typed`].
#[derive(Debug, Clone, Copy)]
pub enum DynBarrier {
    /// No store path.
    None,
    /// Card marking, 512-byte cards.
    Card(CardMark),
    /// Write watching: card marking with a byte per 4 KiB page.
    Watch(CardMark<{ crate::sys::PAGE_SHIFT }>),
}

impl DynBarrier {
    /// The store path of a table of `1 << shift`-byte cards whose card 0 is at
    /// `biased + (base >> shift)`.
    ///
    /// # Safety
    /// As [`CardMark::new`]'s.
    ///
    /// # Panics
    /// For a granule that has no store path (not 512 bytes or 4 KiB).
    pub(crate) unsafe fn marking(shift: u32, biased: *const AtomicU8, conditional: bool) -> Self {
        // SAFETY: forwarded from the caller.
        unsafe {
            match shift {
                CARD_SHIFT => DynBarrier::Card(CardMark::new(biased, conditional)),
                crate::sys::PAGE_SHIFT => DynBarrier::Watch(CardMark::new(biased, conditional)),
                _ => panic!(
                    "no card-marking store path for {}-byte granules",
                    1u64 << shift
                ),
            }
        }
    }
}

impl StoreBarrier for DynBarrier {
    fn from_dyn(d: DynBarrier) -> Option<Self> {
        Some(d)
    }

    #[inline(always)]
    unsafe fn on_store(&self, slot: usize) {
        match self {
            DynBarrier::None => {}
            // SAFETY: forwarded from the caller.
            DynBarrier::Card(c) => unsafe { c.on_store(slot) },
            // SAFETY: forwarded from the caller.
            DynBarrier::Watch(c) => unsafe { c.on_store(slot) },
        }
    }
}
