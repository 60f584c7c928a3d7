//! What only one mechanism does: its options and its failure policy, which the
//! conformance table (`tests/barrier/conformance.rs`) cannot state for every mechanism at once.
//! - `mprotect` stays degraded (and writable) until the next arm, after a failure in the
//!   handler or in a harvest's re-protect;
//! - `uffd-wp-sigbus` recovers within the cycle: the next harvest re-protects the whole
//!   heap;
//! - `uffd-wp-async` between cycles, with and without keeping the heap protected, after a
//!   failed scan, and with more runs than one scan returns.
//!
//! Failures are injected through the trackers' test knobs; the second channel is pagemap
//! bit 57 (uffd-wp).

use crate::support;

use barrierlab::BarrierKind;
use barrierlab::barrier::uffd_wp_async::SCAN_VEC_LEN;
use barrierlab::barrier::{BarrierConfig, DirtySet, MechanismOptions, UffdWpAsyncOptions, Variant};
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::pagemap::Pagemap;
use support::{TIMEOUT_SECS, TrackerLab, read_page, with_timeout};

const PAGES: usize = 64;

/// The tracker `barrier` names over `pages` pages (none populated yet), armed; `None`
/// after a skip.
fn armed(barrier: impl Into<BarrierConfig>, pages: usize) -> Option<TrackerLab> {
    let variant = Variant {
        label: None,
        config: barrier.into(),
    };
    let lab = TrackerLab::or_skip(variant, pages, 0, variant.kind().name())?;
    lab.tracker().arm().expect("arm");
    Some(lab)
}

/// The uffd-wp bit (pagemap bit 57) of every page of `lab`.
fn wp_bits(lab: &TrackerLab) -> Vec<bool> {
    let mut pm = Pagemap::open(1).expect("pagemap");
    (0..lab.region().pages())
        .map(|p| pm.entry(lab.base() + p * PAGE_SIZE).unwrap().uffd_wp())
        .collect()
}

fn async_options(keep_protected: bool) -> BarrierConfig {
    BarrierConfig::UffdWpAsync(UffdWpAsyncOptions {
        keep_protected,
        ..UffdWpAsyncOptions::DEFAULT
    })
}

#[test]
fn mprotect_enomem_in_the_handler_degrades_to_everything_dirty_until_the_next_arm() {
    with_timeout(TIMEOUT_SECS, "mprotect_enomem_in_the_handler", || {
        let Some(lab) = armed(BarrierKind::Mprotect, PAGES) else {
            return;
        };
        let (t, base) = (lab.tracker(), lab.base());
        lab.write(1, 11);
        t.test_knobs().unwrap().fail_next(1);
        // This fault's mprotect fails: the handler makes the whole heap writable.
        lab.write(2, 22);
        // No fault any more: the heap is writable.
        for p in 10..20 {
            lab.write(p, p as u64);
        }
        assert_eq!(t.stats().faults, 1);
        assert_eq!(t.stats().degradations, 1);
        let d = lab.harvest(true);
        assert!(d.all);
        // Still degraded, without re-protecting: later writes are not recorded but every
        // harvest says "everything".
        lab.write(30, 30);
        assert!(lab.harvest(true).all);
        assert!(lab.harvest(false).all);
        assert_eq!(t.stats().faults, 1);
        for (p, v) in [(1, 11), (2, 22), (15, 15), (30, 30)] {
            assert_eq!(read_page(base, p), v, "page {p}: a write was lost");
        }
        // The next cycle is precise again, and counted once.
        t.disarm().unwrap();
        t.arm().unwrap();
        lab.write(4, 4);
        let d = lab.harvest(true);
        assert!(!d.all);
        assert_eq!(d.granules, vec![4]);
        assert_eq!(t.stats().degradations, 1);
        let cause = t.stats().last_degradation.expect("a cause");
        assert_eq!(cause.errno, libc::ENOMEM, "{cause}");
        assert_eq!(
            cause.range,
            Some((base + 2 * PAGE_SIZE, PAGE_SIZE)),
            "{cause}"
        );
    });
}

#[test]
fn mprotect_enomem_while_re_protecting_degrades_the_harvest() {
    with_timeout(TIMEOUT_SECS, "mprotect_enomem_while_re_protecting", || {
        // Large enough that the harvest re-protects a span rather than the whole heap
        // (the injected failure hits a span's call, never the whole heap's).
        let Some(lab) = armed(BarrierKind::Mprotect, 1024) else {
            return;
        };
        let (t, base) = (lab.tracker(), lab.base());
        for p in [3, 7, 8] {
            lab.write(p, 1);
        }
        t.test_knobs().unwrap().fail_next(1);
        let d = lab.harvest(true);
        assert!(d.all, "a failed re-protect must report everything");
        assert_eq!(t.stats().degradations, 1);
        // The heap is writable: no fault, no lost write.
        lab.write(7, 77);
        assert_eq!(read_page(base, 7), 77);
        assert_eq!(t.stats().faults, 3);
        assert!(lab.harvest(false).all);
    });
}

