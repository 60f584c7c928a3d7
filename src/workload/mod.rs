//! Workloads shared by the benches, the study, the examples and the tests, and the driver
//! that runs one on `T` mutator threads and measures it.
//!
//! - [`gcbench`]: GCBench with its classic parameters.
//! - [`graph`]: graph mutation with knobs (stores per dirtied page, pointer vs payload
//!   writes, allocation rate, work between stores).
//! - [`lru`]: an LRU cache built of heap objects: every hit rewires the LRU list through
//!   old entries, every miss stores a young entry into the long-lived bucket array.
//! - [`binary_trees`]: a long-lived binary tree whose subtrees are replaced and swapped
//!   (old-to-young and old-to-old stores at random places in an old structure).
//! - [`gcold`]: GCOld (Sun Microsystems Laboratories), the published old-generation
//!   benchmark: a live set of trees replaced oldest first, short-lived garbage, and a
//!   rate of pointer stores into the old trees.
//! - [`pages`]: a tracker alone over a bare region: the cost of a store pattern under
//!   each barrier, without a heap (the study's crossover sweep and the benches).
//!
//! The driver ([`run`]) builds a heap, runs the workload on every thread through
//! [`crate::Heap::run_typed`] (so the store path is monomorphised for the barrier), and
//! returns wall time, the collector's statistics, and derived figures: pause percentiles,
//! minimum mutator utilisation, peak RSS.

pub mod binary_trees;
pub mod cpu;
pub mod gcbench;
pub mod gcold;
pub mod graph;
pub mod lru;
mod mmu;
pub mod pages;

use std::time::{Duration, Instant};

use crate::barrier::StoreBarrier;
use crate::collector::{PauseKind, Stats};
use crate::error::{Error, Result};
use crate::heap::HeapConfig;
use crate::mutator::{Mutator, MutatorTask};
use crate::runtime::Heap;
use crate::sys::process::{peak_rss_kib, reset_peak_rss};

pub use binary_trees::BinaryTreesParams;
pub use gcbench::GcBenchParams;
pub use gcold::GcOldParams;
pub use graph::{GraphParams, StoreTrace, StoreWindow};
pub use lru::{KeyDistribution, LruParams};
pub use mmu::{mmu, mmu_with_stalls};

/// A percentile (0..=100) of `pauses`, from an HDR histogram (3 significant digits: the
/// value may be up to 0.1% above the exact one, but never above the maximum); zero with no pauses. One function for
/// barrierlab's runs and for the outside collector's ([`crate::peer`]), so that their
/// percentiles are computed the same way.
pub fn pause_percentile(pauses: impl IntoIterator<Item = Duration>, q: f64) -> Duration {
    // 1 ns to 1 hour at 3 significant digits; longer pauses are clamped to an hour.
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)
        .expect("valid bounds");
    let mut max = 0;
    for p in pauses {
        let ns = p.as_nanos().max(1) as u64;
        max = max.max(ns);
        h.saturating_record(ns);
    }
    if h.is_empty() {
        return Duration::ZERO;
    }
    // The histogram's bucket may lie above the largest value recorded: never report a
    // percentile above the maximum.
    Duration::from_nanos(h.value_at_quantile(q / 100.0).min(max))
}

/// The bytes an object with `nrefs` slots and `payload` bytes takes from the heap: its
/// cell, or for a large object its whole pages (what [`Stats::bytes_allocated`] counts).
pub fn cell_bytes(nrefs: usize, payload: usize) -> u64 {
    let bytes = crate::heap::object::object_size(nrefs, payload);
    match crate::heap::size_class::class_for(bytes) {
        Some(c) => crate::heap::size_class::CLASS_SIZES[c] as u64,
        None => bytes.next_multiple_of(crate::sys::PAGE_SIZE) as u64,
    }
}

