//! What each page tracker does with a transparent huge page, measured rather than
//! assumed: over a region advised `MADV_HUGEPAGE` and populated (so that 2 MiB pages back
//! it), arm, write a few 4 KiB pages (two of them in the same huge page as each other),
//! harvest, and check that every written page is reported. The synchronous trackers
//! (`uffd-wp`, `uffd-wp-sigbus`, `mprotect`) must report exactly the written pages: their
//! write-protect fault and unprotect work per 4 KiB page, so a huge page written while
//! armed is split (a whole-2-MiB unprotect would let the neighbour's write go unseen).
//! The test prints how much of the region huge pages backed before the arm, after it, and
//! after the writes, and how many pages each harvest reported, for the report.

use crate::support;

use barrierlab::barrier::{self, BarrierKind, DirtySet};
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::{Advice, Region};
use barrierlab::sys::smaps::anon_huge_bytes;

use support::{skip_or_fail, with_timeout, write_page};

const HUGE: usize = 2 << 20;
/// Four huge pages.
const PAGES: usize = 4 * HUGE / PAGE_SIZE;
/// Written while armed: pages 600 and 601 share a huge page, as do 1 and 2.
const WRITTEN: [usize; 6] = [1, 2, 600, 601, 1023, 1500];

/// A populated region of [`PAGES`] pages advised `MADV_HUGEPAGE`, and the bytes huge
/// pages back in it; `None` (after a skip) if the kernel gave it none.
fn huge_region(test: &str) -> Option<(Region, u64)> {
    let region = Region::with_alignment(PAGES * PAGE_SIZE, HUGE).expect("map");
    region
        .advise(region.base(), region.len(), Advice::HugePage)
        .expect("madvise");
    for p in 0..PAGES {
        write_page(region.base(), p, 1);
    }
    let huge = anon_huge_bytes(region.base(), region.base() + region.len()).expect("smaps");
    if huge == 0 {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_else(|e| format!("unreadable: {e}"));
        skip_or_fail(
            test,
            &format!("no transparent huge page backs an madvised region (enabled: {thp})"),
        );
        return None;
    }
    Some((region, huge))
}

#[test]
fn every_page_tracker_reports_the_4k_pages_written_in_a_huge_page() {
    with_timeout(120, "huge pages", || {
        for kind in BarrierKind::ALL.into_iter().filter(|k| k.is_page_level()) {
            let test = format!("huge pages [{kind}]");
            let Some((region, before)) = huge_region(&test) else {
                return;
            };
            let (lo, hi) = (region.base(), region.base() + region.len());
            let tracker = match barrier::build(&kind.into(), lo, region.len()) {
                Ok(t) => t.expect("a page tracker"),
                Err(e) if support::is_missing_feature(&e) => {
                    skip_or_fail(&test, &e.to_string());
                    continue;
                }
                Err(e) => panic!("{test}: {e}"),
            };
            tracker.arm().expect("arm");
            let armed = anon_huge_bytes(lo, hi).expect("smaps");
            for &p in &WRITTEN {
                write_page(lo, p, 2);
            }
            let written = anon_huge_bytes(lo, hi).expect("smaps");
            let mut set = DirtySet::default();
            tracker.harvest(&mut set, false).expect("harvest");
            tracker.disarm().expect("disarm");
            let shift = tracker.granule_shift();
            let pages: Vec<usize> = set
                .granules
                .iter()
                .map(|&g| (g << shift) / PAGE_SIZE)
                .collect();
            eprintln!(
                "{kind}: huge MiB before arm {}, after arm {}, after writes {}; harvest \
                 reported {} pages{} for {} written",
                before >> 20,
                armed >> 20,
                written >> 20,
                if set.all { PAGES } else { pages.len() },
                if set.all { " (everything)" } else { "" },
                WRITTEN.len()
            );
            // Never a written page missed.
            for &p in &WRITTEN {
                assert!(
                    set.all || pages.contains(&p),
                    "{test}: page {p} was written in a huge page but not reported: {pages:?}"
                );
            }
            // The synchronous trackers lose no precision on a huge page.
            if kind != BarrierKind::UffdWpAsync {
                assert!(!set.all, "{test}: reported everything");
                assert_eq!(pages, WRITTEN.to_vec(), "{test}: exactly the written pages");
            }
            drop(tracker);
        }
    });
}
