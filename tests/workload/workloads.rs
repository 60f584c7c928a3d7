//! The workloads that mutate old objects (the LRU cache, binary trees) and the
//! workloads sized by their heap, checked through the driver's statistics:
//! - every new workload, scaled to a small heap, runs on every available barrier with at
//!   least three collections and a verifier (a full re-trace at every remark) that finds
//!   nothing; the workloads check their own structures at the end (the cache's list and
//!   buckets, the tree's node count);
//! - the LRU cache agrees with a `HashMap` shadow of an LRU cache, get by get, and its
//!   hit ratio is the one its docs state;
//! - each workload's allocation estimate is within 1% of `Stats::bytes_allocated`
//!   ([`ESTIMATE_FACTOR`], 20%, for the LRU cache, whose misses are estimated), and
//!   `scaled_to_heap` allocates at least ten heaps;
//! - the stores counted per thread (for per-store costs) are the stores made;
//! - the graph's measured stores per dirtied page follow its knob.
//!
//! Every run is under a timeout, so that a deadlock fails instead of hanging; a barrier
//! the kernel lacks is skipped with its reason (a failure under
//! `BARRIERLAB_REQUIRE_ALL=1`). The tests whose checks depend on where a mutator's
//! stores fall against the collector's cycles run one at a time ([`SERIAL`]): on two
//! CPUs, a test beside them can keep a mutator off its CPU for a whole window.

use crate::support;

use std::collections::{BTreeMap, HashMap};

use barrierlab::workload::binary_trees;
use barrierlab::workload::lru::{self, LruCache};
use barrierlab::workload::{
    self, BinaryTreesParams, GcBenchParams, GraphParams, KeyDistribution, LruParams, RunResult,
    Workload,
};
use barrierlab::{BarrierKind, Heap, HeapConfig};
use support::with_timeout;

/// The LRU cache's allocation estimate (its misses from the expected hit ratio) is within
/// this factor of `Stats::bytes_allocated` (both ways).
const ESTIMATE_FACTOR: f64 = 1.2;

/// The other workloads' estimates count every object they allocate: within 1%.
const EXACT_FACTOR: f64 = 1.01;

/// The graph's measured stores per dirtied page are within this factor of the knob.
const SPP_FACTOR: f64 = 2.0;

const TIMEOUT: u64 = 120;

fn small_lru() -> LruParams {
    LruParams {
        capacity: 4_000,
        value_bytes: 64,
        operations: 100_000,
        key_space: 16_000,
        keys: KeyDistribution::Zipf,
        seed: 7,
    }
}

fn small_trees() -> BinaryTreesParams {
    BinaryTreesParams {
        depth: 13,
        subtree_depth: 4,
        operations: 10_000,
        swaps: 2,
        seed: 7,
    }
}

fn small_graph() -> GraphParams {
    GraphParams {
        objects: 20_000,
        stores: 400_000,
        alloc_every: 8,
        ..GraphParams::default()
    }
}

