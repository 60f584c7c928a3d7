//! Quickstart: one heap per barrier, a linked structure built and rewritten while the
//! collector runs, and what the collector saw.
//!
//! Run: `cargo run --release --example quickstart`
//!
//! The columns: `cycles` collections run (five, each asked for: the counts are the same
//! on every run); `pauses` stop-the-world pauses (one per cycle without a barrier, two
//! with one: initial mark and remark); `live` what the last cycle marked; `freed` the
//! garbage it swept; `recorded` what the barrier recorded as written while the collector
//! marked (pages for the page trackers, cards for the card table; `none` records nothing,
//! it stops the world instead): the only mutator waits during each cycle, so the card
//! table records nothing, and a page tracker records one page per cycle, the page the
//! mutator was allocating into when the cycle started, which the heap hands back to it
//! already recorded so that its next objects take no fault (the frontier rule, see
//! `barrierlab::heap`); `max pause` the longest pause, the one figure that varies.

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
        // An 8 MiB heap with pacing off and the trigger at 90%: the 1.6 MB this program
        // allocates never starts a collection by itself, so every cycle below is one it
        // asks for, and every count it prints is the same on every run.
        let config = HeapConfig::new()
            .heap_bytes(8 << 20)
            .barrier(kind)
            .pacing(false)
            .trigger(0.9);
        let heap = match Heap::new(config) {
            Ok(h) => h,
            Err(e) => {
                println!("{kind:<15} skipped: {e}");
                continue;
            }
        };
        let mut m = heap.mutator();
        // A list of 1000 nodes per round (slot 0 is `next`, the payload holds the node's
        // number), rooted at `root`; each round's list replaces the previous one, which
        // becomes garbage.
        let head = m.alloc(1, 8)?;
        let root = m.push_root(head)?;
        for round in 0..50u64 {
            let mut node = m.alloc(1, 8)?;
            m.set_root(root, Some(node))?;
            for i in 0..1000u64 {
                let next = m.alloc(1, 8)?;
                m.write_bytes(next, 0, &(round * 1000 + i).to_le_bytes())?;
                m.write_ref(node, 0, Some(next))?; // the barriered store
                node = next;
            }
            // Every 10 rounds, a collection: this mutator waits at a safepoint while
            // the cycle runs, so it writes nothing while the collector marks.
            if round % 10 == 9 {
                m.collect()?;
            }
        }
        let s = heap.stats();
        let last = s.cycle_log.last().expect("five cycles ran");
        println!(
            "{kind:<15} cycles {:>2}  pauses {:>2}  live {:>3} KiB  freed {:>4} KiB  recorded {:>2}  max pause {:>8.1?}",
            s.cycles,
            s.pauses.len(),
            last.bytes_marked / 1024,
            last.bytes_freed / 1024,
            s.tracker.recorded,
            s.max_pause(),
        );
    }
    println!(
        "\nEvery count is the same on every run; only the pause times vary. `none` stops the \
         world once per cycle, the barriers twice (initial mark and remark). Live: the one \
         list of 1001 32-byte nodes still rooted; freed: the 10 lists since the last cycle. \
         Nothing was written while a collector marked, so the card table recorded nothing; \
         a page tracker recorded the one page per cycle that the mutator allocates into, \
         handed to it dirty at the cycle's start. `examples/card_table.rs` and \
         `examples/uffd_wp_fault.rs` show a barrier recording writes, and \
         `gcbench --log-cycles` shows it under a real workload."
    );
    Ok(())
}
