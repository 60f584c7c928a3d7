//! The invocations that are not results (`invalid`, `error`), with why.

use super::Doc;
use crate::study::data::{Row, Section};
use crate::study::runner::MIN_CYCLES;
use crate::study::summary::Cell;

pub(super) fn write(doc: &mut Doc, rows: &[Row]) {
    // (section, tracker, workload, threads, heap) → (invocations, first reason)
    type Point = (Section, String, String, usize, f64);
    let mut bad: Vec<(Point, (Vec<usize>, String))> = Vec::new();
    for r in rows.iter().filter(|r| !r.section.is_result()) {
        let k = (
            r.section,
            r.tracker.clone(),
            r.workload.clone(),
            r.threads,
            r.heap_mib,
        );
        match bad.iter_mut().find(|b| b.0 == k) {
            Some(b) => {
                if !b.1.0.contains(&r.invocation) {
                    b.1.0.push(r.invocation);
                }
            }
            None => bad.push((k, (vec![r.invocation], r.note.clone()))),
        }
    }
    doc.heading(2, "Invalid and failed invocations");
    if bad.is_empty() {
        doc.para(&format!(
            "None: every end-to-end invocation completed at least {MIN_CYCLES} collection cycles."
        ));
        return;
    }
    doc.para(&format!(
        "Not results: `invalid` invocations completed fewer than {MIN_CYCLES} collection cycles or ran out \
         of memory; `error` ones crashed, failed or passed the timeout (or a minimum-heap search gave no \
         answer)."
    ));
    let table = bad
        .into_iter()
        .map(|((section, t, w, th, h), (inv, why))| {
            vec![
                Cell::text(section.name()),
                Cell::text(t),
                Cell::text(w),
                Cell::count(th as f64),
                Cell::number(h),
                Cell::count(inv.len() as f64),
                Cell::text(why),
            ]
        })
        .collect();
    doc.table(
        &[
            "kind",
            "tracker",
            "workload",
            "threads",
            "heap MiB",
            "invocations",
            "reason",
        ],
        table,
    );
}
