//! Concurrent-mode failures: every barrier on 1, 2 and 4 mutator threads in heaps of
//! 1.25, 2 and 4 times the stop-the-world minimum of each workload, for three workloads
//! (small GCBench, small graph mutation, an LRU cache churning with almost nothing live).
//!
//! When an allocation finds no room during a concurrent cycle the heap falls back to a
//! full stop-the-world collection ([`barrierlab::Stats::fallbacks`]); `OutOfMemory` is
//! right only when even that cannot satisfy the request. A heap at least as large as the
//! stop-the-world minimum therefore never runs out of memory, under any barrier and any
//! number of threads: every run here must complete. Near the minimum the concurrent
//! cycles cannot keep up, so at 1.25x some runs must fall back (the fallback path is
//! exercised), and every run must collect at least once.
//!
//! The minimum is found per workload x thread count by bisection under the `none` barrier,
//! at page granularity (the largest size found to fail is printed and really failed; a
//! size fits when [`FITS_RUNS`] runs in a row complete).
//! The matrix (barrier x threads x multiple x workload: completed / fell back n times /
//! out of memory) goes to stderr (`--nocapture`). Every run is under a timeout, so a
//! deadlock fails instead of hanging.

use crate::support;

use barrierlab::workload::{
    self, GcBenchParams, GraphParams, KeyDistribution, LruParams, Workload,
};
use barrierlab::{BarrierKind, Error, HeapConfig};

use support::{heap_or_skip, with_timeout};

/// Thread counts.
const THREADS: [usize; 3] = [1, 2, 4];
/// Heap sizes, as multiples of the stop-the-world minimum.
const MULTIPLES: [f64; 3] = [1.25, 2.0, 4.0];
/// Seconds one run may take before it counts as a deadlock.
const RUN_TIMEOUT_SECS: u64 = 60;
/// The bisection stops when the bracket is this fine (a fraction of its upper end)...
const BISECT_PRECISION: f64 = 1.0 / 32.0;
/// ... or this many pages wide.
const BISECT_PAGES: usize = 4;
/// A size fits when this many stop-the-world runs in a row complete: with several
/// threads, where the pages of long-lived and short-lived objects fall depends on how
/// the threads interleave, and with it whether a multi-page object finds a run of free
/// pages (the collector does not move objects), so one run that completes says little.
const FITS_RUNS: usize = 3;

