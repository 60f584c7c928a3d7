//! The heap and collector through the public API, one property per test: size classes,
//! large objects, memory reuse after a sweep, every error a caller can provoke, barrier
//! names, and freedom from deadlock (a pause while mutators hammer armed pages; a mutator
//! blocked outside the managed state). Tests that build a heap run over every barrier
//! (skipping, with a reason, one this kernel or tree does not offer) and under a timeout.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use barrierlab::barrier::ServedBy;
use barrierlab::heap::size_class::{CLASS_SIZES, MAX_SMALL, class_for};
use barrierlab::internals::Testing;
use barrierlab::{BarrierKind, Error, Heap, HeapConfig, Mutator, ObjRef, ServiceLayout};

use support::with_timeout;
use support::{heap_or_skip, read_id};

const PAGE: usize = 4096;
const LIMIT: Duration = Duration::from_secs(60);

/// Runs `body` over a fresh heap of every barrier (built from `config`), each under a
/// timeout; a barrier that cannot be built is skipped with its reason.
fn for_every_barrier(test: &str, config: impl Fn(BarrierKind) -> HeapConfig, body: fn(Heap)) {
    for kind in BarrierKind::ALL {
        let what = format!("{test} [{kind}]");
        if let Some(heap) = heap_or_skip(config(kind), &what) {
            with_timeout(LIMIT.as_secs(), &what, move || body(heap));
        }
    }
}

fn small_heap(kind: BarrierKind, bytes: usize) -> HeapConfig {
    HeapConfig::new()
        .heap_bytes(bytes)
        .barrier(kind)
        .verify(true)
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, Error>, what: &str) {
    match r {
        Err(Error::InvalidArgument(msg)) => assert!(!msg.is_empty(), "{what}: empty message"),
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    }
}

fn assert_stale<T: std::fmt::Debug>(r: Result<T, Error>, obj: ObjRef, what: &str) {
    match r {
        Err(Error::StaleRef(a)) => assert_eq!(a, obj.addr(), "{what}: StaleRef names the address"),
        other => panic!("{what}: expected StaleRef({obj:?}), got {other:?}"),
    }
}

/// Fills every slot and payload byte of `obj`: slots with `target`, bytes with `tag`.
fn fill(m: &mut Mutator, obj: ObjRef, target: ObjRef, tag: u8) {
    let (n, p) = m.shape(obj).expect("live");
    for i in 0..n {
        m.write_ref(obj, i, Some(target)).expect("slot in range");
    }
    m.write_bytes(obj, 0, &vec![tag; p])
        .expect("payload in range");
}

/// Checks what [`fill`] wrote.
fn check_filled(m: &Mutator, obj: ObjRef, target: ObjRef, tag: u8, what: &str) {
    let (n, p) = m.shape(obj).expect("live");
    for i in 0..n {
        assert_eq!(
            m.read_ref(obj, i).expect("slot"),
            Some(target),
            "{what}: slot {i}"
        );
    }
    let mut buf = vec![0; p];
    m.read_bytes(obj, 0, &mut buf).expect("payload");
    assert!(
        buf.iter().all(|&b| b == tag),
        "{what}: payload overwritten (a neighbour spilled into this cell, or it into one)"
    );
}

// ---------------------------------------------------------------------------------------
// Size classes and large objects.