/// A workload the driver can run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Workload {
    /// GCBench.
    GcBench(GcBenchParams),
    /// Graph mutation.
    Graph(GraphParams),
    /// An LRU cache of heap objects.
    Lru(LruParams),
    /// A long-lived binary tree whose subtrees are replaced and swapped.
    BinaryTrees(BinaryTreesParams),
    /// GCOld: long-lived trees replaced oldest first, with a pointer-mutation rate.
    GcOld(GcOldParams),
}

/// [`Workload::scaled_to_heap`] aims at this many heaps' worth of allocation.
pub const HEAPS_ALLOCATED: u64 = 10;

/// Nodes the end-of-run checks (which walk the live set with loads only) visit between
/// two safepoint polls, as a compiled loop's back-edge polls: a pause that comes during
/// a check would otherwise wait for the whole walk (3 to 5 ms for GCBench's 64 MiB tree,
/// seen as the last cycle's remark pause).
pub const CHECK_POLL: u64 = 1024;

/// [`Workload::scaled_to_heap`] aims this much above [`HEAPS_ALLOCATED`] heaps, so that an
/// allocation estimate up to 20% too high still gives at least that much.
const SCALE_MARGIN: f64 = 1.25;

impl Workload {
    /// A short name for reports: `gcbench`, `graph-spp<n>`, `lru`, `binary-trees`, with a
    /// suffix when the parameters are not the defaults.
    pub fn name(&self) -> String {
        match self {
            Workload::GcBench(p) => {
                let base = if (GcBenchParams { repeat: 1, ..*p }) == GcBenchParams::CLASSIC {
                    "gcbench".to_string()
                } else {
                    format!("gcbench-d{}", p.stretch_depth)
                };
                match p.repeat {
                    1 => base,
                    r => format!("{base}-x{r}"),
                }
            }
            Workload::Graph(p) => format!("graph-spp{}", p.stores_per_page),
            Workload::Lru(p) if *p == LruParams::default() => "lru".into(),
            Workload::Lru(p) => format!(
                "lru-c{}-k{}{}",
                p.capacity,
                p.key_space,
                match p.keys {
                    KeyDistribution::Zipf => "",
                    KeyDistribution::Uniform => "-uniform",
                }
            ),
            Workload::BinaryTrees(p) if *p == BinaryTreesParams::default() => "binary-trees".into(),
            Workload::BinaryTrees(p) => format!("binary-trees-d{}", p.depth),
            Workload::GcOld(p) => {
                let d = GcOldParams::default();
                if (GcOldParams {
                    steps: d.steps,
                    seed: d.seed,
                    ..*p
                }) == d
                {
                    "gcold".into()
                } else {
                    // GCOld's own command line: live MB, work, ratio, mutations.
                    format!(
                        "gcold-l{}-w{}-r{}-m{}",
                        p.live_bytes / 1_000_000,
                        p.work_units,
                        p.short_per_long,
                        p.mutations_per_step
                    )
                }
            }
        }
    }

    /// Reference and payload stores one thread performs (for per-store costs): exact
    /// for GCBench, graph, binary trees and GCOld; for the LRU cache, from its expected
    /// hit ratio ([`LruParams::stores_estimate`]).
    pub fn stores_per_thread(&self) -> u64 {
        match self {
            // Populate: 2 stores per node; make_tree: 2 per inner node.
            Workload::GcBench(p) => 2 * p.nodes_allocated(),
            Workload::Graph(p) => p.stores,
            Workload::Lru(p) => p.stores_estimate(),
            Workload::BinaryTrees(p) => p.stores(),
            Workload::GcOld(p) => p.stores(),
        }
    }

    /// Bytes one thread allocates in a run, from the objects' cell sizes (large objects
    /// in whole pages): what [`Stats::bytes_allocated`] shows per thread once the run is
    /// over (the runs of cells reserved, less the unused rest a mutator gives back when
    /// it ends). Exact for GCBench, graph, binary trees and GCOld (the tests find it to the
    /// byte); for the LRU cache the misses come from the expected hit ratio, and the
    /// estimate is about 6% low with the defaults (the cold start's misses).
    pub fn allocation_estimate(&self) -> u64 {
        let (setup, per_op, ops) = self.allocation_model();
        setup + (per_op * ops as f64) as u64
    }

