//! What one end-to-end run measured, as the study's metrics: time, CPU by role, pauses
//! and their distribution, MMU (with and without the writers' fault stalls), faults, the
//! dirty split, and the concurrency-health figures (armed share, MiB per cycle). It turns
//! a [`crate::workload::RunResult`] into numbers; it never runs anything.

use std::time::Duration;

use super::data::Metric;
use crate::workload::{self, Workload};

/// The MMU windows the study reports, in milliseconds.
pub const MMU_WINDOWS_MS: [u64; 6] = [1, 2, 5, 10, 50, 100];

/// The quantiles (percent) of the pause distribution kept for the CDF figure.
pub const PAUSE_CDF_QUANTILES: [f64; 16] = [
    1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 100.0,
];

/// The share of the run's wall time with the tracker armed, from the cycle log: per
/// concurrent cycle, arm + the initial-mark pause + concurrent mark and pre-clean + the
/// remark pause (arm to the end of remark; disarm runs after the mutators resume and is
/// left out). Stop-the-world and full collections arm nothing.
pub fn armed_share(r: &workload::RunResult) -> f64 {
    use crate::collector::PauseKind;
    let s = &r.stats;
    let armed: Duration = s
        .cycle_log
        .iter()
        .filter(|c| !c.arm.is_zero())
        .map(|c| {
            let pauses: Duration = s
                .pauses
                .iter()
                .filter(|p| {
                    p.cycle == c.cycle
                        && matches!(p.kind, PauseKind::InitialMark | PauseKind::Remark)
                })
                .map(|p| p.duration)
                .sum();
            c.arm + c.mark + pauses
        })
        .sum();
    if r.wall.is_zero() {
        return f64::NAN;
    }
    (armed.as_secs_f64() / r.wall.as_secs_f64()).min(1.0)
}

