//! The command line as a user drives it: the real binary, its output parsed.

use crate::support;

use std::collections::BTreeMap;
use std::process::Command;

use support::{TIMEOUT_SECS, with_timeout};

/// The `key=value` fields of `gcbench`'s result line.
fn fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn number(fields: &BTreeMap<String, String>, key: &str) -> u64 {
    fields
        .get(key)
        .unwrap_or_else(|| panic!("no {key}= in the result line: {fields:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{key}= is not a count: {e}"))
}

#[test]
fn the_cycle_log_has_one_line_per_pause_and_per_cycle_and_agrees_with_the_result() {
    with_timeout(TIMEOUT_SECS, "the_cycle_log", || {
        for barrier in ["none", "card-table", "uffd-wp"] {
            let out = Command::new(env!("CARGO_BIN_EXE_barrierlab"))
                .args(["gcbench", "--quick", "--heap-mib", "4", "--log-cycles"])
                .args(["--barrier", barrier])
                .output()
                .expect("run barrierlab");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{barrier}: {stderr}");
            let result = fields(stdout.lines().last().expect("a result line"));
            let (mut pauses, mut cycles, mut faults, mut dirty) = (0, 0, 0, 0);
            let mut numbers = Vec::new();
            for line in stderr.lines().filter(|l| l.starts_with("[gc ")) {
                let words: Vec<&str> = line.split_whitespace().collect();
                let n: u64 = words[1]
                    .trim_end_matches(']')
                    .parse()
                    .expect("cycle number");
                match words[2] {
                    w if w.starts_with('@') => {
                        assert_eq!(words[3], "pause", "{line}");
                        assert!(
                            ["initial-mark", "remark", "stop-the-world", "full"]
                                .contains(&words[4]),
                            "{line}"
                        );
                        assert!(words[5].ends_with("ms"), "{line}");
                        pauses += 1;
                    }
                    "cycle" => {
                        assert!(
                            ["trigger", "explicit", "allocation-failure"].contains(&words[3]),
                            "{line}"
                        );
                        let after = |key: &str| -> u64 {
                            let i = words.iter().position(|w| *w == key).expect(key);
                            words[i + 1].parse().expect(key)
                        };
                        faults += after("faults");
                        dirty += after("dirty");
                        cycles += 1;
                        numbers.push(n);
                    }
                    other => panic!("{barrier}: unexpected log line ({other}): {line}"),
                }
            }
            assert!(
                cycles >= 3,
                "{barrier}: only {cycles} cycles logged:\n{stderr}"
            );
            assert_eq!(pauses, number(&result, "pauses"), "{barrier}: pause lines");
            assert_eq!(cycles, number(&result, "cycles"), "{barrier}: cycle lines");
            assert_eq!(
                numbers,
                (1..=cycles).collect::<Vec<_>>(),
                "{barrier}: cycles in order"
            );
            assert_eq!(
                dirty,
                number(&result, "dirty_frontier") + number(&result, "dirty_old"),
                "{barrier}: dirty granules"
            );
            // Faults of completed cycles; the tracker's total may include a few served
            // after the last cycle ended.
            assert!(faults <= number(&result, "faults"), "{barrier}: faults");
        }
    });
}

/// `--log-cycles` with stderr on a full device (`2>/dev/full`; a closed pipe fails the
/// same way): every log line fails to write, and the run still completes with its result
/// (the collector thread used to panic on the first line, and the run failed with it).
#[test]
fn log_lines_that_cannot_be_written_do_not_take_the_collector_down() {
    with_timeout(TIMEOUT_SECS, "log_lines_that_cannot_be_written", || {
        for barrier in ["none", "uffd-wp", "mprotect"] {
            let full = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .expect("open /dev/full");
            let out = Command::new(env!("CARGO_BIN_EXE_barrierlab"))
                .args(["gcbench", "--quick", "--heap-mib", "4", "--log-cycles"])
                .args(["--barrier", barrier])
                .stderr(full)
                .output()
                .expect("run barrierlab");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{barrier}: {:?} with stderr full; stdout: {stdout}",
                out.status
            );
            let result = fields(stdout.lines().last().expect("a result line"));
            assert!(number(&result, "cycles") >= 3, "{barrier}: {stdout}");
        }
    });
}