    /// Bytes allocated before the first operation, bytes per operation, operations:
    /// for GCBench an operation is one whole run of the benchmark.
    fn allocation_model(&self) -> (u64, f64, u64) {
        match self {
            Workload::GcBench(p) => (0, p.bytes_per_repeat() as f64, p.repeat as u64),
            Workload::Graph(p) => (p.setup_bytes(), p.bytes_per_store(), p.stores),
            Workload::Lru(p) => (p.setup_bytes(), p.bytes_per_operation(), p.operations),
            Workload::BinaryTrees(p) => (
                p.setup_bytes(),
                p.bytes_per_operation() as f64,
                p.operations,
            ),
            Workload::GcOld(p) => (p.setup_bytes(), p.bytes_per_step() as f64, p.steps),
        }
    }

    /// The same workload with its operation count (GCBench: its repetitions) set so that
    /// `threads` threads allocate at least [`HEAPS_ALLOCATED`] times `heap_bytes` in a
    /// run, by [`Workload::allocation_estimate`] (aiming 25% above, for the estimate's
    /// error). The live set is unchanged: the graph's objects, the cache's capacity, the
    /// trees' depths, GCOld's live size stay as they are, so a minimum heap found for the workload still
    /// holds. A workload that allocates nothing per operation (graph with
    /// `alloc_every == 0`) is returned unchanged.
    pub fn scaled_to_heap(&self, heap_bytes: usize, threads: usize) -> Workload {
        self.with_allocation(
            (HEAPS_ALLOCATED * heap_bytes as u64) as f64 * SCALE_MARGIN,
            threads,
        )
    }

    /// The same workload with its operation count (GCBench: its repetitions) set so that
    /// `threads` threads allocate at least `bytes` in all, by
    /// [`Workload::allocation_estimate`]; the live set unchanged. A workload that
    /// allocates nothing per operation is returned unchanged.
    pub fn with_allocation(&self, bytes: f64, threads: usize) -> Workload {
        let (setup, per_op, _) = self.allocation_model();
        let target = bytes / threads.max(1) as f64;
        if per_op <= 0.0 {
            return *self;
        }
        let ops = ((target - setup as f64).max(0.0) / per_op).ceil().max(1.0) as u64;
        match *self {
            Workload::GcBench(p) => Workload::GcBench(GcBenchParams {
                repeat: ops.min(u32::MAX as u64) as u32,
                ..p
            }),
            Workload::Graph(p) => Workload::Graph(GraphParams { stores: ops, ..p }),
            Workload::Lru(p) => Workload::Lru(LruParams {
                operations: ops,
                ..p
            }),
            Workload::BinaryTrees(p) => Workload::BinaryTrees(BinaryTreesParams {
                operations: ops,
                ..p
            }),
            Workload::GcOld(p) => Workload::GcOld(GcOldParams { steps: ops, ..p }),
        }
    }

    /// The same kind of workload holding about `live_bytes` of live data per thread
    /// (GCBench: [`GcBenchParams::for_live`]; the others keep their other knobs).
    pub fn with_live(&self, live_bytes: u64) -> Workload {
        match *self {
            Workload::GcBench(p) => Workload::GcBench(GcBenchParams {
                repeat: p.repeat,
                ..GcBenchParams::for_live(live_bytes)
            }),
            Workload::Graph(p) => Workload::Graph(p.with_live(live_bytes)),
            Workload::Lru(p) => Workload::Lru(p.with_live(live_bytes)),
            Workload::BinaryTrees(p) => Workload::BinaryTrees(p.with_live(live_bytes)),
            Workload::GcOld(p) => Workload::GcOld(GcOldParams { live_bytes, ..p }),
        }
    }
}

