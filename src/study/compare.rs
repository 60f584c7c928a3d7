//! `barrierlab compare OLD NEW`: two study folders side by side, per metric and point,
//! the ratio NEW / OLD of the medians over invocations with its 95% bootstrap interval,
//! flagged where the interval excludes 1 (criterion's baseline comparison, for the
//! study's folders).
//!
//! A point is (section, variant, workload, threads, heap size, metric). Heap sizes are
//! multiples of a minimum heap found by search in each run, so the two runs may have
//! chosen different sizes in MiB for the same multiple: heap sizes are matched by their
//! rank among that workload's and thread count's sizes in each run (the k-th smallest
//! with the k-th smallest), and both sizes are shown. Only result rows count (`invalid`
//! and `error` rows are never results), and a point needs two values on each side.

use std::collections::BTreeMap;
use std::path::Path;

use super::Measurement;
use super::report::CSV_HEADER;
use super::stats::{Interval, median, ratio_of_medians, seed_for};
use crate::error::{Error, Result};

/// The metrics compared by default: time, CPU, pauses, utilisation, faults, and the
/// micro's costs.
pub const HEADLINE_METRICS: [&str; 11] = [
    "wall_ms",
    "cpu_total_ms",
    "stw_ms",
    "pause_p99_us",
    "pause_max_us",
    "mmu_10ms",
    "mmu_stall_10ms",
    "faults",
    "fallbacks",
    "total_ns_per_store",
    "stores_ns",
];

/// One compared point.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// `macro` or `micro`.
    pub section: String,
    /// The variant.
    pub tracker: String,
    /// The workload.
    pub workload: String,
    /// Mutator threads.
    pub threads: usize,
    /// Heap sizes in MiB, old and new (matched by rank).
    pub heap_mib: (f64, f64),
    /// The metric.
    pub metric: String,
    /// Median and number of values, old.
    pub old: (f64, usize),
    /// Median and number of values, new.
    pub new: (f64, usize),
    /// NEW / OLD of the medians, with its interval (`None` where a median is 0).
    pub ratio: Option<Interval>,
}

impl Comparison {
    /// "higher" or "lower" where the interval excludes 1, else "no difference measured".
    pub fn verdict(&self) -> &'static str {
        match self.ratio.and_then(|r| r.beside(1.0)) {
            Some(std::cmp::Ordering::Greater) => "higher",
            Some(std::cmp::Ordering::Less) => "lower",
            _ => "no difference measured",
        }
    }
}

/// Reads a study's `study.csv` (in `dir`).
pub fn read_rows(dir: &Path) -> Result<Vec<Measurement>> {
    let path = dir.join("study.csv");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    let mut lines = text.lines();
    if lines.next() != Some(CSV_HEADER) {
        return Err(Error::InvalidArgument(format!(
            "{} is not a study's CSV (its first line is not `{CSV_HEADER}`)",
            path.display()
        )));
    }
    lines
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| {
            parse_line(l).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{} line {}: cannot read `{l}`",
                    path.display(),
                    i + 2
                ))
            })
        })
        .collect()
}

fn parse_line(line: &str) -> Option<Measurement> {
    let f: Vec<&str> = line.splitn(9, ',').collect();
    if f.len() < 8 {
        return None;
    }
    Some(Measurement {
        section: f[0].to_string(),
        tracker: f[1].to_string(),
        workload: f[2].to_string(),
        threads: f[3].parse().ok()?,
        heap_mib: f[4].parse().ok()?,
        invocation: f[5].parse().ok()?,
        metric: f[6].to_string(),
        value: f[7].parse().ok()?,
        note: f.get(8).unwrap_or(&"").to_string(),
    })
}

type Key = (String, String, String, usize, usize, String);