#[test]
fn bad_gcbench_input_is_an_error_that_names_the_flag_never_a_panic() {
    with_timeout(TIMEOUT_SECS, "bad_gcbench_input", || {
        let cases: &[(&[&str], &str)] = &[
            (&["--heap-mib", "17592186044416"], "--heap-mib"),
            (&["--heap-mib", "0"], "--heap-mib"),
            (&["--threads", "100000"], "--threads"),
            (&["--threads", "0"], "--threads"),
            (&["--barrier", "none", "--layout", "collector"], "--layout"),
            (&["--barrier", "no-such-barrier"], "--barrier"),
            // Runs, but collects nothing: not a result.
            (&["--quick"], "no collection ran"),
        ];
        for (args, named) in cases {
            let out = Command::new(env!("CARGO_BIN_EXE_barrierlab"))
                .arg("gcbench")
                .args(*args)
                .output()
                .expect("run barrierlab");
            let code = out.status.code();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                matches!(code, Some(1) | Some(2)),
                "{args:?}: exit {code:?}, expected 1 or 2:\n{stderr}"
            );
            assert!(
                stderr.contains(named),
                "{args:?}: `{named}` not named in:\n{stderr}"
            );
            assert!(!stderr.contains("panicked"), "{args:?}: a panic:\n{stderr}");
            assert!(out.stdout.is_empty(), "{args:?}: printed a result");
        }
    });
}

#[test]
fn every_workload_runs_and_json_parses_with_the_layout_and_the_uffd_mode() {
    with_timeout(2 * TIMEOUT_SECS, "every_workload_runs", || {
        for (workload, barrier, heap) in [
            ("gcbench", "uffd-wp", "8"),
            ("graph", "card-table", "16"),
            ("lru", "uffd-wp-async", "8"),
            ("binary-trees", "none", "16"),
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_barrierlab"))
                .args(["run", "--workload", workload, "--barrier", barrier])
                .args(["--heap-mib", heap, "--json"])
                .args(if workload == "gcbench" {
                    &["--quick"][..]
                } else {
                    &["--scaled"][..]
                })
                .output()
                .expect("run barrierlab");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{workload}/{barrier}: {stderr}");
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
            assert!(v["workload"].as_str().unwrap().starts_with(workload), "{v}");
            assert_eq!(v["barrier"], barrier, "{v}");
            let layout = if barrier == "uffd-wp" { "thread" } else { "-" };
            assert_eq!(v["layout"], layout, "{v}");
            let uffd = v["uffd"].as_str().expect("uffd mode");
            if barrier.starts_with("uffd-wp") {
                assert!(
                    uffd.starts_with("full") || uffd.starts_with("user-mode-only"),
                    "{v}"
                );
            } else {
                assert_eq!(uffd, "-", "{v}");
            }
            assert!(v["cycles"].as_u64().unwrap() > 0, "{v}");
            assert!(
                v["p99_us"].as_u64().unwrap() <= v["max_us"].as_u64().unwrap(),
                "p99 above max: {v}"
            );
        }
        let out = Command::new(env!("CARGO_BIN_EXE_barrierlab"))
            .args(["probe", "--json"])
            .output()
            .expect("run barrierlab");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("probe JSON");
        let names: Vec<&str> = v["mechanisms"]
            .as_array()
            .expect("mechanisms")
            .iter()
            .map(|m| m["barrier"].as_str().unwrap())
            .collect();
        // Every mechanism the crate describes, in its order.
        let all: Vec<&str> = barrierlab::BarrierKind::ALL
            .iter()
            .map(|k| k.name())
            .collect();
        assert_eq!(names, all);
    });
}