/// Every object size around every class boundary: the shape reads back, the object fits
/// its cell (filling it entirely and its neighbours entirely leaves each intact), and
/// cells of one class are one class size apart.
#[test]
fn size_classes_around_every_boundary() {
    for_every_barrier(
        "size_classes_around_every_boundary",
        |k| small_heap(k, 16 << 20),
        |heap| {
            let mut m = heap.mutator();
            let anchor = m.alloc(0, 8).expect("anchor");
            m.push_root(anchor).expect("root");
            let mut sizes: Vec<usize> = Vec::new();
            for &c in &CLASS_SIZES {
                sizes.extend([c - 1, c, c + 1]);
            }
            for bytes in sizes {
                for nrefs in [0, 1, 3] {
                    if 8 + 8 * nrefs > bytes {
                        continue;
                    }
                    let payload = bytes - 8 - 8 * nrefs;
                    let what = format!(
                        "{}: {nrefs} slots + {payload} bytes = {bytes}",
                        heap.barrier()
                    );
                    // Three in a row: the middle one has neighbours on both sides.
                    let objs: Vec<ObjRef> = (0..3)
                        .map(|_| {
                            let o = m.alloc(nrefs, payload).expect("alloc");
                            m.push_root(o).expect("root");
                            o
                        })
                        .collect();
                    for (k, &o) in objs.iter().enumerate() {
                        assert_eq!(m.shape(o).expect("live"), (nrefs, payload), "{what}");
                        assert_eq!(o.addr() % 16, 0, "{what}: objects are 16-byte aligned");
                        fill(&mut m, o, anchor, k as u8 + 1);
                    }
                    for (k, &o) in objs.iter().enumerate() {
                        check_filled(&m, o, anchor, k as u8 + 1, &what);
                    }
                    if let Some(c) = class_for(bytes) {
                        let cell = CLASS_SIZES[c];
                        let gaps: Vec<usize> = objs
                            .windows(2)
                            .map(|w| w[1].addr().abs_diff(w[0].addr()))
                            .collect();
                        assert!(
                            gaps.iter().all(|&g| g >= cell),
                            "{what}: objects of class {c} ({cell} bytes) overlap: gaps {gaps:?}"
                        );
                        assert!(
                            gaps.contains(&cell),
                            "{what}: consecutive allocations of class {c} are not {cell} bytes \
                             apart: {gaps:?}"
                        );
                    } else {
                        assert!(bytes > MAX_SMALL);
                        for &o in &objs {
                            assert_eq!(o.addr() % PAGE, 0, "{what}: a large object starts a page");
                        }
                    }
                    m.truncate_roots(1);
                }
            }
            // All of it survives a collection, and the rooted anchor too.
            m.collect().expect("collect");
            assert!(heap.is_live(anchor));
            assert_eq!(heap.stats().verifier_failures, 0);
        },
    );
}

/// Large objects span pages: the last payload byte and the last slot are usable, they
/// take the pages they need, survive while rooted, and give the pages back when not.
#[test]
fn large_objects_span_pages() {
    for_every_barrier(
        "large_objects_span_pages",
        |k| small_heap(k, 8 << 20),
        |heap| {
            let kind = heap.barrier();
            let mut m = heap.mutator();
            let anchor = m.alloc(0, 8).expect("anchor");
            m.push_root(anchor).expect("root");
            m.collect().expect("collect");
            let base_pages = heap.pages_in_use();
            let shapes = [
                (0, MAX_SMALL),
                (1, 3 * PAGE),
                (7, 10 * PAGE + 5),
                (300, 100_000),
            ];
            let mut objs = Vec::new();
            let mut pages = 0;
            for (k, &(n, p)) in shapes.iter().enumerate() {
                let o = m.alloc(n, p).expect("alloc large");
                m.push_root(o).expect("root");
                assert_eq!(m.shape(o).expect("live"), (n, p), "{kind}");
                assert_eq!(o.addr() % PAGE, 0, "{kind}: a large object starts a page");
                if n > 0 {
                    m.write_ref(o, n - 1, Some(anchor)).expect("last slot");
                }
                m.write_bytes(o, p - 8, &(k as u64 + 0xabc).to_le_bytes())
                    .expect("payload end");
                m.write_bytes(o, 0, &(k as u64 + 0x123).to_le_bytes())
                    .expect("payload start");
                pages += (8 + 8 * n + p).div_ceil(PAGE);
                objs.push(o);
            }
            assert!(
                heap.pages_in_use() >= base_pages + pages,
                "{kind}: {} pages in use, expected at least {base_pages} + {pages}",
                heap.pages_in_use()
            );
            for _ in 0..3 {
                m.collect().expect("collect");
            }
            for (k, (&o, &(n, p))) in objs.iter().zip(&shapes).enumerate() {
                assert!(heap.is_live(o), "{kind}: rooted large object {k} was freed");
                let mut b = [0u8; 8];
                m.read_bytes(o, p - 8, &mut b).expect("payload end");
                assert_eq!(
                    u64::from_le_bytes(b),
                    k as u64 + 0xabc,
                    "{kind}: object {k} end"
                );
                assert_eq!(
                    read_id(&m, o),
                    Some(k as u64 + 0x123),
                    "{kind}: object {k} start"
                );
                if n > 0 {
                    assert_eq!(m.read_ref(o, n - 1).expect("slot"), Some(anchor), "{kind}");
                }
            }
            // Unrooted, they are freed and their pages returned.
            m.truncate_roots(1);
            m.collect().expect("collect");
            for (k, &o) in objs.iter().enumerate() {
                assert!(
                    !heap.is_live(o),
                    "{kind}: unreachable large object {k} survived"
                );
                assert_stale(m.shape(o), o, "large object after collection");
            }
            assert!(
                heap.pages_in_use() <= base_pages,
                "{kind}: {} pages in use after freeing the large objects, {base_pages} before",
                heap.pages_in_use()
            );
            assert_eq!(heap.stats().verifier_failures, 0);
        },
    );
}

