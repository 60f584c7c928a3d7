//! One point of the study, run once in a process of its own: the hidden
//! `barrierlab study-point --spec '<json>'` subcommand.
//!
//! The parent ([`super::run`]) re-executes its own binary for every invocation, so that
//! no invocation inherits another's heap, page tables, signal handlers, allocator state
//! or warmed caches, and so that a crash or a hang costs one row, not the study. The
//! child parses a [`PointSpec`], pins itself to a CPU if asked (before any thread
//! starts), runs the point, and prints one [`PointOutput`] as JSON on stdout. It exits
//! 0 whenever it could say what happened, including running out of memory; a crash is
//! what the parent sees as anything else.
//!
//! Workloads and variants travel by name: the child rebuilds the study's workload list
//! for the mode and live sizes ([`super::StudyConfig::workloads`]) and the variant list,
//! and finds them there, so that adding a workload is one entry in that list. The child
//! never writes a file: its rows go to the parent on stdout.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::{Mode, StudyConfig, StudyWorkload};
use super::data::{Metric, Row, Section};
use crate::barrier::{BarrierKind, Breadth, Variant};
use crate::error::{Error, Result};
use crate::heap::{HeapConfig, Placement};
use crate::peer::{self, Peer, PeerConfig};
use crate::sys::kernel::counting_tlb_shootdowns;
use crate::workload::{self, Workload};

pub use super::measure::{MMU_WINDOWS_MS, PAUSE_CDF_QUANTILES, armed_share, macro_rows};

/// What one child runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Point {
    /// One end-to-end run of a workload under a variant (`section` `macro`), or with
    /// `heap_map` the pages each cycle dirtied (`section` `heapmap`).
    Run {
        /// The workload's name.
        workload: String,
        /// The variant's name.
        variant: String,
        /// Mutator threads.
        threads: usize,
        /// Heap size.
        heap_bytes: usize,
        /// Record the heap map instead of the end-to-end metrics.
        heap_map: bool,
        /// Advise the heap `MADV_HUGEPAGE` (section `hugepages`) instead of
        /// `MADV_NOHUGEPAGE`.
        #[serde(default)]
        huge_pages: bool,
        /// Barrier-only mode (section `barrieronly`): no collection, the tracker armed
        /// for [`BARRIER_ONLY_ARMED_SHARE`] of every [`BARRIER_ONLY_PERIOD`].
        #[serde(default)]
        barrier_only: bool,
    },
    /// Whether a workload completes in a heap with the stop-the-world collector (one
    /// `fits` row, 1 or 0): a step of the minimum-heap search.
    Fits {
        /// The workload's name.
        workload: String,
        /// Mutator threads.
        threads: usize,
        /// Heap size.
        heap_bytes: usize,
    },
    /// GCBench on bdwgc (`section` `macro`, tracker `bdwgc-stw` or `bdwgc-incremental`).
    Peer {
        /// The GCBench workload's name.
        workload: String,
        /// bdwgc's incremental mode.
        incremental: bool,
        /// Heap size.
        heap_bytes: usize,
    },
    /// A tracker alone over a bare region (`section` `micro`), several rounds.
    Micro {
        /// The variant's name.
        variant: String,
        /// The row's workload name.
        label: String,
        /// Pages in the region (and under the tracker).
        region_pages: usize,
        /// Stores to each page written.
        stores_per_page: u64,
        /// Random page order (else ascending).
        random: bool,
        /// Share of the region's pages written each round.
        dirty_fraction: f64,
        /// Rounds.
        rounds: usize,
        /// What another thread of the process does through every round.
        #[serde(default)]
        beside: Beside,
    },
}

/// What another thread of a micro point's process does while the writer writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Beside {
    /// There is no other thread (but a tracker's own).
    #[default]
    Nothing,
    /// It spins, as a collector thread runs beside a mutator: the writer's protection
    /// changes shoot down its CPU (`PageLab::round_beside_running`).
    Running,
    /// It changes the protection of a page of its own back and forth: the writer's CPU
    /// receives the shootdowns (`PageLab::round_shot_at`).
    ChangingProtections,
    /// It changes the protection of a region of its own with no page mapped, back and
    /// forth: nothing is shot down, but a TLB flush is pending in the process while each
    /// change runs, so a first write the kernel resolves sends one
    /// (`PageLab::round_beside_pending_flush`).
    PendingFlush,
}

