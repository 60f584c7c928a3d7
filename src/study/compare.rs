//! `barrierlab compare RUN RUN [RUN…]`: several study folders side by side.
//!
//! Two parts. **Verdicts across runs**: for every end-to-end point and variant, each
//! run's ratio to `none` (wall and CPU time) with its 95% interval; a difference is
//! stated only where *every* run's interval lies beyond 1 by the practical margin
//! [`MARGIN`] on the same side, at a point whose health passes in every run; a
//! *reversal* (one run's interval above, another's below) is listed by name. **Run to
//! run**: per metric and point, the ratio LATER / FIRST of the medians with its interval
//! (criterion's baseline comparison), a change stated with the same margin.
//!
//! Points are matched by (section, variant, workload, threads, heap rank): each run finds
//! its own minimum heaps, so the k-th smallest heap of a workload is matched with the
//! k-th smallest (both sizes are shown). Only result rows count. It reads rows and
//! prints tables, or with `--json` one object ([`to_json`]) for tools that read it as
//! data; it never measures.

use std::collections::BTreeMap;
use std::path::Path;

use super::data::{Metric, Row, Section};
use super::health;
use super::stats::{Design, Interval, median, paired, ratio_of_medians, ratio_to, seed_for};

pub mod chance;
use chance::Spread;

/// A ratio states a difference only beyond 1 ± this.
pub const MARGIN: f64 = 0.05;

/// The metrics compared run to run by default.
pub const HEADLINE_METRICS: [Metric; 11] = [
    Metric::WallMs,
    Metric::CpuTotalMs,
    Metric::StwMs,
    Metric::PauseP99Us,
    Metric::PauseMaxUs,
    Metric::Mmu(10),
    Metric::MmuStall(10),
    Metric::Faults,
    Metric::Fallbacks,
    Metric::TotalNsPerStore,
    Metric::StoresNs,
];

/// Which side of 1 an interval lies, by the margin.
fn side(i: &Interval) -> Option<std::cmp::Ordering> {
    if i.lo > 1.0 + MARGIN {
        Some(std::cmp::Ordering::Greater)
    } else if i.hi < 1.0 - MARGIN {
        Some(std::cmp::Ordering::Less)
    } else {
        None
    }
}

/// One compared point, run to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// `macro` or `micro`.
    pub section: Section,
    /// The variant.
    pub tracker: String,
    /// The workload.
    pub workload: String,
    /// Mutator threads.
    pub threads: usize,
    /// Heap sizes in MiB, old and new (matched by rank).
    pub heap_mib: (f64, f64),
    /// The metric.
    pub metric: Metric,
    /// Median and number of values, old.
    pub old: (f64, usize),
    /// Median and number of values, new.
    pub new: (f64, usize),
    /// NEW / OLD of the medians, with its interval (`None` where a median is 0).
    pub ratio: Option<Interval>,
}

impl Comparison {
    /// "higher" or "lower" where the interval lies beyond 1 by the margin, else "no
    /// difference stated".
    pub fn verdict(&self) -> &'static str {
        match self.ratio.as_ref().and_then(side) {
            Some(std::cmp::Ordering::Greater) => "higher",
            Some(std::cmp::Ordering::Less) => "lower",
            _ => "no difference stated",
        }
    }
}

type Key = (Section, String, String, usize, usize, Metric);

/// The heap rank of each row's size among its (section, workload, threads)'s sizes.
fn rank_of(rows: &[Row]) -> impl Fn(&Row) -> usize + '_ {
    let mut sizes: BTreeMap<(Section, &str, usize), Vec<f64>> = BTreeMap::new();
    for r in rows {
        sizes
            .entry((r.section, &r.workload, r.threads))
            .or_default()
            .push(r.heap_mib);
    }
    for v in sizes.values_mut() {
        v.sort_by(f64::total_cmp);
        v.dedup_by(|a, b| a.total_cmp(b).is_eq());
    }
    move |r: &Row| {
        sizes
            .get(&(r.section, r.workload.as_str(), r.threads))
            .and_then(|v| v.iter().position(|h| h.total_cmp(&r.heap_mib).is_eq()))
            .unwrap_or(usize::MAX)
    }
}