/// Allocation after a sweep reuses memory: many times the heap's size of garbage (small
/// objects of every class and large ones), with a small rooted set kept throughout, never
/// runs out and never holds more than a bounded number of pages after a collection.
#[test]
fn sweep_makes_memory_reusable() {
    for_every_barrier(
        "sweep_makes_memory_reusable",
        |k| small_heap(k, 4 << 20),
        |heap| {
            let kind = heap.barrier();
            let heap_pages = heap.range().1.abs_diff(heap.range().0) / PAGE;
            let mut m = heap.mutator();
            // A small live set: a list of 64 objects that survives everything.
            let head = m.alloc(1, 8).expect("alloc");
            m.push_root(head).expect("root");
            let mut node = head;
            for i in 0..64u64 {
                let n = m.alloc(1, 8).expect("alloc");
                m.write_bytes(n, 0, &i.to_le_bytes()).expect("payload");
                m.write_ref(node, 0, Some(n)).expect("link");
                node = n;
            }
            m.collect().expect("collect");
            let mut worst = 0;
            let mut garbage_bytes = 0usize;
            for round in 0..40usize {
                // About 1 MiB of garbage per round: every class, and a large object.
                for i in 0..2_000usize {
                    let payload = (i * 37 + round) % 1_000 + 8;
                    m.alloc(i % 4, payload).expect("alloc garbage");
                    garbage_bytes += payload + 8 * (i % 4) + 8;
                }
                m.alloc(2, 20_000 + round * 1000)
                    .expect("alloc large garbage");
                garbage_bytes += 20_000;
                m.collect().expect("collect");
                worst = worst.max(heap.pages_in_use());
            }
            // The live list, the mutator's current page of each class, and slack for
            // partly used pages that the sweep keeps.
            assert!(
                worst <= 64,
                "{kind}: up to {worst} of {heap_pages} pages in use after a collection, \
                 with a live set of one page"
            );
            assert!(
                garbage_bytes > 8 * heap_pages * PAGE,
                "the test made enough garbage"
            );
            let mut n = m.read_ref(head, 0).expect("head");
            for i in 0..64u64 {
                let o = n.expect("the live list is intact");
                assert_eq!(read_id(&m, o), Some(i), "{kind}: node {i}");
                n = m.read_ref(o, 0).expect("node");
            }
            let st = heap.stats();
            assert_eq!(
                st.verifier_failures, 0,
                "{kind}: {:?}",
                st.verifier_messages
            );
            eprintln!(
                "{kind}: {} cycles, {garbage_bytes} bytes of garbage in a {heap_pages}-page heap, \
                 at most {worst} pages in use after a collection",
                st.cycles
            );
        },
    );
}

// ---------------------------------------------------------------------------------------
// Errors.

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

// ---------------------------------------------------------------------------------------
// Barrier names.

#[test]
fn barrier_names_round_trip() {
    for kind in BarrierKind::ALL {
        let name = kind.to_string();
        assert_eq!(name, kind.name());
        assert_eq!(name.parse::<BarrierKind>().expect("parse"), kind);
        // Display pads like a string.
        assert_eq!(format!("{kind:>16}"), format!("{:>16}", kind.name()));
    }
    let names: std::collections::HashSet<_> = BarrierKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(names.len(), BarrierKind::ALL.len(), "names are unique");
    for bad in [
        "",
        "cardtable",
        "Card-Table",
        "uffd",
        "uffd-wp ",
        "soft-dirty",
    ] {
        match bad.parse::<BarrierKind>() {
            Err(Error::InvalidArgument(msg)) => {
                for kind in BarrierKind::ALL {
                    assert!(
                        msg.contains(kind.name()),
                        "{bad:?}: {msg:?} does not list {kind}"
                    );
                }
            }
            other => panic!("{bad:?} parsed as {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// No deadlock.

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
            small_heap(BarrierKind::UffdWp, 8 << 20).service_layout(layout),
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
