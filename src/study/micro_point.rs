//! The micro's store patterns ([`patterns`]), and one micro point's process: a tracker
//! alone over a bare region ([`crate::workload::pages::PageLab`]), several rounds of one
//! store pattern, each round's times and counts as rows of section `micro`.
//!
//! A pattern with another thread beside the writer pins the two to two CPUs where the
//! process may use two, and counts the TLB shootdowns each CPU received: the writer's
//! CPU was shot at by the other thread, the other thread's by the writer.

use std::time::Duration;

use super::config::StudyConfig;
use super::data::{Metric, Row, Section};
use super::point::{Beside, MIB, row};
use crate::barrier::Variant;
use crate::error::Result;
use crate::heap::Placement;
use crate::sys::kernel::{Shootdowns, counting_tlb_shootdowns};
use crate::workload::pages::{PageLab, PagePattern};

/// The settings of a micro point's run (the fields of `Point::Micro` but the variant and the label).
#[derive(Debug, Clone, Copy)]
pub(super) struct MicroRun {
    pub region_pages: usize,
    pub stores_per_page: u64,
    pub random: bool,
    pub dirty_fraction: f64,
    pub rounds: usize,
    pub beside: Beside,
}

impl MicroRun {
    /// Runs every round of variant `v`, rows labelled `label`.
    pub(super) fn run(&self, v: &Variant, label: &str, seed: u64) -> Result<Vec<Row>> {
        v.config.require_available()?;
        let lab = PageLab::new(v.config, self.region_pages)?;
        let placement = match self.beside {
            Beside::Nothing => None,
            Beside::Running | Beside::ChangingProtections | Beside::PendingFlush => {
                Placement::first_two_allowed()?
            }
        };
        let lab = match placement {
            Some(p) => lab.placed(p),
            None => lab,
        };
        let order = micro_order(self.region_pages, self.dirty_fraction, self.random, seed);
        let pattern = PagePattern {
            pages: order.len(),
            stores_per_page: self.stores_per_page,
            random: self.random,
            rounds: self.rounds,
        };
        let heap_mib = (self.region_pages * crate::sys::PAGE_SIZE) as f64 / MIB;
        let mut out = Vec::new();
        let stores = (order.len() as u64 * self.stores_per_page) as f64;
        let ns = |d: Duration| d.as_nanos() as f64;
        for i in 0..self.rounds {
            let (r, shootdowns) = counting_tlb_shootdowns(|| match self.beside {
                Beside::Nothing => lab.round(&pattern, &order),
                Beside::Running => lab.round_beside_running(&pattern, &order),
                Beside::ChangingProtections => lab.round_shot_at(&pattern, &order),
                Beside::PendingFlush => lab.round_beside_pending_flush(&pattern, &order),
            });
            let r = r?;
            let row = row(Section::Micro, &v.name(), label, 1, heap_mib);
            let mut push = |m: Metric, x: f64| {
                let mut m = row(m, x);
                m.round = i;
                out.push(m);
            };
            push(Metric::StoresNs, ns(r.stores));
            push(Metric::SteadyNs, ns(r.steady));
            push(Metric::ArmNs, ns(r.arm));
            push(Metric::HarvestNs, ns(r.harvest));
            push(Metric::PagesWritten, order.len() as f64);
            push(Metric::Stores, stores);
            push(
                Metric::TotalNsPerStore,
                ns(r.stores + r.arm + r.harvest) / stores,
            );
            push(Metric::DirtyGranules, r.dirty_granules as f64);
            if let Some(n) = &shootdowns {
                push(Metric::TlbShootdowns, n.total() as f64);
                for (m, x) in per_side(n, placement) {
                    push(m, x);
                }
            }
        }
        Ok(out)
    }
}

/// One store pattern of the micro, run by every variant.
#[derive(Clone)]
pub(super) struct MicroPattern {
    /// The rows' workload name (`pages-spp16-f0.1`).
    pub label: String,
    pub stores_per_page: u64,
    pub random: bool,
    /// Share of the region's pages written.
    pub dirty_fraction: f64,
    /// Every thread of the process on one CPU.
    pub pinned: bool,
    /// What another thread of the process does meanwhile.
    pub beside: Beside,
    /// Which variants run it.
    pub run_by: RunBy,
}

/// The variants that run a micro pattern.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RunBy {
    /// Every variant.
    Every,
    /// Only `none` (what it measures does not depend on the barrier).
    NoneOnly,
    /// `none` and the trackers whose first writes the kernel resolves (`uffd-wp-async`):
    /// such a write sends a shootdown only while a protection change is in flight in the
    /// process, so only a pattern with one in flight can price it.
    NoneAndKernelResolved,
}

