//! Barrier cost with the collection held fixed: each workload run with no collection at
//! all, the tracker armed and harvested on the same fixed schedule for every barrier
//! (`HeapConfig::duty_cycle`), on a heap that holds everything the workload allocates.
//! The slowdown over `none` is what the barrier costs the mutators, set beside the micro's
//! prediction: the per-store cost times the stores, plus the per-first-write cost times
//! the first writes counted (faults, or the pages `uffd-wp-async` recorded), plus the TLB
//! shootdowns the tracker added, plus, for a tracker whose protection changes hold the
//! mapping lock for writing (`mprotect`), the time of those changes.

use super::Doc;
use super::micro::costs;
use crate::barrier::MappingLock;
use crate::study::data::{Metric, Row, Section, points, select, trackers};
use crate::study::format::fmt;
use crate::study::point::{BARRIER_ONLY_ARMED_SHARE, BARRIER_ONLY_PERIOD, find_variant};
use crate::study::stats;
use crate::study::summary::Cell;

/// Predicted and measured extra times further apart than this are flagged.
const AGREEMENT: f64 = 0.25;

const COLUMNS: [&str; 13] = [
    "barrier",
    "n",
    "wall ms",
    "÷ none",
    "extra ms, measured",
    "extra ms, predicted",
    "of which shootdowns",
    "predicted ÷ measured",
    "fault stalls ms",
    "stores / first writes / shootdowns",
    "armed",
    "arm + harvest + disarm ms",
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
         not measured). The collector thread only repeats a period: arm the tracker, keep it \
         armed for {armed} ms, harvest it (the dirty set is counted and dropped), disarm it, \
         and leave it disarmed for {rest} ms, each span counted from the end of the arm or \
         the disarm, so that every barrier is armed and unarmed for the same times and a \
         tracker's own arm, harvest and disarm (*arm + harvest + disarm ms*, summed over \
         the run) lengthen its periods. *armed*: the share of the run's wall time from the \
         end of an arm to the start of its disarm. *÷ none*: ratio of the medians of wall \
         time, 95% interval. *extra ms, measured*: median wall time minus `none`'s. \
         *predicted*: the micro's cost per store times the workload's stores, plus its cost \
         per first write to a page (no other thread running) times the first writes counted \
         here (the faults served, or for `uffd-wp-async` the pages its harvests reported; \
         the card table takes none), plus a price per TLB shootdown times the shootdowns \
         the tracker added (*of which shootdowns*): those counted during its runs \
         (`/proc/interrupts`, all CPUs) less those counted during `none`'s, which are the \
         mutator's own and other processes', already paid in `none`'s time. A \
         fault pays a shootdown when another thread of the process is on a CPU: here, the \
         collector thread while it arms, harvests or disarms, or serves a fault; the price \
         is then the micro's first write beside a running thread. A tracker whose first \
         writes send none (async write-protect, a served fault) receives the shootdowns of \
         the collector's protection changes instead, at the micro's price of a shootdown \
         received. A tracker whose protection changes hold the process's mapping lock for \
         writing (`mprotect`) is charged its *arm + harvest + disarm ms* too: the mutator's \
         next fault or `mprotect` waits until each change is done (a scheduler trace of the \
         LRU cache with a 2 GiB heap had the mutator blocked on that lock 13.8 s of the \
         collector's 14.7 s of changes). The prediction still leaves out the cache effects \
         of the card table at this heap size. *fault stalls ms*: the time the faults took here, in the run itself (median \
         over invocations of the sum of the tracker's stall log: inside the signal handler \
         for `mprotect` and `uffd-wp-sigbus`, on the serving thread for `uffd-wp`, each a \
         lower bound; `uffd-wp-async` and the store paths have no fault to time, \"–\"). \
         Where prediction and measurement differ by more than {agreement:.0}%, *agreement* \
         says so; it judges only a barrier measured slower than `none` (a cost within the \
         noise has nothing to explain).",
        armed = (BARRIER_ONLY_PERIOD.as_secs_f64() * BARRIER_ONLY_ARMED_SHARE * 1e3).round(),
        rest = (BARRIER_ONLY_PERIOD.as_secs_f64() * (1.0 - BARRIER_ONLY_ARMED_SHARE) * 1e3).round(),
        agreement = AGREEMENT * 100.0
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
                let mut row = vec![
                    Cell::text(t.clone()),
                    Cell::count(wall.len() as f64),
                    ci,
                    Cell::text("baseline"),
                ];
                row.resize(COLUMNS.len(), Cell::text(""));
                table.push(row);
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
            let shootdowns = med(&t, Metric::TlbShootdowns);
            // The shootdowns the tracker added: `none`'s runs of the same work counted
            // the rest (the mutator's own page-table changes, other processes), and
            // their cost is in `none`'s time already.
            let added = match med("none", Metric::TlbShootdowns) {
                n if n.is_finite() => (shootdowns - n).max(0.0),
                _ => shootdowns,
            };
            // A tracker whose protection changes hold the mapping lock for writing stalls
            // the mutator for each of them: its next fault or `mprotect` waits until the
            // change is done.
            let blocked = match mapping_lock(&t) {
                Some(MappingLock::Write) => med(&t, Metric::DutyWorkMs),
                _ => 0.0,
            };
            // (total, of which shootdowns), ms.
            let predicted = costs(rows, &t, seed).map(|c| {
                let at = |i: Option<stats::Interval>, n: f64| i.map_or(0.0, |i| i.estimate * n);
                // A tracker whose first writes shoot down pays the sender's price for
                // every shootdown counted; one whose first writes send none (async
                // write-protect, a served fault) receives them, from the collector.
                let price = c.per_shootdown.or(c.per_received_shootdown);
                let shot = if added.is_finite() {
                    at(price, added)
                } else {
                    0.0
                };
                let ns = at(c.per_store, stores) + at(c.per_first_write, first_writes) + shot;
                (ns / 1e6 + blocked, shot / 1e6)
            });
            // No extra time to explain where the ratio's interval holds 1.
            let slower = ratio.is_some_and(|i| i.beside(1.0) == Some(std::cmp::Ordering::Greater));
            let (pred_cell, shot_cell) = match predicted {
                Some((p, shot)) => (Cell::number(p), Cell::number(shot)),
                None => (Cell::text("no micro"), Cell::text("–")),
            };
            let (ratio_cell, agreement) = match predicted {
                None => (Cell::text("–"), "no micro in this study".to_string()),
                Some(_) if !slower => {
                    (Cell::text("–"), "not judged: no extra time measured".into())
                }
                Some((p, _)) if measured.is_finite() && measured.abs() > 0.0 => {
                    let r = p / measured;
                    let agree = if (r - 1.0).abs() <= AGREEMENT {
                        format!("within {:.0}%", AGREEMENT * 100.0)
                    } else {
                        format!("**differ** by {:.0}%", (r - 1.0).abs() * 100.0)
                    };
                    (Cell::number(r), agree)
                }
                Some(_) => (Cell::text("–"), "–".into()),
            };
            // Timed faults: a stall log with entries (the handler and served trackers).
            let stall_cell = if med(&t, Metric::Stalls) > 0.0 {
                Cell::number(med(&t, Metric::StallMs))
            } else {
                Cell::text("–")
            };
            let counted = |x: f64| if x.is_finite() { fmt(x) } else { "–".into() };
            table.push(vec![
                Cell::text(t.clone()),
                Cell::count(wall.len() as f64),
                ci,
                Cell::ratio(ratio, ratio.map_or("", |i| i.time_verdict())),
                Cell::number(measured),
                pred_cell,
                shot_cell,
                ratio_cell,
                stall_cell,
                Cell::text(format!(
                    "{} / {} / {}",
                    fmt(stores),
                    fmt(first_writes),
                    counted(shootdowns)
                )),
                Cell::percent(med(&t, Metric::DutyArmedShare)),
                Cell::text(counted(med(&t, Metric::DutyWorkMs))),
                Cell::text(agreement),
            ]);
        }
        doc.table(&COLUMNS, table);
    }
    doc.shows(
        "what each barrier costs the mutators when the collection is the same for all (none), \
         and how much of it the micro's costs explain: per store, per first write, and per \
         TLB shootdown (a fault taken while the collector thread was on the other CPU). \
         Where a page tracker costs more than predicted, two columns say where to look: \
         *fault stalls ms* well above the predicted faults means each fault cost more here \
         than in the micro (for `mprotect`, every unprotected page splits the mapping, and \
         each later call searches more mappings); *arm + harvest + disarm ms* is time the \
         collector thread changed protections, during which `mprotect` holds the mapping \
         lock for writing and a mutator that faults or calls `mprotect` waits for it (the \
         prediction charges it for `mprotect`).",
    );
}

