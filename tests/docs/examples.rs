//! One test per example: build every example once (release), run each binary under a
//! timeout, and check that it exits 0 and prints a line it must print.
//!
//! The examples handle a missing kernel feature by printing the reason and exiting 0, so
//! each test accepts either the line the example prints when the mechanism works or the
//! line it prints when it does not, and says which one it saw.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Once, RwLock};
use std::time::Duration;

use crate::support::binary::run_command;

/// A run that takes longer than this is a hang (a fault nobody serves), not a slow run.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Building all examples from scratch in release mode.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

static BUILD: Once = Once::new();

/// Examples whose output depends on timing (`lost_object`: the program must run while
/// the collector marks) or on what else runs (`tlb_shootdown` counts the machine's TLB
/// shootdowns) run alone, the others side by side: a writer of this lock runs alone.
static ALONE: RwLock<()> = RwLock::new(());

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where `cargo build --release --examples` puts the binaries.
fn examples_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_relative() {
                manifest_dir().join(t)
            } else {
                t
            }
        })
        .unwrap_or_else(|| manifest_dir().join("target"));
    target.join("release").join("examples")
}

/// Builds every example once per test process; the other tests wait for it.
fn build_examples() {
    BUILD.call_once(|| {
        // The cargo running this test (it sets CARGO), else the one that built it.
        let cargo = std::env::var("CARGO")
            .ok()
            .or_else(|| option_env!("CARGO").map(String::from))
            .unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--release", "--examples"])
            .current_dir(manifest_dir());
        let out = run_command(cmd, "cargo build --release --examples", BUILD_TIMEOUT);
        assert!(
            out.success(),
            "cargo build --release --examples failed:\n{}",
            out.stderr
        );
    });
}

/// Runs example `name` and checks that it exits 0 and that its output contains one of
/// `expected` (the first is what it prints when its mechanism works). Returns stdout.
fn run_example(name: &str, expected: &[&str]) -> String {
    build_examples();
    let bin = examples_dir().join(name);
    assert!(bin.exists(), "{} was not built", bin.display());
    let out = if name == "lost_object" || name == "tlb_shootdown" {
        let _alone = ALONE.write().unwrap_or_else(|e| e.into_inner());
        run_command(Command::new(&bin), name, RUN_TIMEOUT)
    } else {
        let _shared = ALONE.read().unwrap_or_else(|e| e.into_inner());
        run_command(Command::new(&bin), name, RUN_TIMEOUT)
    };
    assert!(
        out.success(),
        "example {name} exited with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
    let found = expected.iter().position(|e| out.stdout.contains(e));
    match found {
        Some(0) => {}
        Some(i) => eprintln!("example {name}: ran its fallback ({:?})", expected[i]),
        None => panic!(
            "example {name} printed none of {expected:?}\nstdout:\n{}",
            out.stdout
        ),
    }
    out.stdout
}

/// The number after `name` in `line` (`name` with its spaces, e.g. `" cycles "`).
fn field(line: &str, name: &str) -> u64 {
    let at = line
        .find(name)
        .unwrap_or_else(|| panic!("no {name:?} in\n{line}"));
    let word = line[at + name.len()..]
        .split_whitespace()
        .next()
        .expect("a number");
    word.parse()
        .unwrap_or_else(|_| panic!("{name} {word:?} in\n{line}"))
}

/// The lines of `out` that start with `prefix`.
fn lines_starting<'a>(out: &'a str, prefix: &'a str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn quickstart() {
    let out = run_example("quickstart", &["max pause"]);
    // Every barrier that needs nothing from the kernel always runs.
    for kind in ["none", "card-table"] {
        assert_eq!(lines_starting(&out, kind).len(), 1, "{kind}:\n{out}");
    }
    for line in out.lines().filter(|l| l.contains(" cycles ")) {
        let none = line.starts_with("none ");
        let pauses = if none { 5 } else { 10 };
        let expect = format!("cycles  5  pauses {pauses:>2}  stores ");
        assert!(line.contains(&expect), "expected `{expect}` in\n{line}");
        let field = |name: &str| -> u64 {
            let rest = &line[line.find(name).expect(name) + name.len()..];
            let word = rest.split_whitespace().next().expect("a number");
            word.parse()
                .unwrap_or_else(|_| panic!("{name} {word:?} in\n{line}"))
        };
        assert!(field(" stores ") > 0, "the program made no store:\n{line}");
        // `none` stops the world for each whole cycle: nothing to record. Every barrier
        // saw the program write during its cycles' marking and recorded something.
        if none {
            assert_eq!(field(" recorded "), 0, "{line}");
        } else {
            assert!(
                field(" recorded ") > 0,
                "a barrier recorded nothing:\n{line}"
            );
        }
    }
}