/// The three workloads, small enough for CI, each with a live set that changes little
/// over a run, so that the stop-the-world minimum found by search bounds what any
/// interleaving of the threads needs.
///
/// - GCBench: the long-lived tree (depth 12) outweighs the stretch tree and the temporary
///   ones. With GCBench's usual proportions (a stretch tree four times the long-lived
///   one, as in `GcBenchParams::QUICK`) each thread's live set peaks during its stretch
///   phase, and the minimum found depends on how many threads happened to stretch at the
///   same time; a barrier that shifts the threads' timing then ran out of memory at 1.25
///   times it (in about one run in five on four threads, after full collections, with
///   every page in use).
/// - No object spans several pages: the collector does not move objects, and with
///   several threads the pages of one thread's long-lived objects interleave with those
///   of another's short-lived ones (every thread takes its pages lowest first from one
///   pool), so after a full collection a third of the heap or more may be free in runs
///   too short for a multi-page object. GCBench's array of 20,000 doubles and more ran
///   out of memory so at 1.25 times the minimum in about one run in ten on two or four
///   threads.
fn workloads() -> [(&'static str, Workload); 3] {
    [
        (
            "gcbench",
            Workload::GcBench(GcBenchParams {
                stretch_depth: 10,
                long_lived_depth: 12,
                // 4,000 bytes: a large object of one page.
                array_len: 500,
                min_depth: 4,
                max_depth: 8,
                repeat: 1,
            }),
        ),
        (
            "graph",
            Workload::Graph(GraphParams {
                objects: 4_000,
                stores_per_page: 16,
                alloc_every: 2,
                ..GraphParams::default()
            }),
        ),
        (
            "lru-tiny",
            Workload::Lru(LruParams {
                capacity: 8,
                key_space: 4_096,
                keys: KeyDistribution::Uniform,
                ..LruParams::default()
            }),
        ),
    ]
}

/// How one run ended.
enum Outcome {
    Completed { cycles: u64, fallbacks: usize },
    OutOfMemory(Error),
    Failed(Error),
}

/// Runs `w`, scaled to allocate about ten heaps, in a heap of `bytes` under `kind`.
fn run(kind: BarrierKind, bytes: usize, w: &Workload, threads: usize, what: &str) -> Outcome {
    let cfg = HeapConfig::new().heap_bytes(bytes).barrier(kind);
    let w = w.scaled_to_heap(bytes, threads);
    match with_timeout(RUN_TIMEOUT_SECS, what, move || {
        workload::run(&cfg, &w, threads)
    }) {
        Ok(r) => Outcome::Completed {
            cycles: r.stats.cycles,
            fallbacks: r.stats.fallbacks(),
        },
        Err(e @ Error::OutOfMemory { .. }) => Outcome::OutOfMemory(e),
        Err(e) => Outcome::Failed(e),
    }
}

/// Rounds up to whole pages.
fn pages(bytes: f64) -> usize {
    (bytes.ceil() as usize).next_multiple_of(barrierlab::sys::PAGE_SIZE)
}

/// The smallest heap the crate builds (16 pages).
const SMALLEST_HEAP: usize = 16 * barrierlab::sys::PAGE_SIZE;

/// The stop-the-world minimum heap of `w` on `threads` threads: the smallest size found
/// to complete [`FITS_RUNS`] times in a row, and the largest found to run out of memory
/// (`None` when even the smallest heap the crate builds is enough).
fn min_heap(name: &str, w: &Workload, threads: usize) -> (usize, Option<usize>) {
    let what = format!("min heap {name} x{threads}");
    let fits = |bytes: usize| {
        (0..FITS_RUNS).all(|_| match run(BarrierKind::None, bytes, w, threads, &what) {
            Outcome::Completed { .. } => true,
            Outcome::OutOfMemory(_) => false,
            Outcome::Failed(e) => panic!("{what}: {bytes} bytes: {e}"),
        })
    };
    if fits(SMALLEST_HEAP) {
        return (SMALLEST_HEAP, None);
    }
    let (mut lo, mut hi) = (SMALLEST_HEAP, 4 * SMALLEST_HEAP);
    while !fits(hi) {
        lo = hi;
        hi *= 2;
        assert!(hi <= 1 << 30, "{what}: does not fit in 1 GiB");
    }
    let page = barrierlab::sys::PAGE_SIZE;
    while hi - lo > ((hi as f64 * BISECT_PRECISION) as usize).max(BISECT_PAGES * page) {
        let mid = ((lo + hi) / 2).next_multiple_of(page);
        if fits(mid) { hi = mid } else { lo = mid }
    }
    (hi, Some(lo))
}

#[test]
fn every_barrier_survives_heaps_near_the_stop_the_world_minimum() {
    let mut kinds = Vec::new();
    for kind in BarrierKind::ALL {
        let probe = HeapConfig::new().heap_bytes(1 << 20).barrier(kind);
        if heap_or_skip(probe, "concurrent_mode_failure").is_some() {
            kinds.push(kind);
        }
    }
    let mut failures = Vec::new();
    let mut fallbacks_at_lowest = 0;
    let mut lines = Vec::new();
    for (name, w) in workloads() {
        for threads in THREADS {
            let (min, fails) = min_heap(name, &w, threads);
            eprintln!(
                "{name} x{threads}: stop-the-world minimum {} KiB ({})",
                min >> 10,
                match fails {
                    Some(f) => format!("out of memory at {} KiB", f >> 10),
                    None => "the smallest heap".into(),
                }
            );
            for multiple in MULTIPLES {
                let bytes = pages(min as f64 * multiple);
                for &kind in &kinds {
                    let what = format!("{kind} x {threads} threads x {multiple} x {name}");
                    let result = match run(kind, bytes, &w, threads, &what) {
                        Outcome::Completed { cycles, fallbacks } => {
                            if cycles == 0 {
                                failures.push(format!("{what}: completed without a cycle"));
                            }
                            if multiple == MULTIPLES[0] && kind != BarrierKind::None {
                                fallbacks_at_lowest += fallbacks;
                            }
                            match fallbacks {
                                0 => format!("completed ({cycles} cycles)"),
                                n => format!("fell back {n} times ({cycles} cycles)"),
                            }
                        }
                        Outcome::OutOfMemory(e) => {
                            failures.push(format!("{what} ({bytes} bytes): {e}"));
                            "out of memory".into()
                        }
                        Outcome::Failed(e) => {
                            failures.push(format!("{what} ({bytes} bytes): {e}"));
                            format!("error: {e}")
                        }
                    };
                    lines.push(format!(
                        "{:>14} {threads:>7} {multiple:>8} {name:>9} {:>8}  {result}",
                        kind.name(),
                        bytes >> 10
                    ));
                }
            }
        }
    }
    eprintln!(
        "{:>14} {:>7} {:>8} {:>9} {:>8}  result",
        "barrier", "threads", "multiple", "workload", "heap KiB"
    );
    for l in &lines {
        eprintln!("{l}");
    }
    assert!(failures.is_empty(), "failed runs:\n{}", failures.join("\n"));
    assert!(
        fallbacks_at_lowest > 0,
        "no concurrent barrier fell back at {}x the minimum: the fallback path was not \
         exercised",
        MULTIPLES[0]
    );
}
