//! The study in `--quick` mode, through the real binary: it writes the CSV, the report,
//! `summary.json`, `meta.json` and the figures; no invocation below the minimum cycles (or
//! out of memory, or crashed) is reported as a result; every ratio the report states has
//! an interval; the report's numbers are the CSV's and the summary's; `meta.json` says
//! where the run happened; the folder is the study's alone while it runs.
//!
//! The study starts a process per invocation; the whole run is killed, with its
//! children (one process group), if it passes [`DEADLINE`].

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use barrierlab::study::data::{self, CSV_HEADER, END};
use barrierlab::study::format::fmt;
use barrierlab::study::stats::median;
use barrierlab::study::summary::{Cell, Summary};
use barrierlab::study::{MIN_CYCLES, Metric, Row, Section};

/// The quick study takes well under 30 s here; this is for a loaded CI machine.
const DEADLINE: Duration = Duration::from_secs(300);

/// Runs barrierlab with `args` in its own process group, killed at the deadline.
pub(super) fn barrierlab(args: &[&str]) -> support::binary::Output {
    support::binary::run(args, &[], DEADLINE)
}

/// The CSV's shape, line by line (the header; every row terminated); the rows themselves
/// are read with the library's own reader.
fn check_csv_shape(text: &str) {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(CSV_HEADER), "CSV header");
    assert!(text.ends_with('\n'), "the last row is whole");
    for l in lines {
        assert!(l.ends_with(&format!(",{END}")), "a terminated row: {l}");
    }
}

type PointKey = (String, String, usize, String);

fn key(r: &Row) -> PointKey {
    (
        r.tracker.clone(),
        r.workload.clone(),
        r.threads,
        fmt(r.heap_mib),
    )
}

/// The section of the report under `### {workload}, {threads} thread(s), {heap} MiB heap`.
fn section<'a>(report: &'a str, workload: &str, threads: usize, heap: &str) -> Option<&'a str> {
    let heading = format!("{workload}, {threads} thread(s), {heap} MiB heap");
    report.split("\n### ").find(|s| s.starts_with(&heading))
}

pub(super) fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("barrierlab-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test folder");
    dir
}

#[test]
fn quick_study_keeps_its_invariants() {
    let out = out_dir("study");
    // A figure an earlier study listed in its manifest: removed, with a notice. A file of
    // the user's, figure or not: kept.
    std::fs::write(out.join("stale.svg"), "<svg></svg>").unwrap();
    std::fs::write(out.join(".barrierlab-manifest"), "stale.svg\n").unwrap();
    std::fs::write(out.join("thesis-figure.svg"), "<svg>mine</svg>").unwrap();
    let run = barrierlab(&[
        "study",
        "--quick",
        "--no-progress",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.success(), "the quick study runs: {}", run.stderr);
    assert!(!out.join("stale.svg").exists(), "stale figures are removed");
    assert!(
        run.stderr.contains("stale.svg"),
        "…with a notice: {}",
        run.stderr
    );
    assert!(
        out.join("thesis-figure.svg").exists(),
        "a file no manifest lists is the user's: kept"
    );

    let summary: serde_json::Value =
        serde_json::from_str(run.stdout.trim()).expect("--json output");
    let csv = std::fs::read_to_string(out.join("study.csv")).expect("study.csv");
    check_csv_shape(&csv);
    let read = data::read(&out).expect("study.csv reads back");
    assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    let rows = read.rows;
    assert_eq!(
        summary["rows"].as_u64(),
        Some(rows.len() as u64),
        "the summary counts the CSV"
    );
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");

    check_meta(&out, &report);
    check_results_are_valid(&rows, &report);
    check_tables_are_the_csv(&rows, &report);
    check_summary_is_the_report(&out, &report);
    check_every_ratio_has_an_interval(&report);
    check_min_heaps(&rows);
    check_stall_mmu(&rows);
    check_shootdowns_are_counted(&rows, &report);
    check_tables_are_well_formed(&report);
    check_figures(&out, &report);
    let _ = std::fs::remove_dir_all(&out);
}

fn check_meta(out: &Path, report: &str) {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("meta.json")).expect("meta.json"))
            .expect("meta.json parses");
    for field in ["commit", "version", "date_utc", "cpu_model", "kernel"] {
        let v = meta[field]
            .as_str()
            .unwrap_or_else(|| panic!("meta.json {field}"));
        assert!(!v.is_empty(), "{field}");
    }
    assert!(meta["command_line"].as_array().is_some_and(|a| a.len() > 1));
    assert!(meta["seed"].as_u64().is_some());
    assert!(meta["cpus"].as_u64().is_some_and(|n| n >= 1));
    for field in ["load_before", "load_after", "steal_share", "elapsed_s"] {
        assert!(meta[field].as_f64().is_some(), "meta.json {field}");
    }
    assert_eq!(meta["complete"], true, "completed at the end");
    assert_eq!(meta["seed_given"], false, "a fresh seed when none is given");
    assert_eq!(meta["blocks"], true, "the invocations ran in blocks");
    let hash = meta["binary_fnv1a64"].as_str();
    assert!(hash.is_some_and(|h| h.len() == 16), "the binary's hash");
    assert!(meta["machine"].as_array().is_some_and(|m| m.len() > 3));
    let steal = meta["steal_share"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&steal));
    let date = meta["date_utc"].as_str().unwrap();
    assert!(date.len() == 20 && date.ends_with('Z'), "{date}");
    assert!(
        report.contains(&format!("| date | {date} |")),
        "the report names the date"
    );
    assert!(report.contains(&format!(
        "| kernel | {} |",
        meta["kernel"].as_str().unwrap()
    )));
    assert!(report.contains("| commit |") && report.contains("| CPU steal during the run |"));
}

