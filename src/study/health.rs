//! Concurrency health of an end-to-end point: whether a barrier's numbers there measure
//! the barrier, or something else.
//!
//! A concurrent barrier's result is a barrier result only when its collector ran as a
//! concurrent collector: if more than [`MAX_FALLBACK_SHARE`] of its cycles were full
//! stop-the-world collections forced by an allocation (fallbacks), or if it ran a number
//! of cycles more than [`MAX_CYCLE_GAP`] away from the card table's at the same point
//! (the schedule, not the barrier, then differs), or if its mutators spent more than
//! [`MAX_STALL_SHARE`] of the run waiting for cycles to make room (allocation stalls: the
//! collector could not keep up, and the point measures that), the point is marked with
//! the reason and no verdict is drawn from it. It reads rows and decides; it never
//! prints.

use super::data::{At, Metric, Row, Section, select};
use super::stats::median;

/// The largest share of a point's cycles that may be fallbacks.
pub const MAX_FALLBACK_SHARE: f64 = 0.10;

/// The largest relative difference from the card table's cycle count.
pub const MAX_CYCLE_GAP: f64 = 0.20;

/// The largest share of the wall time (per mutator) spent in allocation stalls.
pub const MAX_STALL_SHARE: f64 = 0.10;

/// The health columns of one (point, tracker), medians over its invocations.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// Cycles completed.
    pub cycles: f64,
    /// Fallbacks (full collections forced by an allocation).
    pub fallbacks: f64,
    /// Fallbacks over cycles.
    pub fallback_share: f64,
    /// Share of wall time with the tracker armed (NaN where not recorded).
    pub armed_share: f64,
    /// MiB allocated per cycle (NaN where not recorded).
    pub alloc_per_cycle_mib: f64,
    /// Allocation-stall time over wall time and mutators (NaN where not recorded).
    pub stall_share: f64,
    /// Time the mutators waited, paced by a pre-clean that did not converge, over wall
    /// time and mutators (NaN where not recorded).
    pub paced_share: f64,
    /// Why the point is not a barrier result, if it is not.
    pub failure: Option<String>,
}

impl Health {
    /// Whether verdicts may be drawn from the point.
    pub fn passes(&self) -> bool {
        self.failure.is_none()
    }
}

/// Whether `tracker` is a concurrent barrier of barrierlab (the rule applies to those).
pub fn is_concurrent(tracker: &str) -> bool {
    tracker != "none" && !tracker.starts_with("bdwgc")
}

