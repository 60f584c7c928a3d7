//! The stored results, run by run: each report against its CSV, its `meta.json` and its
//! `summary.json`. (The runs together, and their comparison, are checked in `runs.rs`.)

use barrierlab::study::Metric;
use barrierlab::study::data::{CSV_HEADER, CSV_HEADER_V1};
use barrierlab::study::format::fmt;
use barrierlab::study::stats::median;
use barrierlab::study::summary::{Cell, Summary};

use super::markdown::{Section, sections};
use super::marker_samples::{end_to_end, estimate, ratio, table, text};
use super::{
    COMMAND, Measurement, QUOTES_THE_REPORT, RESULTS, RUNS, paper, read, read_rows, run_dir,
    run_path,
};

/// A report in the study's format, for the checker's own test.
const SAMPLE_REPORT: &str = "# barrierlab study

## End to end

### gcbench, 1 thread(s), 24.0 MiB heap (2.00 times the minimum)

| tracker | n | wall ms | wall ÷ none | | CPU mut / coll / service ms |
|---|---|---|---|---|---|
| none | 3 | 100 [90.0–110] | baseline | | 50.0 / 20.0 / – |
| card-table | 3 | 120 [110–130] | 1.20× [1.10–1.30] | slower | 60.0 / 20.0 / – |
| uffd-wp[thread] | 2 | 101 [95.0–108] | 1.01× [0.950–1.08] | no difference measured | 51.0 / 20.0 / 3.00 |

### Dirty granules by cause

| tracker | delta ns |
|---|---|
| card-table | -0.010 [-0.090–0.090] |
";

/// (workload, threads, heap MiB as printed) of an end-to-end table's heading:
/// `gcbench-d16, 1 thread(s), 24.0 MiB heap (2.00 times the minimum)`.
fn point(heading: &str) -> Option<(&str, usize, &str)> {
    let mut parts = heading.splitn(3, ", ");
    let workload = parts.next()?;
    let threads = parts.next()?.strip_suffix(" thread(s)")?.parse().ok()?;
    let heap = parts.next()?.split_once(" MiB heap")?.0;
    Some((workload, threads, heap))
}

/// The report's end-to-end points: the sections under `## End to end` whose heading
/// names a point, with the point.
fn end_to_end_points(report: &[Section]) -> Vec<(&Section, (&str, usize, &str))> {
    let (mut out, mut inside) = (Vec::new(), false);
    for s in report {
        if s.level <= 2 {
            inside = s.level == 2 && s.heading == "End to end";
        } else if let Some(p) = point(&s.heading).filter(|_| inside) {
            out.push((s, p));
        }
    }
    out
}

/// Checks every end-to-end table's `n` and `wall ms` estimate against the CSV's rows:
/// how many table rows were checked, and what disagrees.
pub(crate) fn end_to_end_errors(report: &[Section], rows: &[Measurement]) -> (usize, Vec<String>) {
    let (mut checked, mut errors) = (0, Vec::new());
    for (s, (workload, threads, heap)) in end_to_end_points(report) {
        let Some(t) = s.tables.first() else {
            errors.push(format!("`{}` has no table", s.heading));
            continue;
        };
        let column = |name: &str| t.header.iter().position(|h| h == name);
        let (Some(n_at), Some(wall_at)) = (column("n"), column("wall ms")) else {
            errors.push(format!(
                "`{}`'s table has no `n` or no `wall ms` column",
                s.heading
            ));
            continue;
        };
        for row in &t.rows {
            checked += 1;
            let tracker = &row[0];
            let wall: Vec<f64> = rows
                .iter()
                .filter(|r| {
                    r.section == barrierlab::study::Section::Macro
                        && r.tracker == *tracker
                        && r.workload == workload
                        && r.threads == threads
                        && fmt(r.heap_mib) == heap
                        && r.metric == Metric::WallMs
                })
                .map(|r| r.value)
                .collect();
            let cell = |k: usize| row.get(k).map_or("", String::as_str);
            let n = wall.len().to_string();
            if cell(n_at) != n {
                errors.push(format!(
                    "`{}` / {tracker}: n is `{}`, the CSV has {n} wall_ms rows",
                    s.heading,
                    cell(n_at)
                ));
            }
            let estimate = cell(wall_at).split(" [").next().unwrap_or_default();
            let median = fmt(median(&wall));
            if estimate != median {
                errors.push(format!(
                    "`{}` / {tracker}: wall ms is `{estimate}`, the CSV's median is {median}",
                    s.heading
                ));
            }
        }
    }
    (checked, errors)
}

