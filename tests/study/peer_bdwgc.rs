//! `barrierlab gcbench --peer bdwgc`, driven through the real binary: both modes run the
//! quick GCBench to the end, collect, and print a summary that parses; a library that
//! cannot be loaded is an error that says what to install.
//!
//! The collector comes from `libgc.so.1` at run time. Where it is missing, the runs skip
//! with the reason, or fail under `BARRIERLAB_REQUIRE_ALL=1` (CI installs `libgc1`). Each
//! command runs under a deadline and is killed, with its child, if it passes it.

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use support::binary::{self, Output};
use support::require_all;

/// How long one run of the binary may take (a quick one takes well under a second here).
const DEADLINE: Duration = Duration::from_secs(120);

/// A quick run at this heap collects several times (6 stop-the-world cycles here).
const QUICK_HEAP_MIB: &str = "4";

/// Skips (returns `true`) when the run says bdwgc is unavailable, or fails under
/// `BARRIERLAB_REQUIRE_ALL=1` (the binary-trees port's tests use it too).
pub(crate) fn unavailable(test: &str, o: &Output) -> bool {
    if o.code != Some(2) || !o.stderr.contains("bdwgc is unavailable") {
        return false;
    }
    let reason = o.stderr.trim();
    assert!(
        !require_all(),
        "{test}: bdwgc required (BARRIERLAB_REQUIRE_ALL=1): {reason}"
    );
    eprintln!("SKIP: {test}: {reason}");
    true
}

fn number(fields: &HashMap<String, String>, key: &str, unit: &str) -> f64 {
    let v = fields
        .get(key)
        .unwrap_or_else(|| panic!("no `{key}` in {fields:?}"));
    v.strip_suffix(unit)
        .unwrap_or_else(|| panic!("`{key}={v}` lacks the unit `{unit}`"))
        .parse()
        .unwrap_or_else(|e| panic!("`{key}={v}`: {e}"))
}

/// Runs the quick GCBench on bdwgc in `mode` and checks the run collected and measured.
fn quick_run(test: &str, extra: &[&str], mode: &str) -> Option<HashMap<String, String>> {
    let mut args = vec![
        "gcbench",
        "--peer",
        "bdwgc",
        "--quick",
        "--heap-mib",
        QUICK_HEAP_MIB,
    ];
    args.extend_from_slice(extra);
    let o = binary::run(&args, &[], DEADLINE);
    if unavailable(test, &o) {
        return None;
    }
    assert_eq!(o.code, Some(0), "exit status; stderr:\n{}", o.stderr);
    let f = o.summary("gcbench peer=bdwgc ");
    assert_eq!(f["mode"], mode, "{f:?}");
    assert_eq!(f["heap"], format!("{QUICK_HEAP_MIB}MiB"), "{f:?}");
    assert!(
        !f["version"].is_empty() && f["version"] != "unknown",
        "{f:?}"
    );
    assert!(number(&f, "total", "ms") > 0.0, "{f:?}");
    // A run that did not collect is not a result.
    assert!(
        number(&f, "cycles", "") > 0.0,
        "no collection at {QUICK_HEAP_MIB} MiB: {f:?}"
    );
    assert!(number(&f, "pauses", "") > 0.0, "no pause recorded: {f:?}");
    assert!(number(&f, "stw", "ms") > 0.0, "{f:?}");
    assert!(number(&f, "max", "us") >= number(&f, "p50", "us"), "{f:?}");
    assert!(
        ["world-stop", "collection"].contains(&f["pause"].as_str()),
        "{f:?}"
    );
    let cap: f64 = QUICK_HEAP_MIB.parse().unwrap();
    assert!(
        number(&f, "heap_final", "MiB") <= cap,
        "the heap outgrew its cap: {f:?}"
    );
    Some(f)
}

#[test]
fn stop_the_world_quick_run_collects() {
    let Some(f) = quick_run("stop_the_world_quick_run_collects", &[], "stw") else {
        return;
    };
    assert_eq!(f["vdb"], "none", "{f:?}");
}

#[test]
fn incremental_quick_run_collects_with_dirty_bits() {
    let Some(f) = quick_run(
        "incremental_quick_run_collects_with_dirty_bits",
        &["--incremental"],
        "incremental",
    ) else {
        return;
    };
    // Soft-dirty where the kernel has it, else mprotect + SIGSEGV.
    assert!(
        ["mprotect", "soft-dirty"].contains(&f["vdb"].as_str()),
        "{f:?}"
    );
}

#[test]
fn a_library_that_does_not_load_is_an_error_naming_libgc1() {
    let missing = "/nonexistent/libgc.so.1";
    let o = binary::run(
        &["gcbench", "--peer", "bdwgc", "--quick"],
        &[("BARRIERLAB_LIBGC", missing)],
        DEADLINE,
    );
    assert!(
        matches!(o.code, Some(1 | 2)),
        "exit status {:?} (1 or 2 expected, never a panic); stderr:\n{}",
        o.code,
        o.stderr
    );
    assert!(o.stdout.trim().is_empty(), "stdout: {}", o.stdout);
    assert!(o.stderr.contains("libgc1"), "stderr:\n{}", o.stderr);
    assert!(o.stderr.contains(missing), "stderr:\n{}", o.stderr);
}
