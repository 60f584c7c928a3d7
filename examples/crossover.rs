//! The crossover, at small scale: how many stores per dirtied page it takes for page
//! protection to cost less than card marking.
//!
//! Run: `cargo run --release --example crossover`
//!
//! Each barrier runs alone over a bare region of 512 pages ([`PageLab`]): arm, then
//! `stores_per_page` 8-byte stores to every page (each followed by the barrier's store
//! path), then harvest and disarm. The cost per store counts all of it:
//! `(stores + arm + harvest) / stores`, the median of 3 rounds.
//!
//! - The **card table** pays on every store (one more byte store) and a scan of the
//!   table per cycle: its cost per store is flat.
//! - A **page tracker** pays nothing per store but a fault per dirtied page (tens of µs
//!   for `uffd-wp`, whose fault is served by another thread; a few µs for `mprotect` and
//!   `uffd-wp-sigbus`, served on the writer; about 1 µs for `uffd-wp-async`, resolved in
//!   the kernel) plus arming and harvesting: its cost per store falls as
//!   `1 / stores_per_page`.
//!
//! So the curves cross. [`crossover`] finds where the measured median curves cross, with
//! a bootstrap interval over the rounds (`barrierlab study` does the same over more
//! points, each in a fresh process, and writes it up).

use barrierlab::BarrierKind;
use barrierlab::study::crossover::crossover;
use barrierlab::study::data::micro_curve;
use barrierlab::study::format::fmt;
use barrierlab::study::{Metric, Row, Section};
use barrierlab::sys::PAGE_SIZE;
use barrierlab::workload::pages::{PageLab, PagePattern};

const PAGES: usize = 512;
const ROUNDS: usize = 3;
const STORES_PER_PAGE: [u64; 7] = [1, 4, 16, 64, 256, 1024, 4096];

fn main() -> barrierlab::Result<()> {
    let mut rows: Vec<Row> = Vec::new();
    let mut ran: Vec<BarrierKind> = Vec::new();
    // `None` is the baseline: plain stores, no tracker (what a stop-the-world collector
    // pays while the mutator runs).
    for kind in BarrierKind::ALL {
        // Builds the region and the tracker; a mechanism this kernel lacks fails here with
        // the probe's reason (`barrierlab probe` prints them all).
        let lab = match PageLab::new(kind, PAGES) {
            Ok(lab) => lab,
            Err(e) => {
                println!("{kind:<15} skipped: {e}");
                continue;
            }
        };
        for spp in STORES_PER_PAGE {
            let pattern = PagePattern {
                pages: PAGES,
                stores_per_page: spp,
                random: false,
                rounds: ROUNDS,
            };
            let stores = (PAGES as u64 * spp) as f64;
            for (round, cost) in lab.run(&pattern, 1)?.iter().enumerate() {
                // One row per round, in the study's format, so that the study's own
                // analysis (`micro_curve`, `crossover`) can read them.
                rows.push(Row {
                    section: Section::Micro,
                    tracker: kind.name().to_string(),
                    workload: format!("pages-spp{spp}"),
                    threads: 1,
                    heap_mib: (PAGES * PAGE_SIZE) as f64 / (1 << 20) as f64,
                    invocation: 0,
                    round,
                    metric: Metric::TotalNsPerStore,
                    value: (cost.stores + cost.arm + cost.harvest).as_nanos() as f64 / stores,
                    note: String::new(),
                });
            }
        }
        ran.push(kind);
    }

    // The table: one column per barrier, one line per stores-per-page.
    println!("\nns per store (stores + arm + harvest), median of {ROUNDS} rounds, {PAGES} pages:");
    let mut header = format!("{:>16}", "stores/page");
    for kind in &ran {
        header.push_str(&format!("{:>15}", kind.name()));
    }
    println!("{header}");
    let curves: Vec<Vec<(f64, f64)>> = ran
        .iter()
        .map(|kind| micro_curve(&rows, kind.name()))
        .collect();
    for spp in STORES_PER_PAGE {
        let mut line = format!("{spp:>16}");
        for curve in &curves {
            let ns = curve.iter().find(|p| p.0 == spp as f64);
            line.push_str(&format!("{:>15}", ns.map_or("–".into(), |p| fmt(p.1))));
        }
        println!("{line}");
    }

    // Where each page tracker crosses the card table.
    let card = BarrierKind::CardTable.name();
    if !ran.contains(&BarrierKind::CardTable) {
        println!("\nno card table: no crossover to show");
        return Ok(());
    }
    println!(
        "\ncrossover with the card table (stores per dirtied page above which the page tracker is cheaper):"
    );
    for kind in ran.iter().filter(|k| k.is_page_level()) {
        let Some(c) = crossover(&rows, kind.name(), card, 1) else {
            continue;
        };
        let measured = c.measured.map_or_else(
            || format!("beyond {}", fmt(c.swept_to)),
            |i| format!("{} [{}–{}]", fmt(i.estimate), fmt(i.lo), fmt(i.hi)),
        );
        println!(
            "  {:<15} {measured:>24}   ({:.0}% of the resamples cross within the sweep)",
            kind.name(),
            c.crossing_share * 100.0
        );
    }
    Ok(())
}
