//! The barrierlab command line: `study` (the main job), `gcbench`, `probe`.

mod peer_cmd;
mod run_cmd;
mod run_opts;
mod run_report;
mod study_cmd;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use barrierlab::BarrierKind;
use barrierlab::peer::{Peer, PeerWorkload};
use barrierlab::study;
use barrierlab::workload::{BinaryTreesParams, GcBenchParams};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Parses a barrier name, listing every mechanism with its one-line summary in `--help`.
fn barrier_parser() -> impl TypedValueParser<Value = BarrierKind> {
    PossibleValuesParser::new(
        BarrierKind::ALL.map(|k| PossibleValue::new(k.name()).help(k.mechanism().summary)),
    )
    .map(|name| name.parse().expect("a listed barrier name parses"))
}

/// Parses a count (0 or more), saying plainly what is wrong with a negative or
/// malformed one.
fn count(s: &str) -> Result<usize, String> {
    if s.trim_start().starts_with('-') {
        return Err(format!("`{s}` is negative: give a count of 0 or more"));
    }
    s.parse()
        .map_err(|_| format!("`{s}` is not a whole number (a count of 0 or more)"))
}

/// Parses a number, saying plainly what is wrong with a negative one.
fn positive(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v < 0.0 {
        return Err(format!("`{s}` is negative: give a number above 0"));
    }
    Ok(v)
}

