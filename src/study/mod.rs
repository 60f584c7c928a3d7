//! The study: the sweep behind `barrierlab study`, which shows on the user's own machine
//! what each barrier costs and where the crossover lies.
//!
//! Every invocation runs in a fresh process ([`point`]: the binary re-executes itself as
//! `barrierlab study-point`), and every number is kept as a [`Measurement`] row, streamed
//! to `study.csv` as it is measured. The parts:
//! - **micro** (the crossover): each tracker alone over a bare region
//!   ([`crate::workload::pages`]) larger than the last-level cache, stores per page swept
//!   from 1 up, sequential and random page order, a share of the pages dirtied, and one
//!   run pinned to a CPU; per-store and per-dirtied-page costs measured, not fitted.
//! - **minimum heap**: per workload and thread count, the smallest heap (MiB) in which
//!   the stop-the-world collector completes it, with the largest heap tested that failed.
//! - **macro** (end to end): every workload on the real heap per variant × thread count
//!   × heap size (a multiple of the minimum), plus bdwgc's stop-the-world and incremental
//!   modes on GCBench ([`crate::peer`]); [`StudyConfig::invocations`] measured
//!   invocations per point after one discarded warm-up, all points' invocations
//!   interleaved in a seeded random order. An invocation that completes fewer than
//!   [`MIN_CYCLES`] cycles is recorded as `invalid`, one that crashes or passes the
//!   timeout as `error`, with the reason; neither is a result.
//! - **heap map**: the pages one cycle dirtied, under a page tracker.
//!
//! [`report`] turns the rows into `report.md` (with bootstrap intervals from [`stats`])
//! and [`plot`] into SVG figures; both read only the rows, so every number in the report
//! is in the CSV. [`meta`] records where the run happened (`meta.json`).

pub mod compare;
pub mod meta;
pub mod plot;
pub mod point;
pub mod report;
pub mod stats;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::barrier::{BarrierKind, Breadth};
use crate::error::{Error, Result};
use crate::probe::Probe;
use crate::workload::{BinaryTreesParams, GcBenchParams, GraphParams, LruParams, Workload};
use point::{Outcome, Point, PointOutput, PointSpec};

pub use crate::barrier::Variant;
pub use point::{MMU_WINDOWS_MS, PAUSE_CDF_QUANTILES, mmu_metric, pause_cdf_metric};

/// The fewest collection cycles an end-to-end invocation must complete to count as a
/// result. Below it the run measures the mutator rather than the collector: its pause
/// and MMU figures rest on one or two pauses, and a barrier is armed for too short a
/// share of the run for its cost to show. Such an invocation is recorded as `invalid`.
pub const MIN_CYCLES: f64 = 3.0;

/// How much to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// CI-sized: under 30 s.
    Quick,
    /// The default: under 10 minutes on 2 cores.
    Default,
    /// Everything: classic GCBench, more heap sizes, more invocations.
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
    /// Measured invocations per end-to-end point (after one discarded warm-up).
    pub invocations: usize,
    /// Seed of the run order, the page orders and the bootstrap.
    pub seed: u64,
    /// Pin every child process (all its threads) to this CPU.
    pub pin_cpu: Option<usize>,
    /// A child running longer than this is killed and recorded as an `error` row.
    pub timeout: Duration,
    /// Run bdwgc's rows where `libgc.so.1` is present.
    pub peer: bool,
    /// Show progress on stderr.
    pub progress: bool,
}

/// Heaps' worth of allocation an end-to-end run aims at ([`StudyConfig::at_heap`]): ten,
/// so that a run is mostly steady-state collection (at most 60% of the heap is allocated
/// between cycles: at least ~16 cycles), as GC benchmark methodology asks. The default
/// study keeps within ~10 minutes on 2 CPUs by running one heap multiple, not by
/// running less.
pub const HEAPS_PER_RUN: u64 = 10;

/// The seed when none is given.
pub const DEFAULT_SEED: u64 = 0x5eed_ba77;

