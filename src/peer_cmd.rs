//! The peer on the command line: `gcbench --peer` and `run --study-workload
//! binary-trees-l<MiB> --peer`, which re-execute this binary as the hidden `peer-child`
//! (the peer must not share a process with barrierlab's heaps: see `barrierlab::peer`),
//! parse its record and print the summary; and the child itself.

use std::process::{ExitCode, Stdio};

use barrierlab::peer::{self, Peer, PeerConfig, PeerRun, PeerWorkload};
use barrierlab::workload::{BinaryTreesParams, GcBenchParams, Workload};
use clap::ArgMatches;
use clap::parser::ValueSource;

use crate::{emit, warn};

/// The exit status of a bad combination of flags (as `run`'s other flag errors).
const EXIT_USAGE: u8 = 2;

/// What `run --peer` takes besides `--peer`: the rest of `run`'s flags configure
/// barrierlab's own heap and barrier, which the peer does not use.
const RUN_PEER_FLAGS: &str =
    "--study-workload binary-trees-l<MiB>, --heap-mib, --allocated-per-live and --incremental";

/// `run`'s flags that have no meaning on the peer, by clap id, as the user types them.
const NOT_FOR_THE_PEER: [(&str, &str); 14] = [
    ("barrier", "--barrier"),
    ("threads", "--threads"),
    ("layout", "--layout"),
    ("marker_threads", "--marker-threads"),
    ("preclean_pacing_percent", "--preclean-pacing-percent"),
    ("huge_pages", "--huge-pages"),
    ("barrier_only", "--barrier-only"),
    ("duty_period_ms", "--duty-period-ms"),
    ("armed_percent", "--armed-percent"),
    ("log_cycles", "--log-cycles"),
    ("json", "--json"),
    ("quick", "--quick"),
    ("scaled", "--scaled"),
    ("live_mib", "--live-mib"),
];

/// `run --peer`: the peer's form of the study workload `label` (binary trees only), sized
/// as `run --study-workload` sizes barrierlab's own run of it, or why the flags `run`
/// was given (`matches`) do not make a peer run.
pub fn run_workload(
    matches: &ArgMatches,
    label: Option<&str>,
    per_live: Option<f64>,
) -> Result<PeerWorkload, String> {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    if given("workload") {
        return Err(format!(
            "--peer runs a workload of the study, not --workload: give --study-workload \
             binary-trees-l<MiB> (GCBench runs on the peer as `gcbench --peer`); with --peer \
             give only {RUN_PEER_FLAGS}"
        ));
    }
    if let Some((_, flag)) = NOT_FOR_THE_PEER.iter().find(|(id, _)| given(id)) {
        return Err(format!(
            "{flag} does not apply with --peer, which runs the workload on the peer's own \
             collector in one thread (compare it with a run of barrierlab without --peer, \
             e.g. --barrier none); with --peer give only {RUN_PEER_FLAGS}"
        ));
    }
    let label = label.ok_or("--peer needs --study-workload binary-trees-l<MiB>")?;
    let w = crate::run_cmd::study_workload(label, per_live, 1)
        .map_err(|why| format!("--study-workload: {why}"))?;
    match w {
        Workload::BinaryTrees(p) => Ok(PeerWorkload::BinaryTrees(p)),
        _ => Err(format!(
            "--peer runs binary trees only (--study-workload binary-trees-l<MiB>), not \
             `{label}`; GCBench runs on the peer as `gcbench --peer`"
        )),
    }
}

/// Parses the child's `--binary-trees DEPTH,SUBTREE,OPERATIONS,SWAPS,SEED`.
pub fn parse_binary_trees(s: &str) -> Result<BinaryTreesParams, String> {
    let n: Vec<u64> = s
        .split(',')
        .map(|v| v.parse::<u64>().map_err(|e| format!("`{v}` in `{s}`: {e}")))
        .collect::<Result<_, _>>()?;
    let [depth, subtree_depth, operations, swaps, seed] = n[..] else {
        return Err(format!(
            "`{s}`: expected DEPTH,SUBTREE,OPERATIONS,SWAPS,SEED"
        ));
    };
    let small =
        |v: u64, what: &str| u32::try_from(v).map_err(|_| format!("{what} `{v}` too large"));
    Ok(BinaryTreesParams {
        depth: small(depth, "depth")?,
        subtree_depth: small(subtree_depth, "subtree depth")?,
        operations,
        swaps: small(swaps, "swaps")?,
        seed,
    })
}

