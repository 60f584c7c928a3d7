//! The stored results: the report against its CSV, `meta.json` and `summary.json`.

use barrierlab::study::Metric;
use barrierlab::study::data::{CSV_HEADER, CSV_HEADER_V1};
use barrierlab::study::format::fmt;
use barrierlab::study::stats::median;

use super::markdown::{Section, sections};
use super::markers::SAMPLE_REPORT;
use super::{COMMAND, Measurement, QUOTES_THE_REPORT, RESULTS, paper, read, read_rows, root};

/// (workload, threads, heap MiB as printed) of an end-to-end table's heading:
/// `gcbench-d16, 1 thread(s), 24.0 MiB heap (2.00 times the minimum)`.
fn point(heading: &str) -> Option<(&str, usize, &str)> {
    let mut parts = heading.splitn(3, ", ");
    let workload = parts.next()?;
    let threads = parts.next()?.strip_suffix(" thread(s)")?.parse().ok()?;
    let heap = parts.next()?.split_once(" MiB heap")?.0;
    Some((workload, threads, heap))
}

/// Checks every end-to-end table's `n` and `wall ms` estimate against the CSV's rows:
/// how many table rows were checked, and what disagrees.
pub(crate) fn end_to_end_errors(report: &[Section], rows: &[Measurement]) -> (usize, Vec<String>) {
    let (mut checked, mut errors, mut inside) = (0, Vec::new(), false);
    for s in report {
        if s.level <= 2 {
            inside = s.level == 2 && s.heading == "End to end";
            continue;
        }
        let Some((workload, threads, heap)) = point(&s.heading).filter(|_| inside) else {
            continue;
        };
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
/// the report yet, a failure once it does.
fn stale(why: &str) {
    let msg = format!(
        "{RESULTS}/ predates the current study format ({why}): regenerate it with `{COMMAND}`"
    );
    assert!(!paper().contains(QUOTES_THE_REPORT), "{msg}");
    eprintln!("NOTICE: {msg}; not checked until the paper quotes the report");
}

/// The stored report and rows, or why they predate the current format.
fn stored_results() -> Result<(Vec<Section>, Vec<Measurement>), String> {
    let report = sections(&read(&format!("{RESULTS}/report.md")));
    if !report
        .iter()
        .any(|s| s.level == 2 && s.heading == "End to end")
    {
        return Err("report.md has no `## End to end` section".into());
    }
    let csv = read(&format!("{RESULTS}/study.csv"));
    let header = csv.lines().next();
    if header != Some(CSV_HEADER) && header != Some(CSV_HEADER_V1) {
        return Err(format!("study.csv's first line is not `{CSV_HEADER}`"));
    }
    let rows = read_rows(&root().join(RESULTS)).unwrap_or_else(|e| panic!("{e}"));
    Ok((report, rows))
}

#[test]
fn the_stored_report_agrees_with_its_csv() {
    let (report, rows) = match stored_results() {
        Ok(r) => r,
        Err(why) => return stale(&why),
    };
    let (checked, errors) = end_to_end_errors(&report, &rows);
    assert!(
        errors.is_empty(),
        "report.md disagrees with study.csv:\n{}",
        errors.join("\n")
    );
    assert!(
        checked > 0,
        "report.md's `## End to end` has no point's table"
    );
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

#[test]
fn the_stored_results_say_how_they_were_made() {
    let Ok(text) = std::fs::read_to_string(root().join(RESULTS).join("meta.json")) else {
        return stale("there is no meta.json");
    };
    if let Some(problem) = meta_problem(&text) {
        panic!("{RESULTS}/{problem}");
    }
}

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

/// The stored `summary.json` (rendered by `barrierlab report papers/results` from the
/// stored CSV) holds the report's end-to-end numbers: for every point's table, each
/// variant's `n` and `wall ms` cells as report.md prints them.
#[test]
fn the_stored_summary_holds_the_reports_end_to_end_numbers() {
    use barrierlab::study::summary::{Cell, Summary};
    let Ok(summary) = Summary::load(&root().join(RESULTS)) else {
        return stale("there is no summary.json (`barrierlab report papers/results` writes one)");
    };
    let report = sections(&read(&format!("{RESULTS}/report.md")));
    let mut checked = 0;
    for s in report.iter().filter(|s| point(&s.heading).is_some()) {
        let (Some(md), Some(json)) = (s.tables.first(), summary.table(&s.heading, 1)) else {
            continue;
        };
        for row in &md.rows {
            for column in ["n", "wall ms"] {
                let k = md.header.iter().position(|h| h == column).expect(column);
                let cell = json
                    .cell(&row[0], column)
                    .map(Cell::render)
                    .unwrap_or_else(|| {
                        panic!("{} / {} / {column} not in summary.json", s.heading, row[0])
                    });
                assert_eq!(cell, row[k], "{} / {} / {column}", s.heading, row[0]);
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no end-to-end table was compared");
}