/// The health of `tracker` at a point; `None` without rows.
pub fn health(
    rows: &[Row],
    tracker: &str,
    workload: &str,
    threads: usize,
    heap_mib: f64,
) -> Option<Health> {
    let get = |t: &str, m: Metric| {
        select(
            rows,
            At::new(Section::Macro, workload, threads, Some(heap_mib)),
            t,
            m,
        )
        .collect::<Vec<f64>>()
    };
    let cycles = get(tracker, Metric::Cycles);
    if cycles.is_empty() {
        return None;
    }
    let fallbacks = get(tracker, Metric::Fallbacks);
    let shares: Vec<f64> = cycles
        .iter()
        .zip(&fallbacks)
        .map(|(&c, &f)| if c > 0.0 { f / c } else { 0.0 })
        .collect();
    let med = |v: Vec<f64>| if v.is_empty() { f64::NAN } else { median(&v) };
    // Per invocation: a time the mutators spent, over the wall time and the mutators.
    let share_of_wall = |m: Metric| -> Vec<f64> {
        (get(tracker, m).iter())
            .zip(get(tracker, Metric::WallMs))
            .map(|(&t, wall)| t / (wall * threads.max(1) as f64))
            .collect()
    };
    let mut h = Health {
        cycles: median(&cycles),
        fallbacks: med(fallbacks),
        fallback_share: med(shares),
        armed_share: med(get(tracker, Metric::ArmedShare)),
        alloc_per_cycle_mib: med(get(tracker, Metric::AllocPerCycleMib)),
        stall_share: med(share_of_wall(Metric::AllocStallMs)),
        paced_share: med(share_of_wall(Metric::PacedMs)),
        failure: None,
    };
    if !is_concurrent(tracker) {
        return Some(h);
    }
    let mut why = Vec::new();
    if h.fallback_share > MAX_FALLBACK_SHARE {
        why.push(format!(
            "falls back in {:.0}% of its cycles (more than {:.0}%)",
            h.fallback_share * 100.0,
            MAX_FALLBACK_SHARE * 100.0
        ));
    }
    if h.stall_share > MAX_STALL_SHARE {
        why.push(format!(
            "its mutators waited for cycles {:.0}% of the run (more than {:.0}%)",
            h.stall_share * 100.0,
            MAX_STALL_SHARE * 100.0
        ));
    }
    let card = get("card-table", Metric::Cycles);
    if !card.is_empty() && tracker != "card-table" {
        let c = median(&card);
        if c > 0.0 && ((h.cycles - c) / c).abs() > MAX_CYCLE_GAP {
            why.push(format!(
                "{} cycles against the card table's {} (more than {:.0}% apart)",
                h.cycles,
                c,
                MAX_CYCLE_GAP * 100.0
            ));
        }
    }
    if !why.is_empty() {
        h.failure = Some(why.join("; "));
    }
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(tracker: &str, cycles: f64, fallbacks: f64) -> Vec<Row> {
        let r = |metric, value| Row {
            section: Section::Macro,
            tracker: tracker.into(),
            workload: "w".into(),
            threads: 1,
            heap_mib: 256.0,
            invocation: 0,
            round: 0,
            metric,
            value,
            note: String::new(),
        };
        vec![r(Metric::Cycles, cycles), r(Metric::Fallbacks, fallbacks)]
    }

    #[test]
    fn fallbacks_and_a_cycle_gap_fail_a_point_with_the_reason() {
        let mut all = rows("card-table", 20.0, 0.0);
        all.extend(rows("mprotect", 20.0, 3.0));
        all.extend(rows("uffd-wp-async", 26.0, 0.0));
        all.extend(rows("uffd-wp-sigbus", 23.0, 2.0));
        all.extend(rows("none", 5.0, 0.0));
        let h = |t| health(&all, t, "w", 1, 256.0).unwrap();
        assert!(h("card-table").passes());
        assert!(h("none").passes(), "the baseline is not judged by the rule");
        let m = h("mprotect");
        assert!(m.failure.as_deref().unwrap().contains("15%"), "{m:?}");
        let a = h("uffd-wp-async");
        assert!(a.failure.as_deref().unwrap().contains("26 cycles"), "{a:?}");
        assert!(
            h("uffd-wp-sigbus").passes(),
            "9% fallbacks and 15% apart are within the rule"
        );
        assert!(health(&all, "other", "w", 1, 256.0).is_none());
    }

    #[test]
    fn mutators_waiting_for_cycles_fail_a_point() {
        let row = |tracker: &str, metric, value| Row {
            section: Section::Macro,
            tracker: tracker.into(),
            workload: "w".into(),
            threads: 2,
            heap_mib: 256.0,
            invocation: 0,
            round: 0,
            metric,
            value,
            note: String::new(),
        };
        let mut all = rows("card-table", 20.0, 0.0);
        all.extend(rows("uffd-wp", 20.0, 0.0));
        all.extend(rows("mprotect", 20.0, 0.0));
        for t in ["card-table", "uffd-wp", "mprotect"] {
            for r in &mut all {
                r.threads = 2;
            }
            all.push(row(t, Metric::WallMs, 1000.0));
        }
        // Two mutators: 300 ms of stalls is 15% of their 2000 ms; 100 ms is 5%.
        all.push(row("uffd-wp", Metric::AllocStallMs, 300.0));
        all.push(row("mprotect", Metric::AllocStallMs, 100.0));
        let h = |t| health(&all, t, "w", 2, 256.0).unwrap();
        let u = h("uffd-wp");
        assert!((u.stall_share - 0.15).abs() < 1e-9, "{u:?}");
        assert!(
            u.failure
                .as_deref()
                .unwrap()
                .contains("waited for cycles 15%"),
            "{u:?}"
        );
        assert!(h("mprotect").passes());
        // Paced waits are reported the same way, and judge nothing.
        all.push(row("mprotect", Metric::PacedMs, 400.0));
        let h = |t| health(&all, t, "w", 2, 256.0).unwrap();
        assert!((h("mprotect").paced_share - 0.2).abs() < 1e-9);
        assert!(
            h("mprotect").passes(),
            "pacing is not a failure of the point"
        );
        assert!(h("uffd-wp").paced_share.is_nan());
        assert!(
            h("card-table").stall_share.is_nan(),
            "not recorded: not judged"
        );
        assert!(h("card-table").passes());
    }
}
