//! Steadiness of the host: whether the machine ran the study's end-to-end invocations at
//! one speed throughout, and where it did not.
//!
//! Every ratio the report states compares invocations measured at different times. On a
//! shared virtual machine the host can run the guest more slowly for a while (run 1 of the
//! paper's results ran about 40 barrier-only invocations about 1.4 times slower than the
//! same points ran at other times); this section finds such a stretch from the rows alone.
//! Each invocation's wall time is taken over its point's median; the log of that ratio is
//! smoothed in measurement order by a running median over [`WINDOW`] invocations, and a
//! stretch is a run of at least [`WINDOW`] invocations whose smoothed ratio stays beyond
//! [`THRESHOLD`] (slow) or its inverse (fast).
//!
//! Measurement order is the rows' order: the study streams every invocation's rows to
//! `study.csv` as the invocation ends (`Runner::run_points` in `study/points.rs` pushes
//! them to the sink in the shuffled order it runs them, the end-to-end and huge-page
//! points interleaved in one order, the barrier-only points after them), and
//! [`crate::study::data::read`] returns them in the file's order.

use std::collections::{HashMap, HashSet};

use super::Doc;
use crate::study::data::{Metric, Row, Section};
use crate::study::format::fmt;
use crate::study::stats::median;
use crate::study::summary::Cell;

/// Invocations in the running median's window: centred on the invocation, shorter at the
/// ends. Also the fewest invocations a stretch must last: a window's worth is what the
/// smoothing can tell from one or two unlucky invocations.
const WINDOW: usize = 15;

/// How far from its point's median the smoothed wall time must stay, as a ratio (above
/// it, slow; below its inverse, fast), for the host to be called unsteady: beyond what a
/// steady host shows (the smoothed ratio of runs 2 and 3 of the paper's results peaks at
/// 1.15× and 1.13×, and dips below 1/1.2 for 8 and 12 invocations, short of a window).
const THRESHOLD: f64 = 1.2;

/// The fewest invocations a point needs for its median to be a baseline: with fewer, the
/// median is one or two invocations, and each invocation's deviation from it mostly its
/// own noise.
const MIN_INVOCATIONS: usize = 3;

/// The sections whose invocations each run one end-to-end process and record one wall
/// time, in the order their names are listed.
const SECTIONS: [Section; 3] = [Section::Macro, Section::Hugepages, Section::Barrieronly];

/// A point: (section, tracker, workload, threads, heap MiB's bits).
type Point<'a> = (Section, &'a str, &'a str, usize, u64);

/// The point a row belongs to.
fn point(r: &Row) -> Point<'_> {
    (
        r.section,
        &r.tracker,
        &r.workload,
        r.threads,
        r.heap_mib.to_bits(),
    )
}

/// Which way a stretch departs from the points' medians.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// The host ran the invocations slowly (smoothed ratio above [`THRESHOLD`]).
    Slow,
    /// The host ran them fast (smoothed ratio below 1 / [`THRESHOLD`]).
    Fast,
}

impl Direction {
    /// The direction of a smoothed ratio, or `None` within the threshold.
    fn of(ratio: f64) -> Option<Direction> {
        if ratio > THRESHOLD {
            Some(Direction::Slow)
        } else if ratio < 1.0 / THRESHOLD {
            Some(Direction::Fast)
        } else {
            None
        }
    }

    /// The word the table prints.
    fn name(self) -> &'static str {
        match self {
            Direction::Slow => "slow",
            Direction::Fast => "fast",
        }
    }
}

/// A run of invocations during which the host was not steady.
#[derive(Debug, Clone, PartialEq)]
struct Stretch {
    /// Slow or fast.
    direction: Direction,
    /// Its first invocation (1-based, among the invocations used, in measurement order).
    first: usize,
    /// Its last invocation (1-based, inclusive).
    last: usize,
    /// The sections its invocations belong to, in [`SECTIONS`]' order.
    sections: Vec<Section>,
    /// The median of its smoothed ratios.
    median_ratio: f64,
}

impl Stretch {
    /// How many invocations it spans.
    fn len(&self) -> usize {
        self.last + 1 - self.first
    }
}

