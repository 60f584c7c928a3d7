//! Barrier cost with the collection held fixed: each workload run with no collection at
//! all, the tracker armed and harvested on the same fixed schedule for every barrier
//! (`HeapConfig::duty_cycle`), on a heap that holds everything the workload allocates.
//! The slowdown over `none` is what the barrier costs the mutators, set beside the micro's
//! prediction: the per-store cost times the stores, plus the per-first-write cost (in
//! random page order) times the first writes counted (faults, or the pages
//! `uffd-wp-async` recorded), plus the TLB shootdowns the tracker added, each at its
//! price (in a run placed on two CPUs, those the collector's CPU received were sent by
//! the mutator, at the sender's price; the others at the receiver's), plus, for a
//! tracker whose protection changes hold the mapping lock for writing (`mprotect`), the
//! time of those changes, and for one whose faults a thread serves (`uffd-wp`), the time
//! that thread waited for a CPU.

use super::Doc;
use super::micro::costs;
use crate::barrier::MappingLock;
use crate::study::data::{At, Metric, Row, Section, points, select, select_numbered, trackers};
use crate::study::format::fmt;
use crate::study::point::{BARRIER_ONLY_ARMED_SHARE, BARRIER_ONLY_PERIOD, find_variant};
use crate::study::stats::{self, Design};
use crate::study::summary::Cell;

/// Predicted and measured extra times further apart than this are flagged.
const AGREEMENT: f64 = 0.25;

const COLUMNS: [&str; 15] = [
    "barrier",
    "n",
    "wall ms",
    "÷ none",
    "extra ms, measured",
    "extra ms, predicted",
    "of which shootdowns",
    "predicted ÷ measured",
    "fault stalls ms",
    "mutator user / kernel / off CPU ms over none's",
    "service waited for a CPU ms",
    "stores / first writes / shootdowns",
    "armed",
    "arm + harvest + disarm ms",
    "agreement",
];

