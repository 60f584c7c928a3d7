//! The software write watch: one byte per 4 KiB page of the heap, set by the store path
//! after each reference store, as CoreCLR's GC does with its software write watch.
//!
//! Why it is here: it is the control that separates the granule from the mechanism.
//! Its store path and its scan are the card table's (the same [`CardTable`] code, with
//! 4 KiB cards, and the same ordering argument: store the reference, then mark; clear,
//! fence, then rescan), and its granule is the page trackers' 4 KiB page. So beside the
//! card table it shows what the coarser granule costs (fewer bytes to scan per harvest,
//! more to rescan per dirty granule at remark); beside a page tracker, what page
//! protection costs over a store-path mark of the same page (a fault per dirtied page
//! per cycle against a byte store per reference store).
//!
//! Costs: a store pays what a card mark pays; a harvest scans `heap / 4096` bytes, an
//! eighth of the card table's; remark rescans every marked object on each dirty page.

use super::CardTable;
use super::mechanism::{Granule, Mechanism, SecondChannel, ServedBy};
use super::{BarrierConfig, BarrierKind, Built, CardOptions, built};
use crate::sys::PAGE_SHIFT;

/// The description of `write-watch`. Its options are the card table's
/// ([`CardOptions`]).
pub(crate) const MECHANISM: Mechanism = Mechanism {
    kind: BarrierKind::WriteWatch,
    name: "write-watch",
    summary: "a byte per 4 KiB page, set by the store path after each reference store \
              (CoreCLR's software write watch)",
    granule: Granule::WatchedPage,
    served_by: ServedBy::StorePath,
    kernel: "nothing",
    second_channel: SecondChannel::None,
    edges: &[],
    mapping_lock: super::mechanism::MappingLock::None,
    variants: &[(
        "conditional",
        BarrierConfig::WriteWatch(CardOptions { conditional: true }),
    )],
};

/// Its tracker.
pub(super) fn build(base: usize, len: usize, options: &CardOptions) -> Built {
    built(WriteWatch::build(
        BarrierKind::WriteWatch,
        base,
        len,
        options.conditional,
    ))
}

/// The write watch's table: a card table of 4 KiB cards.
pub type WriteWatch = CardTable<PAGE_SHIFT>;
