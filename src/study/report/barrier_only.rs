//! Barrier cost with the collection held fixed: each workload run with no collection at
//! all, the tracker armed and harvested on the same fixed schedule for every barrier
//! (`HeapConfig::duty_cycle`), on a heap that holds everything the workload allocates.
//! The slowdown over `none` is what the barrier costs the mutators, set beside the micro's
//! prediction: the per-store cost times the stores, plus the per-first-write cost times
//! the first writes counted (faults, or the pages `uffd-wp-async` recorded).

use super::Doc;
use super::micro::costs;
use crate::study::data::{Metric, Row, Section, points, select, trackers};
use crate::study::format::fmt;
use crate::study::point::{BARRIER_ONLY_ARMED_SHARE, BARRIER_ONLY_PERIOD};
use crate::study::stats;
use crate::study::summary::Cell;

/// Predicted and measured extra times further apart than this are flagged.
const AGREEMENT: f64 = 0.25;

const COLUMNS: [&str; 10] = [
    "barrier",
    "n",
    "wall ms",
    "÷ none",
    "extra ms, measured",
    "extra ms, predicted",
    "predicted ÷ measured",
    "stores / first writes",
    "armed",
    "agreement",
];

pub(super) fn write(doc: &mut Doc, rows: &[Row], seed: u64) {
    let keys = points(rows, Section::Barrieronly);
    if keys.is_empty() {
        return;
    }
    doc.heading(2, "Barrier cost with the collection held fixed");
    doc.para(&format!(
        "A shorter run of each workload (the length of a minimum-heap search step; GCBench's \
         work is fixed) on one thread with no collection: its heap holds everything it \
         allocates (1.25× what `none` allocated in its end-to-end runs, scaled to the \
         shorter run, plus 64 MiB; above the study's cap, an error row says the workload was \
         not measured), and the collector thread only \
         arms the tracker for {:.0}% of every {} ms, harvests it (the dirty set is counted \
         and dropped) and disarms it, the same schedule for every barrier. *÷ none*: ratio \
         of the medians of wall time, 95% interval. *extra ms, measured*: median wall time \
         minus `none`'s. *predicted*: the micro's cost per store times the workload's stores, \
         plus its cost per first write to a page times the first writes counted here (the \
         faults served, or for `uffd-wp-async` the pages its harvests reported; the card \
         table takes none). The prediction leaves out what the micro does not see: the \
         arms' and harvests' effect on the mutator (TLB shootdowns while it runs), cache \
         effects of the card table at this heap size. Where prediction and measurement \
         differ by more than {:.0}%, *agreement* says so.",
        BARRIER_ONLY_ARMED_SHARE * 100.0,
        BARRIER_ONLY_PERIOD.as_millis(),
        AGREEMENT * 100.0
    ));
    for (wl, threads, heap) in &keys {
        doc.heading(
            3,
            &format!("{wl}, {threads} thread(s), {} MiB heap", fmt(*heap)),
        );
        let get = |t: &str, m: Metric| {
            select(rows, Section::Barrieronly, t, wl, *threads, Some(*heap), m)
                .collect::<Vec<f64>>()
        };
        let med = |t: &str, m: Metric| stats::median(&get(t, m));
        let none_wall = get("none", Metric::WallMs);
        let mut table = Vec::new();
        for t in trackers(rows, Section::Barrieronly) {
            let wall = get(&t, Metric::WallMs);
            if wall.is_empty() {
                continue;
            }
            let s = |what: &str| stats::seed_for(seed, &format!("barrier-only/{what}/{t}/{wl}"));
            let ci = Cell::estimate(stats::median_ci(&wall, s("wall")));
            if t == "none" {
                table.push(vec![
                    Cell::text(t.clone()),
                    Cell::count(wall.len() as f64),
                    ci,
                    Cell::text("baseline"),
                    Cell::text(""),
                    Cell::text(""),
                    Cell::text(""),
                    Cell::text(""),
                    Cell::text(""),
                    Cell::text(""),
                ]);
                continue;
            }
            let ratio = stats::ratio_of_medians(&wall, &none_wall, s("ratio"));
            let measured = med(&t, Metric::WallMs) - med("none", Metric::WallMs);
            let stores = med(&t, Metric::Stores);
            let first_writes = if t.starts_with("uffd-wp-async") {
                med(&t, Metric::DutyRecorded)
            } else {
                med(&t, Metric::Faults)
            };
            let predicted = costs(rows, &t, seed).map(|(per_store, per_first)| {
                let ns = per_store.map_or(0.0, |i| i.estimate) * stores
                    + per_first.map_or(0.0, |i| i.estimate) * first_writes;
                ns / 1e6
            });
            let (pred_cell, ratio_cell, agreement) = match predicted {
                Some(p) if measured.is_finite() && measured.abs() > 0.0 => {
                    let r = p / measured;
                    let agree = if (r - 1.0).abs() <= AGREEMENT {
                        "within 25%".to_string()
                    } else {
                        format!("**differ** by {:.0}%", (r - 1.0).abs() * 100.0)
                    };
                    (Cell::number(p), Cell::number(r), agree)
                }
                Some(p) => (Cell::number(p), Cell::text("–"), "–".into()),
                None => (
                    Cell::text("no micro"),
                    Cell::text("–"),
                    "no micro in this study".into(),
                ),
            };
            table.push(vec![
                Cell::text(t.clone()),
                Cell::count(wall.len() as f64),
                ci,
                Cell::ratio(ratio, ratio.map_or("", |i| i.time_verdict())),
                Cell::number(measured),
                pred_cell,
                ratio_cell,
                Cell::text(format!("{} / {}", fmt(stores), fmt(first_writes))),
                Cell::percent(med(&t, Metric::DutyArmedShare)),
                Cell::text(agreement),
            ]);
        }
        doc.table(&COLUMNS, table);
    }
    doc.shows(
        "what each barrier costs the mutators when the collection is the same for all (none), \
         and how much of it the micro's per-store and per-first-write costs explain; a \
         measured cost well above the prediction is paid elsewhere (arming and harvesting \
         while the mutator runs, or the mechanism's effect on the mutator's caches and TLB).",
    );
}
