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

pub mod cpu;
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
pub use graph::GraphParams;

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

struct Task<'a> {
    workload: &'a Workload,
    thread: usize,
}

impl MutatorTask for Task<'_> {
    type Output = Result<u64>;
    fn run<B: StoreBarrier>(self, m: &mut Mutator<B>) -> Result<u64> {
        match self.workload {
            Workload::GcBench(p) => gcbench::run(m, p),
            Workload::Graph(p) => {
                graph::run(m, p, self.thread).map(|o| o.ref_stores + o.payload_writes)
            }
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
    /// CPU time by thread role over the run ([`cpu`]).
    pub cpu: cpu::CpuByRole,
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
    let cpu_base = cpu::baseline()?;
    let run_start = heap.uptime();
    let t0 = Instant::now();
    let results: Vec<(Result<u64>, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let heap = heap.clone();
                std::thread::Builder::new()
                    .name(format!("mutator-{thread}"))
                    .spawn_scoped(s, move || {
                        let out = heap.run_typed(Task { workload, thread });
                        // Read here: the thread is gone when the driver reads the rest.
                        (out, crate::sys::cpu::thread_cpu_time().unwrap_or_default())
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
    let mut mutator_cpu = Duration::ZERO;
    for (r, cpu) in results {
        work += r?;
        mutator_cpu += cpu;
    }
    Ok(RunResult {
        wall,
        threads,
        work,
        cpu: cpu::finish(&cpu_base, mutator_cpu)?,
        stats: heap.stats(),
        peak_rss_kib: peak_rss_kib(),
        run_start,
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
