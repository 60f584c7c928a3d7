//! Every collector failure is an error, never a parked world. Regression tests for what
//! once crashed or hung the collector:
//! - a root naming an object of another heap, or of a heap since dropped: the collector
//!   indexed its mark bitmap with it and panicked in the initial-mark pause, which then
//!   never resumed the world (every mutator parked for good);
//! - any failure inside a pause (planted here, as a collector bug would fail), in the
//!   collector thread or in a marker helper thread: the world must resume, and every
//!   waiting and every later collection must get [`Error::CollectorFailed`];
//! - `--log-cycles` lines written to a stderr that cannot take them: the collector
//!   thread panicked on the first one.
//!
//! Every test runs under a timeout: a parked world fails, it does not hang.

use crate::support;

use barrierlab::internals::Testing;
use barrierlab::{BarrierKind, Error, Heap, HeapConfig, Mutator, ObjRef};

use support::{heap_or_skip, in_fresh_process, with_timeout};

fn assert_stale<T: std::fmt::Debug>(r: barrierlab::Result<T>, obj: ObjRef, what: &str) {
    match r {
        Err(Error::StaleRef(a)) => assert_eq!(a, obj.addr(), "{what}: StaleRef names it"),
        other => panic!("{what}: expected StaleRef({obj:?}), got {other:?}"),
    }
}

/// `Err(CollectorFailed)` whose message has `cause`; anything else panics.
fn assert_failed<T: std::fmt::Debug>(r: barrierlab::Result<T>, cause: &str, what: &str) {
    match r {
        Err(Error::CollectorFailed(msg)) => {
            assert!(
                msg.contains(cause),
                "{what}: the failure names its cause: {msg}"
            )
        }
        other => panic!("{what}: expected CollectorFailed({cause}), got {other:?}"),
    }
}

/// A rooted list of `n` nodes (one slot each), for a collection to keep.
fn rooted_list(m: &mut Mutator, n: usize) -> ObjRef {
    let head = m.alloc(1, 8).expect("alloc");
    m.push_root(head).expect("root");
    let mut tail = head;
    for _ in 1..n {
        let node = m.alloc(1, 8).expect("alloc");
        m.write_ref(tail, 0, Some(node)).expect("store");
        tail = node;
    }
    head
}

fn list_len(m: &Mutator, head: ObjRef) -> usize {
    let (mut n, mut node) = (0, Some(head));
    while let Some(o) = node {
        n += 1;
        node = m.read_ref(o, 0).expect("a live node");
    }
    n
}

#[test]
fn a_root_of_another_heap_or_of_a_dropped_heap_is_refused_and_collection_goes_on() {
    for kind in BarrierKind::ALL {
        let mk = || heap_or_skip(HeapConfig::new().heap_bytes(1 << 20).barrier(kind), "roots");
        let (Some(a), Some(b)) = (mk(), mk()) else {
            continue;
        };
        let Some(dropped) = mk() else { continue };
        with_timeout(60, "foreign-roots", move || {
            // An object of a heap that no longer exists (its mapping is gone).
            let gone = {
                let mut m = dropped.mutator();
                m.alloc(1, 8).expect("alloc")
            };
            drop(dropped);
            let mut ma = a.mutator();
            let mut mb = b.mutator();
            let foreign = ma.alloc(1, 8).expect("alloc");
            let head = rooted_list(&mut mb, 100);
            assert_stale(
                mb.push_root(foreign),
                foreign,
                "push_root of A's object in B",
            );
            assert_stale(
                mb.push_root(gone),
                gone,
                "push_root of a dropped heap's object",
            );
            assert_stale(
                mb.set_root(0, Some(foreign)),
                foreign,
                "set_root to A's object",
            );
            assert_stale(
                mb.set_root(0, Some(gone)),
                gone,
                "set_root to a dropped object",
            );
            assert_eq!(mb.roots_len(), 1, "{kind}: a refused root is not pushed");
            assert_eq!(
                mb.root(0),
                Some(head),
                "{kind}: a refused set_root changes nothing"
            );
            for _ in 0..3 {
                mb.collect().expect("collect");
                ma.collect().expect("collect");
            }
            assert_eq!(list_len(&mb, head), 100, "{kind}: the rooted list survived");
            let stats = b.stats();
            assert_eq!(stats.cycles, 3, "{kind}");
            let stale: usize = stats.cycle_log.iter().map(|c| c.stale_roots).sum();
            assert_eq!(stale, 0, "{kind}: no stale root reached a pause");
        });
    }
}

