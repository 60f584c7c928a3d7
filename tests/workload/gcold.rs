//! GCOld's invariants, on real heaps:
//! - it runs on every available barrier, collecting at least three times with a verifier
//!   (a full re-trace at every remark) that finds nothing, and its own final check of the
//!   trees passes (the run returns an error otherwise);
//! - its model ([`GcOldParams`]) is what a run does: stores, mutations, short-lived and
//!   promoted bytes, and the bytes the heap counts, within 1%;
//! - promotion replaces the oldest tree, one at a time, in FIFO order;
//! - swaps move subtrees between trees without losing or adding a node;
//! - the check finds each kind of damage (a node's height, a missing child, a shared
//!   subtree, a leaf with a child, a missing tree), so that a run that passes it has lost
//!   nothing;
//! - `barrierlab run --workload gcold` runs it.
//!
//! Every heap is used under a timeout, so that a deadlock fails instead of hanging; a
//! barrier the kernel lacks is skipped with its reason (a failure under
//! `BARRIERLAB_REQUIRE_ALL=1`).

use crate::support;

use std::time::Duration;

use barrierlab::workload::gcold::{self, GcOld, GcOldParams};
use barrierlab::workload::{self, RunResult, Workload};
use barrierlab::{BarrierKind, Error, Heap, HeapConfig, Mutator, ObjRef};
use support::with_timeout;

const TIMEOUT: u64 = 120;

/// About 1 MB of trees of 10 levels (32 KiB each), steps of 100 KB: small enough for a
/// heap of a few MiB.
fn small() -> GcOldParams {
    GcOldParams {
        live_bytes: 1_000_000,
        tree_height: 10,
        step_bytes: 100_000,
        short_per_long: 10,
        mutations_per_step: 100,
        work_units: 0,
        steps: 200,
        seed: 7,
    }
}

