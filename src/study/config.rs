//! What a study runs: the mode's defaults, what the user changed, and the checks on it.
//!
//! The end-to-end workloads are defined here by their live size ([`StudyWorkload`]): the
//! default study holds 64 MiB of live data (heaps from 128 MiB, above the last-level
//! cache), `--full` goes to 1 GiB, `--quick` stays CI-sized. A point runs the same work
//! at every heap size (a fixed allocation volume, a multiple of the live set), so that a
//! heap-size curve compares like with like; the default and full studies size that volume
//! per workload by time on the machine at hand, so that its fastest point runs for at
//! least two seconds ([`StudyWorkload::calibrated_per_live`], from [`PerLive`]). It
//! describes; it never runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod workload;

pub use workload::StudyWorkload;

use super::meta::InvocationPolicy;
use crate::barrier::{BarrierKind, Breadth, Variant};
use crate::error::{Error, Result};
use crate::workload::gcold::MUTATION_SWEEP;
use crate::workload::{
    BinaryTreesParams, GcBenchParams, GcOldParams, GraphParams, LruParams, Workload,
};

/// How much to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// CI-sized: under a minute.
    Quick,
    /// The default: half an hour on a 2-vCPU machine, its extra invocations stopped at
    /// the budget ([`STUDY_BUDGET_S`]; the README says where the time goes).
    Default,
    /// Everything: 1 GiB live sets, six heap multiples, two thread counts.
    Full,
}

impl Mode {
    /// The name (`quick`, `default`, `full`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Default => "default",
            Mode::Full => "full",
        }
    }
}

/// Bytes an end-to-end run of the default and full studies allocates per byte of its
/// live set (all threads together), by workload, before the study calibrates it: the
/// work of the calibration runs ([`StudyWorkload::calibrated_per_live`]), and the work of
/// `run --study-workload` unless `--allocated-per-live` says otherwise.
///
/// These were set from a default study of 2026-12-06 whose fastest points ran 1.8–2.1 s.
/// The same binary ran them 2.2 times slower that evening and since, as the host slowed
/// the guest (binary trees at 198 MiB: 2.0 s, then 3.7–4.1 s, both builds side by side):
/// a fixed volume of work made the default study last 26 minutes one day and 55 the next.
/// So the study now sizes each workload's runs by time on the machine at hand.
/// GCBench's work comes in whole passes (one allocates 30 bytes per live byte).
#[derive(Debug, Clone, Copy)]
pub struct PerLive;

impl PerLive {
    /// GCBench: two passes of the benchmark at 64 MiB live, where one allocates 30 bytes
    /// per live byte (its work is the benchmark itself, so it repeats whole: as many
    /// passes as come nearest, three at 1 MiB live, where one allocates 18).
    pub const GCBENCH: f64 = 60.0;
    /// Graph mutation.
    pub const GRAPH: f64 = 27.0;
    /// The LRU cache.
    pub const LRU: f64 = 25.0;
    /// Binary trees.
    pub const BINARY_TREES: f64 = 31.0;
    /// GCOld below 10,000 mutations per step: its steps are cheap.
    pub const GCOLD: f64 = 62.0;
    /// GCOld at 10,000 mutations per step or more, whose steps the stores make slow.
    pub const GCOLD_MUTATING: f64 = 23.0;
}

/// The shortest median wall time of an end-to-end point that the calibrated work is sized
/// for (ms); the report counts the points below it.
pub const MIN_RUN_MS: f64 = 2000.0;

/// The wall time the calibration sizes a workload's fastest point for (`none` at its
/// largest heap, ms): [`MIN_RUN_MS`] with a sixth to spare, since an invocation's wall
/// time varies by a fifth or more between invocations on a shared 2-vCPU host.
pub const RUN_MS_TARGET: f64 = MIN_RUN_MS * 7.0 / 6.0;

/// The least a calibrated run allocates, in multiples of the free room (heap less live
/// set) of its workload's largest heap: with less, that point collects too rarely to be a
/// result ([`crate::study::MIN_CYCLES`]). The first calibrated default study sized graph
/// mutation at 2.5 rooms of its 264 MiB heap, and its runs there completed 2 cycles.
pub const MIN_ROOMS_ALLOCATED: f64 = 4.0;

/// The most a calibration may scale a workload's work up from [`PerLive`]: a calibration
/// run that ended far too soon (a machine many times faster) cannot make the study's runs
/// unbounded.
pub const MAX_CALIBRATION_SCALE: f64 = 8.0;

