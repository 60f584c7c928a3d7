//! The software card table, by hand: a few reference stores through its store path, the
//! dirty cards after each one, a harvest, and why the harvest's order matters.
//!
//! Run: `cargo run --release --example card_table`
//!
//! The mechanism in one paragraph: the heap is cut into 512-byte *cards*, and a table
//! keeps one byte per card. After every reference store the mutator also stores
//! `cards[(slot - heap_base) >> 9] = DIRTY`: one more byte store, no fault, no system
//! call. The collector later *harvests* the table: every dirty card is handed over and
//! cleared, and the collector rescans the objects on those cards for references it has
//! not traced yet.
//!
//! Why 512 bytes: a smaller card means less to rescan per dirty card but a bigger table
//! to scan per cycle (the table is `heap / 512` bytes: 2 MiB for a 1 GiB heap); 512 is
//! HotSpot's choice and a good middle. A page tracker's granule is 8 times larger (4 KiB).
//!
//! Why only reference stores are marked: the card table exists so that a concurrent
//! marker does not miss a *new edge* (a reference stored into an object it has already
//! scanned). Writing payload bytes cannot create an edge, so those stores skip the store
//! path and leave their card clean. (A page tracker cannot tell the two apart: any write
//! dirties the page.)

use std::sync::atomic::{AtomicUsize, Ordering};

use barrierlab::Result;
use barrierlab::barrier::card_table::{CARD_SHIFT, CARD_SIZE};
use barrierlab::barrier::{CardTable, DirtySet, DirtyTracker, StoreBarrier};
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::Region;

/// Four pages of "heap": 16 KiB, 32 cards.
const HEAP_BYTES: usize = 4 * PAGE_SIZE;

fn main() -> Result<()> {
    // The "heap" is a bare anonymous mapping; no allocator is needed to show the table.
    let heap = Region::new(HEAP_BYTES)?;
    // One byte per card; `false`: unconditional marking (store DIRTY without looking
    // first; the conditional variant loads the card and stores only if it is clean).
    let table = CardTable::new(heap.base(), heap.len(), false)?;
    // The mutator half of the barrier: what runs after each reference store. It holds a
    // raw pointer into `table`, so it must not be used after `table` is dropped, nor on an
    // address outside `heap` (neither is checked).
    let path = table.store_barrier();
    println!(
        "heap [{:#x}, {:#x}): {} bytes, {} cards of {CARD_SIZE} bytes (card = offset >> {CARD_SHIFT})",
        heap.base(),
        heap.end(),
        heap.len(),
        table.len()
    );

    // Arm: start from a clean table. (Marks made before a cycle do not matter.)
    table.arm()?;
    print_dirty(&table, &heap, "after arm");

    // A reference store is the store itself followed by the store path. The order is
    // the mutator's half of the protocol: reference first, then the card.
    let store_ref = |offset: usize, value: usize| {
        let slot = heap.base() + offset;
        store_word(&heap, offset, value);
        // SAFETY: `slot` lies in the region the card table covers, and the table is alive.
        unsafe { path.on_store(slot) };
    };

    store_ref(0x010, 0xdead_0000);
    print_dirty(&table, &heap, "store_ref at +0x010");
    // Same card (0x1f8 >> 9 == 0): nothing new; a dirty card stays dirty.
    store_ref(0x1f8, 0xdead_0008);
    print_dirty(&table, &heap, "store_ref at +0x1f8 (same card)");
    // Eight bytes further is the next card.
    store_ref(0x200, 0xdead_0010);
    print_dirty(&table, &heap, "store_ref at +0x200 (next card)");
    // A store on the second page.
    store_ref(0x1008, 0xdead_0018);
    print_dirty(&table, &heap, "store_ref at +0x1008");
    // A payload write (not a reference): no store path, so its card stays clean.
    store_word(&heap, 0x2000, 42);
    print_dirty(&table, &heap, "payload write at +0x2000 (no barrier)");

    // Harvest: scan the table, hand over each dirty card and clear it, then a full fence,
    // and only then does the collector rescan the cards it got. The order is what makes
    // a racing mutator safe:
    // - IF the mutator's reference store lands after the clear THEN its card store (which
    //   comes after the reference store) does too, so the card is dirty at the next
    //   harvest;
    // - IF it landed before the clear THEN the rescan, which reads the heap after the
    //   fence, sees the reference.
    // Rescan first and clear after, and a store landing in between is lost: the rescan
    // missed it and the clear erased its mark.
    let mut dirty = DirtySet::default();
    table.harvest(&mut dirty, true)?;
    println!("harvest -> dirty cards {:?}", dirty.granules);
    print_dirty(&table, &heap, "after the harvest");

    // A mutator store that lands after the clear, while the collector rescans the
    // harvested cards: its card is dirty again, and the next harvest (pre-clean round
    // or remark) picks it up.
    store_ref(0x208, 0xdead_0020);
    print_dirty(&table, &heap, "store_ref at +0x208 during the rescan");
    table.harvest(&mut dirty, true)?;
    println!("next harvest -> dirty cards {:?}", dirty.granules);
    print_dirty(&table, &heap, "after the next harvest");
    table.disarm()?;
    println!(
        "cards harvested in total: {} (TrackerStats::recorded)",
        table.stats().recorded
    );
    Ok(())
}

/// Stores `value` into the aligned word at `offset` in the heap, with `Relaxed` order: a
/// plain `mov` on x86-64, and data-race free if a collector thread reads it concurrently.
fn store_word(heap: &Region, offset: usize, value: usize) {
    assert!(
        offset % 8 == 0 && offset + 8 <= heap.len(),
        "an aligned word of the heap"
    );
    let slot = (heap.base() + offset) as *const AtomicUsize;
    // SAFETY: `slot` is an aligned word inside the live, writable mapping `heap`, and
    // every access to heap words in this program is atomic.
    unsafe { &*slot }.store(value, Ordering::Relaxed);
}

/// Prints the dirty cards: index and address range (as offsets from the heap base).
fn print_dirty(table: &CardTable, heap: &Region, after: &str) {
    let dirty: Vec<String> = (0..table.len())
        .map(|card| heap.base() + card * CARD_SIZE)
        .filter(|&addr| table.is_dirty(addr))
        .map(|addr| {
            let offset = addr - heap.base();
            format!(
                "card {} [+{offset:#06x}, +{:#06x})",
                table.card_index(addr),
                offset + CARD_SIZE
            )
        })
        .collect();
    if dirty.is_empty() {
        println!("{after:<42} dirty cards: none");
    } else {
        println!("{after:<42} dirty cards: {}", dirty.join(", "));
    }
}
