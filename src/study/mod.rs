//! The study: the sweep behind `barrierlab study`, which shows on the user's own machine
//! what each barrier costs and where the crossover lies.
//!
//! Every invocation runs in a fresh process (the binary re-executes itself as
//! `barrierlab study-point`, [`point`]), and every number is kept as a typed [`Row`],
//! streamed to `study.csv` as it is measured ([`data`], the one home of the schema). The
//! parts, in the order they run ([`points`]):
//! - **micro** (the crossover): each tracker alone over a bare region larger than the
//!   last-level cache, stores per page swept from 1 up, sequential and random page order,
//!   a share of the pages dirtied, one run pinned to a CPU; several processes per point,
//!   so that intervals carry the variation between processes.
//! - **minimum heap** ([`minheap`]): per workload and thread count, bisection to 5% of the
//!   smallest heap in which the stop-the-world collector completes it three runs in a row.
//! - **calibration** (not in `--quick`): each workload's work per run, sized by time so
//!   that its fastest point runs about [`config::RUN_MS_TARGET`] on this machine.
//! - **end to end**: every workload ([`config::StudyWorkload`], sized by its live set) per
//!   variant × thread count × heap multiple, plus bdwgc on GCBench; invocations added
//!   until each point's interval is narrow enough ([`meta::InvocationPolicy`]).
//! - **heap map**: the pages one cycle dirtied, under a page tracker.
//!
//! The output folder is the study's alone while it runs ([`folder`]); `meta.json` is
//! written when it starts and completed when it ends ([`meta`]). Then [`report`] writes
//! `report.md` and `summary.json` (the same tables, typed: [`summary`]) and [`plot`] the
//! figures, both from the rows alone, so `barrierlab report DIR` renders a folder again.
//! This module only wires those parts together.

pub mod compare;
pub mod config;
pub mod crossover;
pub mod data;
pub mod folder;
pub mod format;
pub mod health;
pub mod measure;
pub mod meta;
mod micro_point;
pub mod minheap;
pub mod plot;
pub mod point;
pub mod points;
pub mod report;
pub mod runner;
pub mod stats;
pub mod summary;

use std::path::Path;
use std::time::Instant;

use crate::error::Result;
use crate::probe::Probe;

pub use config::{Mode, StudyConfig};
pub use data::{Metric, Row, Section};
pub use minheap::min_heap_bytes;
pub use runner::MIN_CYCLES;

/// Everything the study produced.
#[derive(Debug, Clone)]
pub struct StudyResult {
    /// Every row.
    pub rows: Vec<Row>,
    /// Where and how it ran (what did not run included).
    pub meta: meta::Meta,
}

/// Runs the study: locks and prepares `config.out`, writes `meta.json` at once, streams
/// `study.csv`, then completes `meta.json` and writes `report.md`, `summary.json` and the
/// figures.
pub fn run(config: &StudyConfig) -> Result<StudyResult> {
    let start = meta::Start::now();
    let t0 = Instant::now();
    let mut out = folder::OutFolder::open(&config.out)?;
    let exe = std::env::current_exe()
        .map_err(|e| crate::Error::io("find this program to run the study's points", e))?;
    let (exe, hash) = out.copy_binary(&exe)?;
    let probe = Probe::run();
    let mut meta = start.meta(&probe, config.seed, config.seed_given);
    meta.mode = Some(config.mode.name().into());
    meta.binary_fnv1a64 = Some(hash);
    meta.invocations = Some(config.invocations);
    let meta_path = out.claim("meta.json")?;
    write_meta(&meta_path, &meta)?;
    let csv = out.claim("study.csv")?;
    let mut runner = points::Runner {
        config,
        exe: exe.clone(),
        sink: data::Sink::create(csv)?,
        bar: runner::Progress::new(config.progress, 0),
        not_run: Vec::new(),
        parts: Vec::new(),
        per_live: config.work_from.clone().map(|(_, w)| w).unwrap_or_default(),
        started: t0,
        batches: Vec::new(),
        cut_by_budget: None,
    };
    let mut variants = Vec::new();
    for v in config.variants() {
        match v.config.require_available() {
            Err(e) => runner.unavailable(v.name(), e.to_string()),
            Ok(()) => variants.push(v),
        }
    }
    // `meta.json` gains each part's time as it ends: an interrupted study keeps them.
    runner.micro(&variants)?;
    meta.parts.clone_from(&runner.parts);
    write_meta(&meta_path, &meta)?;
    runner.end_to_end(&variants)?;
    meta.parts.clone_from(&runner.parts);
    write_meta(&meta_path, &meta)?;
    runner.barrier_only(&variants)?;
    meta.parts.clone_from(&runner.parts);
    write_meta(&meta_path, &meta)?;
    runner.more_invocations()?;
    runner.bar.finish();
    let _ = std::fs::remove_file(&exe);
    let mut not_run = runner.not_run;
    not_run.sort();
    meta.not_run = not_run;
    meta.parts = runner.parts;
    meta.cut_by_budget = runner.cut_by_budget;
    start.finish(&mut meta, t0.elapsed().as_secs_f64());
    for w in &meta.warnings {
        eprintln!("warning: {w}");
    }
    write_meta(&meta_path, &meta)?;
    let result = StudyResult {
        rows: runner.sink.rows,
        meta,
    };
    render(&mut out, &result)?;
    Ok(result)
}

fn write_meta(path: &Path, meta: &meta::Meta) -> Result<()> {
    let text = serde_json::to_string_pretty(meta).expect("meta serialises");
    folder::write_whole(path, text.as_bytes())
}

/// Writes the figures, `report.md` and `summary.json` of `result` into the folder.
fn render(out: &mut folder::OutFolder, result: &StudyResult) -> Result<()> {
    let figures = plot::write_all(&result.rows, &result.meta, &mut |name| out.claim(name))?;
    let (md, summary) = report::render(&result.rows, &result.meta, &figures);
    folder::write_whole(&out.claim("report.md")?, md.as_bytes())?;
    let json = serde_json::to_string_pretty(&summary).expect("the summary serialises");
    folder::write_whole(&out.claim("summary.json")?, json.as_bytes())
}

/// Renders a study folder again from its `study.csv` and `meta.json` (after a change to
/// the report's code, for an interrupted run, or for a folder from an older version):
/// `report.md`, `summary.json` and the figures; the probe is not run. Returns the rows
/// read and the warnings about the CSV (a cut last line skipped).
pub fn rerender(dir: &Path) -> Result<(usize, Vec<String>)> {
    let rows = data::read(dir)?;
    let meta = meta::read(dir)?;
    let mut out = folder::OutFolder::reopen(dir)?;
    let n = rows.rows.len();
    render(
        &mut out,
        &StudyResult {
            rows: rows.rows,
            meta,
        },
    )?;
    Ok((n, rows.warnings))
}
