//! The paper's figures exist, and the command it names runs in `--quick` mode.

use std::process::Command;

use barrierlab::study::summary::Summary;

use super::markdown::sections;
use super::results::{end_to_end_errors, meta_problem, summary_errors};
use super::{COMMAND, paper, read_rows, root};

/// Every figure, report and CSV the paper links exists (each SVG complete), and no
/// placeholder is left unfilled.
#[test]
fn every_figure_the_paper_shows_exists() {
    let root = root().join("papers");
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

/// The paper names the command that made run 1, and the study it runs works in `--quick`
/// mode: what it writes passes the checks the stored runs pass.
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
    for f in ["report.md", "summary.json", "study.csv", "crossover.svg"] {
        assert!(out.join(f).is_file(), "`study --quick` wrote no {f}");
    }
    // The checks of the stored results hold for what the current code writes.
    let report = sections(&std::fs::read_to_string(out.join("report.md")).expect("readable"));
    let rows = read_rows(&out).unwrap_or_else(|e| panic!("{e}"));
    let (checked, errors) = end_to_end_errors(&report, &rows);
    assert!(
        checked > 0 && errors.is_empty(),
        "`study --quick`'s report disagrees with its CSV ({checked} rows checked):\n{}",
        errors.join("\n")
    );
    let meta =
        std::fs::read_to_string(out.join("meta.json")).expect("`study --quick` wrote meta.json");
    assert_eq!(meta_problem(&meta), None);
    let summary = Summary::load(&out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary_errors(&report, &summary), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&out);
}
