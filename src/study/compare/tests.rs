//! `compare`'s statements on synthetic runs.

use super::*;

fn row(tracker: &str, heap: f64, inv: usize, value: f64) -> Row {
    Row {
        section: Section::Macro,
        tracker: tracker.into(),
        workload: "gcbench".into(),
        threads: 1,
        heap_mib: heap,
        invocation: inv,
        round: 0,
        metric: Metric::WallMs,
        value,
        note: String::new(),
    }
}

fn run(card: f64, heap: f64) -> Vec<Row> {
    (0..10)
        .flat_map(|i| {
            [
                row("card-table", heap, i, card + i as f64 * 0.1),
                row("none", heap, i, 100.0 + i as f64 * 0.1),
            ]
        })
        .collect()
}

#[test]
fn a_clear_change_is_flagged_and_noise_is_not() {
    let old: Vec<_> = (0..10)
        .flat_map(|i| {
            [
                row("card-table", 32.0, i, 100.0 + i as f64),
                row("none", 32.0, i, 50.0 + i as f64),
            ]
        })
        .collect();
    // The card table 20% slower; `none` the same values in another order. Heap sizes
    // differ (another minimum heap) but have the same rank.
    let new: Vec<_> = (0..10)
        .flat_map(|i| {
            [
                row("card-table", 34.0, i, 120.0 + i as f64 * 1.2),
                row("none", 34.0, i, 59.0 - i as f64),
            ]
        })
        .collect();
    let cmp = compare(&old, &new, &[Metric::WallMs]);
    assert_eq!(cmp.len(), 2);
    let card = cmp.iter().find(|c| c.tracker == "card-table").unwrap();
    assert_eq!(card.heap_mib, (32.0, 34.0));
    let r = card.ratio.unwrap();
    assert!((r.estimate - 1.2).abs() < 1e-9, "{r:?}");
    assert_eq!(card.verdict(), "higher");
    let none = cmp.iter().find(|c| c.tracker == "none").unwrap();
    assert_eq!(none.verdict(), "no difference stated", "{none:?}");
}

#[test]
fn a_nan_heap_size_is_compared_without_a_panic() {
    let old = run(120.0, f64::NAN);
    let new = run(121.0, f64::NAN);
    let cmp = compare(&old, &new, &[Metric::WallMs]);
    assert_eq!(cmp.len(), 2, "NaN sizes match each other by rank");
    assert!(render(&cmp, Path::new("a"), Path::new("b")).contains("NaN MiB"));
    assert_eq!(agreements(&[old, new], &[]).len(), 2);
}

#[test]
fn a_difference_is_stated_only_when_every_run_excludes_one_by_the_margin() {
    // 20% slower in both runs: stated.
    let a = agreements(&[run(120.0, 64.0), run(121.0, 70.0)], &[]);
    let wall = a.iter().find(|x| x.metric == Metric::WallMs).unwrap();
    assert_eq!(wall.statement, "slower", "{wall:?}");
    // 3% slower: its interval excludes 1 but not by the margin.
    let a = agreements(&[run(103.0, 64.0), run(103.0, 64.0)], &[]);
    assert_eq!(a[0].statement, "no difference stated", "{:?}", a[0]);
    // Slower in one run, faster in the other: a reversal, listed by name.
    let a = agreements(&[run(120.0, 64.0), run(80.0, 64.0)], &[]);
    assert_eq!(a[0].statement, "REVERSAL");
    let text = render_agreements(&a, 2);
    assert!(text.contains("1 reversed"), "{text}");
    assert!(
        text.contains("- reversal: gcbench x1 heap #1 card-table wall_ms"),
        "{text}"
    );
    // Slower in one run, no difference in the other: nothing stated.
    let a = agreements(&[run(120.0, 64.0), run(100.0, 64.0)], &[]);
    assert_eq!(a[0].statement, "no difference stated");
}

#[test]
fn the_same_verdict_in_every_run_counts_each_runs_own_verdict() {
    // Slower in both, and within the margin in both: the same verdict.
    for (a, b) in [(120.0, 121.0), (103.0, 102.0)] {
        let x = agreements(&[run(a, 64.0), run(b, 64.0)], &[]);
        assert!(x[0].same_in_every_run, "{x:?}");
    }
    // Slower in one run, no difference in the other: "no difference stated" across the
    // runs, but not the same verdict.
    let x = agreements(&[run(120.0, 64.0), run(100.0, 64.0)], &[]);
    assert!(!x[0].same_in_every_run, "{x:?}");
    let text = render_agreements(&x, 2);
    assert!(
        text.contains("the same verdict in every run for 0 of 1 (0%)"),
        "{text}"
    );
}

#[test]
fn an_unhealthy_point_is_not_judged() {
    let mut r1 = run(120.0, 64.0);
    for (i, extra) in [(Metric::Cycles, 10.0), (Metric::Fallbacks, 5.0)] {
        for inv in 0..3 {
            let mut x = row("card-table", 64.0, inv, extra);
            x.metric = i;
            r1.push(x);
        }
    }
    let a = agreements(&[r1, run(120.0, 64.0)], &[]);
    assert!(
        a[0].statement.starts_with("not judged (run 1: falls back"),
        "{:?}",
        a[0]
    );
}

