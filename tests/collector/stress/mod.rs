//! The shadow-graph stress test: random mutator programs run against the heap and against
//! a model of it (the *shadow*), on 1, 2 and 4 mutator threads, over every barrier, while
//! collections run back to back. It checks the collector's two safety properties:
//!
//! - **No reachable object is ever freed or changed**: at regular points every object
//!   reachable from the roots in the shadow is compared with the heap (it is live, has
//!   the same shape, the same payload bytes, and each reference slot names the object
//!   with the expected id). The collector may be in any phase meanwhile (marking,
//!   pre-cleaning, sweeping): a reachable object must be intact in all of them.
//! - **Garbage stays garbage**: at a checkpoint, every object that the shadow says is
//!   unreachable (it can never become reachable again: the program only stores
//!   references to objects it reached from a root) is remembered; after a `collect()`,
//!   which runs a whole cycle that starts after the call, each must be free, or its cell
//!   reused by another object (the id in its first payload bytes differs). Each thread
//!   has its own graph, so one thread's checkpoint is exact whatever the others do; they
//!   keep mutating during it, which makes the cycle more interesting, not less exact.
//!
//! And the verifier (a full re-trace at every remark) must report nothing.
//!
//! Every object carries a unique id (thread in the high bits) in its first 8 payload
//! bytes. The program: allocations (0–5 reference slots, 8–200 payload bytes, sometimes a
//! multi-page object) linked at once into a reachable object or a root, reference stores
//! (to a reachable object or null), payload stores, root pushes, pops and sets. Targets
//! are found by random walks from the roots over the shadow, so the program never touches
//! an object that may already have been freed.
//!
//! The collector's knobs (pre-clean rounds and threshold, trigger, conditional cards, the
//! `uffd-wp` fault-service layout) are drawn from the seed too.
//!
//! Two sizings: a roomy heap with collections back to back from another thread, and a
//! tight one ([`Sizing::Tight`]: 1.5 times the programs' live-set budget, a late trigger,
//! no pacer, no collections back to back), where allocations must fall back to full
//! collections, and the same checks must hold across them.
//!
//! Knobs (see `support`): `BARRIERLAB_SEED` reproduces a program (the seed is in
//! every failure message), `BARRIERLAB_SOAK` runs longer, `BARRIERLAB_REQUIRE_ALL=1` turns
//! a skipped barrier into a failure; `BARRIERLAB_STRESS_KINDS=uffd-wp,mprotect` runs only
//! those barriers.

use crate::support;

mod program;
mod run;

use std::time::Instant;

use run::{run_config, stress_kinds};
use support::shadow::Schedule;
use support::{Soak, base_seed};

/// Heap size: small, so that allocation alone triggers collections often.
const HEAP_BYTES: usize = 4 << 20;
/// Mutator operations per configuration (split among its threads), in a release build.
const OPS_PER_CONFIG: u64 = 400_000;
/// Operations between two comparisons of the shadow with the heap.
const VERIFY_EVERY: u64 = 1_500;
/// Comparisons between two checkpoints (collect, then check that garbage was freed).
const CHECKPOINT_EVERY: u64 = 4;
/// Most roots a thread keeps.
const MAX_ROOTS: usize = 12;
/// A random walk from a root follows fewer edges than this.
const WALK_STEPS: usize = 12;

/// The tight heaps' live-set budget (all threads together): the heap is
/// [`TIGHT_FACTOR`] times this, so concurrent cycles cannot keep up and allocations fall
/// back to full collections.
const TIGHT_BUDGET: usize = 512 << 10;
/// The tight heaps' size over their live-set budget: 1.5, not 1.25. The budget is not
/// the heap's true minimum: the programs overshoot it between comparisons (more with
/// more threads), and cells of 20 size classes leave partly used pages, so at 1.25 a run
/// could run out of memory legitimately now and then (seen in about 1 of 6 runs on 2
/// threads under load, with an old seed as often as a new one). 1.25 times the measured
/// stop-the-world minimum is `tests/collector/concurrent_mode_failure.rs`'s job.
const TIGHT_FACTOR: f64 = 1.5;
/// Operations between comparisons in a tight heap: the program overshoots its budget by
/// at most what it allocates between two comparisons, so they come more often there.
const TIGHT_VERIFY_EVERY: u64 = 200;
/// Comparisons between two checkpoints in a tight heap: the checkpoints' collections
/// must leave the allocations room to fail.
const TIGHT_CHECKPOINT_EVERY: u64 = 25;
/// Mutator operations per tight configuration (split among its threads), in a release
/// build.
const TIGHT_OPS_PER_CONFIG: u64 = 200_000;