impl StudyConfig {
    /// The built-in defaults of a mode, writing into `out`.
    pub fn new(mode: Mode, out: PathBuf) -> StudyConfig {
        let (threads, heap_multiples, invocations) = match mode {
            Mode::Quick => (vec![1], vec![3.0], 3),
            Mode::Default => (vec![1, 2], vec![2.0], 10),
            Mode::Full => (vec![1, 2], vec![1.25, 1.5, 2.0, 3.0, 4.0, 6.0], 15),
        };
        StudyConfig {
            mode,
            out,
            trackers: BarrierKind::ALL.to_vec(),
            threads,
            heap_multiples,
            invocations,
            seed: DEFAULT_SEED,
            pin_cpu: None,
            timeout: Duration::from_secs(match mode {
                Mode::Quick => 60,
                _ => 300,
            }),
            peer: true,
            progress: true,
        }
    }

    /// Checks what a user may set: every value in range, no list with a value twice
    /// (it would run a point twice under one key), each error naming its flag. (The pinned CPU
    /// must be one this process may run on: counted from 0 to the CPUs available.)
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
        twice(
            "--trackers",
            self.trackers.iter().map(|k| k.to_string()).collect(),
        )?;
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
        if !(1..=1000).contains(&self.invocations) {
            return bad(format!(
                "--invocations {}: must be 1 to 1000",
                self.invocations
            ));
        }
        if self.timeout.is_zero() {
            return bad("--timeout-s 0: a point needs at least a second".into());
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Some(c) = self.pin_cpu
            && c >= cpus
        {
            return bad(format!(
                "--pin-cpu {c}: this machine has CPUs 0 to {}",
                cpus - 1
            ));
        }
        Ok(())
    }

    fn stores_per_page(&self) -> Vec<u64> {
        match self.mode {
            Mode::Quick => vec![1, 16, 256, 4096],
            Mode::Default => vec![1, 4, 16, 64, 256, 1024, 4096, 16384],
            Mode::Full => vec![
                1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 16384, 65536,
            ],
        }
    }

    /// Pages of the micro's region: twice the last-level cache (so that the card table
    /// and the page tables do not all stay cached), 4 MiB in quick mode.
    pub fn micro_pages(&self) -> usize {
        match self.mode {
            Mode::Quick => 1024,
            _ => (2 * last_level_cache_bytes().unwrap_or(32 << 20) / crate::sys::PAGE_SIZE)
                .clamp(4096, 1 << 16),
        }
    }

    fn micro_rounds(&self) -> usize {
        match self.mode {
            Mode::Quick => 5,
            Mode::Default => 7,
            Mode::Full => 15,
        }
    }

    /// The end-to-end workloads, one entry per workload: add one here and it runs
    /// everywhere (the child finds it by name in this list).
    pub fn workloads(&self) -> Vec<Workload> {
        let gc = match self.mode {
            Mode::Quick => GcBenchParams::QUICK,
            // A quarter of the classic work: enough cycles per run, 10 runs per point.
            Mode::Default => GcBenchParams {
                stretch_depth: 16,
                long_lived_depth: 14,
                array_len: 125_000,
                min_depth: 4,
                max_depth: 14,
                repeat: 1,
            },
            Mode::Full => GcBenchParams::CLASSIC,
        };
        let graph = |spp| {
            let base = GraphParams {
                stores_per_page: spp,
                ..GraphParams::default()
            };
            match self.mode {
                // The graph keeps a replaced node alive until the edges into it are
                // overwritten too, so the live set is the graph plus the nodes replaced
                // during the last ~8 × objects stores: few objects and many stores per
                // allocation make the run allocate ~10 times its live set, for several
                // cycles at every heap multiple.
                Mode::Quick => GraphParams {
                    objects: 3_000,
                    stores: 500_000,
                    alloc_every: 2,
                    ..base
                },
                Mode::Default => GraphParams {
                    objects: 5_000,
                    stores: 1_500_000,
                    alloc_every: 2,
                    ..base
                },
                Mode::Full => GraphParams {
                    objects: 40_000,
                    stores: 8_000_000,
                    alloc_every: 2,
                    ..base
                },
            }
        };
        let lru = LruParams {
            capacity: 10_000,
            key_space: 50_000,
            ..LruParams::default()
        };
        let trees = BinaryTreesParams::default();
        match self.mode {
            // graph-spp4's live set grows through the run (a replaced node stays
            // reachable through edges that few-stores-per-page mutation seldom
            // overwrites), so at 1.5× its minimum heap or more it completes fewer than
            // MIN_CYCLES cycles: in the default mode it would cost a fifth of the time
            // and give only invalid rows. Quick and full keep it (quick so that the
            // invalid path is exercised).
            Mode::Default => vec![
                Workload::GcBench(gc),
                Workload::Graph(graph(1024)),
                Workload::Lru(lru),
                Workload::BinaryTrees(trees),
            ],
            Mode::Quick => vec![
                Workload::GcBench(gc),
                Workload::Graph(graph(4)),
                Workload::Graph(graph(1024)),
                Workload::Lru(LruParams {
                    capacity: 5_000,
                    key_space: 25_000,
                    ..lru
                }),
                Workload::BinaryTrees(BinaryTreesParams { depth: 13, ..trees }),
            ],
            Mode::Full => vec![
                Workload::GcBench(gc),
                Workload::Graph(graph(4)),
                Workload::Graph(graph(1024)),
                Workload::Lru(LruParams::default()),
                Workload::BinaryTrees(trees),
            ],
        }
    }

