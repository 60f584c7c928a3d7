//! The study's data, in one place: the row type ([`Row`], with its [`Section`] and
//! [`Metric`] as enums), the CSV schema, the streaming writer ([`Sink`]), the reader
//! ([`read`]) and the queries that the report, the figures and `compare` ask of the rows.
//!
//! Why one module: the schema is a contract between the run that writes `study.csv`, the
//! renderers that read it back and the tests that check the paper against it; split over
//! several files it drifts. The CSV goes through the `csv` crate with serde, never by
//! hand. Every row ends with a terminator field ([`END`]), so that a line cut short (a
//! full disk, a killed run) is seen as cut: [`read`] skips a cut *last* line with a
//! warning, and refuses any other malformed line with the file and line named.
//!
//! It must never compute statistics or print anything: it stores, reads and selects.

mod io;
mod query;

use serde::{Deserialize, Serialize};

pub use io::{CSV_HEADER, CSV_HEADER_V1, END, Rows, Sink, parse, read, to_csv};
pub use query::{
    At, Curve, PointKey, curve_grid, heap_multiple, micro_curve, micro_samples, points, select,
    select_numbered, swept, trackers,
};

/// What a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    /// A tracker alone over a bare region (the crossover sweep).
    Micro,
    /// An end-to-end invocation that is a result.
    Macro,
    /// The minimum-heap search's answer and its bracket.
    Minheap,
    /// The pages one cycle dirtied.
    Heapmap,
    /// An end-to-end invocation on a heap advised `MADV_HUGEPAGE` (at the largest heap of
    /// each workload, one thread), beside the `macro` point of the same heap on 4 KiB pages.
    Hugepages,
    /// A barrier-only invocation (`HeapConfig::duty_cycle`): the tracker armed and
    /// harvested on a fixed schedule, no collection.
    Barrieronly,
    /// A step of the minimum-heap search (the child's answer: 1 fits, 0 does not).
    Fits,
    /// The work an end-to-end run of a workload does, sized by time: the calibration runs
    /// of `none` at the workload's largest heap, and the work chosen.
    Calibration,
    /// An invocation that completed but is not a result (too few cycles, out of memory).
    Invalid,
    /// An invocation that crashed, failed or timed out.
    Error,
}

impl Section {
    /// The name in the CSV.
    pub fn name(self) -> &'static str {
        match self {
            Section::Micro => "micro",
            Section::Macro => "macro",
            Section::Minheap => "minheap",
            Section::Heapmap => "heapmap",
            Section::Hugepages => "hugepages",
            Section::Barrieronly => "barrieronly",
            Section::Fits => "fits",
            Section::Calibration => "calibration",
            Section::Invalid => "invalid",
            Section::Error => "error",
        }
    }

    /// Whether rows of this section are end-to-end runs of a workload (checked for enough
    /// cycles, settled by their wall time's interval).
    pub fn is_end_to_end(self) -> bool {
        matches!(self, Section::Macro | Section::Hugepages)
    }

    /// Whether rows of this section are measurements (not `invalid` or `error`).
    pub fn is_result(self) -> bool {
        !matches!(self, Section::Invalid | Section::Error)
    }
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Declares the fixed metrics with their CSV names, and the lookups both ways.
macro_rules! metrics {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// What a row measured. The CSV carries the name ([`Metric::name`]); an unknown
        /// name is an error when a CSV is read.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Metric {
            $($(#[$doc])* $variant,)*
            /// Minimum mutator utilisation over pauses at a window (ms): `mmu_10ms`.
            Mmu(u64),
            /// MMU over pauses and the writers' fault stalls at a window: `mmu_stall_10ms`.
            MmuStall(u64),
            /// A pause-time quantile for the CDF figure, in tenths of a percent
            /// (`pause_cdf_99.9` is 999).
            PauseCdf(u32),
        }

        impl Metric {
            const FIXED: &[(Metric, &str)] = &[$((Metric::$variant, $name),)*];
        }
    };
}

