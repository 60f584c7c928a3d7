//! The end-to-end section: one table per point (workload, threads, heap), every variant's
//! time, CPU, pauses, MMU and concurrency health, with its ratios to `none`; then the
//! dirty granules by cause.

use super::Doc;
use crate::study::config::MIN_RUN_MS;
use crate::study::data::{
    At, Metric, PointKey, Row, Section, heap_multiple, points, select, select_numbered, trackers,
};
use crate::study::format::fmt;
use crate::study::health::{self, MAX_CYCLE_GAP, MAX_FALLBACK_SHARE, MAX_STALL_SHARE};
use crate::study::point::MMU_WINDOWS_MS;
use crate::study::stats::{self, Design, median};
use crate::study::summary::Cell;

/// The heading of a point's table (tests and the paper find points by it).
pub fn point_heading(rows: &[Row], (wl, threads, heap): &PointKey) -> String {
    let mult = heap_multiple(rows, wl, *threads, *heap);
    format!(
        "{wl}, {threads} thread(s), {} MiB heap ({} times the minimum)",
        fmt(*heap),
        mult.map_or("?".into(), fmt)
    )
}

/// Columns of a point's first table: time and CPU.
const TIME_COLUMNS: [&str; 9] = [
    "tracker",
    "n",
    "wall ms",
    "wall ÷ none",
    "",
    "CPU ms",
    "CPU ÷ none",
    "",
    "CPU mut / coll / service ms",
];

/// Columns of its second: pauses and utilisation.
const PAUSE_COLUMNS: [&str; 9] = [
    "tracker",
    "STW ms",
    "p50 µs",
    "p99 µs",
    "max µs",
    "max ÷ none",
    "MMU 10 ms",
    "MMU 1 / 100 ms",
    "MMU with stalls 10 ms",
];

/// Columns of its third: concurrency health.
const HEALTH_COLUMNS: [&str; 11] = [
    "tracker",
    "cycles",
    "fallbacks",
    "alloc stalls",
    "paced",
    "armed",
    "MiB / cycle",
    "faults",
    "remark dirty",
    "RSS MiB",
    "health",
];

