//! `barrierlab run --study-workload binary-trees-l<MiB> --peer bdwgc`, driven through the
//! real binary: the port runs to the end in both modes, collects, and does the same work
//! as barrierlab's own run of the same study workload (the same operations, so the same
//! allocation calls and the same bytes); the flags that make no peer run are errors that
//! say what is supported.
//!
//! Where `libgc.so.1` is missing the runs skip with the reason, or fail under
//! `BARRIERLAB_REQUIRE_ALL=1`. Each command runs under a deadline and is killed, with its
//! child, if it passes it.

use crate::peer_bdwgc::unavailable;
use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use barrierlab::study::config::Mode;
use barrierlab::study::point::find_workload;
use barrierlab::workload::{BinaryTreesParams, Workload};
use support::binary;

/// How long one run of the binary may take (these take well under a second here).
const DEADLINE: Duration = Duration::from_secs(120);

/// The study workload: a 4 MiB long-lived tree (depth 16), its starting work.
const LABEL: &str = "binary-trees-l4";

/// bdwgc's cell for a 24-byte node (see `peer_reference.rs`), which is also barrierlab's.
const NODE_CELL_BYTES: u64 = 32;

/// The parameters `run --study-workload binary-trees-l4` gives barrierlab's own run.
fn params() -> BinaryTreesParams {
    let w = find_workload(Mode::Default, &[4], LABEL).expect("the study has binary-trees-l4");
    match w.at_threads(1) {
        Workload::BinaryTrees(p) => p,
        other => panic!("{LABEL} is {other:?}"),
    }
}

fn count(f: &HashMap<String, String>, key: &str) -> u64 {
    let v = f.get(key).unwrap_or_else(|| panic!("no `{key}` in {f:?}"));
    v.parse()
        .unwrap_or_else(|e| panic!("`{key}={v}` is not a count: {e}"))
}

/// `a` within `permille`/1000 of `b`.
fn close(a: u64, b: u64, permille: u64) -> bool {
    a.abs_diff(b) * 1000 <= b * permille
}

/// Runs the port at `heap_mib`; its summary's fields, or `None` after a skip.
fn peer_run(test: &str, heap_mib: &str, extra: &[&str]) -> Option<HashMap<String, String>> {
    let mut args = vec![
        "run",
        "--study-workload",
        LABEL,
        "--heap-mib",
        heap_mib,
        "--peer",
        "bdwgc",
    ];
    args.extend_from_slice(extra);
    let o = binary::run(&args, &[], DEADLINE);
    if unavailable(test, &o) {
        return None;
    }
    assert_eq!(o.code, Some(0), "exit status; stderr:\n{}", o.stderr);
    let p = params();
    Some(o.summary(&format!("binary-trees-d{} peer=bdwgc ", p.depth)))
}

/// The port's work: every node of the long-lived tree, and one subtree per operation.
fn check_work(f: &HashMap<String, String>) {
    let p = params();
    let subtree = p.subtree_depth.min(p.depth - 1);
    let allocs = BinaryTreesParams::tree_size(p.depth)
        + p.operations * BinaryTreesParams::tree_size(subtree);
    assert_eq!(count(f, "allocs"), allocs, "{p:?}\n{f:?}");
    // bdwgc counts its thread-local free lists as it fills them: close, not exact.
    let bytes = p.setup_bytes() + p.bytes_per_operation() * p.operations;
    assert_eq!(bytes, allocs * NODE_CELL_BYTES, "{p:?}");
    let got = count(f, "alloc_bytes");
    assert!(
        close(got, bytes, 5),
        "alloc_bytes {got}, cells {bytes}\n{f:?}"
    );
    assert!(count(f, "cycles") > 0, "no collection: {f:?}");
}

