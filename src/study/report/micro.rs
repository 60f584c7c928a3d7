//! The micro sections: cost per store, per dirtied page and per cycle; the crossover
//! with the card table; page order; the share of the region dirtied; one CPU.

use super::Doc;
use crate::study::crossover::crossover;
use crate::study::data::{Metric, Row, Section, micro_samples, swept, trackers};
use crate::study::format::fmt;
use crate::study::stats::{self, Interval};
use crate::study::summary::Cell;
use crate::sys::kernel::last_level_cache_bytes;

/// "negative" when the interval lies below 0, "under noise" when it contains 0.
fn flag(i: &Option<Interval>) -> Cell {
    Cell::text(match i.map(|i| i.beside(0.0)) {
        Some(Some(std::cmp::Ordering::Less)) => "negative",
        Some(None) => "under noise",
        _ => "",
    })
}

pub(super) fn write(doc: &mut Doc, rows: &[Row], seed: u64) {
    let spps = swept(rows);
    let (Some(&lo), Some(&hi)) = (spps.first(), spps.last()) else {
        return;
    };
    let ts = trackers(rows, Section::Micro);
    let region = rows
        .iter()
        .find(|r| r.section == Section::Micro)
        .map_or(0.0, |r| r.heap_mib);
    doc.heading(2, "Cost per store, per dirtied page, per cycle");
    doc.para(&format!(
        "Each tracker alone over a bare {} MiB region (`workload::pages`; the last-level cache is {} MiB), \
         several processes per tracker and pattern, each a few rounds of: arm, a first pass of stores, \
         a second pass of the same stores (nothing left to fault), harvest and disarm. A process's value \
         is the median of its rounds; the intervals resample processes. *Per store*: second-pass time \
         per store at {hi} stores per page, minus `none`'s. *First write per dirtied page*: (first pass \
         − second pass) per page at {lo} store per page, minus `none`'s: the fault and its service. A \
         difference whose interval contains 0 is flagged *under noise*, one below 0 *negative*: neither \
         is a cost. *Arm*, *harvest + disarm*: per page of the region.{}",
        fmt(region),
        last_level_cache_bytes().map_or("?".into(), |b| fmt(b as f64 / (1 << 20) as f64)),
        if ts.iter().any(|t| t == "uffd-wp[collector]") {
            " Here `uffd-wp[collector]`'s faults are served by a thread that only polls the \
             descriptor; the end-to-end rows run the real layout."
        } else {
            ""
        },
    ));
    let lo_label = format!("pages-spp{lo}");
    let mut table = Vec::new();
    for t in &ts {
        let Costs {
            per_store: s,
            per_first_write: f,
            ..
        } = costs(rows, t, seed).unwrap_or_default();
        let per_page = |m: Metric| {
            stats::median_ci(
                &micro_samples(rows, t, &lo_label, |r| r(m) / (region * 256.0)),
                stats::seed_for(seed, &m.name()),
            )
        };
        table.push(vec![
            Cell::text(t.clone()),
            Cell::estimate(s),
            flag(&s),
            Cell::estimate(f),
            flag(&f),
            Cell::estimate(per_page(Metric::ArmNs)),
            Cell::estimate(per_page(Metric::HarvestNs)),
        ]);
    }
    doc.table(
        &[
            "tracker",
            "per store (ns)",
            "",
            "first write per dirtied page (ns)",
            "",
            "arm (ns/page)",
            "harvest + disarm (ns/page)",
        ],
        table,
    );
    doc.shows(
        "the price of each mechanism on its own: card marking costs a little on every store; \
         a page tracker costs nothing per store but a fault (microseconds) on the first write \
         to each page per cycle, and a per-page arm and harvest. The crossover is the number of \
         stores per dirtied page at which the two prices meet: a workload that writes each \
         dirtied page more often than that favours page protection.",
    );
    crossover_table(doc, rows, &ts, seed);
    pattern_tables(doc, rows, &ts, seed);
}

