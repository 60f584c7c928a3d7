//! Conformance: one table of write patterns run over every tracker. Each harvested dirty
//! set is compared with a software log of the writes: it must cover every written granule,
//! and (none of these trackers may over-approximate on a quiet region) contain nothing else.

mod common;

use std::collections::BTreeSet;

use barrierlab::barrier::{self, BarrierKind, DirtySet, StoreBarrier, TrackerOptions};
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::Region;
use common::with_timeout;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const PAGES: usize = 256;

/// The patterns: (name, threads, byte offsets written).
fn patterns() -> Vec<(&'static str, usize, Vec<usize>)> {
    let mut rng = SmallRng::seed_from_u64(99);
    let words = PAGES * PAGE_SIZE / 8;
    vec![
        (
            "sequential",
            1,
            (0..PAGES * PAGE_SIZE / 64)
                .map(|i| i * 64)
                .take(3000)
                .collect(),
        ),
        (
            "strided-3-pages",
            1,
            (0..PAGES)
                .step_by(3)
                .map(|p| p * PAGE_SIZE + 1024)
                .collect(),
        ),
        (
            "random",
            1,
            (0..500).map(|_| rng.random_range(0..words) * 8).collect(),
        ),
        (
            "random-4-threads",
            4,
            (0..800).map(|_| rng.random_range(0..words) * 8).collect(),
        ),
    ]
}

#[test]
fn every_tracker_records_exactly_what_was_written() {
    for kind in BarrierKind::ALL
        .into_iter()
        .filter(|k| *k != BarrierKind::None)
    {
        with_timeout(60, "conformance", move || {
            let region = Region::new(PAGES * PAGE_SIZE).expect("region");
            let base = region.base();
            for p in 0..PAGES {
                // SAFETY: populating the fresh region.
                unsafe { ((base + p * PAGE_SIZE) as *mut u8).write_volatile(1) };
            }
            let tracker = match barrier::build(kind, base, region.len(), &TrackerOptions::default())
            {
                Ok(t) => t.expect("a tracker"),
                Err(e) => {
                    common::skip_or_fail("conformance", &format!("{kind}: {e}"));
                    return;
                }
            };
            let shift = tracker.granule_shift();
            let path = tracker.store_barrier();
            for (name, threads, offsets) in patterns() {
                tracker.arm().expect("arm");
                std::thread::scope(|s| {
                    for chunk in offsets.chunks(offsets.len().div_ceil(threads)) {
                        s.spawn(move || {
                            for &off in chunk {
                                // SAFETY: an aligned word inside the region.
                                unsafe { ((base + off) as *mut u64).write_volatile(off as u64) };
                                // SAFETY: the address is in the region the tracker covers.
                                unsafe { path.on_store(base + off) };
                            }
                        });
                    }
                });
                let mut set = DirtySet::default();
                tracker.harvest(&mut set, false).expect("harvest");
                tracker.disarm().expect("disarm");
                let written: BTreeSet<usize> = offsets.iter().map(|o| o >> shift).collect();
                assert!(!set.all, "{kind} {name}: degraded");
                let got: BTreeSet<usize> = set.granules.iter().copied().collect();
                let missed: Vec<_> = written.difference(&got).take(5).collect();
                assert!(
                    missed.is_empty(),
                    "{kind} {name}: written granules not recorded: {missed:?}"
                );
                let extra: Vec<_> = got.difference(&written).take(5).collect();
                assert!(
                    extra.is_empty(),
                    "{kind} {name}: recorded granules never written: {extra:?}"
                );
                // The writes landed.
                for &off in offsets.iter().take(50) {
                    // SAFETY: inside the region.
                    let v = unsafe { ((base + off) as *const u64).read_volatile() };
                    assert_eq!(v, off as u64, "{kind} {name}: write at {off:#x} lost");
                }
            }
        });
    }
}
