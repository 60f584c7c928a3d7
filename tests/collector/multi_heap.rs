//! Several heaps on several threads never wait for each other. Regression tests for
//! deadlocks once seen with two threads that each hold a mutator of two heaps:
//! - both allocating, so that both heaps collect when their allocation asks for it:
//!   each thread parked at one heap's safepoint while its mutator of the other heap
//!   still counted as running, so each heap's pause waited for the other thread for
//!   ever (on every barrier);
//! - the same with explicit collections mixed in (`Heap::collect`, `Mutator::collect`),
//!   and with a mutator made while the other heap pauses.
//!
//! (Each thread collecting a different heap explicitly is in `robustness.rs`.) Every test
//! runs under a timeout: a deadlock fails, it does not hang.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use barrierlab::{BarrierKind, Mutator, ObjRef};

use support::{two_heaps_or_skip, with_timeout};

const LIST: usize = 200;

/// A rooted list of [`LIST`] nodes (see `support::build_index_list`).
fn build_list(m: &mut Mutator) -> usize {
    support::build_index_list(m, LIST)
}

/// Walks the list from `head` (see `support::check_index_list`).
fn check_list(m: &Mutator, head: ObjRef, what: &str) {
    support::check_index_list(m, head, LIST, what);
}

/// How a churning thread asks for collections besides allocating.
#[derive(Clone, Copy, Debug)]
enum Extra {
    /// Nothing: every collection is triggered by an allocation.
    Nothing,
    /// Now and then `Heap::collect` of one heap and `Mutator::collect` of the other.
    Explicit,
    /// Now and then a new, short-lived mutator of each heap.
    NewMutators,
}

/// Two heaps of 1 MiB; two threads, each with a mutator of both, allocate garbage in
/// both (a few MiB each, so that each heap collects many times because its allocation
/// asks for it), plus `extra[t]`. Both rooted lists survive, and each heap collected.
fn two_threads_two_heaps(kind: BarrierKind, extra: [Extra; 2]) {
    let Some((a, b)) = two_heaps_or_skip(kind, 1 << 20, "two_threads_two_heaps") else {
        return;
    };
    let what = format!("{kind} {extra:?}");
    let (a2, b2) = (a.clone(), b.clone());
    with_timeout(60, &what.clone(), move || {
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let (a, b, what) = (a2.clone(), b2.clone(), what.clone());
                std::thread::spawn(move || {
                    // Thread 1 makes its mutators in the other order.
                    let (mut ma, mut mb) = if t == 0 {
                        let ma = a.mutator();
                        (ma, b.mutator())
                    } else {
                        let mb = b.mutator();
                        (a.mutator(), mb)
                    };
                    let ra = build_list(&mut ma);
                    let rb = build_list(&mut mb);
                    for i in 0..40_000u32 {
                        ma.alloc(2, 40)
                            .unwrap_or_else(|e| panic!("{what} thread {t}: A: {e}"));
                        mb.alloc(2, 40)
                            .unwrap_or_else(|e| panic!("{what} thread {t}: B: {e}"));
                        if i % 4_000 != 3_999 {
                            continue;
                        }
                        match extra[t] {
                            Extra::Nothing => {}
                            Extra::Explicit => {
                                a.collect().expect("Heap::collect of A");
                                mb.collect().expect("Mutator::collect of B");
                            }
                            Extra::NewMutators => {
                                let mut na = a.mutator();
                                let mut nb = b.mutator();
                                na.alloc(0, 100).expect("a new mutator of A allocates");
                                nb.alloc(0, 100).expect("a new mutator of B allocates");
                            }
                        }
                    }
                    check_list(&ma, ma.root(ra).expect("root"), "A");
                    check_list(&mb, mb.root(rb).expect("root"), "B");
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a mutator thread failed");
        }
    });
    // 2 × 40,000 objects of 56 bytes each (4.5 MiB) in a 1 MiB heap.
    let (ca, cb) = (a.stats().cycles, b.stats().cycles);
    assert!(ca >= 3 && cb >= 3, "{kind}: cycles {ca} and {cb}");
}

#[test]
fn two_threads_allocating_in_two_heaps_do_not_deadlock() {
    for kind in BarrierKind::ALL {
        two_threads_two_heaps(kind, [Extra::Nothing, Extra::Nothing]);
    }
}

#[test]
fn allocation_triggered_and_explicit_collections_of_two_heaps_mix() {
    for kind in BarrierKind::ALL {
        two_threads_two_heaps(kind, [Extra::Nothing, Extra::Explicit]);
        two_threads_two_heaps(kind, [Extra::Explicit, Extra::Explicit]);
    }
}

#[test]
fn a_mutator_made_while_another_heap_pauses_does_not_deadlock() {
    for kind in BarrierKind::ALL {
        two_threads_two_heaps(kind, [Extra::NewMutators, Extra::Nothing]);
        two_threads_two_heaps(kind, [Extra::NewMutators, Extra::Explicit]);
    }
}

/// A third thread with no mutator collects both heaps in a loop while the two threads
/// allocate in both.
#[test]
fn a_collecting_bystander_and_two_allocating_threads_do_not_deadlock() {
    for kind in BarrierKind::ALL {
        let Some((a, b)) = two_heaps_or_skip(kind, 1 << 20, "bystander") else {
            continue;
        };
        with_timeout(60, "bystander", move || {
            let stop = Arc::new(AtomicBool::new(false));
            // Rounds of the bystander (both heaps collected) completed so far.
            let rounds = Arc::new(AtomicU64::new(0));
            let bystander = {
                let (a, b, stop, rounds) = (a.clone(), b.clone(), stop.clone(), rounds.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        a.collect().expect("collect A");
                        b.collect().expect("collect B");
                        rounds.fetch_add(1, Ordering::AcqRel);
                    }
                })
            };
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (a, b, rounds) = (a.clone(), b.clone(), rounds.clone());
                    std::thread::spawn(move || {
                        let (mut ma, mut mb) = (a.mutator(), b.mutator());
                        let ra = build_list(&mut ma);
                        let rb = build_list(&mut mb);
                        // At least 20,000 allocations in each heap, and for as long
                        // as the bystander has not completed two rounds while this
                        // thread allocates (a deadlock fails the timeout).
                        let mut i = 0;
                        while i < 20_000 || rounds.load(Ordering::Acquire) < 2 {
                            ma.alloc(2, 40).expect("alloc A");
                            mb.alloc(2, 40).expect("alloc B");
                            i += 1;
                        }
                        check_list(&ma, ma.root(ra).expect("root"), "A");
                        check_list(&mb, mb.root(rb).expect("root"), "B");
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("a mutator thread failed");
            }
            stop.store(true, Ordering::Release);
            bystander.join().expect("the bystander");
        });
    }
}