/// The micro's first writes beside a running thread and the barrier-only runs count the
/// TLB shootdowns, and the report prices them. Needs a second CPU for the running thread
/// and a TLB row in `/proc/interrupts` (x86).
fn check_shootdowns_are_counted(rows: &[Row], report: &str) {
    let cpus = barrierlab::sys::process::allowed_cpus().map_or(1, |c| c.len());
    if cpus < 2 || barrierlab::sys::kernel::tlb_shootdowns().is_none() {
        support::skip_or_fail(
            "study::quick_study_keeps_its_invariants (shootdowns)",
            &format!(
                "{cpus} CPU(s) allowed; /proc/interrupts TLB row: {:?}",
                barrierlab::sys::kernel::tlb_shootdowns()
            ),
        );
        return;
    }
    let micro: BTreeMap<&str, usize> = rows
        .iter()
        .filter(|r| r.section == Section::Micro && r.workload == "pages-spp1-beside")
        .filter(|r| r.metric == Metric::TlbShootdowns)
        .fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.tracker.as_str()).or_default() += 1;
            m
        });
    let trackers: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.section == Section::Micro)
        .map(|r| r.tracker.as_str())
        .collect();
    for t in &trackers {
        assert!(
            micro.get(t).is_some_and(|&n| n > 0),
            "{t}: no shootdowns counted beside a running thread"
        );
    }
    assert!(
        rows.iter()
            .any(|r| r.section == Section::Barrieronly && r.metric == Metric::TlbShootdowns),
        "the barrier-only runs count their shootdowns"
    );
    assert!(
        rows.iter().any(|r| r.section == Section::Micro
            && r.tracker == "none"
            && r.workload.ends_with("-shot-at")
            && r.metric == Metric::TlbShootdowns),
        "`none` measures the shootdowns a running thread receives"
    );
    // The receiving end is `none`'s alone; the first write while a TLB flush is
    // pending, `none`'s and the trackers' whose first writes the kernel resolves (it
    // prices the shootdowns those send then).
    let beside_changes = |suffix: &str| -> std::collections::BTreeSet<&str> {
        rows.iter()
            .filter(|r| r.section == Section::Micro && r.workload.ends_with(suffix))
            .map(|r| r.tracker.as_str())
            .collect()
    };
    assert_eq!(
        beside_changes("-shot-at").into_iter().collect::<Vec<_>>(),
        ["none"],
        "only `none` runs the receiving end"
    );
    let pending = beside_changes("-pending");
    assert!(
        pending.contains("none") && pending.iter().any(|t| t.starts_with("uffd-wp-async")),
        "the async tracker's first write is priced while a flush is pending: {pending:?}"
    );
    assert!(
        pending
            .iter()
            .all(|t| *t == "none" || t.starts_with("uffd-wp-async")),
        "{pending:?}"
    );
    // Placed on two CPUs, the barrier-only runs and the rounds beside another thread
    // count what each side's CPU received.
    for (section, what) in [
        (Section::Barrieronly, "barrier-only runs"),
        (Section::Micro, "micro rounds beside another thread"),
    ] {
        for m in [
            Metric::TlbShootdownsMutatorCpu,
            Metric::TlbShootdownsCollectorCpu,
        ] {
            assert!(
                rows.iter().any(|r| r.section == section && r.metric == m),
                "the {what} count {m:?}"
            );
        }
    }
    assert!(
        report.contains("### Beside a running thread")
            && report.contains("| of which shootdowns |"),
        "the report prices the shootdowns"
    );
}

