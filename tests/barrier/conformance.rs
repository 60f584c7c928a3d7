//! Conformance: the tracker contract as a table, one row per property, each row run over
//! every variant of every mechanism (`Variant::list`, so a new mechanism joins every row
//! by being listed). The properties:
//! - the write patterns (sequential, strided, random, 4 threads) are recorded exactly,
//!   compared with a software log of the writes;
//! - a harvest is exact, the next one is empty, a page written again is found again, and
//!   the counters agree (`faults` for the mechanisms that serve faults, `recorded`);
//! - disarm stops recording, and a new arm forgets the previous cycle;
//! - the kernel's view agrees with the record (the second channel: pagemap bit 57 for the
//!   userfaultfd trackers, `/proc/self/maps` protections for `mprotect`);
//! - no write slips past concurrent harvests, with races widened;
//! - a failed protection change degrades the cycle to "everything dirty", counted once
//!   with its cause, and loses no write; the next cycle is precise;
//! - a userfaultfd tracker reports its mode;
//! - the frontier rule: a range handed to the allocator while armed is in the dirty set
//!   and writable before any write to it (no fault, and the kernel agrees), a hand-out
//!   while disarmed records nothing, and the planted bug (`forget_hand_outs`) loses the
//!   write wherever a record other than the protection itself exists.
//!
//! Mechanism-specific behaviour (options, failure policies) is in `tests/barrier/trackers.rs`,
//! the edges in `tests/barrier/edges.rs`.

use crate::support;

use std::collections::BTreeSet;

use barrierlab::BarrierKind;
use barrierlab::barrier::{
    BarrierConfig, Breadth, DirtySet, SecondChannel, ServedBy, StoreBarrier, UffdWpAsyncOptions,
    Variant,
};
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::pagemap::Pagemap;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use support::{
    Bound, TIMEOUT_SECS, TrackerLab, race_writers_and_harvests, read_page, with_timeout,
};

/// Every variant of every mechanism that has a tracker.
fn variants() -> Vec<Variant> {
    let kinds: Vec<BarrierKind> = BarrierKind::ALL
        .into_iter()
        .filter(|k| *k != BarrierKind::None)
        .collect();
    Variant::list(&kinds, Breadth::Every)
}

/// Runs `row` over every variant, each under a timeout.
pub(crate) fn for_every_variant(test: &'static str, row: fn(Variant)) {
    for v in variants() {
        with_timeout(2 * TIMEOUT_SECS, test, move || row(v));
    }
}

/// Whether the variant keeps its pages protected between cycles (disarm does nothing).
pub(crate) fn keeps_protection(v: Variant) -> bool {
    matches!(
        v.config,
        BarrierConfig::UffdWpAsync(UffdWpAsyncOptions {
            keep_protected: true,
            ..
        })
    )
}

/// Whether a harvest between cycles still finds what was written after the disarm: the
/// card table's store path always marks, and pages kept protected read as written. In
/// both, the next arm forgets it.
fn records_between_cycles(v: Variant) -> bool {
    v.kind().mechanism().served_by == ServedBy::StorePath || keeps_protection(v)
}