fn crossover_table(doc: &mut Doc, rows: &[Row], ts: &[String], seed: u64) {
    if !ts.iter().any(|t| t == "card-table") {
        return;
    }
    doc.heading(2, "Crossover with the card table");
    doc.para(
        "Stores per dirtied page above which a page tracker costs less per store than the card table \
         (arm, first pass and harvest counted, sequential pages, every page dirtied): where the measured \
         median curves cross (log-log interpolation), with the bootstrap interval over the processes at \
         every point of the sweep. No interval where fewer than half the resamples cross within the sweep.",
    );
    let mut table = Vec::new();
    for t in ts.iter().filter(|t| *t != "card-table" && *t != "none") {
        if let Some(c) = crossover(rows, t, "card-table", seed) {
            let cell = match c.measured {
                Some(i) => Cell::estimate(Some(i)),
                None => Cell::text(format!("none within 1–{}", fmt(c.swept_to))),
            };
            table.push(vec![
                Cell::text(t.clone()),
                cell,
                Cell::text(format!("{:.0}%", c.crossing_share * 100.0)),
            ]);
        }
    }
    doc.table(
        &["tracker", "crossover (stores/page)", "resamples that cross"],
        table,
    );
}

fn pattern_tables(doc: &mut Doc, rows: &[Row], ts: &[String], seed: u64) {
    let total = |m: &dyn Fn(Metric) -> f64| {
        (m(Metric::StoresNs) + m(Metric::ArmNs) + m(Metric::HarvestNs)) / m(Metric::Stores)
    };
    let has = |l: &str| {
        rows.iter()
            .any(|r| r.section == Section::Micro && r.workload == l)
    };
    let s = |t: &str| stats::seed_for(seed, t);
    if has("pages-spp1-random") {
        doc.heading(3, "Page order");
        doc.para(
            "Cost per store (arm + first pass + harvest) in random page order over sequential \
             order; and the first write per dirtied page in random order (first pass − second \
             pass at 1 store per page, minus `none`'s), the price the barrier-only prediction \
             charges, since a workload's objects write their pages in no page order.",
        );
        let table = ts
            .iter()
            .map(|t| {
                let r = |spp: u64| {
                    stats::ratio_of_medians(
                        &micro_samples(rows, t, &format!("pages-spp{spp}-random"), total),
                        &micro_samples(rows, t, &format!("pages-spp{spp}"), total),
                        s(t),
                    )
                };
                let f = costs(rows, t, seed).and_then(|c| c.per_first_write_random);
                vec![
                    Cell::text(t.clone()),
                    Cell::ratio(r(1), ""),
                    Cell::ratio(r(64), ""),
                    Cell::estimate(f),
                    flag(&f),
                ]
            })
            .collect();
        doc.table(
            &[
                "tracker",
                "random ÷ sequential, 1 store/page",
                "64 stores/page",
                "first write per dirtied page, random order (ns)",
                "",
            ],
            table,
        );
    }
    if has("pages-spp16-f0.1") {
        doc.heading(3, "Share of the region dirtied");
        doc.para(
            "Cost per dirtied page (arm + first pass + harvest, divided by the pages written), 16 stores \
             per page, a random spread of the region's pages written in ascending order: arm and harvest \
             pay for the whole region, so their share grows as fewer pages are dirtied.",
        );
        let per_page = |m: &dyn Fn(Metric) -> f64| {
            (m(Metric::StoresNs) + m(Metric::ArmNs) + m(Metric::HarvestNs))
                / m(Metric::PagesWritten)
        };
        let table = ts
            .iter()
            .map(|t| {
                let c = |l: &str| {
                    Cell::estimate(stats::median_ci(&micro_samples(rows, t, l, per_page), s(l)))
                };
                vec![
                    Cell::text(t.clone()),
                    c("pages-spp16"),
                    c("pages-spp16-f0.1"),
                    c("pages-spp16-f0.01"),
                ]
            })
            .collect();
        doc.table(&["tracker", "all pages (ns)", "10% (ns)", "1% (ns)"], table);
    }
    if has("pages-spp1-pinned") {
        doc.heading(3, "One CPU");
        doc.para(
            "First write per dirtied page (first pass − second pass, 1 store per page) with every thread \
             of the process pinned to one CPU (the fault-service thread then shares the writer's CPU), \
             against unpinned.",
        );
        let table = ts
            .iter()
            .map(|t| {
                let (p, u) = (
                    micro_samples(rows, t, "pages-spp1-pinned", first_write),
                    micro_samples(rows, t, "pages-spp1", first_write),
                );
                let (pi, ui) = (stats::median_ci(&p, s(t)), stats::median_ci(&u, s(t)));
                // A ratio of two costs only where both are costs (intervals above 0).
                let above = |i: &Option<Interval>| i.is_some_and(|i| i.lo > 0.0);
                let ratio = if above(&pi) && above(&ui) {
                    Cell::ratio(stats::ratio_of_medians(&p, &u, s(t)), "")
                } else {
                    Cell::text("– (under noise)")
                };
                vec![
                    Cell::text(t.clone()),
                    Cell::estimate(pi),
                    Cell::estimate(ui),
                    ratio,
                ]
            })
            .collect();
        doc.table(
            &[
                "tracker",
                "pinned (ns)",
                "unpinned (ns)",
                "pinned ÷ unpinned",
            ],
            table,
        );
    }
    beside_table(doc, rows, ts, seed);
}

