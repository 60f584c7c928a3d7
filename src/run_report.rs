//! What `barrierlab run` and `gcbench` print: one typed record per run ([`RunReport`],
//! or [`BarrierOnlyReport`] for a barrier-only run), serialised as JSON by serde, or as
//! one `key=value` line from the same fields ([`key_values`]). The field order is the
//! line's order.

use std::time::Duration;

use barrierlab::heap::Placement;
use barrierlab::sys::kernel::Shootdowns;
use barrierlab::workload::{self, RunResult, Workload};
use barrierlab::{BarrierKind, Phase, Stall, Stats};
use serde::Serialize;
use serde_json::Value;

use crate::run_opts::HeapOpts;

/// A run that collected: its setting, its time, its collections and pauses, what the
/// tracker did, and the allocation stalls. Times in milliseconds (`_ms`) or
/// microseconds (`_us`), sizes in MiB (`_mib`).
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// The workload's name.
    pub workload: String,
    /// The barrier's name.
    pub barrier: &'static str,
    /// The `uffd-wp` fault service layout; `-` for any other barrier.
    pub layout: &'static str,
    /// The userfaultfd mode the tracker got (`full`, `user-mode-only`, with
    /// `(fallback)` when full mode was refused); `-` without a userfaultfd.
    pub uffd: String,
    /// The heap's size.
    pub heap_mib: u64,
    /// Whether transparent huge pages were asked for.
    pub huge_pages: bool,
    /// How much of the heap huge pages backed at the end.
    pub heap_huge_mib: f64,
    /// Mutator threads.
    pub threads: u64,
    /// Wall time of the workload.
    pub total_ms: f64,
    /// Time the world was stopped.
    pub stw_ms: f64,
    /// CPU time of the process.
    pub cpu_ms: f64,
    /// CPU time of the collector's threads.
    pub cpu_collector_ms: f64,
    /// Collections.
    pub cycles: u64,
    /// Bytes the mutators allocated.
    pub allocated_mib: f64,
    /// The median of the bytes the cycles marked: the live set as the collector saw it.
    pub marked_mib: f64,
    /// Stop-the-world pauses.
    pub pauses: usize,
    /// The median pause.
    pub p50_us: u64,
    /// The 99th percentile pause.
    pub p99_us: u64,
    /// The longest pause.
    pub max_us: u64,
    /// Minimum mutator utilisation over 1 ms windows.
    pub mmu1ms: f64,
    /// Over 10 ms windows.
    pub mmu10ms: f64,
    /// Over 100 ms windows.
    pub mmu100ms: f64,
    /// Faults the tracker served or saw.
    pub faults: u64,
    /// Of which, first writes to pages allocated into during the cycle.
    pub frontier_faults: u64,
    /// Pages the allocator handed out while armed (recorded without a fault).
    pub handed_out: u64,
    /// The hand-out calls that made them writable.
    pub hand_out_calls: u64,
    /// Free pages arms left writable (so handing them out needed no call).
    pub opened_at_arm: u64,
    /// Young pages arms left writable and recorded (a harvest protects one only once it
    /// holds a marked object).
    pub kept_at_arm: u64,
    /// Of those, the pages harvests took once they held a marked object.
    pub kept_released: u64,
    /// Granules the tracker recorded.
    pub recorded: u64,
    /// Dirty granules at remark that were allocation frontier.
    pub dirty_frontier: usize,
    /// Dirty granules at remark in older objects.
    pub dirty_old: usize,
    /// Fault stalls measured.
    pub stalls: usize,
    /// Their 99th percentile.
    pub stall_p99_us: f64,
    /// Times the tracker degraded to "everything dirty".
    pub degraded: u64,
    /// The last degradation's cause (left out of the line when there is none).
    pub cause: Option<String>,
    /// The most threads that marked in one pause.
    pub marker_threads: usize,
    /// Cycles that fell back to a stop-the-world collection.
    pub fallbacks: usize,
    /// Allocations that waited for the collector.
    pub alloc_stalls: usize,
    /// Their total time.
    pub alloc_stall_ms: f64,
    /// Their time by the collector's phase when each began, in cycle order.
    pub alloc_stall_by_phase_ms: serde_json::Map<String, Value>,
    /// The waits of mutators paced by a pre-clean that did not converge.
    pub paced_waits: usize,
    /// Their total time.
    pub paced_ms: f64,
}

