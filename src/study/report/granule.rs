//! The granule apart from the mechanism: at each end-to-end point, the barriers that
//! record by store path (the 512-byte card table, the 4 KiB write watch) beside those
//! that record by page protection (4 KiB), with what each granule costs the collector:
//! how many stores each dirtied granule absorbed, and the bytes remark had to rescan.
//! The write watch and the card table differ only in the granule; the write watch and a
//! page tracker only in the mechanism.

use super::Doc;
use super::end_to_end::point_heading;
use crate::study::data::{At, Metric, Row, Section, points, select, trackers};
use crate::study::point::find_variant;
use crate::study::stats;
use crate::study::summary::Cell;

const COLUMNS: [&str; 7] = [
    "barrier",
    "granule",
    "wall ÷ card-table",
    "stores",
    "granules dirtied",
    "stores per dirtied granule",
    "MiB rescanned at remark",
];

pub(super) fn write(doc: &mut Doc, rows: &[Row], seed: u64) {
    let keys = points(rows, Section::Macro);
    let barriers: Vec<(String, u32)> = trackers(rows, Section::Macro)
        .into_iter()
        .filter_map(|t| {
            let shift = find_variant(&t).ok()?.kind().mechanism().granule.shift()?;
            Some((t, shift))
        })
        .collect();
    if keys.is_empty() || !barriers.iter().any(|(t, _)| t == "write-watch") {
        return;
    }
    doc.heading(2, "The granule apart from the mechanism");
    doc.para(
        "At each end-to-end point, every barrier that records something: the card table \
         (512-byte cards) and the write watch (a byte per 4 KiB page) mark by store path; \
         the page trackers record a 4 KiB page at its first write. *Granules dirtied*: the \
         pre-clean and remark harvests' granules, summed over the run (median over \
         invocations); *stores per dirtied granule*: the workload's reference stores over \
         that; *MiB rescanned at remark*: the remark's dirty granules times the granule. The \
         write watch differs from the card table in the granule only, and from a page \
         tracker in the mechanism only. A `[conditional]` variant (with `--full`) tests \
         its byte before it stores, so a store to a granule already dirty writes nothing.",
    );
    for key in &keys {
        let (wl, threads, heap) = key;
        let at = At::new(Section::Macro, wl, *threads, Some(*heap));
        let get = |t: &str, m: Metric| select(rows, at, t, m).collect::<Vec<f64>>();
        let med = |t: &str, m: Metric| stats::median(&get(t, m));
        let card = get("card-table", Metric::WallMs);
        let mut table = Vec::new();
        for (t, shift) in &barriers {
            let wall = get(t, Metric::WallMs);
            if wall.is_empty() {
                continue;
            }
            let ratio = stats::ratio_of_medians(
                &wall,
                &card,
                stats::seed_for(seed, &format!("granule/{t}/{wl}/{threads}/{heap}")),
            );
            let dirtied = med(t, Metric::PrecleanDirty) + med(t, Metric::RemarkDirty);
            let stores = med(t, Metric::Stores);
            let rescanned = med(t, Metric::RemarkDirty) * (1u64 << shift) as f64;
            table.push(vec![
                Cell::text(t.clone()),
                Cell::text(format!("{} B", 1u64 << shift)),
                if t == "card-table" {
                    Cell::text("baseline")
                } else {
                    Cell::ratio(ratio, ratio.map_or("", |i| i.time_verdict()))
                },
                Cell::count(stores),
                Cell::count(dirtied),
                Cell::number(stores / dirtied),
                Cell::number(rescanned / (1 << 20) as f64),
            ]);
        }
        doc.heading(3, &point_heading(rows, key));
        doc.table(&COLUMNS, table);
    }
    doc.shows(
        "how much of a page tracker's difference from the card table is the granule (the \
         write watch against the card table) and how much the mechanism (a page tracker \
         against the write watch); the verdict beside a ratio is drawn only where its \
         interval excludes 1.",
    );
}
