//! Allocation during every phase of a cycle: a stress case aimed at the allocator (runs
//! of free cells reserved in bulk, allocation black from the initial-mark flip, the sweep
//! freeing and zeroing cells beside mutators that hold runs in the same pages).
//!
//! For every barrier, on 1, 2 and 4 mutator threads, with collections back to back
//! (a thread that is not a mutator calls `collect()` in a loop; the heap is small, so
//! the trigger fires too), each mutator allocates and links objects into a rooted
//! structure of its own: most land in a reachable slot (inserted in front of the old
//! target while the structure grows, replacing it while it shrinks, so that whole
//! subgraphs become garbage), some are garbage at once; sizes span every small class,
//! and a few objects are large (a span of pages). Just before each allocation the
//! mutator reads `Heap::phase()` and counts the allocation under that phase. A mutator
//! cannot allocate *inside* a pause (the pause stops it), but it can read the pause's
//! phase right after the pause, before the collector moves on: those are counted as
//! allocations that *raced* the pause.
//!
//! Checked, against a shadow of each thread's structure (every object carries its id in
//! its first 8 payload bytes and a pattern derived from it in the rest):
//! - at regular points, after each `collect()` and at the end: every object reachable
//!   in the shadow is live, with its id, shape, payload and children (each slot names the
//!   object with the expected id);
//! - after each `collect()` (a whole cycle that starts after the call): every object
//!   that was unreachable before it is free, or its cell was reused (another id);
//! - the verifier (a full re-trace at every remark) reports nothing;
//! - allocations were observed in every phase a mutator can run in, and large objects
//!   (whole page spans, handed to the mutator dirty while the tracker is armed) among
//!   them in pre-clean: arm, concurrent mark, pre-clean, disarm and sweep for the
//!   concurrent barriers (for the two whose
//!   disarm does nothing, the interval after the remark pause and before the sweep
//!   instead: see [`phases::required`]); idle and sweep for `none`. To keep short phases
//!   observable the collector pre-cleans up to 8 rounds to a threshold of 0 and verifies
//!   at every remark, and each configuration runs past its minimum number of operations
//!   until every such phase has been seen (or a deadline).
//!
//! Beside the mutators, a churn thread makes short-lived mutators one after another:
//! each allocates a rooted list, checks it, and is dropped, giving back its runs of free
//! cells in whatever phase the collector is in; after a later collection the lists of
//! dropped mutators must be gone.
//!
//! `BARRIERLAB_SEED` reproduces each thread's program (the interleaving of threads and
//! collector is the machine's); the seed is printed and is in every failure message.
//! `BARRIERLAB_REQUIRE_ALL=1` turns a barrier this kernel lacks into a failure.

use crate::support;

mod churn;
mod phases;
mod program;
mod run;

use std::time::Duration;

use barrierlab::{BarrierKind, Phase};

use run::run_config;
use support::shadow::Schedule;
use support::{base_seed, with_timeout};

/// Payloads from this size on make a large object (a span of pages: past the largest
/// size class).
const LARGE_PAYLOAD: usize = 2100;

/// Small: a cycle takes well under a millisecond, so many run during a configuration.
const HEAP_BYTES: usize = 2 << 20;
/// Objects a configuration keeps reachable at most (split among its threads), before
/// its threads start cutting edges: about a tenth of the heap.
const BUDGET_OBJECTS: usize = 3_000;
/// Operations per configuration at least (split among its threads), in a release build.
const MIN_OPS: u64 = 120_000;
/// A configuration stops looking for unobserved phases after this long.
const DEADLINE: Duration = Duration::from_secs(6);
/// A comparison of the shadow with the heap every 1000 operations, and every fourth of
/// them a checkpoint (collect, then check that garbage was freed).
const SCHEDULE: Schedule = Schedule {
    verify_every: 1_000,
    checkpoint_every: 4,
};
/// Roots per thread, each an anchor object with a few slots.
const ROOTS: usize = 6;
const ANCHOR_SLOTS: usize = 4;
/// A random walk from a root follows fewer edges than this.
const WALK_STEPS: usize = 10;
/// The churn thread's rest between two short-lived mutators.
const CHURN_PAUSE: Duration = Duration::from_micros(200);
/// The whole test of one thread count (every barrier) must end within this.
const TIMEOUT_SECS: u64 = 180;

const PHASES: usize = Phase::ALL.len();

/// Payload byte `i` of object `id`: the id itself in bytes 0..8, a pattern after.
fn payload_of(id: u64, len: usize) -> Vec<u8> {
    let mut b: Vec<u8> = (0..len)
        .map(|i| (id as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect();
    b[..8].copy_from_slice(&id.to_le_bytes());
    b
}

fn alloc_phases(threads: usize) {
    let test = format!("alloc_phases_{threads}_threads");
    let base = base_seed(&test);
    with_timeout(TIMEOUT_SECS, &test.clone(), move || {
        let mut ran = Vec::new();
        for kind in BarrierKind::ALL {
            if run_config(kind, threads, base).is_some() {
                ran.push(kind.name());
            }
        }
        eprintln!("{test}: ran {} (seed {base})", ran.join(", "));
        assert!(!ran.is_empty(), "{test}: no barrier could run");
    });
}

#[test]
fn alloc_phases_1_thread() {
    alloc_phases(1);
}

#[test]
fn alloc_phases_2_threads() {
    alloc_phases(2);
}

#[test]
fn alloc_phases_4_threads() {
    alloc_phases(4);
}