pub(super) fn write(doc: &mut Doc, rows: &[Row], seed: u64, design: Design) {
    let keys = points(rows, Section::Macro);
    if keys.is_empty() {
        return;
    }
    doc.heading(2, "End to end");
    doc.para(&format!(
        "Per point, three tables (a row per tracker in each): time and CPU, pauses and \
         utilisation, concurrency health. *n* valid invocations; wall time and the process's CPU time with their ratios to \
         `none` (stop-the-world) and the verdict; CPU by thread role (mutators / collector thread / \
         `uffd-wp` fault-service thread); stop-the-world (STW) time; pause percentiles (HDR histogram) \
         and the longest pause's ratio to `none`'s; minimum mutator utilisation (MMU) over the pauses at \
         10 ms windows (with its interval), 1 and 100 ms; the MMU over pauses *and* the writers' fault \
         stalls at 10 ms (– where the tracker has no stalls to measure). Concurrency health: *cycles* \
         completed; *fallbacks* (full collections an allocation forced); *alloc stalls*, the share of \
         each mutator's wall time spent waiting for a running cycle because the heap was full; \
         *paced*, the share it spent waiting because a pre-clean that did not converge paced it; \
         *armed*, the share of wall \
         time with the tracker armed, from the cycle log (per concurrent cycle: arm, the initial-mark \
         pause, concurrent mark and pre-clean, the remark pause); *MiB / cycle* allocated. A concurrent \
         barrier whose fallbacks exceed {:.0}% of its cycles, whose cycle count is more than {:.0}% \
         from the card table's, or whose mutators stalled more than {:.0}% of the run, is marked in \
         *health* and gets no verdict: its numbers measure the schedule, not the barrier. bdwgc rows (GCBench, one thread) come from `libgc.so.1` in its own \
         process. One invocation of a point runs alone as `barrierlab run --study-workload \
         <workload> --heap-mib <heap> --barrier <barrier>` (with `--layout` for a `uffd-wp` \
         variant, and `--allocated-per-live` with the workload's work from *Work per run*).",
        MAX_FALLBACK_SHARE * 100.0,
        MAX_CYCLE_GAP * 100.0,
        MAX_STALL_SHARE * 100.0
    ));
    doc.para(&run_length(rows, &keys));
    for key in &keys {
        let (wl, threads, heap) = key;
        let at = At::new(Section::Macro, wl, *threads, Some(*heap));
        doc.heading(3, &point_heading(rows, key));
        let get = |t: &str, m: Metric| select(rows, at, t, m).collect::<Vec<f64>>();
        let mut table = Vec::new();
        for t in trackers(rows, Section::Macro) {
            let wall = get(&t, Metric::WallMs);
            if wall.is_empty() {
                continue;
            }
            let seed = stats::seed_for(seed, &format!("{t}/{wl}/{threads}/{heap}"));
            let med = |m: Metric| {
                let v = get(&t, m);
                if v.is_empty() { f64::NAN } else { median(&v) }
            };
            let h = health::health(rows, &t, wl, *threads, *heap);
            let passes = h.as_ref().is_none_or(|h| h.passes());
            let ratio = |m: Metric| -> (Cell, Cell) {
                if t == "none" {
                    return (Cell::text("baseline"), Cell::text(""));
                }
                let numbered = |t: &str| select_numbered(rows, at, t, m);
                let i = stats::ratio_to(design, &numbered(&t), &numbered("none"), seed);
                let verdict = match i {
                    Some(_) if !passes => "not judged (health)",
                    Some(i) => i.time_verdict(),
                    None => "",
                };
                (Cell::ratio(i, verdict), Cell::text(verdict))
            };
            let (wr, wv) = ratio(Metric::WallMs);
            let (cr, cv) = ratio(Metric::CpuTotalMs);
            let (pr, _) = ratio(Metric::PauseMaxUs);
            let ci = |m: Metric| Cell::estimate(stats::median_ci(&get(&t, m), seed));
            table.push(vec![
                Cell::text(t.clone()),
                Cell::count(wall.len() as f64),
                ci(Metric::WallMs),
                wr,
                wv,
                ci(Metric::CpuTotalMs),
                cr,
                cv,
                Cell::text(format!(
                    "{} / {} / {}",
                    fmt(med(Metric::CpuMutatorMs)),
                    fmt(med(Metric::CpuCollectorMs)),
                    fmt(med(Metric::CpuServiceMs))
                )),
                Cell::number(med(Metric::StwMs)),
                Cell::number(med(Metric::PauseP50Us)),
                Cell::number(med(Metric::PauseP99Us)),
                Cell::number(med(Metric::PauseMaxUs)),
                pr,
                ci(Metric::Mmu(10)),
                Cell::text(format!(
                    "{} / {}",
                    fmt(med(Metric::Mmu(1))),
                    fmt(med(Metric::Mmu(100)))
                )),
                ci(Metric::MmuStall(10)),
                Cell::count(med(Metric::Cycles)),
                Cell::count(med(Metric::Fallbacks)),
                Cell::percent(h.as_ref().map_or(f64::NAN, |h| h.stall_share)),
                Cell::percent(h.as_ref().map_or(f64::NAN, |h| h.paced_share)),
                Cell::percent(med(Metric::ArmedShare)),
                Cell::number(med(Metric::AllocPerCycleMib)),
                Cell::count(med(Metric::Faults)),
                Cell::count(med(Metric::RemarkDirty)),
                Cell::number(med(Metric::PeakRssMib)),
                Cell::text(match h.and_then(|h| h.failure) {
                    Some(why) => format!("**marked**: {why}"),
                    None => "ok".into(),
                }),
            ]);
        }
        // One row per tracker, cut into the three tables (each starts with the tracker).
        let mut split = [Vec::new(), Vec::new(), Vec::new()];
        for row in table {
            let (time, rest) = row.split_at(TIME_COLUMNS.len());
            let (pauses, health) = rest.split_at(PAUSE_COLUMNS.len() - 1);
            split[0].push(time.to_vec());
            split[1].push([&time[..1], pauses].concat());
            split[2].push([&time[..1], health].concat());
        }
        let [time, pauses, health] = split;
        doc.table(&TIME_COLUMNS, time);
        doc.table(&PAUSE_COLUMNS, pauses);
        doc.table(&HEALTH_COLUMNS, health);
    }
    doc.shows(
        "what each barrier costs a whole program, in time and in CPU, beside stopping the world. \
         A ratio above 1 with its interval above 1 is a cost; the pause columns and MMU are what \
         the barrier buys (shorter pauses, more time for the mutator). On 2 CPUs a concurrent \
         collector marks on the CPU the mutator does not use, so wall time can hide a cost that \
         CPU time shows.",
    );
    dirty_split(doc, rows, &keys);
    doc.para(&format!(
        "MMU windows in the CSV: {MMU_WINDOWS_MS:?} ms (`mmu_*`, `mmu_stall_*`)."
    ));
    peer_settings(doc, rows);
    let mut methods: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.section == Section::Macro && r.metric == Metric::Stalls)
        .map(|r| (r.tracker.as_str(), r.note.as_str()))
        .collect();
    methods.sort_unstable();
    methods.dedup();
    if !methods.is_empty() {
        let mut text = String::from("How each tracker measures a writer's fault stall:\n");
        for (t, how) in methods {
            text.push_str(&format!("\n- `{t}`: {how}"));
        }
        doc.para(&text);
    }
}