/// A point with the settings of its run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointSpec {
    /// The study's mode (which workload list the names refer to).
    pub mode: Mode,
    /// The study's live sizes (MiB; empty: the mode's defaults).
    #[serde(default)]
    pub live_mib: Vec<u64>,
    /// Bytes allocated per live byte, by workload label, where the study calibrated a
    /// workload's work ([`StudyWorkload::calibrated_per_live`]); a workload not named
    /// here runs its default.
    #[serde(default)]
    pub per_live: BTreeMap<String, f64>,
    /// The point.
    pub point: Point,
    /// Pin the whole child to this CPU before anything starts.
    pub pin_cpu: Option<usize>,
    /// Seed for anything random in the point (page orders).
    pub seed: u64,
}

/// How a point ended, as the child saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", content = "detail", rename_all = "kebab-case")]
pub enum Outcome {
    /// It ran; the rows are its measurements.
    Ok,
    /// The heap was full after a full collection.
    OutOfMemory(String),
    /// The mechanism or the peer cannot run here (the reason).
    Unavailable(String),
    /// Anything else that went wrong (the error).
    Failed(String),
}

/// What the child prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointOutput {
    /// How it ended.
    pub outcome: Outcome,
    /// Its rows (`invocation` 0: the parent numbers them).
    pub rows: Vec<Row>,
}

pub use super::micro_point::micro_order;

/// The workload labelled `label` in the list of `mode` at live sizes `live_mib` (the
/// mode's own when empty).
pub fn find_workload(mode: Mode, live_mib: &[u64], label: &str) -> Result<StudyWorkload> {
    let mut c = StudyConfig::new(mode, ".".into());
    if !live_mib.is_empty() {
        c.live_mib = live_mib.to_vec();
    }
    c.workloads()
        .into_iter()
        .find(|w| w.label == label)
        .ok_or_else(|| Error::InvalidArgument(format!("no workload `{label}` in {mode:?} mode")))
}

/// The variant named `name` (`uffd-wp[collector]`, `card-table`).
pub fn find_variant(name: &str) -> Result<Variant> {
    Variant::list(&BarrierKind::ALL, Breadth::Every)
        .into_iter()
        .find(|v| v.name() == name)
        .ok_or_else(|| Error::InvalidArgument(format!("no variant `{name}`")))
}

/// Runs `spec` in this process (the child's whole job).
pub fn run_point(spec: &PointSpec) -> PointOutput {
    let result = spec
        .pin_cpu
        .map_or(Ok(()), crate::sys::cpu::pin_to_cpu)
        .and_then(|()| run_inner(spec));
    match result {
        Ok(rows) => PointOutput {
            outcome: Outcome::Ok,
            rows,
        },
        Err(e) => PointOutput {
            outcome: match e {
                Error::OutOfMemory { .. } => Outcome::OutOfMemory(e.to_string()),
                // A resource limit is not the mechanism being unavailable.
                _ if resource_limit(&e).is_some() => Outcome::Failed(format!(
                    "a resource limit stopped it ({}): {e}",
                    resource_limit(&e).unwrap_or_default()
                )),
                Error::Unavailable { .. } => Outcome::Unavailable(e.to_string()),
                _ => Outcome::Failed(e.to_string()),
            },
            rows: Vec::new(),
        },
    }
}

pub(super) const MIB: f64 = (1 << 20) as f64;

/// Barrier-only points' schedule: the tracker armed for 25 ms (about the length of a
/// concurrent mark of the default study's 64 MiB live sets), then unarmed for 25 ms,
/// each span counted from the end of the arm or the disarm (see `collector/duty.rs`). Each arm
/// write-protects the whole heap in use, which grows through a run that never collects:
/// at 10 ms, arming a 1.4 GiB heap (page-table updates and TLB shoot-downs, three
/// quarters of a `perf` profile of `uffd-wp-sigbus` on the LRU cache) made one run last
/// a minute instead of two seconds.
pub const BARRIER_ONLY_PERIOD: Duration = Duration::from_millis(50);
/// See [`BARRIER_ONLY_PERIOD`].
pub const BARRIER_ONLY_ARMED_SHARE: f64 = 0.5;