/// The end-to-end metrics of one run.
pub fn macro_rows(r: &workload::RunResult, w: &Workload) -> Vec<(Metric, f64)> {
    let s = &r.stats;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let sum =
        |f: &dyn Fn(&crate::collector::CycleStats) -> f64| s.cycle_log.iter().map(f).sum::<f64>();
    let stw = r.pause_total();
    let c = &r.cpu;
    let gc_cpu = c.collector + c.service + c.other;
    let mut out: Vec<(Metric, f64)> = vec![
        (Metric::WallMs, ms(r.wall)),
        (Metric::StwMs, ms(stw)),
        (Metric::MutatorMs, ms(r.wall.saturating_sub(stw))),
        (Metric::Cycles, s.cycles as f64),
        (Metric::Pauses, s.pauses.len() as f64),
        (Metric::PauseP50Us, r.pause_percentile_us(50.0)),
        (Metric::PauseP90Us, r.pause_percentile_us(90.0)),
        (Metric::PauseP99Us, r.pause_percentile_us(99.0)),
        (Metric::PauseP999Us, r.pause_percentile_us(99.9)),
        (Metric::PauseMaxUs, s.max_pause().as_secs_f64() * 1e6),
        (Metric::Faults, s.tracker.faults as f64),
        (
            Metric::PrecleanDirty,
            sum(&|c| c.preclean_dirty.iter().sum::<usize>() as f64),
        ),
        (Metric::RemarkDirty, sum(&|c| c.remark_dirty as f64)),
        (Metric::RemarkRescanned, sum(&|c| c.remark_rescanned as f64)),
        (Metric::RemarkTraced, sum(&|c| c.remark_traced as f64)),
        (Metric::ArmMs, sum(&|c| ms(c.arm))),
        (Metric::HarvestMs, sum(&|c| ms(c.harvest))),
        (Metric::DisarmMs, sum(&|c| ms(c.disarm))),
        (Metric::DegradedCycles, s.degraded_cycles() as f64),
        (Metric::Fallbacks, s.fallbacks() as f64),
        (Metric::AllocStalls, s.allocation_stalls.len() as f64),
        (
            Metric::AllocStallMs,
            ms(s.allocation_stalls.iter().map(|st| st.duration).sum()),
        ),
        (
            Metric::PacedMs,
            ms(s.paced.iter().map(|st| st.duration).sum()),
        ),
        (Metric::HandedOut, s.tracker.handed_out as f64),
        (Metric::FrontierFaults, s.tracker.frontier_faults as f64),
        (Metric::DirtyFrontier, s.dirty_split().0 as f64),
        (Metric::DirtyOld, s.dirty_split().1 as f64),
        (Metric::PeakRssMib, r.peak_rss_kib as f64 / 1024.0),
        (
            Metric::HeapHugeMib,
            r.heap_huge_bytes as f64 / (1 << 20) as f64,
        ),
        (
            Metric::Stores,
            w.stores_per_thread() as f64 * r.threads as f64,
        ),
        (
            Metric::AllocatedMib,
            s.bytes_allocated as f64 / (1 << 20) as f64,
        ),
        (Metric::CpuTotalMs, ms(c.total)),
        (Metric::CpuMutatorMs, ms(c.mutator)),
        (Metric::CpuCollectorMs, ms(c.collector)),
        (Metric::CpuServiceMs, ms(c.service)),
        (Metric::CpuOtherMs, ms(c.other)),
        (Metric::CpuMutatorUserMs, ms(c.mutator_user)),
        (Metric::RunQueueMutatorMs, ms(c.mutator_waited)),
        (Metric::RunQueueServiceMs, ms(c.service_waited)),
        // What the run would have cost without a collector, as far as this run shows:
        // wall time less the pauses; CPU time less the collector's, the service's and
        // the pause markers' (in `other`).
        (Metric::WallMinusGcMs, ms(r.wall.saturating_sub(stw))),
        (Metric::CpuMinusGcMs, ms(c.total.saturating_sub(gc_cpu))),
        (Metric::ArmedShare, armed_share(r)),
        (
            Metric::AllocPerCycleMib,
            if s.cycles > 0 {
                s.bytes_allocated as f64 / s.cycles as f64 / (1 << 20) as f64
            } else {
                f64::NAN
            },
        ),
    ];
    // The pause distribution for the CDF figure, from the same HDR histogram.
    for q in PAUSE_CDF_QUANTILES {
        out.push((Metric::pause_cdf(q), r.pause_percentile_us(q)));
    }
    for wms in MMU_WINDOWS_MS {
        out.push((Metric::Mmu(wms), r.mmu(Duration::from_millis(wms))));
    }
    // MMU over the pauses and the writers' fault stalls, allocation stalls and paced
    // waits (a stall of
    // one of T mutators costs 1/T of the process for its duration), where the tracker
    // measures fault stalls (`uffd-wp-async`'s are resolved in the kernel, unseen).
    let method = s.tracker.stall_method;
    if !method.is_empty() && method != crate::barrier::STALL_KERNEL {
        let span = |start: Duration, d: Duration| (start.as_secs_f64(), (start + d).as_secs_f64());
        let pauses: Vec<(f64, f64)> = s.pauses.iter().map(|p| span(p.start, p.duration)).collect();
        let stalls: Vec<(f64, f64)> = (s.stalls.iter().chain(&s.allocation_stalls).chain(&s.paced))
            .map(|st| span(st.start, st.duration))
            .collect();
        let (a, b) = span(r.run_start, r.wall);
        for wms in MMU_WINDOWS_MS {
            let m =
                super::stats::mmu_with_stalls(&pauses, &stalls, r.threads, a, b, wms as f64 / 1e3);
            out.push((Metric::MmuStall(wms), m));
        }
        out.push((Metric::Stalls, s.stalls.len() as f64));
        out.push((Metric::StallsDropped, s.tracker.stalls_dropped as f64));
        let total: Duration = s.stalls.iter().map(|st| st.duration).sum();
        out.push((Metric::StallMs, ms(total)));
    }
    out
}
