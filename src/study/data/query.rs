//! The queries the report, the figures and `compare` ask of the rows.

use std::collections::BTreeMap;

use super::{Metric, Row, Section};

/// A point of a section: (workload, threads, heap MiB).
pub type PointKey = (String, usize, f64);

/// Where a query looks: the rows of one section at one (workload, threads, heap) point;
/// `heap_mib` `None`: any size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct At<'a> {
    /// The section.
    pub section: Section,
    /// The workload's label.
    pub workload: &'a str,
    /// Mutator threads.
    pub threads: usize,
    /// The heap, in MiB (`None`: any).
    pub heap_mib: Option<f64>,
}

impl<'a> At<'a> {
    /// The point `(workload, threads, heap_mib)` of `section`.
    pub fn new(section: Section, workload: &'a str, threads: usize, heap_mib: Option<f64>) -> Self {
        At {
            section,
            workload,
            threads,
            heap_mib,
        }
    }

    fn matches(&self, r: &Row) -> bool {
        r.section == self.section
            && r.workload == self.workload
            && r.threads == self.threads
            && self
                .heap_mib
                .is_none_or(|h| r.heap_mib.total_cmp(&h).is_eq())
    }
}

/// The rows of `tracker`'s `metric` at `at`.
fn matching<'a>(
    rows: &'a [Row],
    at: At<'a>,
    tracker: &'a str,
    metric: Metric,
) -> impl Iterator<Item = &'a Row> + 'a {
    rows.iter()
        .filter(move |r| r.metric == metric && r.tracker == tracker && at.matches(r))
}

/// The values of `tracker`'s `metric` at `at`.
pub fn select<'a>(
    rows: &'a [Row],
    at: At<'a>,
    tracker: &'a str,
    metric: Metric,
) -> impl Iterator<Item = f64> + 'a {
    matching(rows, at, tracker, metric).map(|r| r.value)
}

/// Like [`select`], each value with its invocation number: the block it ran in, for a
/// study whose invocations ran in blocks ([`crate::study::stats::Design::Blocks`]).
pub fn select_numbered(
    rows: &[Row],
    at: At<'_>,
    tracker: &str,
    metric: Metric,
) -> Vec<(usize, f64)> {
    matching(rows, at, tracker, metric)
        .map(|r| (r.invocation, r.value))
        .collect()
}

/// The variants present in a section: `none` first, then by name, bdwgc last.
pub fn trackers(rows: &[Row], section: Section) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| r.section == section) {
        if !seen.contains(&r.tracker) {
            seen.push(r.tracker.clone());
        }
    }
    seen.sort_by_key(|t| (t.starts_with("bdwgc"), t != "none", t.clone()));
    seen
}

/// The (workload, threads, heap) points of a section, in order of appearance.
pub fn points(rows: &[Row], section: Section) -> Vec<PointKey> {
    let mut keys: Vec<PointKey> = Vec::new();
    for r in rows.iter().filter(|r| r.section == section) {
        let k = (r.workload.clone(), r.threads, r.heap_mib);
        if !keys
            .iter()
            .any(|x| x.0 == k.0 && x.1 == k.1 && x.2.total_cmp(&k.2).is_eq())
        {
            keys.push(k);
        }
    }
    keys
}

/// The heap multiple of an end-to-end point: its `heap_multiple` rows' median, or the
/// heap over the minimum-heap row of its workload and thread count (older CSVs).
pub fn heap_multiple(rows: &[Row], workload: &str, threads: usize, heap_mib: f64) -> Option<f64> {
    let recorded: Vec<f64> = rows
        .iter()
        .filter(|r| {
            r.section == Section::Macro
                && r.metric == Metric::HeapMultiple
                && r.workload == workload
                && r.threads == threads
                && r.heap_mib.total_cmp(&heap_mib).is_eq()
        })
        .map(|r| r.value)
        .collect();
    if let Some(&m) = recorded.first() {
        return Some(m);
    }
    select(
        rows,
        At::new(Section::Minheap, workload, threads, None),
        "none",
        Metric::MinHeapMib,
    )
    .next()
    .map(|min| heap_mib / min)
}

/// The micro samples of one (tracker, pattern): `f` of each round's metrics, one value
/// per **process** (the median of its rounds) when several processes measured it, so
/// that an interval reflects the variation between processes; one value per round when
/// a single process did (older CSVs).
pub fn micro_samples(
    rows: &[Row],
    tracker: &str,
    label: &str,
    f: impl Fn(&dyn Fn(Metric) -> f64) -> f64,
) -> Vec<f64> {
    let mut by: BTreeMap<(usize, usize), BTreeMap<Metric, f64>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.section == Section::Micro && r.tracker == tracker && r.workload == label)
    {
        by.entry((r.invocation, r.round))
            .or_default()
            .insert(r.metric, r.value);
    }
    let mut per_process: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for ((p, _), m) in &by {
        let v = f(&|k| m.get(&k).copied().unwrap_or(f64::NAN));
        if v.is_finite() {
            per_process.entry(*p).or_default().push(v);
        }
    }
    if per_process.len() == 1 {
        return per_process.into_values().next().unwrap_or_default();
    }
    per_process
        .values()
        .map(|v| crate::study::stats::median(v))
        .collect()
}

/// The stores-per-page values of the main micro sweep (`pages-spp<N>` labels).
pub fn swept(rows: &[Row]) -> Vec<u64> {
    let mut s: Vec<u64> = rows
        .iter()
        .filter(|r| r.section == Section::Micro)
        .filter_map(|r| r.workload.strip_prefix("pages-spp")?.parse().ok())
        .collect();
    s.sort_unstable();
    s.dedup();
    s
}

/// The micro curve of a variant: (stores per page, median total ns per store).
pub fn micro_curve(rows: &[Row], tracker: &str) -> Vec<(f64, f64)> {
    swept(rows)
        .into_iter()
        .filter_map(|spp| {
            let v = micro_samples(rows, tracker, &format!("pages-spp{spp}"), |m| {
                m(Metric::TotalNsPerStore)
            });
            (!v.is_empty()).then(|| (spp as f64, crate::study::stats::median(&v)))
        })
        .collect()
}

/// One heap-size curve's points: (workload, threads) and its (heap MiB, multiple)s.
pub type Curve = ((String, usize), Vec<(f64, f64)>);

/// The heap-size curves' grid: (workload, threads) → heap sizes (MiB) with their
/// multiples, ascending.
pub fn curve_grid(rows: &[Row]) -> Vec<Curve> {
    let mut out: Vec<Curve> = Vec::new();
    for (wl, threads, heap) in points(rows, Section::Macro) {
        let mult = heap_multiple(rows, &wl, threads, heap).unwrap_or(f64::NAN);
        let k = (wl, threads);
        match out.iter_mut().find(|e| e.0 == k) {
            Some(e) => e.1.push((heap, mult)),
            None => out.push((k, vec![(heap, mult)])),
        }
    }
    for e in &mut out {
        e.1.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}