    /// The workload an end-to-end point runs at `heap_bytes` on `threads` threads: the
    /// list's entry scaled to allocate about [`HEAPS_PER_RUN`] heaps' worth
    /// ([`Workload::scaled_to_heap`], which aims 25% above), so that every heap size
    /// sees several cycles and a larger heap a longer run; GCBench is run as defined (one
    /// repetition), so that bdwgc's rows do the same work.
    pub fn at_heap(w: &Workload, heap_bytes: usize, threads: usize) -> Workload {
        match w {
            Workload::GcBench(_) => *w,
            _ => w.scaled_to_heap(
                (heap_bytes as u64 * HEAPS_PER_RUN / crate::workload::HEAPS_ALLOCATED) as usize,
                threads,
            ),
        }
    }

    /// The variants of the micro: each tracker's (`uffd-wp` has one per service layout),
    /// only the default one per tracker in quick mode; `none` always runs.
    pub fn variants(&self) -> Vec<Variant> {
        self.variants_of(match self.mode {
            Mode::Quick => Breadth::One,
            _ => Breadth::Every,
        })
    }

    /// The variants of the end-to-end runs: every `uffd-wp` service layout in full mode
    /// only (the micro measures them all in the default mode), to keep the default study
    /// within 10 minutes on 2 CPUs.
    pub fn end_to_end_variants(&self) -> Vec<Variant> {
        self.variants_of(match self.mode {
            Mode::Full => Breadth::Every,
            _ => Breadth::One,
        })
    }

    fn variants_of(&self, breadth: Breadth) -> Vec<Variant> {
        let mut kinds = self.trackers.clone();
        kinds.push(BarrierKind::None);
        Variant::list(&kinds, breadth)
    }
}

/// The size of the largest (last-level) CPU cache of CPU 0, from
/// `/sys/devices/system/cpu/cpu0/cache/index*/{level,size}`.
pub fn last_level_cache_bytes() -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    let mut best: Option<(u32, usize)> = None;
    for e in dir.flatten() {
        let read = |f: &str| std::fs::read_to_string(e.path().join(f)).ok();
        let (Some(level), Some(size)) = (read("level"), read("size")) else {
            continue;
        };
        let Ok(level) = level.trim().parse::<u32>() else {
            continue;
        };
        let size = size.trim();
        let bytes = if let Some(k) = size.strip_suffix('K') {
            k.parse::<usize>().ok()? << 10
        } else if let Some(m) = size.strip_suffix('M') {
            m.parse::<usize>().ok()? << 20
        } else {
            size.parse().ok()?
        };
        if best.is_none_or(|b| (level, bytes) > b) {
            best = Some((level, bytes));
        }
    }
    best.map(|b| b.1)
}

/// One measured number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// `micro`, `macro`, `minheap`, `heapmap`; `invalid` (below [`MIN_CYCLES`], out of
    /// memory) and `error` (crashed, timed out, failed) are never results.
    pub section: String,
    /// The variant's name (`bdwgc-stw` for the peer).
    pub tracker: String,
    /// The workload (`pages-spp16`, `gcbench-d16`, `graph-spp4`).
    pub workload: String,
    /// Mutator threads.
    pub threads: usize,
    /// Heap size in MiB (the region's size for the micro).
    pub heap_mib: f64,
    /// Invocation or round number.
    pub invocation: usize,
    /// What was measured.
    pub metric: String,
    /// The value.
    pub value: f64,
    /// Why, for `invalid` and `error` rows (empty otherwise).
    pub note: String,
}

