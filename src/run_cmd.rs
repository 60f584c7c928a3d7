//! `barrierlab run` and `barrierlab gcbench`: one workload, once, on one barrier, and its
//! result on one line (`key=value`) or as JSON; `probe --json`.

use std::process::ExitCode;
use std::time::Duration;

use barrierlab::barrier::{BarrierConfig, MechanismOptions, UffdWpOptions};
use barrierlab::probe::Probe;
use barrierlab::workload::{
    self, BinaryTreesParams, GcBenchParams, GcOldParams, GraphParams, LruParams, Workload,
};
use barrierlab::{BarrierKind, HeapConfig};
use clap::ValueEnum;

use crate::run_opts::HeapOpts;
use crate::run_report::{BarrierOnlyReport, RunReport, render};

/// The most a `run --scaled` may allocate (bytes): beyond it the run would take longer
/// than anyone means to wait, and the size asked for is more likely a mistake.
pub const SCALED_LIMIT: u64 = 64 << 30;

/// Refuses a scaled workload that would allocate more than [`SCALED_LIMIT`] on
/// `threads` threads, with the estimate.
pub fn check_scaled(w: &Workload, threads: usize) -> Result<(), String> {
    let bytes = w.allocation_estimate() as f64 * threads as f64;
    if bytes <= SCALED_LIMIT as f64 {
        return Ok(());
    }
    // About 1 GiB per second per thread on the project's machines.
    let secs = bytes / threads as f64 / (1u64 << 30) as f64;
    Err(format!(
        "{} scaled to this heap would allocate about {:.1} GiB (roughly {:.0} minutes at ~1 GiB/s \
         per thread); the limit is {} GiB: choose a smaller --heap-mib",
        w.name(),
        bytes / (1u64 << 30) as f64,
        secs / 60.0,
        SCALED_LIMIT >> 30
    ))
}

/// The workloads `run` offers.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadName {
    /// GCBench (Boehm's): trees built top-down and bottom-up beside a long-lived tree.
    Gcbench,
    /// Graph mutation: pointer stores over a fixed graph, a knob for stores per page.
    Graph,
    /// An LRU cache over a hash map of heap objects: old-to-young stores, steady eviction.
    Lru,
    /// A long-lived binary tree whose subtrees are replaced and swapped.
    BinaryTrees,
    /// GCOld (Sun Labs): 25 MB of trees replaced oldest first, 10 pointer mutations and
    /// 100 KB promoted per MB of short-lived garbage.
    Gcold,
}

impl WorkloadName {
    /// The workload with its default parameters, or the scaled-down ones with `quick`.
    pub fn workload(self, quick: bool) -> Workload {
        match (self, quick) {
            (WorkloadName::Gcbench, false) => Workload::GcBench(GcBenchParams::CLASSIC),
            (WorkloadName::Gcbench, true) => Workload::GcBench(GcBenchParams::QUICK),
            (WorkloadName::Graph, _) => Workload::Graph(GraphParams::default()),
            (WorkloadName::Lru, _) => Workload::Lru(LruParams::default()),
            (WorkloadName::BinaryTrees, _) => Workload::BinaryTrees(BinaryTreesParams::default()),
            (WorkloadName::Gcold, _) => Workload::GcOld(GcOldParams::default()),
        }
    }
}

/// The default study's workload labelled `label` (its live size from a trailing
/// `-l<MiB>`), as one of `threads` threads runs it in a study point: with the work a
/// study calibrated for it (`per_live`, bytes allocated per live byte) if given, else its
/// starting work.
pub fn study_workload(
    label: &str,
    per_live: Option<f64>,
    threads: usize,
) -> Result<Workload, String> {
    let live: Vec<u64> = label
        .rsplit_once("-l")
        .and_then(|(_, mib)| mib.parse().ok())
        .into_iter()
        .collect();
    barrierlab::study::point::find_workload(barrierlab::study::config::Mode::Default, &live, label)
        .map(|w| match per_live {
            Some(x) => w.with_allocated_per_live(x).at_threads(threads),
            None => w.at_threads(threads),
        })
        .map_err(|e| {
            let labels: Vec<String> = barrierlab::study::config::StudyConfig::new(
                barrierlab::study::config::Mode::Default,
                ".".into(),
            )
            .workloads()
            .into_iter()
            .map(|w| w.label)
            .collect();
            format!("{e}; the default study's are {}", labels.join(", "))
        })
}