/// What the section reports: the invocations used and how the host ran them.
#[derive(Debug, Clone, PartialEq)]
struct Steadiness {
    /// Each invocation used, in measurement order: its section.
    sections: Vec<Section>,
    /// Each invocation's smoothed ratio (exp of the running median of its deviations).
    smoothed: Vec<f64>,
    /// The fewest and the most invocations of a point used.
    per_point: (usize, usize),
    /// The stretches, in measurement order.
    stretches: Vec<Stretch>,
}

/// The wall-time rows of end-to-end, huge-page and barrier-only invocations, in
/// measurement order, one per invocation: should a point's invocation carry two, the first
/// counts (the stored runs carry exactly one each).
fn wall_rows(rows: &[Row]) -> Vec<&Row> {
    let mut seen = HashSet::new();
    rows.iter()
        .filter(|r| SECTIONS.contains(&r.section) && r.metric == Metric::WallMs)
        .filter(|r| r.value.is_finite() && r.value > 0.0)
        .filter(|r| seen.insert((point(r), r.invocation)))
        .collect()
}

/// Each invocation's deviation, ln(its wall time / its point's median), in measurement
/// order, with its section; invocations of points with fewer than [`MIN_INVOCATIONS`]
/// are left out. Also the fewest and most invocations of a point kept.
fn deviations(rows: &[Row]) -> (Vec<(Section, f64)>, (usize, usize)) {
    let wall = wall_rows(rows);
    let mut by_point: HashMap<Point<'_>, Vec<f64>> = HashMap::new();
    for r in &wall {
        by_point.entry(point(r)).or_default().push(r.value);
    }
    let kept: Vec<&Vec<f64>> = by_point
        .values()
        .filter(|v| v.len() >= MIN_INVOCATIONS)
        .collect();
    let per_point = (
        kept.iter().map(|v| v.len()).min().unwrap_or(0),
        kept.iter().map(|v| v.len()).max().unwrap_or(0),
    );
    let medians: HashMap<Point<'_>, f64> = by_point
        .iter()
        .filter(|(_, v)| v.len() >= MIN_INVOCATIONS)
        .map(|(k, v)| (*k, median(v)))
        .collect();
    let devs = wall
        .iter()
        .filter_map(|r| {
            let m = medians.get(&point(r))?;
            Some((r.section, (r.value / m).ln()))
        })
        .collect();
    (devs, per_point)
}

/// The running median of `values` over a centred window of `window` values, shorter at
/// the ends (where fewer neighbours exist): robust to a single outlying invocation, as a
/// running mean is not.
fn running_median(values: &[f64], window: usize) -> Vec<f64> {
    let half = window / 2;
    (0..values.len())
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(values.len());
            median(&values[lo..hi])
        })
        .collect()
}

/// The stretches of `smoothed` ratios beyond the threshold, each at least [`WINDOW`]
/// long, with the sections of their invocations.
fn stretches(smoothed: &[f64], sections: &[Section]) -> Vec<Stretch> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < smoothed.len() {
        let direction = Direction::of(smoothed[start]);
        let end = (start..smoothed.len())
            .find(|&i| Direction::of(smoothed[i]) != direction)
            .unwrap_or(smoothed.len());
        if let Some(direction) = direction.filter(|_| end - start >= WINDOW) {
            let inside = &sections[start..end];
            out.push(Stretch {
                direction,
                first: start + 1,
                last: end,
                sections: SECTIONS
                    .into_iter()
                    .filter(|s| inside.contains(s))
                    .collect(),
                median_ratio: median(&smoothed[start..end]),
            });
        }
        start = end;
    }
    out
}

/// How the host ran the study's end-to-end invocations, from the rows in measurement
/// order.
fn detect(rows: &[Row]) -> Steadiness {
    let (devs, per_point) = deviations(rows);
    let (sections, values): (Vec<Section>, Vec<f64>) = devs.into_iter().unzip();
    let smoothed: Vec<f64> = running_median(&values, WINDOW)
        .into_iter()
        .map(f64::exp)
        .collect();
    let stretches = stretches(&smoothed, &sections);
    Steadiness {
        sections,
        smoothed,
        per_point,
        stretches,
    }
}