pub(super) fn row(
    section: Section,
    tracker: &str,
    workload: &str,
    threads: usize,
    heap_mib: f64,
) -> impl Fn(Metric, f64) -> Row + use<> {
    let (tracker, workload) = (tracker.to_string(), workload.to_string());
    move |metric, value| Row {
        section,
        tracker: tracker.clone(),
        workload: workload.clone(),
        threads,
        heap_mib,
        invocation: 0,
        round: 0,
        metric,
        value,
        note: String::new(),
    }
}

/// The workload labelled `label` as `spec` runs it: the mode's, with the work the study
/// calibrated for it if it did.
fn workload_of(spec: &PointSpec, label: &str) -> Result<StudyWorkload> {
    let w = find_workload(spec.mode, &spec.live_mib, label)?;
    Ok(match spec.per_live.get(label) {
        Some(&per_live) => w.with_allocated_per_live(per_live),
        None => w,
    })
}

fn run_inner(spec: &PointSpec) -> Result<Vec<Row>> {
    let find = |label: &str| workload_of(spec, label);
    match &spec.point {
        Point::Run {
            workload,
            variant,
            threads,
            heap_bytes,
            heap_map,
            huge_pages,
            barrier_only,
        } => {
            let w = find(workload)?;
            let w = if *barrier_only {
                w.barrier_only(*threads)
            } else {
                w.at_threads(*threads)
            };
            let v = find_variant(variant)?;
            v.config.require_available()?;
            let cfg = HeapConfig {
                heap_bytes: *heap_bytes,
                barrier: v.config,
                record_dirty_pages: *heap_map,
                huge_pages: *huge_pages,
                ..HeapConfig::default()
            };
            let cfg = if *barrier_only {
                let cfg = cfg
                    .pacing(false)
                    .trigger(1.0)
                    .duty_cycle(BARRIER_ONLY_PERIOD, BARRIER_ONLY_ARMED_SHARE);
                // Two CPUs, one per side, so that the shootdowns each received say who
                // sent them (the prediction prices the two directions apart).
                match Placement::first_two_allowed()? {
                    Some(p) => cfg.placement(p),
                    None => cfg,
                }
            } else {
                cfg
            };
            let (r, shootdowns) = counting_tlb_shootdowns(|| workload::run(&cfg, &w, *threads));
            let r = r?;
            if *barrier_only && r.stats.cycles > 0 {
                return Err(Error::InvalidArgument(format!(
                    "not a barrier-only measurement: {} collection(s) ran ({:.0} MiB allocated \
                     in a {:.0} MiB heap)",
                    r.stats.cycles,
                    r.stats.bytes_allocated as f64 / MIB,
                    *heap_bytes as f64 / MIB
                )));
            }
            let heap_mib = *heap_bytes as f64 / MIB;
            if *heap_map {
                return Ok(heap_map_rows(&r, &v.name(), workload, *heap_bytes));
            }
            let section = match (*huge_pages, *barrier_only) {
                (_, true) => Section::Barrieronly,
                (true, false) => Section::Hugepages,
                (false, false) => Section::Macro,
            };
            let row = row(section, &v.name(), workload, *threads, heap_mib);
            let mut rows: Vec<Row> = macro_rows(&r, &w)
                .into_iter()
                .map(|(m, x)| row(m, x))
                .collect();
            // A metric that does not apply to this run (bytes per cycle with no cycle) is
            // NaN: not a measurement, and JSON has no NaN. Left out.
            rows.retain(|r| r.value.is_finite());
            if *barrier_only {
                let d = &r.stats.duty;
                let share = d.armed.as_secs_f64() / r.wall.as_secs_f64().max(1e-9);
                rows.push(row(Metric::DutyPeriods, d.periods as f64));
                rows.push(row(Metric::DutyArmedShare, share));
                rows.push(row(Metric::DutyRecorded, d.recorded as f64));
                rows.push(row(
                    Metric::DutyWorkMs,
                    (d.arm + d.harvest + d.disarm).as_secs_f64() * 1e3,
                ));
                if let Some(n) = &shootdowns {
                    rows.push(row(Metric::TlbShootdowns, n.total() as f64));
                    rows.extend(
                        super::micro_point::per_side(n, cfg.placement)
                            .into_iter()
                            .map(|(m, x)| row(m, x)),
                    );
                }
            }
            // How the stalls were measured, beside their count.
            for m in rows.iter_mut().filter(|m| m.metric == Metric::Stalls) {
                m.note = r.stats.tracker.stall_method.to_string();
            }
            Ok(rows)
        }
        Point::Fits {
            workload,
            threads,
            heap_bytes,
        } => {
            // A shorter run of the same workload: the live set does not depend on the
            // length of the run.
            let w = find(workload)?.for_fits(*threads);
            let cfg = HeapConfig::new()
                .heap_bytes(*heap_bytes)
                .barrier(BarrierKind::None);
            let fits = match workload::run(&cfg, &w, *threads) {
                Ok(_) => 1.0,
                Err(Error::OutOfMemory { .. }) => 0.0,
                Err(e) => return Err(e),
            };
            let row = row(
                Section::Fits,
                "none",
                workload,
                *threads,
                *heap_bytes as f64 / MIB,
            );
            Ok(vec![row(Metric::Fits, fits)])
        }
        Point::Peer {
            workload,
            incremental,
            heap_bytes,
        } => {
            let Workload::GcBench(params) = find(workload)?.at_threads(1) else {
                return Err(Error::InvalidArgument(format!(
                    "the peer runs GCBench only, not `{workload}`"
                )));
            };
            let cfg = PeerConfig {
                incremental: *incremental,
                heap_bytes: *heap_bytes,
                workload: params.into(),
            };
            let cpu0 = crate::sys::cpu::process_cpu_time()?;
            let r = peer::run(Peer::Bdwgc, &cfg)?;
            let cpu = crate::sys::cpu::process_cpu_time()?.saturating_sub(cpu0);
            let name = if *incremental {
                "bdwgc-incremental"
            } else {
                "bdwgc-stw"
            };
            let row = row(Section::Macro, name, workload, 1, *heap_bytes as f64 / MIB);
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            // bdwgc marks on the mutator thread with the world stopped: its pauses are
            // its collection work, in wall time and in CPU time alike.
            let mut full = row(Metric::FullCycles, r.full_cycles as f64);
            full.note = peer::settings_note(&r.settings);
            Ok(vec![
                row(Metric::WallMs, ms(r.total)),
                row(Metric::StwMs, ms(r.stw())),
                row(Metric::Cycles, r.cycles as f64),
                full,
                row(Metric::Pauses, r.pauses.len() as f64),
                row(Metric::PauseP50Us, us(r.pause_percentile(50.0))),
                row(Metric::PauseP99Us, us(r.pause_percentile(99.0))),
                row(Metric::PauseMaxUs, us(r.max_pause())),
                row(Metric::CpuTotalMs, ms(cpu)),
                row(Metric::WallMinusGcMs, ms(r.total.saturating_sub(r.stw()))),
                row(Metric::CpuMinusGcMs, ms(cpu.saturating_sub(r.stw()))),
            ])
        }
        Point::Micro {
            variant,
            label,
            region_pages,
            stores_per_page,
            random,
            dirty_fraction,
            rounds,
            beside,
        } => {
            let pattern = super::micro_point::MicroRun {
                region_pages: *region_pages,
                stores_per_page: *stores_per_page,
                random: *random,
                dirty_fraction: *dirty_fraction,
                rounds: *rounds,
                beside: *beside,
            };
            pattern.run(&find_variant(variant)?, label, spec.seed)
        }
    }
}

