//! Conformance, continued: arm told which pages the allocator holds free
//! (`DirtyTracker::arm_with_free`), over every variant. A page tracker whose faults its
//! own code serves leaves the free pages writable and unrecorded, so that handing one
//! out during the cycle records it with no protection change, and no write is lost: the
//! pages in use are protected as at any arm, a free page handed out and written is in
//! the dirty set, and the planted frontier bug (`forget_hand_outs`) loses that write.
//! Every other tracker arms as it always does.

use barrierlab::barrier::{DirtyTracker, ServedBy, Variant};
use barrierlab::sys::PAGE_SIZE;

use crate::conformance::{faults_served, for_every_variant, keeps_protection, protected};
use crate::support::TrackerLab;

/// The free runs of the rows, `(first page, pages)`: populated and never-touched pages.
const FREE: [(usize, usize); 2] = [(16, 16), (48, 16)];

fn is_free(p: usize) -> bool {
    FREE.iter()
        .any(|&(first, n)| (first..first + n).contains(&p))
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
        let Some(lab) = TrackerLab::or_skip(v, 64, 32, "arm_with_free") else {
            return;
        };
        let (name, t) = (v.name(), lab.tracker());
        let opens = opens_free_pages(v);
        let before = t.stats();
        arm_with_free(&lab, t);
        let armed = t.stats();
        let opened = armed.opened_at_arm - before.opened_at_arm;
        assert_eq!(
            opened,
            if opens { 32 } else { 0 },
            "{name}: pages left open"
        );
        if let Some(bits) = protected(&lab, 64) {
            for (p, bit) in bits.iter().enumerate() {
                assert_eq!(*bit, !(opens && is_free(p)), "{name}: page {p} after arm");
            }
        }
        // Pages 20..22 (free, populated) and 50 (free, never touched) handed out: no
        // protection change for a tracker that left them open.
        t.hand_out(lab.base() + 20 * PAGE_SIZE, 2 * PAGE_SIZE);
        t.hand_out(lab.base() + 50 * PAGE_SIZE, PAGE_SIZE);
        let after = t.stats();
        if opens {
            assert_eq!(after.handed_out - armed.handed_out, 3, "{name}");
            assert_eq!(after.hand_out_calls, armed.hand_out_calls, "{name}: a call");
        }
        for p in [20, 21, 50, 5] {
            lab.write(p, 3);
        }
        // Only page 5, in use and protected, faults.
        assert_eq!(
            t.stats().faults - after.faults,
            faults_served(v, 1),
            "{name}: faults"
        );
        let d = lab.harvest(true);
        assert!(!d.all, "{name}");
        assert_eq!(d.granules, lab.granules(&[5, 20, 21, 50]), "{name}");
        // Page 22 is free and open still: harvested pages are protected again, it is not.
        if let Some(bits) = protected(&lab, 64) {
            assert_eq!(bits[20..23], [true, true, !opens], "{name}");
        }
        t.disarm().expect("disarm");
        if let Some(bits) = protected(&lab, 64) {
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
        let Some(lab) = TrackerLab::or_skip(v, 64, 32, "arm_with_free_planted_bug") else {
            return;
        };
        let (name, t) = (v.name(), lab.tracker());
        let Some(knobs) = t.test_knobs().filter(|_| opens_free_pages(v)) else {
            return; // Nothing left open: the row above covers it.
        };
        knobs.forget_hand_outs(true);
        arm_with_free(&lab, t);
        t.hand_out(lab.base() + 17 * PAGE_SIZE, PAGE_SIZE);
        lab.write(17, 5);
        let d = lab.harvest(true);
        assert!(
            !d.all && d.granules.is_empty(),
            "{name}: the planted bug should lose the write, but the harvest has {d:?}"
        );
        knobs.forget_hand_outs(false);
        t.disarm().expect("disarm");
    });
}