/// Harvested granules split by cause, per end-to-end point: first writes to pages the
/// cycle allocated into (the allocation frontier) against writes to older objects.
fn dirty_split(doc: &mut Doc, rows: &[Row], keys: &[PointKey]) {
    doc.heading(3, "Dirty granules by cause");
    doc.para(
        "Granules (pages for the page trackers, cards for the card table) handed over by each \
         cycle's harvests, summed over the run (median over invocations): on pages allocated into \
         during the cycle (*frontier*: the first writes to new objects, which a card table pays \
         only as card marks but a page tracker pays as faults) or on pages of objects older than \
         the cycle (*old*: the mutations the barrier exists for).",
    );
    let mut table = Vec::new();
    for (wl, threads, heap) in keys {
        let at = At::new(Section::Macro, wl, *threads, Some(*heap));
        for t in trackers(rows, Section::Macro) {
            let get = |m| select(rows, at, &t, m).collect::<Vec<f64>>();
            let (f, o) = (get(Metric::DirtyFrontier), get(Metric::DirtyOld));
            if f.is_empty() || o.is_empty() || t == "none" {
                continue;
            }
            let (f, o) = (median(&f), median(&o));
            let share = if f + o > 0.0 { o / (f + o) } else { f64::NAN };
            table.push(vec![
                Cell::text(format!("{wl} x{threads} {} MiB", fmt(*heap))),
                Cell::text(t.clone()),
                Cell::count(f),
                Cell::count(o),
                Cell::percent(share),
            ]);
        }
    }
    doc.table(&["point", "tracker", "frontier", "old", "old share"], table);
    doc.shows(
        "how much of a page tracker's work is the allocation frontier (GCBench: nearly all) \
         rather than mutation of old objects (the LRU cache and binary trees: a large share), \
         which is where page protection can compete with card marking.",
    );
}

/// How the peer ran, as it reported itself in each run (its dirty bits, whether its
/// incremental mode was generational) and how many of its collections were full.
fn peer_settings(doc: &mut Doc, rows: &[Row]) {
    let mut peers: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.section == Section::Macro && r.metric == Metric::FullCycles)
        .map(|r| (r.tracker.as_str(), r.note.as_str()))
        .collect();
    peers.sort_unstable();
    peers.dedup();
    if peers.is_empty() {
        return;
    }
    let mut text = String::from(
        "How bdwgc ran, as it reported itself (at the same heap sizes as barrierlab's points; \
         *full*: the share of its collections, over every run, that traced the whole heap):\n",
    );
    for (t, how) in peers {
        let of = |m: Metric| -> f64 {
            rows.iter()
                .filter(|r| r.section == Section::Macro && r.tracker == t && r.metric == m)
                .map(|r| r.value)
                .sum()
        };
        let (full, all) = (of(Metric::FullCycles), of(Metric::Cycles));
        let share = if all > 0.0 {
            format!("{:.0}%", 100.0 * full / all)
        } else {
            "–".into()
        };
        text.push_str(&format!("\n- `{t}`: {how}; full: {share}"));
    }
    doc.para(&text);
}

