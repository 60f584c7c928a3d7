//! The options of `barrierlab run` and `gcbench` (the heap and the barrier a single run
//! uses), and the range check their numbers go through.

use barrierlab::{BarrierKind, ServiceLayout};
use clap::Args;

/// The heap and barrier a single run uses, shared by `run` and `gcbench`.
#[derive(Args, Debug, Clone)]
pub struct HeapOpts {
    /// The barrier.
    #[arg(long, default_value = "uffd-wp", value_parser = crate::barrier_parser())]
    pub barrier: BarrierKind,
    /// Heap size in MiB (1 to 1048576, i.e. 1 TiB).
    #[arg(long, default_value_t = 64, value_parser = |s: &str| in_range(s, 1, 1 << 20))]
    pub heap_mib: u64,
    /// Mutator threads, each running its own copy of the workload (1 to 1024).
    #[arg(long, default_value_t = 1, value_parser = |s: &str| in_range(s, 1, 1024))]
    pub threads: u64,
    /// Who serves `uffd-wp` faults: collector, thread (the default), spin-thread. Only
    /// with `--barrier uffd-wp`.
    #[arg(long)]
    pub layout: Option<ServiceLayout>,
    /// Threads that mark in a pause, 1 to 256 (default: the CPUs available).
    #[arg(long, value_parser = |s: &str| in_range(s, 1, MAX_MARKER_THREADS))]
    pub marker_threads: Option<u64>,
    /// The mutators' share of the time, in percent (1 to 99), while a pre-clean that
    /// does not converge paces them at their allocations, so that remark inherits a
    /// short round (default 50); 100 turns pacing off.
    #[arg(long, default_value_t = 50, value_parser = |s: &str| in_range(s, 1, 100))]
    pub preclean_pacing_percent: u64,
    /// Advise the heap `MADV_HUGEPAGE` (transparent huge pages) instead of
    /// `MADV_NOHUGEPAGE`; the result's `heap_huge_mib` says how much of the heap huge
    /// pages backed at the end (a page tracker's write protection splits them).
    #[arg(long)]
    pub huge_pages: bool,
    /// Arms keep the long runs of pages allocated into since the last arm writable and
    /// recorded, and harvests take them back once they hold a marked object (the page
    /// trackers but `uffd-wp-async`): an experiment, off by default (see
    /// `HeapConfig::keep_young_pages`).
    #[arg(long)]
    pub keep_young_pages: bool,
    /// Barrier-only mode: no collection; instead the tracker is armed for
    /// --armed-share of every --duty-period-ms and harvested, so that the run measures
    /// what the barrier costs the mutators with the collection held fixed. The heap must
    /// hold everything the run allocates (a run in which a collection ran is refused).
    #[arg(long)]
    pub barrier_only: bool,
    /// Barrier-only mode's period in milliseconds (1 to 60000; the study's is 50).
    #[arg(long, default_value_t = 50, requires = "barrier_only", value_parser = |s: &str| in_range(s, 1, 60_000))]
    pub duty_period_ms: u64,
    /// Barrier-only mode's armed share of each period, in percent (1 to 100).
    #[arg(long, default_value_t = 50, requires = "barrier_only", value_parser = |s: &str| in_range(s, 1, 100))]
    pub armed_percent: u64,
    /// One line per pause and per cycle on stderr, as they happen (like HotSpot's
    /// -Xlog:gc): cause, time to safepoint, duration, heap before -> after, bytes
    /// marked and freed, dirty granules, faults, degradation.
    #[arg(long)]
    pub log_cycles: bool,
    /// Print the result as one JSON object instead of a `key=value` line.
    #[arg(long)]
    pub json: bool,
}

/// The most marker threads a heap accepts (`HeapConfig`'s check).
pub const MAX_MARKER_THREADS: u64 = 256;

/// Parses a whole number in `lo..=hi`, saying plainly what is wrong (a negative number
/// included).
pub fn in_range(s: &str, lo: u64, hi: u64) -> Result<u64, String> {
    if s.trim_start().starts_with('-') {
        return Err(format!(
            "`{s}` is negative: give a number from {lo} to {hi}"
        ));
    }
    match s.parse::<u64>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a number from {lo} to {hi}")),
    }
}

/// Parses a workload's work (bytes allocated per live byte): a finite number above 0.
pub fn work(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "`{s}` is not a number above 0 (bytes allocated per live byte)"
        )),
    }
}
