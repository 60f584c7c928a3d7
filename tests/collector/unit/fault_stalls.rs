//! Fault stalls: measured where the writer waits, one per fault served.

use std::time::Duration;

use barrierlab::barrier::ServedBy;

use super::{for_every_barrier, small_heap};

#[test]
fn fault_stalls_are_measured_where_the_writer_waits() {
    for_every_barrier(
        "fault_stalls_are_measured",
        |k| small_heap(k, 4 << 20),
        |heap| {
            let kind = heap.barrier();
            let mut m = heap.mutator();
            // A long-lived array of lists, rewritten while cycles run: writes to
            // protected pages of old objects fault under the page trackers.
            let table = m.alloc(64, 0).expect("alloc");
            m.push_root(table).expect("root");
            let mut cycles = 0;
            // Bounded by allocation, not by a cycle count: the pacer lets the heap fill
            // to its goal before a cycle, so how many rounds make five cycles depends on
            // the barrier's schedule.
            for round in 0..2_000_000usize {
                let o = m.alloc(1, 24).expect("alloc");
                let slot = round % 64;
                // Each slot's list is cut every 16 visits, so the live set stays small.
                let old = if (round / 64) % 16 == 0 {
                    None
                } else {
                    m.read_ref(table, slot).expect("read")
                };
                m.write_ref(o, 0, old).expect("link");
                m.write_ref(table, slot, Some(o)).expect("store");
                cycles = heap.stats().cycles;
                if cycles >= 5 && round > 50_000 {
                    break;
                }
            }
            assert!(cycles >= 3, "{kind}: only {cycles} cycles ran");
            let s = heap.stats();
            let faults = s.tracker.faults;
            let uptime = heap.uptime();
            match kind.mechanism().served_by {
                ServedBy::Service | ServedBy::Handler => {
                    assert!(faults > 0, "{kind}: no fault was served");
                    // One stall per fault served (a fault on a page recorded already, in
                    // a race, is a stall but not a second record).
                    assert!(
                        s.stalls.len() as u64 >= faults,
                        "{kind}: {} stalls for {faults} faults",
                        s.stalls.len()
                    );
                    assert_eq!(s.tracker.stalls_dropped, 0, "{kind}");
                    assert!(!s.tracker.stall_method.is_empty(), "{kind}");
                    for st in &s.stalls {
                        assert!(
                            st.start + st.duration <= uptime,
                            "{kind}: stall {st:?} ends after now ({uptime:?})"
                        );
                        assert!(st.duration < Duration::from_secs(10), "{kind}: {st:?}");
                    }
                    assert!(
                        s.stalls.iter().any(|st| !st.duration.is_zero()),
                        "{kind}: every stall measured zero"
                    );
                }
                _ => assert!(s.stalls.is_empty(), "{kind}: stalls without a fault"),
            }
        },
    );
}