/// Results in a format older than this test's: a notice while the paper does not quote
/// the results, a failure once it does.
fn stale(why: &str) {
    let msg = format!(
        "{RESULTS}/ predates the current study format ({why}): regenerate each run with \
         `{COMMAND}` (and the others' folders)"
    );
    assert!(!paper().contains(QUOTES_THE_REPORT), "{msg}");
    eprintln!("NOTICE: {msg}; not checked until the paper quotes the results");
}

/// Run `n`'s stored report and rows, or why they predate the current format.
fn stored_results(n: usize) -> Result<(Vec<Section>, Vec<Measurement>), String> {
    let dir = run_dir(n);
    let md = std::fs::read_to_string(run_path(n).join("report.md"))
        .map_err(|e| format!("{dir}/report.md: {e}"))?;
    let report = sections(&md);
    if !report
        .iter()
        .any(|s| s.level == 2 && s.heading == "End to end")
    {
        return Err(format!("{dir}/report.md has no `## End to end` section"));
    }
    let csv = read(&format!("{dir}/study.csv"));
    let header = csv.lines().next();
    if header != Some(CSV_HEADER) && header != Some(CSV_HEADER_V1) {
        return Err(format!(
            "{dir}/study.csv's first line is not `{CSV_HEADER}`"
        ));
    }
    let rows = read_rows(&run_path(n)).unwrap_or_else(|e| panic!("{dir}: {e}"));
    Ok((report, rows))
}

/// Each run's `report.md` prints, for every end-to-end point and variant, as many
/// invocations (`n`) and the same median wall time as its `study.csv` holds.
#[test]
fn the_stored_report_agrees_with_its_csv() {
    for n in 1..=RUNS.len() {
        let (report, rows) = match stored_results(n) {
            Ok(r) => r,
            Err(why) => return stale(&why),
        };
        let (checked, errors) = end_to_end_errors(&report, &rows);
        let dir = run_dir(n);
        assert!(
            errors.is_empty(),
            "run {n}: {dir}/report.md disagrees with its study.csv:\n{}",
            errors.join("\n")
        );
        assert!(
            checked > 0,
            "run {n}: {dir}/report.md's `## End to end` has no point's table"
        );
    }
}

/// What is missing from a `meta.json`, if anything.
pub(crate) fn meta_problem(text: &str) -> Option<String> {
    let meta: serde_json::Value = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => return Some(format!("meta.json is not JSON: {e}")),
    };
    // The study's `Meta` writes `command` and `date` as `command_line` and `date_utc`.
    let fields: [&[&str]; 4] = [
        &["commit"],
        &["command", "command_line"],
        &["date", "date_utc"],
        &["seed"],
    ];
    fields
        .iter()
        .find(|names| {
            !names
                .iter()
                .any(|f| meta.get(f).is_some_and(|v| !v.is_null()))
        })
        .map(|names| format!("meta.json has no `{}` field", names.join("` or `")))
}

/// Each run's `meta.json` names its commit, command line, date and seed.
#[test]
fn the_stored_results_say_how_they_were_made() {
    for n in 1..=RUNS.len() {
        let Ok(text) = std::fs::read_to_string(run_path(n).join("meta.json")) else {
            return stale(&format!("{} has no meta.json", run_dir(n)));
        };
        if let Some(problem) = meta_problem(&text) {
            panic!("run {n}: {}/{problem}", run_dir(n));
        }
    }
}

