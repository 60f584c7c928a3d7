//! Every error a caller can provoke: invalid arguments, stale refs, out of memory.

use barrierlab::internals::Testing;
use barrierlab::{BarrierKind, Error, Heap, HeapConfig};

use super::{PAGE, assert_invalid, assert_stale, for_every_barrier, small_heap};

#[test]
fn out_of_range_slots_and_payloads_are_invalid_arguments() {
    for_every_barrier(
        "out_of_range_slots_and_payloads",
        |k| small_heap(k, 1 << 20),
        |heap| {
            let mut m = heap.mutator();
            let o = m.alloc(2, 24).expect("alloc");
            m.push_root(o).expect("root");
            let none = m.alloc(0, 0).expect("alloc");
            m.push_root(none).expect("root");
            assert_invalid(m.read_ref(o, 2), "read_ref slot 2 of 2");
            assert_invalid(m.write_ref(o, 2, Some(o)), "write_ref slot 2 of 2");
            assert_invalid(
                m.write_ref(o, usize::MAX, None),
                "write_ref slot usize::MAX",
            );
            assert_invalid(m.read_ref(none, 0), "read_ref of an object without slots");
            let mut buf = [0u8; 4];
            assert_invalid(m.read_bytes(o, 21, &mut buf), "read past the payload end");
            assert_invalid(m.write_bytes(o, 24, &[1]), "write at the payload end");
            assert_invalid(m.write_bytes(o, usize::MAX, &[1, 2]), "offset overflow");
            assert_invalid(
                m.read_bytes(none, 0, &mut buf),
                "read from an empty payload",
            );
            // The edges are fine: the last slot, the last bytes, an empty range at the end.
            m.write_ref(o, 1, Some(none)).expect("last slot");
            m.read_bytes(o, 20, &mut buf).expect("last 4 bytes");
            m.write_bytes(o, 24, &[]).expect("empty write at the end");
            assert_eq!(m.read_ref(o, 1).expect("slot"), Some(none));
            // Rejected stores changed nothing.
            assert_eq!(m.read_ref(o, 0).expect("slot"), None);
            assert_invalid(m.set_root(5, Some(o)), "set_root out of range");
        },
    );
}

#[test]
fn objects_too_large_for_the_heap_are_invalid_arguments() {
    for_every_barrier(
        "objects_too_large",
        |k| small_heap(k, 1 << 20),
        |heap| {
            let mut m = heap.mutator();
            assert_invalid(m.alloc(0, 2 << 20), "payload larger than the heap");
            assert_invalid(m.alloc(1 << 31, 0), "2^31 reference slots");
            assert_invalid(m.alloc(0, 1 << 32), "a 4 GiB payload");
            assert_invalid(m.alloc(usize::MAX, usize::MAX), "overflowing size");
            // The heap still works.
            let o = m.alloc(1, 8).expect("alloc after the errors");
            assert!(heap.is_live(o));
        },
    );
}

#[test]
fn bad_heap_configurations_are_invalid_arguments() {
    assert_invalid(
        Heap::new(HeapConfig::new().heap_bytes(4096)),
        "a one-page heap",
    );
    assert_invalid(Heap::new(HeapConfig::new().trigger(0.0)), "trigger 0");
    assert_invalid(Heap::new(HeapConfig::new().trigger(1.5)), "trigger 1.5");
    assert_invalid(
        Heap::new(HeapConfig::new().testing(Testing {
            drop_every_nth_dirty: Some(0),
            ..Testing::default()
        })),
        "drop every 0th",
    );
}

/// An `ObjRef` to a cell the collector freed is a `StaleRef` for every operation (unless
/// the cell was reused, which nothing here allows: no allocation happens in between).
#[test]
fn freed_objects_are_stale_refs() {
    for_every_barrier(
        "freed_objects_are_stale_refs",
        |k| small_heap(k, 2 << 20),
        |heap| {
            let kind = heap.barrier();
            let mut m = heap.mutator();
            let keep = m.alloc(1, 8).expect("alloc");
            m.push_root(keep).expect("root");
            let small = m.alloc(2, 8).expect("alloc");
            let large = m.alloc(1, 3 * PAGE).expect("alloc");
            m.write_ref(small, 0, Some(large)).expect("store");
            // Reachable for a while, then dropped.
            m.write_ref(keep, 0, Some(small)).expect("store");
            m.collect().expect("collect");
            assert!(
                heap.is_live(small) && heap.is_live(large),
                "{kind}: reachable objects freed"
            );
            m.write_ref(keep, 0, None).expect("store");
            m.collect().expect("collect");
            for o in [small, large] {
                assert!(
                    !heap.is_live(o),
                    "{kind}: {o:?} survived a cycle that started after it died"
                );
                let mut b = [0u8; 8];
                assert_stale(m.shape(o), o, "shape");
                assert_stale(m.read_ref(o, 0), o, "read_ref");
                assert_stale(m.write_ref(o, 0, None), o, "write_ref into it");
                assert_stale(m.write_ref(keep, 0, Some(o)), o, "write_ref of it");
                assert_stale(m.read_bytes(o, 0, &mut b), o, "read_bytes");
                assert_stale(m.write_bytes(o, 0, &b), o, "write_bytes");
                assert!(m.payload_ptr(o).is_err(), "{kind}: payload_ptr");
            }
            // The failed store left the slot alone.
            assert_eq!(m.read_ref(keep, 0).expect("slot"), None);
        },
    );
}