metrics! {
    /// Wall time of the run (ms).
    WallMs = "wall_ms",
    /// Stop-the-world time (ms).
    StwMs = "stw_ms",
    /// Wall time less the pauses (ms).
    MutatorMs = "mutator_ms",
    /// Collection cycles completed.
    Cycles = "cycles",
    /// Pauses.
    Pauses = "pauses",
    /// A peer's collections that traced the whole heap (in a generational mode, the full
    /// ones only); the row's note says how the peer ran (its dirty bits, generational).
    FullCycles = "full_cycles",
    /// Pause percentiles (µs).
    PauseP50Us = "pause_p50_us",
    /// 90th percentile pause (µs).
    PauseP90Us = "pause_p90_us",
    /// 99th percentile pause (µs).
    PauseP99Us = "pause_p99_us",
    /// 99.9th percentile pause (µs).
    PauseP999Us = "pause_p999_us",
    /// Longest pause (µs).
    PauseMaxUs = "pause_max_us",
    /// Faults served (page trackers) or cards dirtied (card table).
    Faults = "faults",
    /// Granules dirty at the pre-clean rounds, summed.
    PrecleanDirty = "preclean_dirty",
    /// Granules dirty at remark, summed.
    RemarkDirty = "remark_dirty",
    /// Objects rescanned at remark.
    RemarkRescanned = "remark_rescanned",
    /// Objects traced at remark.
    RemarkTraced = "remark_traced",
    /// Time arming (ms, summed over cycles).
    ArmMs = "arm_ms",
    /// Time harvesting (ms).
    HarvestMs = "harvest_ms",
    /// Time disarming (ms).
    DisarmMs = "disarm_ms",
    /// Cycles in which the tracker degraded to "everything dirty".
    DegradedCycles = "degraded_cycles",
    /// Full collections an allocation forced.
    Fallbacks = "fallbacks",
    /// Allocations that found the heap full and waited for the running cycle.
    AllocStalls = "alloc_stalls",
    /// Time mutators spent in those waits (ms, summed over mutators).
    AllocStallMs = "alloc_stall_ms",
    /// Time mutators waited, paced by a pre-clean that did not converge (ms, summed over
    /// mutators).
    PacedMs = "paced_ms",
    /// Pages handed to the allocator dirty while a page tracker was armed.
    HandedOut = "handed_out",
    /// Faults on pages handed out during the cycle (a harvest had protected them again).
    FrontierFaults = "frontier_faults",
    /// Harvested granules on the allocation frontier.
    DirtyFrontier = "dirty_frontier",
    /// Harvested granules on older objects.
    DirtyOld = "dirty_old",
    /// Peak resident set (MiB).
    PeakRssMib = "peak_rss_mib",
    /// Of the heap, what transparent huge pages backed at the end of the run (MiB).
    HeapHugeMib = "heap_huge_mib",
    /// Bytes handed to the mutators over the run (MiB).
    AllocatedMib = "allocated_mib",
    /// Barrier-only mode: duty periods completed.
    DutyPeriods = "duty_periods",
    /// Barrier-only mode: share of the run's wall time with the tracker armed.
    DutyArmedShare = "duty_armed_share",
    /// Barrier-only mode: granules the periods' harvests handed over.
    DutyRecorded = "duty_recorded",
    /// Barrier-only mode: the collector thread's time in the arms, harvests and disarms
    /// (ms), during which it runs beside the mutators.
    DutyWorkMs = "duty_work_ms",
    /// Barrier-only runs and micro rounds: TLB shootdown interrupts counted over the run or
    /// round, on every CPU (`/proc/interrupts`, system-wide: other processes add to it).
    TlbShootdowns = "tlb_shootdowns",
    /// Barrier-only runs and the micro's rounds beside another thread, where the two sides
    /// ran pinned to two CPUs: the TLB shootdowns the mutator's (the writer's) CPU
    /// received, sent by the other side's protection changes (or by other processes).
    TlbShootdownsMutatorCpu = "tlb_shootdowns_mutator_cpu",
    /// As [`Metric::TlbShootdownsMutatorCpu`], on the other side's CPU (the collector's,
    /// or the micro's other thread's): shootdowns the mutator's own faults or
    /// protection changes sent (or other processes).
    TlbShootdownsCollectorCpu = "tlb_shootdowns_collector_cpu",
    /// Reference stores and payload writes of the run.
    Stores = "stores",
    /// Process CPU time (ms).
    CpuTotalMs = "cpu_total_ms",
    /// Mutator threads' CPU (ms).
    CpuMutatorMs = "cpu_mutator_ms",
    /// Collector thread's CPU (ms).
    CpuCollectorMs = "cpu_collector_ms",
    /// Fault-service thread's CPU (ms).
    CpuServiceMs = "cpu_service_ms",
    /// Other threads' CPU (ms).
    CpuOtherMs = "cpu_other_ms",
    /// Of the mutator threads' CPU, the time in user mode (ms).
    CpuMutatorUserMs = "cpu_mutator_user_ms",
    /// Time the mutator threads waited on a run queue for a CPU (ms).
    RunQueueMutatorMs = "run_queue_mutator_ms",
    /// Time the fault-service thread waited on a run queue for a CPU (ms).
    RunQueueServiceMs = "run_queue_service_ms",
    /// Wall time less the pauses (ms), for the lower bound.
    WallMinusGcMs = "wall_minus_gc_ms",
    /// CPU less the collector-side threads' (ms), for the lower bound.
    CpuMinusGcMs = "cpu_minus_gc_ms",
    /// Writers' fault stalls measured.
    Stalls = "stalls",
    /// Stalls the tracker could not record.
    StallsDropped = "stalls_dropped",
    /// Stall time (ms).
    StallMs = "stall_ms",
    /// Share of the run's wall time with the tracker armed (arm to disarm, summed over
    /// cycles, from the cycle log).
    ArmedShare = "armed_share",
    /// Bytes allocated per completed cycle (MiB).
    AllocPerCycleMib = "alloc_per_cycle_mib",
    /// The heap size over the workload's minimum heap at this point.
    HeapMultiple = "heap_multiple",
    /// Micro: time of the first pass of stores (ns).
    StoresNs = "stores_ns",
    /// Micro: time of the second pass (ns).
    SteadyNs = "steady_ns",
    /// Micro: arm (ns).
    ArmNs = "arm_ns",
    /// Micro: harvest and disarm (ns).
    HarvestNs = "harvest_ns",
    /// Micro: pages written per round.
    PagesWritten = "pages_written",
    /// Micro: arm + stores + harvest per store (ns).
    TotalNsPerStore = "total_ns_per_store",
    /// Micro: granules the harvest reported.
    DirtyGranules = "dirty_granules",
    /// The smallest heap that fitted (MiB).
    MinHeapMib = "min_heap_mib",
    /// The largest heap tested that did not fit (MiB; 0 if none was tried).
    MinHeapFailsMib = "min_heap_fails_mib",
    /// A minimum-heap search that gave no answer (the note says why).
    MinHeap = "min_heap",
    /// One step of the minimum-heap search: 1 fits, 0 does not.
    Fits = "fits",
    /// A calibration run's wall time (ms), at the work of the row's note.
    CalibrationMs = "calibration_ms",
    /// Bytes an end-to-end run of the workload allocates per live byte, as calibrated.
    AllocatedPerLive = "allocated_per_live",
    /// Heap-map: pages in the heap.
    HeapPages = "heap_pages",
    /// Heap-map: one dirtied page (its index).
    DirtyPage = "dirty_page",
    /// An invocation killed at the timeout.
    Timeout = "timeout",
    /// An invocation that crashed.
    Crash = "crash",
    /// An invocation that failed with an error.
    Failed = "failed",
    /// An invocation that ran out of memory.
    Oom = "oom",
}