/// The same for `--quick`, whose runs are CI-sized.
pub const QUICK_ALLOCATED_PER_LIVE: f64 = 8.0;

/// The same for a step of the minimum-heap search: several full heaps of allocation, so
/// that the live set and its fragmentation are reached, without the length of a
/// measured run (a run near the minimum heap collects back to back).
pub const FITS_ALLOCATED_PER_LIVE: f64 = 6.0;

/// The smallest heap an end-to-end point of the default and full studies uses (MiB):
/// above the last-level cache. A multiple that would give less is raised to it, and the
/// multiple actually used is recorded.
pub const MIN_POINT_HEAP_MIB: usize = 128;

/// How close (a share of the larger) a heap raised to the floor may come to another
/// point's heap before it is left out as the same point.
pub const NEAR_HEAP_SHARE: f64 = 0.15;

/// The default study's time budget (s): the extra invocations (beyond the three every
/// point gets) stop when the study's time reaches it, less [`RENDER_RESERVE_S`]. The
/// parts every study runs in full (micro, minimum heaps, calibration, three invocations
/// of every end-to-end and barrier-only point) are not cut: where they alone take longer,
/// the study does too, and its report says so.
pub const STUDY_BUDGET_S: f64 = 30.0 * 60.0;

/// What the budget keeps back for writing the report and its figures (s).
pub const RENDER_RESERVE_S: f64 = 20.0;

/// The heap multiple of the GCOld mutation-rate sweep.
pub const GCOLD_MULTIPLE: f64 = 2.0;

/// What the study runs.
#[derive(Debug, Clone)]
pub struct StudyConfig {
    /// How much.
    pub mode: Mode,
    /// Output folder.
    pub out: PathBuf,
    /// Barriers to run (`None` is always run: it is the baseline).
    pub trackers: Vec<BarrierKind>,
    /// Mutator thread counts for the end-to-end runs.
    pub threads: Vec<usize>,
    /// Heap sizes as multiples of each workload's minimum heap.
    pub heap_multiples: Vec<f64>,
    /// The wall time (ms) each workload's fastest point is calibrated to
    /// ([`StudyWorkload::calibrated_per_live`]): [`RUN_MS_TARGET`] in the default and full
    /// studies; `None`, the starting work uncalibrated, in the quick one.
    pub run_ms: Option<f64>,
    /// The work of each workload given by an earlier study (`--work-from`): that
    /// study's folder and the bytes allocated per live byte it calibrated, by workload
    /// label. A workload listed here is not calibrated again: its points run this work,
    /// so that two studies compare the same runs.
    pub work_from: Option<(PathBuf, BTreeMap<String, f64>)>,
    /// Live sets of the end-to-end workloads (MiB, all threads together).
    pub live_mib: Vec<u64>,
    /// End-to-end invocations per point.
    pub invocations: InvocationPolicy,
    /// Micro processes per (variant, pattern).
    pub micro_processes: usize,
    /// Seed of the run order, the page orders and the bootstrap.
    pub seed: u64,
    /// Whether the seed was given rather than drawn fresh.
    pub seed_given: bool,
    /// Pin every child process (all its threads) to this CPU.
    pub pin_cpu: Option<usize>,
    /// A child running longer than this is killed and recorded as an `error` row.
    pub timeout: Duration,
    /// Run bdwgc's rows where `libgc.so.1` is present.
    pub peer: bool,
    /// The largest heap a barrier-only point may have (it holds all that its workload
    /// allocates, resident, and every arm protects all of it): 1 GiB in the default
    /// study, 8 GiB in the full one.
    pub barrier_only_max_heap_mib: u64,
    /// The fewest invocations of a barrier-only point, where that is more than
    /// [`InvocationPolicy::min`] (the most then rises with it): its runs last about a
    /// second, and between processes the same work varies more than the barriers
    /// differ (`none` on the graph: 0.47–1.13 s in one sitting), so its medians need
    /// more of them; five in the default study.
    pub barrier_only_min_invocations: usize,
    /// Show progress on stderr.
    pub progress: bool,
}

/// A seed drawn fresh for a run: the clock's nanoseconds mixed with the process id.
pub fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    super::stats::seed_for(t, &std::process::id().to_string())
}

