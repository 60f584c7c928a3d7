//! The software card table: one byte per 512-byte card of the heap.
//!
//! Store path: the mutator stores the reference, then `cards[slot >> 9] = DIRTY` (one
//! unconditional byte store; the conditional variant loads first and stores only if the
//! card is clean, which saves cache-line traffic when many threads write near each
//! other). Nothing else: no fault, no system call, no kernel help.
//!
//! Collector side: [`arm`](DirtyTracker::arm) clears every card; a
//! [`harvest`](DirtyTracker::harvest) scans the table, clears each dirty card it hands
//! over, and then issues a full fence, so that the caller's rescan reads memory after the
//! clear: IF a mutator stores a reference after the clear THEN its card store also comes
//! after the clear (the mutator stores the reference first), so the card is dirty at the
//! next harvest; IF it stored before THEN the rescan sees the reference. At remark every
//! mutator is at a safepoint, so both of its stores are done.
//!
//! Costs: a store pays ~0.2 ns extra (sequential) to ~1 ns (random, DRAM); a cycle pays a
//! scan of `heap / 512` bytes (~0.55 ns per heap page). Only reference stores are marked:
//! payload writes cannot create edges, so they need no barrier.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering, fence};

pub use super::mechanism::CARD_SHIFT;

use super::counters::Counters;
use super::mechanism::{Granule, Mechanism, SecondChannel, ServedBy};
use super::{
    BarrierConfig, BarrierKind, Built, DirtySet, DirtyTracker, DynBarrier, MechanismOptions,
    TrackerStats, built,
};
use crate::error::Result;
use crate::side_table::SideTable;

/// The description of `card-table`. Its one variant beside the defaults is conditional
/// marking (`card-table[conditional]`).
pub(crate) const MECHANISM: Mechanism = Mechanism {
    kind: BarrierKind::CardTable,
    name: "card-table",
    summary: "a byte per 512-byte card, set by the store path after each reference store",
    granule: Granule::Card,
    served_by: ServedBy::StorePath,
    kernel: "nothing",
    second_channel: SecondChannel::None,
    edges: &[],
    mapping_lock: super::mechanism::MappingLock::None,
    variants: &[(
        "conditional",
        BarrierConfig::CardTable(CardOptions { conditional: true }),
    )],
};

/// The options of the card table, and of the write watch (the same table of 4 KiB
/// cards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CardOptions {
    /// Conditional card marking: test the card before marking it, so that a store to a
    /// card already dirty writes nothing.
    pub conditional: bool,
}

impl MechanismOptions for CardOptions {
    const DEFAULT: Self = CardOptions { conditional: false };
}

/// Its tracker.
pub(super) fn build(base: usize, len: usize, options: &CardOptions) -> Built {
    built(CardTable::new(base, len, options.conditional))
}

/// Card size in bytes.
pub const CARD_SIZE: usize = 1 << CARD_SHIFT;
/// The value of a dirty card.
pub const DIRTY: u8 = 1;
/// The value of a clean card.
pub const CLEAN: u8 = 0;

/// A card table over one heap, of `1 << SHIFT`-byte cards: 512 bytes for the card table,
/// 4 KiB for the write watch ([`super::WriteWatch`], the same table at the page
/// trackers' granule).
///
/// The table is a `SideTable`: reserved for the whole heap, committed only where
/// cards are written, so a 1 TiB heap reserves 2 GiB of cards but pays only for the
/// part over the pages it uses. Arm and harvest walk only the cards below the extent the
/// heap last reported ([`DirtyTracker::in_use`]), so their cost follows the pages in use,
/// not the reservation.
#[derive(Debug)]
pub struct CardTable<const SHIFT: u32 = CARD_SHIFT> {
    /// The mechanism it is: `CardTable` or `WriteWatch`.
    kind: BarrierKind,
    base: usize,
    cards: SideTable<AtomicU8>,
    /// Cards that arm and harvest walk: those below the heap's reported extent.
    extent: AtomicUsize,
    conditional: bool,
    counters: Counters,
}

impl CardTable {
    /// A clean table of 512-byte cards for the heap `[base, base + len)`; `base` must
    /// be card aligned. Fails only if the table's mapping cannot be reserved.
    pub fn new(base: usize, len: usize, conditional: bool) -> Result<CardTable> {
        CardTable::build(BarrierKind::CardTable, base, len, conditional)
    }
}

impl<const SHIFT: u32> CardTable<SHIFT> {
    /// The card size in bytes.
    const SIZE: usize = 1 << SHIFT;

    /// A clean table for the heap `[base, base + len)`, as mechanism `kind`; `base`
    /// must be card aligned. Fails only if the table's mapping cannot be reserved.
    pub(crate) fn build(
        kind: BarrierKind,
        base: usize,
        len: usize,
        conditional: bool,
    ) -> Result<CardTable<SHIFT>> {
        assert_eq!(base % Self::SIZE, 0, "heap base must be card aligned");
        let cards = SideTable::new(len.div_ceil(Self::SIZE))?;
        Ok(CardTable {
            kind,
            base,
            extent: AtomicUsize::new(cards.len()),
            cards,
            conditional,
            counters: Counters::new(None),
        })
    }

    /// The cards below the extent.
    fn walked(&self) -> &[AtomicU8] {
        &self.cards[..self.extent.load(Ordering::Acquire).min(self.cards.len())]
    }

