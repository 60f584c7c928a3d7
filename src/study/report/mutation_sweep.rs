//! GCOld's mutation-rate sweep: at each rate (pointer stores into old trees per step),
//! each barrier's wall time against the card table's, with its interval, to show where
//! (if anywhere) page protection overtakes card marking end to end: more stores per
//! dirtied page favour the page trackers, whose cost is per page, not per store.

use super::Doc;
use crate::study::data::{At, Metric, Row, Section, points, select, trackers};
use crate::study::format::fmt;
use crate::study::health;
use crate::study::stats;
use crate::study::summary::Cell;

/// The label prefix of the sweep's workloads (`gcold-m1000-l64`).
const PREFIX: &str = "gcold-m";

pub(super) fn write(doc: &mut Doc, rows: &[Row], seed: u64) {
    let mut keys: Vec<_> = points(rows, Section::Macro)
        .into_iter()
        .filter(|k| k.0.starts_with(PREFIX))
        .collect();
    if keys.is_empty() {
        return;
    }
    // By mutation rate, the number after the prefix.
    keys.sort_by_key(|k| rate(&k.0));
    doc.heading(
        2,
        "GCOld: card marking against page protection by mutation rate",
    );
    doc.para(
        "GCOld (the old-generation benchmark of Sun Microsystems Laboratories, ported in \
         `src/workload/gcold.rs`) at twice its minimum heap, swept over its mutation rate: \
         the pointer stores into old trees per step. Each cell is a barrier's wall time over \
         the card table's at that rate (ratio of medians, 95% interval) and the verdict, drawn \
         only where both points pass the health rule; below 1 the barrier is faster than the \
         card table.",
    );
    let barriers: Vec<String> = trackers(rows, Section::Macro)
        .into_iter()
        .filter(|t| t != "card-table" && !t.starts_with("bdwgc"))
        .collect();
    let header: Vec<String> = ["mutations per step", "card-table wall ms"]
        .into_iter()
        .map(String::from)
        .chain(barriers.iter().map(|b| format!("{b} ÷ card-table")))
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut table = Vec::new();
    for (wl, threads, heap) in &keys {
        let at = At::new(Section::Macro, wl, *threads, Some(*heap));
        let wall = |t: &str| select(rows, at, t, Metric::WallMs).collect::<Vec<f64>>();
        let healthy =
            |t: &str| health::health(rows, t, wl, *threads, *heap).is_none_or(|h| h.passes());
        let card = wall("card-table");
        let mut row = vec![
            Cell::text(fmt(rate(wl) as f64)),
            Cell::estimate(stats::median_ci(
                &card,
                stats::seed_for(seed, &format!("sweep/card/{wl}")),
            )),
        ];
        for b in &barriers {
            let i = stats::ratio_of_medians(
                &wall(b),
                &card,
                stats::seed_for(seed, &format!("sweep/{b}/{wl}/{heap}")),
            );
            let verdict = match i {
                Some(_) if !(healthy(b) && healthy("card-table")) => "not judged (health)",
                Some(i) => i.time_verdict(),
                None => "",
            };
            row.push(Cell::ratio(i, verdict));
        }
        table.push(row);
    }
    doc.table(&header, table);
    doc.shows(
        "where a page tracker's ratio falls below 1 as the mutation rate grows, its per-page \
         cost has been amortised over enough stores to beat the card table's per-store cost; \
         a row where none does says the crossover lies beyond this machine's rates.",
    );
}

/// The mutation rate in a sweep label (`gcold-m1000-l64` → 1000).
fn rate(label: &str) -> u64 {
    label
        .strip_prefix(PREFIX)
        .and_then(|r| r.split('-').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_read_from_the_label() {
        assert_eq!(rate("gcold-m1000-l64"), 1000);
        assert_eq!(rate("gcold-m0-l4"), 0);
        assert_eq!(rate("gcbench-l64"), 0);
    }
}
