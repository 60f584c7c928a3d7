//! The stored runs together: three independent runs of one binary, and the stored
//! comparison is theirs.

use std::path::Path;

use barrierlab::study::compare;
use barrierlab::study::meta::Meta;

use super::{COMPARE, RESULTS, RUNS, read, read_rows, run_dir, run_path};

/// The least time between the end of the first run and the start of the last.
const APART_S: i64 = 90 * 60;

/// Seconds since 1970 of a `YYYY-MM-DDTHH:MM:SSZ` time, as `meta.json` writes it.
fn utc_seconds(s: &str) -> Result<i64, String> {
    let bad = || format!("`{s}` is not YYYY-MM-DDTHH:MM:SSZ");
    let b = s.as_bytes();
    let seps = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ];
    if !s.is_ascii() || b.len() != 20 || seps.iter().any(|&(i, c)| b[i] != c) {
        return Err(bad());
    }
    let num = |from: usize, to: usize| match s[from..to].parse::<i64>() {
        Ok(v) if s[from..to].bytes().all(|c| c.is_ascii_digit()) => Ok(v),
        _ => Err(bad()),
    };
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return Err(bad());
    }
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm, as `meta::utc`).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Run `n`'s `meta.json`.
fn meta(n: usize) -> Meta {
    let path = format!("{}/meta.json", run_dir(n));
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("run {n}: {path}: {e}"))
}

/// When run `n` (whose meta is `m`) started and ended, in seconds since 1970.
fn span(n: usize, m: &Meta) -> (i64, i64) {
    let start = utc_seconds(&m.date_utc).unwrap_or_else(|e| panic!("run {n}: {e}"));
    let elapsed = m
        .elapsed_s
        .unwrap_or_else(|| panic!("run {n}: meta.json has no elapsed_s"));
    (start, start + elapsed.ceil() as i64)
}

/// The time parser reads back what the study writes.
#[test]
fn utc_seconds_reads_the_times_meta_json_writes() {
    use barrierlab::study::meta::utc;
    use std::time::{Duration, UNIX_EPOCH};
    for t in [0, 59, 951_782_400, 1_796_570_782, 4_102_444_800] {
        let text = utc(UNIX_EPOCH + Duration::from_secs(t));
        assert_eq!(utc_seconds(&text), Ok(t as i64), "{text}");
    }
    assert_eq!(utc_seconds("2026-12-06T15:26:22Z"), Ok(1_796_570_782));
    for bad in [
        "2026-12-06 15:26:22Z",
        "2026-12-06T15:26:22",
        "2026-13-06T15:26:22Z",
        "2026-12-06T15:26:2xZ",
        "2026-12-06T15:+6:22Z",
        "2026-12-06T15:26:22Zé",
    ] {
        assert!(utc_seconds(bad).is_err(), "{bad}");
    }
}

/// The three stored runs are independent repetitions of one binary: each complete, in
/// the default mode, with its own seed; one after the other (none started before the one
/// before it ended), the last starting at least 90 minutes after the first ended; and
/// every run's binary has the same hash.
#[test]
fn the_three_runs_are_independent() {
    assert_eq!(RUNS.len(), 3, "three runs are stored");
    let metas: Vec<Meta> = (1..=RUNS.len()).map(meta).collect();
    for (n, m) in (1..).zip(&metas) {
        assert!(m.complete, "run {n} did not run to its end");
        assert_eq!(m.mode.as_deref(), Some("default"), "run {n}'s mode");
    }
    for (i, a) in metas.iter().enumerate() {
        for (j, b) in metas.iter().enumerate().skip(i + 1) {
            assert_ne!(a.seed, b.seed, "runs {} and {} share a seed", i + 1, j + 1);
        }
    }
    let spans: Vec<(i64, i64)> = (1..).zip(&metas).map(|(n, m)| span(n, m)).collect();
    for (n, w) in (2..).zip(spans.windows(2)) {
        assert!(
            w[1].0 >= w[0].1,
            "run {n} started before run {} ended",
            n - 1
        );
    }
    let apart = spans[spans.len() - 1].0 - spans[0].1;
    assert!(
        apart >= APART_S,
        "the last run started {apart} s after the first ended, not {APART_S}"
    );
    let binary = metas[0].binary_fnv1a64.as_deref();
    assert!(binary.is_some(), "run 1 does not name its binary's hash");
    for (n, m) in (1..).zip(&metas) {
        assert_eq!(
            m.binary_fnv1a64.as_deref(),
            binary,
            "run {n} ran another binary than run 1"
        );
    }
}

/// `barrierlab compare run-1 run-2 run-3 --json` over the stored runs, recomputed
/// through the library calls `src/main.rs`'s `compare` makes (its default metrics,
/// `--changed` not given), with the runs named as in `papers/results`.
fn recomputed_comparison() -> serde_json::Value {
    let rows: Vec<_> = (1..=RUNS.len())
        .map(|n| read_rows(&run_path(n)).unwrap_or_else(|e| panic!("run {n}: {e}")))
        .collect();
    let designs: Vec<_> = (1..=RUNS.len()).map(|n| meta(n).design()).collect();
    let agreements = compare::agreements(&rows, &designs);
    let later = compare::against_first(&rows, &compare::HEADLINE_METRICS, false);
    let names: Vec<&Path> = RUNS.iter().map(Path::new).collect();
    let mut j = compare::to_json(&names, &agreements, &later);
    // As `barrierlab compare --json` adds it.
    j["work_per_live"] = serde_json::json!(compare::work_per_run(&rows));
    j
}

/// The stored `compare.json` is the comparison of the stored runs: the same runs, the
/// same verdicts across runs with the same counts, and the same run-to-run comparisons.
/// Every bootstrap interval of `compare` is seeded by its point's key alone (not by a
/// run's seed), so the recomputation is deterministic and the numbers are compared
/// exactly.
#[test]
fn the_stored_comparison_is_the_comparison_of_the_stored_runs() {
    let stored: serde_json::Value = serde_json::from_str(&read(COMPARE))
        .unwrap_or_else(|e| panic!("{COMPARE} is not JSON: {e}"));
    let fresh = recomputed_comparison();
    assert_eq!(stored["runs"], fresh["runs"], "{COMPARE}'s runs");
    for count in ["judged", "stated", "reversed", "same_in_every_run"] {
        assert_eq!(
            stored["verdicts"][count], fresh["verdicts"][count],
            "{COMPARE}'s verdicts.{count}"
        );
    }
    let list = |v: &serde_json::Value, at: &str| v.pointer(at).and_then(|p| p.as_array()).cloned();
    let (old, new) = (
        list(&stored, "/verdicts/points"),
        list(&fresh, "/verdicts/points"),
    );
    let (old, new) = (old.expect("stored verdicts"), new.expect("verdicts"));
    assert_eq!(old.len(), new.len(), "{COMPARE}: the number of verdicts");
    for (k, (o, n)) in old.iter().zip(&new).enumerate() {
        assert_eq!(o, n, "{COMPARE}: verdict {k}");
    }
    for run in 0..RUNS.len() - 1 {
        let at = format!("/run_to_run/{run}/points");
        let (old, new) = (list(&stored, &at), list(&fresh, &at));
        let (old, new) = (old.expect("stored run to run"), new.expect("run to run"));
        assert_eq!(
            old.len(),
            new.len(),
            "{COMPARE}: {at}: the number of points"
        );
        for (k, (o, n)) in old.iter().zip(&new).enumerate() {
            assert_eq!(o, n, "{COMPARE}: {at}/{k}");
        }
    }
    assert_eq!(stored, fresh, "{COMPARE} (in {RESULTS}) as a whole");
}
