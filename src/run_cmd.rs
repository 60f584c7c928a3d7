//! `barrierlab run` and `barrierlab gcbench`: one workload, once, on one barrier, and its
//! result on one line (`key=value`) or as JSON; `probe --json`.

use std::process::ExitCode;
use std::time::Duration;

use barrierlab::barrier::{BarrierConfig, MechanismOptions, UffdWpOptions};
use barrierlab::probe::Probe;
use barrierlab::workload::{
    self, BinaryTreesParams, GcBenchParams, GcOldParams, GraphParams, LruParams, RunResult,
    Workload,
};
use barrierlab::{BarrierKind, HeapConfig, ServiceLayout};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

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
    /// Advise the heap `MADV_HUGEPAGE` (transparent huge pages) instead of
    /// `MADV_NOHUGEPAGE`; the result's `heap_huge_mib` says how much of the heap huge
    /// pages backed at the end (a page tracker's write protection splits them).
    #[arg(long)]
    pub huge_pages: bool,
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
/// `-l<MiB>`), as one of `threads` threads runs it in a study point.
pub fn study_workload(label: &str, threads: usize) -> Result<Workload, String> {
    let live: Vec<u64> = label
        .rsplit_once("-l")
        .and_then(|(_, mib)| mib.parse().ok())
        .into_iter()
        .collect();
    barrierlab::study::point::find_workload(barrierlab::study::config::Mode::Default, &live, label)
        .map(|w| w.at_threads(threads))
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
        .log_cycles(opts.log_cycles);
    if let Some(n) = opts.marker_threads {
        cfg = cfg.marker_threads(n as usize);
    }
    if opts.barrier_only {
        // No cycle unless the heap fills; the duty cycle arms the tracker instead.
        cfg = cfg.pacing(false).trigger(1.0).duty_cycle(
            Duration::from_millis(opts.duty_period_ms),
            opts.armed_percent as f64 / 100.0,
        );
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
            let v = barrier_only_json(opts, workload, &r, shootdowns);
            if opts.json {
                crate::emit(&format!("{v}\n"))
            } else {
                crate::emit(&format!("{}\n", key_values(&v)))
            }
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
        Ok(r) => {
            let v = result_json(opts, workload, &r);
            if opts.json {
                crate::emit(&format!("{v}\n"))
            } else {
                crate::emit(&format!("{}\n", key_values(&v)))
            }
        }
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

/// What a barrier-only run reports: the mutators' time and work, what the duty cycle's
/// periods did, and the TLB shootdowns counted during the run (system-wide).
fn barrier_only_json(
    opts: &HeapOpts,
    workload: &Workload,
    r: &RunResult,
    shootdowns: Option<u64>,
) -> Value {
    let ms = |d: Duration| round(d.as_secs_f64() * 1e3, 1);
    let d = &r.stats.duty;
    let t = &r.stats.tracker;
    json!({
        "workload": workload.name(),
        "barrier": opts.barrier.name(),
        "mode": "barrier-only",
        "heap_mib": opts.heap_mib,
        "threads": opts.threads,
        "duty_period_ms": opts.duty_period_ms,
        "armed_percent": opts.armed_percent,
        "total_ms": ms(r.wall),
        "cpu_ms": ms(r.cpu.total),
        "cpu_mutator_ms": ms(r.cpu.mutator),
        "work": r.work,
        "cycles": r.stats.cycles,
        "periods": d.periods,
        "interrupted": d.interrupted,
        "armed_share": round(d.armed.as_secs_f64() / r.wall.as_secs_f64().max(1e-9), 3),
        "arm_ms": ms(d.arm),
        "harvest_ms": ms(d.harvest),
        "disarm_ms": ms(d.disarm),
        "recorded": d.recorded,
        "faults": t.faults,
        "handed_out": t.handed_out,
        "tlb_shootdowns": shootdowns,
        "failures": d.failures,
        "cause": t.last_degradation.map(|d| d.to_string()),
        "allocated_mib": round(r.stats.bytes_allocated as f64 / MIB, 1),
    })
}

/// Everything one run reports, in the order the `key=value` line prints it.
fn result_json(opts: &HeapOpts, workload: &Workload, r: &RunResult) -> Value {
    let ms = |d: Duration| round(d.as_secs_f64() * 1e3, 1);
    let s = &r.stats;
    let t = &s.tracker;
    // The userfaultfd mode, so that a fallback to user-mode-only shows.
    let uffd = match t.uffd {
        Some(m) if m.fell_back => format!("{}(fallback)", m.name()),
        Some(m) => m.name().to_string(),
        None => "-".to_string(),
    };
    let layout = match opts.barrier {
        BarrierKind::UffdWp => opts.layout.unwrap_or_default().name().to_string(),
        _ => "-".to_string(),
    };
    let (frontier, old) = s.dirty_split();
    let stall_p99 = workload::pause_percentile(s.stalls.iter().map(|x| x.duration), 99.0);
    json!({
        "workload": workload.name(),
        "barrier": opts.barrier.name(),
        "layout": layout,
        "uffd": uffd,
        "heap_mib": opts.heap_mib,
        "huge_pages": opts.huge_pages,
        "heap_huge_mib": round(r.heap_huge_bytes as f64 / MIB, 1),
        "threads": opts.threads,
        "total_ms": ms(r.wall),
        "stw_ms": ms(r.pause_total()),
        "cpu_ms": ms(r.cpu.total),
        "cpu_collector_ms": ms(r.cpu.collector),
        "cycles": s.cycles,
        "allocated_mib": round(s.bytes_allocated as f64 / MIB, 1),
        "marked_mib": round(median_marked(s) as f64 / MIB, 1),
        "pauses": s.pauses.len(),
        "p50_us": r.pause_percentile_us(50.0).round() as u64,
        "p99_us": r.pause_percentile_us(99.0).round() as u64,
        "max_us": (s.max_pause().as_nanos() as f64 / 1e3).round() as u64,
        "mmu1ms": round(r.mmu(Duration::from_millis(1)), 2),
        "mmu10ms": round(r.mmu(Duration::from_millis(10)), 2),
        "mmu100ms": round(r.mmu(Duration::from_millis(100)), 2),
        "faults": t.faults,
        "frontier_faults": t.frontier_faults,
        "handed_out": t.handed_out,
        "hand_out_calls": t.hand_out_calls,
        "recorded": t.recorded,
        "dirty_frontier": frontier,
        "dirty_old": old,
        "stalls": s.stalls.len(),
        "stall_p99_us": round(stall_p99.as_secs_f64() * 1e6, 1),
        "degraded": t.degradations,
        "cause": t.last_degradation.map(|d| d.to_string()),
        "marker_threads": s.pauses.iter().map(|p| p.marker_threads).max().unwrap_or(0),
        "fallbacks": s.fallbacks(),
        "alloc_stalls": s.allocation_stalls.len(),
        "alloc_stall_ms": ms(s.allocation_stalls.iter().map(|x| x.duration).sum()),
        "alloc_stall_by_phase_ms": stall_ms_by_phase(&s.allocation_stalls),
    })
}

const MIB: f64 = (1 << 20) as f64;

/// Allocation-stall time by the collector's phase when each stall began, in cycle order,
/// phases without stalls left out.
fn stall_ms_by_phase(stalls: &[barrierlab::Stall]) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for p in barrierlab::Phase::ALL {
        let d: Duration = stalls
            .iter()
            .filter(|s| s.phase == Some(p))
            .map(|s| s.duration)
            .sum();
        if !d.is_zero() {
            out.insert(p.name().into(), round(d.as_secs_f64() * 1e3, 1).into());
        }
    }
    out
}

/// The median of the bytes the cycles marked: the live set the run kept, as the
/// collector saw it (a full collection's count included).
fn median_marked(s: &barrierlab::Stats) -> u64 {
    let mut marked: Vec<u64> = s.cycle_log.iter().map(|c| c.bytes_marked).collect();
    marked.sort_unstable();
    marked.get(marked.len() / 2).copied().unwrap_or(0)
}

fn round(x: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (x * k).round() / k
}

/// The one-line form: the workload's name, then `key=value` for every other field
/// (`cause` quoted, and left out when there is none; `_ms`/`_us`/`_mib` as units; an
/// object as `name:value` pairs joined by commas, `-` when empty).
fn key_values(v: &Value) -> String {
    let obj = v.as_object().expect("a result is an object");
    let mut line = obj["workload"].as_str().unwrap_or("run").to_string();
    for (k, x) in obj.iter().filter(|(k, _)| k.as_str() != "workload") {
        let (key, unit) = [("_ms", "ms"), ("_us", "us"), ("_mib", "MiB")]
            .iter()
            .find_map(|(suffix, unit)| k.strip_suffix(suffix).map(|b| (b, *unit)))
            .unwrap_or((k.as_str(), ""));
        let text = match x {
            Value::Null => continue,
            Value::String(s) if k == "cause" => format!("\"{s}\""),
            Value::String(s) => format!("{s}{unit}"),
            Value::Object(m) if m.is_empty() => "-".into(),
            Value::Object(m) => {
                let pairs: Vec<String> = m.iter().map(|(n, x)| format!("{n}:{x}{unit}")).collect();
                pairs.join(",")
            }
            other => format!("{other}{unit}"),
        };
        line.push_str(&format!(" {key}={text}"));
    }
    line
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
