//! The marker helpers in a concurrent mark: a mutator that finds the heap full waits for
//! the cycle, and the helpers then finish the marking beside it (the collector's
//! `Marker::drain`). Nothing reachable may be lost by it.

use barrierlab::{BarrierKind, ObjRef};

use super::for_every_barrier;

/// Children per tree node: a wide tree keeps many grey objects on the stack to share.
pub(super) const FANOUT: usize = 4;
/// Tree depth: 4^0 + … + 4^9 = 349,525 nodes (about 16 MiB).
const DEPTH: u32 = 9;
/// Cycles the mutator allocates through before it gives up waiting for a helped drain.
const MOST_CYCLES: u64 = 60;
/// Cycles it allocates through in any case (those after a helped one are verified too).
const LEAST_CYCLES: u64 = 8;

fn build(m: &mut barrierlab::Mutator, depth: u32, next_id: &mut u64) -> ObjRef {
    let node = m.alloc(FANOUT, 8).expect("node");
    m.write_payload(node, 0, *next_id).expect("id");
    *next_id += 1;
    if depth > 0 {
        // Rooted while its children are built: they allocate, and a cycle may run (the
        // collector does not move objects, so `node` stays valid).
        m.push_root(node).expect("root");
        for i in 0..FANOUT {
            let child = build(m, depth - 1, next_id);
            m.write_ref(node, i, Some(child)).expect("link");
        }
        m.pop_root();
    }
    node
}

/// Sums the ids of the tree under `node` and counts its nodes.
fn walk(m: &barrierlab::Mutator, node: ObjRef) -> (u64, u64) {
    let (mut sum, mut count) = (0, 0);
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        sum += m.read_payload::<u64>(n, 0).expect("live node");
        count += 1;
        for i in 0..FANOUT {
            if let Some(c) = m.read_ref(n, i).expect("slot") {
                stack.push(c);
            }
        }
    }
    (sum, count)
}

/// A tree of [`DEPTH`] levels, built and rooted, with what a walk of it must find.
pub(super) struct RootedTree {
    /// Its root slot.
    pub(super) root: usize,
    expected: (u64, u64),
}

impl RootedTree {
    pub(super) fn build(m: &mut barrierlab::Mutator) -> RootedTree {
        let mut ids = 0;
        let tree = build(m, DEPTH, &mut ids);
        let root = m.push_root(tree).expect("root");
        let nodes = (FANOUT.pow(DEPTH + 1) - 1) / (FANOUT - 1);
        RootedTree {
            root,
            expected: (ids * (ids - 1) / 2, nodes as u64),
        }
    }

    /// Checks that every node is still there with its id, and that the verifier found
    /// nothing.
    pub(super) fn check(&self, heap: &barrierlab::Heap, m: &barrierlab::Mutator) {
        let kind = heap.barrier();
        let tree = m.root(self.root).expect("rooted");
        assert_eq!(
            walk(m, tree),
            self.expected,
            "{kind}: the tree after the cycles"
        );
        let st = heap.stats();
        assert_eq!(
            st.verifier_failures, 0,
            "{kind}: {:?}",
            st.verifier_messages
        );
    }
}

#[test]
fn a_mutator_waiting_for_room_is_helped_and_nothing_reachable_is_lost() {
    for_every_barrier(
        "a_mutator_waiting_for_room_is_helped_and_nothing_reachable_is_lost",
        |k| {
            barrierlab::HeapConfig::new()
                .heap_bytes(40 << 20)
                .barrier(k)
                .marker_threads(2)
                .verify(true)
        },
        |heap| {
            let kind = heap.barrier();
            let mut m = heap.mutator();
            let tree = RootedTree::build(&mut m);
            let first = heap.stats().cycles;
            let helped = |heap: &barrierlab::Heap| -> u32 {
                heap.stats().cycle_log.iter().map(|c| c.helped_drains).sum()
            };
            // Garbage as fast as it allocates: the heap fills before the mark ends. At
            // least a few cycles, and on until one was helped.
            loop {
                let n = heap.stats().cycles - first;
                let waiting = kind != BarrierKind::None && helped(&heap) == 0;
                if n >= MOST_CYCLES || (n >= LEAST_CYCLES && !waiting) {
                    break;
                }
                for _ in 0..4096 {
                    m.alloc(2, 16).expect("garbage");
                }
            }
            tree.check(&heap, &m);
            let st = heap.stats();
            if kind == BarrierKind::None {
                assert_eq!(helped(&heap), 0, "{kind}: it marks in pauses only");
            } else {
                assert!(
                    helped(&heap) > 0,
                    "{kind}: no concurrent drain was helped in {} cycles ({} allocation stalls)",
                    st.cycles - first,
                    st.allocation_stalls.len()
                );
            }
        },
    );
}
