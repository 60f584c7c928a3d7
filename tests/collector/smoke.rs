//! Fast end-to-end checks of the heap under every available barrier: many cycles
//! triggered by allocation on several threads, lists kept alive across them.

use barrierlab::{BarrierKind, Heap, HeapConfig, ServiceLayout};

use crate::support::barrier_config;

fn churn(kind: BarrierKind, layout: ServiceLayout, threads: usize) {
    let heap = match Heap::new(
        HeapConfig::new()
            .heap_bytes(1 << 20)
            .barrier(barrier_config(kind, layout, false))
            .verify(true),
    ) {
        Ok(h) => h,
        Err(e) => {
            assert!(
                std::env::var("BARRIERLAB_REQUIRE_ALL").as_deref() != Ok("1"),
                "{kind}: {e}"
            );
            eprintln!("SKIP {kind}: {e}");
            return;
        }
    };
    std::thread::scope(|s| {
        for t in 0..threads {
            let heap = heap.clone();
            s.spawn(move || {
                let mut m = heap.mutator();
                let head = m.alloc(1, 8).unwrap();
                let root = m.push_root(head).expect("root");
                let mut kept = 0u64;
                for round in 0..40u64 {
                    // Build a fresh 2000-node list, then check it and drop it.
                    let first = m.alloc(1, 8).unwrap();
                    m.set_root(root, Some(first)).unwrap();
                    let mut node = first;
                    for i in 0..2000u64 {
                        let next = m.alloc(1, 8).unwrap();
                        m.write_bytes(
                            next,
                            0,
                            &(t as u64 * 1_000_000 + round * 10_000 + i).to_le_bytes(),
                        )
                        .unwrap();
                        m.write_ref(node, 0, Some(next)).unwrap();
                        node = next;
                    }
                    let mut node = m.read_ref(first, 0).unwrap();
                    let mut i = 0u64;
                    while let Some(n) = node {
                        let mut b = [0u8; 8];
                        m.read_bytes(n, 0, &mut b).unwrap();
                        assert_eq!(
                            u64::from_le_bytes(b),
                            t as u64 * 1_000_000 + round * 10_000 + i
                        );
                        i += 1;
                        node = m.read_ref(n, 0).unwrap();
                    }
                    assert_eq!(i, 2000);
                    kept += i;
                }
                kept
            });
        }
    });
    let s = heap.stats();
    assert!(s.cycles >= 3, "{kind}: only {} cycles", s.cycles);
    assert_eq!(s.verifier_failures, 0, "{kind}: {:?}", s.verifier_messages);
    eprintln!(
        "{kind} {layout:?}: {} cycles, {} pauses, max {:?}, faults {}",
        s.cycles,
        s.pauses.len(),
        s.max_pause(),
        s.tracker.faults
    );
}

#[test]
fn churn_every_barrier_two_threads() {
    for kind in BarrierKind::ALL {
        churn(kind, ServiceLayout::default(), 2);
    }
}

#[test]
fn churn_uffd_wp_every_layout() {
    for layout in ServiceLayout::ALL {
        churn(BarrierKind::UffdWp, layout, 2);
    }
}
