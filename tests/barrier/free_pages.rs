//! Conformance, continued: arm told which pages the allocator holds free
//! (`DirtyTracker::arm_with_free`), over every variant. A page tracker whose faults its
//! own code serves leaves the long runs of free pages writable and unrecorded, so that
//! handing one of their pages out during the cycle records it with no protection
//! change, and no write is lost: the pages in use (and short free runs) are protected as
//! at any arm, a free page handed out and written is in the dirty set, and the planted
//! frontier bug (`forget_hand_outs`) loses that write. Every other tracker arms as it
//! always does.

use barrierlab::barrier::{DirtyTracker, ServedBy, Variant};
use barrierlab::sys::PAGE_SIZE;

use crate::conformance::{faults_served, for_every_variant, keeps_protection, protected};
use crate::support::TrackerLab;

/// The rows' heap, in pages, and how many of them were written before.
const PAGES: usize = 1024;
const POPULATED: usize = 512;

/// The free runs of the rows, `(first page, pages)`: populated and never-touched pages,
/// each long enough to be left open (256 pages), and one too short (8).
const FREE: [(usize, usize); 3] = [(100, 8), (256, 256), (768, 256)];

/// Whether arm leaves page `p` open.
fn left_open(p: usize) -> bool {
    FREE.iter()
        .any(|&(first, n)| n >= 256 && (first..first + n).contains(&p))
}

/// Arms `t` over `lab`, with [`FREE`] listed free.
fn arm_with_free(lab: &TrackerLab, t: &dyn DirtyTracker) {
    let base = lab.base();
    t.arm_with_free(&|f| {
        for (first, n) in FREE {
            f(base + first * PAGE_SIZE, n * PAGE_SIZE);
        }
    })
    .expect("arm");
}

/// Whether `v` leaves free pages open at arm: a page tracker whose record is its own
/// (not the kernel's page table).
fn opens_free_pages(v: Variant) -> bool {
    v.kind().is_page_level() && v.kind().mechanism().served_by != ServedBy::Kernel
}

#[test]
fn arm_leaves_free_pages_writable_and_a_hand_out_records_them_without_a_call() {
    for_every_variant("arm_with_free", |v| {
        let Some(lab) = TrackerLab::or_skip(v, PAGES, POPULATED, "arm_with_free") else {
            return;
        };
        let (name, t) = (v.name(), lab.tracker());
        let opens = opens_free_pages(v);
        let before = t.stats();
        arm_with_free(&lab, t);
        let armed = t.stats();
        let opened = armed.opened_at_arm - before.opened_at_arm;
        let expected = if opens { 512 } else { 0 };
        assert_eq!(opened, expected, "{name}: pages left open");
        if let Some(bits) = protected(&lab, PAGES) {
            for (p, bit) in bits.iter().enumerate() {
                let open = opens && left_open(p);
                assert_eq!(*bit, !open, "{name}: page {p} after arm");
            }
        }
        // Pages 300..302 (free, populated) and 800 (free, never touched) handed out: no
        // protection change for a tracker that left them open.
        t.hand_out(lab.base() + 300 * PAGE_SIZE, 2 * PAGE_SIZE);
        t.hand_out(lab.base() + 800 * PAGE_SIZE, PAGE_SIZE);
        let after = t.stats();
        if opens {
            assert_eq!(after.handed_out - armed.handed_out, 3, "{name}");
            assert_eq!(after.hand_out_calls, armed.hand_out_calls, "{name}: a call");
        }
        for p in [300, 301, 800, 5] {
            lab.write(p, 3);
        }
        // Only page 5, in use and protected, faults.
        let faults = t.stats().faults - after.faults;
        assert_eq!(faults, faults_served(v, 1), "{name}: faults");
        let d = lab.harvest(true);
        assert!(!d.all, "{name}");
        assert_eq!(d.granules, lab.granules(&[5, 300, 301, 800]), "{name}");
        // Page 302 is free and open still: harvested pages are protected again, it is not.
        if let Some(bits) = protected(&lab, PAGES) {
            assert_eq!(bits[300..303], [true, true, !opens], "{name}");
        }
        t.disarm().expect("disarm");
        if let Some(bits) = protected(&lab, PAGES) {
            let kept = keeps_protection(v);
            for (p, bit) in bits.iter().enumerate() {
                assert_eq!(*bit, kept, "{name}: page {p} after disarm");
            }
        }
        assert_eq!(t.stats().degradations, 0, "{name}");
    });
}

#[test]
fn the_planted_frontier_bug_loses_the_write_to_a_free_page_left_open() {
    for_every_variant("arm_with_free_planted_bug", |v| {
        let test = "arm_with_free_planted_bug";
        let Some(lab) = TrackerLab::or_skip(v, PAGES, POPULATED, test) else {
            return;
        };
        let (name, t) = (v.name(), lab.tracker());
        let Some(knobs) = t.test_knobs().filter(|_| opens_free_pages(v)) else {
            return; // Nothing left open: the row above covers it.
        };
        knobs.forget_hand_outs(true);
        arm_with_free(&lab, t);
        t.hand_out(lab.base() + 257 * PAGE_SIZE, PAGE_SIZE);
        lab.write(257, 5);
        let d = lab.harvest(true);
        assert!(
            !d.all && d.granules.is_empty(),
            "{name}: the planted bug should lose the write, but the harvest has {d:?}"
        );
        knobs.forget_hand_outs(false);
        t.disarm().expect("disarm");
    });
}
