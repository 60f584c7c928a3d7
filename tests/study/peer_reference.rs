//! The C GCBench that the bdwgc peer is checked against (`papers/reference/gcbench.c`):
//! it builds with its Makefile and runs in both modes, and it and `barrierlab gcbench
//! --peer bdwgc` do the same work on the same library — the same allocation calls, and
//! bdwgc's own count of the bytes it handed out agrees. Nothing here is timed.
//!
//! Without `cc`, `make` or bdwgc's headers (`apt-get install libgc-dev`) the tests skip
//! with the reason, or fail under `BARRIERLAB_REQUIRE_ALL=1` (CI installs them). Every
//! command runs under a deadline.

use crate::support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use barrierlab::workload::GcBenchParams;
use support::binary::{self, Output};
use support::require_all;

/// How long a build or one quick run may take.
const DEADLINE: Duration = Duration::from_secs(120);

/// The quick runs' heap: small enough that both modes collect many times.
const HEAP_MIB: &str = "4";

/// bdwgc's cell for a 24-byte node: 16-byte granules, plus the byte it adds so that a
/// pointer just past an object still points into it.
const NODE_CELL_BYTES: u64 = 32;

/// Skips with `reason`, or fails under `BARRIERLAB_REQUIRE_ALL=1`.
fn skip(test: &str, reason: &str) {
    assert!(
        !require_all(),
        "{test}: needed to build the C GCBench (BARRIERLAB_REQUIRE_ALL=1): {reason}"
    );
    eprintln!("SKIP: {test}: {reason}");
}

/// Whether `program --version` runs.
fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds the C GCBench once per test binary, with the Makefile the README documents,
/// into Cargo's scratch directory: its path, or why it could not be built here.
fn c_gcbench() -> &'static Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(|| {
        for tool in ["cc", "make"] {
            if !have(tool) {
                return Err(format!("`{tool}` is not installed"));
            }
        }
        // Cargo's scratch directory for integration tests, under target/: one program,
        // rebuilt by make when the source is newer.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-gcbench");
        std::fs::create_dir_all(&dir).expect("create the build directory");
        let out = dir.join("gcbench");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("papers/reference");
        let mut make = Command::new("make");
        make.arg("-C")
            .arg(&source)
            .arg(format!("OUT={}", out.display()));
        let o = binary::run_command(make, "make -C papers/reference", DEADLINE);
        if !o.success() {
            let missing_headers = o.stderr.contains("gc.h") && o.stderr.contains("No such file");
            let missing_library = o.stderr.contains("cannot find -lgc");
            if missing_headers || missing_library {
                return Err(format!(
                    "bdwgc's development files are missing (apt-get install libgc-dev): {}",
                    o.stderr.trim()
                ));
            }
            panic!(
                "make -C papers/reference failed ({:?}):\n{}\n{}",
                o.code, o.stdout, o.stderr
            );
        }
        Ok(out)
    })
}

/// A summary line's `key=value` fields, after checking that it starts with `prefix`.
fn fields(o: &Output, prefix: &str) -> HashMap<String, String> {
    assert_eq!(o.code, Some(0), "exit status; stderr:\n{}", o.stderr);
    o.summary(prefix)
}

fn count(f: &HashMap<String, String>, key: &str) -> u64 {
    let v = f.get(key).unwrap_or_else(|| panic!("no `{key}` in {f:?}"));
    v.parse()
        .unwrap_or_else(|e| panic!("`{key}={v}` is not a count: {e}"))
}

/// Runs the C GCBench with the quick parameters (`-i`: incremental mode).
fn run_c(program: &Path, incremental: bool) -> HashMap<String, String> {
    let mut c = Command::new(program);
    c.args(["-q", "-m", HEAP_MIB]);
    if incremental {
        c.arg("-i");
    }
    let o = binary::run_command(c, "the C GCBench", DEADLINE);
    fields(&o, "gcbench-c ")
}

/// Runs the peer with the quick parameters; `None` (after skipping) when bdwgc is
/// unavailable.
fn run_peer(test: &str, incremental: bool) -> Option<HashMap<String, String>> {
    let mut args = vec![
        "gcbench",
        "--peer",
        "bdwgc",
        "--quick",
        "--heap-mib",
        HEAP_MIB,
    ];
    if incremental {
        args.push("--incremental");
    }
    let o = binary::run(&args, &[], DEADLINE);
    if o.code == Some(2) && o.stderr.contains("bdwgc is unavailable") {
        skip(test, o.stderr.trim());
        return None;
    }
    Some(fields(&o, "gcbench peer=bdwgc "))
}