/// What one thread's run returned: its work, and for graph its store trace.
struct ThreadRun {
    work: u64,
    trace: Option<StoreTrace>,
}

struct Task<'a> {
    workload: &'a Workload,
    thread: usize,
}

impl MutatorTask for Task<'_> {
    type Output = Result<ThreadRun>;
    fn run<B: StoreBarrier>(self, m: &mut Mutator<B>) -> Result<ThreadRun> {
        let plain = |work| ThreadRun { work, trace: None };
        match self.workload {
            Workload::GcBench(p) => gcbench::run(m, p).map(plain),
            Workload::Graph(p) => graph::run(m, p, self.thread).map(|o| ThreadRun {
                work: o.ref_stores + o.payload_writes,
                trace: Some(o.trace),
            }),
            Workload::Lru(p) => lru::run(m, p, self.thread).map(|o| plain(o.operations)),
            Workload::BinaryTrees(p) => {
                binary_trees::run(m, p, self.thread).map(|o| plain(o.operations))
            }
            Workload::GcOld(p) => gcold::run(m, p, self.thread).map(|o| plain(o.steps)),
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Wall-clock time of the whole run (all threads).
    pub wall: Duration,
    /// Mutator threads.
    pub threads: usize,
    /// Operations counted by the workload (nodes for GCBench, stores for graph, gets for
    /// the LRU cache, subtree replacements for binary trees, steps for GCOld).
    pub work: u64,
    /// The collector's statistics.
    pub stats: Stats,
    /// Peak resident set size of the process during the run, in KiB (reset before it).
    pub peak_rss_kib: u64,
    /// When the run started, from the heap's creation (the origin of pause times).
    pub run_start: Duration,
    /// CPU time by thread role over the run ([`cpu`]).
    pub cpu: cpu::CpuByRole,
    /// The bytes of the heap that transparent huge pages backed at the end of the run
    /// (`AnonHugePages` over the heap's mapping; 0 on a heap advised `MADV_NOHUGEPAGE`).
    pub heap_huge_bytes: u64,
    /// Graph only: each thread's store trace (its store loop's span and the stores it
    /// made in each collection's tracking window), for
    /// [`RunResult::stores_per_dirtied_page`]. Empty for the other workloads.
    pub store_traces: Vec<StoreTrace>,
}

impl RunResult {
    /// Pause durations in microseconds, all kinds.
    pub fn pauses_us(&self) -> Vec<f64> {
        self.stats
            .pauses
            .iter()
            .map(|p| p.duration.as_secs_f64() * 1e6)
            .collect()
    }

    /// A pause-time percentile (0..=100) in microseconds, from an HDR histogram (3
    /// significant digits: the value may be up to 0.1% above the exact one); 0 with no
    /// pauses.
    pub fn pause_percentile_us(&self, q: f64) -> f64 {
        pause_percentile(self.stats.pauses.iter().map(|p| p.duration), q).as_nanos() as f64 / 1e3
    }

    /// Total stop-the-world time.
    pub fn pause_total(&self) -> Duration {
        self.stats.total_pause()
    }

    /// Graph only: the stores one dirtied page received per collection cycle, measured:
    /// the graph's stores made inside the tracking windows of the counted cycles,
    /// divided by the heap pages those cycles found dirty.
    ///
    /// A cycle's tracking window runs from arm to its first pre-clean harvest; the pages
    /// it found dirty are [`crate::collector::CycleStats::dirty_pages`], so the figure is
    /// defined only with [`HeapConfig::record_dirty_pages`] on, for the concurrent
    /// barriers (every one but `none`), for cycles with at least one pre-clean round.
    /// A cycle is counted when its window (its arm, initial mark and concurrent mark) lies
    /// inside every thread's store loop, so that the graph's building and the end of the
    /// run are left out, and when a thread's store loop saw it (one of its windows overlaps
    /// the cycle's marking), so that a cycle no mutator polled in (a loaded machine) does
    /// not count its dirty pages without stores. The stores are the graph's store stream (reference stores and
    /// payload writes), seen by each thread when it polls the collector's phase (every
    /// [`graph::PHASE_POLL`] stores); the dirty pages also include what the stream did not
    /// write: the pages of new nodes and of the ring that keeps them, so the figure is
    /// somewhat below the stream's own stores per page. `None` when no cycle was counted.
    pub fn stores_per_dirtied_page(&self) -> Option<f64> {
        graph::stores_per_dirtied_page(&self.stats, &self.store_traces)
    }

    /// Minimum mutator utilisation for windows of `window`: the least share of any
    /// window of that length (inside the run) not spent in a pause.
    pub fn mmu(&self, window: Duration) -> f64 {
        mmu(
            &self.stats,
            self.run_start,
            self.run_start + self.wall,
            window,
        )
    }
}

/// Builds a heap from `config` and runs `workload` on `threads` mutator threads.
///
/// ```
/// use barrierlab::workload::{self, GcBenchParams, Workload};
/// use barrierlab::{BarrierKind, HeapConfig};
///
/// # fn main() -> barrierlab::Result<()> {
/// // The scaled-down GCBench on one thread, in a heap small enough to collect often.
/// let config = HeapConfig::new().heap_bytes(4 << 20).barrier(BarrierKind::CardTable);
/// let r = workload::run(&config, &Workload::GcBench(GcBenchParams::QUICK), 1)?;
/// assert!(r.stats.cycles > 0, "a run that collects nothing measures no collector");
/// println!("{} cycles, longest pause {:?}", r.stats.cycles, r.stats.max_pause());
/// # Ok(())
/// # }
/// ```
pub fn run(config: &HeapConfig, workload: &Workload, threads: usize) -> Result<RunResult> {
    if threads == 0 {
        return Err(Error::InvalidArgument("at least one mutator thread".into()));
    }
    let heap = Heap::new(config.clone())?;
    reset_peak_rss();
    let cpu_base = cpu::baseline()?;
    let run_start = heap.uptime();
    let t0 = Instant::now();
    let results: Vec<(Result<ThreadRun>, cpu::Mutators)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let heap = heap.clone();
                crate::sys::cpu::ThreadRole::Mutator
                    .builder(Some(thread))
                    .spawn_scoped(s, move || {
                        let out = match config.placement {
                            Some(p) => crate::sys::cpu::pin_to_cpu(p.mutators),
                            None => Ok(()),
                        }
                        .and_then(|()| heap.run_typed(Task { workload, thread }));
                        // Read here: the thread is gone when the driver reads the rest.
                        (out, cpu::Mutators::of_this_thread())
                    })
                    .map_err(|e| Error::io("spawn a mutator thread", e))
            })
            .collect::<Result<_>>()?;
        Ok::<_, Error>(
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect(),
        )
    })?;
    let wall = t0.elapsed();
    let mut work = 0;
    let mut mutators = cpu::Mutators::default();
    let mut store_traces = Vec::new();
    for (r, cpu) in results {
        let r = r?;
        work += r.work;
        store_traces.extend(r.trace);
        mutators += cpu;
    }
    // A cycle the mutators started may still be running: let it finish, so that the
    // statistics hold whole cycles (and agree with a cycle log).
    heap.wait_for_cycle();
    let (lo, hi) = heap.range();
    let heap_huge_bytes = crate::sys::smaps::anon_huge_bytes(lo, hi)?;
    Ok(RunResult {
        heap_huge_bytes,
        wall,
        threads,
        work,
        cpu: cpu::finish(&cpu_base, mutators)?,
        stats: heap.stats(),
        peak_rss_kib: peak_rss_kib(),
        run_start,
        store_traces,
    })
}

/// Pauses of one kind.
pub fn pauses_of(stats: &Stats, kind: PauseKind) -> impl Iterator<Item = Duration> + '_ {
    stats
        .pauses
        .iter()
        .filter(move |p| p.kind == kind)
        .map(|p| p.duration)
}
