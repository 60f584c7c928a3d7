//! The study: the sweep behind `barrierlab study`, which shows on the user's own machine
//! what each barrier costs and where the crossover lies.
//!
//! Two parts, every number kept as a [`Measurement`] row (written to `study.csv`):
//! - **micro** (the crossover): each tracker alone over a bare region
//!   ([`crate::workload::pages`]), `stores_per_page` swept from 1 up: cost per store,
//!   per dirtied page, per cycle (arm + harvest per heap page). A cost model
//!   `t = s * stores + g * dirtied_pages + c * heap_pages` is fitted per tracker and its
//!   predicted crossover with the card table set beside the measured one.
//! - **macro** (end to end): GCBench and graph mutation on the real heap per tracker ×
//!   thread count × heap size (a multiple of the workload's minimum heap, found by
//!   search), several invocations each: wall time, stop-the-world time, pause
//!   percentiles (HDR histogram), minimum mutator utilisation, faults, remark work,
//!   peak RSS.
//!
//! - **heap map**: the pages one cycle dirtied, under a page tracker, on GCBench.
//!
//! [`report`] turns the rows into `report.md` and [`plot`] into SVG figures; both read
//! only the rows, so every number in the report is in the CSV.

pub mod plot;
pub mod report;
pub mod stats;

use std::path::PathBuf;
use std::time::Duration;

use crate::barrier::{BarrierKind, Breadth};
use crate::error::{Error, Result};
use crate::heap::HeapConfig;
use crate::probe::Probe;
use crate::workload::pages::{PageLab, PagePattern};
use crate::workload::{self, GcBenchParams, GraphParams, Workload};

pub use crate::barrier::Variant;

/// How much to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// CI-sized: seconds.
    Quick,
    /// The default: a few minutes on 2 cores.
    Default,
    /// Everything: classic GCBench at more heap sizes, more invocations.
    Full,
}

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
    /// Invocations per end-to-end point.
    pub invocations: usize,
    /// Show progress on stderr.
    pub progress: bool,
}

impl StudyConfig {
    /// The built-in defaults of a mode, writing into `out`.
    pub fn new(mode: Mode, out: PathBuf) -> StudyConfig {
        let (threads, heap_multiples, invocations) = match mode {
            Mode::Quick => (vec![1], vec![3.0], 1),
            // One mutator thread by default: with two on 2 vCPUs at 2x the minimum heap
            // the concurrent collectors can thrash (see the README's known problems).
            Mode::Default => (vec![1], vec![2.0, 4.0], 3),
            Mode::Full => (vec![1, 2], vec![1.5, 2.0, 3.0, 6.0], 5),
        };
        StudyConfig {
            mode,
            out,
            trackers: BarrierKind::ALL.to_vec(),
            threads,
            heap_multiples,
            invocations,
            progress: true,
        }
    }

    fn stores_per_page(&self) -> Vec<u64> {
        match self.mode {
            Mode::Quick => vec![1, 16, 256, 4096],
            Mode::Default => vec![1, 4, 16, 64, 256, 1024, 4096, 16384],
            Mode::Full => vec![
                1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536,
            ],
        }
    }

    fn micro_pages(&self) -> usize {
        match self.mode {
            Mode::Quick => 1024,
            _ => 4096,
        }
    }

    fn micro_rounds(&self) -> usize {
        match self.mode {
            Mode::Quick => 3,
            Mode::Default => 5,
            Mode::Full => 9,
        }
    }

    fn workloads(&self) -> Vec<Workload> {
        let gc = match self.mode {
            Mode::Quick => GcBenchParams::QUICK,
            _ => GcBenchParams::CLASSIC,
        };
        let graph = |spp| {
            let base = GraphParams {
                stores_per_page: spp,
                ..GraphParams::default()
            };
            match self.mode {
                Mode::Quick => GraphParams {
                    objects: 20_000,
                    stores: 400_000,
                    alloc_every: 4,
                    ..base
                },
                _ => GraphParams {
                    alloc_every: 8,
                    ..base
                },
            }
        };
        vec![
            Workload::GcBench(gc),
            Workload::Graph(graph(4)),
            Workload::Graph(graph(1024)),
        ]
    }