#[test]
fn compare_on_two_quick_studies_prints_ratios_with_intervals() {
    // Two quick studies (each a minute or so on a loaded machine), under the deadline
    // runner: killed with their children if they pass it.
    let deadline = std::time::Duration::from_secs(600);
    let base = std::env::temp_dir().join(format!("barrierlab-compare-{}", std::process::id()));
    let dirs = [base.join("old"), base.join("new")];
    for dir in &dirs {
        let out = support::binary::run(
            &[
                "study",
                "--quick",
                "--no-progress",
                "--no-peer",
                "--trackers",
                "card-table",
                "--out",
                dir.to_str().unwrap(),
            ],
            &[],
            deadline,
        );
        assert!(out.success(), "study: {}", out.stderr);
    }
    let (a, b) = (dirs[0].to_str().unwrap(), dirs[1].to_str().unwrap());
    let out = support::binary::run(&["compare", a, b], &[], deadline);
    assert!(out.success(), "{}", out.stderr);
    let table = out.stdout;
    // A row per point: the ratio with its interval, and a verdict.
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| macro card-table") && l.contains("| wall_ms |"))
        .collect();
    assert!(!rows.is_empty(), "no wall-time rows:\n{table}");
    for r in &rows {
        let ratio = r.split('|').nth(5).expect("ratio column").trim();
        let (est, ci) = ratio.split_once(' ').expect("estimate and interval");
        let est: f64 = est.parse().expect("a ratio");
        let ci = ci.trim_start_matches('[').trim_end_matches(']');
        let (lo, hi) = ci.split_once(", ").expect("an interval");
        let (lo, hi): (f64, f64) = (lo.parse().unwrap(), hi.parse().unwrap());
        assert!(lo <= est && est <= hi && lo > 0.0, "{r}");
    }
    // The verdicts across the runs, each with a statement.
    assert!(table.contains("| run 1 | run 2 | statement |"), "{table}");
    // A folder without a study is an error naming it.
    let missing = base.join("nothing-here");
    let out = support::binary::run(&["compare", a, missing.to_str().unwrap()], &[], deadline);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("nothing-here"),
        "the missing folder is not named"
    );
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn bad_study_input_is_an_error_that_names_the_flag_before_anything_runs() {
    with_timeout(TIMEOUT_SECS, "bad_study_input", || {
        let file =
            std::env::temp_dir().join(format!("barrierlab-not-a-dir-{}", std::process::id()));
        std::fs::write(&file, b"x").expect("a scratch file");
        let file_arg = file.to_string_lossy().into_owned();
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["--invocations", "0"], "--invocations"),
            (vec!["--heap", "3,3"], "--heap"),
            (vec!["--heap", "0.5"], "--heap"),
            (vec!["--heap", "1e400"], "--heap"),
            (vec!["--threads", "1,1"], "--threads"),
            (vec!["--threads", "0"], "--threads"),
            (vec!["--trackers", "mprotect,mprotect"], "--trackers"),
            (vec!["--timeout-s", "0"], "--timeout-s"),
            (vec!["--pin-cpu", "100000"], "--pin-cpu"),
            (
                vec!["--work-from", "/nonexistent-barrierlab-study"],
                "--work-from",
            ),
            (vec!["--out", &file_arg], "--out"),
            // Not writable even by root: fails before anything is measured.
            (
                vec!["--out", "/proc/barrierlab-out"],
                "/proc/barrierlab-out",
            ),
        ];
        for (args, named) in cases {
            let t0 = std::time::Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_barrierlab"))
                .args(["study", "--quick", "--no-progress"])
                .args(&args)
                .output()
                .expect("run barrierlab");
            let took = t0.elapsed();
            let code = out.status.code();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                matches!(code, Some(1) | Some(2)),
                "{args:?}: exit {code:?}:\n{stderr}"
            );
            assert!(
                stderr.contains(named),
                "{args:?}: `{named}` not named in:\n{stderr}"
            );
            assert!(!stderr.contains("panicked"), "{args:?}: a panic:\n{stderr}");
            assert!(
                took < std::time::Duration::from_secs(1),
                "{args:?}: took {took:?} to refuse (the study must check before it runs)"
            );
        }
        let _ = std::fs::remove_file(&file);
    });
}