/// What the protection changes of tracker `t` (a study label, `uffd-wp[thread]`) hold;
/// `None` for a label that is no variant (a peer).
fn mapping_lock(t: &str) -> Option<MappingLock> {
    find_variant(t)
        .ok()
        .map(|v| v.kind().mechanism().mapping_lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_of(tracker: &str, wall: f64, stalls: f64, stall_ms: f64) -> Vec<Row> {
        (0..5)
            .flat_map(|i| {
                let row = |metric, value| Row {
                    section: Section::Barrieronly,
                    tracker: tracker.into(),
                    workload: "lru-l64".into(),
                    threads: 1,
                    heap_mib: 554.0,
                    invocation: i,
                    round: 0,
                    metric,
                    value,
                    note: String::new(),
                };
                let wall = wall + i as f64;
                [
                    row(Metric::WallMs, wall),
                    row(Metric::Stores, 1e6),
                    row(Metric::Faults, stalls),
                    row(Metric::Stalls, stalls),
                    row(Metric::StallMs, stall_ms),
                    row(Metric::DutyArmedShare, 0.5),
                    row(Metric::DutyWorkMs, 0.0),
                ]
            })
            .collect()
    }

    /// `rows` with `shootdowns` counted in each of its invocations.
    fn counting(mut rows: Vec<Row>, shootdowns: f64) -> Vec<Row> {
        let counted: Vec<Row> = rows
            .iter()
            .filter(|r| r.metric == Metric::WallMs)
            .map(|r| Row {
                metric: Metric::TlbShootdowns,
                value: shootdowns,
                ..r.clone()
            })
            .collect();
        rows.extend(counted);
        rows
    }

    /// The table's cells for `tracker`, by column name.
    fn cells(doc: &Doc, tracker: &str) -> Vec<(String, String)> {
        let table = doc.tables.last().expect("a table");
        let row = table
            .rows
            .iter()
            .find(|r| r[0].render() == tracker)
            .expect("the tracker's row");
        table
            .header
            .iter()
            .cloned()
            .zip(row.iter().map(Cell::render))
            .collect()
    }

    fn cell<'a>(cells: &'a [(String, String)], column: &str) -> &'a str {
        &cells.iter().find(|(h, _)| h == column).expect(column).1
    }

    /// Micro rows for `tracker`: `per_store` ns per store at 1,024 stores per page and
    /// `per_first` ns per first write at 1 store per page, over three processes.
    fn micro_of(tracker: &str, per_store: f64, per_first: f64) -> Vec<Row> {
        micro_beside(tracker, per_store, per_first, None)
    }

    /// [`micro_of`], and where `beside` is `(ns, shootdowns)`, the first write beside a
    /// running thread: `ns` per first write with `shootdowns` per page written.
    fn micro_beside(
        tracker: &str,
        per_store: f64,
        per_first: f64,
        beside: Option<(f64, f64)>,
    ) -> Vec<Row> {
        let mut out = Vec::new();
        let mut patterns = vec![
            ("pages-spp1", 1.0, 1000.0, per_first, 0.0),
            ("pages-spp1024", 1024.0, 10.0, 0.0, 0.0),
        ];
        if let Some((ns, shootdowns)) = beside {
            patterns.push(("pages-spp1-beside", 1.0, 1000.0, ns, shootdowns));
        }
        for invocation in 0..3 {
            for &(label, spp, pages, per_first, shootdowns) in &patterns {
                let stores = spp * pages;
                let steady = stores * (1.0 + per_store) + invocation as f64;
                let first = per_first * pages;
                for (metric, value) in [
                    (Metric::Stores, stores),
                    (Metric::SteadyNs, steady),
                    (Metric::StoresNs, steady + first),
                    (Metric::PagesWritten, pages),
                    (Metric::TlbShootdowns, shootdowns * pages),
                ] {
                    out.push(Row {
                        section: Section::Micro,
                        tracker: tracker.into(),
                        workload: label.into(),
                        threads: 1,
                        heap_mib: 64.0,
                        invocation,
                        round: 0,
                        metric,
                        value,
                        note: String::new(),
                    });
                }
            }
        }
        out
    }

    #[test]
    fn fault_stalls_are_set_beside_the_extra_time_and_a_cost_within_noise_is_not_judged() {
        let mut rows = rows_of("none", 500.0, 0.0, 0.0);
        rows.extend(rows_of("mprotect", 1000.0, 1000.0, 250.0));
        rows.extend(rows_of("card-table", 500.0, 0.0, 0.0));
        let mut doc = Doc::new();
        write(&mut doc, &rows, 7);
        let mprotect = cells(&doc, "mprotect");
        assert_eq!(cell(&mprotect, "extra ms, measured"), "500");
        assert_eq!(cell(&mprotect, "fault stalls ms"), "250");
        assert_eq!(cell(&mprotect, "agreement"), "no micro in this study");
        let card = cells(&doc, "card-table");
        assert_eq!(cell(&card, "fault stalls ms"), "–", "no fault to time");
        assert_eq!(card.len(), COLUMNS.len());

        // With the micro: 1,000 faults at 100 µs predict 100 ms of the 500 measured; the
        // card table, as fast as `none` here, is not judged.
        for t in ["none", "mprotect", "card-table"] {
            let first = if t == "mprotect" { 100_000.0 } else { 0.0 };
            rows.extend(micro_of(t, 0.0, first));
        }
        let mut doc = Doc::new();
        write(&mut doc, &rows, 7);
        let mprotect = cells(&doc, "mprotect");
        assert_eq!(cell(&mprotect, "extra ms, predicted"), "100");
        assert_eq!(cell(&mprotect, "predicted ÷ measured"), "0.200");
        assert_eq!(cell(&mprotect, "agreement"), "**differ** by 80%");
        let card = cells(&doc, "card-table");
        assert_eq!(
            cell(&card, "agreement"),
            "not judged: no extra time measured"
        );
        assert_eq!(cell(&card, "predicted ÷ measured"), "–");
    }

    /// `mprotect` holds the mapping lock for writing while it changes protections, so its
    /// arm + harvest + disarm time is charged; `uffd-wp-sigbus`'s changes hold it for
    /// reading, and the same time is not.
    #[test]
    fn protection_changes_that_hold_the_mapping_lock_for_writing_are_charged() {
        let with_changes = |rows: Vec<Row>| -> Vec<Row> {
            (rows.into_iter())
                .map(|r| match r.metric {
                    Metric::DutyWorkMs => Row { value: 300.0, ..r },
                    _ => r,
                })
                .collect()
        };
        let mut rows = rows_of("none", 500.0, 0.0, 0.0);
        rows.extend(with_changes(rows_of("mprotect", 1000.0, 1000.0, 250.0)));
        rows.extend(with_changes(rows_of(
            "uffd-wp-sigbus",
            1000.0,
            1000.0,
            250.0,
        )));
        for t in ["none", "mprotect", "uffd-wp-sigbus"] {
            let first = if t == "none" { 0.0 } else { 100_000.0 };
            rows.extend(micro_of(t, 0.0, first));
        }
        let mut doc = Doc::new();
        write(&mut doc, &rows, 7);
        // 1,000 faults at 100 µs, plus 300 ms of changes: 400 of the 500 ms measured.
        let mprotect = cells(&doc, "mprotect");
        assert_eq!(cell(&mprotect, "extra ms, predicted"), "400");
        assert_eq!(cell(&mprotect, "agreement"), "within 25%");
        let sigbus = cells(&doc, "uffd-wp-sigbus");
        assert_eq!(cell(&sigbus, "extra ms, predicted"), "100");
        assert_eq!(cell(&sigbus, "agreement"), "**differ** by 80%");
    }

    /// `none` and `mprotect` in barrier-only runs of 500 and 1,000 ms, `mprotect`'s with
    /// 1,000 faults and 25,000 shootdowns counted (`none`'s with `none_counted`, if
    /// given), and the micro: `mprotect`'s first write 3 µs alone, 21 µs beside a running
    /// thread with one shootdown per page (18 µs per shootdown).
    fn shot_mprotect(none_counted: Option<f64>) -> Vec<Row> {
        let none = rows_of("none", 500.0, 0.0, 0.0);
        let mut rows = match none_counted {
            Some(n) => counting(none, n),
            None => none,
        };
        rows.extend(counting(
            rows_of("mprotect", 1000.0, 1000.0, 250.0),
            25_000.0,
        ));
        rows.extend(micro_of("none", 0.0, 0.0));
        rows.extend(micro_beside(
            "mprotect",
            0.0,
            3_000.0,
            Some((21_000.0, 1.0)),
        ));
        rows
    }

    #[test]
    fn the_shootdowns_counted_in_the_run_are_charged_at_the_micros_price() {
        // 1,000 faults at 3 µs alone; beside a running thread 21 µs with one shootdown
        // per page, so 18 µs per shootdown. The run counted 25,000 shootdowns (the
        // collector's arms and harvests ran beside the mutator): 3 + 450 ms predicted
        // for 500 measured.
        let rows = shot_mprotect(None);
        let mut doc = Doc::new();
        write(&mut doc, &rows, 7);
        let m = cells(&doc, "mprotect");
        assert_eq!(cell(&m, "of which shootdowns"), "450");
        assert_eq!(cell(&m, "extra ms, predicted"), "453");
        assert_eq!(cell(&m, "agreement"), "within 25%");
        assert_eq!(
            cell(&m, "stores / first writes / shootdowns"),
            "1000000 / 1000 / 25000"
        );

        // Without the beside pattern the shootdowns have no price: only the faults count.
        let rows: Vec<Row> = rows
            .into_iter()
            .filter(|r| r.workload != "pages-spp1-beside")
            .collect();
        let mut doc = Doc::new();
        write(&mut doc, &rows, 7);
        let m = cells(&doc, "mprotect");
        assert_eq!(cell(&m, "extra ms, predicted"), "3.00");
        assert_eq!(cell(&m, "of which shootdowns"), "0");
    }

    #[test]
    fn only_the_shootdowns_beyond_nones_are_charged() {
        // As above, but `none`'s runs counted 5,000 too: 20,000 added, 360 ms at 18 µs.
        let rows = shot_mprotect(Some(5_000.0));
        let mut doc = Doc::new();
        write(&mut doc, &rows, 7);
        let m = cells(&doc, "mprotect");
        assert_eq!(cell(&m, "of which shootdowns"), "360");
        assert_eq!(cell(&m, "extra ms, predicted"), "363");
    }

    #[test]
    fn a_tracker_whose_faults_send_no_shootdown_is_charged_the_receivers_price() {
        // `none`'s passes take 10 µs more per shootdown received; the async tracker's
        // first writes send none, and its run counted 30,000 (its harvests'): 300 ms.
        let mut rows = rows_of("none", 500.0, 0.0, 0.0);
        rows.extend(counting(
            rows_of("uffd-wp-async[disarm]", 900.0, 0.0, 0.0),
            30_000.0,
        ));
        rows.extend(micro_of("none", 0.0, 0.0));
        rows.extend(micro_of("uffd-wp-async[disarm]", 0.0, 0.0));
        for invocation in 0..3 {
            for (metric, value) in [
                (Metric::Stores, 10_240.0),
                (Metric::SteadyNs, 10_240.0 + 5e7),
                (Metric::StoresNs, 10_240.0 + 5e7),
                (Metric::PagesWritten, 10.0),
                (Metric::TlbShootdowns, 10_000.0),
            ] {
                rows.push(Row {
                    section: Section::Micro,
                    tracker: "none".into(),
                    workload: "pages-spp1024-shot-at".into(),
                    threads: 1,
                    heap_mib: 64.0,
                    invocation,
                    round: 0,
                    metric,
                    value: value + invocation as f64,
                    note: String::new(),
                });
            }
        }
        let mut doc = Doc::new();
        write(&mut doc, &rows, 7);
        let a = cells(&doc, "uffd-wp-async[disarm]");
        assert_eq!(cell(&a, "of which shootdowns"), "300");
    }
}