/// The end-to-end checker counts a point's rows of its metric only, and reports a wrong
/// `n` and a wrong median.
#[test]
fn the_report_checker_compares_n_and_the_median_with_the_csv() {
    let row = |tracker: &str, invocation: usize, value: f64| Measurement {
        section: barrierlab::study::Section::Macro,
        tracker: tracker.into(),
        workload: "gcbench".into(),
        threads: 1,
        heap_mib: 24.0,
        invocation,
        round: 0,
        metric: Metric::WallMs,
        value,
        note: String::new(),
    };
    let mut rows = vec![
        row("none", 0, 90.0),
        row("none", 1, 100.0),
        row("none", 2, 110.0),
        row("card-table", 0, 110.0),
        row("card-table", 1, 120.0),
        row("card-table", 2, 130.0),
        row("uffd-wp[thread]", 0, 100.0),
        row("uffd-wp[thread]", 1, 102.0),
    ];
    let report = sections(SAMPLE_REPORT);
    assert_eq!(end_to_end_errors(&report, &rows), (3, Vec::new()));
    // Another metric, section or heap size does not count; a changed value does.
    rows.push(Measurement {
        metric: Metric::CpuTotalMs,
        ..row("none", 3, 1.0)
    });
    rows.push(Measurement {
        section: barrierlab::study::Section::Invalid,
        ..row("none", 3, 1.0)
    });
    rows.push(Measurement {
        heap_mib: 48.0,
        ..row("none", 3, 1.0)
    });
    assert_eq!(end_to_end_errors(&report, &rows), (3, Vec::new()));
    rows[4].value = 135.0;
    rows.push(row("none", 3, 100.0));
    let (_, errors) = end_to_end_errors(&report, &rows);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("none: n is `3`, the CSV has 4"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("card-table: wall ms is `120`, the CSV's median is 130"),
        "{errors:?}"
    );
}

/// Where `summary` and `report` (the same folder's) disagree on an end-to-end point's
/// `n` or `wall ms`: how many cells were compared, and the disagreements.
pub(crate) fn end_to_end_summary_errors(
    report: &[Section],
    summary: &Summary,
) -> (usize, Vec<String>) {
    let (mut checked, mut errors) = (0, Vec::new());
    for (s, _) in end_to_end_points(report) {
        let (Some(md), Some(json)) = (s.tables.first(), summary.table(&s.heading, 1)) else {
            errors.push(format!(
                "`{}`: no table in report.md or summary.json",
                s.heading
            ));
            continue;
        };
        for row in &md.rows {
            for column in ["n", "wall ms"] {
                let Some(k) = md.header.iter().position(|h| h == column) else {
                    errors.push(format!("{}: report.md has no column `{column}`", s.heading));
                    continue;
                };
                let cell = json.cell(&row[0], column).map(Cell::render);
                if cell.as_deref() != row.get(k).map(String::as_str) {
                    errors.push(format!(
                        "{} / {} / {column}: summary.json {cell:?}, report.md {:?}",
                        s.heading,
                        row[0],
                        row.get(k)
                    ));
                }
                checked += 1;
            }
        }
    }
    (checked, errors)
}

/// Each run's stored `summary.json` (rendered by `barrierlab report DIR` from the stored
/// CSV) holds its report's end-to-end numbers: for every point's table, each variant's
/// `n` and `wall ms` cells as report.md prints them.
#[test]
fn the_stored_summary_holds_the_reports_end_to_end_numbers() {
    for n in 1..=RUNS.len() {
        let dir = run_dir(n);
        let Ok(summary) = Summary::load(&run_path(n)) else {
            return stale(&format!(
                "{dir} has no summary.json (`barrierlab report {dir}` writes one)"
            ));
        };
        let report = sections(&read(&format!("{dir}/report.md")));
        let (checked, errors) = end_to_end_summary_errors(&report, &summary);
        assert!(
            errors.is_empty(),
            "run {n}: {dir}/summary.json and report.md disagree:\n{}",
            errors.join("\n")
        );
        assert!(checked > 0, "run {n}: no end-to-end table was compared");
    }
}