/// Allocation calls of one quick GCBench: its nodes and the array.
fn expected_allocs() -> u64 {
    GcBenchParams::QUICK.nodes_allocated() + 1
}

/// The bytes bdwgc hands out for them (cells, and the array rounded to whole granules).
fn expected_cell_bytes() -> u64 {
    let p = GcBenchParams::QUICK;
    p.nodes_allocated() * NODE_CELL_BYTES + (p.array_len as u64 * 8).next_multiple_of(16)
}

/// `a` within `permille`/1000 of `b`.
fn close(a: u64, b: u64, permille: u64) -> bool {
    a.abs_diff(b) * 1000 <= b * permille
}

#[test]
fn the_c_gcbench_builds_and_runs_in_both_modes() {
    let test = "the_c_gcbench_builds_and_runs_in_both_modes";
    let program = match c_gcbench() {
        Ok(p) => p,
        Err(reason) => return skip(test, reason),
    };
    let stw = run_c(program, false);
    assert_eq!(stw["mode"], "stw", "{stw:?}");
    assert_eq!(stw["heap"], format!("{HEAP_MIB}MiB"), "{stw:?}");
    assert_eq!(count(&stw, "allocs"), expected_allocs(), "{stw:?}");
    assert!(count(&stw, "cycles") > 0, "no collection: {stw:?}");
    // Without incremental mode every collection is a full one.
    assert_eq!(count(&stw, "full"), count(&stw, "cycles"), "{stw:?}");
    assert_eq!(count(&stw, "pauses"), count(&stw, "cycles"), "{stw:?}");
    assert_eq!(stw["vdb"], "none", "{stw:?}");

    let inc = run_c(program, true);
    assert_eq!(inc["mode"], "incremental", "{inc:?}");
    assert_eq!(count(&inc, "allocs"), expected_allocs(), "{inc:?}");
    assert!(
        ["mprotect", "soft-dirty"].contains(&inc["vdb"].as_str()),
        "{inc:?}"
    );
    // Generational: most collections are partial.
    assert!(
        count(&inc, "full") < count(&inc, "cycles"),
        "every collection was full: {inc:?}"
    );
}

#[test]
fn the_peer_and_the_c_gcbench_do_the_same_work_on_the_same_library() {
    let test = "the_peer_and_the_c_gcbench_do_the_same_work_on_the_same_library";
    let program = match c_gcbench() {
        Ok(p) => p,
        Err(reason) => return skip(test, reason),
    };
    for incremental in [false, true] {
        let Some(peer) = run_peer(test, incremental) else {
            return;
        };
        let c = run_c(program, incremental);
        let both = format!("peer: {peer:?}\nC: {c:?}");
        for key in ["mode", "version", "vdb", "time_limit", "full_freq"] {
            if let Some(v) = peer.get(key) {
                assert_eq!(Some(v), c.get(key), "`{key}` differs\n{both}");
            }
        }
        assert_eq!(peer["version"], c["version"], "{both}");
        assert_eq!(count(&peer, "allocs"), expected_allocs(), "{both}");
        assert_eq!(count(&c, "allocs"), expected_allocs(), "{both}");
        // bdwgc counts thread-local free lists as it fills them, so the two counts agree
        // to a few free lists, not to the byte.
        let (pb, cb) = (count(&peer, "alloc_bytes"), count(&c, "alloc_bytes"));
        assert!(close(pb, cb, 10), "alloc_bytes {pb} against {cb}\n{both}");
        assert!(
            close(cb, expected_cell_bytes(), 20),
            "alloc_bytes {cb}, cells {}\n{both}",
            expected_cell_bytes()
        );
        for f in [&peer, &c] {
            assert!(count(f, "cycles") > 0, "no collection\n{both}");
        }
        if incremental {
            assert_eq!(peer["generational"], "yes", "{both}");
            assert!(
                ["actual_vdb", "protection_needs"].contains(&peer["vdb_from"].as_str()),
                "{both}"
            );
            assert_eq!(peer["protection_needs"], c["protection_needs"], "{both}");
            for f in [&peer, &c] {
                assert!(
                    count(f, "full") < count(f, "cycles"),
                    "every collection was full\n{both}"
                );
            }
        } else {
            assert_eq!(count(&peer, "full"), count(&peer, "cycles"), "{both}");
        }
        assert!(
            peer["lib"].contains("libgc"),
            "`lib` names no libgc\n{both}"
        );
    }
}