/// A value computed from one micro round's metrics.
type PerRound = dyn Fn(&dyn Fn(Metric) -> f64) -> f64;

/// One round's first write per dirtied page (ns): (first pass − second pass) per page
/// written, the faults and their service.
fn first_write(m: &dyn Fn(Metric) -> f64) -> f64 {
    (m(Metric::StoresNs) - m(Metric::SteadyNs)) / m(Metric::PagesWritten)
}

/// First writes beside a running thread of the process, against alone.
fn beside_table(doc: &mut Doc, rows: &[Row], ts: &[String], seed: u64) {
    let Some(&lo) = swept(rows).first() else {
        return;
    };
    let beside = format!("pages-spp{lo}-beside");
    if !rows
        .iter()
        .any(|r| r.section == Section::Micro && r.workload == beside)
    {
        return;
    }
    doc.heading(3, "Beside a running thread");
    doc.para(&format!(
        "First write per dirtied page ({lo} store per page, ns) while another thread of the \
         process spins on the other CPU, as a collector thread runs beside a mutator, against \
         the same with no other thread running; the TLB shootdown interrupts counted per page \
         written (`/proc/interrupts`, all CPUs, the round's arm and harvest included); and \
         what one shootdown added to a first write, (beside − alone) ÷ shootdowns per page, \
         where at least {SHOOTDOWNS_PER_PAGE} per page were counted and the interval lies \
         above 0 (a fault served by another thread is woken faster beside a busy CPU, so the \
         difference is not the shootdown's there). A protection change that \
         makes a page writable must interrupt every other CPU running a thread of the \
         process, and the writer waits for them; the barrier-only prediction charges this \
         price for each shootdown counted under a tracker whose first writes send them."
    ));
    let table = ts
        .iter()
        .map(|t| {
            let s = stats::seed_for(seed, &format!("{beside}/{t}"));
            let ci =
                |label: &str, f: &PerRound| stats::median_ci(&micro_samples(rows, t, label, f), s);
            vec![
                Cell::text(t.clone()),
                Cell::estimate(ci(&beside, &first_write)),
                Cell::estimate(ci(&format!("pages-spp{lo}"), &first_write)),
                Cell::estimate(ci(&beside, &|m| {
                    m(Metric::TlbShootdowns) / m(Metric::PagesWritten)
                })),
                costs(rows, t, seed)
                    .and_then(|c| c.per_shootdown)
                    .map_or(Cell::text("–"), |i| Cell::estimate(Some(i))),
            ]
        })
        .collect();
    doc.table(
        &[
            "tracker",
            "beside a running thread (ns)",
            "alone (ns)",
            "shootdowns per page",
            "per shootdown (ns)",
        ],
        table,
    );
    let Some(&hi) = swept(rows).last() else {
        return;
    };
    if let Some(i) = received_shootdown(rows, hi, seed) {
        doc.para(&format!(
            "The receiving end: `none`'s two passes of {hi} stores per page while another \
             thread of the process changes the protection of a page of its own back and \
             forth, each change a shootdown of the writer's CPU, cost {} ns more per \
             shootdown received than alone (the interrupt, and the translations the writer \
             then walks the page tables for again). The barrier-only prediction charges \
             this price for the shootdowns the mutator's CPU received.",
            Cell::estimate(Some(i)).render()
        ));
    }
    for t in ts {
        if let Some(i) = costs(rows, t, seed).and_then(|c| c.per_sent_shootdown) {
            doc.para(&format!(
                "`{t}` while a TLB flush is pending: a first write the kernel resolves \
                 sends a shootdown while a protection change is in flight anywhere in the \
                 process (`do_wp_page` flushes the page's translation when \
                 `mm_tlb_flush_pending`, a check added in Linux 5.12 against a memory \
                 corruption), as beside a collector that arms, harvests or disarms. Its \
                 first write at {lo} store per page, pinned to one CPU while another thread \
                 on the other changes the protection of a region with no page mapped (a \
                 flush pending, nothing shot down), less the same alone (each over \
                 `none`'s), cost {} ns per shootdown its CPU sent (counted on the other \
                 thread's CPU). The barrier-only prediction charges this price for the \
                 shootdowns the collector's CPU received under this tracker.",
                Cell::estimate(Some(i)).render()
            ));
        }
    }
}

