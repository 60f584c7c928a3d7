//! Conformance, continued: arm told which runs of pages were allocated into since the
//! last arm (`DirtyTracker::arm_with_young`), and harvests told which pages hold a marked
//! object (`DirtyTracker::harvest_marked`), over every variant. A page tracker whose
//! faults its own code serves keeps the long young runs writable: the kernel agrees, and a write there takes no fault. A harvest leaves out a
//! kept page that holds no marked object, written or not, and takes a kept page that
//! holds one, written or not, and protects it: the next write to it faults and is
//! recorded. Remark's harvest (no re-arm) takes what was written as always, and disarm
//! leaves every page writable. Every other tracker arms and harvests as it always does.

use barrierlab::barrier::{DirtySet, DirtyTracker, ServedBy, Variant};
use barrierlab::sys::PAGE_SIZE;

use crate::conformance::{faults_served, for_every_variant, keeps_protection, protected};
use crate::support::TrackerLab;

const PAGES: usize = 1024;
/// The young runs, `(first page, pages)`: one long enough to keep (256 pages or more),
/// one too short.
const YOUNG: [(usize, usize); 2] = [(256, 512), (900, 10)];
/// A page of the kept run (its first: releasing it leaves the rest one long run, which
/// `uffd-wp-async` needs to go on keeping it), and one the arm protects.
const KEPT: usize = 256;
const OLD: usize = 100;

/// Whether `v` keeps young pages writable at arm: a page tracker whose record is its own
/// (not the kernel's page table).
fn keeps_young(v: Variant) -> bool {
    v.kind().is_page_level() && v.kind().mechanism().served_by != ServedBy::Kernel
}

/// A harvest of `t` told that page `marked` (if any) alone holds a marked object.
fn harvest(
    lab: &TrackerLab,
    t: &dyn DirtyTracker,
    rearm: bool,
    marked: Option<usize>,
) -> Vec<usize> {
    let marked_addr = marked.map(|p| lab.base() + p * PAGE_SIZE);
    let mut out = DirtySet::default();
    t.harvest_marked(&mut out, rearm, &|addr| Some(addr) == marked_addr)
        .expect("harvest");
    assert!(!out.all, "{}: everything dirty", lab.variant.name());
    out.granules
        .iter()
        .map(|&g| (g << t.granule_shift()) / PAGE_SIZE)
        .collect()
}

#[test]
fn arm_keeps_young_runs_writable_and_a_harvest_takes_a_kept_page_once_it_holds_a_mark() {
    for_every_variant("kept_pages", |v| {
        let Some(lab) = TrackerLab::or_skip(v, PAGES, PAGES, "kept_pages") else {
            return;
        };
        let (name, t) = (v.name(), lab.tracker());
        let keeps = keeps_young(v);
        let young: Vec<_> = (YOUNG.iter())
            .map(|&(first, n)| lab.base() + first * PAGE_SIZE..lab.base() + (first + n) * PAGE_SIZE)
            .collect();
        let before = t.stats();
        t.arm_with_young(&|_| {}, &young).expect("arm");
        let kept = t.stats().kept_at_arm - before.kept_at_arm;
        assert_eq!(
            kept,
            if keeps { 512 } else { 0 },
            "{name}: pages kept at arm"
        );
        if let Some(bits) = protected(&lab, PAGES) {
            for (p, bit) in bits.into_iter().enumerate() {
                let expected = !(keeps && (256..768).contains(&p));
                assert_eq!(bit, expected, "{name}: page {p} protected after arm");
            }
        }
        // A write to a kept page takes no fault; one to an old page does where faults
        // are served.
        let faults = t.stats().faults;
        lab.write(KEPT, 1);
        assert_eq!(t.stats().faults, faults, "{name}: a fault on a kept page");
        lab.write(OLD, 2);
        assert_eq!(
            t.stats().faults - faults,
            faults_served(v, 1),
            "{name}: old page"
        );
        // No mark on the kept page: the harvest leaves it out and writable.
        let first = harvest(&lab, t, true, None);
        let expected = if keeps { vec![OLD] } else { vec![OLD, KEPT] };
        assert_eq!(first, expected, "{name}: first harvest");
        if keeps {
            let faults = t.stats().faults;
            lab.write(KEPT, 3);
            assert_eq!(
                t.stats().faults,
                faults,
                "{name}: a kept page was protected"
            );
        }
        // A mark on it: the next harvest takes it, written since or not, and protects it.
        let second = harvest(&lab, t, true, Some(KEPT));
        let expected = if keeps { vec![KEPT] } else { vec![] };
        assert_eq!(second, expected, "{name}: second harvest");
        if let Some(bits) = protected(&lab, PAGES) {
            assert!(bits[KEPT], "{name}: the released page is not protected");
        }
        let faults = t.stats().faults;
        lab.write(KEPT, 4);
        assert_eq!(
            t.stats().faults - faults,
            faults_served(v, 1),
            "{name}: released page"
        );
        // Remark: the write is there; the kept pages without a mark are not.
        let remark = harvest(&lab, t, false, None);
        assert_eq!(remark, vec![KEPT], "{name}: remark");
        t.disarm().expect("disarm");
        if let Some(bits) = protected(&lab, PAGES) {
            let left: Vec<usize> = (0..PAGES).filter(|&p| bits[p]).collect();
            if !keeps_protection(v) {
                assert!(left.is_empty(), "{name}: protected after disarm: {left:?}");
            }
        }
        let faults = t.stats().faults;
        if !keeps_protection(v) {
            for p in 0..PAGES {
                lab.write(p, 5);
            }
            assert_eq!(t.stats().faults, faults, "{name}: a fault after disarm");
        }
        assert_eq!(t.stats().degradations, 0, "{name}");
    });
}
