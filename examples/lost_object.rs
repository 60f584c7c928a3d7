//! What a write barrier prevents: the collector frees an object the program can still
//! reach. Each barrier runs the same program twice: once with a planted bug that loses
//! what the barrier recorded, once as built; the heap's verifier (a full re-trace at
//! every remark, `HeapConfig::verify`) reports every reachable object the marking missed.
//!
//! Run: `cargo run --release --example lost_object`
//!
//! The program keeps a long list, rooted at its head; each node of its last part holds a
//! "cargo" object. While the collector marks (depth first from the root, so the head's
//! nodes are scanned, black, long before the tail's), the program moves the cargo of a
//! tail node into a head node and gives the tail node new cargo (each node once per cycle,
//! the head's from the first on). IF the collector has not
//! reached that tail node yet AND nobody tells it about the store into the black head
//! node, THEN the old cargo is reachable only from an object the collector will not look
//! at again: it stays unmarked, and the sweep would free it while reachable. Telling it
//! is the barrier's job: the store's page or card is recorded, and the remark pause
//! rescans it.
//!
//! Two bugs, one for each rule a barrier must keep:
//! - `record lost`: the collector drops every dirty page or card the barrier hands it
//!   (as a barrier that missed every write would). Every barrier loses cargo.
//! - `frontier forgotten` (page trackers only): the program moves the cargo into a
//!   holder object it has just allocated instead of into a head node. A new object is black (the cycle keeps what it
//!   allocates), so a store into it must be rescanned like one into any scanned object.
//!   The page trackers record a page when it is written while protected; the pages the
//!   allocator hands out during a cycle are unprotected up front (so that new objects
//!   take no fault) and must therefore be recorded as written at that moment. The bug
//!   unprotects them without recording them. The card table and the write watch record
//!   every store themselves, new object or not, and `uffd-wp-async` hands nothing out
//!   (the kernel records the first write to a protected page itself), so none of them
//!   has such a rule.
//!
//! `none` has no barrier to lose: it stops the program for the whole cycle.
//!
//! The columns: `cycles` collections run once the list was built (a run with a bug stops at the first that the
//! verifier catches), `moves` stores of cargo the program made while the collector was
//! marking, `violations` reachable objects the verifier found unmarked at a remark. The
//! counts vary from run to run; with a bug the violations are above zero, without one
//! they are zero.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use barrierlab::internals::Testing;
use barrierlab::probe::Probe;
use barrierlab::{BarrierKind, Heap, HeapConfig, ObjRef, Phase, Result};

/// Nodes in the list.
const NODES: usize = 1_000_000;
/// Nodes at the list's end that hold cargo.
const END: usize = 4_096;
/// A run with a bug ends at the first cycle with a violation, or after this many cycles
/// or this long; the run without runs as many cycles as the run with did (at least
/// [`MIN_CLEAN_CYCLES`]).
const MAX_CYCLES: u64 = 50;
const MAX_TIME: Duration = Duration::from_secs(10);
const MIN_CLEAN_CYCLES: u64 = 10;

/// What one run saw.
struct Outcome {
    cycles: u64,
    violations: u64,
    moves: u64,
    first: Option<String>,
}

fn main() -> Result<()> {
    let probe = Probe::run();
    for kind in BarrierKind::ALL {
        if kind == BarrierKind::None {
            println!("{kind:<15} no barrier: the program is stopped for each whole cycle");
            continue;
        }
        if let Err(e) = probe.require(kind) {
            println!("{kind:<15} skipped: {e}");
            continue;
        }
        // Only the page trackers that unprotect the pages they hand out have a frontier
        // rule: a store-path mark (card table, write watch) records every store, and
        // uffd-wp-async hands nothing out (the kernel records a protected page's first
        // write itself).
        let page_tracker = kind.is_page_level() && kind != BarrierKind::UffdWpAsync;
        let mut bugs = vec![(
            "record lost",
            Testing {
                drop_every_nth_dirty: Some(1),
                ..Testing::default()
            },
            false,
        )];
        if page_tracker {
            let forget = Testing {
                forget_hand_outs: true,
                ..Testing::default()
            };
            bugs.push(("frontier forgotten", forget, true));
        }
        for (name, testing, adopt) in bugs {
            let buggy = run(kind, testing, adopt, None)?;
            let cycles = buggy.cycles.max(MIN_CLEAN_CYCLES);
            let clean = run(kind, Testing::default(), adopt, Some(cycles))?;
            for (label, o) in [(name, &buggy), ("as built", &clean)] {
                println!(
                    "{kind:<15} {label:<19} cycles {:>3}  moves {:>7}  violations {:>5}",
                    o.cycles, o.moves, o.violations
                );
            }
            if let Some(first) = &buggy.first {
                println!("{:<15} first violation: {first}", "");
            }
        }
    }
    Ok(())
}