#[test]
fn embedding() {
    let out = run_example("embedding", &["checksum"]);
    let rows: Vec<&str> = out.lines().filter(|l| l.contains(" checksum ")).collect();
    for kind in ["none", "card-table"] {
        assert_eq!(lines_starting(&out, kind).len(), 1, "{kind}:\n{out}");
    }
    // The same seed makes the same replacements: the same tree under every barrier.
    let sums: Vec<u64> = rows.iter().map(|l| field(l, " checksum ")).collect();
    assert!(sums.windows(2).all(|w| w[0] == w[1]), "{out}");
    for line in &rows {
        // The mutation phase alone (`Stats::since`) collected: its statistics are not
        // the build's.
        assert!(
            field(line, " cycles ") > 0,
            "no cycle in the steady state:\n{line}"
        );
    }
}

#[test]
fn lost_object() {
    let out = run_example("lost_object", &["record lost"]);
    assert!(out.contains("card-table      record lost"), "{out}");
    let rows: Vec<&str> = out.lines().filter(|l| l.contains(" cycles ")).collect();
    // Every barrier that ran: the bug's row(s), each followed by the run as built.
    assert!(rows.len() >= 2 && rows.len() % 2 == 0, "{out}");
    for pair in rows.chunks(2) {
        let (buggy, clean) = (pair[0], pair[1]);
        assert!(
            buggy.contains("record lost") || buggy.contains("frontier forgotten"),
            "{out}"
        );
        assert!(clean.contains("as built"), "{out}");
        // Both runs moved cargo while the collector marked; the bug lost some of it, the
        // barrier as built none, over at least as many cycles.
        for line in pair {
            assert!(field(line, " moves ") > 0, "no move while marking:\n{line}");
        }
        assert!(field(buggy, " violations ") > 0, "bug not caught:\n{buggy}");
        assert_eq!(field(clean, " violations "), 0, "{clean}");
        assert!(
            field(clean, " cycles ") >= field(buggy, " cycles ").max(10),
            "{out}"
        );
    }
    // The frontier rule is shown on the page trackers that have it.
    if out.contains("mprotect        record lost") {
        assert!(out.contains("mprotect        frontier forgotten"), "{out}");
    }
}

#[test]
fn card_table() {
    let out = run_example("card_table", &["harvest -> dirty cards [0, 1, 8]"]);
    assert!(
        out.contains("dirty cards: card 0 [+0x0000, +0x0200)"),
        "{out}"
    );
    assert!(out.contains("next harvest -> dirty cards [1]"), "{out}");
}

#[test]
fn uffd_wp_fault() {
    let out = run_example(
        "uffd_wp_fault",
        &[
            "fault: page  0",
            "userfaultfd write-protect is unavailable here",
        ],
    );
    if out.contains("fault: page  0") {
        assert!(out.contains("WRITE|WP"), "{out}");
        assert!(
            out.contains("dirty set: pages [0, 2, 3, 5, 8, 9, 10, 11, 13, 14]"),
            "{out}"
        );
        assert!(out.contains("writers finished: 2 of 2"), "{out}");
    }
}

#[test]
fn pagemap_scan() {
    let out = run_example(
        "pagemap_scan",
        &[
            "written: pages 20..=23",
            "async write-protect is unavailable here",
        ],
    );
    if out.contains("written: pages 20..=23") {
        // A harvest re-protects what it returns: the next one finds nothing.
        let again = lines_starting(&out, "harvest again");
        assert!(
            again.len() == 2 && again.iter().all(|l| l.ends_with("nothing")),
            "{out}"
        );
        assert!(out.contains("written: pages 11..=12"), "{out}");
    }
}

#[test]
fn mprotect_segv() {
    let out = run_example(
        "mprotect_segv",
        &[
            "harvest with re-arm -> dirty pages [1, 3, 4, 5, 9, 14]",
            "mprotect is unavailable",
        ],
    );
    if out.contains("dirty pages [1, 3, 4, 5, 9, 14]") {
        assert!(
            out.contains("harvest with re-arm -> dirty pages [3]"),
            "{out}"
        );
        assert!(out.contains("after the writes (split)"), "{out}");
    }
}

#[test]
fn crossover() {
    let out = run_example("crossover", &["stores/page"]);
    assert!(out.contains("card-table"), "{out}");
}

#[test]
fn tlb_shootdown() {
    let out = run_example(
        "tlb_shootdown",
        &["sibling runs", "one CPU allowed", "no TLB row"],
    );
    if !out.contains("sibling runs") {
        return;
    }
    for case in ["alone", "sibling sleeps", "sibling runs"] {
        let line = lines_starting(&out, case);
        assert_eq!(line.len(), 1, "one `{case}` row:\n{out}");
        // Two cells of "<time> µs <rate> IPI/page" (or "unavailable" for userfaultfd).
        let cells = line[0].matches(" µs ").count();
        assert!(cells >= 1, "no measured cell in `{}`", line[0]);
        for w in line[0].split_whitespace().filter(|w| w.contains('.')) {
            let v: f64 = w
                .parse()
                .unwrap_or_else(|_| panic!("{w:?} in `{}`", line[0]));
            assert!(v.is_finite() && v >= 0.0, "{w} in `{}`", line[0]);
        }
    }
}