/// Everything the study produced.
#[derive(Debug, Clone)]
pub struct StudyResult {
    /// The probe at the start.
    pub probe: Probe,
    /// Every row.
    pub rows: Vec<Measurement>,
    /// Variants (and the peer) that could not run, with the reason.
    pub unavailable: Vec<(String, String)>,
    /// The configuration.
    pub config: StudyConfig,
    /// Where and how it ran.
    pub meta: meta::Meta,
}

struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(show: bool, total: u64) -> Progress {
        Progress(show.then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} (about {eta} left) {msg}",
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
    fn grow(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc_length(n);
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// The rows, kept in memory and streamed to `study.csv` (flushed per row, so that an
/// interrupted run keeps what it measured).
struct Sink {
    file: std::fs::File,
    path: PathBuf,
    rows: Vec<Measurement>,
}

impl Sink {
    fn create(path: PathBuf) -> Result<Sink> {
        let mut file = std::fs::File::create(&path)
            .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        writeln!(file, "{}", report::CSV_HEADER)
            .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
        Ok(Sink {
            file,
            path,
            rows: Vec::new(),
        })
    }

    fn push(&mut self, row: Measurement) -> Result<()> {
        self.file
            .write_all(report::csv_line(&row).as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| Error::io(format!("write {}", self.path.display()), e))?;
        self.rows.push(row);
        Ok(())
    }
}

/// What became of one child.
enum Ran {
    /// It printed its output.
    Output(PointOutput),
    /// It crashed, exited with an error, or printed nothing usable (the reason).
    Crashed(String),
    /// It ran past the timeout and was killed.
    TimedOut(String),
}

/// The last `n` characters of `text`, on one line.
fn tail(text: &str, n: usize) -> String {
    let t = text.trim();
    let start = t.char_indices().rev().nth(n).map_or(0, |(i, _)| i);
    t[start..].replace(['\n', '\r'], " | ")
}

/// Runs one point in a fresh process of this binary (`study-point`), killing it after
/// `timeout`.
fn invoke(exe: &Path, spec: &PointSpec, timeout: Duration) -> Ran {
    let json = serde_json::to_string(spec).expect("a spec serialises");
    let mut child = match Command::new(exe)
        .args(["study-point", "--spec", &json])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Ran::Crashed(format!("could not start {}: {e}", exe.display())),
    };
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if t0.elapsed() > timeout => {
                // Our own child, by its handle.
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Ran::Crashed(format!("waiting for the child: {e}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let Some(status) = status else {
        return Ran::TimedOut(format!(
            "killed after {timeout:?}; stderr: {}",
            tail(&stderr, 300)
        ));
    };
    if !status.success() {
        return Ran::Crashed(format!("{status}; stderr: {}", tail(&stderr, 300)));
    }
    match serde_json::from_str::<PointOutput>(stdout.trim()) {
        Ok(o) => Ran::Output(o),
        Err(e) => Ran::Crashed(format!(
            "unreadable output ({e}); stderr: {}",
            tail(&stderr, 300)
        )),
    }
}

/// The key of an end-to-end point (and of its rows).
#[derive(Debug, Clone, PartialEq)]
struct Key {
    tracker: String,
    workload: String,
    threads: usize,
    heap_mib: f64,
}

impl Key {
    fn row(
        &self,
        section: &str,
        invocation: usize,
        metric: &str,
        value: f64,
        note: String,
    ) -> Measurement {
        Measurement {
            section: section.into(),
            tracker: self.tracker.clone(),
            workload: self.workload.clone(),
            threads: self.threads,
            heap_mib: self.heap_mib,
            invocation,
            metric: metric.into(),
            value,
            note,
        }
    }
}

/// The rows one invocation contributes: its own when it is a result, else `invalid` or
/// `error` rows that say why; `Err` carries an unavailability reason.
fn classify(
    key: &Key,
    invocation: usize,
    ran: Ran,
) -> std::result::Result<Vec<Measurement>, String> {
    let err = |metric: &str, note: String| {
        vec![key.row("error", invocation, metric, 1.0, note.replace(',', ";"))]
    };
    match ran {
        Ran::TimedOut(why) => Ok(err("timeout", why)),
        Ran::Crashed(why) => Ok(err("crash", why)),
        Ran::Output(o) => match o.outcome {
            Outcome::Unavailable(why) => Err(why),
            Outcome::Failed(why) => Ok(err("failed", why)),
            Outcome::OutOfMemory(why) => Ok(vec![key.row(
                "invalid",
                invocation,
                "oom",
                1.0,
                why.replace(',', ";"),
            )]),
            Outcome::Ok => {
                let mut rows = o.rows;
                let cycles = rows
                    .iter()
                    .find(|r| r.metric == "cycles")
                    .map_or(0.0, |r| r.value);
                let invalid = rows.iter().any(|r| r.section == "macro") && cycles < MIN_CYCLES;
                for r in &mut rows {
                    // A micro child numbers its rounds; an end-to-end child's rows are 0.
                    r.invocation += invocation;
                    if invalid {
                        r.section = "invalid".into();
                        r.note = format!("{cycles} cycle(s) < minimum {MIN_CYCLES}");
                    }
                }
                Ok(rows)
            }
        },
    }
}

/// The end-to-end points and the heap-map run.
struct Plan {
    points: Vec<(Key, Point)>,
    heap_map: Option<HeapMap>,
}

/// The heap-map run's settings.
struct HeapMap {
    variant: Variant,
    workload: String,
    heap_bytes: usize,
}

struct Runner<'a> {
    config: &'a StudyConfig,
    exe: PathBuf,
    sink: Sink,
    bar: Progress,
    unavailable: Vec<(String, String)>,
}

impl Runner<'_> {
    fn spec(&self, point: Point, seed: u64) -> PointSpec {
        PointSpec {
            mode: self.config.mode,
            point,
            pin_cpu: self.config.pin_cpu,
            seed,
        }
    }

    fn unavailable(&mut self, who: String, why: String) {
        if !self.unavailable.iter().any(|u| u.0 == who) {
            self.unavailable.push((who, why));
        }
    }

    /// The micro: every (variant, pattern) in one child, in a seeded random order.
    fn micro(&mut self, variants: &[Variant]) -> Result<()> {
        let c = self.config;
        let region = c.micro_pages();
        // (label, stores per page, random, dirtied share, pinned)
        let mut patterns: Vec<(String, u64, bool, f64, bool)> = c
            .stores_per_page()
            .into_iter()
            .map(|spp| (format!("pages-spp{spp}"), spp, false, 1.0, false))
            .collect();
        for spp in [1, 64] {
            patterns.push((format!("pages-spp{spp}-random"), spp, true, 1.0, false));
        }
        for f in [0.1, 0.01] {
            patterns.push((format!("pages-spp16-f{f}"), 16, false, f, false));
        }
        patterns.push(("pages-spp1-pinned".into(), 1, false, 1.0, true));
        let mut jobs: Vec<(&Variant, usize)> = variants
            .iter()
            .flat_map(|v| (0..patterns.len()).map(move |i| (v, i)))
            .collect();
        jobs.shuffle(&mut rand::rngs::SmallRng::seed_from_u64(c.seed ^ 0x1c40));
        self.bar.grow(jobs.len() as u64);
        for (v, i) in jobs {
            let (label, spp, random, fraction, pinned) = patterns[i].clone();
            self.bar.step(format!("micro {} {label}", v.name()));
            let mut spec = self.spec(
                Point::Micro {
                    variant: v.name(),
                    label: label.clone(),
                    region_pages: region,
                    stores_per_page: spp,
                    random,
                    dirty_fraction: fraction,
                    rounds: c.micro_rounds(),
                },
                stats::seed_for(c.seed, &label),
            );
            if pinned {
                spec.pin_cpu = Some(c.pin_cpu.unwrap_or(0));
            }
            let key = Key {
                tracker: v.name(),
                workload: label,
                threads: 1,
                heap_mib: (region * crate::sys::PAGE_SIZE) as f64 / (1 << 20) as f64,
            };
            match classify(&key, 0, invoke(&self.exe, &spec, c.timeout)) {
                Ok(rows) => rows.into_iter().try_for_each(|r| self.sink.push(r))?,
                Err(why) => self.unavailable(v.name(), why),
            }
        }
        Ok(())
    }

    /// Whether `w` completes in `mib` MiB on `threads` threads (stop-the-world). A run
    /// that fails otherwise than by running out of memory is tried once more in a fresh
    /// process before the search gives up.
    fn fits(&mut self, w: &Workload, threads: usize, mib: usize) -> Result<bool> {
        self.bar
            .step(format!("min heap {} x{threads}: {mib} MiB", w.name()));
        let spec = self.spec(
            Point::Fits {
                workload: w.name(),
                threads,
                heap_bytes: mib << 20,
            },
            0,
        );
        let mut why = String::new();
        for _ in 0..2 {
            match invoke(&self.exe, &spec, self.config.timeout) {
                Ran::Output(PointOutput {
                    outcome: Outcome::Ok,
                    rows,
                }) => return Ok(rows.iter().any(|r| r.metric == "fits" && r.value == 1.0)),
                Ran::Output(o) => why = format!("{:?}", o.outcome),
                Ran::Crashed(w) | Ran::TimedOut(w) => why = w,
            }
        }
        Err(Error::InvalidArgument(format!(
            "the minimum-heap search for {} on {threads} thread(s) at {mib} MiB failed twice: {why}",
            w.name()
        )))
    }

    /// The minimum heap at 1 MiB granularity, found by doubling from 1 MiB and then
    /// bisecting, so that the largest size that failed is tested and recorded beside it
    /// (`min_heap_fails_mib`, 0 when even 1 MiB suffices: nothing smaller is tried).
    fn min_heap(&mut self, w: &Workload, threads: usize) -> Result<usize> {
        let (hi, lo) = search_min_mib(&w.name(), |mib| self.fits(w, threads, mib))?;
        let key = Key {
            tracker: "none".into(),
            workload: w.name(),
            threads,
            heap_mib: hi as f64,
        };
        self.sink
            .push(key.row("minheap", 0, "min_heap_mib", hi as f64, String::new()))?;
        self.sink
            .push(key.row("minheap", 0, "min_heap_fails_mib", lo as f64, String::new()))?;
        Ok(hi)
    }

    /// The end-to-end grid: each workload's minimum heap per thread count (searched
    /// here), then a point per heap multiple and variant, and bdwgc's two modes on
    /// GCBench with one thread; also the heap-map run (the first page tracker, the first
    /// workload at twice its minimum). A failed search is an `error` row and leaves
    /// that workload and thread count out.
    fn plan(&mut self, variants: &[Variant]) -> Result<Plan> {
        let c = self.config;
        let e2e: Vec<String> = c.end_to_end_variants().iter().map(|v| v.name()).collect();
        let mut points = Vec::new();
        let mut heap_map = None;
        for w in c.workloads() {
            for &threads in &c.threads {
                let min = match self.min_heap(&w, threads) {
                    Ok(min) => min,
                    Err(e) => {
                        let key = Key {
                            tracker: "none".into(),
                            workload: w.name(),
                            threads,
                            heap_mib: 0.0,
                        };
                        self.sink
                            .push(key.row("error", 0, "min_heap", 1.0, e.to_string()))?;
                        continue;
                    }
                };
                for &mult in &c.heap_multiples {
                    let mib = (min as f64 * mult).ceil() as usize;
                    let key = |tracker: &str| Key {
                        tracker: tracker.into(),
                        workload: w.name(),
                        threads,
                        heap_mib: mib as f64,
                    };
                    for v in variants.iter().filter(|v| e2e.contains(&v.name())) {
                        let point = Point::Run {
                            workload: w.name(),
                            variant: v.name(),
                            threads,
                            heap_bytes: mib << 20,
                            heap_map: false,
                        };
                        points.push((key(&v.name()), point));
                    }
                    if c.peer && threads == 1 && matches!(w, Workload::GcBench(_)) {
                        for (name, incremental) in
                            [("bdwgc-stw", false), ("bdwgc-incremental", true)]
                        {
                            let point = Point::Peer {
                                workload: w.name(),
                                incremental,
                                heap_bytes: mib << 20,
                            };
                            points.push((key(name), point));
                        }
                    }
                }
                if heap_map.is_none() && threads == 1 {
                    heap_map = variants
                        .iter()
                        .find(|v| v.kind.is_page_level())
                        .map(|v| HeapMap {
                            variant: *v,
                            workload: w.name(),
                            heap_bytes: (2 * min) << 20,
                        });
                }
            }
        }
        Ok(Plan { points, heap_map })
    }

    /// The heap-map run: one invocation, its rows kept only if it ran.
    fn heap_map(&mut self, map: HeapMap) -> Result<()> {
        let key = Key {
            tracker: map.variant.name(),
            workload: map.workload.clone(),
            threads: 1,
            heap_mib: (map.heap_bytes >> 20) as f64,
        };
        let point = Point::Run {
            workload: map.workload,
            variant: map.variant.name(),
            threads: 1,
            heap_bytes: map.heap_bytes,
            heap_map: true,
        };
        let ran = invoke(&self.exe, &self.spec(point, 0), self.config.timeout);
        if let Ok(rows) = classify(&key, 0, ran) {
            rows.into_iter().try_for_each(|r| self.sink.push(r))?;
        }
        Ok(())
    }

    /// The end-to-end points, every invocation interleaved in a seeded random order;
    /// the first invocation of each point to come up is its discarded warm-up.
    fn end_to_end(&mut self, points: Vec<(Key, Point)>) -> Result<()> {
        let n = self.config.invocations;
        let mut jobs: Vec<usize> = (0..points.len())
            .flat_map(|p| std::iter::repeat_n(p, n + 1))
            .collect();
        jobs.shuffle(&mut rand::rngs::SmallRng::seed_from_u64(self.config.seed));
        self.bar.grow(jobs.len() as u64);
        let mut done = vec![0usize; points.len()];
        let mut skip = vec![false; points.len()];
        for p in jobs {
            let (key, point) = &points[p];
            let warmup = done[p] == 0;
            self.bar.step(format!(
                "{} {} x{} {} MiB{}",
                key.workload,
                key.tracker,
                key.threads,
                key.heap_mib,
                if warmup { " (warm-up)" } else { "" }
            ));
            done[p] += 1;
            if skip[p] {
                continue;
            }
            let ran = invoke(&self.exe, &self.spec(point.clone(), 0), self.config.timeout);
            if warmup {
                // Discarded, unless it says the point cannot run at all.
                if let Ran::Output(PointOutput {
                    outcome: Outcome::Unavailable(why),
                    ..
                }) = ran
                {
                    skip[p] = true;
                    self.unavailable(key.tracker.clone(), why);
                }
                continue;
            }
            match classify(key, done[p] - 2, ran) {
                Ok(rows) => rows.into_iter().try_for_each(|r| self.sink.push(r))?,
                Err(why) => {
                    skip[p] = true;
                    self.unavailable(key.tracker.clone(), why);
                }
            }
        }
        Ok(())
    }
}

/// Runs the study and writes `study.csv` (as it goes), `meta.json`, `report.md` and the
/// SVG figures into `config.out`.
pub fn run(config: &StudyConfig) -> Result<StudyResult> {
    let start = meta::Start::now();
    let t0 = Instant::now();
    meta::prepare_out(&config.out)?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("find this program to run the study's points", e))?;
    let probe = Probe::run();
    let mut runner = Runner {
        config,
        exe,
        sink: Sink::create(config.out.join("study.csv"))?,
        bar: Progress::new(config.progress, 0),
        unavailable: Vec::new(),
    };
    let mut variants = Vec::new();
    for v in config.variants() {
        match crate::barrier::check_cached(v.kind, v.options.user_mode_only).require(v.kind) {
            Err(e) => runner.unavailable(v.name(), e.to_string()),
            Ok(()) => variants.push(v),
        }
    }
    runner.micro(&variants)?;
    let plan = runner.plan(&variants)?;
    runner.end_to_end(plan.points)?;
    if let Some(map) = plan.heap_map {
        runner.heap_map(map)?;
    }
    runner.bar.finish();
    let meta = start.finish(&probe, config.seed, t0.elapsed().as_secs_f64());
    for w in &meta.warnings {
        eprintln!("warning: {w}");
    }
    let meta_path = config.out.join("meta.json");
    std::fs::write(
        &meta_path,
        serde_json::to_string_pretty(&meta).expect("meta serialises"),
    )
    .map_err(|e| Error::io(format!("write {}", meta_path.display()), e))?;
    let mut unavailable = runner.unavailable;
    unavailable.sort();
    let result = StudyResult {
        probe,
        rows: runner.sink.rows,
        unavailable,
        config: config.clone(),
        meta,
    };
    report::write_all(&result)?;
    Ok(result)
}

