//! The study's folder and the command line's edges, through the real binary (issue 23's
//! reproducers): a held folder is refused, a cut CSV line is skipped with a warning, a
//! NaN heap size does not crash `compare`, a stopped study takes its child with it and
//! stays reportable, failed writes to stdout end with exit 1, bad numbers and sizes are
//! refused plainly. Every run is under the deadline runner.

use crate::support;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use barrierlab::study::data::to_csv;
use barrierlab::study::{Metric, Row, Section};
use support::binary;

const DEADLINE: Duration = Duration::from_secs(120);

fn barrierlab(args: &[&str]) -> binary::Output {
    binary::run(args, &[], DEADLINE)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("barrierlab-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small study folder written by the library's own writer: two variants at one point,
/// five invocations, and a `meta.json` from an older version.
fn synthetic_study(dir: &Path, heap_mib: f64) {
    let mut rows = Vec::new();
    for inv in 0..5 {
        for (tracker, wall) in [("none", 100.0), ("card-table", 130.0)] {
            for (metric, value) in [
                (Metric::WallMs, wall + inv as f64),
                (Metric::CpuTotalMs, wall + inv as f64),
                (Metric::Cycles, 10.0),
                (Metric::Fallbacks, 0.0),
            ] {
                rows.push(Row {
                    section: Section::Macro,
                    tracker: tracker.into(),
                    workload: "gcbench-l4".into(),
                    threads: 1,
                    heap_mib,
                    invocation: inv,
                    round: 0,
                    metric,
                    value,
                    note: String::new(),
                });
            }
        }
    }
    std::fs::write(dir.join("study.csv"), to_csv(&rows)).unwrap();
    std::fs::write(
        dir.join("meta.json"),
        r#"{"commit":"c","version":"0.1.0","command_line":["b","study"],"seed":1,
        "date_utc":"2026-12-01T12:35:03Z","cpu_model":"x","cpus":2,"kernel":"k",
        "load_before":1.0,"load_after":2.0,"steal_share":0.0,"elapsed_s":9.0,"warnings":[]}"#,
    )
    .unwrap();
}

#[test]
fn a_second_study_on_a_held_folder_is_refused_and_names_it() {
    let dir = scratch("lock");
    let lock = std::fs::File::create(dir.join(".barrierlab.lock")).unwrap();
    // SAFETY: flock on a descriptor this test owns; no memory is passed.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    std::fs::write(dir.join("study.csv"), "the other study's rows").unwrap();
    let o = barrierlab(&[
        "study",
        "--quick",
        "--no-progress",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(
        o.stderr.contains("another study is writing into"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains(dir.to_str().unwrap()), "{}", o.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("study.csv")).unwrap(),
        "the other study's rows",
        "nothing of the other study's is touched"
    );
    drop(lock);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_and_compare_skip_a_cut_last_line_with_a_warning() {
    let dir = scratch("cut");
    synthetic_study(&dir, 8.0);
    let csv = std::fs::read_to_string(dir.join("study.csv")).unwrap();
    // Cut the last row inside its value, as a full disk would.
    let cut = &csv[..csv.trim_end().len() - 6];
    std::fs::write(dir.join("study.csv"), cut).unwrap();
    let o = barrierlab(&["report", dir.to_str().unwrap()]);
    assert!(o.success(), "{}", o.stderr);
    assert!(
        o.stderr.contains("warning") && o.stderr.contains("cut"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("study.csv line 41"), "{}", o.stderr);
    assert!(dir.join("summary.json").is_file() && dir.join("report.md").is_file());
    let o = barrierlab(&["compare", dir.to_str().unwrap(), dir.to_str().unwrap()]);
    assert!(o.success(), "{}", o.stderr);
    assert!(o.stderr.contains("cut"), "{}", o.stderr);
    // A malformed line before the end is an error naming the file and line.
    let mut lines: Vec<&str> = csv.lines().collect();
    lines[3] = "macro,none,w,1,8,0,0,wall_ms,12";
    std::fs::write(dir.join("study.csv"), lines.join("\n") + "\n").unwrap();
    let o = barrierlab(&["report", dir.to_str().unwrap()]);
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(o.stderr.contains("study.csv line 4"), "{}", o.stderr);
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_with_a_nan_heap_size_does_not_panic() {
    let (a, b) = (scratch("nan-a"), scratch("nan-b"));
    synthetic_study(&a, f64::NAN);
    synthetic_study(&b, f64::NAN);
    let o = barrierlab(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(o.success(), "{}", o.stderr);
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    assert!(
        o.stdout
            .contains("| macro card-table gcbench-l4 x1 NaN MiB | wall_ms |"),
        "{}",
        o.stdout
    );
    // Three runs at once: the card table is slower in each, so it is stated.
    let o = barrierlab(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    assert!(o.success(), "{}", o.stderr);
    assert!(
        o.stdout.contains("| run 3 |") && o.stdout.contains("| slower |"),
        "{}",
        o.stdout
    );
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

/// The processes whose executable is `exe`.
fn running(exe: &Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|p| p.to_string_lossy().starts_with(&*exe.to_string_lossy()))
        })
        .collect()
}

#[test]
fn a_stopped_study_stops_its_child_and_stays_reportable() {
    let dir = scratch("sigterm");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_barrierlab"))
        .args(["study", "--quick", "--no-progress", "--no-peer", "--out"])
        .arg(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let copy = dir.join(".barrierlab-point-binary");
    let t0 = Instant::now();
    // Wait until it has measured something and a point runs.
    while t0.elapsed() < DEADLINE
        && (running(&copy).is_empty()
            || std::fs::read_to_string(dir.join("study.csv")).map_or(0, |s| s.lines().count()) < 20)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(t0.elapsed() < DEADLINE, "the study never started a point");
    // SAFETY: kill(2) on the child this test started; no memory is involved.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    let t1 = Instant::now();
    while !running(&copy).is_empty() && t1.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        running(&copy),
        Vec::<u32>::new(),
        "the point's process was left running"
    );
    let meta = std::fs::read_to_string(dir.join("meta.json")).expect("meta.json from the start");
    assert!(meta.contains("\"complete\": false"), "{meta}");
    let o = barrierlab(&["report", dir.to_str().unwrap()]);
    assert!(o.success(), "the partial run is reportable: {}", o.stderr);
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("did not run to its end"), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_write_to_stdout_is_exit_1_with_a_message_not_a_panic() {
    for args in [
        "probe --json",
        "probe",
        "run --workload gcbench --quick --heap-mib 2 --barrier none",
    ] {
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c")
            .arg(format!("\"$0\" {args} > /dev/full"))
            .arg(env!("CARGO_BIN_EXE_barrierlab"));
        let o = binary::run_command(sh, args, DEADLINE);
        assert_eq!(o.code, Some(1), "{args}: {}", o.stderr);
        assert!(
            o.stderr.contains("cannot write the output to stdout"),
            "{args}: {}",
            o.stderr
        );
        assert!(!o.stderr.contains("panicked"), "{args}: {}", o.stderr);
    }
}

#[test]
fn bad_numbers_and_sizes_are_refused_plainly_before_anything_runs() {
    let file = scratch("file").join("f");
    std::fs::write(&file, "x").unwrap();
    let cases: &[(&[&str], &str, i32)] = &[
        (
            &["study", "--quick", "--out", file.to_str().unwrap()],
            "--out",
            2,
        ),
        (&["study", "--quick", "--threads", "-1"], "negative", 2),
        (&["study", "--quick", "--heap", "-2"], "negative", 2),
        (&["study", "--quick", "--pin-cpu", "-1"], "negative", 2),
        (&["study", "--quick", "--pin-cpu", "4096"], "affinity", 2),
        (&["gcbench", "--heap-mib", "-1"], "negative", 2),
        (&["gcbench", "--marker-threads", "300"], "1 to 256", 2),
        (
            &[
                "run",
                "--workload",
                "lru",
                "--scaled",
                "--heap-mib",
                "1048576",
            ],
            "GiB",
            2,
        ),
    ];
    for (args, says, code) in cases {
        let t0 = Instant::now();
        let o = barrierlab(args);
        assert_eq!(o.code, Some(*code), "{args:?}: {}", o.stderr);
        assert!(
            o.stderr.contains(says),
            "{args:?}: `{says}` not in {}",
            o.stderr
        );
        assert!(
            !o.stderr.contains("writing into"),
            "{args:?}: printed before refusing"
        );
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{args:?}: it ran first"
        );
    }
    let help = barrierlab(&["gcbench", "--help"]);
    assert!(
        help.stdout.contains("1 to 256"),
        "the help and the check agree"
    );
}

#[test]
fn a_pinned_cpu_outside_the_affinity_mask_is_refused_and_one_inside_accepted() {
    if !Path::new("/usr/bin/taskset").exists() {
        support::skip_or_fail("taskset", "no /usr/bin/taskset");
        return;
    }
    let cpus = barrierlab::sys::process::allowed_cpus().unwrap();
    let Some(&last) = cpus.last().filter(|_| cpus.len() > 1) else {
        eprintln!("SKIP: one CPU: no mask narrower than the machine");
        return;
    };
    let first = cpus[0];
    let run = |pin: usize| {
        let mut c = std::process::Command::new("taskset");
        c.args(["-c", &last.to_string()])
            .arg(env!("CARGO_BIN_EXE_barrierlab"))
            .args([
                "study",
                "--quick",
                "--out",
                "/proc/barrierlab-no",
                "--pin-cpu",
            ])
            .arg(pin.to_string());
        binary::run_command(c, "taskset barrierlab", DEADLINE)
    };
    let inside = run(last);
    assert!(
        !inside.stderr.contains("--pin-cpu") && inside.stderr.contains("/proc/barrierlab-no"),
        "CPU {last} is in the mask: {}",
        inside.stderr
    );
    let outside = run(first);
    assert_eq!(outside.code, Some(2), "{}", outside.stderr);
    assert!(outside.stderr.contains("--pin-cpu") && outside.stderr.contains("affinity"));
}

#[test]
fn a_bdwgc_run_that_collects_nothing_says_so_instead_of_cycles_0() {
    // The quick GCBench fits in the default 64 MiB heap without a collection.
    let o = barrierlab(&["gcbench", "--peer", "bdwgc", "--quick"]);
    if o.code == Some(2) && o.stderr.contains("bdwgc is unavailable") {
        support::skip_or_fail("bdwgc", o.stderr.trim());
        return;
    }
    assert_eq!(o.code, Some(1), "{}\n{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("no collection ran"), "{}", o.stderr);
    assert!(!o.stdout.contains("cycles=0"), "{}", o.stdout);
}