/// The child's arguments that say which workload to run (GCBench: the quick parameters,
/// or else the classic ones, one pass, as `gcbench --peer` offers).
fn workload_args(w: &PeerWorkload) -> Vec<String> {
    match w {
        PeerWorkload::GcBench(p) if *p == GcBenchParams::QUICK => vec!["--quick".into()],
        PeerWorkload::GcBench(_) => vec![],
        PeerWorkload::BinaryTrees(p) => vec![
            "--binary-trees".into(),
            format!(
                "{},{},{},{},{}",
                p.depth, p.subtree_depth, p.operations, p.swaps, p.seed
            ),
        ],
    }
}

/// Re-executes this binary as `peer-child` to run `workload` on `peer`, parses its record
/// and prints the summary. Exits 2 when the peer is unavailable (the child has said why),
/// 1 on any other failure, and 1 when the peer ran no collection (not a measurement of
/// one).
pub fn parent(peer: Peer, incremental: bool, heap_mib: usize, workload: &PeerWorkload) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            warn(&format!(
                "error: cannot find this program to re-run it as the {peer} child: {e}"
            ));
            return ExitCode::FAILURE;
        }
    };
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(["peer-child", "--peer", peer.name(), "--heap-mib"])
        .arg(heap_mib.to_string())
        .args(workload_args(workload))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if incremental {
        cmd.arg("--incremental");
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            warn(&format!(
                "error: could not start `{} peer-child`: {e}",
                exe.display()
            ));
            return ExitCode::FAILURE;
        }
    };
    match out.status.code() {
        Some(0) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            match PeerRun::from_record(stdout.trim()) {
                Ok(r) if r.cycles == 0 => {
                    warn(&format!(
                        "error: {}",
                        peer::no_collection_message(peer, workload, heap_mib)
                    ));
                    ExitCode::FAILURE
                }
                Ok(r) => emit(&format!("{r}\n")),
                Err(e) => {
                    warn(&format!("error: the {peer} child's output: {e}"));
                    ExitCode::FAILURE
                }
            }
        }
        Some(code) if code == i32::from(peer::EXIT_UNAVAILABLE) => {
            ExitCode::from(peer::EXIT_UNAVAILABLE)
        }
        _ => {
            warn(&format!(
                "error: the {peer} child process failed ({})",
                out.status
            ));
            ExitCode::FAILURE
        }
    }
}

/// `peer-child`: runs `workload` on `peer` in this process and prints the record line.
pub fn child(peer: Peer, incremental: bool, heap_mib: usize, workload: PeerWorkload) -> ExitCode {
    let cfg = PeerConfig {
        incremental,
        heap_bytes: heap_mib << 20,
        workload,
    };
    match peer::run(peer, &cfg) {
        Ok(r) => emit(&format!("{}\n", r.to_record())),
        Err(e) => {
            warn(&format!("error: {e}"));
            if matches!(e, barrierlab::Error::Unavailable { .. }) {
                ExitCode::from(peer::EXIT_UNAVAILABLE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A bad combination of flags: the message, exit 2.
pub fn usage_error(why: &str) -> ExitCode {
    warn(&format!("error: {why}"));
    ExitCode::from(EXIT_USAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_trees_parameters_reach_the_child_unchanged() {
        let p = BinaryTreesParams {
            depth: 21,
            subtree_depth: 5,
            operations: 1_234_567_890_123,
            swaps: 2,
            seed: u64::MAX,
        };
        let args = workload_args(&PeerWorkload::BinaryTrees(p));
        assert_eq!(args[0], "--binary-trees");
        assert_eq!(parse_binary_trees(&args[1]), Ok(p));
        assert!(
            parse_binary_trees("1,2,3")
                .unwrap_err()
                .contains("expected")
        );
        assert!(parse_binary_trees("1,2,x,4,5").is_err());
    }
}
