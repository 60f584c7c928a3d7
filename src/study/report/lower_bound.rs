//! Overhead over a lower bound (no barrier, no collector), after Cai et al.

use super::Doc;
use crate::study::data::{At, Metric, Row, Section, points, select, trackers};
use crate::study::format::fmt;
use crate::study::stats::{self, median};
use crate::study::summary::Cell;

pub(super) fn write(doc: &mut Doc, rows: &[Row], seed: u64) {
    let keys = points(rows, Section::Macro);
    if keys.is_empty() {
        return;
    }
    doc.heading(2, "Overhead over a lower bound (no barrier, no collector)");
    doc.para(
        "After Cai et al., \"Distilling the Real Cost of Production Garbage Collectors\" (ISPASS 2022), \
         the cost of an ideal run with no barrier and no collector is bounded, per workload and heap, by \
         the least over barrierlab's variants of the median time spent outside the collector (wall time \
         less the pauses; CPU time less the collector, fault-service and pause-marking threads' CPU). \
         Each variant's overhead is its median over that bound, with a bootstrap interval that resamples \
         every variant's invocations (so the bound varies too); since the bound still contains some \
         collector cost, the overheads are lower bounds. The first row of each table is the bound.",
    );
    for (wl, threads, heap) in &keys {
        let at = At::new(Section::Macro, wl, *threads, Some(*heap));
        let get = |t: &str, m: Metric| select(rows, at, t, m).collect::<Vec<f64>>();
        let present: Vec<String> = trackers(rows, Section::Macro)
            .into_iter()
            .filter(|t| !t.starts_with("bdwgc") && !get(t, Metric::WallMs).is_empty())
            .collect();
        if present.is_empty() {
            continue;
        }
        let bound = |m: Metric| {
            present
                .iter()
                .map(|t| median(&get(t, m)))
                .filter(|v| v.is_finite())
                .fold(f64::INFINITY, f64::min)
        };
        doc.heading(3, &format!("{wl}, {threads} thread(s), {} MiB", fmt(*heap)));
        let mut table = vec![vec![
            Cell::text("bound (ms)"),
            Cell::number(bound(Metric::WallMinusGcMs)),
            Cell::number(bound(Metric::CpuMinusGcMs)),
        ]];
        for t in &present {
            let over = |total: Metric, free: Metric| {
                let mut groups = vec![get(t, total)];
                groups.extend(present.iter().map(|u| get(u, free)));
                let g: Vec<&[f64]> = groups.iter().map(|g| g.as_slice()).collect();
                stats::bootstrap(
                    &g,
                    stats::seed_for(seed, &format!("lbo/{t}/{wl}/{heap}")),
                    |m| m[0] / m[1..].iter().copied().fold(f64::INFINITY, f64::min),
                )
            };
            table.push(vec![
                Cell::text(t.clone()),
                Cell::ratio(over(Metric::WallMs, Metric::WallMinusGcMs), ""),
                Cell::ratio(over(Metric::CpuTotalMs, Metric::CpuMinusGcMs), ""),
            ]);
        }
        doc.table(&["tracker", "wall ÷ bound", "CPU ÷ bound"], table);
    }
    doc.shows(
        "how far each barrier is from a run with no collection cost at all (the lower bound), \
         in wall and CPU time: the real cost of collecting, barrier included, rather than a \
         ratio to another collector that has costs of its own.",
    );
}