/// A section's name as the report's headings give it.
fn section_name(s: Section) -> &'static str {
    match s {
        Section::Macro => "end to end",
        Section::Hugepages => "huge pages",
        Section::Barrieronly => "barrier only",
        other => other.name(),
    }
}

/// The sections of a stretch, as the table prints them (`end to end, huge pages`).
fn section_names(sections: &[Section]) -> String {
    let names: Vec<&str> = sections.iter().map(|s| section_name(*s)).collect();
    names.join(", ")
}

/// The lowest and the highest of some values (NaN when empty).
fn range(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::NAN, f64::NAN), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// Writes the section: a paragraph with what was used and the smoothed ratio's range, a
/// table of the same, and a table of the stretches (or a sentence that there is none).
pub(super) fn write(doc: &mut Doc, rows: &[Row]) {
    doc.heading(2, "Steadiness of the host");
    doc.shows(
        "whether the machine ran the study at one speed: every ratio in this report compares \
         invocations measured at different times, so a host that ran the guest more slowly \
         for a while moves whatever was measured then.",
    );
    let s = detect(rows);
    if s.smoothed.is_empty() {
        doc.para(&format!(
            "No end-to-end, huge-page or barrier-only point has {MIN_INVOCATIONS} invocations or \
             more: nothing to judge the host's steadiness by."
        ));
        return;
    }
    let (lo, hi) = range(&s.smoothed);
    doc.para(&format!(
        "Each end-to-end, huge-page and barrier-only invocation's wall time over its point's \
         median wall time ({} invocations, of the points with at least {MIN_INVOCATIONS}), in \
         the order they were measured, smoothed by a running median over {WINDOW} invocations: \
         the smoothed ratio ranged from {}× to {}×.",
        s.smoothed.len(),
        fmt(lo),
        fmt(hi),
    ));
    let count = |d: Direction| s.stretches.iter().filter(|x| x.direction == d).count() as f64;
    doc.table(
        &["", "value"],
        vec![
            vec![
                Cell::text("invocations used"),
                Cell::count(s.smoothed.len() as f64),
            ],
            vec![Cell::text("lowest smoothed ratio"), Cell::number(lo)],
            vec![Cell::text("highest smoothed ratio"), Cell::number(hi)],
            vec![
                Cell::text("slow stretches"),
                Cell::count(count(Direction::Slow)),
            ],
            vec![
                Cell::text("fast stretches"),
                Cell::count(count(Direction::Fast)),
            ],
        ],
    );
    if s.stretches.is_empty() {
        doc.para(&format!(
            "The host was steady within {THRESHOLD}× throughout: the smoothed ratio never \
             stayed above {THRESHOLD}× or below 1/{THRESHOLD} for {WINDOW} invocations."
        ));
        return;
    }
    write_stretches(doc, &s);
}