/// `run --study-workload` runs a study point's workload with the study's work: GCBench
/// in as many whole passes as come nearest to 60 bytes per live byte (`PerLive`), where
/// `--workload gcbench` at the same live size runs one; a label the study does not have
/// is refused with the ones it has.
#[test]
fn a_study_workload_runs_with_the_studys_work_and_a_wrong_label_is_named() {
    with_timeout(TIMEOUT_SECS, "study_workload", || {
        let run = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_barrierlab"))
                .arg("run")
                .args(args)
                .args(["--heap-mib", "16", "--barrier", "none"])
                .output()
                .expect("barrierlab runs")
        };
        let allocated = |args: &[&str]| {
            let out = run(args);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let line = String::from_utf8_lossy(&out.stdout).to_string();
            let f = fields(&line);
            assert!(number(&f, "cycles") > 0, "no collection: {line}");
            let mib = f["allocated"].trim_end_matches("MiB").parse::<f64>();
            mib.unwrap_or_else(|e| panic!("allocated= is not MiB: {e}: {line}"))
        };
        let study = allocated(&["--study-workload", "gcbench-l1"]);
        let one_pass = allocated(&["--workload", "gcbench", "--live-mib", "1"]);
        let passes = (60.0 / one_pass).round().max(1.0);
        assert!(
            (study / one_pass - passes).abs() < 0.01,
            "the study's GCBench runs {passes} passes at 1 MiB live: {study} MiB against \
             {one_pass} MiB for one"
        );
        let out = run(&["--study-workload", "gcbench-x"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("gcbench-x") && err.contains("lru-l64"),
            "the message names the label and the study's: {err}"
        );
    });
}

/// `--work-from` runs a workload's points at the work an earlier study calibrated for
/// it (its `calibration` row), records that work with the folder it came from, and a
/// folder whose study calibrated nothing is refused, named, before anything runs.
#[test]
fn a_study_runs_the_work_an_earlier_study_calibrated() {
    use barrierlab::study::data::{self, Metric, Row, Section, to_csv};
    with_timeout(TIMEOUT_SECS, "work_from", || {
        let base = std::env::temp_dir().join(format!("barrierlab-work-{}", std::process::id()));
        let (earlier, out) = (base.join("earlier"), base.join("out"));
        std::fs::create_dir_all(&earlier).expect("a scratch folder");
        let chosen = |workload: &str, metric: Metric, value: f64| Row {
            section: Section::Calibration,
            tracker: "none".into(),
            workload: workload.into(),
            threads: 1,
            heap_mib: 16.0,
            invocation: 0,
            round: 0,
            metric,
            value,
            note: String::new(),
        };
        // A study that calibrated nothing is refused.
        let csv = to_csv(&[chosen("lru-l4", Metric::CalibrationMs, 250.0)]);
        std::fs::write(earlier.join("study.csv"), csv).expect("study.csv");
        let study = |extra: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_barrierlab"))
                .args([
                    "study",
                    "--quick",
                    "--no-progress",
                    "--no-peer",
                    "--heap",
                    "2",
                ])
                .args(["--trackers", "card-table", "--invocations", "1", "--out"])
                .arg(&out)
                .arg("--work-from")
                .arg(&earlier)
                .args(extra)
                .output()
                .expect("run barrierlab")
        };
        let refused = study(&[]);
        let err = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{err}");
        assert!(
            err.contains("--work-from") && err.contains("no calibrated work"),
            "{err}"
        );
        // The LRU cache's work given: 9 bytes per live byte (4 MiB live).
        let csv = to_csv(&[chosen("lru-l4", Metric::AllocatedPerLive, 9.0)]);
        std::fs::write(earlier.join("study.csv"), csv).expect("study.csv");
        let ran = study(&[]);
        assert!(
            ran.status.success(),
            "{}",
            String::from_utf8_lossy(&ran.stderr)
        );
        let rows = data::read(&out).expect("study.csv reads back").rows;
        let given: Vec<&Row> = (rows.iter())
            .filter(|r| r.section == Section::Calibration && r.metric == Metric::AllocatedPerLive)
            .collect();
        assert_eq!(given.len(), 1, "{given:?}");
        assert_eq!(
            (given[0].workload.as_str(), given[0].value),
            ("lru-l4", 9.0)
        );
        assert!(given[0].note.contains("--work-from"), "{:?}", given[0]);
        let allocated: Vec<f64> = (rows.iter())
            .filter(|r| r.section == Section::Macro && r.workload == "lru-l4")
            .filter(|r| r.metric == Metric::AllocatedMib)
            .map(|r| r.value)
            .collect();
        assert!(!allocated.is_empty(), "the LRU cache's points ran");
        for a in allocated {
            assert!(
                (0.6..=1.6).contains(&(a / 36.0)),
                "allocated {a} MiB for 36 MiB of work"
            );
        }
        let _ = std::fs::remove_dir_all(&base);
    });
}