impl StudyConfig {
    /// The built-in defaults of a mode, writing into `out`, with a fresh seed.
    pub fn new(mode: Mode, out: PathBuf) -> StudyConfig {
        let (threads, heap_multiples, live_mib) = match mode {
            Mode::Quick => (vec![1], vec![2.0, 3.0], vec![4]),
            Mode::Default => (vec![1], vec![2.0, 3.0, 4.0], vec![64]),
            Mode::Full => (
                vec![1, 2],
                vec![1.25, 1.5, 2.0, 3.0, 4.0, 6.0],
                vec![64, 1024],
            ),
        };
        let invocations = match mode {
            Mode::Quick => InvocationPolicy {
                min: 2,
                max: 2,
                target_width: 0.10,
                budget_s: None,
            },
            // Three invocations first, more only where the interval is still wide and
            // while the half hour lasts (`STUDY_BUDGET_S`).
            Mode::Default => InvocationPolicy {
                min: 3,
                max: 5,
                target_width: 0.10,
                budget_s: Some(STUDY_BUDGET_S),
            },
            Mode::Full => InvocationPolicy {
                min: 6,
                max: 20,
                target_width: 0.05,
                budget_s: None,
            },
        };
        StudyConfig {
            mode,
            out,
            trackers: BarrierKind::ALL.to_vec(),
            threads,
            heap_multiples,
            run_ms: (mode != Mode::Quick).then_some(RUN_MS_TARGET),
            work_from: None,
            live_mib,
            invocations,
            micro_processes: match mode {
                Mode::Quick => 2,
                Mode::Default => 4,
                Mode::Full => 8,
            },
            seed: fresh_seed(),
            seed_given: false,
            pin_cpu: None,
            timeout: Duration::from_secs(match mode {
                Mode::Quick => 60,
                _ => 600,
            }),
            peer: true,
            barrier_only_max_heap_mib: match mode {
                Mode::Full => 8 << 10,
                _ => 1 << 10,
            },
            barrier_only_min_invocations: match mode {
                Mode::Quick => 2,
                Mode::Default => 5,
                Mode::Full => 6,
            },
            progress: true,
        }
    }

