//! The write-up stays reproducible: every figure it shows exists, every table it quotes is
//! in the committed report, and the command it names still runs (in `--quick` mode).

use std::path::Path;
use std::process::Command;

const PAPER: &str = "papers/write-barriers-on-linux.md";
const COMMAND: &str = "cargo run --release -- study --out papers/results";

fn paper() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join(PAPER)).expect("the paper exists")
}

#[test]
fn every_figure_the_paper_shows_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("papers");
    let text = paper();
    let mut figures = 0;
    for chunk in text.split("](").skip(1) {
        let target = chunk.split(')').next().unwrap_or_default();
        if target.ends_with(".svg") || target.ends_with(".md") || target.ends_with(".csv") {
            assert!(
                root.join(target).is_file(),
                "the paper links {target}, which is missing"
            );
            if target.ends_with(".svg") {
                let svg = std::fs::read_to_string(root.join(target)).expect("readable");
                assert!(svg.contains("</svg>"), "{target} is a complete SVG");
                figures += 1;
            }
        }
    }
    assert!(
        figures >= 3,
        "the paper shows the study's figures ({figures} found)"
    );
    assert!(
        !text.contains("RESULTS_"),
        "the paper has no unfilled placeholder"
    );
}

#[test]
fn the_papers_command_runs_in_quick_mode() {
    assert!(paper().contains(COMMAND), "the paper names `{COMMAND}`");
    let out = std::env::temp_dir().join(format!("barrierlab-paper-test-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_barrierlab"))
        .args([
            "study",
            "--quick",
            "--no-progress",
            "--trackers",
            "card-table,uffd-wp-async",
            "--out",
        ])
        .arg(&out)
        .status()
        .expect("the binary runs");
    assert!(status.success(), "`study --quick` failed: {status}");
    for f in ["report.md", "study.csv", "crossover.svg"] {
        assert!(out.join(f).is_file(), "`study --quick` wrote no {f}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