/// The result rows of `metrics` grouped by point, heap sizes replaced by their rank.
fn grouped(rows: &[Row], metrics: &[Metric]) -> BTreeMap<Key, (f64, Vec<f64>)> {
    let rank = rank_of(rows);
    let mut out: BTreeMap<Key, (f64, Vec<f64>)> = BTreeMap::new();
    for r in rows {
        if !matches!(r.section, Section::Macro | Section::Micro) || !metrics.contains(&r.metric) {
            continue;
        }
        let key = (
            r.section,
            r.tracker.clone(),
            r.workload.clone(),
            r.threads,
            rank(r),
            r.metric,
        );
        let e = out.entry(key).or_insert((r.heap_mib, Vec::new()));
        e.1.push(r.value);
    }
    out
}

/// Each later run (`runs[1..]`) against the first, over `metrics`; with `changed`, only the
/// points whose interval lies beyond 1 by the margin. What `barrierlab compare` prints (and
/// `--json` writes) per later run.
pub fn against_first(runs: &[Vec<Row>], metrics: &[Metric], changed: bool) -> Vec<Vec<Comparison>> {
    runs.iter()
        .skip(1)
        .map(|later| {
            let mut cmp = compare(&runs[0], later, metrics);
            if changed {
                cmp.retain(|c| c.verdict() != "no difference stated");
            }
            cmp
        })
        .collect()
}

/// Compares the result rows of two studies over `metrics`: every point present in both
/// with at least two values on each side.
pub fn compare(old: &[Row], new: &[Row], metrics: &[Metric]) -> Vec<Comparison> {
    let (old, new) = (grouped(old, metrics), grouped(new, metrics));
    let mut out = Vec::new();
    for (key, (old_heap, o)) in &old {
        let Some((new_heap, n)) = new.get(key) else {
            continue;
        };
        if o.len() < 2 || n.len() < 2 {
            continue;
        }
        let (section, tracker, workload, threads, _, metric) = key.clone();
        let seed = seed_for(0, &format!("{key:?}"));
        out.push(Comparison {
            section,
            tracker,
            workload,
            threads,
            heap_mib: (*old_heap, *new_heap),
            metric,
            old: (median(o), o.len()),
            new: (median(n), n.len()),
            ratio: ratio_of_medians(n, o, seed),
        });
    }
    out
}

/// One (point, variant, metric)'s verdicts against `none` across runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// `workload xT rank k`.
    pub point: String,
    /// The variant.
    pub tracker: String,
    /// Wall or CPU time.
    pub metric: Metric,
    /// Each run's ratio to `none` (None: the run has no such point).
    pub ratios: Vec<Option<Interval>>,
    /// Each run's spread between blocks (None: no such point, or a run formed without
    /// blocks), for [`chance`].
    pub spreads: Vec<Option<Spread>>,
    /// What may be said: `slower`, `faster`, `no difference stated`, `REVERSAL`, or `not
    /// judged (…)`.
    pub statement: String,
    /// Whether every run, judged alone, gave the same verdict (slower, faster, or no
    /// difference beyond the margin): the replication measure, stricter than
    /// `statement`, which calls a difference stated in one run only "no difference".
    pub same_in_every_run: bool,
}

