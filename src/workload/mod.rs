//! Workloads shared by the benches, the study, the examples and the tests, and the driver
//! that runs one on `T` mutator threads and measures it.
//!
//! - [`gcbench`]: GCBench with its classic parameters.
//! - [`graph`]: graph mutation with knobs (stores per dirtied page, pointer vs payload
//!   writes, allocation rate, work between stores).
//! - [`pages`]: a tracker alone over a bare region: the cost of a store pattern under
//!   each barrier, without a heap (the study's crossover sweep and the benches).
//!
//! The driver ([`run`]) builds a heap, runs the workload on every thread through
//! [`crate::Heap::run_typed`] (so the store path is monomorphised for the barrier), and
//! returns wall time, the collector's statistics, and derived figures: pause percentiles,
//! minimum mutator utilisation, peak RSS.

pub mod gcbench;
pub mod graph;
pub mod pages;

use std::time::{Duration, Instant};

use crate::barrier::StoreBarrier;
use crate::collector::{PauseKind, Stats};
use crate::error::{Error, Result};
use crate::heap::HeapConfig;
use crate::mutator::{Mutator, MutatorTask};
use crate::runtime::Heap;

pub use gcbench::GcBenchParams;
pub use graph::{GraphParams, StoreTrace, StoreWindow};

/// A percentile (0..=100) of `pauses`, from an HDR histogram (3 significant digits: the
/// value may be up to 0.1% above the exact one); zero with no pauses. One function for
/// barrierlab's runs and for the outside collector's ([`crate::peer`]), so that their
/// percentiles are computed the same way.
pub fn pause_percentile(pauses: impl IntoIterator<Item = Duration>, q: f64) -> Duration {
    // 1 ns to 1 hour at 3 significant digits; longer pauses are clamped to an hour.
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)
        .expect("valid bounds");
    for p in pauses {
        h.saturating_record(p.as_nanos().max(1) as u64);
    }
    if h.is_empty() {
        return Duration::ZERO;
    }
    Duration::from_nanos(h.value_at_quantile(q / 100.0))
}

/// A workload the driver can run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Workload {
    /// GCBench.
    GcBench(GcBenchParams),
    /// Graph mutation.
    Graph(GraphParams),
}

impl Workload {
    /// A short name for reports.
    pub fn name(&self) -> String {
        match self {
            Workload::GcBench(p) if *p == GcBenchParams::CLASSIC => "gcbench".into(),
            Workload::GcBench(p) => format!("gcbench-d{}", p.stretch_depth),
            Workload::Graph(p) => format!("graph-spp{}", p.stores_per_page),
        }
    }

    /// Reference and payload stores one thread performs (for per-store costs), if known.
    pub fn stores_per_thread(&self) -> u64 {
        match self {
            // Populate: 2 stores per node; make_tree: 2 per inner node.
            Workload::GcBench(p) => 2 * p.nodes_allocated(),
            Workload::Graph(p) => p.stores,
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
    /// Operations counted by the workload (nodes for GCBench, stores for graph).
    pub work: u64,
    /// The collector's statistics.
    pub stats: Stats,
    /// Peak resident set size of the process during the run, in KiB (reset before it).
    pub peak_rss_kib: u64,
    /// When the run started, from the heap's creation (the origin of pause times).
    pub run_start: Duration,
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
    /// run are left out. The stores are the graph's store stream (reference stores and
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

/// MMU over `[start, end)` (times from the heap's creation) for `window`, from the pauses.
pub fn mmu(stats: &Stats, start: Duration, end: Duration, window: Duration) -> f64 {
    let span = end.saturating_sub(start);
    if span <= window || window.is_zero() {
        // The run is shorter than the window: utilisation over the whole run.
        let paused: Duration = stats.pauses.iter().map(|p| p.duration).sum();
        return 1.0 - (paused.as_secs_f64() / span.as_secs_f64().max(1e-12)).min(1.0);
    }
    let pauses: Vec<(f64, f64)> = stats
        .pauses
        .iter()
        .map(|p| (p.start.as_secs_f64(), (p.start + p.duration).as_secs_f64()))
        .collect();
    let (s, e, w) = (start.as_secs_f64(), end.as_secs_f64(), window.as_secs_f64());
    // The worst window starts at a pause start or ends at a pause end.
    let mut candidates: Vec<f64> = vec![s, e - w];
    for &(a, b) in &pauses {
        candidates.push(a);
        candidates.push(b - w);
    }
    let mut worst = 1.0f64;
    for c in candidates {
        let lo = c.clamp(s, e - w);
        let hi = lo + w;
        let paused: f64 = pauses
            .iter()
            .map(|&(a, b)| (b.min(hi) - a.max(lo)).max(0.0))
            .sum();
        worst = worst.min(1.0 - paused / w);
    }
    worst.max(0.0)
}

/// Peak RSS of this process in KiB (`VmHWM`).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the peak RSS counter (`echo 5 > /proc/self/clear_refs`, Linux 4.0+).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Builds a heap from `config` and runs `workload` on `threads` mutator threads.
pub fn run(config: &HeapConfig, workload: &Workload, threads: usize) -> Result<RunResult> {
    if threads == 0 {
        return Err(Error::InvalidArgument("at least one mutator thread".into()));
    }
    let heap = Heap::new(config.clone())?;
    reset_peak_rss();
    let run_start = heap.uptime();
    let t0 = Instant::now();
    let results: Vec<Result<ThreadRun>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let heap = heap.clone();
                s.spawn(move || heap.run_typed(Task { workload, thread }))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let wall = t0.elapsed();
    let mut work = 0;
    let mut store_traces = Vec::new();
    for r in results {
        let r = r?;
        work += r.work;
        store_traces.extend(r.trace);
    }
    Ok(RunResult {
        wall,
        threads,
        work,
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
