//! Conformance, continued: the disarm's steps ahead of the sweep
//! (`DirtyTracker::disarm_ahead`), over every variant. A step makes the heap writable
//! from its start up to its bound (the kernel agrees, and a write there takes no fault),
//! leaves the pages above it as they were (a write there still faults and is recorded),
//! and the disarm after the steps makes the rest writable. A variant that keeps its
//! pages protected between cycles keeps them protected through the steps too.

use barrierlab::sys::PAGE_SIZE;

use crate::conformance::{faults_served, for_every_variant, keeps_protection, protected};
use crate::support::TrackerLab;

const PAGES: usize = 64;
/// The step's bound: a byte into page 24, so pages `0..25` are below it.
const STEP: usize = 24 * PAGE_SIZE + 1;
const BELOW: usize = 25;

#[test]
fn a_disarm_step_makes_the_heap_writable_below_its_bound_and_disarm_the_rest() {
    for_every_variant("disarm_steps", |v| {
        let Some(lab) = TrackerLab::or_skip(v, PAGES, PAGES, "disarm_steps") else {
            return;
        };
        let (name, t) = (v.name(), lab.tracker());
        let kept = keeps_protection(v);
        t.arm().expect("arm");
        lab.harvest(true);
        t.disarm_ahead(STEP).expect("a step");
        if let Some(bits) = protected(&lab, PAGES) {
            for (p, bit) in bits.into_iter().enumerate() {
                let expected = kept || p >= BELOW;
                assert_eq!(bit, expected, "{name}: page {p} protected after the step");
            }
        }
        // Below the step no write faults (a variant that keeps its pages protected is
        // served by the kernel, which counts no fault either).
        let faults = t.stats().faults;
        for p in 0..BELOW {
            lab.write(p, 5);
        }
        assert_eq!(t.stats().faults, faults, "{name}: a fault below the step");
        // Above it the page is still protected: the write faults where faults are
        // served (and the fault is recorded, as any other). No harvest here: nothing
        // harvests between the steps and the disarm (async write-protect's harvest
        // would protect again what it reports).
        lab.write(40, 6);
        assert_eq!(
            t.stats().faults - faults,
            faults_served(v, 1),
            "{name}: the write above the step"
        );
        // A lower bound, or the same again, changes nothing.
        t.disarm_ahead(PAGE_SIZE).expect("a lower step");
        t.disarm().expect("disarm");
        // Protected pages after disarm: none, or, kept protected, those not written yet
        // (the kernel resolved the first writes).
        if let Some(bits) = protected(&lab, PAGES) {
            for (p, bit) in bits.into_iter().enumerate() {
                let expected = kept && p >= BELOW && p != 40;
                assert_eq!(bit, expected, "{name}: page {p} protected after disarm");
            }
        }
        let faults = t.stats().faults;
        for p in BELOW..PAGES {
            lab.write(p, 7);
        }
        assert_eq!(t.stats().faults, faults, "{name}: a fault after disarm");
        for p in 0..PAGES {
            let value = if p < BELOW { 5 } else { 7 };
            assert_eq!(
                crate::support::read_page(lab.base(), p),
                value,
                "{name}: page {p}"
            );
        }
        assert_eq!(t.stats().degradations, 0, "{name}");
    });
}