/// No invocation below the minimum cycles is a result; every point that is not a
/// result is in the invalid table with its reason.
fn check_results_are_valid(rows: &[Row], report: &str) {
    let mut cycles: BTreeMap<(PointKey, usize), f64> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.section == Section::Macro && r.metric == Metric::Cycles)
    {
        cycles.insert((key(r), r.invocation), r.value);
    }
    assert!(!cycles.is_empty(), "the study ran end-to-end points");
    for r in rows
        .iter()
        .filter(|r| r.section == Section::Macro && r.metric == Metric::WallMs)
    {
        let c = cycles.get(&(key(r), r.invocation)).copied().unwrap_or(0.0);
        assert!(c >= MIN_CYCLES, "a result with {c} cycles: {r:?}");
    }
    let bad = report
        .split("## Invalid and failed invocations")
        .nth(1)
        .expect("the invalid table");
    for r in rows.iter().filter(|r| !r.section.is_result()) {
        assert!(!r.note.is_empty(), "an invalid row says why: {r:?}");
        let line = format!(
            "| {} | {} | {} | {} | {} |",
            r.section,
            r.tracker,
            r.workload,
            r.threads,
            fmt(r.heap_mib)
        );
        assert!(bad.contains(&line), "{line} is in the invalid table");
        // A point with no valid invocation has no row in the results.
        let valid = rows
            .iter()
            .any(|v| v.section == Section::Macro && key(v) == key(r));
        if !valid {
            if let Some(sec) = section(report, &r.workload, r.threads, &fmt(r.heap_mib)) {
                assert!(
                    !sec.lines()
                        .any(|l| l.starts_with(&format!("| {} |", r.tracker))),
                    "{r:?} is not reported as a result"
                );
            }
        }
    }
}

/// Each end-to-end table row's wall time is the median of the CSV's rows; its ratio to
/// `none` the geometric mean over blocks of the two invocations' ratio in the same block.
fn check_tables_are_the_csv(rows: &[Row], report: &str) {
    let mut walls: BTreeMap<PointKey, Vec<(usize, f64)>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.section == Section::Macro && r.metric == Metric::WallMs)
    {
        let point = walls.entry(key(r)).or_default();
        point.push((r.invocation, r.value));
    }
    for ((tracker, workload, threads, heap), values) in &walls {
        let sec = section(report, workload, *threads, heap)
            .unwrap_or_else(|| panic!("no section for {workload} x{threads} {heap} MiB"));
        // The tracker's rows: in the time table first, in the health table last.
        let mine: Vec<&str> = (sec.lines())
            .filter(|l| l.starts_with(&format!("| {tracker} |")))
            .collect();
        let (Some(line), Some(health)) = (mine.first(), mine.last()) else {
            panic!("no row for {tracker} under {workload} {heap}");
        };
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(cells[2], values.len().to_string(), "n: {line}");
        let m = fmt(median(&values.iter().map(|&(_, v)| v).collect::<Vec<_>>()));
        assert!(
            cells[3].starts_with(&format!("{m} [")),
            "wall median: {line}"
        );
        let none = walls.get(&("none".into(), workload.clone(), *threads, heap.clone()));
        match none {
            Some(n) if tracker != "none" => {
                let logs: Vec<f64> = (values.iter())
                    .filter_map(|&(k, v)| n.iter().find(|&&(j, _)| j == k).map(|&(_, b)| v / b))
                    .map(f64::ln)
                    .collect();
                let gm = (logs.iter().sum::<f64>() / logs.len() as f64).exp();
                let ratio = format!("{}× [", fmt(gm));
                assert!(cells[4].starts_with(&ratio), "expected {ratio}…: {line}");
                let verdict = cells[5];
                assert!(
                    ["faster", "slower", "no difference measured"].contains(&verdict)
                        || (verdict == "not judged (health)"
                            // The health cell ends the health table's row.
                            && health.trim_end_matches(" |").rsplit(" | ").next()
                                .is_some_and(|c| c.starts_with("**marked**"))),
                    "{line}"
                );
            }
            _ => {}
        }
    }
}