#[test]
fn stop_the_world_port_collects_and_does_barrierlabs_work() {
    let test = "stop_the_world_port_collects_and_does_barrierlabs_work";
    let Some(f) = peer_run(test, "8", &[]) else {
        return;
    };
    assert_eq!(f["mode"], "stw", "{f:?}");
    assert_eq!(f["heap"], "8MiB", "{f:?}");
    assert_eq!(count(&f, "full"), count(&f, "cycles"), "{f:?}");
    check_work(&f);

    // barrierlab's own run of the same point allocates the same bytes (its JSON gives
    // them in MiB to one decimal).
    let o = binary::run(
        &[
            "run",
            "--study-workload",
            LABEL,
            "--heap-mib",
            "8",
            "--barrier",
            "none",
            "--json",
        ],
        &[],
        DEADLINE,
    );
    assert_eq!(o.code, Some(0), "exit status; stderr:\n{}", o.stderr);
    let j: serde_json::Value = serde_json::from_str(o.stdout.trim()).expect("run's JSON");
    let own = j["allocated_mib"].as_f64().expect("allocated_mib");
    let peer = count(&f, "alloc_bytes") as f64 / (1u64 << 20) as f64;
    assert!(
        (own - peer).abs() <= own * 0.005,
        "barrierlab allocated {own} MiB, the port {peer:.1} MiB\n{j}\n{f:?}"
    );
    assert_eq!(
        j["workload"],
        format!("binary-trees-d{}", params().depth),
        "{j}"
    );
}

#[test]
fn incremental_port_collects_with_dirty_bits() {
    let test = "incremental_port_collects_with_dirty_bits";
    // bdwgc's generational mode keeps garbage marked until a full collection: with this
    // 4 MiB tree it ran out of heap at 2x to 4x the live size here, not at 6x.
    let Some(f) = peer_run(test, "24", &["--incremental"]) else {
        return;
    };
    assert_eq!(f["mode"], "incremental", "{f:?}");
    assert!(
        ["mprotect", "soft-dirty"].contains(&f["vdb"].as_str()),
        "{f:?}"
    );
    check_work(&f);
}

/// Runs `run` with `args` and checks that it is a flag error (exit 2, nothing on stdout)
/// whose message has each of `says`.
fn refused(args: &[&str], says: &[&str]) {
    let o = binary::run(args, &[], DEADLINE);
    assert_eq!(
        o.code,
        Some(2),
        "{args:?}: exit status; stderr:\n{}",
        o.stderr
    );
    assert!(o.stdout.trim().is_empty(), "{args:?}: stdout {}", o.stdout);
    for s in says {
        assert!(o.stderr.contains(s), "{args:?}: no `{s}` in:\n{}", o.stderr);
    }
}

#[test]
fn flags_that_make_no_peer_run_are_errors_naming_what_is_supported() {
    let peer = ["--heap-mib", "8", "--peer", "bdwgc"];
    let with = |args: &[&'static str]| [&["run"][..], args, &peer[..]].concat();
    refused(
        &with(&["--study-workload", "lru-l4"]),
        &["binary-trees-l<MiB>", "`lru-l4`", "gcbench --peer"],
    );
    refused(
        &with(&["--study-workload", "gcbench-l4"]),
        &["binary-trees-l<MiB>", "gcbench --peer"],
    );
    refused(
        &with(&["--workload", "binary-trees"]),
        &["--study-workload binary-trees-l<MiB>", "not --workload"],
    );
    refused(
        &with(&["--study-workload", LABEL, "--barrier", "none"]),
        &[
            "--barrier does not apply with --peer",
            "--allocated-per-live",
        ],
    );
    refused(
        &with(&["--study-workload", LABEL, "--threads", "2"]),
        &["--threads does not apply with --peer"],
    );
    // --incremental belongs to --peer.
    let o = binary::run(
        &["run", "--study-workload", LABEL, "--incremental"],
        &[],
        DEADLINE,
    );
    assert_eq!(o.code, Some(2), "stderr:\n{}", o.stderr);
    assert!(o.stderr.contains("--peer"), "stderr:\n{}", o.stderr);
}

#[test]
fn a_library_that_does_not_load_exits_2_naming_libgc1() {
    let missing = "/nonexistent/libgc.so.1";
    let o = binary::run(
        &[
            "run",
            "--study-workload",
            LABEL,
            "--heap-mib",
            "8",
            "--peer",
            "bdwgc",
        ],
        &[("BARRIERLAB_LIBGC", missing)],
        DEADLINE,
    );
    assert_eq!(o.code, Some(2), "stderr:\n{}", o.stderr);
    assert!(o.stdout.trim().is_empty(), "stdout: {}", o.stdout);
    assert!(
        o.stderr.contains("apt-get install libgc1"),
        "stderr:\n{}",
        o.stderr
    );
    assert!(o.stderr.contains(missing), "stderr:\n{}", o.stderr);
}
