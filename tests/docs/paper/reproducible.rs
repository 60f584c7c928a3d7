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

/// The paper's abstract and Section 4 are what `papers/generate-results.py` writes from
/// the stored runs, byte for byte: no hand edit to a generated sentence survives (the
/// script's output is cut into the paper at its `<!-- cut -->` lines, the abstract
/// replacing `## Abstract` and the results replacing `## 4. Results` up to `## 5.`).
#[test]
fn the_papers_results_are_what_the_generator_writes() {
    let what = "the_papers_results_are_what_the_generator_writes";
    let out = std::env::temp_dir().join(format!("barrierlab-results-{}.md", std::process::id()));
    let run = Command::new("python3")
        .arg(root().join("papers/generate-results.py"))
        .arg(&out)
        .output();
    let run = match run {
        Ok(run) => run,
        Err(e) => return crate::support::skip_or_fail(what, &format!("python3: {e}")),
    };
    assert!(
        run.status.success(),
        "generate-results.py failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let generated = std::fs::read_to_string(&out).expect("the generator's output");
    let _ = std::fs::remove_file(&out);
    let parts: Vec<&str> = generated.split("<!-- cut -->\n").collect();
    let [abstract_, results, ..] = parts[..] else {
        panic!("the generator's output has no `<!-- cut -->` lines");
    };
    let text = paper();
    let between = |from: &str, to: &str| -> String {
        let start = text.find(from).unwrap_or_else(|| panic!("no `{from}`"));
        let end = start
            + text[start..]
                .find(to)
                .unwrap_or_else(|| panic!("no `{to}`"));
        text[start..end].to_string()
    };
    assert!(
        between("## Abstract", "## 1. ") == abstract_,
        "the paper's abstract is not the generator's: run `python3 papers/generate-results.py \
         /tmp/r.md` and cut it in"
    );
    assert!(
        between("## 4. Results", "## 5. ") == results,
        "the paper's Section 4 is not the generator's: run `python3 papers/generate-results.py \
         /tmp/r.md` and cut it in"
    );
}