#[test]
fn sigbus_a_failed_unprotect_degrades_the_cycle_and_a_rearm_recovers() {
    with_timeout(TIMEOUT_SECS, "sigbus_a_failed_unprotect", || {
        let Some(lab) = armed(BarrierKind::UffdWpSigbus, PAGES) else {
            return;
        };
        let (t, base) = (lab.tracker(), lab.base());
        lab.write(1, 11);
        t.test_knobs().unwrap().fail_next(1);
        lab.write(2, 22);
        assert!(wp_bits(&lab).iter().all(|&b| !b), "whole heap writable");
        lab.write(30, 30);
        assert_eq!(t.stats().degradations, 1);
        assert_eq!(t.stats().faults, 1);
        let d = lab.harvest(true);
        assert!(d.all);
        // Re-protected as a whole: precise again.
        lab.write(5, 5);
        assert_eq!(
            lab.harvest(true),
            DirtySet {
                granules: vec![5],
                all: false
            }
        );
        for (p, v) in [(1, 11), (2, 22), (30, 30), (5, 5)] {
            assert_eq!(read_page(base, p), v, "page {p}: a write was lost");
        }
    });
}

#[test]
fn async_every_harvest_re_protects_also_without_rearm() {
    with_timeout(TIMEOUT_SECS, "async_every_harvest_re_protects", || {
        let Some(lab) = armed(async_options(true), PAGES) else {
            return;
        };
        lab.write(21, 1);
        lab.write(63, 1);
        assert_eq!(lab.harvest(false).granules, vec![21, 63]);
        assert!(wp_bits(&lab).iter().all(|&b| b));
        assert_eq!(
            lab.tracker().stats().faults,
            0,
            "the kernel resolves them unseen"
        );
        assert_eq!(lab.tracker().stats().recorded, 2);
    });
}

#[test]
fn async_kept_protected_between_cycles_the_next_arm_forgets_what_was_written() {
    with_timeout(TIMEOUT_SECS, "async_kept_protected", || {
        let Some(lab) = armed(async_options(true), PAGES) else {
            return;
        };
        let (t, base) = (lab.tracker(), lab.base());
        lab.write(4, 4);
        assert_eq!(lab.harvest(false).granules, vec![4]);
        t.disarm().unwrap();
        assert!(wp_bits(&lab).iter().all(|&b| b), "still protected");
        // Between cycles: resolved by the kernel, not recorded anywhere.
        lab.write(7, 7);
        lab.write(8, 8);
        assert!(!wp_bits(&lab)[7]);
        let recorded = t.stats().recorded;
        t.arm().unwrap();
        assert!(wp_bits(&lab).iter().all(|&b| b), "arm re-protected 7, 8");
        assert_eq!(lab.harvest(true), DirtySet::default());
        assert_eq!(t.stats().recorded, recorded);
        assert_eq!((read_page(base, 7), read_page(base, 8)), (7, 8));
    });
}

#[test]
fn async_without_keep_protected_disarm_unprotects_and_arm_protects_everything() {
    with_timeout(TIMEOUT_SECS, "async_without_keep_protected", || {
        let Some(lab) = armed(async_options(false), PAGES) else {
            return;
        };
        let t = lab.tracker();
        assert!(wp_bits(&lab).iter().all(|&b| b));
        lab.write(4, 4);
        assert_eq!(lab.harvest(false).granules, vec![4]);
        t.disarm().unwrap();
        assert!(wp_bits(&lab).iter().all(|&b| !b), "disarmed");
        let recorded = t.stats().recorded;
        for p in 0..PAGES {
            lab.write(p, 9);
        }
        t.arm().unwrap();
        assert!(wp_bits(&lab).iter().all(|&b| b), "armed again");
        assert_eq!(lab.harvest(true), DirtySet::default());
        assert_eq!(t.stats().recorded, recorded);
    });
}

#[test]
fn async_a_failed_scan_degrades_the_harvest_and_re_protects_everything() {
    with_timeout(TIMEOUT_SECS, "async_a_failed_scan", || {
        let Some(lab) = armed(async_options(true), PAGES) else {
            return;
        };
        let t = lab.tracker();
        lab.write(2, 2);
        t.test_knobs().unwrap().fail_next(1);
        let d = lab.harvest(true);
        assert!(d.all);
        assert_eq!(t.stats().degradations, 1);
        assert!(wp_bits(&lab).iter().all(|&b| b));
        lab.write(3, 3);
        assert_eq!(lab.harvest(true).granules, vec![3]);
        let cause = t.stats().last_degradation.expect("a cause");
        assert_eq!(cause.errno, libc::EIO, "{cause}");
        assert!(cause.to_string().contains("PAGEMAP_SCAN"), "{cause}");
    });
}

#[test]
fn async_many_runs_fill_the_scan_vector_and_all_are_reported() {
    // More runs than one PAGEMAP_SCAN call can return (every other page of 4096).
    with_timeout(TIMEOUT_SECS, "async_many_runs", || {
        let pages = 4 * SCAN_VEC_LEN;
        let Some(lab) = armed(async_options(true), pages) else {
            return;
        };
        let written: Vec<usize> = (0..pages).step_by(2).collect();
        for &p in &written {
            lab.write(p, 1);
        }
        assert_eq!(lab.harvest(true).granules, written);
        assert_eq!(lab.harvest(true), DirtySet::default());
    });
}
