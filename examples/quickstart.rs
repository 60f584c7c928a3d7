//! Quickstart: one heap per barrier, a linked structure built and rewritten while the
//! collector runs, and what the collector saw.
//!
//! Run: `cargo run --release --example quickstart`
//!
//! The columns: `cycles` collections run; `pauses` stop-the-world pauses (one per cycle
//! without a barrier, two with one: initial mark and remark); `max pause` the longest;
//! `recorded` what the barrier recorded as written while the collector marked (pages for
//! the page trackers, cards for the card table; `none` records nothing, it stops the
//! world instead); `freed` the garbage the last cycle swept.

use barrierlab::probe::Probe;
use barrierlab::{BarrierKind, Heap, HeapConfig, Result};

fn main() -> Result<()> {
    let probe = Probe::run();
    for kind in BarrierKind::ALL {
        // A barrier this kernel cannot offer is skipped with the probe's reason.
        if let Err(e) = probe.require(kind) {
            println!("{kind:<15} skipped: {e}");
            continue;
        }
        // A small heap (1 MiB), so that collections start by themselves while the lists
        // below are being written: the barrier then has writes to record.
        let heap = match Heap::new(HeapConfig::new().heap_bytes(1 << 20).barrier(kind)) {
            Ok(h) => h,
            Err(e) => {
                println!("{kind:<15} skipped: {e}");
                continue;
            }
        };
        let mut m = heap.mutator();
        // A list of 1000 nodes: slot 0 is `next`, the payload holds the node's number.
        let head = m.alloc(1, 8)?;
        let root = m.push_root(head);
        for round in 0..50u64 {
            let mut node = m.alloc(1, 8)?;
            m.set_root(root, Some(node))?;
            for i in 0..1000u64 {
                let next = m.alloc(1, 8)?; // may stop here for a pause
                m.write_bytes(next, 0, &(round * 1000 + i).to_le_bytes())?;
                m.write_ref(node, 0, Some(next))?; // the barriered store
                node = next;
            }
            // The previous round's list is garbage now.
        }
        m.collect()?;
        let s = heap.stats();
        println!(
            "{kind:<15} cycles {:>3}  pauses {:>3}  max pause {:>8.1?}  recorded {:>6}  freed {:>6} KiB in the last cycle",
            s.cycles,
            s.pauses.len(),
            s.max_pause(),
            s.tracker.recorded,
            s.cycle_log.last().map_or(0, |c| c.bytes_freed / 1024),
        );
    }
    Ok(())
}