/// Every `N×` in a table is followed by its interval.
fn check_every_ratio_has_an_interval(report: &str) {
    let mut ratios = 0;
    for line in report.lines().filter(|l| l.starts_with('|')) {
        let chars: Vec<char> = line.chars().collect();
        for (i, c) in chars.iter().enumerate() {
            if *c == '×' && i > 0 && chars[i - 1].is_ascii_digit() {
                ratios += 1;
                let rest: String = chars[i + 1..].iter().take(2).collect();
                assert_eq!(rest, " [", "a ratio without an interval: {line}");
            }
        }
    }
    assert!(ratios > 0, "the report states ratios");
}

/// Every minimum heap has its bracket: a size below it that was tested and failed,
/// within 5% of it (or one grain below it).
fn check_min_heaps(rows: &[Row]) {
    let mins: Vec<&Row> = rows
        .iter()
        .filter(|r| r.metric == Metric::MinHeapMib)
        .collect();
    assert!(!mins.is_empty());
    for m in mins {
        let fails = rows
            .iter()
            .find(|r| {
                r.metric == Metric::MinHeapFailsMib
                    && r.workload == m.workload
                    && r.threads == m.threads
            })
            .expect("the tested lower bound is recorded");
        let gap = m.value - fails.value;
        assert!(
            fails.value > 0.0 && gap > 0.0 && (gap / m.value <= 0.05 || gap <= 1.0 / 16.0),
            "the size just below the minimum was tested: {m:?} {fails:?}"
        );
    }
}

