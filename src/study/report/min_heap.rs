//! The minimum heaps: each workload's, with the bracket the search ended on.

use super::Doc;
use crate::study::data::{Metric, Row, Section};
use crate::study::minheap::{PRECISION, RUNS_TO_FIT};
use crate::study::summary::Cell;

pub(super) fn write(doc: &mut Doc, rows: &[Row]) {
    let mins: Vec<&Row> = rows
        .iter()
        .filter(|r| r.section == Section::Minheap)
        .collect();
    if mins.is_empty() {
        return;
    }
    doc.heading(2, "Minimum heaps");
    doc.para(&format!(
        "The smallest heap in which the stop-the-world collector completes each workload, found \
         by bisection from the live set's size until the largest size that failed is within {:.0}% \
         of the smallest that fitted, each run in a fresh process; a size fits only when {RUNS_TO_FIT} \
         runs in a row complete. Beside it the largest size tested that did not fit (0: none below \
         was tried), and how close the two are.",
        PRECISION * 100.0
    ));
    let mut table = Vec::new();
    for r in mins.iter().filter(|r| r.metric == Metric::MinHeapMib) {
        let fails = mins
            .iter()
            .find(|f| {
                f.metric == Metric::MinHeapFailsMib
                    && f.workload == r.workload
                    && f.threads == r.threads
            })
            .map_or(f64::NAN, |f| f.value);
        let gap = if fails > 0.0 {
            (r.value - fails) / r.value
        } else {
            f64::NAN
        };
        table.push(vec![
            Cell::text(r.workload.clone()),
            Cell::count(r.threads as f64),
            Cell::number(r.value),
            Cell::number(fails),
            Cell::percent(gap),
            Cell::text(r.note.clone()),
        ]);
    }
    doc.table(
        &[
            "workload",
            "threads",
            "minimum (MiB)",
            "tested and failed (MiB)",
            "bracket",
            "runs",
        ],
        table,
    );
    doc.shows(
        "the unit of heap size: the smallest heap in which each workload completes with the \
         stop-the-world collector. Heap sizes below are multiples of it, as GC benchmark \
         methodology uses them; each point states the multiple it actually used.",
    );
}
