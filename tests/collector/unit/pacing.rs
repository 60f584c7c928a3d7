//! Pre-clean pacing (`collector/pace.rs`): while pacing is on, an allocating mutator
//! waits now and then, counted as stopped, and nothing reachable is lost by it; with
//! pacing off it never waits; a share outside (0, 1) is refused.

use barrierlab::internals::Testing;
use barrierlab::{BarrierKind, Heap, HeapConfig, Phase};

use super::helped_mark::{FANOUT, RootedTree};
use super::{assert_invalid, for_every_barrier};

/// Cycles the mutator runs through before it gives up waiting for a paced wait. Forced
/// pacing is held on for 5 ms per cycle (`Testing::pace_from_first_round`), fifty times
/// the run after which a polling mutator owes a wait; without the hold it stayed on for
/// 70 µs to 2 ms, and fresh-clone CI runs saw 40 cycles of `uffd-wp` and of
/// `uffd-wp-sigbus` without a wait.
const MOST_CYCLES: u64 = 40;
/// Cycles it runs through in any case.
const LEAST_CYCLES: u64 = 4;

fn forced(kind: BarrierKind, share: Option<f64>) -> HeapConfig {
    HeapConfig::new()
        .heap_bytes(64 << 20)
        .barrier(kind)
        .preclean_pacing(share)
        .testing(Testing {
            pace_from_first_round: true,
            ..Testing::default()
        })
        .verify(true)
}

/// Builds a tree (16 MiB, so that a pre-clean round has milliseconds of rescanning to
/// do), then allocates garbage and rewrites a slot of every tree node over and
/// over (so that every pre-clean round finds work), polling at every node, until a paced wait was seen, or
/// [`MOST_CYCLES`] ran. Checks the tree and the verifier, and returns the heap's waits.
fn run(heap: &Heap) -> Vec<barrierlab::Stall> {
    let mut m = heap.mutator();
    let tree = RootedTree::build(&mut m);
    let first = heap.stats().cycles;
    loop {
        let st = heap.stats();
        let n = st.cycles - first;
        if n >= MOST_CYCLES || (n >= LEAST_CYCLES && !st.paced.is_empty()) {
            break;
        }
        // Each node's last slot is rewritten with what it holds: the same graph, with
        // every node's granule dirty again; and garbage allocated beside it.
        let mut stack = vec![m.root(tree.root).expect("rooted")];
        while let Some(node) = stack.pop() {
            let last = m.read_ref(node, FANOUT - 1).expect("slot");
            m.write_ref(node, FANOUT - 1, last).expect("rewrite");
            for i in 0..FANOUT {
                stack.extend(m.read_ref(node, i).expect("slot"));
            }
            m.alloc(2, 16).expect("garbage");
            // A poll per node, as a real mutator's loop has: small allocations take the
            // slow path (where pacing is also checked) only once per run of cells, and a
            // forced pre-clean round can end before the next one (seen: 40 cycles of
            // `uffd-wp-sigbus` without a wait).
            m.safepoint();
        }
    }
    tree.check(heap, &m);
    heap.stats().paced
}

#[test]
fn a_paced_mutator_waits_in_pre_clean_and_loses_nothing() {
    for_every_barrier(
        "a_paced_mutator_waits_in_pre_clean_and_loses_nothing",
        |k| forced(k, Some(0.3)),
        |heap| {
            let kind = heap.barrier();
            let paced = run(&heap);
            let cycles = heap.stats().cycle_log;
            if kind == BarrierKind::None {
                // No pre-clean: every collection stops the world for the whole mark.
                assert!(paced.is_empty(), "{kind}: {} paced waits", paced.len());
                assert!(cycles.iter().all(|c| c.paced_from_round.is_none()));
                return;
            }
            assert!(
                !paced.is_empty(),
                "{kind}: no paced wait in {} cycles (pre-clean rounds: {:?})",
                cycles.len(),
                cycles
                    .iter()
                    .map(|c| c.preclean_dirty.len())
                    .collect::<Vec<_>>()
            );
            assert!(
                paced.iter().all(|w| w.phase == Some(Phase::Preclean)),
                "{kind}: a wait outside pre-clean: {paced:?}"
            );
            assert!(
                cycles.iter().any(|c| c.paced_from_round == Some(1)),
                "{kind}: pacing forced from round 1, but no cycle says so"
            );
        },
    );
}

#[test]
fn with_pacing_off_a_mutator_never_waits() {
    for kind in [BarrierKind::CardTable, BarrierKind::UffdWpSigbus] {
        let what = format!("with_pacing_off_a_mutator_never_waits [{kind}]");
        if let Some(heap) = crate::support::heap_or_skip(forced(kind, None), &what) {
            crate::support::with_timeout(60, &what, move || {
                let paced = run(&heap);
                assert!(paced.is_empty(), "{kind}: {} paced waits", paced.len());
                let cycles = heap.stats().cycle_log;
                assert!(
                    cycles.len() >= LEAST_CYCLES as usize,
                    "{kind}: {} cycles",
                    cycles.len()
                );
                assert!(cycles.iter().all(|c| c.paced_from_round.is_none()));
            });
        }
    }
}

#[test]
fn a_pacing_share_outside_0_to_1_is_refused() {
    for share in [0.0, 1.0, -0.5, f64::NAN, f64::INFINITY] {
        let config = HeapConfig::new().preclean_pacing(Some(share));
        assert_invalid(Heap::new(config), &format!("preclean_pacing({share})"));
    }
}