/// How a configuration sizes its heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sizing {
    /// [`HEAP_BYTES`], with a fifth of it as the live-set budget: collections are
    /// frequent, fallbacks rare.
    Roomy,
    /// [`TIGHT_FACTOR`] times [`TIGHT_BUDGET`], no collections back to back, fewer
    /// checkpoints, a late trigger and no pacer: fallbacks must happen.
    Tight,
}

impl Sizing {
    fn heap_bytes(self) -> usize {
        match self {
            Sizing::Roomy => HEAP_BYTES,
            Sizing::Tight => ((TIGHT_BUDGET as f64 * TIGHT_FACTOR) as usize)
                .next_multiple_of(barrierlab::sys::PAGE_SIZE),
        }
    }

    /// Each thread's live-set budget.
    fn budget(self, threads: usize) -> usize {
        match self {
            Sizing::Roomy => HEAP_BYTES / 5 / threads,
            Sizing::Tight => TIGHT_BUDGET / threads,
        }
    }

    fn schedule(self) -> Schedule {
        match self {
            Sizing::Roomy => Schedule {
                verify_every: VERIFY_EVERY,
                checkpoint_every: CHECKPOINT_EVERY,
            },
            Sizing::Tight => Schedule {
                verify_every: TIGHT_VERIFY_EVERY,
                checkpoint_every: TIGHT_CHECKPOINT_EVERY,
            },
        }
    }

    /// Whether a thread runs collections back to back meanwhile.
    fn back_to_back(self) -> bool {
        self == Sizing::Roomy
    }

    /// The largest payload of a large object. In a tight heap it fits one page: the
    /// collector does not move objects, so after a while the free pages are scattered
    /// and a multi-page object may find no run of free pages even after a full
    /// collection (an out-of-memory that is right, and not what is tested here).
    fn large_max(self) -> usize {
        match self {
            Sizing::Roomy => 16_000,
            Sizing::Tight => 4_000,
        }
    }

    fn ops_per_config(self) -> u64 {
        match self {
            Sizing::Roomy => OPS_PER_CONFIG,
            Sizing::Tight => TIGHT_OPS_PER_CONFIG,
        }
    }
}

fn shadow_graph(threads: usize) {
    let test = format!("shadow_graph_{threads}_threads");
    let base = base_seed(&test);
    let soak = Soak::from_env();
    let mut cycles = 0;
    let mut ran = Vec::new();
    for kind in stress_kinds() {
        let started = Instant::now();
        let mut round = 0;
        while soak.another(round, started) {
            match run_config(kind, threads, Sizing::Roomy, base, round, soak) {
                Some(r) => cycles += r.cycles,
                None => break,
            }
            round += 1;
        }
        if round > 0 {
            ran.push(kind.name());
        }
    }
    eprintln!(
        "{test}: {cycles} cycles in all over {} (seed {base})",
        ran.join(", ")
    );
    assert!(!ran.is_empty(), "{test}: no barrier could run");
}

#[test]
fn shadow_graph_1_thread() {
    shadow_graph(1);
}

#[test]
fn shadow_graph_2_threads() {
    shadow_graph(2);
}

#[test]
fn shadow_graph_4_threads() {
    shadow_graph(4);
}

/// Every barrier on 1, 2 and 4 threads in a heap of [`TIGHT_FACTOR`] times the programs'
/// live-set budget: the concurrent cycles cannot keep up, allocations fall back to full
/// collections (at least one per barrier over its runs), and nothing reachable may be
/// lost or garbage kept meanwhile (the same checks as above).
#[test]
fn shadow_graph_in_a_heap_near_its_live_set() {
    let test = "shadow_graph_in_a_heap_near_its_live_set";
    let base = base_seed(test);
    let soak = Soak::from_env();
    let mut ran = Vec::new();
    for kind in stress_kinds() {
        let (mut cycles, mut fallbacks, mut configs) = (0, 0, 0);
        for threads in [1, 2, 4] {
            let started = Instant::now();
            let mut round = 0;
            while soak.another(round, started) {
                match run_config(kind, threads, Sizing::Tight, base, round, soak) {
                    Some(r) => {
                        cycles += r.cycles;
                        fallbacks += r.fallbacks;
                        configs += 1;
                    }
                    None => break,
                }
                round += 1;
            }
        }
        if configs == 0 {
            continue;
        }
        assert!(
            fallbacks > 0,
            "{test}: {kind} never fell back to a full collection in {configs} runs ({cycles} \
             cycles) in a {} KiB heap (seed {base})",
            Sizing::Tight.heap_bytes() >> 10
        );
        ran.push(format!("{kind}: {fallbacks} fallbacks in {cycles} cycles"));
    }
    eprintln!("{test}: {} (seed {base})", ran.join(", "));
    assert!(!ran.is_empty(), "{test}: no barrier could run");
}