/// The result rows of `metrics` grouped by point, heap sizes replaced by their rank.
fn grouped(rows: &[Measurement], metrics: &[&str]) -> BTreeMap<Key, (f64, Vec<f64>)> {
    // The distinct heap sizes of each (section, workload, threads), ascending.
    let mut sizes: BTreeMap<(&str, &str, usize), Vec<f64>> = BTreeMap::new();
    for r in rows {
        sizes
            .entry((&r.section, &r.workload, r.threads))
            .or_default()
            .push(r.heap_mib);
    }
    for v in sizes.values_mut() {
        v.sort_by(f64::total_cmp);
        v.dedup();
    }
    let mut out: BTreeMap<Key, (f64, Vec<f64>)> = BTreeMap::new();
    for r in rows {
        if !(r.section == "macro" || r.section == "micro") || !metrics.contains(&&*r.metric) {
            continue;
        }
        let rank = sizes[&(&*r.section, &*r.workload, r.threads)]
            .iter()
            .position(|&h| h == r.heap_mib)
            .expect("every size is listed");
        let key = (
            r.section.clone(),
            r.tracker.clone(),
            r.workload.clone(),
            r.threads,
            rank,
            r.metric.clone(),
        );
        let e = out.entry(key).or_insert((r.heap_mib, Vec::new()));
        e.1.push(r.value);
    }
    out
}

/// Compares the result rows of two studies over `metrics`: every point present in both
/// with at least two values on each side, in (section, variant, workload, threads, heap,
/// metric) order.
pub fn compare(old: &[Measurement], new: &[Measurement], metrics: &[&str]) -> Vec<Comparison> {
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

/// The comparison as a Markdown table, with a line saying how to read it.
pub fn render(cmp: &[Comparison], old: &Path, new: &Path) -> String {
    let mut s = format!(
        "NEW {} / OLD {}: ratio of medians over invocations, 95% bootstrap interval; a \
         difference is claimed only where the interval excludes 1.\n\n\
         | point | metric | old (n) | new (n) | new/old [95% CI] | verdict |\n\
         |---|---|---|---|---|---|\n",
        new.display(),
        old.display()
    );
    for c in cmp {
        let heap = if c.heap_mib.0 == c.heap_mib.1 {
            format!("{} MiB", c.heap_mib.0)
        } else {
            format!("{} / {} MiB", c.heap_mib.0, c.heap_mib.1)
        };
        let ratio = match c.ratio {
            Some(r) => format!("{:.3} [{:.3}, {:.3}]", r.estimate, r.lo, r.hi),
            None => "-".to_string(),
        };
        s.push_str(&format!(
            "| {} {} {} x{} {heap} | {} | {:.4} ({}) | {:.4} ({}) | {ratio} | {} |\n",
            c.section,
            c.tracker,
            c.workload,
            c.threads,
            c.metric,
            c.old.0,
            c.old.1,
            c.new.0,
            c.new.1,
            c.verdict()
        ));
    }
    if cmp.is_empty() {
        s.push_str("| (no point with two values on each side) | | | | | |\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tracker: &str, heap: f64, inv: usize, value: f64) -> Measurement {
        Measurement {
            section: "macro".into(),
            tracker: tracker.into(),
            workload: "gcbench".into(),
            threads: 1,
            heap_mib: heap,
            invocation: inv,
            metric: "wall_ms".into(),
            value,
            note: String::new(),
        }
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
        // The card table 20% slower; `none` the same values in another order. Heap
        // sizes differ (another minimum heap) but have the same rank.
        let new: Vec<_> = (0..10)
            .flat_map(|i| {
                [
                    row("card-table", 34.0, i, 120.0 + i as f64 * 1.2),
                    row("none", 34.0, i, 59.0 - i as f64),
                ]
            })
            .collect();
        let cmp = compare(&old, &new, &["wall_ms"]);
        assert_eq!(cmp.len(), 2);
        let card = cmp.iter().find(|c| c.tracker == "card-table").unwrap();
        assert_eq!(card.heap_mib, (32.0, 34.0));
        let r = card.ratio.unwrap();
        assert!((r.estimate - 1.2).abs() < 1e-9, "{r:?}");
        assert_eq!(card.verdict(), "higher");
        let none = cmp.iter().find(|c| c.tracker == "none").unwrap();
        assert_eq!(none.verdict(), "no difference measured", "{none:?}");
    }

    #[test]
    fn csv_lines_read_back() {
        let r = row("uffd-wp[thread]", 48.0, 3, 12.5);
        let line = super::super::report::csv_line(&r);
        assert_eq!(parse_line(line.trim_end()), Some(r));
    }
}