impl RunReport {
    /// The record of `r`, a run of `workload` as `opts` set it up.
    pub fn new(opts: &HeapOpts, workload: &Workload, r: &RunResult) -> RunReport {
        let s = &r.stats;
        let t = &s.tracker;
        let uffd = match t.uffd {
            Some(m) if m.fell_back => format!("{}(fallback)", m.name()),
            Some(m) => m.name().to_string(),
            None => "-".to_string(),
        };
        let layout = match opts.barrier {
            BarrierKind::UffdWp => opts.layout.unwrap_or_default().name(),
            _ => "-",
        };
        let (dirty_frontier, dirty_old) = s.dirty_split();
        let stall_p99 = workload::pause_percentile(s.stalls.iter().map(|x| x.duration), 99.0);
        RunReport {
            workload: workload.name(),
            barrier: opts.barrier.name(),
            layout,
            uffd,
            heap_mib: opts.heap_mib,
            huge_pages: opts.huge_pages,
            heap_huge_mib: mib(r.heap_huge_bytes),
            threads: opts.threads,
            total_ms: ms(r.wall),
            stw_ms: ms(r.pause_total()),
            cpu_ms: ms(r.cpu.total),
            cpu_collector_ms: ms(r.cpu.collector),
            cycles: s.cycles,
            allocated_mib: mib(s.bytes_allocated),
            marked_mib: mib(median_marked(s)),
            pauses: s.pauses.len(),
            p50_us: r.pause_percentile_us(50.0).round() as u64,
            p99_us: r.pause_percentile_us(99.0).round() as u64,
            max_us: (s.max_pause().as_nanos() as f64 / 1e3).round() as u64,
            mmu1ms: round(r.mmu(Duration::from_millis(1)), 2),
            mmu10ms: round(r.mmu(Duration::from_millis(10)), 2),
            mmu100ms: round(r.mmu(Duration::from_millis(100)), 2),
            faults: t.faults,
            frontier_faults: t.frontier_faults,
            handed_out: t.handed_out,
            hand_out_calls: t.hand_out_calls,
            opened_at_arm: t.opened_at_arm,
            kept_at_arm: t.kept_at_arm,
            kept_released: t.kept_released,
            recorded: t.recorded,
            dirty_frontier,
            dirty_old,
            stalls: s.stalls.len(),
            stall_p99_us: round(stall_p99.as_secs_f64() * 1e6, 1),
            degraded: t.degradations,
            cause: t.last_degradation.map(|d| d.to_string()),
            marker_threads: s.pauses.iter().map(|p| p.marker_threads).max().unwrap_or(0),
            fallbacks: s.fallbacks(),
            alloc_stalls: s.allocation_stalls.len(),
            alloc_stall_ms: ms(s.allocation_stalls.iter().map(|x| x.duration).sum()),
            alloc_stall_by_phase_ms: stall_ms_by_phase(&s.allocation_stalls),
            paced_waits: s.paced.len(),
            paced_ms: ms(s.paced.iter().map(|x| x.duration).sum()),
        }
    }
}

/// A barrier-only run: the mutators' time and work, what the duty cycle's periods did,
/// and the TLB shootdowns counted during the run (system-wide, and on each side's CPU
/// where the mutators and the collector ran on two: [`barrierlab::heap::Placement`]).
#[derive(Debug, Serialize)]
pub struct BarrierOnlyReport {
    /// The workload's name.
    pub workload: String,
    /// The barrier's name.
    pub barrier: &'static str,
    /// Always `barrier-only`.
    pub mode: &'static str,
    /// The heap's size.
    pub heap_mib: u64,
    /// Mutator threads.
    pub threads: u64,
    /// The duty cycle's period.
    pub duty_period_ms: u64,
    /// The share of each period the tracker was to be armed, in percent.
    pub armed_percent: u64,
    /// Wall time of the workload.
    pub total_ms: f64,
    /// CPU time of the process.
    pub cpu_ms: f64,
    /// CPU time of the mutators.
    pub cpu_mutator_ms: f64,
    /// Of the mutators' CPU time, the time in user mode.
    pub cpu_mutator_user_ms: f64,
    /// Time the mutators waited on a run queue for a CPU.
    pub run_queue_mutator_ms: f64,
    /// Time the fault-service thread waited on a run queue for a CPU (0 for a tracker
    /// without one).
    pub run_queue_service_ms: f64,
    /// The workload's own count of its work (stores, operations).
    pub work: u64,
    /// Collections (0 in a valid run).
    pub cycles: u64,
    /// Duty periods completed.
    pub periods: u64,
    /// Periods cut short by the end of the run.
    pub interrupted: u64,
    /// The share of the run the tracker was armed, as measured.
    pub armed_share: f64,
    /// Time spent arming.
    pub arm_ms: f64,
    /// Time spent harvesting.
    pub harvest_ms: f64,
    /// Time spent disarming.
    pub disarm_ms: f64,
    /// Granules the harvests handed over.
    pub recorded: u64,
    /// Faults the tracker served or saw.
    pub faults: u64,
    /// Pages the allocator handed out while armed.
    pub handed_out: u64,
    /// TLB shootdowns during the run, system-wide (`None` where `/proc/interrupts` has
    /// no TLB row).
    pub tlb_shootdowns: Option<u64>,
    /// Of those, received by the mutators' CPU: sent by the collector's protection
    /// changes (or other processes). `None` without a placement.
    pub tlb_shootdowns_mutator_cpu: Option<u64>,
    /// Received by the collector's CPU: sent by the mutators' faults or protection
    /// changes (or other processes). `None` without a placement.
    pub tlb_shootdowns_collector_cpu: Option<u64>,
    /// Arms, harvests or disarms that failed.
    pub failures: u64,
    /// The last degradation's cause (left out of the line when there is none).
    pub cause: Option<String>,
    /// Bytes the mutators allocated.
    pub allocated_mib: f64,
}

