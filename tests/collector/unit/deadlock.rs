//! Freedom from deadlock: pauses while mutators hammer armed pages, blocked mutators.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use barrierlab::{BarrierKind, Heap, ObjRef, ServiceLayout};

use crate::support::barrier_config;

use super::{LIMIT, for_every_barrier, small_heap};
use crate::support::{heap_or_skip, read_id, with_timeout};

/// Writer threads store payload bytes and references into objects spread over many pages
/// as fast as they can (polling safepoints between stores, as compiled code would), while
/// another thread runs 50 collections: every pause must be reached and every write fault
/// served, and the data must be intact afterwards.
fn hammer(heap: Heap, writers: usize) {
    let kind = heap.barrier();
    const OBJECTS: usize = 256;
    let done = AtomicBool::new(false);
    let stores = AtomicU64::new(0);
    let start = Barrier::new(writers + 1);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let (heap, done, stores, start) = (&heap, &done, &stores, &start);
            s.spawn(move || {
                let mut m = heap.mutator();
                // Two objects per page (2 KiB cells): 128 pages per writer.
                let objs: Vec<ObjRef> = (0..OBJECTS)
                    .map(|i| {
                        let o = m.alloc(2, 1_900).expect("alloc");
                        m.push_root(o).expect("root");
                        m.write_bytes(o, 0, &((w * OBJECTS + i) as u64).to_le_bytes())
                            .expect("id");
                        o
                    })
                    .collect();
                m.blocking(|| start.wait());
                let mut i = w * 7919;
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let o = objs[i % OBJECTS];
                    let t = objs[(i * 31 + 7) % OBJECTS];
                    m.write_bytes(o, 8 + (i % 1_800), &[i as u8; 64])
                        .expect("payload store");
                    m.write_ref(o, i % 2, Some(t)).expect("reference store");
                    n += 2;
                    i = i.wrapping_add(13);
                    if n % 8 == 0 {
                        m.safepoint();
                    }
                }
                stores.fetch_add(n, Ordering::Relaxed);
                for (k, &o) in objs.iter().enumerate() {
                    assert_eq!(
                        read_id(&m, o),
                        Some((w * OBJECTS + k) as u64),
                        "{kind}: writer {w} object {k}"
                    );
                    for slot in 0..2 {
                        if let Some(t) = m.read_ref(o, slot).expect("slot") {
                            assert!(
                                objs.contains(&t),
                                "{kind}: writer {w} slot points elsewhere"
                            );
                        }
                    }
                }
            });
        }
        start.wait();
        for _ in 0..50 {
            heap.collect().expect("collect");
        }
        done.store(true, Ordering::Relaxed);
    });
    let st = heap.stats();
    assert!(st.cycles >= 50, "{kind}: {} cycles", st.cycles);
    assert_eq!(
        st.verifier_failures, 0,
        "{kind}: {:?}",
        st.verifier_messages
    );
    eprintln!(
        "{kind} ({writers} writers): 50 collections in {:.2?}, {} stores, {} faults, max pause {:?}",
        t0.elapsed(),
        stores.load(Ordering::Relaxed),
        st.tracker.faults,
        st.max_pause()
    );
}

#[test]
fn no_deadlock_pausing_mutators_that_hammer_armed_pages() {
    let config = |k| small_heap(k, 8 << 20);
    for_every_barrier("no_deadlock_hammer_2", config, |h| hammer(h, 2));
    for_every_barrier("no_deadlock_hammer_4", config, |h| hammer(h, 4));
}

#[test]
fn no_deadlock_uffd_wp_every_service_layout() {
    for layout in ServiceLayout::ALL {
        let what = format!("no_deadlock_uffd_wp_{}", layout.name());
        if let Some(heap) = heap_or_skip(
            small_heap(BarrierKind::UffdWp, 8 << 20).barrier(barrier_config(
                BarrierKind::UffdWp,
                layout,
                false,
            )),
            &what,
        ) {
            with_timeout(LIMIT.as_secs(), &what, move || hammer(heap, 3));
        }
    }
}

/// A mutator blocked outside the managed state (`blocking`) does not hold up a pause: a
/// collection from another thread completes while it is still blocked, and its roots are
/// honoured meanwhile.
#[test]
fn blocking_mutator_does_not_hold_up_a_pause() {
    for_every_barrier(
        "blocking_mutator_does_not_hold_up_a_pause",
        |k| small_heap(k, 2 << 20),
        |heap| {
            let kind = heap.barrier();
            let asleep = Arc::new(Barrier::new(2));
            let collected = Arc::new(AtomicBool::new(false));
            let (h2, a2, c2) = (heap.clone(), asleep.clone(), collected.clone());
            let collector = std::thread::spawn(move || {
                a2.wait();
                for _ in 0..3 {
                    h2.collect().expect("collect");
                }
                c2.store(true, Ordering::Release);
            });
            let mut m = heap.mutator();
            let kept = m.alloc(1, 8).expect("alloc");
            m.write_bytes(kept, 0, &77u64.to_le_bytes())
                .expect("payload");
            m.push_root(kept).expect("root");
            let before = heap.stats().cycles;
            let deadline = Instant::now() + Duration::from_secs(30);
            let slept_through = m.blocking(|| {
                asleep.wait();
                // Sleep in 50 ms steps until the other thread's collections are done.
                while !collected.load(Ordering::Acquire) {
                    if Instant::now() > deadline {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                true
            });
            assert!(
                slept_through,
                "{kind}: collect() did not complete while a mutator was blocked for 30 s"
            );
            collector.join().expect("collector thread");
            assert!(heap.stats().cycles >= before + 3, "{kind}");
            assert!(
                heap.is_live(kept),
                "{kind}: a blocked mutator's root was not honoured"
            );
            assert_eq!(read_id(&m, kept), Some(77), "{kind}");
            assert_eq!(heap.stats().verifier_failures, 0);
        },
    );
}