/// Runs `workload` once as `opts` say and prints its result; the exit code says whether
/// it is one (1 for a failed run or one that collected nothing, 2 for a bad flag).
pub fn run(opts: &HeapOpts, workload: &Workload) -> ExitCode {
    if opts.layout.is_some() && opts.barrier != BarrierKind::UffdWp {
        crate::warn(&format!(
            "error: --layout applies only to --barrier uffd-wp (its fault service), not to \
             --barrier {}",
            opts.barrier
        ));
        return ExitCode::from(2);
    }
    let (heap_mib, threads) = (opts.heap_mib as usize, opts.threads as usize);
    let barrier = match opts.layout {
        Some(service) => BarrierConfig::UffdWp(UffdWpOptions {
            service,
            ..UffdWpOptions::DEFAULT
        }),
        None => BarrierConfig::of(opts.barrier),
    };
    let mut cfg = HeapConfig::new()
        .heap_bytes(heap_mib << 20)
        .barrier(barrier)
        .huge_pages(opts.huge_pages)
        .keep_young_pages(opts.keep_young_pages)
        .log_cycles(opts.log_cycles)
        .preclean_pacing(
            (opts.preclean_pacing_percent < 100)
                .then(|| opts.preclean_pacing_percent as f64 / 100.0),
        );
    if let Some(n) = opts.marker_threads {
        cfg = cfg.marker_threads(n as usize);
    }
    if opts.barrier_only {
        // No cycle unless the heap fills; the duty cycle arms the tracker instead.
        cfg = cfg.pacing(false).trigger(1.0).duty_cycle(
            Duration::from_millis(opts.duty_period_ms),
            opts.armed_percent as f64 / 100.0,
        );
        // As the study's barrier-only points: the mutators and the collector on two
        // CPUs, so that the shootdowns each received say who sent them.
        match barrierlab::heap::Placement::first_two_allowed() {
            Ok(Some(p)) => cfg = cfg.placement(p),
            Ok(None) => {}
            Err(e) => crate::warn(&format!("warning: the run is not placed on two CPUs: {e}")),
        }
    }
    let (result, shootdowns) =
        barrierlab::sys::kernel::counting_tlb_shootdowns(|| workload::run(&cfg, workload, threads));
    match result {
        Ok(r) if opts.barrier_only && r.stats.cycles > 0 => {
            let allocated_mib = r.stats.bytes_allocated >> 20;
            crate::warn(&format!(
                "error: not a barrier-only measurement: {} collection(s) ran, because {} \
                 allocated {allocated_mib} MiB in a {heap_mib} MiB heap; use --heap-mib {} or \
                 more",
                r.stats.cycles,
                workload.name(),
                allocated_mib * 5 / 4 + 16
            ));
            ExitCode::FAILURE
        }
        Ok(r)
            if opts.barrier_only
                && r.stats.duty.periods == 0
                && opts.barrier != BarrierKind::None =>
        {
            crate::warn(&format!(
                "error: not a barrier-only measurement: the run ({:.0} ms) ended before one \
                 {} ms duty period completed; use a shorter --duty-period-ms",
                r.wall.as_secs_f64() * 1e3,
                opts.duty_period_ms
            ));
            ExitCode::FAILURE
        }
        Ok(r) if opts.barrier_only => {
            let report =
                BarrierOnlyReport::new(opts, workload, &r, cfg.placement, shootdowns.as_ref());
            crate::emit(&render(&report, opts.json))
        }
        Ok(r) if r.stats.cycles == 0 => {
            // Not a measurement of a collector: say so instead of printing one.
            let allocated_mib = r.stats.bytes_allocated >> 20;
            crate::warn(&format!(
                "error: no collection ran: {} allocated {allocated_mib} MiB in a {heap_mib} MiB \
                 heap, so this run measured no garbage collection; use --heap-mib {} or less",
                workload.name(),
                (allocated_mib / 2).max(1)
            ));
            ExitCode::FAILURE
        }
        Ok(r) => crate::emit(&render(&RunReport::new(opts, workload, &r), opts.json)),
        Err(e) => {
            match barrierlab::study::point::resource_limit(&e) {
                // Not "unavailable": the mechanism works, a limit stopped this run.
                Some(limit) => crate::warn(&format!(
                    "error: a resource limit stopped the run ({limit}): {e}"
                )),
                None => crate::warn(&format!("error: {e}")),
            }
            ExitCode::FAILURE
        }
    }
}

/// `probe`: the report, or with `json` the same as one JSON object.
pub fn probe(json: bool) -> ExitCode {
    let p = Probe::run();
    if !json {
        return crate::emit(&p.to_string());
    }
    let v = serde_json::to_string(&p.to_json()).expect("the probe's report serialises");
    crate::emit(&format!("{v}\n"))
}