    /// The index of the card holding `addr`.
    pub fn card_index(&self, addr: usize) -> usize {
        (addr - self.base) >> SHIFT
    }

    /// Whether the card holding `addr` is dirty.
    pub fn is_dirty(&self, addr: usize) -> bool {
        self.cards[self.card_index(addr)].load(Ordering::Relaxed) == DIRTY
    }

    /// Number of cards.
    pub fn len(&self) -> usize {
        self.cards.len()
    }

    /// Always false (a heap has at least one card).
    pub fn is_empty(&self) -> bool {
        self.cards.is_empty()
    }

    /// Scans the table; clears and reports each dirty card. Each card is read with an
    /// atomic byte load (reading 8 cards as one word would be a mixed-size racing access,
    /// which Rust's memory model does not allow) and cleared with a plain store, not an
    /// atomic swap: a mutator mark that lands between the load and the clear is on a card
    /// that is reported anyway, and its reference store is seen by the rescan that
    /// follows the fence in [`DirtyTracker::harvest`] (the order HotSpot's card
    /// pre-cleaning uses).
    fn scan_and_clear(&self, out: &mut Vec<usize>) {
        for (idx, card) in self.walked().iter().enumerate() {
            if card.load(Ordering::Relaxed) != CLEAN {
                card.store(CLEAN, Ordering::Relaxed);
                out.push(idx);
            }
        }
    }
}

impl<const SHIFT: u32> DirtyTracker for CardTable<SHIFT> {
    fn kind(&self) -> BarrierKind {
        self.kind
    }

    fn granule_shift(&self) -> u32 {
        SHIFT
    }

    fn arm(&self) -> Result<()> {
        // Marks made before arm do not matter: no object is marked before the cycle's
        // initial mark, and a write to an unmarked object is seen when it is traced.
        // Only dirty cards are written: a store to an untouched page of the table would
        // commit it.
        for c in self.walked() {
            if c.load(Ordering::Relaxed) != CLEAN {
                c.store(CLEAN, Ordering::Relaxed);
            }
        }
        fence(Ordering::SeqCst);
        Ok(())
    }

    fn harvest(&self, out: &mut DirtySet, _rearm: bool) -> Result<()> {
        out.clear();
        self.scan_and_clear(&mut out.granules);
        // Clear before rescan: the caller's rescan must read the heap after the clears.
        fence(Ordering::SeqCst);
        self.counters.recorded(out.granules.len());
        Ok(())
    }

    fn disarm(&self) -> Result<()> {
        Ok(())
    }

    fn in_use(&self, bytes: usize) {
        self.extent
            .store(bytes.div_ceil(Self::SIZE), Ordering::Release);
    }

    fn stats(&self) -> TrackerStats {
        self.counters.stats()
    }

    fn store_barrier(&self) -> DynBarrier {
        let biased = self.cards.as_ptr().wrapping_sub(self.base >> SHIFT);
        // SAFETY: for every heap address `a`, `(a >> SHIFT) - (base >> SHIFT)` indexes the
        // table, and the heap keeps this tracker alive for as long as any mutator exists.
        unsafe { DynBarrier::marking(SHIFT, biased, self.conditional) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::StoreBarrier;

    #[test]
    fn card_index_and_store_path_agree() {
        let base = 1 << 20;
        let table = CardTable::new(base, 64 * 1024, false).unwrap();
        assert_eq!(table.len(), 128);
        let path = table.store_barrier();
        for addr in [base, base + 511, base + 512, base + 64 * 1024 - 8] {
            // SAFETY: `addr` lies in the range the table covers, and the table is alive.
            unsafe { path.on_store(addr) };
            assert!(table.is_dirty(addr), "card of {addr:#x} not dirty");
        }
        let mut set = DirtySet::default();
        table.harvest(&mut set, true).unwrap();
        assert_eq!(set.granules, vec![0, 1, 127]);
        assert!(!table.is_dirty(base));
        table.harvest(&mut set, true).unwrap();
        assert!(
            set.granules.is_empty(),
            "harvest must clear what it hands over"
        );
    }

    #[test]
    fn conditional_marking_marks_the_same_cards() {
        let base = 1 << 20;
        let table = CardTable::new(base, 8 * CARD_SIZE + 3 * CARD_SIZE, true).unwrap();
        let path = table.store_barrier();
        // SAFETY: both addresses lie in the range the table covers; it is alive.
        unsafe {
            path.on_store(base + 9 * CARD_SIZE + 8);
            path.on_store(base + 9 * CARD_SIZE + 16);
        }
        let mut set = DirtySet::default();
        table.harvest(&mut set, false).unwrap();
        assert_eq!(
            set.granules,
            vec![9],
            "two conditional stores to card 9 (of 11) report it once"
        );
    }

    #[test]
    fn arm_clears_marks_made_before_it() {
        let base = 1 << 20;
        let table = CardTable::new(base, 16 * CARD_SIZE, false).unwrap();
        // SAFETY: `base` is covered by the live table.
        unsafe { table.store_barrier().on_store(base) };
        table.arm().unwrap();
        let mut set = DirtySet::default();
        table.harvest(&mut set, true).unwrap();
        assert!(set.granules.is_empty());
    }
}