/// An `ObjRef` of another heap is a `StaleRef` here.
#[test]
fn foreign_objects_are_stale_refs() {
    let a = Heap::new(small_heap(BarrierKind::CardTable, 1 << 20)).expect("heap a");
    let b = Heap::new(small_heap(BarrierKind::None, 1 << 20)).expect("heap b");
    let mut ma = a.mutator();
    let mut mb = b.mutator();
    let oa = ma.alloc(1, 8).expect("alloc");
    ma.push_root(oa).expect("root");
    let ob = mb.alloc(1, 8).expect("alloc");
    mb.push_root(ob).expect("root");
    assert!(!b.is_live(oa) && !a.is_live(ob));
    assert_stale(mb.shape(oa), oa, "shape of a foreign object");
    assert_stale(
        mb.write_ref(ob, 0, Some(oa)),
        oa,
        "storing a foreign object",
    );
    assert_stale(ma.read_ref(ob, 0), ob, "read_ref of a foreign object");
}

/// A full heap is an error value after full collections, not an abort or a hang; freeing
/// the data makes room again.
#[test]
fn full_heap_is_out_of_memory() {
    for_every_barrier(
        "full_heap_is_out_of_memory",
        |k| small_heap(k, 1 << 20),
        |heap| {
            let kind = heap.barrier();
            let mut m = heap.mutator();
            // Small objects, all kept (a list from one root), until the heap is full.
            let head = m.alloc(1, 8).expect("alloc");
            m.push_root(head).expect("root");
            let mut count = 0usize;
            let err = loop {
                match m.alloc(1, 40) {
                    Ok(o) => {
                        let top = m.root(0).expect("root");
                        m.write_ref(o, 0, Some(top)).expect("link");
                        m.set_root(0, Some(o)).expect("root");
                        count += 1;
                        assert!(count < 1 << 20, "{kind}: a 1 MiB heap never filled up");
                    }
                    Err(e) => break e,
                }
            };
            let Error::OutOfMemory {
                requested,
                sizing: Some(sizing),
            } = err
            else {
                panic!("{kind}: expected OutOfMemory with its sizing, got {err:?}");
            };
            assert_eq!(requested, 8 + 8 + 40, "{kind}");
            // The sizing names this heap, its one mutator, the live list (most of the
            // heap), and a size that would hold it with room to collect.
            assert_eq!(sizing.heap_bytes, 1 << 20, "{kind}");
            assert_eq!(sizing.mutators, 1, "{kind}");
            assert!(
                sizing.live_bytes as usize > (1 << 20) / 2,
                "{kind}: live {} after filling the heap",
                sizing.live_bytes
            );
            assert!(
                sizing.suggested_heap_bytes > 2 * sizing.live_bytes as usize,
                "{kind}: {sizing:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("MiB or more"),
                "{kind}: the message does not name a size: {msg}"
            );
            assert!(
                count * 64 > (1 << 20) * 3 / 4,
                "{kind}: only {count} objects fit"
            );
            // A large object does not fit either.
            assert!(
                matches!(m.alloc(0, 3 * PAGE), Err(Error::OutOfMemory { .. })),
                "{kind}"
            );
            // Everything is intact.
            let mut n = m.root(0);
            let mut seen = 0;
            while let Some(o) = n {
                seen += 1;
                n = m.read_ref(o, 0).expect("list node");
            }
            assert_eq!(seen, count + 1, "{kind}: the kept list lost objects");
            // Drop it: allocation works again, large objects too.
            m.set_root(0, None).expect("root");
            m.collect().expect("collect");
            let big = m.alloc(0, 512 << 10).expect("alloc after freeing");
            m.push_root(big).expect("root");
            m.alloc(1, 40).expect("alloc after freeing");
            // And a large object that cannot fit while `big` lives is an error too.
            assert!(
                matches!(m.alloc(0, 600 << 10), Err(Error::OutOfMemory { .. })),
                "{kind}"
            );
            let st = heap.stats();
            assert_eq!(
                st.verifier_failures, 0,
                "{kind}: {:?}",
                st.verifier_messages
            );
        },
    );
}
