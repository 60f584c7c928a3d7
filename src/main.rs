//! The barrierlab command line: `study` (the main job), `gcbench`, `probe`.

mod run_cmd;

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use barrierlab::BarrierKind;
use barrierlab::peer::{self, Peer, PeerConfig, PeerRun};
use barrierlab::study::{self, Mode, StudyConfig};
use barrierlab::workload::GcBenchParams;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};

/// Parses a barrier name, listing every mechanism with its one-line summary in `--help`.
fn barrier_parser() -> impl TypedValueParser<Value = BarrierKind> {
    PossibleValuesParser::new(
        BarrierKind::ALL.map(|k| PossibleValue::new(k.name()).help(k.mechanism().summary)),
    )
    .map(|name| name.parse().expect("a listed barrier name parses"))
}

/// A laboratory for garbage-collector write barriers on Linux.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the study: every barrier on the same work; writes a CSV, a Markdown report and
    /// SVG plots.
    Study {
        /// CI-sized run (seconds).
        #[arg(long, conflicts_with = "full")]
        quick: bool,
        /// The full sweep (classic GCBench at more heap sizes, more invocations).
        #[arg(long)]
        full: bool,
        /// Output folder.
        #[arg(long, default_value = "barrierlab-out")]
        out: PathBuf,
        /// Barriers to run, comma-separated (`none` always runs: it is the baseline).
        #[arg(long, value_delimiter = ',', value_parser = barrier_parser())]
        trackers: Option<Vec<BarrierKind>>,
        /// Mutator thread counts, comma-separated.
        #[arg(long, value_delimiter = ',')]
        threads: Option<Vec<usize>>,
        /// Heap sizes as multiples of each workload's minimum heap, comma-separated.
        #[arg(long, value_delimiter = ',')]
        heap: Option<Vec<f64>>,
        /// Invocations per end-to-end point.
        #[arg(long)]
        invocations: Option<usize>,
        /// No progress bar.
        #[arg(long)]
        no_progress: bool,
        /// Seed of the run order, the micro's page orders and the bootstrap intervals.
        #[arg(long)]
        seed: Option<u64>,
        /// Pin every measured process, all its threads, to this CPU.
        #[arg(long)]
        pin_cpu: Option<usize>,
        /// Kill a point's process after this many seconds (it becomes an `error` row).
        #[arg(long)]
        timeout_s: Option<u64>,
        /// Skip bdwgc's rows.
        #[arg(long)]
        no_peer: bool,
        /// Print the run's summary (meta.json's fields, the files, what did not run) as
        /// JSON on stdout instead of a sentence.
        #[arg(long)]
        json: bool,
    },
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
        opts: run_cmd::HeapOpts,
    },
    /// Run one workload once on one barrier and print its result on one line (or as
    /// JSON): time, CPU, pauses, MMU, faults and stalls, the dirty split, the uffd-wp
    /// layout and userfaultfd mode, degradations with their cause, fallbacks.
    Run {
        /// The workload.
        #[arg(long)]
        workload: run_cmd::WorkloadName,
        /// The scaled-down parameters (GCBench only; the others' defaults are small).
        #[arg(long)]
        quick: bool,
        /// Scale the operation count so that the run allocates at least ten heaps (the
        /// live set stays as designed).
        #[arg(long)]
        scaled: bool,
        #[command(flatten)]
        opts: run_cmd::HeapOpts,
    },
    /// Render a study folder's report.md and figures again from its study.csv and
    /// meta.json (the machine section from a probe run now).
    Report {
        /// The study's folder.
        dir: PathBuf,
        /// The mode the study ran in (for the invocation count the report states).
        #[arg(long, default_value = "default")]
        mode: String,
    },
    /// Compare two study folders: per metric and point, NEW / OLD of the medians with a
    /// 95% bootstrap interval, flagged where the interval excludes 1.
    Compare {
        /// The baseline study's folder.
        old: PathBuf,
        /// The study to compare with it.
        new: PathBuf,
        /// Metrics to compare, comma-separated (default: time, CPU, pauses, MMU, faults,
        /// fallbacks, the micro's costs).
        #[arg(long, value_delimiter = ',')]
        metrics: Option<Vec<String>>,
        /// Only the points whose interval excludes 1.
        #[arg(long)]
        changed: bool,
    },
    /// Report which write-barrier mechanisms this kernel offers, and why not the others.
    Probe {
        /// One JSON object instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// The child process of `gcbench --peer`: runs GCBench on the peer collector and
    /// prints one record line for the parent (see `barrierlab::peer`).
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
    },
}