/// What the micro says one tracker costs, each over `none`'s (ns), with its interval.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Costs {
    /// Per store: the second pass's time per store at the most stores per page swept.
    pub per_store: Option<Interval>,
    /// Per first write to a page: (first pass − second pass) per page at the fewest,
    /// with no other thread of the process running.
    pub per_first_write: Option<Interval>,
    /// The same in random page order (the `pages-spp<lo>-random` pattern), the order in
    /// which a workload's objects first write their pages; `None` where the study ran no
    /// such pattern.
    pub per_first_write_random: Option<Interval>,
    /// Per TLB shootdown its first writes caused beside a running thread: (first write
    /// beside − first write alone) ÷ shootdowns per page written beside. `None` where
    /// the tracker's first writes shot down fewer than half a page's worth (nothing to
    /// divide by), where the interval does not lie above 0 (the running thread changed
    /// more than the shootdown: a fault served by a thread wakes it faster when the
    /// other CPU is busy), or where the study ran no such pattern.
    pub per_shootdown: Option<Interval>,
    /// Per TLB shootdown a running thread receives, whatever the tracker: `none`'s two
    /// passes at the most stores per page while another thread changes protections,
    /// less the same passes alone, ÷ the shootdowns counted. `None` where the study ran
    /// no such pattern or the interval does not lie above 0.
    pub per_received_shootdown: Option<Interval>,
    /// Per TLB shootdown a first write sends while another thread holds a TLB flush
    /// pending (the `pages-spp<lo>-pending` pattern, which only `none` and the
    /// kernel-resolved trackers run; the writer receives no shootdown there): (first
    /// write there − first write alone, each less `none`'s) ÷ the shootdowns the other
    /// thread's CPU received per page (the writer's). `None` where the study ran no such
    /// pattern with the two sides on two CPUs, where fewer than a tenth of a page's worth
    /// were sent, or where the interval does not lie above 0.
    pub per_sent_shootdown: Option<Interval>,
}

/// Shootdowns per page below which a pattern's first writes are not taken to shoot down.
const SHOOTDOWNS_PER_PAGE: f64 = 0.5;

/// The same for the pending-flush pattern, where only the first writes that land while
/// the other thread's change is in flight send one: 0.38–0.62 per page in the default
/// studies of 2026-12-07, so a bar of half a page dropped the price from one run and
/// kept it in the next. A tenth of a page (1,638 shootdowns at 16,384 pages) still
/// gives a count to divide by.
const PENDING_SHOOTDOWNS_PER_PAGE: f64 = 0.1;

