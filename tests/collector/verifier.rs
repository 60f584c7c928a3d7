//! The verifier catches a planted barrier bug: with
//! [`Testing::drop_every_nth_dirty`] a tracker loses every third dirty granule it
//! hands over, and the verifier (a full re-trace at every remark) must report tri-colour
//! violations; without the bug, the same workload with the same seed must give none.
//!
//! The workload makes lost writes matter. A long linked list is rooted at its head; each
//! node's second slot holds a small "cargo" object. While the collector traces the list
//! (depth first, so the head is black long before the tail is reached), the mutator keeps
//! swapping the cargo of a node near the head with the cargo of a node near the tail:
//! IF the tail's cargo has not been traced yet AND the store into the (black) head node is
//! not rescanned, THEN that cargo is reachable only from a black object and stays white:
//! exactly the write that an incremental-update barrier exists to record. Collections run
//! back to back with several pre-clean rounds, so the swaps land in concurrent marking,
//! pre-cleaning and between cycles alike.
//!
//! With the bug the collector frees reachable cargo, so the mutator meets dangling
//! references; it replaces them with fresh cargo. Every object has the same shape (and
//! size class), so a dangling reference always points at the start of a cell of that
//! class, which the collector handles (a free cell's header is zero).

use crate::support::{self, barrier_config};

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use barrierlab::internals::Testing;
use barrierlab::{BarrierKind, HeapConfig, ObjRef, ServiceLayout};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use support::with_timeout;
use support::{Soak, base_seed, debug_divisor, heap_or_skip, splitmix};

/// Every object: slot 0 = next, slot 1 = cargo; 16 payload bytes (a 48-byte cell).
const NREFS: usize = 2;
const PAYLOAD: usize = 16;
/// Nodes in the list (a release build; a debug build uses fewer).
const NODES: usize = 160_000;
/// Nodes at the tail whose cargo is swapped.
const END: usize = 4_096;
/// Cycles the buggy run may take to be caught.
const MAX_CYCLES: u64 = 200;
/// Cycles the bug-free run lasts at least.
const MIN_CLEAN_CYCLES: u64 = 20;

/// One run of the workload.
#[derive(Debug, Clone)]
struct Workload {
    kind: BarrierKind,
    layout: ServiceLayout,
    /// The planted bug.
    bug: Option<usize>,
    seed: u64,
    /// Nodes at the head whose cargo is swapped.
    head: usize,
    /// Pre-clean rounds (0: everything is left to remark).
    preclean_rounds: usize,
    /// Extra mutator threads that only dirty pages (payload stores over 100 pages), to
    /// keep the fault path and the scheduler busy.
    writers: usize,
    /// Each swap also moves a tail node's cargo into a new holder object, rooted, and
    /// gives the tail node fresh cargo: the old cargo is then reachable only through an
    /// object allocated during the cycle, black, whose page the barrier must rescan
    /// (the frontier rule).
    adopt: bool,
    /// Plant the frontier bug ([`Testing::forget_hand_outs`]).
    forget_hand_outs: bool,
    /// Plant the kept-page bug ([`Testing::deny_marks`]).
    deny_marks: bool,
    /// Arms keep young pages (`HeapConfig::keep_young_pages`, off by default).
    keep_young: bool,
    /// Bytes of unrooted objects allocated before the list: the first sweep frees them
    /// as one run of pages at the bottom of the heap, which later arms leave open and
    /// the allocator then hands out.
    garbage_first: usize,
    /// Stop after this many cycles…
    cycles: u64,
    /// …or after this long…
    time: Duration,
    /// …or at the first verifier failure.
    until_caught: bool,
}

impl Workload {
    fn new(kind: BarrierKind, bug: Option<usize>, seed: u64) -> Workload {
        Workload {
            kind,
            layout: ServiceLayout::default(),
            bug,
            seed,
            head: 4_096,
            preclean_rounds: 4,
            writers: 0,
            adopt: false,
            forget_hand_outs: false,
            deny_marks: false,
            keep_young: false,
            garbage_first: 0,
            cycles: MAX_CYCLES,
            time: Duration::from_secs(120),
            until_caught: false,
        }
    }
}

/// What one run saw.
#[derive(Debug)]
struct Outcome {
    cycles: u64,
    verifier_failures: u64,
    messages: Vec<String>,
    swaps: u64,
    replaced: u64,
    elapsed: Duration,
    /// Free pages the tracker's arms left open (`TrackerStats::opened_at_arm`).
    opened_at_arm: u64,
    /// Young pages the tracker's arms kept writable (`TrackerStats::kept_at_arm`).
    kept_at_arm: u64,
}