/// Runs the program on a fresh heap with `testing` planted; with `adopt`, cargo is also
/// adopted by new holder objects. Runs `cycles` cycles, or, if `None`, until the first
/// violation (at most [`MAX_CYCLES`] and [`MAX_TIME`]).
fn run(kind: BarrierKind, testing: Testing, adopt: bool, cycles: Option<u64>) -> Result<Outcome> {
    let heap = Heap::new(
        HeapConfig::new()
            .heap_bytes(128 << 20)
            .barrier(kind)
            .pacing(false)
            .trigger(0.95)
            .verify(true)
            .testing(testing),
    )?;
    let (ready, stop) = (AtomicBool::new(false), AtomicBool::new(false));
    let (moves, cycles_run) = std::thread::scope(|s| -> Result<(u64, u64)> {
        let program = s.spawn(|| mutate(&heap, &ready, &stop, adopt));
        // Collections back to back, once the list is built, until enough were seen (or
        // the program failed).
        while !ready.load(Ordering::Acquire) && !program.is_finished() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (t0, first) = (Instant::now(), heap.stats().cycles);
        while !program.is_finished() {
            heap.collect()?;
            let st = heap.stats();
            let n = st.cycles - first;
            let done = match cycles {
                Some(wanted) => n >= wanted,
                None => st.verifier_failures > 0 || n >= MAX_CYCLES || t0.elapsed() >= MAX_TIME,
            };
            if done {
                break;
            }
        }
        stop.store(true, Ordering::Release);
        let moves = program.join().expect("the program does not panic")?;
        Ok((moves, heap.stats().cycles - first))
    })?;
    let st = heap.stats();
    Ok(Outcome {
        cycles: cycles_run,
        violations: st.verifier_failures,
        moves,
        first: st.verifier_messages.first().cloned(),
    })
}

/// The program: builds the list, says it is `ready`, then, while the collector marks, moves cargo (or, with
/// `adopt`, has new holders adopt it) until `stop`. Returns the moves it made.
fn mutate(heap: &Heap, ready: &AtomicBool, stop: &AtomicBool, adopt: bool) -> Result<u64> {
    let mut m = heap.mutator();
    // Slot 0: next node; slot 1: cargo. The nodes stay reachable from the rooted head
    // and the collector does not move objects, so `list` may keep naming them.
    let head = m.alloc(2, 8)?;
    m.push_root(head)?;
    let mut list: Vec<ObjRef> = vec![head];
    for i in 1..NODES {
        let node = m.alloc(2, 8)?;
        m.write_ref(list[i - 1], 0, Some(node))?;
        list.push(node);
    }
    for &node in &list[NODES - END..] {
        let cargo = m.alloc(0, 8)?;
        m.write_ref(node, 1, Some(cargo))?;
    }
    // The holders of adopted cargo, a chain through their slot 0 from the newest, which
    // this root slot holds; a new chain for each cycle (the old one becomes garbage).
    let holders = m.push_root(head)?;
    let mut marking = false;
    // Moves in all, and in the cycle marking now: each tail node's cargo moves once per
    // cycle, into a head node written once per cycle (a head node written twice would
    // drop its first cargo, and with it the evidence; a tail node's second cargo is
    // the fresh one, allocated black, which nothing can lose).
    let (mut moves, mut this_cycle) = (0u64, 0usize);
    ready.store(true, Ordering::Release);
    while !stop.load(Ordering::Acquire) {
        // Only a move made while the collector marks can hide an object from it.
        if heap.phase() != Phase::ConcurrentMark {
            marking = false;
            m.safepoint();
            std::hint::spin_loop();
            continue;
        }
        if !marking {
            marking = true;
            this_cycle = 0;
            m.set_root(holders, None)?;
        }
        if this_cycle == END {
            m.safepoint();
            std::hint::spin_loop();
            continue;
        }
        // The tail's nodes from the last one back (the last the collector reaches), and
        // the head's from the first on: the collector, tracing from the head, passes
        // each head node long before the program (which makes a move in the time the
        // collector scans many nodes) gets to it.
        let near_tail = list[NODES - 1 - this_cycle];
        // The tail node's cargo, which the collector has not reached yet if it is still
        // marking the list's first part.
        let cargo = m.read_ref(near_tail, 1)?;
        if adopt {
            // Into a new holder (black: allocated during the cycle), at the chain's head.
            let holder = m.alloc(2, 8)?;
            m.write_ref(holder, 0, m.root(holders))?;
            m.set_root(holders, Some(holder))?;
            m.write_ref(holder, 1, cargo)?; // the store the barrier must record
        } else {
            // Into a head node, scanned long ago (its old cargo becomes garbage).
            let near_head = list[this_cycle];
            m.write_ref(near_head, 1, cargo)?; // the store the barrier must record
        }
        // The tail node gets new cargo, so that only that store reaches the old one.
        let fresh = m.alloc(0, 8)?;
        m.write_ref(near_tail, 1, Some(fresh))?;
        moves += 1;
        this_cycle += 1;
        m.safepoint();
    }
    Ok(moves)
}
