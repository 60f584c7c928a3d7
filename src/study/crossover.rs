//! Where a page tracker's cost per store falls to the card table's: the crossover of the
//! micro sweep's curves, with a bootstrap interval over the samples at every point of the
//! sweep (processes, or rounds for an older single-process CSV). Read by the report, the
//! figures and the `crossover` example; it reads rows and never writes anything.

use super::data::{Metric, Row, micro_samples, swept};
use super::stats::{self, Interval, median};

/// Where two cost-per-store curves cross (the first point, going up the sweep, where
/// `tracker` stops costing more than `card`), log-log interpolated; NaN if they do not
/// cross within the sweep.
fn crossing(spps: &[f64], tracker: &[f64], card: &[f64]) -> f64 {
    let pts: Vec<(f64, f64)> = spps
        .iter()
        .zip(tracker.iter().zip(card))
        .map(|(&s, (&t, &c))| (s.ln(), (t / c).ln()))
        .collect();
    if pts.first().is_some_and(|p| p.1 <= 0.0) {
        return spps[0];
    }
    for w in pts.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if y0 > 0.0 && y1 <= 0.0 {
            return (x0 + (x1 - x0) * y0 / (y0 - y1)).exp();
        }
    }
    f64::NAN
}

/// The crossover of one page tracker with the card table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossover {
    /// Stores per dirtied page where the measured costs per store cross, with its
    /// bootstrap interval, if they cross.
    pub measured: Option<Interval>,
    /// Share of the bootstrap resamples in which the curves cross within the sweep.
    pub crossing_share: f64,
    /// The largest stores-per-page of the sweep.
    pub swept_to: f64,
}

/// Finds where `tracker`'s cost per store (arm, stores and harvest) falls to `card`'s.
pub fn crossover(rows: &[Row], tracker: &str, card: &str, seed: u64) -> Option<Crossover> {
    let spps = swept(rows);
    let groups = |t: &str| -> Vec<Vec<f64>> {
        spps.iter()
            .map(|spp| {
                micro_samples(rows, t, &format!("pages-spp{spp}"), |m| {
                    m(Metric::TotalNsPerStore)
                })
            })
            .collect()
    };
    let (tg, cg) = (groups(tracker), groups(card));
    if spps.len() < 2 || tg.iter().chain(&cg).any(|g| g.is_empty()) {
        return None;
    }
    let x: Vec<f64> = spps.iter().map(|&s| s as f64).collect();
    let k = spps.len();
    let all: Vec<&[f64]> = tg.iter().chain(&cg).map(|g| g.as_slice()).collect();
    let stat = |gs: &[Vec<f64>]| {
        let m: Vec<f64> = gs.iter().map(|g| median(g)).collect();
        crossing(&x, &m[..k], &m[k..])
    };
    let measured = stats::bootstrap_groups(&all, stats::seed_for(seed, tracker), stat);
    // The share of resamples that cross, for the reader to judge a missing interval.
    let share = stats::finite_share(&all, stats::seed_for(seed, card), 200, stat);
    Some(Crossover {
        measured,
        crossing_share: share,
        swept_to: x[k - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::data::Section;

    fn micro_row(t: &str, spp: u64, round: usize, v: f64) -> Row {
        Row {
            section: Section::Micro,
            tracker: t.into(),
            workload: format!("pages-spp{spp}"),
            threads: 1,
            heap_mib: 16.0,
            invocation: 0,
            round,
            metric: Metric::TotalNsPerStore,
            value: v,
            note: String::new(),
        }
    }

    #[test]
    fn crossover_of_synthetic_curves() {
        // Card: 1 ns per store. Page: 1000 ns per page + 0.5 ns per store: per store
        // 1000/spp + 0.5, equal to 1 at spp = 2000. Three rounds with a little noise.
        let mut rows = Vec::new();
        for spp in [1u64, 10, 100, 1000, 10_000, 100_000] {
            for round in 0..3 {
                let noise = 1.0 + 0.01 * round as f64;
                for (t, v) in [("card-table", 1.0), ("page", 1000.0 / spp as f64 + 0.5)] {
                    rows.push(micro_row(t, spp, round, v * noise));
                }
            }
        }
        let c = crossover(&rows, "page", "card-table", 1).unwrap();
        let m = c.measured.unwrap();
        assert!(m.estimate > 1000.0 && m.estimate < 10_000.0, "{c:?}");
        assert!(m.lo <= m.estimate && m.estimate <= m.hi, "{c:?}");
        assert_eq!(c.crossing_share, 1.0);
        // A tracker that never gets cheaper: no crossover, no interval.
        let never: Vec<Row> = rows
            .iter()
            .filter(|r| r.tracker == "card-table")
            .map(|r| Row {
                tracker: "slow".into(),
                value: r.value * 2.0,
                ..r.clone()
            })
            .chain(rows.iter().cloned())
            .collect();
        let c = crossover(&never, "slow", "card-table", 1).unwrap();
        assert!(c.measured.is_none() && c.crossing_share == 0.0, "{c:?}");
    }
}