/// Runs `w` on `threads` threads under the timeout; `None` (after the skip message) when
/// the barrier is missing.
fn run(test: &str, cfg: HeapConfig, w: Workload, threads: usize) -> Option<RunResult> {
    let what = format!("{test} [{}, {}]", cfg.barrier, w.name());
    let name = what.clone();
    match with_timeout(TIMEOUT, &name, move || workload::run(&cfg, &w, threads)) {
        Ok(r) => Some(r),
        Err(e) if support::is_missing_feature(&e) => {
            support::skip_or_fail(&what, &e.to_string());
            None
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

#[test]
fn gcold_collects_and_keeps_its_trees_on_every_barrier() {
    // Two threads of about 1 MB of trees each, with enough mutator work between the
    // allocations that most cycles run concurrently; GCOld's low mutation rate and one
    // a hundred times higher (a swap every 20 bytes allocated).
    const HEAP: usize = 16 << 20;
    let cases = BarrierKind::ALL
        .into_iter()
        .flat_map(|kind| [(kind, 100), (kind, 10_000)]);
    for (kind, mutations_per_step) in cases {
        let w = Workload::GcOld(GcOldParams {
            work_units: 20,
            mutations_per_step,
            ..small()
        })
        .scaled_to_heap(HEAP, 2);
        let cfg = HeapConfig::new()
            .heap_bytes(HEAP)
            .barrier(kind)
            .verify(true);
        let Some(r) = run(test_name!(), cfg, w, 2) else {
            continue;
        };
        let s = &r.stats;
        let Workload::GcOld(p) = w else {
            unreachable!("scaled from GCOld")
        };
        eprintln!(
            "{kind} {}: {} steps, {} cycles, {} fallbacks, {:.1} MiB allocated in {:?}",
            w.name(),
            p.steps,
            s.cycles,
            s.fallbacks(),
            s.bytes_allocated as f64 / (1 << 20) as f64,
            r.wall
        );
        assert_eq!(r.work, 2 * p.steps, "{kind}: every step of both threads");
        assert!(s.cycles >= 3, "{kind}: {} cycles", s.cycles);
        assert_eq!(s.verifier_failures, 0, "{kind}: {:?}", s.verifier_messages);
    }
}

#[test]
fn gcold_does_what_its_model_says() {
    // Promotion of whole trees and of partial ones, mutations beyond the replacements,
    // and mutator work.
    let p = GcOldParams {
        short_per_long: 1,
        step_bytes: 300_000,
        mutations_per_step: 41,
        work_units: 1,
        steps: 60,
        ..small()
    };
    let plan = p.plan();
    let heap = Heap::new(HeapConfig::new().heap_bytes(8 << 20)).expect("a card-table heap");
    let h = heap.clone();
    let out = with_timeout(TIMEOUT, "gcold model", move || {
        gcold::run(&mut h.mutator(), &p, 0).expect("GCOld ran and its trees are intact")
    });
    assert!(heap.stats().cycles > 0, "the run collected");
    assert_eq!(out.steps, p.steps);
    assert_eq!(out.ref_stores + out.payload_writes, p.stores());
    assert_eq!(out.mutations, p.steps * p.mutations_made_per_step());
    // 300,000 bytes: nine trees of 10 levels (32,736 bytes each), then trees of 7 and 5
    // levels, 320 bytes left. 41 mutations: the two replacements and 19 swaps (the odd
    // one is not made).
    assert_eq!(
        (plan.full_trees, &plan.partial_heights[..]),
        (9, &[7, 5][..])
    );
    assert_eq!(p.mutations_made_per_step(), 40);
    assert_eq!(out.young_bytes, p.steps * p.young_per_step() * 816);
    assert_eq!(out.promoted_bytes, p.steps * p.promoted_bytes_per_step());
    assert_eq!(out.work_sum, p.steps * p.step_bytes / 10);
    assert_eq!(out.check.trees, p.trees());
    assert_eq!(out.check.nodes, p.trees() * GcOldParams::tree_nodes(10));
    // What the heap counts is the model's allocation, on one thread and on two.
    for threads in [1, 2] {
        let w = Workload::GcOld(p);
        let Some(r) = run(
            test_name!(),
            HeapConfig::new().heap_bytes(16 << 20),
            w,
            threads,
        ) else {
            return;
        };
        let estimate = w.allocation_estimate() * threads as u64;
        let ratio = r.stats.bytes_allocated as f64 / estimate as f64;
        assert!(
            (1.0 / 1.01..=1.01).contains(&ratio),
            "{threads} threads: estimate {estimate}, allocated {}",
            r.stats.bytes_allocated
        );
    }
}

/// The root of every tree.
fn tops(g: &GcOld, m: &Mutator, n: u64) -> Vec<ObjRef> {
    (0..n as usize)
        .map(|i| g.tree(m, i).expect("a slot").expect("a tree"))
        .collect()
}

#[test]
fn promotion_replaces_the_oldest_tree_first() {
    // Each step promotes exactly one whole tree and mutates nothing.
    let p = GcOldParams {
        step_bytes: GcOldParams::tree_bytes(10),
        short_per_long: 1,
        mutations_per_step: 0,
        ..small()
    };
    assert_eq!(p.plan().full_trees, 1);
    assert!(p.plan().partial_heights.is_empty());
    let heap = Heap::new(HeapConfig::new().heap_bytes(4 << 20)).expect("a card-table heap");
    let h = heap.clone();
    with_timeout(TIMEOUT, "gcold fifo", move || {
        let mut m = h.mutator();
        let mut g = GcOld::new(&mut m, &p, 0).expect("the trees");
        let n = p.trees();
        let mut before = tops(&g, &m, n);
        let mut check = g.check(&mut m).expect("intact");
        // Around the array twice, so that the cursor wraps: 63 steps of 32 KiB of trees
        // and 33 KB of garbage, more than the 4 MiB heap holds, so collections run.
        for s in 0..2 * n + 3 {
            let oldest = g.cursor();
            assert_eq!(oldest as u64, s % n, "step {s}");
            g.step(&mut m).expect("a step");
            let after = tops(&g, &m, n);
            for i in 0..n as usize {
                let replaced = after[i] != before[i];
                assert_eq!(
                    replaced,
                    i == oldest,
                    "step {s}: tree {i} (oldest {oldest})"
                );
            }
            let now = g.check(&mut m).expect("intact");
            assert_eq!(now.nodes, check.nodes, "step {s}");
            assert_ne!(now.fingerprint, check.fingerprint, "step {s}: new nodes");
            (before, check) = (after, now);
        }
        g.release(&mut m);
    });
    assert!(heap.stats().cycles > 0, "collections ran between the steps");
}

#[test]
fn swaps_move_subtrees_without_losing_a_node() {
    // Nothing promoted (10 bytes a step, below INSIGNIFICANT); 500 mutations a step.
    let p = GcOldParams {
        short_per_long: 10_000,
        mutations_per_step: 500,
        ..small()
    };
    assert_eq!(p.promoted_bytes_per_step(), 0);
    let heap =
        Heap::new(HeapConfig::new().heap_bytes(4 << 20).verify(true)).expect("a card-table heap");
    let h = heap.clone();
    with_timeout(TIMEOUT, "gcold swaps", move || {
        let mut m = h.mutator();
        let mut g = GcOld::new(&mut m, &p, 0).expect("the trees");
        let n = p.trees();
        let first = g.check(&mut m).expect("intact");
        let children = |g: &GcOld, m: &Mutator| -> Vec<Option<ObjRef>> {
            tops(g, m, n)
                .into_iter()
                .map(|t| m.read_ref(t, 0).expect("a slot"))
                .collect()
        };
        let (tops0, kids0) = (tops(&g, &m, n), children(&g, &m));
        let stores0 = g.counts.ref_stores;
        // 60 steps allocate 6 MB in a heap of 4 MiB: collections must run.
        for _ in 0..60 {
            g.step(&mut m).expect("a step");
        }
        assert_eq!(
            g.counts.ref_stores - stores0,
            60 * 500,
            "two stores per swap"
        );
        // The roots stay (a swap moves children), some roots' children moved...
        assert_eq!(tops(&g, &m, n), tops0);
        assert_ne!(
            children(&g, &m),
            kids0,
            "no swap at depth 0 in 15,000 swaps"
        );
        // ... and the trees hold the same nodes as before, all of them.
        assert_eq!(g.check(&mut m).expect("intact"), first);
        g.release(&mut m);
    });
    let s = heap.stats();
    assert!(s.cycles > 0, "collections ran between the swaps");
    assert_eq!(s.verifier_failures, 0, "{:?}", s.verifier_messages);
}

/// A node at `depth` of tree `i`, down the left side.
fn node(g: &GcOld, m: &Mutator, i: usize, depth: u32) -> ObjRef {
    let mut n = g.tree(m, i).expect("a slot").expect("a tree");
    for _ in 0..depth {
        n = m.read_ref(n, 0).expect("a slot").expect("a child");
    }
    n
}

#[test]
fn the_check_finds_every_kind_of_damage() {
    type Damage = fn(&GcOld, &mut Mutator, ObjRef);
    let p = GcOldParams {
        steps: 0,
        ..small()
    };
    let cases: [(&str, &str, Damage); 5] = [
        ("a height overwritten", "holds 0x", |g, m, _| {
            let n = node(g, m, 1, 3);
            m.write_bytes(n, 0, &7u64.to_ne_bytes()).expect("payload");
        }),
        ("a child cut off", "is missing", |g, m, _| {
            let n = node(g, m, 2, 4);
            m.write_ref(n, 1, None).expect("a slot");
        }),
        ("a subtree in two trees", "two places", |g, m, _| {
            let (a, b) = (node(g, m, 0, 2), node(g, m, 3, 3));
            m.write_ref(a, 0, Some(b)).expect("a slot");
        }),
        ("a leaf with a child", "a leaf has a child", |g, m, _| {
            let leaf = node(g, m, 0, 9);
            let extra = m.alloc(2, 8).expect("a node");
            m.write_ref(leaf, 0, Some(extra)).expect("a slot");
        }),
        ("a tree missing", "is missing", |_, m, array| {
            m.write_ref(array, 4, None).expect("an array slot");
        }),
    ];
    let heap = Heap::new(HeapConfig::new().heap_bytes(8 << 20)).expect("a card-table heap");
    with_timeout(TIMEOUT, "gcold damage", move || {
        let mut m = heap.mutator();
        for (what, says, damage) in cases {
            let base = m.roots_len();
            let g = GcOld::new(&mut m, &p, 0).expect("the trees");
            let whole = g.check(&mut m).expect("intact before the damage");
            assert_eq!(whole.nodes, p.trees() * GcOldParams::tree_nodes(10));
            let array = m.root(base).expect("the array is the first root");
            damage(&g, &mut m, array);
            match g.check(&mut m) {
                Err(e @ Error::Misbehaved { .. }) => {
                    let text = e.to_string();
                    assert!(text.contains(says), "{what}: {text}");
                    assert!(
                        text.contains("card-table"),
                        "{what} names the barrier: {text}"
                    );
                }
                other => panic!("{what}: the check returned {other:?}"),
            }
            g.release(&mut m);
        }
    });
}

#[test]
fn run_workload_gcold_prints_its_result() {
    let out = support::binary::run(
        &[
            "run",
            "--workload",
            "gcold",
            "--barrier",
            "card-table",
            "--json",
        ],
        &[],
        Duration::from_secs(TIMEOUT),
    );
    assert!(out.success(), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    assert_eq!(v["workload"], "gcold", "{v}");
    assert!(v["cycles"].as_u64().expect("cycles") > 0, "{v}");
}