    /// The variants to run: each tracker's (`uffd-wp` has one per service layout), only
    /// the default one per tracker in quick mode; `none` always runs.
    pub fn variants(&self) -> Vec<Variant> {
        let mut kinds = self.trackers.clone();
        kinds.push(BarrierKind::None);
        let breadth = match self.mode {
            Mode::Quick => Breadth::One,
            _ => Breadth::Every,
        };
        Variant::list(&kinds, breadth)
    }
}

/// One measured number.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// `micro`, `macro`, `minheap`.
    pub section: &'static str,
    /// The variant's name.
    pub tracker: String,
    /// The workload (`pages-spp16`, `gcbench`, `graph-spp4`).
    pub workload: String,
    /// Mutator threads.
    pub threads: usize,
    /// Heap size in MiB (0 where there is no heap).
    pub heap_mib: f64,
    /// Invocation or round number.
    pub invocation: usize,
    /// What was measured.
    pub metric: &'static str,
    /// The value.
    pub value: f64,
}

/// Everything the study produced.
#[derive(Debug, Clone)]
pub struct StudyResult {
    /// The probe at the start.
    pub probe: Probe,
    /// Every row.
    pub rows: Vec<Measurement>,
    /// Variants that could not run, with the reason.
    pub unavailable: Vec<(String, Error)>,
    /// The configuration.
    pub config: StudyConfig,
    /// How long the study took.
    pub elapsed: Duration,
}

struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(show: bool, total: u64) -> Progress {
        Progress(show.then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar
        }))
    }
    fn step(&self, msg: String) {
        if let Some(b) = &self.0 {
            b.set_message(msg);
            b.inc(1);
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// Runs the study and writes `study.csv`, `report.md` and the SVG figures into
/// `config.out`.
pub fn run(config: &StudyConfig) -> Result<StudyResult> {
    let t0 = std::time::Instant::now();
    std::fs::create_dir_all(&config.out).map_err(|e| {
        Error::io(
            format!("create the output folder {}", config.out.display()),
            e,
        )
    })?;
    let probe = Probe::run();
    let mut unavailable = Vec::new();
    let mut variants = Vec::new();
    for v in config.variants() {
        match crate::barrier::check_cached(v.kind, v.options.user_mode_only).require(v.kind) {
            Err(e) => unavailable.push((v.name(), e)),
            Ok(()) => variants.push(v),
        }
    }
    let spps = config.stores_per_page();
    let workloads = config.workloads();
    // Progress: micro points + min-heap searches + macro runs.
    let macro_points = variants.len()
        * workloads.len()
        * config.threads.len()
        * config.heap_multiples.len()
        * config.invocations;
    let bar = Progress::new(
        config.progress,
        (variants.len() * spps.len() + workloads.len() * config.threads.len() + macro_points)
            as u64,
    );
    let mut rows = Vec::new();

    // Micro: the crossover sweep.
    for v in &variants {
        let lab = match PageLab::new(v.kind, config.micro_pages(), &v.options) {
            Ok(l) => l,
            Err(e) => {
                unavailable.push((v.name(), e));
                continue;
            }
        };
        for &spp in &spps {
            bar.step(format!("micro {} spp {spp}", v.name()));
            let pattern = PagePattern {
                pages: config.micro_pages(),
                stores_per_page: spp,
                random: false,
                rounds: config.micro_rounds(),
            };
            let rounds = lab.run(&pattern, 1)?;
            let stores = (pattern.pages as u64 * spp) as f64;
            for (i, r) in rounds.iter().enumerate() {
                let row = |metric, value| Measurement {
                    section: "micro",
                    tracker: v.name(),
                    workload: format!("pages-spp{spp}"),
                    threads: 1,
                    heap_mib: (pattern.pages * crate::sys::PAGE_SIZE) as f64 / (1 << 20) as f64,
                    invocation: i,
                    metric,
                    value,
                };
                let pages = pattern.pages as f64;
                rows.push(row(
                    "stores_ns_per_store",
                    r.stores.as_nanos() as f64 / stores,
                ));
                rows.push(row(
                    "steady_ns_per_store",
                    r.steady.as_nanos() as f64 / stores,
                ));
                rows.push(row("arm_ns_per_page", r.arm.as_nanos() as f64 / pages));
                rows.push(row(
                    "harvest_ns_per_page",
                    r.harvest.as_nanos() as f64 / pages,
                ));
                rows.push(row(
                    "total_ns_per_store",
                    (r.stores + r.arm + r.harvest).as_nanos() as f64 / stores,
                ));
                rows.push(row("dirty_granules", r.dirty_granules as f64));
            }
        }
    }

    // Macro: minimum heaps, then the end-to-end grid.
    for w in &workloads {
        for &threads in &config.threads {
            bar.step(format!("min heap {} x{threads}", w.name()));
            let min = min_heap_bytes(w, threads)?;
            rows.push(Measurement {
                section: "minheap",
                tracker: BarrierKind::None.to_string(),
                workload: w.name(),
                threads,
                heap_mib: min as f64 / (1 << 20) as f64,
                invocation: 0,
                metric: "min_heap_mib",
                value: min as f64 / (1 << 20) as f64,
            });
            for &mult in &config.heap_multiples {
                let heap_bytes = ((min as f64 * mult) as usize).next_multiple_of(1 << 20);
                for v in &variants {
                    for inv in 0..config.invocations {
                        bar.step(format!(
                            "{} {} x{threads} {mult}x #{inv}",
                            w.name(),
                            v.name()
                        ));
                        let cfg = HeapConfig {
                            heap_bytes,
                            barrier: v.kind,
                            tracker: v.options,
                            ..HeapConfig::default()
                        };
                        let heap_mib = heap_bytes as f64 / (1 << 20) as f64;
                        let row = |metric, value| Measurement {
                            section: "macro",
                            tracker: v.name(),
                            workload: w.name(),
                            threads,
                            heap_mib,
                            invocation: inv,
                            metric,
                            value,
                        };
                        match workload::run(&cfg, w, threads) {
                            Ok(r) => {
                                rows.extend(macro_rows(&r, w).into_iter().map(|(m, v)| row(m, v)))
                            }
                            Err(Error::OutOfMemory { .. }) => rows.push(row("oom", 1.0)),
                            Err(e) => {
                                unavailable.push((v.name(), e));
                            }
                        }
                    }
                }
            }
        }
    }
    // The heap map: which pages one cycle dirtied, under the first page tracker available.
    if let (Some(v), Some(w)) = (
        variants.iter().find(|v| v.kind.is_page_level()),
        workloads.first(),
    ) {
        rows.extend(heap_map_rows(v, w)?);
    }
    bar.finish();
    // One line per variant and reason (each invocation of a failing variant fails alike).
    unavailable.sort_by(|a, b| a.0.cmp(&b.0));
    unavailable.dedup_by(|a, b| a.0 == b.0 && a.1.to_string() == b.1.to_string());
    let result = StudyResult {
        probe,
        rows,
        unavailable,
        config: config.clone(),
        elapsed: t0.elapsed(),
    };
    report::write_all(&result)?;
    Ok(result)
}

/// Runs `w` once under `v` recording each cycle's dirty pages, and returns the rows of
/// the cycle that dirtied the most (`section` `heapmap`: one `dirty_page` row per page,
/// and `heap_pages`).
fn heap_map_rows(v: &Variant, w: &Workload) -> Result<Vec<Measurement>> {
    let min = min_heap_bytes(w, 1)?;
    let heap_bytes = (min * 2).next_multiple_of(1 << 20);
    let cfg = HeapConfig {
        heap_bytes,
        barrier: v.kind,
        tracker: v.options,
        record_dirty_pages: true,
        ..HeapConfig::default()
    };
    let r = workload::run(&cfg, w, 1)?;
    let Some(cycle) = r.stats.cycle_log.iter().max_by_key(|c| c.dirty_pages.len()) else {
        return Ok(Vec::new());
    };
    let row = |metric, value| Measurement {
        section: "heapmap",
        tracker: v.name(),
        workload: w.name(),
        threads: 1,
        heap_mib: heap_bytes as f64 / (1 << 20) as f64,
        invocation: cycle.cycle as usize,
        metric,
        value,
    };
    let mut rows = vec![row(
        "heap_pages",
        (heap_bytes / crate::sys::PAGE_SIZE) as f64,
    )];
    rows.extend(
        cycle
            .dirty_pages
            .iter()
            .map(|&p| row("dirty_page", p as f64)),
    );
    Ok(rows)
}

/// The MMU windows the study reports, in milliseconds.
pub const MMU_WINDOWS_MS: [u64; 6] = [1, 2, 5, 10, 50, 100];

fn macro_rows(r: &workload::RunResult, w: &Workload) -> Vec<(&'static str, f64)> {
    let s = &r.stats;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let sum =
        |f: &dyn Fn(&crate::collector::CycleStats) -> f64| s.cycle_log.iter().map(f).sum::<f64>();
    let mut out = vec![
        ("wall_ms", ms(r.wall)),
        ("stw_ms", ms(r.pause_total())),
        ("mutator_ms", ms(r.wall.saturating_sub(r.pause_total()))),
        ("cycles", s.cycles as f64),
        ("pauses", s.pauses.len() as f64),
        ("pause_p50_us", r.pause_percentile_us(50.0)),
        ("pause_p90_us", r.pause_percentile_us(90.0)),
        ("pause_p99_us", r.pause_percentile_us(99.0)),
        ("pause_p999_us", r.pause_percentile_us(99.9)),
        ("pause_max_us", s.max_pause().as_secs_f64() * 1e6),
        ("faults", s.tracker.faults as f64),
        (
            "preclean_dirty",
            sum(&|c| c.preclean_dirty.iter().sum::<usize>() as f64),
        ),
        ("remark_dirty", sum(&|c| c.remark_dirty as f64)),
        ("remark_rescanned", sum(&|c| c.remark_rescanned as f64)),
        ("remark_traced", sum(&|c| c.remark_traced as f64)),
        ("arm_ms", sum(&|c| ms(c.arm))),
        ("harvest_ms", sum(&|c| ms(c.harvest))),
        ("disarm_ms", sum(&|c| ms(c.disarm))),
        ("degraded_cycles", s.degraded_cycles() as f64),
        ("peak_rss_mib", r.peak_rss_kib as f64 / 1024.0),
        ("stores", w.stores_per_thread() as f64 * r.threads as f64),
    ];
    for wms in MMU_WINDOWS_MS {
        out.push((mmu_metric(wms), r.mmu(Duration::from_millis(wms))));
    }
    out
}

/// The metric name of the MMU at a window.
pub fn mmu_metric(window_ms: u64) -> &'static str {
    match window_ms {
        1 => "mmu_1ms",
        2 => "mmu_2ms",
        5 => "mmu_5ms",
        10 => "mmu_10ms",
        50 => "mmu_50ms",
        100 => "mmu_100ms",
        _ => "mmu_other",
    }
}

/// The smallest heap (MiB granularity, a few steps of bisection) in which `w` completes
/// on `threads` threads with the stop-the-world collector: the unit of heap sizes, as
/// GC benchmark harnesses use it.
pub fn min_heap_bytes(w: &Workload, threads: usize) -> Result<usize> {
    let fits = |bytes: usize| -> Result<bool> {
        let cfg = HeapConfig::new()
            .heap_bytes(bytes)
            .barrier(BarrierKind::None);
        match workload::run(&cfg, w, threads) {
            Ok(_) => Ok(true),
            Err(Error::OutOfMemory { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    };
    let mut hi = 4usize << 20;
    while !fits(hi)? {
        hi *= 2;
        if hi > 16 << 30 {
            return Err(Error::InvalidArgument(format!(
                "{} does not fit in 16 GiB",
                w.name()
            )));
        }
    }
    let mut lo = hi / 2;
    // Bisect to within 1/16 of the answer.
    while hi - lo > (hi / 16).max(1 << 20) {
        let mid = (lo + hi) / 2;
        if fits(mid)? { hi = mid } else { lo = mid }
    }
    Ok(hi.next_multiple_of(1 << 20))
}