#[test]
fn a_failed_pause_resumes_the_world_and_fails_every_waiting_and_later_collection() {
    for kind in BarrierKind::ALL {
        // Cycle 1 completes; every pause of cycle 2 fails.
        let cfg = HeapConfig::new()
            .heap_bytes(1 << 20)
            .barrier(kind)
            .testing(Testing {
                fail_in_pause_of_cycle: Some(2),
                ..Testing::default()
            });
        let Some(heap) = heap_or_skip(cfg, "a_failed_pause") else {
            continue;
        };
        let h = heap.clone();
        with_timeout(60, "a_failed_pause", move || {
            // Three threads churn (allocation-triggered cycles, a full heap waiting for
            // room); one of them also collects explicitly. Each must end with
            // CollectorFailed, wherever it was waiting when cycle 2 failed.
            let start = std::sync::Arc::new(std::sync::Barrier::new(3));
            let threads: Vec<_> = (0..3)
                .map(|t| {
                    let (h, start) = (h.clone(), start.clone());
                    std::thread::spawn(move || {
                        let mut m = h.mutator();
                        let head = rooted_list(&mut m, 50);
                        m.blocking(|| start.wait());
                        let failure = loop {
                            if let Err(e) = m.alloc(2, 40) {
                                break e;
                            }
                            if t == 0
                                && let Err(e) = m.collect()
                            {
                                break e;
                            }
                        };
                        assert_failed(Err::<(), _>(failure), "planted", &format!("thread {t}"));
                        // The world runs: the mutator's objects are all still there.
                        assert_eq!(list_len(&m, head), 50, "{kind} thread {t}");
                        assert_failed(m.collect(), "planted", "a later collection");
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("a mutator thread");
            }
            assert_failed(h.collect(), "planted", "Heap::collect after the failure");
            let mut m = h.mutator();
            assert_failed(m.collect(), "planted", "a new mutator's collection");
        });
        assert_eq!(
            heap.stats().cycles,
            1,
            "{kind}: cycle 1 completed, cycle 2 failed"
        );
    }
}

/// A marker helper that fails in a stop-the-world pause: the pause ends, the collection
/// fails with the helper's message, and the heap's mutators go on.
#[test]
fn a_failed_marker_thread_fails_the_collection_and_resumes_the_world() {
    let cfg = HeapConfig::new()
        .heap_bytes(8 << 20)
        .barrier(BarrierKind::None)
        .marker_threads(2)
        .testing(Testing {
            fail_in_marker: true,
            ..Testing::default()
        });
    let heap = Heap::new(cfg).expect("heap");
    with_timeout(60, "a_failed_marker_thread", move || {
        let mut m = heap.mutator();
        // A tree of 2^15 nodes: enough grey objects in the pause's mark for helpers to
        // join (a list would never give them a share).
        let mut level = vec![m.alloc(2, 0).expect("leaf")];
        let root = m.push_root(level[0]).expect("root");
        for _ in 0..15 {
            let mut next = Vec::with_capacity(level.len() * 2);
            for &parent in &level {
                for slot in 0..2 {
                    let child = m.alloc(2, 0).expect("node");
                    m.write_ref(parent, slot, Some(child)).expect("store");
                    next.push(child);
                }
            }
            level = next;
        }
        assert_failed(m.collect(), "a marker thread failed", "the collection");
        // The world runs again: this mutator allocates and reads.
        let o = m.alloc(1, 8).expect("allocation after the failure");
        assert_eq!(m.read_ref(o, 0).expect("read"), None);
        assert!(m.root(root).is_some());
        assert_failed(
            heap.collect(),
            "a marker thread failed",
            "a later collection",
        );
    });
}

/// The library half of `--log-cycles` on a stderr that takes nothing (`/dev/full`, in a
/// fresh process of this test binary so that no other test's output is lost): every
/// collection completes, and the lines lost are counted.
#[test]
fn log_lines_that_cannot_be_written_are_counted_and_collection_goes_on() {
    let outcome = in_fresh_process(test_name!(), || {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .map_err(|e| format!("open /dev/full: {e}"))?;
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto this process's own stderr descriptor; no memory is passed.
        if unsafe { libc::dup2(full.as_raw_fd(), 2) } != 2 {
            return Err(format!("dup2: {}", std::io::Error::last_os_error()));
        }
        let heap = Heap::new(
            HeapConfig::new()
                .heap_bytes(1 << 20)
                .barrier(BarrierKind::CardTable)
                .log_cycles(true),
        )
        .map_err(|e| e.to_string())?;
        let mut m = heap.mutator();
        for _ in 0..3 {
            m.collect().map_err(|e| e.to_string())?;
        }
        let s = heap.stats();
        // Two pause lines and one cycle line per cycle.
        if s.cycles != 3 || s.log_lines_lost != 9 {
            return Err(format!(
                "{} cycles, {} log lines lost (expected 3 and 9)",
                s.cycles, s.log_lines_lost
            ));
        }
        Ok(format!("{} lines lost", s.log_lines_lost))
    });
    outcome.assert_ok();
}