pub(super) fn write(doc: &mut Doc, rows: &[Row], seed: u64, design: Design) {
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
         end of an arm to the start of its disarm. *÷ none*: ratio of wall times, 95% \
         interval. *extra ms, measured*: wall time minus `none`'s, with its 95% interval. \
         Both pair each invocation with `none`'s of the same block where the study ran in \
         blocks (the mean over blocks, geometric for the ratio, with a t interval), else \
         compare the medians, resampled. \
         *predicted*: the micro's cost per store times the workload's stores, plus its cost \
         per first write to a page in random page order (no other thread running; a \
         workload's objects write their pages in no page order, and for `mprotect` a page \
         written out of order splits its mapping where one written in order extends its \
         neighbour's: see *Page order*) times the first writes counted here (the faults \
         served, or for `uffd-wp-async` the pages its harvests reported; \
         the card table takes none), plus the TLB shootdowns the tracker added (*of which \
         shootdowns*: those counted during its runs, `/proc/interrupts`, less those counted \
         during `none`'s, which are other processes' and already in `none`'s time), each \
         at its price. {placement} On two CPUs, a shootdown the collector's CPU received \
         was sent by the mutator (*sent*): a first write that unprotects its page \
         (`mprotect`, `uffd-wp-sigbus`), or, under `uffd-wp-async`, a first write the \
         kernel resolved while the collector's arm, harvest or disarm was in flight (the \
         kernel then flushes that page's translation on every CPU running the process); it \
         is charged the micro's price of a sent shootdown (beside a running thread, or for \
         `uffd-wp-async` beside one changing protections). One the mutator's CPU received \
         came from the collector's protection changes, at the micro's price of a shootdown \
         received. A tracker whose protection changes hold the process's mapping lock for \
         writing (`mprotect`) is charged its *arm + harvest + disarm ms* too: the mutator's \
         next fault or `mprotect` waits until each change is done (a scheduler trace of the \
         LRU cache with a 2 GiB heap had the mutator blocked on that lock 13.8 s of the \
         collector's 14.7 s of changes). A tracker whose faults a thread serves \
         (`uffd-wp`) is charged the time that thread waited for a CPU (*service waited for \
         a CPU ms*, its run-queue wait in `/proc/self/task/<tid>/schedstat`): the mutator \
         waits as long, and the micro's service thread, with nothing else running, never \
         does; here the scheduler keeps it on the collector's CPU, behind each arm, \
         harvest and disarm. The prediction still leaves out the cache effects of the card \
         table at this heap size. *mutator user / kernel / off CPU ms over none's*: \
         where the measured extra time went: the mutator's CPU time in user mode (its own \
         code and the store path, slower where a fault or a flush cost it its caches and \
         translations), in the kernel (faults, signals, the shootdowns it sent), and off \
         the CPU (wall time less CPU time: blocked in a fault, or waiting for a CPU), each \
         as the median's difference from `none`'s (user and kernel split by where the \
         kernel's ticks landed, `getrusage`). *fault stalls ms*: the time the faults \
         took here, in the run itself (median \
         over invocations of the sum of the tracker's stall log: inside the signal handler \
         for `mprotect` and `uffd-wp-sigbus`, on the serving thread for `uffd-wp`, each a \
         lower bound; `uffd-wp-async` and the store paths have no fault to time, \"–\"). \
         Where prediction and measurement differ by more than {agreement:.0}%, *agreement* \
         says so and where the gap lies, setting each part of the split beside the part of \
         the prediction that belongs there (the store path runs in user mode, whose \
         measured part is given with its interval, since the mutator's code runs at \
         different speeds from one process to the next; first writes, shootdowns and \
         waits are kernel time or time off the CPU), unless the prediction lies inside the measured extra time's interval (the \
         runs cannot tell the two apart, and it says that instead); it judges only a barrier \
         measured slower than `none` (a cost within the noise has nothing to explain).",
        armed = (BARRIER_ONLY_PERIOD.as_secs_f64() * BARRIER_ONLY_ARMED_SHARE * 1e3).round(),
        rest = (BARRIER_ONLY_PERIOD.as_secs_f64() * (1.0 - BARRIER_ONLY_ARMED_SHARE) * 1e3).round(),
        agreement = AGREEMENT * 100.0,
        placement =
            if rows.iter().any(|r| r.section == Section::Barrieronly
                && r.metric == Metric::TlbShootdownsMutatorCpu)
            {
                "The mutator and the collector ran pinned to two CPUs, so each CPU's count says \
             who sent it."
            } else {
                "This study did not place the mutator and the collector on two CPUs (it predates \
             placement, or had one CPU): every shootdown is charged the sender's price for a \
             tracker whose every first write sends one, else the receiver's."
            }
    ));
    for (wl, threads, heap) in &keys {
        let at = At::new(Section::Barrieronly, wl, *threads, Some(*heap));
        doc.heading(
            3,
            &format!("{wl}, {threads} thread(s), {} MiB heap", fmt(*heap)),
        );
        let get = |t: &str, m: Metric| select(rows, at, t, m).collect::<Vec<f64>>();
        let med = |t: &str, m: Metric| stats::median(&get(t, m));
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
            let numbered = |t: &str, m: Metric| select_numbered(rows, at, t, m);
            // `t` against `none` in metric `m`: pair by pair where the study ran in
            // blocks, else both medians resampled, since `none`'s varies between
            // processes as much as a barrier's.
            let extra = |m: Metric, what: &str| {
                stats::difference_to(design, &numbered(&t, m), &numbered("none", m), s(what))
            };
            let (own, none) = (
                numbered(&t, Metric::WallMs),
                numbered("none", Metric::WallMs),
            );
            let ratio = stats::ratio_to(design, &own, &none, s("ratio"));
            // The measured extra time, with its own interval.
            let measured_ci = extra(Metric::WallMs, "extra");
            let measured = measured_ci
                .map_or(med(&t, Metric::WallMs) - med("none", Metric::WallMs), |i| {
                    i.estimate
                });
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
            let added = |m: Metric| match (med(&t, m), med("none", m)) {
                (x, n) if x.is_finite() && n.is_finite() => (x - n).max(0.0),
                (x, _) => x,
            };
            // Placed on two CPUs: what the mutator's CPU received (the collector's
            // changes) and what the collector's received (the mutator's first writes).
            let (received, sent) = (
                added(Metric::TlbShootdownsMutatorCpu),
                added(Metric::TlbShootdownsCollectorCpu),
            );
            let split = received.is_finite() && sent.is_finite();
            let added = added(Metric::TlbShootdowns);
            // A tracker whose protection changes hold the mapping lock for writing stalls
            // the mutator for each of them: its next fault or `mprotect` waits until the
            // change is done.
            let blocked = match mapping_lock(&t) {
                Some(MappingLock::Write) => med(&t, Metric::DutyWorkMs),
                _ => 0.0,
            };
            // A fault-service thread that waited for a CPU kept the mutator whose fault
            // it would serve waiting too: the micro's service never waits (nothing else
            // runs beside it), here it shares the collector's CPU.
            let service_waited = med(&t, Metric::RunQueueServiceMs);
            // (`max` also takes a study from before the metric, whose median is NaN, as 0.)
            let blocked = blocked + service_waited.max(0.0);
            // (total, of which shootdowns, of which stores), ms.
            let predicted = costs(rows, &t, seed).map(|c| {
                let at = |i: Option<stats::Interval>, n: f64| i.map_or(0.0, |i| i.estimate * n);
                let shot = if split {
                    // Each direction at its price: a shootdown the mutator sent (a first
                    // write that unprotects, or one the kernel resolved while a change
                    // was in flight) at the sender's; one it received at the receiver's.
                    at(c.per_received_shootdown, received)
                        + at(c.per_shootdown.or(c.per_sent_shootdown), sent)
                } else if added.is_finite() {
                    // Not placed (a study from before placement, or one CPU): a
                    // tracker whose first writes shoot down pays the sender's price for
                    // every shootdown counted; one whose first writes send none (a
                    // served fault) receives them, from the collector.
                    at(c.per_shootdown.or(c.per_received_shootdown), added)
                } else {
                    0.0
                };
                // A workload's first writes follow its objects, not the page order.
                let first = c.per_first_write_random.or(c.per_first_write);
                let store = at(c.per_store, stores);
                let ns = store + at(first, first_writes) + shot;
                (ns / 1e6 + blocked, shot / 1e6, store / 1e6)
            });
            // No extra time to explain where the ratio's interval holds 1.
            let slower = ratio.is_some_and(|i| i.beside(1.0) == Some(std::cmp::Ordering::Greater));
            // Where the measured extra time went: the mutator's own code (user mode),
            // the kernel on its behalf (faults, signals, shootdowns sent), or time off
            // the CPU (blocked in a fault, waiting for a CPU); one mutator thread.
            let user = |t: &str| med(t, Metric::CpuMutatorUserMs);
            let kernel = |t: &str| med(t, Metric::CpuMutatorMs) - user(t);
            let off_cpu = |t: &str| med(t, Metric::WallMs) - med(t, Metric::CpuMutatorMs);
            let over_none = |f: &dyn Fn(&str) -> f64| f(&t) - f("none");
            let (user_over, kernel_over, off_over) =
                (over_none(&user), over_none(&kernel), over_none(&off_cpu));
            // The user-mode part's own interval: the mutator's code runs at different
            // speeds from one process to the next.
            let user_ci = extra(Metric::CpuMutatorUserMs, "user");
            let (pred_cell, shot_cell) = match predicted {
                Some((p, shot, _)) => (Cell::number(p), Cell::number(shot)),
                None => (Cell::text("no micro"), Cell::text("–")),
            };
            let (ratio_cell, agreement) = match predicted {
                None => (Cell::text("–"), "no micro in this study".to_string()),
                Some(_) if !slower => {
                    (Cell::text("–"), "not judged: no extra time measured".into())
                }
                Some((p, _, store)) if measured.is_finite() && measured.abs() > 0.0 => {
                    let r = p / measured;
                    let agree = if (r - 1.0).abs() <= AGREEMENT {
                        format!("within {:.0}%", AGREEMENT * 100.0)
                    } else if measured_ci.is_some_and(|i| i.lo <= p && p <= i.hi) {
                        format!(
                            "apart by {:.0}%, inside the measured interval",
                            (r - 1.0).abs() * 100.0
                        )
                    } else {
                        format!(
                            "**differ** by {:.0}%{}",
                            (r - 1.0).abs() * 100.0,
                            located(
                                (user_over, store),
                                user_ci,
                                (kernel_over + off_over, p - store)
                            )
                        )
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
            let split_cell = Cell::text(format!(
                "{} / {} / {}",
                counted(user_over),
                counted(kernel_over),
                counted(off_over),
            ));
            let service_cell = if med(&t, Metric::CpuServiceMs) > 0.0 {
                Cell::text(counted(service_waited))
            } else {
                Cell::text("–")
            };
            table.push(vec![
                Cell::text(t.clone()),
                Cell::count(wall.len() as f64),
                ci,
                Cell::ratio(ratio, ratio.map_or("", |i| i.time_verdict())),
                Cell::estimate(measured_ci),
                pred_cell,
                shot_cell,
                ratio_cell,
                stall_cell,
                split_cell,
                service_cell,
                Cell::text(format!(
                    "{} / {} / {}{}",
                    fmt(stores),
                    fmt(first_writes),
                    counted(shootdowns),
                    if split {
                        format!(" ({} sent)", fmt(sent))
                    } else {
                        String::new()
                    }
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

/// `x` as a count, or "–" where it was not measured.
fn counted(x: f64) -> String {
    if x.is_finite() { fmt(x) } else { "–".into() }
}

/// Where a disagreement lies, from the measured split: `user` and `elsewhere` are each
/// (measured over `none`'s, predicted) ms, in user mode (the store path's predicted
/// cost; `user_ci` the measured part's interval) and in the kernel or off the CPU (first
/// writes, shootdowns and waits).
fn located(user: (f64, f64), user_ci: Option<stats::Interval>, elsewhere: (f64, f64)) -> String {
    if !user.0.is_finite() || !elsewhere.0.is_finite() {
        return " (this study did not split the mutator's time)".into();
    }
    let (gap_user, gap_elsewhere) = (user.0 - user.1, elsewhere.0 - elsewhere.1);
    let where_ = if gap_user.abs() <= gap_elsewhere.abs() {
        "in the kernel and off the CPU, where the prediction's costs lie"
    } else if user_ci.is_some_and(|i| i.lo <= 0.0 && 0.0 <= i.hi) {
        "in user mode, whose difference from `none`'s the runs cannot tell from 0 (its \
         interval holds 0: the mutator's code ran at different speeds from one process to \
         the next)"
    } else {
        "the mutator's own code running slower, which no micro pattern prices"
    };
    format!(
        ": user mode {} ms ({} predicted), kernel and off the CPU {} ({} predicted); most \
         of the gap is {where_}",
        Cell::estimate(user_ci).render(),
        fmt(user.1),
        fmt(elsewhere.0),
        fmt(elsewhere.1),
    )
}

/// What the protection changes of tracker `t` (a study label, `uffd-wp[thread]`) hold;
/// `None` for a label that is no variant (a peer).
fn mapping_lock(t: &str) -> Option<MappingLock> {
    find_variant(t)
        .ok()
        .map(|v| v.kind().mechanism().mapping_lock)
}

#[cfg(test)]
mod tests;