/// The resource limit behind `e`, if a limit is what stopped it (rather than the
/// mechanism being unavailable): open files (`EMFILE`, `ENFILE`), memory or address space
/// (`ENOMEM`), processes or threads (`EAGAIN` from creating a thread). Looks through an
/// `Unavailable` error's causes.
pub fn resource_limit(e: &crate::Error) -> Option<&'static str> {
    use crate::Error;
    let by_errno = |errno: i32| match errno {
        libc::EMFILE | libc::ENFILE => Some("open files (ulimit -n)"),
        libc::ENOMEM => Some("memory or address space (ulimit -v, or the machine's memory)"),
        libc::EAGAIN => Some("processes or threads (ulimit -u), or a transient kernel shortage"),
        _ => None,
    };
    match e {
        Error::Sys { errno, .. } => by_errno(*errno),
        Error::Io { source, .. } => source.raw_os_error().and_then(by_errno),
        Error::Unavailable { causes, .. } => causes.iter().find_map(resource_limit),
        _ => None,
    }
}

/// The heap map of a run: the cycle that dirtied the most pages, one `dirty_page` row per
/// page and `heap_pages`.
fn heap_map_rows(
    r: &workload::RunResult,
    tracker: &str,
    workload: &str,
    heap_bytes: usize,
) -> Vec<Row> {
    let Some(cycle) = r.stats.cycle_log.iter().max_by_key(|c| c.dirty_pages.len()) else {
        return Vec::new();
    };
    let row = row(
        Section::Heapmap,
        tracker,
        workload,
        1,
        heap_bytes as f64 / MIB,
    );
    let mut rows = vec![row(
        Metric::HeapPages,
        (heap_bytes / crate::sys::PAGE_SIZE) as f64,
    )];
    rows.extend(
        cycle
            .dirty_pages
            .iter()
            .map(|&p| row(Metric::DirtyPage, p as f64)),
    );
    for r in &mut rows {
        r.round = cycle.cycle as usize;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_through_json() {
        let spec = PointSpec {
            mode: Mode::Quick,
            live_mib: vec![4],
            point: Point::Micro {
                variant: "uffd-wp[thread]".into(),
                label: "pages-spp4".into(),
                region_pages: 64,
                stores_per_page: 4,
                random: true,
                dirty_fraction: 0.5,
                rounds: 2,
                beside: Beside::Running,
            },
            pin_cpu: Some(0),
            seed: 9,
            per_live: BTreeMap::from([("lru-l4".to_string(), 12.5)]),
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<PointSpec>(&json).unwrap(), spec);
        let out = PointOutput {
            outcome: Outcome::OutOfMemory("full".into()),
            rows: vec![],
        };
        let json = serde_json::to_string(&out).unwrap();
        assert_eq!(serde_json::from_str::<PointOutput>(&json).unwrap(), out);
    }

    #[test]
    fn a_calibrated_workload_runs_the_work_the_spec_gives_it() {
        let point = Point::Fits {
            workload: "lru-l64".into(),
            threads: 1,
            heap_bytes: 1 << 30,
        };
        let mut spec = PointSpec {
            mode: Mode::Default,
            live_mib: vec![],
            per_live: BTreeMap::new(),
            point,
            pin_cpu: None,
            seed: 0,
        };
        let default = workload_of(&spec, "lru-l64").unwrap();
        spec.per_live.insert("lru-l64".into(), 11.0);
        let calibrated = workload_of(&spec, "lru-l64").unwrap();
        assert_eq!(calibrated.allocated_per_live, 11.0);
        assert_ne!(default.allocated_per_live, 11.0);
        let bytes = |w: &StudyWorkload| w.at_threads(1).allocation_estimate() as f64;
        let ratio = bytes(&calibrated) / bytes(&default);
        let expected = 11.0 / default.allocated_per_live;
        assert!(
            (ratio / expected - 1.0).abs() < 0.02,
            "{ratio} vs {expected}"
        );
        // Another workload keeps its default.
        let other = workload_of(&spec, "binary-trees-l64").unwrap();
        assert_eq!(
            other,
            find_workload(Mode::Default, &[], "binary-trees-l64").unwrap()
        );
    }

    #[test]
    fn names_resolve() {
        let w = StudyConfig::new(Mode::Quick, ".".into()).workloads();
        assert_eq!(find_workload(Mode::Quick, &[], &w[0].label).unwrap(), w[0]);
        assert!(find_workload(Mode::Quick, &[], "no-such").is_err());
        let big = find_workload(Mode::Quick, &[64], "lru-l64").unwrap();
        assert_eq!(big.live_bytes, 64 << 20);
        assert_eq!(
            find_variant("card-table").unwrap().kind(),
            BarrierKind::CardTable
        );
        assert!(find_variant("uffd-wp[collector]").is_ok());
    }

    #[test]
    fn a_resource_limit_is_told_apart_from_an_unavailable_mechanism() {
        let limit = crate::Error::Unavailable {
            mechanism: "uffd-wp",
            causes: vec![crate::Error::io(
                "eventfd",
                std::io::Error::from_raw_os_error(libc::EMFILE),
            )],
        };
        assert!(resource_limit(&limit).unwrap().contains("ulimit -n"));
        let missing = crate::Error::Unavailable {
            mechanism: "uffd-wp",
            causes: vec![crate::Error::io(
                "userfaultfd",
                std::io::Error::from_raw_os_error(libc::EPERM),
            )],
        };
        assert_eq!(resource_limit(&missing), None);
    }
}