/// How many faults the mechanism's own code serves for `n` first writes.
pub(crate) fn faults_served(v: Variant, n: u64) -> u64 {
    match v.kind().mechanism().served_by {
        ServedBy::Service | ServedBy::Handler => n,
        ServedBy::Kernel | ServedBy::StorePath | ServedBy::Nobody => 0,
    }
}

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
    for_every_variant("every_tracker_records_exactly_what_was_written", |v| {
        let Some(lab) = TrackerLab::or_skip(v, PAGES, PAGES, "conformance") else {
            return;
        };
        let (base, tracker) = (lab.base(), lab.tracker());
        let shift = tracker.granule_shift();
        let path = tracker.store_barrier();
        for (name, threads, offsets) in patterns() {
            let kind = v.name();
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

/// The pages the next rows write (with a repeat), then the pages two threads write.
const ONE_THREAD: [usize; 6] = [9, 3, 3, 40, 63, 0];
const TWO_THREADS: [usize; 5] = [20, 21, 22, 50, 51];
const WRITTEN: [usize; 10] = [0, 3, 9, 20, 21, 22, 40, 50, 51, 63];

/// Writes [`ONE_THREAD`] (each page its number) and [`TWO_THREADS`] (7).
fn write_the_pages(lab: &TrackerLab) {
    for p in ONE_THREAD {
        lab.write(p, p as u64);
    }
    lab.write_from_two_threads(&TWO_THREADS, 7);
}

/// `v`'s tracker over 64 pages (the first `populated` of them written before), armed,
/// with [`write_the_pages`] done; `None` after a skip.
fn armed_and_written(v: Variant, populated: usize, test: &str) -> Option<TrackerLab> {
    let lab = TrackerLab::or_skip(v, 64, populated, test)?;
    lab.tracker().arm().expect("arm");
    write_the_pages(&lab);
    Some(lab)
}

#[test]
fn a_harvest_is_exact_the_next_is_empty_and_a_rewrite_is_found_again() {
    for_every_variant("a_harvest_is_exact", |v| {
        // Half the region populated before arming, half never touched.
        let Some(lab) = armed_and_written(v, 32, "a_harvest_is_exact") else {
            return;
        };
        let name = v.name();
        let d = lab.harvest(true);
        assert!(!d.all, "{name}");
        assert_eq!(d.granules, lab.granules(&WRITTEN), "{name}");
        let stats = lab.tracker().stats();
        assert_eq!(stats.faults, faults_served(v, 10), "{name}: faults served");
        assert_eq!(stats.recorded, 10, "{name}: granules recorded");
        assert_eq!(lab.harvest(true), DirtySet::default(), "{name}: re-harvest");
        // Re-armed: the same pages are recorded again.
        lab.write(21, 1);
        lab.write(63, 1);
        assert_eq!(
            lab.harvest(false).granules,
            lab.granules(&[21, 63]),
            "{name}"
        );
        for (p, value) in [(0, 0), (3, 3), (9, 9), (20, 7), (21, 1), (50, 7), (63, 1)] {
            assert_eq!(read_page(lab.base(), p), value, "{name}: page {p}");
        }
        assert_eq!(lab.tracker().stats().degradations, 0, "{name}");
        lab.tracker().disarm().expect("disarm");
    });
}

#[test]
fn writes_to_pages_that_come_into_use_during_a_cycle_are_reported() {
    for_every_variant("pages_that_come_into_use", |v| {
        let Some(lab) = TrackerLab::or_skip(v, 64, 0, "pages_that_come_into_use") else {
            return;
        };
        let name = v.name();
        let t = lab.tracker();
        // The heap has used 16 pages when the cycle starts, 48 when it is harvested: a
        // tracker may protect only the first 16, but must report the write to page 40.
        t.in_use(16 * PAGE_SIZE);
        t.arm().expect("arm");
        lab.write(3, 1);
        lab.write(40, 1);
        t.in_use(48 * PAGE_SIZE);
        let d = lab.harvest(true);
        assert!(!d.all, "{name}");
        for p in [3, 40] {
            assert!(
                d.granules.contains(&lab.granule(p)),
                "{name}: the write to page {p} was not reported: {:?}",
                d.granules
            );
        }
        let beyond = lab.granule(48);
        assert!(
            d.granules.iter().all(|&g| g < beyond),
            "{name}: a page beyond the used prefix was reported: {:?}",
            d.granules
        );
        // Page 40 is tracked now: written again, it is found again, exactly.
        lab.write(40, 2);
        assert_eq!(lab.harvest(true).granules, lab.granules(&[40]), "{name}");
        assert_eq!(read_page(lab.base(), 40), 2, "{name}");
        t.disarm().expect("disarm");
        assert_eq!(t.stats().degradations, 0, "{name}");
    });
}

#[test]
fn disarm_stops_recording_and_a_new_arm_forgets_what_was_written() {
    for_every_variant("disarm_stops_recording", |v| {
        let Some(lab) = armed_and_written(v, 0, "disarm_stops_recording") else {
            return;
        };
        let name = v.name();
        let t = lab.tracker();
        lab.harvest(true);
        t.disarm().expect("disarm");
        let faults = t.stats().faults;
        for p in 0..64 {
            lab.write(p, 2);
        }
        assert_eq!(t.stats().faults, faults, "{name}: a fault after disarm");
        if !records_between_cycles(v) {
            assert_eq!(lab.harvest(false), DirtySet::default(), "{name}");
        }
        // The next cycle starts afresh, whatever was written between cycles.
        t.arm().expect("arm");
        assert_eq!(lab.harvest(true), DirtySet::default(), "{name}: next arm");
        lab.write(6, 1);
        assert_eq!(lab.harvest(true).granules, lab.granules(&[6]), "{name}");
        t.disarm().expect("disarm");
        assert_eq!(t.stats().degradations, 0, "{name}");
    });
}

#[test]
fn a_new_arm_forgets_the_previous_cycle() {
    for_every_variant("a_new_arm_forgets_the_previous_cycle", |v| {
        let Some(lab) = TrackerLab::or_skip(v, 64, 0, "a_new_arm_forgets") else {
            return;
        };
        let t = lab.tracker();
        t.arm().expect("arm");
        lab.write(5, 1);
        t.disarm().expect("disarm");
        t.arm().expect("arm");
        lab.write(6, 1);
        assert_eq!(
            lab.harvest(true).granules,
            lab.granules(&[6]),
            "{}",
            v.name()
        );
        t.disarm().expect("disarm");
    });
}

/// Whether each of the region's pages is protected, as the kernel says through the
/// mechanism's second channel; `None` for a mechanism without one.
pub(crate) fn protected(lab: &TrackerLab, pages: usize) -> Option<Vec<bool>> {
    match lab.kind().mechanism().second_channel {
        SecondChannel::None => None,
        SecondChannel::PagemapWpBit => {
            let mut pm = Pagemap::open(1).expect("pagemap");
            Some(
                (0..pages)
                    .map(|p| pm.entry(lab.base() + p * PAGE_SIZE).unwrap().uffd_wp())
                    .collect(),
            )
        }
        SecondChannel::ProcMaps => {
            let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
            let perms_at = |addr: usize| -> String {
                maps.lines()
                    .find_map(|l| {
                        let (range, rest) = l.split_once(' ')?;
                        let (s, e) = range.split_once('-')?;
                        let (s, e) = (
                            usize::from_str_radix(s, 16).ok()?,
                            usize::from_str_radix(e, 16).ok()?,
                        );
                        (s <= addr && addr < e).then(|| rest[..4].to_string())
                    })
                    .expect("the region is mapped")
            };
            Some(
                (0..pages)
                    .map(|p| match perms_at(lab.base() + p * PAGE_SIZE).as_str() {
                        "r--p" => true,
                        "rw-p" => false,
                        other => panic!("page {p}: unexpected protection {other}"),
                    })
                    .collect(),
            )
        }
    }
}

#[test]
fn the_kernel_sees_the_protection_the_record_implies() {
    for_every_variant("the_kernel_sees_the_protection", |v| {
        let Some(lab) = TrackerLab::or_skip(v, 64, 32, "the_kernel_sees_the_protection") else {
            return;
        };
        if protected(&lab, 64).is_none() {
            return; // The card table protects nothing: its cards are its only record.
        }
        let name = v.name();
        let bits = || protected(&lab, 64).expect("a second channel");
        lab.tracker().arm().expect("arm");
        assert!(
            bits().iter().all(|&b| b),
            "{name}: armed, every page protected"
        );
        write_the_pages(&lab);
        for (p, bit) in bits().into_iter().enumerate() {
            assert_eq!(bit, !WRITTEN.contains(&p), "{name}: page {p}");
        }
        lab.harvest(true);
        assert!(bits().iter().all(|&b| b), "{name}: re-armed");
        lab.write(10, 1);
        assert_eq!(
            bits()[9..12],
            [true, false, true],
            "{name}: one page unprotected"
        );
        lab.harvest(true);
        lab.tracker().disarm().expect("disarm");
        let expected = keeps_protection(v);
        assert!(
            bits().iter().all(|&b| b == expected),
            "{name}: after disarm every page is {}",
            if expected {
                "still protected"
            } else {
                "writable"
            }
        );
    });
}

#[test]
fn no_write_slips_past_concurrent_harvests() {
    for_every_variant("no_write_slips_past_concurrent_harvests", |v| {
        // The kernel reads and re-protects each page atomically; every other order lets a
        // write be recorded one harvest late.
        let bound = match v.kind().mechanism().served_by {
            ServedBy::Kernel => Bound::Next,
            _ => Bound::Eventually,
        };
        race_writers_and_harvests(v, bound, "no_write_slips_past_concurrent_harvests");
    });
}

#[test]
fn a_failed_protection_change_degrades_the_cycle_with_its_cause() {
    for_every_variant("a_failed_protection_change_degrades", |v| {
        let Some(lab) = TrackerLab::or_skip(v, 64, 64, "a_failed_protection_change") else {
            return;
        };
        let name = v.name();
        let t = lab.tracker();
        let Some(knobs) = t.test_knobs() else {
            return; // The card table changes no protection: nothing can fail.
        };
        t.arm().expect("arm");
        lab.write(1, 11);
        // The next change fails: the fault of page 2 (or, for the kernel-resolved
        // tracker, the harvest's scan).
        knobs.fail_next(1);
        lab.write(2, 22);
        lab.write(30, 30);
        let d = lab.harvest(true);
        assert!(d.all, "{name}: a failed change must report everything");
        let s = t.stats();
        assert_eq!(s.degradations, 1, "{name}");
        let cause = s.last_degradation.expect("a cause");
        assert!(
            [libc::EIO, libc::ENOMEM].contains(&cause.errno),
            "{name}: the injected errno, got {cause}"
        );
        assert!(cause.range.is_some(), "{name}: {cause}");
        for (p, value) in [(1, 11), (2, 22), (30, 30)] {
            assert_eq!(
                read_page(lab.base(), p),
                value,
                "{name}: page {p}: a write was lost"
            );
        }
        // The next cycle is precise again, and the degraded one counted once.
        t.disarm().expect("disarm");
        t.arm().expect("arm");
        lab.write(4, 4);
        assert_eq!(
            lab.harvest(true),
            DirtySet {
                granules: lab.granules(&[4]),
                all: false
            },
            "{name}"
        );
        assert_eq!(t.stats().degradations, 1, "{name}");
        t.disarm().expect("disarm");
    });
}

#[test]
fn a_userfaultfd_tracker_reports_its_mode() {
    for v in variants() {
        let uses_uffd = v.kind().mechanism().second_channel == SecondChannel::PagemapWpBit;
        for user_mode_only in [false, true] {
            let v = Variant {
                config: v.config.with_user_mode_only(user_mode_only),
                ..v
            };
            let Some(lab) = TrackerLab::or_skip(v, 8, 0, "a_userfaultfd_tracker_reports_its_mode")
            else {
                continue;
            };
            let mode = lab.tracker().stats().uffd;
            assert_eq!(mode.is_some(), uses_uffd, "{}: {mode:?}", v.name());
            if let Some(m) = mode {
                // Asked for user-mode-only: got it, and not as a fallback.
                if user_mode_only {
                    assert!(m.user_mode_only && !m.fell_back, "{}: {m}", v.name());
                }
                // A fallback is always a user-mode-only descriptor.
                assert!(!m.fell_back || m.user_mode_only, "{}: {m}", v.name());
            }
        }
    }
}

#[test]
fn a_page_handed_out_while_armed_is_dirty_and_writable_before_its_first_write() {
    for_every_variant("the_frontier_rule", |v| {
        let Some(lab) = TrackerLab::or_skip(v, 64, 32, "the_frontier_rule") else {
            return;
        };
        let (name, t) = (v.name(), lab.tracker());
        // Async write-protect hands nothing out either: the kernel records the first
        // write to a protected page itself, more cheaply than an unprotect would.
        let unprotects =
            v.kind().is_page_level() && v.kind().mechanism().served_by != ServedBy::Kernel;
        // Pages 8..12 populated, 40..44 not: both kinds of page are handed out.
        let handed: Vec<usize> = (8..12).chain(40..44).collect();
        t.arm().expect("arm");
        let before = t.stats();
        let bits_before = protected(&lab, 64);
        for run in [8, 40] {
            t.hand_out(lab.base() + run * PAGE_SIZE, 4 * PAGE_SIZE);
        }
        let after = t.stats();
        if unprotects {
            assert_eq!(after.handed_out - before.handed_out, 8, "{name}");
            assert_eq!(after.hand_out_calls - before.hand_out_calls, 2, "{name}");
        } else {
            assert_eq!(after.handed_out, 0, "{name}: hands out nothing");
            assert_eq!(after.hand_out_calls, 0, "{name}: no call");
        }
        if let Some(bits) = protected(&lab, 64) {
            for (p, bit) in bits.iter().enumerate() {
                let expected = if unprotects {
                    !handed.contains(&p)
                } else {
                    bits_before.as_ref().expect("read before")[p]
                };
                assert_eq!(*bit, expected, "{name}: page {p} after the hand-out");
            }
        }
        // Handed out again before a harvest: nothing to do, no call.
        t.hand_out(lab.base() + 8 * PAGE_SIZE, PAGE_SIZE);
        assert_eq!(
            t.stats().hand_out_calls,
            after.hand_out_calls,
            "{name}: a second call"
        );
        for &p in &handed {
            lab.write(p, 9);
        }
        assert_eq!(
            t.stats().faults,
            before.faults,
            "{name}: a handed-out page faulted"
        );
        let d = lab.harvest(true);
        assert!(!d.all, "{name}");
        // Page trackers: the pages handed out; the card table: each written word's card.
        assert_eq!(
            d.granules,
            lab.granules(&handed),
            "{name}: the handed-out pages are the dirty set"
        );
        // The harvest protected them again: a write faults (where faults are served) and
        // is recorded, as for any page.
        lab.write(9, 10);
        assert_eq!(lab.harvest(true).granules, lab.granules(&[9]), "{name}");
        t.disarm().expect("disarm");
        // Disarmed: the heap is writable (or, kept protected between cycles, records
        // its first writes in the kernel): a hand-out has nothing to do.
        let calls = t.stats().hand_out_calls;
        t.hand_out(lab.base() + 20 * PAGE_SIZE, 2 * PAGE_SIZE);
        assert_eq!(
            t.stats().hand_out_calls,
            calls,
            "{name}: calls while disarmed"
        );
        if !records_between_cycles(v) {
            assert_eq!(lab.harvest(false), DirtySet::default(), "{name}");
        }
        assert_eq!(t.stats().degradations, 0, "{name}");
    });
}

#[test]
fn the_planted_frontier_bug_loses_the_write_to_a_handed_out_page() {
    for_every_variant("the_planted_frontier_bug", |v| {
        let Some(lab) = TrackerLab::or_skip(v, 64, 32, "the_planted_frontier_bug") else {
            return;
        };
        let (name, t) = (v.name(), lab.tracker());
        let Some(knobs) = t.test_knobs() else {
            return; // The card table hands nothing out: there is no bug to plant.
        };
        knobs.forget_hand_outs(true);
        t.arm().expect("arm");
        t.hand_out(lab.base() + 20 * PAGE_SIZE, PAGE_SIZE);
        lab.write(20, 5);
        let d = lab.harvest(true);
        if v.kind().mechanism().served_by == ServedBy::Kernel {
            // Its record is the protection itself, and it hands nothing out: the write to
            // the still-protected page is recorded by the kernel, planted bug or not.
            assert_eq!(d.granules, lab.granules(&[20]), "{name}");
        } else {
            assert!(
                !d.all && d.granules.is_empty(),
                "{name}: the planted bug should lose the write, but the harvest has {d:?}"
            );
        }
        knobs.forget_hand_outs(false);
        t.disarm().expect("disarm");
    });
}
