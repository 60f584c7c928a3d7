//! Size classes, large objects, and memory made reusable by a sweep.

use barrierlab::ObjRef;
use barrierlab::heap::size_class::{CLASS_SIZES, MAX_SMALL, class_for};

use super::{PAGE, assert_stale, check_filled, fill, for_every_barrier, small_heap};
use crate::support::read_id;

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
