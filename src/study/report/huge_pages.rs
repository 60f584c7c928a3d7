//! Huge pages: the barriers at a workload's largest heap (one thread) run again on a
//! heap advised `MADV_HUGEPAGE`, beside the same point on 4 KiB pages (at the first
//! workload only, but at every one in the full study:
//! `StudyConfig::runs_on_huge_pages`). For `none` and the
//! card table the ratio is what 4 KiB pages cost at that heap size (TLB misses, page
//! faults); for the page trackers, the huge pages left at the end say what their write
//! protection did to them (a write into a protected huge page splits it into 4 KiB
//! pages, which `tests/barrier/huge_pages.rs` shows on a bare region).

use super::Doc;
use crate::study::data::{At, Metric, Row, Section, points, select, select_numbered, trackers};
use crate::study::format::fmt;
use crate::study::stats::{self, Design};
use crate::study::summary::Cell;

const COLUMNS: [&str; 7] = [
    "barrier",
    "wall ms, 4 KiB pages",
    "wall ms, huge pages",
    "huge ÷ 4 KiB",
    "verdict",
    "huge pages at the end (MiB of heap)",
    "faults, 4 KiB → huge",
];

pub(super) fn write(doc: &mut Doc, rows: &[Row], seed: u64, design: Design) {
    let keys = points(rows, Section::Hugepages);
    if keys.is_empty() {
        return;
    }
    doc.heading(2, "Huge pages");
    doc.para(
        "Each barrier at the first workload's largest heap (at every workload's with \
         `--full`), one thread, run again on a heap advised `MADV_HUGEPAGE` (the other points \
         use `MADV_NOHUGEPAGE`): enough to show what the page trackers' write protection does \
         to huge pages and what 4 KiB pages cost the store-path barriers at that heap. *huge \
         ÷ 4 KiB* is the ratio of wall times with its 95% interval (pair by pair within \
         blocks where the study ran in blocks, their geometric mean with a t interval, else \
         of the medians); below 1, huge pages made the run \
         faster. *huge pages at the end*: how much of the heap transparent huge pages backed \
         when the run ended (median; from `AnonHugePages` in `/proc/self/smaps`). A run of \
         `none` or `card-table` that ended with no huge page did not measure huge pages and \
         gets no ratio. For `none` and the card table the ratio is what 4 KiB pages cost at \
         this heap size; the page trackers protect whole huge pages at arm, but a write into \
         one while it is protected splits it into 4 KiB pages (measured on a bare region by \
         `tests/barrier/huge_pages.rs`), so what they keep of them is theirs to show here.",
    );
    for (wl, threads, heap) in &keys {
        doc.heading(
            3,
            &format!("{wl}, {threads} thread(s), {} MiB heap", fmt(*heap)),
        );
        let get = |section: Section, t: &str, m: Metric| {
            select(rows, At::new(section, wl, *threads, Some(*heap)), t, m).collect::<Vec<f64>>()
        };
        let mut table = Vec::new();
        for t in trackers(rows, Section::Hugepages) {
            let small = get(Section::Macro, &t, Metric::WallMs);
            let huge = get(Section::Hugepages, &t, Metric::WallMs);
            if huge.is_empty() {
                continue;
            }
            let huge_mib = stats::median(&get(Section::Hugepages, &t, Metric::HeapHugeMib));
            let software = t == "none" || t == "card-table";
            let ci = |v: &[f64], what: &str| {
                Cell::estimate(stats::median_ci(
                    v,
                    stats::seed_for(seed, &format!("thp/{what}/{t}/{wl}/{heap}")),
                ))
            };
            let no_huge_page = huge_mib.is_nan() || huge_mib <= 0.0;
            let (ratio, verdict) = if software && no_huge_page {
                (
                    Cell::text("not a result"),
                    Cell::text("no huge page backed the heap"),
                )
            } else {
                let numbered = |section: Section| {
                    select_numbered(
                        rows,
                        At::new(section, wl, *threads, Some(*heap)),
                        &t,
                        Metric::WallMs,
                    )
                };
                let i = stats::ratio_to(
                    design,
                    &numbered(Section::Hugepages),
                    &numbered(Section::Macro),
                    stats::seed_for(seed, &format!("thp/ratio/{t}/{wl}/{heap}")),
                );
                let v = i.map_or("", |i| i.time_verdict());
                (Cell::ratio(i, v), Cell::text(v))
            };
            let faults = |s| stats::median(&get(s, &t, Metric::Faults));
            table.push(vec![
                Cell::text(t.clone()),
                ci(&small, "small"),
                ci(&huge, "huge"),
                ratio,
                verdict,
                Cell::text(format!("{} of {}", fmt(huge_mib), fmt(*heap))),
                Cell::text(format!(
                    "{} → {}",
                    fmt(faults(Section::Macro)),
                    fmt(faults(Section::Hugepages))
                )),
            ]);
        }
        doc.table(&COLUMNS, table);
    }
    doc.shows(
        "whether 4 KiB pages cost a program anything measurable at the study's largest heaps \
         (the `none` and `card-table` rows), and how much of a huge page a page-protection \
         barrier leaves standing; on a 2-vCPU virtual machine the TLB cost also includes the \
         host's nested page tables, so bare metal may differ.",
    );
}