/// Writes `text` to stdout; a failed write (a closed pipe, a full disk) ends the
/// program with exit 1 and a message on stderr, never a panic.
fn emit(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            warn(&format!("error: cannot write the output to stdout: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Writes a line to stderr, ignoring a failure (there is nowhere left to report it).
fn warn(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A laboratory for garbage-collector write barriers on Linux.
#[derive(Parser)]
#[command(version, about, allow_negative_numbers = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the study: every barrier on the same work; writes a CSV, a Markdown report and
    /// SVG plots.
    #[command(allow_negative_numbers = true)]
    Study(study_cmd::StudyArgs),
    /// One point of the study, run once in this fresh process: prints its rows as JSON
    /// (see `barrierlab::study::point`).
    #[command(hide = true)]
    StudyPoint {
        /// The point, as JSON.
        #[arg(long)]
        spec: String,
    },
    /// Run GCBench once and print total time, pause percentiles, MMU, the tracker's
    /// counters, its userfaultfd mode and its degradations (with the cause) on one line.
    #[command(allow_negative_numbers = true)]
    Gcbench {
        /// Run GCBench on an outside collector instead, in a child process: `bdwgc`
        /// (needs `libgc.so.1`: `apt-get install libgc1`).
        #[arg(long, conflicts_with_all = ["barrier", "threads", "layout", "marker_threads", "log_cycles", "json"])]
        peer: Option<Peer>,
        /// With `--peer`: the peer's incremental mode.
        #[arg(long, requires = "peer")]
        incremental: bool,
        /// The scaled-down parameters instead of the classic ones.
        #[arg(long)]
        quick: bool,
        #[command(flatten)]
        opts: run_opts::HeapOpts,
    },
    /// Run one workload once on one barrier and print its result on one line (or as
    /// JSON): time, CPU, pauses, MMU, faults and stalls, the dirty split, the uffd-wp
    /// layout and userfaultfd mode, degradations with their cause, fallbacks.
    #[command(allow_negative_numbers = true)]
    Run {
        /// The workload.
        #[arg(long, required_unless_present = "study_workload")]
        workload: Option<run_cmd::WorkloadName>,
        /// Instead of --workload: a workload of the default study by the label its report
        /// gives (`gcbench-l64`, `graph-spp1024-l64`, `lru-l64`, `binary-trees-l64`,
        /// `gcold-m100-l64`, `gcold-m10000-l64`; another live size as `-l<MiB>`), with the
        /// parameters a study point gives it: with the point's --heap-mib, --barrier and
        /// --allocated-per-live, one invocation of that point.
        #[arg(long, conflicts_with_all = ["workload", "quick", "scaled", "live_mib"])]
        study_workload: Option<String>,
        /// With --study-workload: the work a study calibrated for that workload (bytes it
        /// allocates per live byte, from the report's "Work per run" table); without it,
        /// the workload's starting work.
        #[arg(long, value_parser = run_opts::work)]
        allocated_per_live: Option<f64>,
        /// The scaled-down parameters (GCBench only; the others' defaults are small).
        #[arg(long)]
        quick: bool,
        /// Scale the operation count so that the run allocates at least ten heaps (the
        /// live set stays as designed); refused, with the estimate, when that would
        /// allocate more than 64 GiB.
        #[arg(long)]
        scaled: bool,
        /// The workload's live set in MiB (per thread; default: the workload's own).
        #[arg(long, value_parser = count)]
        live_mib: Option<usize>,
        /// Run the study workload on an outside collector instead, in a child process:
        /// `bdwgc` (needs `libgc.so.1`: `apt-get install libgc1`). Binary trees only
        /// (`--study-workload binary-trees-l<MiB>`), with --heap-mib, --allocated-per-live
        /// and --incremental; GCBench runs on the peer as `gcbench --peer`.
        #[arg(long)]
        peer: Option<Peer>,
        /// With `--peer`: the peer's incremental mode.
        #[arg(long, requires = "peer")]
        incremental: bool,
        #[command(flatten)]
        opts: run_opts::HeapOpts,
    },
    /// Render a study folder's report.md, summary.json and figures again from its
    /// study.csv and meta.json (the probe is not run: the machine is meta.json's).
    Report {
        /// The study's folder.
        dir: PathBuf,
    },
    /// Compare study folders: the verdicts against `none` in every run (a difference
    /// stated only where every run's interval lies beyond 1 by 5%, reversals listed), and
    /// per metric and point each later run over the first, with a 95% bootstrap interval.
    Compare {
        /// The study folders, the first the baseline.
        #[arg(num_args = 2.., required = true)]
        runs: Vec<PathBuf>,
        /// Metrics to compare, comma-separated (default: time, CPU, pauses, MMU, faults,
        /// fallbacks, the micro's costs).
        #[arg(long, value_delimiter = ',')]
        metrics: Option<Vec<String>>,
        /// Only the points whose interval lies beyond 1 by the margin.
        #[arg(long)]
        changed: bool,
        /// One JSON object instead of the Markdown (the verdicts across runs with their
        /// counts, and each later run against the first), for tools that read it as data.
        #[arg(long)]
        json: bool,
    },
    /// Report which write-barrier mechanisms this kernel offers, and why not the others.
    Probe {
        /// One JSON object instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// The child process of `gcbench --peer` and `run --peer`: runs GCBench (or binary
    /// trees) on the peer collector and prints one record line for the parent (see
    /// `barrierlab::peer`).
    #[command(hide = true)]
    PeerChild {
        #[arg(long)]
        peer: Peer,
        #[arg(long)]
        incremental: bool,
        #[arg(long)]
        heap_mib: usize,
        #[arg(long)]
        quick: bool,
        /// Binary trees instead of GCBench: DEPTH,SUBTREE,OPERATIONS,SWAPS,SEED.
        #[arg(long, conflicts_with = "quick", value_parser = peer_cmd::parse_binary_trees)]
        binary_trees: Option<BinaryTreesParams>,
    },
}

/// `report DIR`.
fn report(dir: &std::path::Path) -> ExitCode {
    match study::rerender(dir) {
        Ok((n, warnings)) => {
            for w in warnings {
                warn(&format!("warning: {w}"));
            }
            warn(&format!(
                "{n} rows; report: {}; summary: {}",
                dir.join("report.md").display(),
                dir.join("summary.json").display()
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            warn(&format!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// `compare RUN RUN [RUN…]`.
fn compare(runs: &[PathBuf], metrics: Option<Vec<String>>, changed: bool, json: bool) -> ExitCode {
    use barrierlab::study::{Metric, compare, data};
    let metrics: Vec<Metric> = match metrics {
        None => compare::HEADLINE_METRICS.to_vec(),
        Some(names) => match names.iter().map(|n| n.parse::<Metric>()).collect() {
            Ok(m) => m,
            Err(e) => {
                warn(&format!("error: --metrics: {e}"));
                return ExitCode::from(2);
            }
        },
    };
    let mut rows = Vec::new();
    let mut designs = Vec::new();
    for dir in runs {
        // Each run's ratios to `none` are formed as its invocations were ordered.
        match barrierlab::study::meta::read(dir) {
            Ok(meta) => designs.push(meta.design()),
            Err(e) => {
                warn(&format!("error: {e}"));
                return ExitCode::FAILURE;
            }
        }
        match data::read(dir) {
            Ok(r) => {
                for w in &r.warnings {
                    warn(&format!("warning: {w}"));
                }
                rows.push(r.rows);
            }
            Err(e) => {
                warn(&format!("error: {e}"));
                return ExitCode::FAILURE;
            }
        }
    }
    let agreements = compare::agreements(&rows, &designs);
    let later = compare::against_first(&rows, &metrics, changed);
    if json {
        let paths: Vec<&std::path::Path> = runs.iter().map(PathBuf::as_path).collect();
        let mut j = compare::to_json(&paths, &agreements, &later);
        // Each run's calibrated work per workload (null where a run did not calibrate).
        j["work_per_live"] = serde_json::json!(compare::work_per_run(&rows));
        return emit(&format!("{j:#}\n"));
    }
    let mut text = compare::render_work(&compare::work_per_run(&rows));
    text.push_str(&compare::render_agreements(&agreements, rows.len()));
    for (i, cmp) in later.iter().enumerate() {
        text.push('\n');
        text.push_str(&compare::render(cmp, &runs[0], &runs[i + 1]));
    }
    emit(&text)
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Probe { json } => run_cmd::probe(json),
        Command::Report { dir } => report(&dir),
        Command::Compare {
            runs,
            metrics,
            changed,
            json,
        } => compare(&runs, metrics, changed, json),
        Command::Gcbench {
            peer: Some(peer),
            incremental,
            quick,
            opts,
        } => {
            let params = if quick {
                GcBenchParams::QUICK
            } else {
                GcBenchParams::CLASSIC
            };
            let w = PeerWorkload::GcBench(params);
            peer_cmd::parent(peer, incremental, opts.heap_mib as usize, &w)
        }
        Command::PeerChild {
            peer,
            incremental,
            heap_mib,
            quick,
            binary_trees,
        } => {
            let w = match binary_trees {
                Some(p) => PeerWorkload::BinaryTrees(p),
                None if quick => PeerWorkload::GcBench(GcBenchParams::QUICK),
                None => PeerWorkload::GcBench(GcBenchParams::CLASSIC),
            };
            peer_cmd::child(peer, incremental, heap_mib, w)
        }
        Command::Run {
            peer: Some(peer),
            incremental,
            study_workload,
            allocated_per_live,
            opts,
            ..
        } => {
            let run = matches
                .subcommand_matches("run")
                .expect("the run subcommand");
            match peer_cmd::run_workload(run, study_workload.as_deref(), allocated_per_live) {
                Ok(w) => peer_cmd::parent(peer, incremental, opts.heap_mib as usize, &w),
                Err(why) => peer_cmd::usage_error(&why),
            }
        }
        Command::Gcbench {
            quick,
            opts,
            peer: None,
            ..
        } => run_cmd::run(&opts, &run_cmd::WorkloadName::Gcbench.workload(quick)),
        Command::Run {
            study_workload: Some(label),
            allocated_per_live,
            opts,
            ..
        } => match run_cmd::study_workload(&label, allocated_per_live, opts.threads as usize) {
            Ok(w) => run_cmd::run(&opts, &w),
            Err(why) => {
                warn(&format!("error: --study-workload: {why}"));
                ExitCode::from(2)
            }
        },
        Command::Run {
            workload,
            quick,
            scaled,
            live_mib,
            allocated_per_live,
            opts,
            ..
        } => {
            if allocated_per_live.is_some() {
                warn("error: --allocated-per-live applies only to --study-workload");
                return ExitCode::from(2);
            }
            // clap asks for one of --workload and --study-workload.
            let Some(workload) = workload else {
                warn("error: give --workload or --study-workload");
                return ExitCode::from(2);
            };
            if quick && workload != run_cmd::WorkloadName::Gcbench {
                warn("error: --quick applies only to --workload gcbench");
                return ExitCode::from(2);
            }
            let mut w = workload.workload(quick);
            if let Some(live) = live_mib {
                w = w.with_live((live as u64) << 20);
            }
            if scaled {
                w = w.scaled_to_heap((opts.heap_mib as usize) << 20, opts.threads as usize);
                if let Err(why) = run_cmd::check_scaled(&w, opts.threads as usize) {
                    warn(&format!("error: --scaled: {why}"));
                    return ExitCode::from(2);
                }
            }
            run_cmd::run(&opts, &w)
        }
        Command::StudyPoint { spec } => {
            match serde_json::from_str::<study::point::PointSpec>(&spec) {
                Ok(spec) => {
                    let out = study::point::run_point(&spec);
                    emit(&format!(
                        "{}\n",
                        serde_json::to_string(&out).expect("the output serialises")
                    ))
                }
                Err(e) => {
                    warn(&format!("error: study-point --spec: {e}"));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Study(args) => study_cmd::run(args),
    }
}
