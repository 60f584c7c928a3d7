//! The study's time budget, through the real binary: once every point has had its
//! minimum invocations, more go to the points whose intervals are still wide only while
//! the budget lasts; when it ends them, `meta.json` and the report say how many points
//! were left wide, and the study ends near its budget rather than at the most
//! invocations.

use std::collections::BTreeMap;

use barrierlab::study::data;
use barrierlab::study::meta::Meta;
use barrierlab::study::{Metric, Section};

use super::study::{barrierlab, out_dir};

#[test]
fn the_budget_ends_the_extra_invocations_and_the_report_says_so() {
    let out = out_dir("budget");
    // One invocation per point first, then up to 50 more while the interval is wider than
    // a millionth of the median (never, in practice): only the budget can end them.
    let run = barrierlab(&[
        "study",
        "--quick",
        "--trackers",
        "card-table",
        "--heap",
        "2",
        "--invocations",
        "1",
        "--max-invocations",
        "50",
        "--ci-width",
        "0.000001",
        "--budget-min",
        "1",
        "--no-peer",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.success(), "the study runs: {}", run.stderr);
    let meta: Meta =
        serde_json::from_str(&std::fs::read_to_string(out.join("meta.json")).expect("meta.json"))
            .expect("meta.json reads back");
    let policy = meta.invocations.expect("the policy is recorded");
    assert_eq!(policy.budget_s, Some(60.0), "{policy:?}");
    let cut = meta
        .cut_by_budget
        .expect("the budget, not the points, ended the extra invocations");
    assert!(cut > 0, "points were left wide: {cut}");
    let elapsed = meta.elapsed_s.expect("the study finished");
    // The extras stop before the budget less the time kept for the report; one
    // invocation may overrun its point's mean.
    assert!(
        elapsed < 60.0 + 30.0,
        "the study ended near its budget: {elapsed} s"
    );
    assert!(
        meta.parts.iter().any(|p| p.name == "more invocations"),
        "{:?}",
        meta.parts
    );
    // Extra invocations ran: some end-to-end point has more than one.
    let rows = data::read(&out).expect("study.csv reads back").rows;
    let mut n: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.section == Section::Macro && r.metric == Metric::WallMs)
    {
        *n.entry((
            r.tracker.clone(),
            r.workload.clone(),
            format!("{}", r.heap_mib),
        ))
        .or_default() += 1;
    }
    assert!(!n.is_empty(), "end-to-end points ran");
    assert!(
        n.values().any(|&k| k > 1),
        "the budget left time for extra invocations: {n:?}"
    );
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(
        report.contains(&format!("**{cut} point(s) still wider than the target**")),
        "the report's header says what the budget cut"
    );
    let _ = std::fs::remove_dir_all(&out);
}