/// Stalls only take utilisation away: at every window the MMU over pauses and stalls is
/// at most the MMU over pauses, invocation by invocation. (Up to 1e-4: for a window
/// longer than the run the driver's pause MMU counts a pause's resume, a microsecond or
/// so, past the run's end, where the stall MMU clips every interval to the run.)
fn check_stall_mmu(rows: &[Row]) {
    let mut by_run: BTreeMap<(PointKey, usize, String), f64> = BTreeMap::new();
    for r in rows.iter().filter(|r| {
        r.section == Section::Macro && matches!(r.metric, Metric::Mmu(_) | Metric::MmuStall(_))
    }) {
        by_run.insert((key(r), r.invocation, r.metric.name()), r.value);
    }
    let mut checked = 0;
    for ((k, inv, metric), stall) in &by_run {
        if let Some(window) = metric.strip_prefix("mmu_stall_") {
            let pause = by_run[&(k.clone(), *inv, format!("mmu_{window}"))];
            assert!(
                *stall <= pause + 1e-4,
                "{k:?} #{inv} {window}: {stall} > {pause}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "the page trackers report MMU with stalls");
}

/// Every table's separator has as many columns as its header, and every row too.
fn check_tables_are_well_formed(report: &str) {
    let lines: Vec<&str> = report.lines().collect();
    let cells = |l: &str| l.matches('|').count();
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("|---") {
            let header = lines[i - 1];
            assert_eq!(cells(l), cells(header), "separator under `{header}`");
            for row in lines[i + 1..].iter().take_while(|r| r.starts_with('|')) {
                assert_eq!(cells(row), cells(header), "`{row}` under `{header}`");
            }
        }
    }
}

fn check_figures(out: &Path, report: &str) {
    let curves = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("curves-") && n.ends_with(".svg"))
        .count();
    assert!(curves >= 1, "a heap-size curve per workload");
    assert!(report.contains("## Heap-size curves"));
    for fig in [
        "crossover.svg",
        "pauses.svg",
        "mmu.svg",
        "heapmap.svg",
        "invocations.svg",
        "curves-gcbench-l4-x1.svg",
    ] {
        let svg = std::fs::read_to_string(out.join(fig)).unwrap_or_else(|e| panic!("{fig}: {e}"));
        assert!(
            svg.contains("<svg") && svg.contains("</svg>"),
            "{fig} is an SVG document"
        );
        assert!(
            report.contains(&format!("]({fig})")),
            "the report shows {fig}"
        );
    }
    assert!(report.contains("## Crossover with the card table"));
    assert!(report.contains("## Overhead over a lower bound"));
}

/// `summary.json` holds every end-to-end table of the report, cell for cell, with the
/// health columns; and `report DIR` writes it again, the same, from the CSV alone.
fn check_summary_is_the_report(out: &Path, report: &str) {
    let summary = Summary::load(out).expect("summary.json");
    let mut checked = 0;
    for t in summary
        .tables
        .iter()
        .filter(|t| t.header.iter().any(|h| h == "health"))
    {
        for row in &t.rows {
            let Cell::Text { text: tracker } = &row[0] else {
                panic!("a row named by its tracker: {row:?}");
            };
            let printed: Vec<String> = row.iter().map(Cell::render).collect();
            let line = format!("| {} |", printed.join(" | "));
            assert!(report.contains(&line), "{line} is in report.md");
            assert!(
                t.cell(tracker, "cycles").is_some() && t.cell(tracker, "armed").is_some(),
                "health columns"
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "summary.json has the end-to-end tables");
    let again = barrierlab(&["report", out.to_str().unwrap()]);
    assert!(again.success(), "{}", again.stderr);
    assert_eq!(
        Summary::load(out).unwrap(),
        summary,
        "report DIR renders the same summary"
    );
}

#[test]
fn an_unwritable_output_folder_is_named_before_anything_runs() {
    let t0 = Instant::now();
    let run = barrierlab(&[
        "study",
        "--quick",
        "--no-progress",
        "--out",
        "/proc/barrierlab-no",
    ]);
    assert!(!run.success());
    assert!(run.stderr.contains("/proc/barrierlab-no"), "{}", run.stderr);
    assert!(t0.elapsed() < Duration::from_secs(10), "nothing ran first");
}

#[test]
fn a_point_process_reports_its_outcome_as_json() {
    let spec = r#"{"mode":"quick","point":{"kind":"fits","workload":"gcbench-l4","threads":1,"heap_bytes":16777216},"pin_cpu":0,"seed":0}"#;
    let run = barrierlab(&["study-point", "--spec", spec]);
    assert!(run.success(), "{}", run.stderr);
    let out: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
    assert_eq!(out["outcome"]["status"], "ok");
    assert_eq!(out["rows"][0]["metric"], "fits");
    let bad = barrierlab(&["study-point", "--spec", "{not json"]);
    assert!(
        !bad.success() && bad.stderr.contains("--spec"),
        "{}",
        bad.stderr
    );
}

/// `--run-ms` sizes each workload's work by time before its points: the calibration runs
/// and the work chosen are rows, every point of the workload then allocates that work,
/// and the report says so.
#[test]
fn calibration_sizes_every_point_of_a_workload() {
    let out = out_dir("calibration");
    let run = barrierlab(&[
        "study",
        "--quick",
        "--run-ms",
        "250",
        "--trackers",
        "card-table",
        "--heap",
        "2",
        "--invocations",
        "1",
        "--no-peer",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.success(), "the calibrated study runs: {}", run.stderr);
    let rows = data::read(&out).expect("study.csv reads back").rows;
    let calibration = |m: Metric| -> Vec<&Row> {
        rows.iter()
            .filter(|r| r.section == Section::Calibration && r.metric == m)
            .collect()
    };
    let chosen = calibration(Metric::AllocatedPerLive);
    let workloads: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.section == Section::Macro)
        .map(|r| r.workload.as_str())
        .collect();
    assert!(!workloads.is_empty(), "the study ran end-to-end points");
    for wl in &workloads {
        let c = chosen
            .iter()
            .find(|r| r.workload == *wl)
            .unwrap_or_else(|| panic!("{wl}: the work chosen is a row"));
        assert!(c.value > 0.0 && c.note.contains("250 ms"), "{c:?}");
        let timed = calibration(Metric::CalibrationMs).into_iter();
        let runs = timed.filter(|r| r.workload == *wl).count();
        assert_eq!(runs, 4, "{wl}: every calibration run timed");
        // Every point of the workload, each barrier and heap, allocated the work chosen (4
        // MiB live; GCBench's passes and the workloads' own estimates round it).
        let allocated: Vec<f64> = rows
            .iter()
            .filter(|r| {
                r.section == Section::Macro && r.workload == *wl && r.metric == Metric::AllocatedMib
            })
            .map(|r| r.value)
            .collect();
        assert!(!allocated.is_empty(), "{wl}: allocation counted");
        let asked = c.value * 4.0;
        for a in allocated {
            assert!(
                (0.6..=1.6).contains(&(a / asked)),
                "{wl}: allocated {a} MiB for {asked} MiB of work"
            );
        }
    }
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(
        report.contains("### Work per run"),
        "the report shows the work"
    );
    let _ = std::fs::remove_dir_all(&out);
}