/// The verdicts of every end-to-end (point, variant) against `none`, across `runs`, each
/// run's ratios formed as its invocations were ordered (`designs`, one per run; a run
/// past the end of `designs` counts as [`Design::Shuffled`]).
pub fn agreements(runs: &[Vec<Row>], designs: &[Design]) -> Vec<Agreement> {
    let mut keys: Vec<(String, usize, usize, String)> = Vec::new();
    for rows in runs {
        let rank = rank_of(rows);
        for r in rows.iter().filter(|r| {
            r.section == Section::Macro
                && r.metric == Metric::WallMs
                && health::is_concurrent(&r.tracker)
        }) {
            let k = (r.workload.clone(), r.threads, rank(r), r.tracker.clone());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    keys.sort();
    let mut out = Vec::new();
    for (wl, threads, k, tracker) in keys {
        for metric in [Metric::WallMs, Metric::CpuTotalMs] {
            let mut ratios = Vec::new();
            let mut spreads = Vec::new();
            let mut unhealthy = Vec::new();
            for (i, rows) in runs.iter().enumerate() {
                let rank = rank_of(rows);
                let at = |t: &str| -> (Vec<(usize, f64)>, f64) {
                    let mut heap = f64::NAN;
                    let v = rows
                        .iter()
                        .filter(|r| {
                            r.section == Section::Macro
                                && r.metric == metric
                                && r.tracker == t
                                && r.workload == wl
                                && r.threads == threads
                                && rank(r) == k
                        })
                        .inspect(|r| heap = r.heap_mib)
                        .map(|r| (r.invocation, r.value))
                        .collect();
                    (v, heap)
                };
                let ((v, heap), (none, _)) = (at(&tracker), at("none"));
                if let Some(h) = health::health(rows, &tracker, &wl, threads, heap)
                    && let Some(why) = h.failure
                {
                    unhealthy.push(format!("run {}: {why}", i + 1));
                }
                let seed = seed_for(0, &format!("{wl}/{threads}/{k}/{tracker}/{metric}"));
                let design = designs.get(i).copied().unwrap_or(Design::Shuffled);
                ratios.push(ratio_to(design, &v, &none, seed));
                spreads.push(match design {
                    Design::Blocks => Spread::of(&paired(&v, &none, |a, b| a / b)),
                    Design::Shuffled => None,
                });
            }
            let sides: Vec<Option<std::cmp::Ordering>> =
                ratios.iter().map(|r| r.as_ref().and_then(side)).collect();
            let statement = if !unhealthy.is_empty() {
                format!("not judged ({})", unhealthy.join("; "))
            } else if sides.contains(&Some(std::cmp::Ordering::Greater))
                && sides.contains(&Some(std::cmp::Ordering::Less))
            {
                "REVERSAL".to_string()
            } else if ratios.iter().any(Option::is_none) {
                "not in every run".to_string()
            } else if sides
                .iter()
                .all(|s| *s == Some(std::cmp::Ordering::Greater))
            {
                "slower".to_string()
            } else if sides.iter().all(|s| *s == Some(std::cmp::Ordering::Less)) {
                "faster".to_string()
            } else {
                "no difference stated".to_string()
            };
            let same_in_every_run =
                ratios.iter().all(Option::is_some) && sides.windows(2).all(|w| w[0] == w[1]);
            out.push(Agreement {
                point: format!("{wl} x{threads} heap #{}", k + 1),
                tracker: tracker.clone(),
                metric,
                ratios,
                spreads,
                statement,
                same_in_every_run,
            });
        }
    }
    out
}

fn ratio_text(r: &Option<Interval>) -> String {
    match r {
        Some(r) => format!("{:.3} [{:.3}, {:.3}]", r.estimate, r.lo, r.hi),
        None => "-".to_string(),
    }
}

/// The run-to-run comparison as a Markdown table, with a line saying how to read it.
pub fn render(cmp: &[Comparison], old: &Path, new: &Path) -> String {
    let cell = |p: &Path| super::format::cell_text(&p.display().to_string());
    let mut s = format!(
        "NEW {} / OLD {}: ratio of medians over invocations, 95% bootstrap interval; a \
         difference is stated only where the interval lies beyond 1 by {:.0}%.\n\n\
         | point | metric | old (n) | new (n) | new/old [95% CI] | verdict |\n\
         |---|---|---|---|---|---|\n",
        cell(new),
        cell(old),
        MARGIN * 100.0
    );
    for c in cmp {
        let heap = if c.heap_mib.0.total_cmp(&c.heap_mib.1).is_eq() {
            format!("{} MiB", c.heap_mib.0)
        } else {
            format!("{} / {} MiB", c.heap_mib.0, c.heap_mib.1)
        };
        s.push_str(&format!(
            "| {} {} {} x{} {heap} | {} | {:.4} ({}) | {:.4} ({}) | {} | {} |\n",
            c.section,
            c.tracker,
            c.workload,
            c.threads,
            c.metric,
            c.old.0,
            c.old.1,
            c.new.0,
            c.new.1,
            ratio_text(&c.ratio),
            c.verdict()
        ));
    }
    if cmp.is_empty() {
        s.push_str("| (no point with two values on each side) | | | | | |\n");
    }
    s
}

/// How the verdicts across runs came out: what [`render_agreements`] and [`to_json`]
/// both report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgreementCounts {
    /// Verdicts judged (not `not judged`, not `not in every run`).
    pub judged: usize,
    /// Of those, a difference stated in every run (`slower` or `faster`).
    pub stated: usize,
    /// Of those, reversals.
    pub reversed: usize,
    /// Of those, the same verdict in every run judged alone.
    pub same: usize,
    /// Every (point, tracker, metric), judged or not, with an interval in every run:
    /// one run's estimate against another run's interval, for every ordered pair of
    /// runs — how many such checks there were,
    pub estimates: usize,
    /// and how many found the estimate outside the interval. With honest 95% intervals
    /// and the same true ratio in every run, about 9% would at three blocks' *t*
    /// interval, 12% at five, 17% at many (both estimates err;
    /// [`chance::expected_outside`] simulates it for the runs' own blocks): far more
    /// says the intervals claim a precision the runs do not have.
    pub outside: usize,
}

impl AgreementCounts {
    /// Counts `a`.
    pub fn of(a: &[Agreement]) -> AgreementCounts {
        let inside = checks(a);
        let judged: Vec<&Agreement> = a
            .iter()
            .filter(|x| !x.statement.starts_with("not "))
            .collect();
        AgreementCounts {
            judged: judged.len(),
            stated: judged
                .iter()
                .filter(|x| x.statement == "slower" || x.statement == "faster")
                .count(),
            reversed: judged.iter().filter(|x| x.statement == "REVERSAL").count(),
            same: judged.iter().filter(|x| x.same_in_every_run).count(),
            estimates: inside.len(),
            outside: inside.iter().filter(|&&held| !held).count(),
        }
    }
}

/// For every (point, tracker, metric) with an interval in every run, and every ordered
/// pair of runs, whether the one's estimate lies inside the other's interval.
fn checks(a: &[Agreement]) -> Vec<bool> {
    let mut inside = Vec::new();
    for x in a.iter().filter(|x| x.ratios.iter().all(Option::is_some)) {
        let r: Vec<&Interval> = x.ratios.iter().flatten().collect();
        for (i, own) in r.iter().enumerate() {
            for (j, other) in r.iter().enumerate() {
                if i != j {
                    inside.push(own.beside(other.estimate).is_none());
                }
            }
        }
    }
    inside
}

/// The verdicts across runs as a Markdown table, with the counts and the reversals.
pub fn render_agreements(a: &[Agreement], runs: usize) -> String {
    let mut s = format!(
        "Verdicts against `none` in {runs} runs: a difference is stated only where every run's \
         95% interval lies beyond 1 by {:.0}% on the same side, at a point whose health passes \
         in every run.\n\n| point | tracker | metric |",
        MARGIN * 100.0
    );
    for i in 1..=runs {
        s.push_str(&format!(" run {i} |"));
    }
    s.push_str(" statement |\n|---|---|---|");
    s.push_str(&"---|".repeat(runs + 1));
    s.push('\n');
    for x in a {
        s.push_str(&format!("| {} | {} | {} |", x.point, x.tracker, x.metric));
        for r in &x.ratios {
            s.push_str(&format!(" {} |", ratio_text(r)));
        }
        s.push_str(&format!(" {} |\n", super::format::cell_text(&x.statement)));
    }
    let n = AgreementCounts::of(a);
    s.push_str(&format!(
        "\n{} verdicts judged: {} stated in every run, {} reversed, {} with no difference \
         stated. Each run judged alone (slower, faster, or no difference stated): the same verdict \
         in every run for {} of {} ({:.0}%).\n",
        n.judged,
        n.stated,
        n.reversed,
        n.judged - n.stated - n.reversed,
        n.same,
        n.judged,
        100.0 * n.same as f64 / n.judged.max(1) as f64
    ));
    s.push_str(&chance::sentence(chance::expected(a)));
    let honest = match chance::expected_outside(a) {
        Some(share) => format!(
            "with honest 95% intervals and the same true ratio in every run about {:.0}% \
             would, at these runs' numbers of blocks (simulated)",
            100.0 * share
        ),
        None => "what honest intervals would give is not estimated (a run formed its \
                 ratios without blocks)"
            .to_string(),
    };
    s.push_str(&format!(
        "Each run's ratio against every other run's interval (every point and metric with \
         an interval in every run): {} of {} estimates ({:.0}%) lie outside it; {honest}.\n",
        n.outside,
        n.estimates,
        100.0 * n.outside as f64 / n.estimates.max(1) as f64
    ));
    for r in a.iter().filter(|x| x.statement == "REVERSAL") {
        s.push_str(&format!(
            "- reversal: {} {} {}\n",
            r.point, r.tracker, r.metric
        ));
    }
    s
}

/// The work each run calibrated per workload (bytes allocated per live byte), by label:
/// one value per run, NaN where a run did not calibrate that workload.
pub fn work_per_run(runs: &[Vec<Row>]) -> BTreeMap<String, Vec<f64>> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (i, rows) in runs.iter().enumerate() {
        for r in rows
            .iter()
            .filter(|r| r.section == Section::Calibration && r.metric == Metric::AllocatedPerLive)
        {
            out.entry(r.workload.clone())
                .or_insert_with(|| vec![f64::NAN; runs.len()])[i] = r.value;
        }
    }
    out
}