/// What the run-length floor says of these points: how many (point, variant) pairs ran a
/// median wall time under [`MIN_RUN_MS`], and the shortest.
fn run_length(rows: &[Row], keys: &[PointKey]) -> String {
    let mut short = Vec::new();
    let mut pairs = 0;
    for (wl, threads, heap) in keys {
        let at = At::new(Section::Macro, wl, *threads, Some(*heap));
        for t in trackers(rows, Section::Macro) {
            let wall: Vec<f64> = select(rows, at, &t, Metric::WallMs).collect();
            if wall.is_empty() {
                continue;
            }
            pairs += 1;
            let m = median(&wall);
            if m < MIN_RUN_MS {
                short.push((m, format!("{wl} at {} MiB, `{t}`", fmt(*heap))));
            }
        }
    }
    let floor = MIN_RUN_MS / 1000.0;
    match short.iter().min_by(|a, b| a.0.total_cmp(&b.0)) {
        None => format!(
            "Run length: all {pairs} (point, barrier) pairs ran at least {floor} s (median wall \
             time), the floor the default study's work is sized for."
        ),
        Some((ms, what)) => format!(
            "Run length: {} of {pairs} (point, barrier) pairs ran under {floor} s (median wall \
             time), the floor the default study's work is sized for; the shortest, {what}, ran \
             {} ms. A short run weighs each cycle's fixed costs more than a long one.",
            short.len(),
            fmt(*ms)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walls(tracker: &str, heap_mib: f64, walls: &[f64]) -> Vec<Row> {
        (walls.iter().enumerate())
            .map(|(i, &value)| Row {
                section: Section::Macro,
                tracker: tracker.into(),
                workload: "lru-l64".into(),
                threads: 1,
                heap_mib,
                invocation: i,
                round: 0,
                metric: Metric::WallMs,
                value,
                note: String::new(),
            })
            .collect()
    }

    #[test]
    fn a_point_gets_three_narrow_tables_each_row_named_by_its_tracker() {
        let mut rows = walls("none", 140.0, &[1900.0, 2500.0, 1800.0]);
        rows.extend(walls("card-table", 140.0, &[2100.0, 2200.0, 1500.0]));
        let mut doc = Doc::new();
        write(&mut doc, &rows, 1, Design::Shuffled);
        let point: Vec<&crate::study::summary::Table> = doc
            .tables
            .iter()
            .filter(|t| t.heading.contains("lru-l64"))
            .collect();
        let headers: Vec<&[&str]> = vec![&TIME_COLUMNS, &PAUSE_COLUMNS, &HEALTH_COLUMNS];
        assert_eq!(point.len(), headers.len(), "{point:?}");
        for (t, header) in point.iter().zip(headers) {
            assert_eq!(t.header, header, "{t:?}");
            assert!(t.header.len() <= 11, "{} columns", t.header.len());
            let names: Vec<String> = t.rows.iter().map(|r| r[0].render()).collect();
            assert_eq!(names, ["none", "card-table"], "{t:?}");
            assert!(t.rows.iter().all(|r| r.len() == t.header.len()), "{t:?}");
        }
        let wall = point[0].cell("card-table", "wall ms").expect("wall ms");
        assert_eq!(wall.render().split(' ').next(), Some("2100"));
    }

    #[test]
    fn a_study_run_in_blocks_judges_each_barrier_against_the_none_of_its_block() {
        // The host's speed moves from block to block; the card table costs 5% in every
        // block. Paired by block, that is a cost; as a ratio of medians it is not.
        let none = [1800.0, 2600.0, 2000.0, 2900.0, 2200.0];
        let card: Vec<f64> = none.iter().map(|x| x * 1.05).collect();
        let mut rows = walls("none", 140.0, &none);
        rows.extend(walls("card-table", 140.0, &card));
        let verdict = |design| {
            let mut doc = Doc::new();
            write(&mut doc, &rows, 1, design);
            let time = doc
                .tables
                .iter()
                .find(|t| t.heading.contains("lru-l64"))
                .unwrap();
            let ratio = time.cell("card-table", "wall ÷ none").unwrap().render();
            let index = time
                .header
                .iter()
                .position(|h| *h == "wall ÷ none")
                .unwrap();
            let row = time
                .rows
                .iter()
                .find(|r| r[0].render() == "card-table")
                .unwrap();
            (ratio, row[index + 1].render())
        };
        let (ratio, said) = verdict(Design::Blocks);
        assert!(ratio.starts_with("1.05"), "{ratio}");
        assert_eq!(said, "slower");
        let (_, said) = verdict(Design::Shuffled);
        assert_eq!(said, "no difference measured");
    }

    #[test]
    fn run_length_counts_the_pairs_whose_median_is_under_the_floor() {
        let mut rows = walls("none", 140.0, &[1900.0, 2500.0, 1800.0]);
        rows.extend(walls("card-table", 140.0, &[2100.0, 2200.0, 1500.0]));
        rows.extend(walls("none", 210.0, &[1700.0, 1750.0, 2600.0]));
        let keys = points(&rows, Section::Macro);
        let said = run_length(&rows, &keys);
        assert!(
            said.contains("2 of 3 (point, barrier) pairs ran under 2 s"),
            "{said}"
        );
        assert!(
            said.contains("lru-l64 at 210 MiB, `none`, ran 1750 ms"),
            "{said}"
        );
        let long = walls("none", 140.0, &[2000.0, 2100.0]);
        let said = run_length(&long, &points(&long, Section::Macro));
        assert!(said.starts_with("Run length: all 1 (point, barrier) pairs ran at least 2 s"));
    }
}