impl BarrierOnlyReport {
    /// The record of `r`, a barrier-only run of `workload` as `opts` set it up, placed
    /// as `placement` says, during which `shootdowns` were counted.
    pub fn new(
        opts: &HeapOpts,
        workload: &Workload,
        r: &RunResult,
        placement: Option<Placement>,
        shootdowns: Option<&Shootdowns>,
    ) -> BarrierOnlyReport {
        let on = |cpu: fn(Placement) -> usize| shootdowns?.on(cpu(placement?));
        let d = &r.stats.duty;
        let t = &r.stats.tracker;
        BarrierOnlyReport {
            workload: workload.name(),
            barrier: opts.barrier.name(),
            mode: "barrier-only",
            heap_mib: opts.heap_mib,
            threads: opts.threads,
            duty_period_ms: opts.duty_period_ms,
            armed_percent: opts.armed_percent,
            total_ms: ms(r.wall),
            cpu_ms: ms(r.cpu.total),
            cpu_mutator_ms: ms(r.cpu.mutator),
            cpu_mutator_user_ms: ms(r.cpu.mutator_user),
            run_queue_mutator_ms: ms(r.cpu.mutator_waited),
            run_queue_service_ms: ms(r.cpu.service_waited),
            work: r.work,
            cycles: r.stats.cycles,
            periods: d.periods,
            interrupted: d.interrupted,
            armed_share: round(d.armed.as_secs_f64() / r.wall.as_secs_f64().max(1e-9), 3),
            arm_ms: ms(d.arm),
            harvest_ms: ms(d.harvest),
            disarm_ms: ms(d.disarm),
            recorded: d.recorded,
            faults: t.faults,
            handed_out: t.handed_out,
            tlb_shootdowns: shootdowns.map(Shootdowns::total),
            tlb_shootdowns_mutator_cpu: on(|p| p.mutators),
            tlb_shootdowns_collector_cpu: on(|p| p.collector),
            failures: d.failures,
            cause: t.last_degradation.map(|d| d.to_string()),
            allocated_mib: mib(r.stats.bytes_allocated),
        }
    }
}

/// `report` as one JSON object on a line, or with `!json` as [`key_values`].
pub fn render(report: &impl Serialize, json: bool) -> String {
    let v = serde_json::to_value(report).expect("a run's record serialises");
    if json {
        format!("{v}\n")
    } else {
        format!("{}\n", key_values(&v))
    }
}

/// Milliseconds, to 0.1.
fn ms(d: Duration) -> f64 {
    round(d.as_secs_f64() * 1e3, 1)
}

/// MiB, to 0.1.
fn mib(bytes: u64) -> f64 {
    round(bytes as f64 / (1u64 << 20) as f64, 1)
}

/// Allocation-stall time by the collector's phase when each stall began, in cycle order,
/// phases without stalls left out.
fn stall_ms_by_phase(stalls: &[Stall]) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for p in Phase::ALL {
        let d: Duration = stalls
            .iter()
            .filter(|s| s.phase == Some(p))
            .map(|s| s.duration)
            .sum();
        if !d.is_zero() {
            out.insert(p.name().into(), ms(d).into());
        }
    }
    out
}

/// The median of the bytes the cycles marked: the live set the run kept, as the
/// collector saw it (a full collection's count included).
fn median_marked(s: &Stats) -> u64 {
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
pub fn key_values(v: &Value) -> String {
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