/// The smallest heap (1 MiB steps) in which `w` completes on `threads` threads with the
/// stop-the-world collector, searched in this process (the benches' unit of heap size;
/// the study runs the same search with a fresh process per size): doubling from 1 MiB,
/// then bisecting until the size below the answer has been seen to fail.
pub fn min_heap_bytes(w: &Workload, threads: usize) -> Result<usize> {
    let fits = |mib: usize| -> Result<bool> {
        let cfg = crate::heap::HeapConfig::new()
            .heap_bytes(mib << 20)
            .barrier(BarrierKind::None);
        match crate::workload::run(&cfg, w, threads) {
            Ok(_) => Ok(true),
            Err(Error::OutOfMemory { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    };
    Ok(search_min_mib(&w.name(), fits)?.0 << 20)
}

/// The minimum-heap search: doubling from 1 MiB until `fits`, then bisecting to 1 MiB.
/// Returns (the smallest size that fitted, the largest that was tested and failed, 0
/// when 1 MiB fitted).
fn search_min_mib(
    name: &str,
    mut fits: impl FnMut(usize) -> Result<bool>,
) -> Result<(usize, usize)> {
    let (mut lo, mut hi) = (0usize, 1usize);
    while !fits(hi)? {
        lo = hi;
        hi *= 2;
        if hi > 16 << 10 {
            return Err(Error::InvalidArgument(format!(
                "{name} does not fit in 16 GiB"
            )));
        }
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if fits(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok((hi, lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_heap_search_tests_the_size_below_its_answer() {
        for need in [1usize, 2, 3, 7, 8, 9, 100] {
            let mut tried = Vec::new();
            let (hi, lo) = search_min_mib("w", |mib| {
                tried.push(mib);
                Ok(mib >= need)
            })
            .unwrap();
            assert_eq!(hi, need, "the answer");
            assert_eq!(lo, need - 1, "the size below it");
            assert!(tried.contains(&hi), "{need}: {tried:?}");
            assert!(lo == 0 || tried.contains(&lo), "{need}: {tried:?}");
        }
        let e = search_min_mib("huge", |_| Ok(false)).unwrap_err();
        assert!(e.to_string().contains("huge"));
    }

    #[test]
    fn an_invocation_below_the_minimum_cycles_is_invalid() {
        let key = Key {
            tracker: "none".into(),
            workload: "w".into(),
            threads: 1,
            heap_mib: 4.0,
        };
        let out = |cycles: f64| {
            Ran::Output(PointOutput {
                outcome: Outcome::Ok,
                rows: vec![
                    key.row("macro", 0, "cycles", cycles, String::new()),
                    key.row("macro", 0, "wall_ms", 5.0, String::new()),
                ],
            })
        };
        let rows = classify(&key, 4, out(MIN_CYCLES - 1.0)).unwrap();
        assert!(
            rows.iter()
                .all(|r| r.section == "invalid" && r.invocation == 4)
        );
        assert!(rows[0].note.contains("minimum"), "{:?}", rows[0]);
        let rows = classify(&key, 4, out(MIN_CYCLES)).unwrap();
        assert!(rows.iter().all(|r| r.section == "macro"));
        let rows = classify(&key, 1, Ran::TimedOut("killed".into())).unwrap();
        assert_eq!(
            (rows[0].section.as_str(), rows[0].metric.as_str()),
            ("error", "timeout")
        );
        let unavailable = Ran::Output(PointOutput {
            outcome: Outcome::Unavailable("no libgc".into()),
            rows: vec![],
        });
        assert_eq!(classify(&key, 0, unavailable).unwrap_err(), "no libgc");
    }

    #[test]
    fn the_last_level_cache_is_found() {
        if std::path::Path::new("/sys/devices/system/cpu/cpu0/cache/index0").exists() {
            let llc = last_level_cache_bytes().expect("a cache size");
            assert!(llc >= 64 << 10, "{llc}");
        }
    }
}