/// `gcbench --peer`: re-executes this binary as `peer-child` (the peer must not share a
/// process with barrierlab's heaps: see `barrierlab::peer`), parses its record and prints
/// the summary. Exits 2 when the peer is unavailable (the child has said why), 1 on any
/// other failure.
fn gcbench_peer(peer: Peer, incremental: bool, heap_mib: usize, quick: bool) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot find this program to re-run it as the {peer} child: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(["peer-child", "--peer", peer.name(), "--heap-mib"])
        .arg(heap_mib.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if incremental {
        cmd.arg("--incremental");
    }
    if quick {
        cmd.arg("--quick");
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: could not start `{} peer-child`: {e}", exe.display());
            return ExitCode::FAILURE;
        }
    };
    match out.status.code() {
        Some(0) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            match PeerRun::from_record(stdout.trim()) {
                Ok(r) => {
                    println!("{r}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: the {peer} child's output: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(code) if code == i32::from(peer::EXIT_UNAVAILABLE) => {
            ExitCode::from(peer::EXIT_UNAVAILABLE)
        }
        _ => {
            eprintln!("error: the {peer} child process failed ({})", out.status);
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Probe { json } => run_cmd::probe(json),
        Command::Report { dir, mode } => {
            let mode = match mode.as_str() {
                "quick" => Mode::Quick,
                "default" => Mode::Default,
                "full" => Mode::Full,
                other => {
                    eprintln!("error: --mode {other}: expected quick, default or full");
                    return ExitCode::from(2);
                }
            };
            match barrierlab::study::report::rerender(&dir, mode) {
                Ok(n) => {
                    eprintln!("{n} rows; report: {}", dir.join("report.md").display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Compare {
            old,
            new,
            metrics,
            changed,
        } => {
            use barrierlab::study::compare;
            let read =
                |dir: &PathBuf| compare::read_rows(dir).inspect_err(|e| eprintln!("error: {e}"));
            let (Ok(o), Ok(n)) = (read(&old), read(&new)) else {
                return ExitCode::FAILURE;
            };
            let metrics: Vec<String> =
                metrics.unwrap_or_else(|| compare::HEADLINE_METRICS.map(String::from).to_vec());
            let names: Vec<&str> = metrics.iter().map(String::as_str).collect();
            let mut cmp = compare::compare(&o, &n, &names);
            if changed {
                cmp.retain(|c| c.verdict() != "no difference measured");
            }
            print!("{}", compare::render(&cmp, &old, &new));
            ExitCode::SUCCESS
        }
        Command::Gcbench {
            peer: Some(peer),
            incremental,
            quick,
            opts,
        } => gcbench_peer(peer, incremental, opts.heap_mib as usize, quick),
        Command::PeerChild {
            peer,
            incremental,
            heap_mib,
            quick,
        } => {
            let cfg = PeerConfig {
                incremental,
                heap_bytes: heap_mib << 20,
                params: if quick {
                    GcBenchParams::QUICK
                } else {
                    GcBenchParams::CLASSIC
                },
            };
            match peer::run(peer, &cfg) {
                Ok(r) => {
                    println!("{}", r.to_record());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    if matches!(e, barrierlab::Error::Unavailable { .. }) {
                        ExitCode::from(peer::EXIT_UNAVAILABLE)
                    } else {
                        ExitCode::FAILURE
                    }
                }
            }
        }
        Command::Gcbench {
            quick,
            opts,
            peer: None,
            ..
        } => run_cmd::run(&opts, &run_cmd::WorkloadName::Gcbench.workload(quick)),
        Command::Run {
            workload,
            quick,
            scaled,
            opts,
        } => {
            if quick && workload != run_cmd::WorkloadName::Gcbench {
                eprintln!("error: --quick applies only to --workload gcbench");
                return ExitCode::from(2);
            }
            let mut w = workload.workload(quick);
            if scaled {
                w = w.scaled_to_heap((opts.heap_mib as usize) << 20, opts.threads as usize);
            }
            run_cmd::run(&opts, &w)
        }
        Command::StudyPoint { spec } => {
            match serde_json::from_str::<study::point::PointSpec>(&spec) {
                Ok(spec) => {
                    let out = study::point::run_point(&spec);
                    println!(
                        "{}",
                        serde_json::to_string(&out).expect("the output serialises")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: study-point --spec: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Study {
            quick,
            full,
            out,
            trackers,
            threads,
            heap,
            invocations,
            no_progress,
            seed,
            pin_cpu,
            timeout_s,
            no_peer,
            json,
        } => {
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
            if let Some(n) = invocations {
                cfg.invocations = n;
            }
            cfg.progress = !no_progress;
            cfg.pin_cpu = pin_cpu;
            cfg.peer = !no_peer;
            if let Some(seed) = seed {
                cfg.seed = seed;
            }
            if let Some(t) = timeout_s {
                cfg.timeout = Duration::from_secs(t);
            }
            if let Err(e) = cfg.validate() {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            eprintln!(
                "barrierlab study ({mode:?}): writing into {}",
                cfg.out.display()
            );
            match study::run(&cfg) {
                Ok(r) => {
                    for (v, why) in &r.unavailable {
                        eprintln!("not run: {v}: {why}");
                    }
                    if json {
                        let summary = serde_json::json!({
                            "meta": r.meta,
                            "rows": r.rows.len(),
                            "invalid_rows": r.rows.iter().filter(|m| m.section == "invalid" || m.section == "error").count(),
                            "not_run": r.unavailable,
                            "csv": cfg.out.join("study.csv"),
                            "report": cfg.out.join("report.md"),
                            "meta_json": cfg.out.join("meta.json"),
                        });
                        println!("{summary}");
                    } else {
                        println!(
                            "{} measurements in {:.0} s; report: {}",
                            r.rows.len(),
                            r.meta.elapsed_s,
                            cfg.out.join("report.md").display()
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