    /// Checks what a user may set: every value in range, no list with a value twice,
    /// each error naming its flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidArgument(msg));
        let twice = |name: &str, values: Vec<String>| -> Result<()> {
            let mut seen = std::collections::BTreeSet::new();
            for v in values {
                if !seen.insert(v.clone()) {
                    return bad(format!("{name}: `{v}` is given twice"));
                }
            }
            Ok(())
        };
        let names = |v: &[BarrierKind]| v.iter().map(|k| k.to_string()).collect();
        twice("--trackers", names(&self.trackers))?;
        if self.threads.is_empty() || self.threads.iter().any(|&t| t == 0 || t > 1024) {
            return bad(format!(
                "--threads {:?}: each count must be 1 to 1024",
                self.threads
            ));
        }
        twice(
            "--threads",
            self.threads.iter().map(|t| t.to_string()).collect(),
        )?;
        if self.heap_multiples.is_empty()
            || self
                .heap_multiples
                .iter()
                .any(|m| !m.is_finite() || !(1.0..=1000.0).contains(m))
        {
            return bad(format!(
                "--heap {:?}: each multiple of the minimum heap must be a number from 1 to 1000 \
                 (1 = the workload's minimum heap)",
                self.heap_multiples
            ));
        }
        twice(
            "--heap",
            self.heap_multiples.iter().map(|m| m.to_string()).collect(),
        )?;
        if self.live_mib.is_empty() || self.live_mib.iter().any(|&l| !(1..=16 << 10).contains(&l)) {
            return bad(format!(
                "--live-mib {:?}: each live set must be 1 to 16384 MiB",
                self.live_mib
            ));
        }
        twice(
            "--live-mib",
            self.live_mib.iter().map(|m| m.to_string()).collect(),
        )?;
        let inv = &self.invocations;
        if !(1..=1000).contains(&inv.min) || !(inv.min..=1000).contains(&inv.max) {
            return bad(format!(
                "--invocations {} / --max-invocations {}: at least 1, at most 1000, the \
                 maximum not below the minimum",
                inv.min, inv.max
            ));
        }
        if !(inv.target_width.is_finite() && inv.target_width > 0.0) {
            return bad(format!(
                "--ci-width {}: a positive share of the median (0.1 = 10%)",
                inv.target_width
            ));
        }
        if let Some(b) = inv.budget_s
            && !(b.is_finite() && (60.0..=7.0 * 86_400.0).contains(&b))
        {
            return bad(format!(
                "--budget-min {}: the study's time budget, 1 minute to a week (0: none)",
                b / 60.0
            ));
        }
        if let Some(ms) = self.run_ms
            && !(ms.is_finite() && (1.0..=3_600_000.0).contains(&ms))
        {
            return bad(format!(
                "--run-ms {ms}: the time a workload's fastest point runs, 1 ms to an hour"
            ));
        }
        if self.timeout.is_zero() {
            return bad("--timeout-s 0: a point needs at least a second".into());
        }
        if let Some(c) = self.pin_cpu {
            let allowed = crate::sys::process::allowed_cpus()?;
            if !allowed.contains(&c) {
                return bad(format!(
                    "--pin-cpu {c}: this process may run on CPUs {allowed:?} only (its \
                     affinity mask)"
                ));
            }
        }
        Ok(())
    }

    /// The stores per page of the micro sweep.
    pub fn stores_per_page(&self) -> Vec<u64> {
        match self.mode {
            Mode::Quick => vec![1, 16, 256, 4096],
            Mode::Default => vec![1, 4, 16, 64, 256, 1024, 4096, 16384],
            Mode::Full => vec![
                1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 16384, 65536,
            ],
        }
    }

    /// Pages of the micro's region: twice the last-level cache (so that the card table
    /// and the page tables do not all stay cached), from 16 MiB up to 64 MiB in the
    /// default study and 256 MiB in the full one; 4 MiB in quick mode. A virtual machine
    /// may report its host's whole cache (480 MiB on the 2-vCPU machine this was written
    /// on), and a served `uffd-wp` round costs a cross-CPU wake-up per page: a 256 MiB
    /// region made the default micro alone last over a quarter of an hour there.
    pub fn micro_pages(&self) -> usize {
        let most = match self.mode {
            Mode::Quick => return 1024,
            Mode::Default => 1 << 14,
            Mode::Full => 1 << 16,
        };
        (2 * crate::sys::kernel::last_level_cache_bytes().unwrap_or(32 << 20)
            / crate::sys::PAGE_SIZE)
            .clamp(4096, most)
    }

    /// Rounds inside one micro process (their median is the process's value): the
    /// intervals come from the processes, so three rounds suffice except in the full
    /// study.
    pub fn micro_rounds(&self) -> usize {
        match self.mode {
            Mode::Quick => 2,
            Mode::Default => 3,
            Mode::Full => 5,
        }
    }

    /// The smallest heap of an end-to-end point (MiB).
    pub fn min_point_heap_mib(&self) -> usize {
        match self.mode {
            Mode::Quick => 1,
            _ => MIN_POINT_HEAP_MIB,
        }
    }

    /// The end-to-end workloads: each kind at each live size. Add one here and it runs
    /// everywhere (the child finds it by label in this list).
    pub fn workloads(&self) -> Vec<StudyWorkload> {
        let graph = GraphParams {
            stores_per_page: 1024,
            alloc_every: 2,
            ..GraphParams::default()
        };
        // Values of 512 bytes and a key space five times the capacity: the cache
        // allocates enough per operation for its run to stay a few seconds long.
        let lru = LruParams {
            value_bytes: 512,
            ..LruParams::default()
        };
        let per_live = |default: f64| match self.mode {
            Mode::Quick => QUICK_ALLOCATED_PER_LIVE,
            _ => default,
        };
        let new =
            |kind: &str, w, live, default| StudyWorkload::new(kind, w, live, per_live(default));
        let mut out = Vec::new();
        for &live in &self.live_mib {
            out.push(new(
                "gcbench",
                Workload::GcBench(GcBenchParams::CLASSIC),
                live,
                PerLive::GCBENCH,
            ));
            if self.mode == Mode::Full {
                // Few stores per page keep replaced nodes reachable: the live set grows
                // through the run and few cycles complete; only the full study runs it.
                out.push(new(
                    "graph-spp4",
                    Workload::Graph(GraphParams {
                        stores_per_page: 4,
                        ..graph
                    }),
                    live,
                    PerLive::GRAPH,
                ));
            }
            out.push(new(
                "graph-spp1024",
                Workload::Graph(graph),
                live,
                PerLive::GRAPH,
            ));
            out.push(new("lru", Workload::Lru(lru), live, PerLive::LRU));
            out.push(new(
                "binary-trees",
                Workload::BinaryTrees(BinaryTreesParams::default()),
                live,
                PerLive::BINARY_TREES,
            ));
            // GCOld (Sun Labs' old-generation benchmark) swept over its mutation rate, the
            // axis on which card marking and page protection trade places, at one heap
            // multiple (twice its minimum heap).
            for m in self.gcold_mutations() {
                let base = Workload::GcOld(GcOldParams {
                    mutations_per_step: m,
                    ..GcOldParams::default()
                });
                let kind = format!("gcold-m{m}");
                let w = new(
                    &kind,
                    base,
                    live,
                    if m >= 10_000 {
                        PerLive::GCOLD_MUTATING
                    } else {
                        PerLive::GCOLD
                    },
                );
                out.push(StudyWorkload {
                    multiples: Some(vec![GCOLD_MULTIPLE]),
                    ..w
                });
            }
        }
        out
    }

    /// GCOld's mutation rates (pointer stores into old trees per step): a low and a high
    /// one in the default study (10⁵ per step, one store per 10 allocated bytes, makes
    /// a run last 20 s: the full study only), GCOld's whole sweep in the full one, one in the quick one.
    pub fn gcold_mutations(&self) -> Vec<u64> {
        match self.mode {
            Mode::Quick => vec![1_000],
            Mode::Default => vec![100, 10_000],
            Mode::Full => MUTATION_SWEEP.to_vec(),
        }
    }

    /// The heaps of `w`'s end-to-end points, given its minimum heap: each multiple of
    /// the minimum rounded up to the search's grain, raised to
    /// [`StudyConfig::min_point_heap_mib`]. A raised heap within
    /// [`NEAR_HEAP_SHARE`] of a heap that was not raised is left out: it would measure
    /// the same point twice under two names.
    pub fn point_heaps(&self, w: &StudyWorkload, min_bytes: usize) -> Vec<usize> {
        let floor = self.min_point_heap_mib() << 20;
        let grain = super::minheap::GRAIN;
        let sized: Vec<(usize, bool)> = w
            .multiples
            .as_ref()
            .unwrap_or(&self.heap_multiples)
            .iter()
            .map(|&mult| {
                let bytes = (min_bytes as f64 * mult / grain as f64).ceil() as usize * grain;
                (bytes.max(floor), bytes < floor)
            })
            .collect();
        let near = |a: usize, b: usize| a.abs_diff(b) as f64 <= NEAR_HEAP_SHARE * a.max(b) as f64;
        let mut heaps: Vec<usize> = Vec::new();
        for &(bytes, raised) in &sized {
            let same_point = raised && sized.iter().any(|&(b, r)| !r && near(b, bytes));
            if !same_point && !heaps.contains(&bytes) {
                heaps.push(bytes);
            }
        }
        heaps
    }

    /// The variants of the micro: every variant of every tracker in the full study
    /// (`uffd-wp` has one per service layout, `uffd-wp-async` keeps the heap protected
    /// in one), the default one per tracker otherwise: a served `uffd-wp` round costs a
    /// cross-CPU wake-up per page, and the two other layouts took a third of the default
    /// study's micro time; `none` always runs.
    pub fn variants(&self) -> Vec<Variant> {
        self.variants_of(match self.mode {
            Mode::Full => Breadth::Every,
            _ => Breadth::One,
        })
    }

    /// The variants of the end-to-end runs: every `uffd-wp` service layout in full mode
    /// only (the micro measures them all in the default mode).
    pub fn end_to_end_variants(&self) -> Vec<Variant> {
        self.variants_of(match self.mode {
            Mode::Full => Breadth::Every,
            _ => Breadth::One,
        })
    }

    /// Whether the huge-page section runs at a workload (`first`: the first
    /// of [`StudyConfig::workloads`]). The full study runs every variant at every
    /// workload; the others run every variant at the first workload only. At every
    /// workload, the section took 630 s of a default study of 2026-12-06 (the page
    /// trackers 390 of them); with the store-path barriers at every workload and the page
    /// trackers at the first, 16 points of the 120 a default study of 2026-12-07 ran
    /// end to end, which its half-hour budget could not hold beside three heap
    /// multiples. One workload shows what write protection does to huge pages (it
    /// splits them) and what 4 KiB pages cost at the study's largest heap.
    pub fn runs_on_huge_pages(&self, first: bool) -> bool {
        self.mode == Mode::Full || first
    }

    fn variants_of(&self, breadth: Breadth) -> Vec<Variant> {
        let mut kinds = self.trackers.clone();
        kinds.push(BarrierKind::None);
        Variant::list(&kinds, breadth)
    }
}

#[cfg(test)]
mod tests;