/// Runs the workload on a fresh heap. `None` if the barrier is unavailable.
fn run(w: Workload) -> Option<Outcome> {
    let what = format!("verifier [{}, drop every {:?}]", w.kind, w.bug);
    let heap = heap_or_skip(
        HeapConfig::new()
            .heap_bytes(32 << 20)
            .barrier(barrier_config(w.kind, w.layout, false))
            .trigger(0.95)
            .max_preclean_rounds(w.preclean_rounds)
            .preclean_threshold(0)
            .verify(true)
            .keep_young_pages(w.keep_young)
            .testing(Testing {
                drop_every_nth_dirty: w.bug,
                forget_hand_outs: w.forget_hand_outs,
                deny_marks: w.deny_marks,
                ..Testing::default()
            }),
        &what,
    )?;
    let nodes = NODES / debug_divisor() as usize;
    let h = heap.clone();
    let t0 = Instant::now();
    let limit = w.time + Duration::from_secs(120);
    let (swaps, replaced) = with_timeout(limit.as_secs(), &what, move || {
        let stop = AtomicBool::new(false);
        let ready = AtomicBool::new(false);
        std::thread::scope(|s| {
            let mutator = s.spawn(|| {
                let _stop_on_panic = StopOnPanic(&stop);
                let mut m = h.mutator();
                let mut rng = StdRng::seed_from_u64(w.seed);
                for _ in 0..w.garbage_first / (8 * (2 + NREFS) + PAYLOAD) {
                    m.alloc(NREFS, PAYLOAD).expect("alloc garbage");
                }
                // The list, built from its head (rooted) onwards; `list` only names the
                // nodes, which stay reachable: their `next` slots are never written again.
                let head = m.alloc(NREFS, PAYLOAD).expect("alloc head");
                m.push_root(head).expect("root");
                let mut list: Vec<ObjRef> = Vec::with_capacity(nodes);
                list.push(head);
                for i in 1..nodes {
                    let n = m.alloc(NREFS, PAYLOAD).expect("alloc node");
                    m.write_ref(list[i - 1], 0, Some(n)).expect("link node");
                    list.push(n);
                }
                // Cargo on the tail nodes; the head nodes start empty.
                for &t in &list[nodes - END..] {
                    let c = m.alloc(NREFS, PAYLOAD).expect("alloc cargo");
                    m.write_ref(t, 1, Some(c)).expect("attach cargo");
                }
                // The holder of adopted cargo (slot 1), replaced by a new one each time.
                let holder_root = m.push_root(head).expect("root");
                ready.store(true, Ordering::Release);
                let (mut swaps, mut replaced) = (0u64, 0u64);
                while !stop.load(Ordering::Acquire) {
                    let hn = list[rng.random_range(0..w.head)];
                    let tn = list[rng.random_range(nodes - END..nodes)];
                    // Cargo freed by the planted bug is replaced in place at once (the
                    // new object is never held only in a local across `alloc`, a
                    // safepoint; the nodes themselves stay reachable through the list).
                    let mut cargo = [None; 2];
                    for (k, node) in [hn, tn].into_iter().enumerate() {
                        let c = m.read_ref(node, 1).expect("list nodes stay live");
                        cargo[k] = match c {
                            Some(x) if !h.is_live(x) => {
                                let fresh = m.alloc(NREFS, PAYLOAD).expect("alloc cargo");
                                m.write_ref(node, 1, Some(fresh)).expect("replace cargo");
                                replaced += 1;
                                Some(fresh)
                            }
                            c => c,
                        };
                    }
                    let [a, b] = cargo;
                    // The swap: the tail's cargo into the head node first (the store that
                    // must be recorded), then the head's cargo into the tail node. A
                    // failure means the bug freed a cell under us: skip this swap.
                    if m.write_ref(hn, 1, b).is_ok() && m.write_ref(tn, 1, a).is_ok() {
                        swaps += 1;
                    }
                    if w.adopt {
                        // The store into the new holder is the one the frontier rule
                        // must record; the fresh cargo replaces the adopted one in the
                        // tail node, so that only the holder reaches it.
                        let tn = list[rng.random_range(nodes - END..nodes)];
                        let holder = m.alloc(NREFS, PAYLOAD).expect("alloc holder");
                        m.set_root(holder_root, Some(holder)).expect("root holder");
                        let fresh = m.alloc(NREFS, PAYLOAD).expect("alloc cargo");
                        let adopted = m.read_ref(tn, 1).expect("list nodes stay live");
                        let adopted = adopted.filter(|&c| h.is_live(c));
                        if m.write_ref(holder, 1, adopted).is_ok()
                            && m.write_ref(tn, 1, Some(fresh)).is_ok()
                        {
                            swaps += 1;
                        }
                    }
                    if swaps % 4 == 0 {
                        m.safepoint();
                    }
                }
                (swaps, replaced)
            });
            for k in 0..w.writers {
                let (h, stop) = (&h, &stop);
                s.spawn(move || {
                    let _stop_on_panic = StopOnPanic(stop);
                    let mut m = h.mutator();
                    let objs: Vec<ObjRef> = (0..200)
                        .map(|_| {
                            let o = m.alloc(0, 2_000).expect("alloc");
                            m.push_root(o).expect("root");
                            o
                        })
                        .collect();
                    let mut i = k;
                    while !stop.load(Ordering::Relaxed) {
                        m.write_bytes(objs[i % objs.len()], 0, &[1; 8])
                            .expect("store");
                        i += 7;
                        if i % 16 == 0 {
                            m.safepoint();
                        }
                    }
                });
            }
            let _stop_on_panic = StopOnPanic(&stop);
            while !ready.load(Ordering::Acquire) && !mutator.is_finished() {
                std::thread::sleep(Duration::from_millis(1));
            }
            let start = h.stats().cycles;
            loop {
                h.collect().expect("collect");
                let st = h.stats();
                if st.cycles - start >= w.cycles
                    || t0.elapsed() >= w.time
                    || (w.until_caught && st.verifier_failures > 0)
                {
                    break;
                }
            }
            stop.store(true, Ordering::Release);
            match mutator.join() {
                Ok(r) => r,
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    });
    let st = heap.stats();
    Some(Outcome {
        cycles: st.cycles,
        verifier_failures: st.verifier_failures,
        messages: st.verifier_messages,
        swaps,
        replaced,
        elapsed: t0.elapsed(),
        opened_at_arm: st.tracker.opened_at_arm,
        kept_at_arm: st.tracker.kept_at_arm,
    })
}

/// Stops the other side of a run when one side panics.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}

fn planted_bug_is_caught(kind: BarrierKind) {
    let base = base_seed(&format!("verifier_catches_planted_bug[{kind}]"));
    let seed = splitmix(base ^ kind as u64);
    let ctx = format!("[{kind}, BARRIERLAB_SEED={base}]");
    let Some(buggy) = run(Workload {
        until_caught: true,
        ..Workload::new(kind, Some(3), seed)
    }) else {
        return;
    };
    eprintln!(
        "{kind}: with the bug: {} verifier failures after {} cycles ({} swaps, {} cargo \
         replaced); first: {:?}",
        buggy.verifier_failures,
        buggy.cycles,
        buggy.swaps,
        buggy.replaced,
        buggy.messages.first()
    );
    assert!(
        buggy.verifier_failures > 0,
        "{ctx}: the verifier did not catch a tracker that drops every 3rd dirty granule in \
         {} cycles ({} swaps)",
        buggy.cycles,
        buggy.swaps
    );
    let clean = run(Workload {
        cycles: buggy.cycles.max(MIN_CLEAN_CYCLES),
        ..Workload::new(kind, None, seed)
    })
    .expect("the barrier was available a moment ago");
    eprintln!(
        "{kind}: without the bug: {} verifier failures after {} cycles ({} swaps)",
        clean.verifier_failures, clean.cycles, clean.swaps
    );
    assert_eq!(
        clean.verifier_failures, 0,
        "{ctx}: the verifier reported violations without the planted bug: {:?}",
        clean.messages
    );
    assert_eq!(
        clean.replaced, 0,
        "{ctx}: cargo was freed without the planted bug"
    );
    assert!(clean.swaps > 0, "{ctx}: the mutator made no swap");
}

#[test]
fn verifier_catches_planted_bug_card_table() {
    planted_bug_is_caught(BarrierKind::CardTable);
}

#[test]
fn verifier_catches_planted_bug_uffd_wp() {
    planted_bug_is_caught(BarrierKind::UffdWp);
}

/// The other concurrent barriers, once they are built (skipped until then).
#[test]
fn verifier_catches_planted_bug_other_page_trackers() {
    for kind in [
        BarrierKind::UffdWpAsync,
        BarrierKind::UffdWpSigbus,
        BarrierKind::Mprotect,
    ] {
        planted_bug_is_caught(kind);
    }
}

/// How a planted heap bug is looked for: fresh heaps of at most `cycles` cycles each, up
/// to `heaps` of them, until the verifier catches it.
struct Tries {
    heaps: u64,
    cycles: u64,
}

/// A page tracker's run of the adopting workload with a planted bug (`plant(w, true)`)
/// until the verifier catches it (as `tries` says), then the same run without it
/// (`plant(w, false)`) for as many cycles (at least [`MIN_CLEAN_CYCLES`]), which must be
/// clean. Both outcomes, printed with `what` (the bug); `None` if the barrier is
/// unavailable.
fn caught_then_clean(
    test: &str,
    kind: BarrierKind,
    what: &str,
    tries: Tries,
    plant: impl Fn(Workload, bool) -> Workload,
) -> Option<(Outcome, Outcome)> {
    let base = base_seed(&format!("{test}[{kind}]"));
    let ctx = format!("[{kind}, BARRIERLAB_SEED={base}]");
    let workload = |bug, heap: u64| {
        let w = Workload {
            adopt: true,
            ..Workload::new(kind, None, splitmix(base ^ kind as u64 ^ heap))
        };
        plant(w, bug)
    };
    let mut heap = 0;
    let buggy = loop {
        let o = run(Workload {
            until_caught: true,
            cycles: tries.cycles,
            ..workload(true, heap)
        })?;
        heap += 1;
        if o.verifier_failures > 0 || heap == tries.heaps {
            break o;
        }
    };
    eprintln!(
        "{kind}: {what}: {} verifier failures after {} cycles of heap {heap} ({} swaps, {} \
         pages left open and {} kept at arm); first: {:?}",
        buggy.verifier_failures,
        buggy.cycles,
        buggy.swaps,
        buggy.opened_at_arm,
        buggy.kept_at_arm,
        buggy.messages.first()
    );
    assert!(
        buggy.verifier_failures > 0,
        "{ctx}: the verifier did not catch {what} in {heap} heaps of up to {} cycles (the \
         last: {} swaps)",
        tries.cycles,
        buggy.swaps
    );
    let clean = run(Workload {
        cycles: buggy.cycles.max(MIN_CLEAN_CYCLES),
        ..workload(false, heap - 1)
    })
    .expect("the barrier was available a moment ago");
    eprintln!(
        "{kind}: without the bug: {} cycles, {} swaps, {} pages kept at arm",
        clean.cycles, clean.swaps, clean.kept_at_arm
    );
    assert_eq!(
        clean.verifier_failures, 0,
        "{ctx}: violations without {what}: {:?}",
        clean.messages
    );
    assert!(clean.swaps > 0, "{ctx}: the mutator made no swap");
    Some((buggy, clean))
}

/// The frontier rule: with pages handed to the allocator unrecorded
/// ([`Testing::forget_hand_outs`]), a page tracker never sees the stores into objects
/// allocated during a cycle, and the cargo that only such an object reaches is left
/// white; the verifier must say so. Without the bug, the same run is clean. Not for
/// `uffd-wp-async`, whose record is the protection itself (a page made writable reads as
/// written), nor the card table, which hands nothing out.
#[test]
fn verifier_catches_a_heap_that_forgets_the_frontier() {
    for kind in [
        BarrierKind::UffdWp,
        BarrierKind::UffdWpSigbus,
        BarrierKind::Mprotect,
    ] {
        let what = "a heap that hands pages out unrecorded";
        let tries = Tries {
            heaps: 1,
            cycles: MAX_CYCLES,
        };
        let test = "verifier_catches_the_frontier_bug";
        caught_then_clean(test, kind, what, tries, |w, bug| Workload {
            forget_hand_outs: bug,
            ..w
        });
    }
}

/// The frontier rule where a cycle's new objects land in free pages its arm left open
/// (`DirtyTracker::arm_with_free`): recorded at hand-out with no protection change, and
/// never protected while the mutator fills them. The run is the frontier test's without
/// the bug, over a heap whose bottom 8 MiB the first sweep frees in one run; the arms
/// must have left pages open, and the verifier must find nothing.
#[test]
fn the_frontier_rule_holds_in_free_pages_left_open_at_arm() {
    for kind in [
        BarrierKind::UffdWp,
        BarrierKind::UffdWpSigbus,
        BarrierKind::Mprotect,
    ] {
        let base = base_seed(&format!("the_frontier_rule_in_open_pages[{kind}]"));
        let ctx = format!("[{kind}, BARRIERLAB_SEED={base}]");
        let Some(clean) = run(Workload {
            adopt: true,
            garbage_first: 8 << 20,
            cycles: MIN_CLEAN_CYCLES,
            ..Workload::new(kind, None, splitmix(base ^ kind as u64))
        }) else {
            continue;
        };
        eprintln!(
            "{kind}: {} cycles, {} swaps, {} pages left open at arm",
            clean.cycles, clean.swaps, clean.opened_at_arm
        );
        assert!(clean.opened_at_arm > 0, "{ctx}: no arm left a page open");
        assert_eq!(
            clean.verifier_failures, 0,
            "{ctx}: violations in pages left open at arm: {:?}",
            clean.messages
        );
        assert!(clean.swaps > 0, "{ctx}: the mutator made no swap");
    }
}

/// The young pages an arm keeps writable (`DirtyTracker::arm_with_young`) are safe only
/// because every harvest asks which of them hold a marked object and takes those: with
/// the collector answering "none" ([`Testing::deny_marks`]), the list the mutator built
/// before the first cycle (young, ~2,000 pages) is never harvested, so the swaps into its
/// head nodes after the mark scanned them are lost, and the verifier must say so.
/// Without the bug the same run is clean, and its arms kept young pages. Both runs ask for
/// the keeping (`HeapConfig::keep_young_pages`, off by default). (Not for
/// `uffd-wp-async`, which keeps none.)
#[test]
fn verifier_catches_a_collector_that_denies_marks_on_kept_pages() {
    for kind in [
        BarrierKind::UffdWp,
        BarrierKind::UffdWpSigbus,
        BarrierKind::Mprotect,
    ] {
        let what = "a collector that denies its marks";
        let test = "verifier_catches_denied_marks";
        let plant = |w, bug| Workload {
            deny_marks: bug,
            keep_young: true,
            ..w
        };
        // Only the first cycle finds the list young; whether the mutator swaps between
        // the mark's scan of the head and remark is up to the scheduler (on a machine
        // busy with other tests, often not): fresh heaps until one does.
        let tries = Tries {
            heaps: 10,
            cycles: 3,
        };
        let Some((buggy, clean)) = caught_then_clean(test, kind, what, tries, plant) else {
            continue;
        };
        assert!(buggy.kept_at_arm > 0, "[{kind}]: no arm kept a young page");
        assert!(clean.kept_at_arm > 0, "[{kind}]: no arm kept a young page");
    }
}

/// `uffd-wp` with a fault-service thread: a fault served across the end of one cycle
/// and the start of the next must not leave its page unprotected and unrecorded.
///
/// The service records a page, then unprotects it (holding its lock, which harvests take,
/// but `arm` does not). A mutator that faults after the remark pause and before the
/// disarm is woken by the disarm's whole-range unprotect; if the service thread is
/// preempted between recording that fault's page and unprotecting it, the collector can
/// finish the cycle, sweep, and arm the next one (clearing the record, protecting every
/// page) in between. The late unprotect then leaves the page writable, unrecorded, for
/// the whole next cycle: its writes are lost to the barrier. Busy writer threads make the
/// preemption more likely; pre-cleaning is off (a pre-clean that re-protects the whole
/// range hides the loss); the verifier reports the resulting black-to-white edges. Seen in
/// the shadow-graph stress test under load as a freed reachable object and as verifier
/// failures; with a delay injected between the record and the unprotect it fails at once.
///
/// Probabilistic: it needs the service thread preempted inside a window of a few
/// microseconds, so on an idle machine it may pass with the bug (a loaded one fails it
/// within seconds to minutes); `BARRIERLAB_SOAK=<n>s` runs each layout for `n` seconds.
/// Fixed: `UffdWpTracker::arm` takes the service lock; this stays as a regression check.
#[test]
fn uffd_wp_arm_does_not_race_the_fault_service() {
    let base = base_seed("uffd_wp_arm_does_not_race_the_fault_service");
    let time = match Soak::from_env() {
        Soak::For(d) => d,
        _ => Duration::from_secs(4),
    };
    for layout in [ServiceLayout::Thread, ServiceLayout::SpinThread] {
        let Some(o) = run(Workload {
            layout,
            head: 256,
            preclean_rounds: 0,
            writers: 3,
            cycles: u64::MAX,
            time,
            until_caught: true,
            ..Workload::new(BarrierKind::UffdWp, None, splitmix(base))
        }) else {
            return;
        };
        eprintln!(
            "uffd-wp ({}): {} cycles in {:.2?}, {} verifier failures",
            layout.name(),
            o.cycles,
            o.elapsed,
            o.verifier_failures
        );
        assert_eq!(
            o.verifier_failures,
            0,
            "[uffd-wp, {} layout, BARRIERLAB_SEED={base}]: writes lost after {} cycles \
             ({:.2?}): {:?}",
            layout.name(),
            o.cycles,
            o.elapsed,
            o.messages
        );
    }
}
