//! The minimum heaps: each workload's, with the bracket the search ended on; and the work
//! each workload's runs do, as the study calibrated it.

use super::Doc;
use crate::study::config::{MIN_RUN_MS, RUN_MS_TARGET};
use crate::study::data::{Metric, Row, Section};
use crate::study::format::fmt;
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
    work(doc, rows);
}

/// The calibration: per workload, the runs of `none` at its smallest and largest heaps
/// and the work chosen from the fastest.
fn work(doc: &mut Doc, rows: &[Row]) {
    let chosen: Vec<&Row> = rows
        .iter()
        .filter(|r| r.section == Section::Calibration && r.metric == Metric::AllocatedPerLive)
        .collect();
    if chosen.is_empty() {
        return;
    }
    doc.heading(3, "Work per run");
    doc.para(&format!(
        "Each workload's work (the bytes it allocates per byte of its live set, the same at \
         every heap) is sized by time on this machine: `none` ran at the workload's smallest \
         and largest heaps at its starting work (twice at each, alternating), and the work \
         was scaled so that the fastest run would last the study's target (*from*; {:.2} s unless `--run-ms` set another, \
         so that the workload's fastest point runs at least {:.0} s with time to spare); \
         GCBench's work is whole passes, as many as come nearest the target but none \
         predicted under the shortest. Two studies on different days can thus \
         run different work: compare their ratios, not their milliseconds, or give the \
         second the first's work (`--work-from DIR`: *from* then names the folder, and \
         that workload has no calibration runs). To rerun one \
         invocation of a point alone, give its work to `barrierlab run --study-workload \
         <workload> --allocated-per-live <work>`.",
        RUN_MS_TARGET / 1e3,
        MIN_RUN_MS / 1e3,
    ));
    let table = chosen
        .iter()
        .map(|c| {
            let runs: Vec<String> = rows
                .iter()
                .filter(|r| {
                    r.section == Section::Calibration
                        && r.metric == Metric::CalibrationMs
                        && r.workload == c.workload
                        && r.threads == c.threads
                })
                .map(|r| format!("{} at {} MiB", fmt(r.value), fmt(r.heap_mib)))
                .collect();
            vec![
                Cell::text(c.workload.clone()),
                Cell::number(c.heap_mib),
                Cell::text(runs.join(", ")),
                Cell::number(c.value),
                Cell::text(c.note.clone()),
            ]
        })
        .collect();
    doc.table(
        &[
            "workload",
            "heap of the fastest (MiB)",
            "calibration runs (ms)",
            "bytes allocated per live byte",
            "from",
        ],
        table,
    );
}
