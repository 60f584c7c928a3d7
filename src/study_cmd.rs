//! `barrierlab study`: its flags, turned into a [`StudyConfig`], and the run with what it
//! prints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use barrierlab::BarrierKind;
use barrierlab::study::{self, Mode, StudyConfig};

use crate::{barrier_parser, count, emit, positive, warn};

/// The flags of `barrierlab study`.
#[derive(clap::Args)]
pub struct StudyArgs {
    /// CI-sized run (seconds).
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// The full sweep (classic GCBench at more heap sizes, more invocations).
    #[arg(long)]
    pub full: bool,
    /// Output folder.
    #[arg(long, default_value = "barrierlab-out")]
    pub out: PathBuf,
    /// Barriers to run, comma-separated (`none` always runs: it is the baseline).
    #[arg(long, value_delimiter = ',', value_parser = barrier_parser())]
    pub trackers: Option<Vec<BarrierKind>>,
    /// Mutator thread counts, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = count)]
    pub threads: Option<Vec<usize>>,
    /// Heap sizes as multiples of each workload's minimum heap, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = positive)]
    pub heap: Option<Vec<f64>>,
    /// Live sets of the end-to-end workloads in MiB, comma-separated (all threads
    /// together; default 64, quick 4, full 64 and 1024).
    #[arg(long, value_delimiter = ',', value_parser = count)]
    pub live_mib: Option<Vec<usize>>,
    /// Invocations every end-to-end point gets (alone: exactly this many).
    #[arg(long, value_parser = count)]
    pub invocations: Option<usize>,
    /// The most invocations a point gets while its interval is wider than --ci-width.
    #[arg(long, value_parser = count)]
    pub max_invocations: Option<usize>,
    /// The target width of the 95% interval of each barrier's wall time over `none`'s in
    /// its block (of the median wall time, where a point has no `none` beside it), as a
    /// share of the estimate (0.1: 10%).
    #[arg(long, value_parser = positive)]
    pub ci_width: Option<f64>,
    /// The study's time budget in minutes: invocations beyond --invocations stop when
    /// it is spent (default 30; 0: none; --quick and --full have none).
    #[arg(long, value_parser = count)]
    pub budget_min: Option<usize>,
    /// The time (ms) each workload's work is sized for at its fastest point (`none` at
    /// its largest heap), by calibration runs before the end-to-end points (default
    /// 2333; --quick runs its fixed CI-sized work unless this is given).
    #[arg(long, value_parser = positive)]
    pub run_ms: Option<f64>,
    /// Run each workload's points at the work an earlier study calibrated for it (its
    /// folder), instead of calibrating again, so that the two studies do the same runs
    /// (workloads that study did not calibrate are calibrated as usual).
    #[arg(long, value_name = "DIR")]
    pub work_from: Option<std::path::PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Seed of the run order, the micro's page orders and the bootstrap intervals
    /// (default: drawn fresh for each run; recorded in meta.json).
    #[arg(long, value_parser = count)]
    pub seed: Option<usize>,
    /// Pin every measured process, all its threads, to this CPU (one this process
    /// may run on: see `taskset`).
    #[arg(long, value_parser = count)]
    pub pin_cpu: Option<usize>,
    /// Kill a point's process after this many seconds (it becomes an `error` row).
    #[arg(long, value_parser = count)]
    pub timeout_s: Option<usize>,
    /// Skip bdwgc's rows.
    #[arg(long)]
    pub no_peer: bool,
    /// Print the run's summary (meta.json's fields, the files, what did not run) as
    /// JSON on stdout instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

/// The work per workload that the study in `dir` calibrated (bytes allocated per live
/// byte, by label).
fn work_of(dir: &std::path::Path) -> barrierlab::Result<std::collections::BTreeMap<String, f64>> {
    let read = study::data::read(dir)?;
    for w in &read.warnings {
        warn(&format!("warning: {w}"));
    }
    let work: std::collections::BTreeMap<String, f64> =
        study::compare::work_per_run(std::slice::from_ref(&read.rows))
            .into_iter()
            .filter_map(|(label, v)| Some((label, *v.first()?)).filter(|(_, w)| w.is_finite()))
            .collect();
    if work.is_empty() {
        return Err(barrierlab::Error::InvalidArgument(format!(
            "{}: no calibrated work in it (a --quick study, or one stopped before its \
             calibration)",
            dir.join("study.csv").display()
        )));
    }
    Ok(work)
}

/// Runs the study the flags describe: exit 2 for a bad flag or output folder, before
/// anything runs; 1 if the study failed.
pub fn run(args: StudyArgs) -> ExitCode {
    let StudyArgs {
        quick,
        full,
        out,
        trackers,
        threads,
        heap,
        live_mib,
        invocations,
        max_invocations,
        ci_width,
        budget_min,
        run_ms,
        work_from,
        no_progress,
        seed,
        pin_cpu,
        timeout_s,
        no_peer,
        json,
    } = args;
    let mode = if quick {
        Mode::Quick
    } else if full {
        Mode::Full
    } else {
        Mode::Default
    };
    let mut cfg = StudyConfig::new(mode, out);
    if let Some(t) = trackers {
        cfg.trackers = t;
    }
    if let Some(t) = threads {
        cfg.threads = t;
    }
    if let Some(h) = heap {
        cfg.heap_multiples = h;
    }
    if let Some(l) = live_mib {
        cfg.live_mib = l.into_iter().map(|l| l as u64).collect();
    }
    if let Some(n) = invocations {
        cfg.invocations.min = n;
        cfg.invocations.max = max_invocations.unwrap_or(n);
    } else if let Some(n) = max_invocations {
        cfg.invocations.max = n;
    }
    if let Some(w) = ci_width {
        cfg.invocations.target_width = w;
    }
    if let Some(m) = budget_min {
        cfg.invocations.budget_s = (m > 0).then_some(m as f64 * 60.0);
    }
    if run_ms.is_some() {
        cfg.run_ms = run_ms;
    }
    if let Some(dir) = work_from {
        match work_of(&dir) {
            Ok(work) => cfg.work_from = Some((dir, work)),
            Err(e) => {
                warn(&format!("error: --work-from: {e}"));
                return ExitCode::from(2);
            }
        }
    }
    cfg.progress = !no_progress;
    cfg.pin_cpu = pin_cpu;
    cfg.peer = !no_peer;
    if let Some(seed) = seed {
        cfg.seed = seed as u64;
        cfg.seed_given = true;
    }
    if let Some(t) = timeout_s {
        cfg.timeout = Duration::from_secs(t as u64);
    }
    if let Err(e) = cfg
        .validate()
        .and_then(|()| study::folder::check_out(&cfg.out))
    {
        warn(&format!("error: {e}"));
        return ExitCode::from(2);
    }
    warn(&format!(
        "barrierlab study ({mode:?}, seed {}): writing into {}",
        cfg.seed,
        cfg.out.display()
    ));
    match study::run(&cfg) {
        Ok(r) => {
            for (v, why) in &r.meta.not_run {
                warn(&format!("not run: {v}: {why}"));
            }
            let text = if json {
                let summary = serde_json::json!({
                    "meta": r.meta,
                    "rows": r.rows.len(),
                    "invalid_rows": r.rows.iter().filter(|m| !m.section.is_result()).count(),
                    "not_run": r.meta.not_run,
                    "csv": cfg.out.join("study.csv"),
                    "report": cfg.out.join("report.md"),
                    "summary": cfg.out.join("summary.json"),
                    "meta_json": cfg.out.join("meta.json"),
                });
                format!("{summary}\n")
            } else {
                format!(
                    "{} measurements in {:.0} s; report: {}\n",
                    r.rows.len(),
                    r.meta.elapsed_s.unwrap_or_default(),
                    cfg.out.join("report.md").display()
                )
            };
            emit(&text)
        }
        Err(e) => {
            warn(&format!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}