impl Metric {
    /// The name in the CSV.
    pub fn name(self) -> String {
        match self {
            Metric::Mmu(w) => format!("mmu_{w}ms"),
            Metric::MmuStall(w) => format!("mmu_stall_{w}ms"),
            Metric::PauseCdf(q) => format!("pause_cdf_{}", f64::from(q) / 10.0),
            fixed => Metric::FIXED
                .iter()
                .find(|(m, _)| *m == fixed)
                .map(|(_, n)| (*n).to_string())
                .expect("every fixed metric is listed"),
        }
    }

    /// The pause-CDF metric of quantile `q` percent (`99.9`).
    pub fn pause_cdf(q: f64) -> Metric {
        Metric::PauseCdf((q * 10.0).round() as u32)
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Metric, String> {
        if let Some((m, _)) = Metric::FIXED.iter().find(|(_, n)| *n == s) {
            return Ok(*m);
        }
        let window = |rest: &str| rest.strip_suffix("ms")?.parse::<u64>().ok();
        if let Some(w) = s.strip_prefix("mmu_stall_").and_then(window) {
            return Ok(Metric::MmuStall(w));
        }
        if let Some(w) = s.strip_prefix("mmu_").and_then(window) {
            return Ok(Metric::Mmu(w));
        }
        if let Some(q) = s
            .strip_prefix("pause_cdf_")
            .and_then(|q| q.parse::<f64>().ok())
            && (0.0..=100.0).contains(&q)
        {
            return Ok(Metric::pause_cdf(q));
        }
        Err(format!("unknown metric `{s}`"))
    }
}

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Metric, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One measured number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// What it belongs to.
    pub section: Section,
    /// The variant's name (`bdwgc-stw` for the peer).
    pub tracker: String,
    /// The workload (`pages-spp16`, `gcbench-l64`, `graph-spp1024`).
    pub workload: String,
    /// Mutator threads.
    pub threads: usize,
    /// Heap size in MiB (the region's size for the micro).
    pub heap_mib: f64,
    /// The invocation: the process that measured it, numbered per point from 0.
    pub invocation: usize,
    /// The round inside that process (the micro runs several; 0 elsewhere).
    pub round: usize,
    /// What was measured.
    pub metric: Metric,
    /// The value.
    pub value: f64,
    /// Why, for `invalid` and `error` rows; how, for a few others (empty otherwise).
    pub note: String,
}

#[cfg(test)]
mod tests;