/// The micro's costs of tracker `t`. `None` when the study ran no micro.
pub(super) fn costs(rows: &[Row], t: &str, seed: u64) -> Option<Costs> {
    let spps = swept(rows);
    let (&lo, &hi) = (spps.first()?, spps.last()?);
    let per_store = |t: &str| {
        micro_samples(rows, t, &format!("pages-spp{hi}"), |m| {
            m(Metric::SteadyNs) / m(Metric::Stores)
        })
    };
    let first_in = |t: &str, label: &str| micro_samples(rows, t, label, first_write);
    let (alone, beside) = (format!("pages-spp{lo}"), format!("pages-spp{lo}-beside"));
    let first = |t: &str| first_in(t, &alone);
    let per_store = stats::bootstrap(
        &[&per_store(t), &per_store("none")],
        stats::seed_for(seed, t),
        |m| m[0] - m[1],
    );
    let per_first_write = stats::bootstrap(
        &[&first(t), &first("none")],
        stats::seed_for(seed, t),
        |m| m[0] - m[1],
    );
    let random = format!("{alone}-random");
    let per_first_write_random = stats::bootstrap(
        &[&first_in(t, &random), &first_in("none", &random)],
        stats::seed_for(seed, &random),
        |m| m[0] - m[1],
    );
    let shootdowns = micro_samples(rows, t, &beside, |m| {
        m(Metric::TlbShootdowns) / m(Metric::PagesWritten)
    });
    let per_shootdown = (stats::median(&shootdowns) >= SHOOTDOWNS_PER_PAGE)
        .then(|| {
            stats::bootstrap(
                &[&first_in(t, &beside), &first(t), &shootdowns],
                stats::seed_for(seed, &beside),
                |m| (m[0] - m[1]) / m[2],
            )
        })
        .flatten()
        .filter(|i| i.lo > 0.0);
    Some(Costs {
        per_store,
        per_first_write,
        per_first_write_random,
        per_shootdown,
        per_received_shootdown: received_shootdown(rows, hi, seed),
        per_sent_shootdown: sent_shootdown(rows, t, lo, seed),
    })
}

/// What a first write of tracker `t` pays per TLB shootdown it sends while another
/// thread holds a TLB flush pending (see [`Costs::per_sent_shootdown`]).
fn sent_shootdown(rows: &[Row], t: &str, lo: u64, seed: u64) -> Option<Interval> {
    let pending = format!("pages-spp{lo}-pending");
    let sent = micro_samples(rows, t, &pending, |m| {
        m(Metric::TlbShootdownsCollectorCpu) / m(Metric::PagesWritten)
    });
    if sent.is_empty() || stats::median(&sent) < PENDING_SHOOTDOWNS_PER_PAGE {
        return None;
    }
    let alone = format!("pages-spp{lo}");
    let groups = [
        micro_samples(rows, t, &pending, first_write),
        micro_samples(rows, "none", &pending, first_write),
        micro_samples(rows, t, &alone, first_write),
        micro_samples(rows, "none", &alone, first_write),
        sent,
    ];
    let all: Vec<&[f64]> = groups.iter().map(|g| &g[..]).collect();
    stats::bootstrap(&all, stats::seed_for(seed, &pending), |m| {
        ((m[0] - m[1]) - (m[2] - m[3])) / m[4]
    })
    .filter(|i| i.lo > 0.0)
}

/// What a running thread pays per TLB shootdown it receives (see
/// [`Costs::per_received_shootdown`]).
fn received_shootdown(rows: &[Row], hi: u64, seed: u64) -> Option<Interval> {
    let passes = |m: &dyn Fn(Metric) -> f64| m(Metric::StoresNs) + m(Metric::SteadyNs);
    let shot_at = format!("pages-spp{hi}-shot-at");
    let shot = micro_samples(rows, "none", &shot_at, passes);
    let alone = micro_samples(rows, "none", &format!("pages-spp{hi}"), passes);
    let received = micro_samples(rows, "none", &shot_at, |m| m(Metric::TlbShootdowns));
    stats::bootstrap(
        &[&shot, &alone, &received],
        stats::seed_for(seed, &shot_at),
        |m| (m[0] - m[1]) / m[2],
    )
    .filter(|i| i.lo > 0.0)
}
