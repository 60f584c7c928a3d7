//! Quickstart: one heap per barrier; a program that keeps rewriting a linked list while
//! another thread asks for collections, and what each barrier recorded of its writes.
//!
//! Run: `cargo run --release --example quickstart`
//!
//! A mostly-concurrent collector marks while the program runs. A write the program makes
//! during that marking can hide a reachable object from the collector (it moves a
//! pointer into an object the collector has already scanned), so the barrier records
//! where the program wrote, and the collector rescans those places in a short final
//! pause (the remark). This example makes such writes and prints what was recorded.
//!
//! The columns: `cycles` collections run (five, each asked for by a second thread);
//! `pauses` stop-the-world pauses (one per cycle without a barrier, two with one: the
//! initial mark and the remark); `stores` reference stores the program made while it
//! waited for the cycles (some before a cycle started or after it ended); `recorded` what the barrier handed to the collector as written, summed
//! over the cycles' harvests (4 KiB pages for the page trackers, 512-byte cards for the
//! card table; a page the allocator handed out during a cycle counts too, as it is
//! treated as written, see `barrierlab::heap`); `faults` the write faults the tracker
//! served (the first write to each protected page; `uffd-wp-async` resolves its faults in
//! the kernel unseen, and the card table takes none); `max pause` the longest pause.
//! Only `cycles` and `pauses` are the same on every run: the rest depend on how the
//! program's thread and the collector's were scheduled.
//!
//! `none` has no barrier: it stops the world for the whole cycle, so the program never
//! writes while the collector marks and nothing needs recording. Every other barrier
//! records something: the program was writing throughout its cycles' marking.

use std::sync::atomic::{AtomicBool, Ordering};

use barrierlab::probe::Probe;
use barrierlab::{BarrierKind, Heap, HeapConfig, ObjRef, Result};

/// Nodes in the live list the program rewrites.
const NODES: usize = 20_000;
/// Collections asked for, per barrier.
const CYCLES: u64 = 5;
/// New objects per cycle at most: a cycle that runs long (the machine busy with other
/// work) must not let the program allocate enough to start a cycle by itself.
const GARBAGE_PER_CYCLE: u64 = 16_384;

fn main() -> Result<()> {
    let probe = Probe::run();
    for kind in BarrierKind::ALL {
        // A barrier this kernel cannot offer is skipped with the probe's reason.
        if let Err(e) = probe.require(kind) {
            println!("{kind:<15} skipped: {e}");
            continue;
        }
        // A 16 MiB heap with pacing off and the trigger at 90%: what this program
        // allocates never starts a collection by itself, so every cycle is one it asks for.
        let config = HeapConfig::new()
            .heap_bytes(16 << 20)
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
        let stores = rewrite_while_collecting(&heap)?;
        let s = heap.stats();
        println!(
            "{kind:<15} cycles {:>2}  pauses {:>2}  stores {stores:>9}  recorded {:>6}  \
             faults {:>5}  max pause {:>8.1?}",
            s.cycles,
            s.pauses.len(),
            s.tracker.recorded,
            s.tracker.faults,
            s.max_pause(),
        );
    }
    println!(
        "\n`none` recorded nothing: it stopped the program for each whole cycle. Each \
         barrier recorded the pages or cards the program wrote while its collector marked; \
         the remark pause rescanned them. `examples/lost_object.rs` shows what happens when \
         a barrier loses what it recorded."
    );
    Ok(())
}

/// Builds a rooted list of [`NODES`] nodes, then asks a second thread for [`CYCLES`]
/// collections, one at a time, and rewrites the list (and makes garbage) for as long as
/// each runs. Returns the number of reference stores made while the cycles ran.
fn rewrite_while_collecting(heap: &Heap) -> Result<u64> {
    let mut m = heap.mutator();
    // Slot 0 of each node is `next`. The list stays reachable from the root for the
    // whole run and the collector does not move objects, so `nodes` may keep naming them.
    let head = m.alloc(1, 8)?;
    m.push_root(head)?;
    let mut nodes: Vec<ObjRef> = vec![head];
    for _ in 1..NODES {
        let next = m.alloc(1, 8)?;
        m.write_ref(*nodes.last().expect("the head"), 0, Some(next))?;
        nodes.push(next);
    }
    let mut stores = 0u64;
    let mut i = 0;
    for _ in 0..CYCLES {
        let done = AtomicBool::new(false);
        let mut garbage = 0;
        std::thread::scope(|s| -> Result<()> {
            let asker = s.spawn(|| {
                let r = heap.collect();
                done.store(true, Ordering::Release);
                r
            });
            // Until the cycle is over: store each node's successor into it again (the
            // same value, but a store the barrier must see all the same), and drop a new
            // object now and then. `alloc` and `safepoint` are where this thread stops
            // for the cycle's pauses.
            while !done.load(Ordering::Acquire) {
                m.write_ref(nodes[i], 0, Some(nodes[i + 1]))?; // the barriered store
                stores += 1;
                i = (i + 97) % (NODES - 1);
                if stores % 16 == 0 && garbage < GARBAGE_PER_CYCLE {
                    m.alloc(1, 8)?;
                    garbage += 1;
                }
                m.safepoint();
            }
            asker.join().expect("the asking thread does not panic")
        })?;
    }
    Ok(stores)
}