#[test]
fn the_json_says_what_the_markdown_says() {
    let runs = [run(120.0, 64.0), run(80.0, 64.0), run(121.0, 64.0)];
    let a = agreements(&runs, &[]);
    let later: Vec<Vec<Comparison>> = runs[1..]
        .iter()
        .map(|r| compare(&runs[0], r, &[Metric::WallMs]))
        .collect();
    let paths = [Path::new("a"), Path::new("b"), Path::new("c")];
    let j = to_json(&paths, &a, &later);
    let v = &j["verdicts"];
    assert_eq!(v["judged"], 1);
    assert_eq!(v["reversed"], 1);
    assert_eq!(v["stated"], 0);
    assert_eq!(v["same_in_every_run"], 0);
    assert_eq!(
        v["estimates_checked"], 6,
        "three runs, each against the two others"
    );
    let p = &v["points"][0];
    assert_eq!(p["statement"], "REVERSAL");
    assert_eq!(p["metric"], "wall_ms");
    assert_eq!(p["ratios"].as_array().unwrap().len(), 3);
    // The second run's interval lies below 1 by the margin: the reversal's other side.
    let hi = p["ratios"][1]["hi"].as_f64().unwrap();
    assert!(hi < 1.0 - MARGIN, "{p}");
    assert!(
        render_agreements(&a, 3).contains("1 verdicts judged: 0 stated in every run, 1 reversed")
    );
    // One run-to-run list per later run, each with the first run's card table and `none`.
    let r = j["run_to_run"].as_array().unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["run"], 2);
    let card = r[0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["tracker"] == "card-table")
        .unwrap();
    assert_eq!(card["verdict"], "lower");
    assert_eq!(card["section"], "macro");
    assert_eq!(j["runs"][2], "c");
}

#[test]
fn a_point_missing_from_a_run_has_a_null_ratio() {
    let mut second = run(120.0, 64.0);
    second.retain(|r| r.tracker == "none");
    let a = agreements(&[run(120.0, 64.0), second], &[]);
    let j = to_json(&[Path::new("a"), Path::new("b")], &a, &[]);
    let p = &j["verdicts"]["points"][0];
    assert_eq!(p["statement"], "not in every run", "{p}");
    assert!(p["ratios"][1].is_null(), "{p}");
}

#[test]
fn the_work_each_run_calibrated_is_listed_and_a_difference_said() {
    let work = |wl: &str, x: f64| Row {
        section: Section::Calibration,
        workload: wl.into(),
        metric: Metric::AllocatedPerLive,
        value: x,
        ..row("none", 210.0, 0, 0.0)
    };
    let a = vec![work("lru-l64", 12.0), work("gcbench-l64", 90.0)];
    let b = vec![work("lru-l64", 12.3), work("gcbench-l64", 120.0)];
    let w = work_per_run(&[a.clone(), b]);
    assert_eq!(w["lru-l64"], [12.0, 12.3]);
    assert_eq!(w["gcbench-l64"], [90.0, 120.0]);
    let text = render_work(&w);
    assert!(text.contains("| lru-l64 | 12.0 | 12.3 |"), "{text}");
    // Within the margin on the LRU cache; a third more on GCBench: said.
    assert!(text.contains("different work on gcbench-l64:"), "{text}");
    // A run that did not calibrate (an older study): a dash, and said to differ.
    let w = work_per_run(&[a, Vec::new()]);
    assert!(w["lru-l64"][1].is_nan());
    let text = render_work(&w);
    assert!(text.contains("| lru-l64 | 12.0 | – |"), "{text}");
    assert!(text.contains("gcbench-l64, lru-l64"), "{text}");
    // No run calibrated: nothing to say.
    assert_eq!(render_work(&work_per_run(&[Vec::new(), Vec::new()])), "");
}

#[test]
fn each_runs_estimate_is_checked_against_every_other_runs_interval() {
    let count = |runs: &[Vec<Row>]| AgreementCounts::of(&agreements(runs, &[]));
    let same = count(&[run(120.0, 64.0), run(120.0, 64.0)]);
    assert_eq!((same.estimates, same.outside), (2, 0));
    let apart = count(&[run(120.0, 64.0), run(80.0, 64.0)]);
    assert_eq!((apart.estimates, apart.outside), (2, 2));
    // A point missing from a run has no interval there: nothing to check.
    let missing = count(&[run(120.0, 64.0), Vec::new()]);
    assert_eq!(missing.estimates, 0);
    let text = render_agreements(&agreements(&[run(120.0, 64.0), run(80.0, 64.0)], &[]), 2);
    assert!(
        text.contains("2 of 2 estimates (100%) lie outside it"),
        "{text}"
    );
}

#[test]
fn runs_of_blocks_say_what_agreement_chance_allows() {
    // Blocks with a 20% cost and a small spread: each run's spread is kept, the
    // expected agreement is stated and reaches every verdict (the wall time's; these
    // runs have no CPU rows).
    let blocks = [Design::Blocks, Design::Blocks];
    let a = agreements(&[run(120.0, 64.0), run(121.0, 64.0)], &blocks);
    let wall = a.iter().find(|x| x.metric == Metric::WallMs).unwrap();
    assert!(
        wall.spreads
            .iter()
            .all(|s| s.is_some_and(|s| s.blocks == 10)),
        "{wall:?}"
    );
    let text = render_agreements(&a, 2);
    assert!(text.contains("By chance alone: with the spread"), "{text}");
    assert!(
        text.contains("(100%); 90% would need about 3 blocks"),
        "{text}"
    );
    let j = to_json(&[Path::new("a"), Path::new("b")], &a, &[]);
    assert_eq!(j["verdicts"]["chance"]["verdicts"], 1, "{j}");
    assert_eq!(j["verdicts"]["chance"]["blocks_for_90"], 3, "{j}");
    // Without blocks (an older study's order): no spread, nothing estimated.
    let a = agreements(&[run(120.0, 64.0), run(121.0, 64.0)], &[]);
    assert!(a.iter().all(|x| x.spreads.iter().all(Option::is_none)));
    assert!(render_agreements(&a, 2).contains("By chance alone: not estimated"));
    let j = to_json(&[Path::new("a"), Path::new("b")], &a, &[]);
    assert!(j["verdicts"]["chance"].is_null(), "{j}");
}
