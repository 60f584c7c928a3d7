//! The study in `--quick` mode: it must produce the report, the CSV and the figures, and
//! the numbers in the report's tables must be the medians of the CSV's rows.

use std::collections::HashMap;
use std::path::PathBuf;

use barrierlab::study::report::{fmt, summarize};
use barrierlab::study::{self, Mode, StudyConfig};

struct Row {
    section: String,
    tracker: String,
    workload: String,
    threads: usize,
    heap_mib: f64,
    metric: String,
    value: f64,
}

fn parse_csv(text: &str) -> Vec<Row> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(study::report::CSV_HEADER), "CSV header");
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 8, "CSV row with 8 fields: {l}");
            Row {
                section: f[0].into(),
                tracker: f[1].into(),
                workload: f[2].into(),
                threads: f[3].parse().expect("threads"),
                heap_mib: f[4].parse().expect("heap"),
                metric: f[6].into(),
                value: f[7].parse().expect("value"),
            }
        })
        .collect()
}

#[test]
fn quick_study_writes_a_consistent_report() {
    let out: PathBuf =
        std::env::temp_dir().join(format!("barrierlab-study-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cfg = StudyConfig::new(Mode::Quick, out.clone());
    cfg.invocations = 2;
    cfg.progress = false;
    let result = study::run(&cfg).expect("the quick study runs");
    if std::env::var("BARRIERLAB_REQUIRE_ALL").as_deref() == Ok("1") {
        assert!(
            result.unavailable.is_empty(),
            "trackers not run: {:?}",
            result.unavailable
        );
    }

    let csv = std::fs::read_to_string(out.join("study.csv")).expect("study.csv");
    let rows = parse_csv(&csv);
    assert_eq!(
        rows.len(),
        result.rows.len(),
        "every measurement is in the CSV"
    );
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    for fig in ["crossover.svg", "pauses.svg", "mmu.svg", "heapmap.svg"] {
        let svg = std::fs::read_to_string(out.join(fig)).unwrap_or_else(|e| panic!("{fig}: {e}"));
        assert!(
            svg.contains("<svg") && svg.contains("</svg>"),
            "{fig} is an SVG document"
        );
        assert!(
            report.contains(&format!("]({fig})")),
            "the report shows {fig}"
        );
        assert!(
            svg.contains("polyline") || svg.contains("<path") || svg.contains("<rect"),
            "{fig} has data"
        );
    }

    // Every end-to-end table row: the wall time is the median (and min–max) of the CSV.
    let mut walls: HashMap<(String, String, usize, String), Vec<f64>> = HashMap::new();
    for r in rows
        .iter()
        .filter(|r| r.section == "macro" && r.metric == "wall_ms")
    {
        walls
            .entry((
                r.tracker.clone(),
                r.workload.clone(),
                r.threads,
                fmt(r.heap_mib),
            ))
            .or_default()
            .push(r.value);
    }
    assert!(!walls.is_empty(), "the study ran end-to-end points");
    for ((tracker, workload, threads, heap), values) in &walls {
        let s = summarize(values).expect("values");
        let heading = format!("### {workload}, {threads} thread(s), {heap} MiB heap");
        let section = report
            .split("\n### ")
            .find(|sec| format!("### {sec}").starts_with(&heading))
            .unwrap_or_else(|| panic!("no section {heading}"));
        let line = section
            .lines()
            .find(|l| l.starts_with(&format!("| {tracker} |")))
            .unwrap_or_else(|| panic!("no row for {tracker} under {heading}"));
        let expected = if s.n > 1 {
            format!(
                "| {tracker} | {} [{}–{}] |",
                fmt(s.median),
                fmt(s.min),
                fmt(s.max)
            )
        } else {
            format!("| {tracker} | {} |", fmt(s.median))
        };
        assert!(
            line.starts_with(&expected),
            "{heading}: expected `{expected}`, report has `{line}`"
        );
    }

    // The micro table: every tracker has a row, and the crossover table names each page
    // tracker.
    for r in rows.iter().filter(|r| r.section == "micro") {
        assert!(
            report.contains(&format!("| {} |", r.tracker)),
            "micro row for {}",
            r.tracker
        );
    }
    assert!(report.contains("## Crossover with the card table"));
    assert!(report.contains("| kernel |"), "the machine is recorded");
    let _ = std::fs::remove_dir_all(&out);
}