/// The stretches' table, with what a stretch means for the reader.
fn write_stretches(doc: &mut Doc, s: &Steadiness) {
    let (fewest, most) = s.per_point;
    doc.para(&format!(
        "The host was not steady. In each stretch of the table under this paragraph the \
         smoothed ratio stayed above {THRESHOLD}× (slow) or below 1/{THRESHOLD} (fast) for at \
         least {WINDOW} invocations (numbered 1 to {} in the order measured). The points \
         measured during a stretch are biased by the host, not by their barrier: the random \
         interleaving spreads that bias over all points, but with {fewest}–{most} invocations \
         a point can be hit hard (and the barrier-only points, measured after all the others, \
         take the whole of a stretch in their part). A point measured largely inside a stretch \
         has its median moved too, so the ratio understates the stretch, and the point's other \
         invocations read as the opposite.",
        s.smoothed.len(),
    ));
    let table = s
        .stretches
        .iter()
        .map(|x| {
            vec![
                Cell::text(x.direction.name()),
                Cell::count(x.first as f64),
                Cell::count(x.last as f64),
                Cell::count(x.len() as f64),
                Cell::text(section_names(&x.sections)),
                Cell::number(x.median_ratio),
            ]
        })
        .collect();
    doc.table(
        &[
            "host",
            "first",
            "last",
            "invocations",
            "sections",
            "median ratio",
        ],
        table,
    );
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Points measured before the barrier-only ones (every fourth on huge pages).
    const END_TO_END_POINTS: usize = 16;
    /// Barrier-only points, measured after them.
    const BARRIER_ONLY_POINTS: usize = 8;
    /// Invocations per point.
    const INVOCATIONS: usize = 5;
    /// The planted slowdown.
    const SLOWER: f64 = 1.5;
    /// The invocations (1-based) the host runs slowly: 40–70 of 120.
    const PLANTED: std::ops::RangeInclusive<usize> = 40..=70;

    /// A row of `point` (its section, a tracker and heap of its own).
    fn row(section: Section, point: usize, invocation: usize, metric: Metric, value: f64) -> Row {
        Row {
            section,
            tracker: format!("t{point}"),
            workload: "gcbench-l64".into(),
            threads: 1,
            heap_mib: 140.0,
            invocation,
            round: 0,
            metric,
            value,
            note: String::new(),
        }
    }

    /// 120 wall-time rows: the end-to-end points round-robin, then the barrier-only points
    /// round-robin (so a point meets a 31-invocation stretch at most twice in five), each
    /// within ±3% of its point's own time, and `slow` (1-based positions) `SLOWER` times
    /// slower.
    fn study(slow: Option<std::ops::RangeInclusive<usize>>) -> Vec<Row> {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut rows = Vec::new();
        let parts = [
            (0, END_TO_END_POINTS),
            (END_TO_END_POINTS, BARRIER_ONLY_POINTS),
        ];
        for (offset, points) in parts {
            for invocation in 0..INVOCATIONS {
                for p in offset..offset + points {
                    let section = match p {
                        p if p >= END_TO_END_POINTS => Section::Barrieronly,
                        p if p % 4 == 3 => Section::Hugepages,
                        _ => Section::Macro,
                    };
                    let position = rows.len() + 1;
                    let host = match &slow {
                        Some(s) if s.contains(&position) => SLOWER,
                        _ => 1.0,
                    };
                    let wall = (1000.0 + 37.0 * p as f64) * rng.random_range(0.97..1.03) * host;
                    rows.push(row(section, p, invocation, Metric::WallMs, wall));
                }
            }
        }
        rows
    }

    /// The report's Markdown and tables for `rows`, this section alone.
    fn written(rows: &[Row]) -> Doc {
        let mut doc = Doc::new();
        write(&mut doc, rows);
        doc
    }

    #[test]
    fn a_planted_slow_stretch_is_found_where_it_was_planted() {
        let s = detect(&study(Some(PLANTED)));
        assert_eq!(s.smoothed.len(), 120);
        assert_eq!(s.per_point, (INVOCATIONS, INVOCATIONS));
        assert_eq!(s.stretches.len(), 1, "{:?}", s.stretches);
        let x = &s.stretches[0];
        let half = WINDOW / 2;
        assert_eq!(x.direction, Direction::Slow);
        assert!(x.first.abs_diff(*PLANTED.start()) <= half, "{x:?}");
        assert!(x.last.abs_diff(*PLANTED.end()) <= half, "{x:?}");
        assert_eq!(x.sections, vec![Section::Macro, Section::Hugepages]);
        assert!((x.median_ratio - SLOWER).abs() < 0.1, "{x:?}");
        let doc = written(&study(Some(PLANTED)));
        assert!(doc.md.contains("## Steadiness of the host"), "{}", doc.md);
        assert!(doc.md.contains("*What this shows*"), "{}", doc.md);
        assert!(doc.md.contains("biased by the host"), "{}", doc.md);
        assert!(
            doc.md.contains(&format!(
                "| slow | {} | {} | {} | end to end, huge pages |",
                x.first,
                x.last,
                x.len()
            )),
            "{}",
            doc.md
        );
        let summary = &doc.tables[0];
        assert_eq!(summary.heading, "Steadiness of the host");
        assert_eq!(
            summary.cell("slow stretches", "value"),
            Some(&Cell::count(1.0))
        );
        assert_eq!(
            summary.cell("invocations used", "value"),
            Some(&Cell::count(120.0))
        );
        assert_eq!(doc.tables[1].header.len(), 6);
    }

    #[test]
    fn a_steady_host_has_no_stretch_and_says_so() {
        let s = detect(&study(None));
        assert!(s.stretches.is_empty(), "{:?}", s.stretches);
        let (lo, hi) = range(&s.smoothed);
        assert!(lo > 1.0 / THRESHOLD && hi < THRESHOLD, "{lo} {hi}");
        let doc = written(&study(None));
        assert!(
            doc.md.contains("steady within 1.2× throughout"),
            "{}",
            doc.md
        );
        assert_eq!(doc.tables.len(), 1, "no stretch table");
        assert_eq!(
            doc.tables[0].cell("slow stretches", "value"),
            Some(&Cell::count(0.0))
        );
    }

    #[test]
    fn a_point_with_fewer_than_three_invocations_counts_for_nothing() {
        let base = study(Some(PLANTED));
        let mut rows = Vec::new();
        for (i, r) in base.iter().enumerate() {
            rows.push(r.clone());
            // Every third invocation, one of a point run twice, ten times slower the
            // second time: counted, it would read as slow and fast in turn.
            if i % 3 == 0 {
                let p = 100 + i / 6;
                let twice = (i / 3) % 2;
                let wall = if twice == 0 { 1000.0 } else { 10_000.0 };
                rows.push(row(Section::Macro, p, twice, Metric::WallMs, wall));
            }
        }
        assert_eq!(detect(&rows), detect(&base));
    }

    #[test]
    fn other_metrics_sections_and_repeated_rows_count_for_nothing() {
        let base = study(Some(PLANTED));
        let mut rows = Vec::new();
        for r in &base {
            rows.push(r.clone());
            let mut other = r.clone();
            other.metric = Metric::StwMs;
            other.value *= 50.0;
            rows.push(other.clone());
            for section in [Section::Micro, Section::Invalid, Section::Heapmap] {
                other.section = section;
                other.metric = Metric::WallMs;
                rows.push(other.clone());
            }
            // The same invocation's wall time again: the first one counts.
            let mut again = r.clone();
            again.value *= 9.0;
            rows.push(again);
        }
        assert_eq!(detect(&rows), detect(&base));
        assert!(detect(&[]).smoothed.is_empty());
        assert!(written(&[]).md.contains("nothing to judge"));
    }

    #[test]
    fn the_running_median_is_centred_and_shorter_at_the_ends() {
        let v = [5.0, 1.0, 9.0, 2.0, 7.0, 3.0];
        assert_eq!(running_median(&v, 3), vec![3.0, 5.0, 2.0, 7.0, 3.0, 5.0]);
        assert_eq!(running_median(&v, 1), v.to_vec());
        assert!(running_median(&[], WINDOW).is_empty());
    }

    /// The stored runs of the paper's results, read as `report` reads them.
    fn stored(run: usize) -> Steadiness {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("papers/results/run-{run}"));
        let rows = crate::study::data::read(&dir).unwrap_or_else(|e| panic!("{e}"));
        detect(&rows.rows)
    }

    #[test]
    fn the_stored_run_1_has_one_slow_stretch_in_its_barrier_only_part() {
        let s = stored(1);
        // 583 wall-time rows, one per invocation; one point (bdwgc-incremental at 140 MiB,
        // its other two invocations out of memory) has one.
        assert_eq!(s.smoothed.len(), 582);
        assert_eq!(s.stretches.len(), 1, "{:?}", s.stretches);
        let x = &s.stretches[0];
        assert_eq!(x.direction, Direction::Slow);
        assert_eq!((x.first, x.last), (502, 517), "{x:?}");
        assert_eq!(x.sections, vec![Section::Barrieronly]);
        assert!((1.3..1.45).contains(&x.median_ratio), "{x:?}");
        let (_, hi) = range(&s.smoothed);
        assert!((1.4..1.5).contains(&hi), "{hi}");
    }

    #[test]
    fn the_stored_runs_2_and_3_were_steady() {
        for run in [2, 3] {
            let s = stored(run);
            assert!(s.smoothed.len() > 500, "run {run}");
            assert!(s.stretches.is_empty(), "run {run}: {:?}", s.stretches);
            // Never slow; a few invocations below 1/1.2 (run 2 from 459, run 3 from 209),
            // fewer than a window's worth.
            let (_, hi) = range(&s.smoothed);
            assert!(hi < THRESHOLD, "run {run}: {hi}");
        }
    }
}