/// Where `summary` and `report` disagree on any table: every table of the report, in
/// file order, is the summary's table of that place, with the same heading, header and
/// cells (as `Cell::render` prints them).
pub(crate) fn summary_errors(report: &[Section], summary: &Summary) -> Vec<String> {
    let md: Vec<(&str, &super::markdown::Table)> = report
        .iter()
        .flat_map(|s| s.tables.iter().map(move |t| (s.heading.as_str(), t)))
        .collect();
    let mut errors = Vec::new();
    if md.len() != summary.tables.len() {
        errors.push(format!(
            "report.md has {} tables, summary.json {}",
            md.len(),
            summary.tables.len()
        ));
    }
    for (k, ((heading, md), json)) in md.iter().zip(&summary.tables).enumerate() {
        let rows: Vec<Vec<String>> = json
            .rows
            .iter()
            .map(|r| r.iter().map(Cell::render).collect())
            .collect();
        if *heading != json.heading || md.header != json.header || md.rows != rows {
            errors.push(format!(
                "table {} (`{heading}` in report.md, `{}` in summary.json) differs",
                k + 1,
                json.heading
            ));
        }
    }
    errors
}

/// Each run's `summary.json`, which the paper's markers read, is what its `report.md`
/// prints, table for table and cell for cell.
#[test]
fn the_stored_summary_is_what_each_report_prints() {
    for n in 1..=RUNS.len() {
        let dir = run_dir(n);
        let summary = Summary::load(&run_path(n)).unwrap_or_else(|e| panic!("run {n}: {e}"));
        let report = sections(&read(&format!("{dir}/report.md")));
        let errors = summary_errors(&report, &summary);
        assert!(
            errors.is_empty(),
            "run {n}: {dir}/summary.json is not what report.md prints:\n{}",
            errors.join("\n")
        );
    }
}

/// SAMPLE_REPORT's tables as `summary.json` holds them.
fn sample_summary() -> Summary {
    let meta = r#"{"commit":"c","version":"0.1.0","command_line":["barrierlab","study"],
        "seed":1,"date_utc":"2026-12-01T12:35:03Z","cpu_model":"x","cpus":2,"kernel":"k",
        "load_before":1.0,"load_after":2.0,"steal_share":0.0,"elapsed_s":9.0,"warnings":[]}"#;
    // The sample report's end-to-end table is the marker samples' (a ratio's verdict is
    // not printed, so only the cells the report shows must agree).
    let e2e = end_to_end(ratio(1.2, 1.1, 1.3, "slower"));
    let granules = table(
        "Dirty granules by cause",
        1,
        &["tracker", "delta ns"],
        vec![vec![text("card-table"), estimate(-0.01, -0.09, 0.09)]],
    );
    Summary {
        meta: serde_json::from_str(meta).expect("a meta.json"),
        tables: vec![e2e, granules],
    }
}

/// The checkers of a summary against its report pass on a sample and its report, and
/// each finds one changed cell.
#[test]
fn the_summary_checkers_find_a_cell_that_differs_from_the_report() {
    let report = sections(SAMPLE_REPORT);
    let mut summary = sample_summary();
    assert_eq!(summary_errors(&report, &summary), Vec::<String>::new());
    assert_eq!(
        end_to_end_summary_errors(&report, &summary),
        (6, Vec::new())
    );
    summary.tables[0].rows[1][2] = Cell::Estimate {
        estimate: 121.0,
        lo: 110.0,
        hi: 130.0,
    };
    summary.tables[1].rows[0][1] = Cell::number(0.01);
    assert_eq!(summary_errors(&report, &summary).len(), 2);
    let (checked, errors) = end_to_end_summary_errors(&report, &summary);
    assert_eq!((checked, errors.len()), (6, 1), "{errors:?}");
    summary.tables.pop();
    assert_eq!(summary_errors(&report, &summary).len(), 2);
}