impl RunBy {
    pub(super) fn includes(self, v: &Variant) -> bool {
        use crate::barrier::{BarrierKind, ServedBy};
        let none = v.kind() == BarrierKind::None;
        match self {
            RunBy::Every => true,
            RunBy::NoneOnly => none,
            RunBy::NoneAndKernelResolved => {
                none || v.kind().mechanism().served_by == ServedBy::Kernel
            }
        }
    }
}

/// The micro's store patterns in the study `c`: the sweep of stores per page, random
/// orders, partial regions, a pinned one, and, where this process may use two CPUs, the
/// patterns with another thread beside the writer.
pub(super) fn patterns(c: &StudyConfig) -> Result<Vec<MicroPattern>> {
    let plain = |label: String, spp: u64| MicroPattern {
        label,
        stores_per_page: spp,
        random: false,
        dirty_fraction: 1.0,
        pinned: false,
        beside: Beside::Nothing,
        run_by: RunBy::Every,
    };
    let spps = c.stores_per_page();
    let mut patterns: Vec<MicroPattern> = spps
        .iter()
        .map(|&spp| plain(format!("pages-spp{spp}"), spp))
        .collect();
    for spp in [1, 64] {
        patterns.push(MicroPattern {
            random: true,
            ..plain(format!("pages-spp{spp}-random"), spp)
        });
    }
    for f in [0.1, 0.01] {
        patterns.push(MicroPattern {
            dirty_fraction: f,
            ..plain(format!("pages-spp16-f{f}"), 16)
        });
    }
    patterns.push(MicroPattern {
        pinned: true,
        ..plain("pages-spp1-pinned".into(), 1)
    });
    // These need a second CPU for the other thread (each side pinned to its own, so
    // that the shootdowns each CPU received say who sent them): the first write
    // beside a running thread (the writer sends shootdowns), `none`'s stores while
    // another thread changes protections (the writer receives them), and the first
    // write while another thread holds a TLB flush pending (a kernel-resolved first
    // write sends one then, and receives none).
    let (lo, hi) = (
        spps.first().copied().unwrap_or(1),
        spps.last().copied().unwrap_or(1),
    );
    if crate::sys::process::allowed_cpus()?.len() > 1 {
        patterns.push(MicroPattern {
            beside: Beside::Running,
            ..plain(format!("pages-spp{lo}-beside"), lo)
        });
        patterns.push(MicroPattern {
            beside: Beside::ChangingProtections,
            run_by: RunBy::NoneOnly,
            ..plain(format!("pages-spp{hi}-shot-at"), hi)
        });
        patterns.push(MicroPattern {
            beside: Beside::PendingFlush,
            run_by: RunBy::NoneAndKernelResolved,
            ..plain(format!("pages-spp{lo}-pending"), lo)
        });
    }
    Ok(patterns)
}

/// The shootdowns each side's CPU received, as [`Metric::TlbShootdownsMutatorCpu`] and
/// [`Metric::TlbShootdownsCollectorCpu`]; nothing without a placement (the sides may
/// have shared or swapped CPUs), or where a CPU has no count.
pub(super) fn per_side(n: &Shootdowns, placement: Option<Placement>) -> Vec<(Metric, f64)> {
    let Some(p) = placement else {
        return Vec::new();
    };
    match (n.on(p.mutators), n.on(p.collector)) {
        (Some(m), Some(c)) => vec![
            (Metric::TlbShootdownsMutatorCpu, m as f64),
            (Metric::TlbShootdownsCollectorCpu, c as f64),
        ],
        _ => Vec::new(),
    }
}

/// The pages a micro round writes: `fraction` of the region's pages (at least one),
/// spread over the region (a seeded random subset), visited in ascending or random order.
pub fn micro_order(region_pages: usize, fraction: f64, random: bool, seed: u64) -> Vec<usize> {
    use rand::SeedableRng;
    use rand::seq::{IndexedRandom as _, SliceRandom as _};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let n = ((region_pages as f64 * fraction).round() as usize).clamp(1, region_pages);
    let all: Vec<usize> = (0..region_pages).collect();
    let mut order: Vec<usize> = if n == region_pages {
        all
    } else {
        all.choose_multiple(&mut rng, n).copied().collect()
    };
    if random {
        order.shuffle(&mut rng);
    } else {
        order.sort_unstable();
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_orders_cover_the_fraction() {
        let o = micro_order(1000, 0.1, false, 1);
        assert_eq!(o.len(), 100);
        assert!(o.windows(2).all(|w| w[0] < w[1]), "ascending, no repeats");
        assert!(*o.last().unwrap() > 500, "spread over the region");
        let r = micro_order(1000, 1.0, true, 1);
        let mut s = r.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert_ne!(r, s, "shuffled");
        assert_eq!(micro_order(10, 0.001, false, 1).len(), 1);
    }
}