/// Runs `w` on `threads` threads under the timeout; `None` (after the skip message) when
/// the barrier is missing.
/// Held by the tests that measure stores inside collection windows (module docs).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn run(test: &str, cfg: HeapConfig, w: Workload, threads: usize) -> Option<RunResult> {
    let what = format!("{test} [{}, {}]", cfg.barrier, w.name());
    let name = what.clone();
    let r = with_timeout(TIMEOUT, &name, move || workload::run(&cfg, &w, threads));
    match r {
        Ok(r) => Some(r),
        Err(e) if support::is_missing_feature(&e) => {
            support::skip_or_fail(&what, &e.to_string());
            None
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Tries of a graph run for a measured stores-per-dirtied-page figure.
const TRIES: usize = 3;

/// [`run`]'s graph run and its stores per dirtied page, tried up to [`TRIES`] times while
/// no cycle was counted: on a loaded machine a short cycle can run entirely while the
/// store loop is off its CPU, and a run without a counted cycle measured nothing (a run
/// that measured a wrong figure is not retried). `None` if the barrier is unavailable.
fn measured_spp(
    test: &str,
    cfg: &HeapConfig,
    p: GraphParams,
    threads: usize,
) -> Option<(RunResult, f64)> {
    for attempt in 1..=TRIES {
        let r = run(test, cfg.clone(), Workload::Graph(p), threads)?;
        match r.stores_per_dirtied_page() {
            Some(spp) => return Some((r, spp)),
            None => eprintln!(
                "{test} [{}]: attempt {attempt} of {TRIES}: no cycle inside the store loop \
                 ({} cycles)",
                cfg.barrier, r.stats.cycles
            ),
        }
    }
    panic!(
        "{test} [{}]: no cycle inside the store loop in {TRIES} runs",
        cfg.barrier
    );
}

#[test]
fn new_workloads_collect_on_every_barrier() {
    const HEAP: usize = 4 << 20;
    for kind in BarrierKind::ALL {
        for w in [
            Workload::Lru(small_lru()),
            Workload::BinaryTrees(small_trees()),
        ] {
            let w = w.scaled_to_heap(HEAP, 2);
            let cfg = HeapConfig::new()
                .heap_bytes(HEAP)
                .barrier(kind)
                .verify(true);
            let Some(r) = run(test_name!(), cfg, w, 2) else {
                continue;
            };
            let s = &r.stats;
            eprintln!(
                "{kind} {}: {} cycles, {} fallbacks, {:.1} MiB allocated in {:?}",
                w.name(),
                s.cycles,
                s.fallbacks(),
                s.bytes_allocated as f64 / (1 << 20) as f64,
                r.wall
            );
            assert!(s.cycles >= 3, "{kind} {}: {} cycles", w.name(), s.cycles);
            assert_eq!(
                s.verifier_failures,
                0,
                "{kind} {}: {:?}",
                w.name(),
                s.verifier_messages
            );
        }
    }
}

/// A `HashMap` shadow of an LRU cache: key to (version, last use), and last use to key.
#[derive(Default)]
struct Shadow {
    entries: HashMap<u64, (u64, u64)>,
    by_use: BTreeMap<u64, u64>,
}

impl Shadow {
    fn get(&mut self, key: u64, now: u64) -> Option<u64> {
        let (version, used) = self.entries.get_mut(&key)?;
        self.by_use.remove(used);
        *used = now;
        self.by_use.insert(now, key);
        Some(*version)
    }

    fn put(&mut self, key: u64, version: u64, now: u64, capacity: usize) {
        if self.entries.len() == capacity {
            let (_, old) = self.by_use.pop_first().expect("a full shadow");
            self.entries.remove(&old);
        }
        self.entries.insert(key, (version, now));
        self.by_use.insert(now, key);
    }
}

#[test]
fn lru_agrees_with_a_shadow() {
    // Small enough that keys are evicted and come back; collections run throughout.
    let p = LruParams {
        capacity: 300,
        key_space: 1_000,
        keys: KeyDistribution::Uniform,
        ..LruParams::default()
    };
    let ops = 60_000u64;
    // A fixed trigger at 30% of the heap (no pacer): the run allocates about 5 MiB, and
    // cycles must run throughout it.
    let heap = Heap::new(
        HeapConfig::new()
            .heap_bytes(2 << 20)
            .barrier(BarrierKind::CardTable)
            .pacing(false)
            .trigger(0.3)
            .verify(true),
    )
    .expect("a card-table heap");
    let h = heap.clone();
    let (hits, cycles) = with_timeout(TIMEOUT, "lru shadow", move || {
        use rand::SeedableRng;
        let mut m = h.mutator();
        let mut cache = LruCache::new(&mut m, &p).expect("the cache");
        let mut shadow = Shadow::default();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        let mut hits = 0;
        for i in 0..ops {
            let key = p.keys.sample(&mut rng, p.key_space);
            let got = cache.get(&mut m, key).expect("get");
            let want = shadow.get(key, i);
            match (got, want) {
                (Some(v), Some(version)) => {
                    let stored = LruCache::value_of(&m, v).expect("a live value");
                    assert_eq!(stored, (key, version), "get {i} of key {key}");
                    hits += 1;
                }
                (None, None) => {
                    cache.put(&mut m, key, i).expect("put");
                    shadow.put(key, i, i, p.capacity);
                    // A get right after the put returns the value put.
                    let v = cache.get(&mut m, key).expect("get").expect("just put");
                    assert_eq!(LruCache::value_of(&m, v).expect("a live value"), (key, i));
                    shadow.get(key, i);
                }
                (got, want) => panic!("get {i} of key {key}: cache {got:?}, shadow {want:?}"),
            }
            assert_eq!(cache.len(), shadow.entries.len(), "after get {i}");
        }
        assert_eq!(cache.check(&mut m).expect("the list"), p.capacity);
        cache.release(&mut m);
        (hits, h.stats().cycles)
    });
    let s = heap.stats();
    assert!(
        cycles >= 3,
        "{cycles} cycles ({} MiB allocated)",
        s.bytes_allocated >> 20
    );
    assert_eq!(s.verifier_failures, 0, "{:?}", s.verifier_messages);
    // Uniform keys: a hit ratio of capacity / key space.
    let ratio = hits as f64 / ops as f64;
    assert!((ratio - 0.3).abs() < 0.03, "hit ratio {ratio}");
}

/// The hit ratio the docs state (Che's approximation) is the one the cache shows.
#[test]
fn lru_hit_ratio_is_the_expected_one() {
    for keys in [KeyDistribution::Uniform, KeyDistribution::Zipf] {
        let p = LruParams {
            keys,
            operations: 300_000,
            ..LruParams::default()
        };
        let heap = Heap::new(HeapConfig::new().heap_bytes(32 << 20)).expect("a card-table heap");
        let out = with_timeout(TIMEOUT, "lru hit ratio", move || {
            lru::run(&mut heap.mutator(), &p, 0).expect("the cache ran")
        });
        let measured = out.hits as f64 / out.operations as f64;
        let expected = p.expected_hit_ratio();
        eprintln!("{keys:?}: hit ratio {measured:.4}, expected {expected:.4}");
        // Within 0.03: the estimate is the steady state, the run includes the warm-up.
        assert!(
            (measured - expected).abs() < 0.03,
            "{keys:?}: hit ratio {measured}, expected {expected}"
        );
        // The stores counted for per-store costs are the stores made, within 2%.
        let stores = (out.ref_stores + out.payload_writes) as f64;
        let counted = Workload::Lru(p).stores_per_thread() as f64;
        assert!(
            (counted / stores - 1.0).abs() < 0.02,
            "{keys:?}: {counted} stores counted, {stores} made"
        );
    }
}

#[test]
fn binary_trees_count_their_stores() {
    let p = small_trees();
    let heap = Heap::new(HeapConfig::new().heap_bytes(16 << 20)).expect("a card-table heap");
    let out = with_timeout(TIMEOUT, "binary trees stores", move || {
        binary_trees::run(&mut heap.mutator(), &p, 0).expect("the trees ran")
    });
    assert_eq!(out.ref_stores, Workload::BinaryTrees(p).stores_per_thread());
}

fn every_workload() -> [Workload; 4] {
    [
        Workload::GcBench(GcBenchParams::QUICK),
        Workload::Graph(small_graph()),
        Workload::Lru(small_lru()),
        Workload::BinaryTrees(small_trees()),
    ]
}

#[test]
fn allocation_estimates_match_bytes_allocated() {
    for w in every_workload() {
        for threads in [1, 2] {
            let cfg = HeapConfig::new().heap_bytes(64 << 20);
            let Some(r) = run(test_name!(), cfg, w, threads) else {
                return;
            };
            let estimate = w.allocation_estimate() * threads as u64;
            let actual = r.stats.bytes_allocated;
            let ratio = actual as f64 / estimate as f64;
            eprintln!(
                "{} x{threads}: estimate {estimate}, allocated {actual} ({ratio:.3}), {:.1} \
                 bytes per operation",
                w.name(),
                actual as f64 / r.work as f64
            );
            let factor = match w {
                Workload::Lru(_) => ESTIMATE_FACTOR,
                _ => EXACT_FACTOR,
            };
            assert!(
                (1.0 / factor..=factor).contains(&ratio),
                "{} on {threads} threads: estimate {estimate}, allocated {actual}",
                w.name()
            );
        }
    }
}

#[test]
fn scaled_to_heap_allocates_ten_heaps() {
    const HEAP: usize = 8 << 20;
    for w in every_workload() {
        // Two threads: GCBench's array is a large object that a full collection may
        // allocate for a waiting thread (tests/collector/robustness.rs has that case alone).
        let threads = 2;
        let scaled = w.scaled_to_heap(HEAP, threads);
        let cfg = HeapConfig::new().heap_bytes(HEAP);
        let Some(r) = run(test_name!(), cfg, scaled, threads) else {
            return;
        };
        let heaps = r.stats.bytes_allocated as f64 / HEAP as f64;
        eprintln!(
            "{}: {heaps:.1} heaps allocated, {} cycles",
            scaled.name(),
            r.stats.cycles
        );
        assert!(heaps >= 10.0, "{}: {heaps} heaps allocated", scaled.name());
        // The live set is the designed one: only the operation count changed.
        let unscaled = match (w, scaled) {
            (Workload::GcBench(a), Workload::GcBench(b)) => a == GcBenchParams { repeat: 1, ..b },
            (Workload::Graph(a), Workload::Graph(b)) => {
                a == GraphParams {
                    stores: a.stores,
                    ..b
                }
            }
            (Workload::Lru(a), Workload::Lru(b)) => {
                a == LruParams {
                    operations: a.operations,
                    ..b
                }
            }
            (Workload::BinaryTrees(a), Workload::BinaryTrees(b)) => {
                a == BinaryTreesParams {
                    operations: a.operations,
                    ..b
                }
            }
            _ => false,
        };
        assert!(unscaled, "{w:?} scaled to {scaled:?}");
    }
}

#[test]
fn graph_stores_per_dirtied_page_follow_the_knob() {
    let _serial = serial();
    let concurrent = BarrierKind::ALL.into_iter().filter(|k| k.is_concurrent());
    let cases = concurrent.flat_map(|k| [(k, 512u64, 1), (k, 4096, 1)]);
    // Two threads (two graphs, one heap): the windows of both count, once each.
    let cases = cases.chain([(BarrierKind::CardTable, 1024, 2)]);
    for (kind, spp, threads) in cases {
        // A graph of 3,125 pages; stores slowed down by arithmetic so that a cycle's
        // window does not wrap around all pages (with half as many, `uffd-wp`'s windows,
        // long with its fault round trips on an idle machine, wrap), and few allocations,
        // whose pages would count as dirtied pages too. The live set fills more than the
        // fixed trigger's share of the heap (no pacer), so cycles run back to back, and
        // the store loop lasts many cycles (on a loaded machine too).
        let p = GraphParams {
            objects: 200_000,
            // Two threads mark twice the graph and share the CPUs: longer cycles, so
            // longer loops, for cycles to fall inside both.
            stores: 6_000_000 * (threads * threads) as u64,
            stores_per_page: spp,
            alloc_every: 256,
            work_per_store: 40,
            ..GraphParams::default()
        };
        let cfg = HeapConfig::new()
            .heap_bytes(threads * (20 << 20))
            .barrier(kind)
            .pacing(false)
            .trigger(0.5)
            .record_dirty_pages(true);
        let Some((r, measured)) = measured_spp(test_name!(), &cfg, p, threads) else {
            continue;
        };
        eprintln!(
            "{kind} spp {spp} x{threads}: measured {measured:.0} stores per dirtied page over \
             {} cycles",
            r.stats.cycles
        );
        assert!(
            measured >= spp as f64 / SPP_FACTOR && measured <= spp as f64 * SPP_FACTOR,
            "{kind}, knob {spp}, {threads} threads: measured {measured}"
        );
    }
}

/// The other side of the docs' claim: with a fast store path and few stores per page,
/// a cycle's window wraps around the graph's pages, and each dirtied page receives many
/// times the knob's stores; the measurement shows it.
#[test]
fn graph_windows_that_wrap_exceed_the_knob() {
    let _serial = serial();
    let spp = 4;
    // Enough stores for several cycles inside the store loop even when the collector
    // thread waits for a CPU (4 million once left no cycle inside it in 3 tries, beside
    // other load).
    let p = GraphParams {
        objects: 20_000,
        stores: 16_000_000,
        stores_per_page: spp,
        alloc_every: 64,
        ..GraphParams::default()
    };
    // Cycles back to back (no pacer, the live set above the fixed trigger).
    let cfg = HeapConfig::new()
        .heap_bytes(2 << 20)
        .barrier(BarrierKind::CardTable)
        .pacing(false)
        .trigger(0.3)
        .record_dirty_pages(true);
    let Some((_, measured)) = measured_spp(test_name!(), &cfg, p, 1) else {
        return;
    };
    let pass = spp * p.objects.div_ceil(p.nodes_per_page()) as u64;
    eprintln!("spp {spp}: measured {measured:.0} (one pass: {pass} stores)");
    assert!(
        measured > spp as f64 * SPP_FACTOR,
        "knob {spp}: measured {measured}"
    );
}