/// The work per run as a Markdown table, and whether it differed by more than
/// [`MARGIN`] between runs (then their milliseconds differ by design: compare ratios);
/// empty where no run calibrated its work.
pub fn render_work(work: &BTreeMap<String, Vec<f64>>) -> String {
    if work.is_empty() {
        return String::new();
    }
    let runs = work.values().next().map_or(0, Vec::len);
    let mut s = String::from(
        "Work per run (bytes allocated per live byte, as each run calibrated it):\n\n| workload |",
    );
    for i in 1..=runs {
        s.push_str(&format!(" run {i} |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(runs));
    s.push('\n');
    let mut differ = Vec::new();
    for (wl, v) in work {
        s.push_str(&format!("| {wl} |"));
        for x in v {
            let cell = if x.is_finite() {
                super::format::fmt(*x)
            } else {
                "–".into()
            };
            s.push_str(&format!(" {cell} |"));
        }
        s.push('\n');
        let (lo, hi) = v.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
        if v.iter().any(|x| !x.is_finite()) || hi > lo * (1.0 + MARGIN) {
            differ.push(wl.as_str());
        }
    }
    if !differ.is_empty() {
        s.push_str(&format!(
            "\nThe runs did different work on {}: their wall times differ by design; the \
             verdicts compare ratios to `none` within each run.\n",
            differ.join(", ")
        ));
    }
    s.push('\n');
    s
}

/// An interval as JSON: `{"estimate", "lo", "hi"}`, or `null`.
fn interval_json(r: &Option<Interval>) -> serde_json::Value {
    match r {
        Some(r) => serde_json::json!({"estimate": r.estimate, "lo": r.lo, "hi": r.hi}),
        None => serde_json::Value::Null,
    }
}

/// The whole comparison as one JSON object, for tools that read it as data (the paper's
/// generator): the runs, the margin, the verdicts across runs with their counts, and per
/// later run its run-to-run comparisons with the first.
pub fn to_json(runs: &[&Path], a: &[Agreement], later: &[Vec<Comparison>]) -> serde_json::Value {
    let n = AgreementCounts::of(a);
    serde_json::json!({
        "runs": runs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "margin": MARGIN,
        "verdicts": {
            "judged": n.judged,
            "stated": n.stated,
            "reversed": n.reversed,
            "same_in_every_run": n.same,
            "estimates_checked": n.estimates,
            "estimates_outside": n.outside,
            "estimates_outside_expected": chance::expected_outside(a),
            "chance": chance::expected(a).map(|c| serde_json::json!({
                "verdicts": c.verdicts,
                "expected_same": c.expected_same,
                "blocks_for_90": c.blocks_for_90,
            })),
            "points": a.iter().map(|x| serde_json::json!({
                "point": x.point,
                "tracker": x.tracker,
                "metric": x.metric,
                "ratios": x.ratios.iter().map(interval_json).collect::<Vec<_>>(),
                "statement": x.statement,
                "same_in_every_run": x.same_in_every_run,
            })).collect::<Vec<_>>(),
        },
        "run_to_run": later.iter().enumerate().map(|(i, cmp)| serde_json::json!({
            "run": i + 2,
            "points": cmp.iter().map(|c| serde_json::json!({
                "section": c.section,
                "tracker": c.tracker,
                "workload": c.workload,
                "threads": c.threads,
                "heap_mib": [c.heap_mib.0, c.heap_mib.1],
                "metric": c.metric,
                "old": {"median": c.old.0, "n": c.old.1},
                "new": {"median": c.new.0, "n": c.new.1},
                "ratio": interval_json(&c.ratio),
                "verdict": c.verdict(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests;
