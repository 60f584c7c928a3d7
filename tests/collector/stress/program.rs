//! One mutator thread's random program, checked against its shadow of the heap.

use barrierlab::{Heap, Mutator, ObjRef};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::{MAX_ROOTS, WALK_STEPS};
use crate::support::shadow::{self, DeadCheck, Node, Program as ShadowProgram, Shadow};

/// This test's counters beside the shadow programs' common ones.
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct Live {
    /// The most reachable objects seen at a comparison (the largest over threads).
    pub(crate) max_objects: usize,
    /// The most reachable bytes (by [`cell_estimate`]) seen at a comparison (summed over
    /// threads).
    pub(crate) max_bytes: usize,
}

impl std::ops::AddAssign for Live {
    fn add_assign(&mut self, o: Live) {
        self.max_objects = self.max_objects.max(o.max_objects);
        self.max_bytes += o.max_bytes;
    }
}

type Counts = shadow::Counts<Live>;

/// One mutator thread's program and its shadow.
pub(crate) struct Program {
    m: Mutator,
    rng: StdRng,
    shadow: Shadow,
    /// Reachable bytes (cell sizes) allowed before the program starts cutting edges.
    budget: usize,
    /// The largest payload of a large object (its smallest is 2100 bytes).
    large_max: usize,
    ctx: String,
    op: u64,
    counts: Counts,
}

/// The cell bytes an object of this shape takes (roughly: large objects by page).
fn cell_estimate(nrefs: usize, payload: usize) -> usize {
    let bytes = 8 + 8 * nrefs + payload;
    if bytes > 2048 {
        bytes.div_ceil(4096) * 4096
    } else {
        bytes.next_multiple_of(16) * 5 / 4
    }
}

impl Program {
    pub(crate) fn new(
        heap: &Heap,
        seed: u64,
        thread: usize,
        (budget, large_max): (usize, usize),
        ctx: String,
    ) -> Program {
        Program {
            m: heap.mutator(),
            rng: StdRng::seed_from_u64(seed),
            shadow: Shadow::new(thread),
            budget,
            large_max,
            ctx,
            op: 0,
            counts: Counts::default(),
        }
    }

    /// This program's failure context ([`context`]), as it is now.
    fn at(&self) -> String {
        context(&self.ctx, self.op, self.m.heap())
    }

    /// What is known of object `id`, for a failure message.
    fn explain(&self, id: u64) -> String {
        self.shadow.explain(&self.m, id)
    }

    /// A random object reachable from the roots (a short random walk), or `None` when
    /// every root is null.
    fn walk(&mut self) -> Option<u64> {
        self.shadow.walk(&mut self.rng, WALK_STEPS)
    }

    /// A reachable object with at least one reference slot, if a few walks find one.
    fn walk_to_slots(&mut self) -> Option<u64> {
        self.shadow.walk_to_slots(&mut self.rng, WALK_STEPS)
    }

    fn obj(&self, id: u64) -> ObjRef {
        self.shadow.obj(id)
    }

    /// One random operation.
    pub(crate) fn step(&mut self) {
        self.op += 1;
        self.counts.ops += 1;
        let r = self.rng.random_range(0..100);
        if self.shadow.roots.iter().flatten().next().is_none() || r < 40 {
            self.op_alloc();
        } else if r < 68 {
            self.op_write_ref();
        } else if r < 85 {
            self.op_write_bytes();
        } else if r < 97 {
            self.op_root();
        } else if r < 99 {
            self.m.safepoint();
        } else {
            // A short excursion out of the managed state, as blocking code would make.
            self.m.blocking(std::thread::yield_now);
        }
        if self.rng.random_bool(0.5) {
            self.m.safepoint();
        }
    }

    /// A slot of `id` to store into: while the graph grows, usually a null one.
    fn pick_slot(&mut self, id: u64) -> usize {
        let edges = &self.shadow[&id].edges;
        let nulls: Vec<usize> = (0..edges.len()).filter(|&i| edges[i].is_none()).collect();
        if !self.shadow.shrinking && !nulls.is_empty() && self.rng.random_bool(0.8) {
            nulls[self.rng.random_range(0..nulls.len())]
        } else {
            self.rng.random_range(0..edges.len())
        }
    }

    fn op_alloc(&mut self) {
        let large = self.rng.random_range(0..100) == 0;
        let nrefs = self.rng.random_range(0..6);
        let payload = if large {
            self.rng.random_range(2100..self.large_max)
        } else {
            self.rng.random_range(8..=200)
        };
        // Where the new object goes: chosen before the allocation (a safepoint), which
        // changes nothing reachable, so the destination is still reachable after it.
        let room = self.shadow.roots.len() < MAX_ROOTS;
        let dest = if self.shadow.roots.len() < 3
            || (room && self.shadow.shrinking && self.rng.random_range(0..20) == 0)
        {
            None
        } else {
            self.walk_to_slots().map(|id| (id, self.pick_slot(id)))
        };
        // While growing, a new object that lands on an edge takes it over (see below).
        let nrefs = match dest {
            Some((parent, slot))
                if !self.shadow.shrinking && self.shadow[&parent].edges[slot].is_some() =>
            {
                nrefs.max(1)
            }
            _ => nrefs,
        };
        let obj = match self.m.alloc(nrefs, payload) {
            Ok(o) => o,
            Err(e) => panic!(
                "{}: alloc({nrefs}, {payload}) failed with {} reachable objects, {} of {} \
                 pages in use: {e}",
                self.at(),
                self.shadow.reachable().len(),
                self.m.heap().pages_in_use(),
                self.m.heap().config().heap_bytes / barrierlab::sys::PAGE_SIZE
            ),
        };
        // Not a root yet: link it before anything that may reach a safepoint.
        let id = self.shadow.fresh_id();
        let mut edges = vec![None; nrefs];
        match dest {
            Some((parent, slot)) => {
                let p = self.obj(parent);
                // While growing, insert rather than overwrite: the new object takes over
                // the old target (a store into a just-allocated, black object).
                let old = self.shadow[&parent].edges[slot];
                if let Some(old) = old.filter(|_| nrefs > 0 && !self.shadow.shrinking) {
                    let k = self.rng.random_range(0..nrefs);
                    let o = self.obj(old);
                    self.m.write_ref(obj, k, Some(o)).unwrap_or_else(|e| {
                        panic!(
                            "{}: write_ref into new object: {e}; old {}",
                            self.at(),
                            self.explain(old)
                        )
                    });
                    edges[k] = Some(old);
                }
                self.m.write_ref(p, slot, Some(obj)).unwrap_or_else(|e| {
                    panic!(
                        "{}: write_ref into parent: {e}; parent {}",
                        self.at(),
                        self.explain(parent)
                    )
                });
                self.shadow.node_mut(parent).edges[slot] = Some(id);
            }
            None if room => {
                self.m.push_root(obj).expect("root");
                self.shadow.roots.push(Some(id));
            }
            None => {
                let i = self.root_to_replace();
                self.m.set_root(i, Some(obj)).expect("root index in range");
                self.shadow.roots[i] = Some(id);
            }
        }
        let mut bytes = vec![0u8; payload];
        bytes[..8].copy_from_slice(&id.to_le_bytes());
        // Fill some of the rest (a fresh object's payload must read back as zeros too).
        let fill = self.rng.random_range(8..=payload);
        self.rng.fill_bytes(&mut bytes[8..fill]);
        let node = Node {
            obj,
            edges,
            payload: bytes,
            born: self.op,
        };
        self.shadow
            .add(&mut self.m, id, node)
            .unwrap_or_else(|e| panic!("{}: write_bytes into new object: {e}", self.at()));
        self.counts.allocs += 1;
        self.counts.large += large as u64;
    }

    fn op_write_ref(&mut self) {
        let Some(src) = self.walk_to_slots() else {
            return;
        };
        let slot = self.pick_slot(src);
        let old = self.shadow[&src].edges[slot];
        if old.is_some() && !self.shadow.shrinking && self.rng.random_bool(0.95) {
            // Growing: do not cut the edge (which would drop whatever hangs from it); swap
            // it with another slot of the same object instead: two stores, nothing lost.
            let other = self.rng.random_range(0..self.shadow[&src].edges.len());
            let s = self.obj(src);
            let o2 = self.shadow[&src].edges[other];
            let (r1, r2) = (old.map(|id| self.obj(id)), o2.map(|id| self.obj(id)));
            self.m
                .write_ref(s, slot, r2)
                .and_then(|()| self.m.write_ref(s, other, r1))
                .unwrap_or_else(|e| {
                    panic!(
                        "{}: swap in {}: {e}; values {:?}",
                        self.at(),
                        self.explain(src),
                        [old, o2].map(|v| v.map(|v| self.explain(v)))
                    )
                });
            let edges = &mut self.shadow.node_mut(src).edges;
            edges.swap(slot, other);
            return;
        }
        let null_odds = if self.shadow.shrinking { 0.6 } else { 0.02 };
        let value = if self.rng.random_bool(null_odds) {
            None
        } else {
            self.walk()
        };
        let (s, v) = (self.obj(src), value.map(|id| self.obj(id)));
        self.m.write_ref(s, slot, v).unwrap_or_else(|e| {
            panic!(
                "{}: write_ref({src:#x}, {slot}, {value:?}): {e}; source {}; value {}",
                self.at(),
                self.explain(src),
                value.map_or("null".into(), |v| self.explain(v))
            )
        });
        self.shadow.node_mut(src).edges[slot] = value;
    }

    fn op_write_bytes(&mut self) {
        let Some(id) = self.walk() else {
            return;
        };
        let len_total = self.shadow[&id].payload.len();
        if len_total <= 8 {
            return;
        }
        let len = self.rng.random_range(1..=(len_total - 8).min(32));
        // Large objects: often at the very end, the farthest page of the span.
        let offset = if len_total > 2048 && self.rng.random_bool(0.5) {
            len_total - len
        } else {
            self.rng.random_range(8..=len_total - len)
        };
        let mut data = vec![0u8; len];
        self.rng.fill_bytes(&mut data);
        let o = self.obj(id);
        self.m.write_bytes(o, offset, &data).unwrap_or_else(|e| {
            panic!(
                "{}: write_bytes at {offset}: {e}; object {}",
                self.at(),
                self.explain(id)
            )
        });
        self.shadow.node_mut(id).payload[offset..offset + len].copy_from_slice(&data);
    }

    /// A root to overwrite: the first three hold most of the graph, so while it grows
    /// only the others are replaced.
    fn root_to_replace(&mut self) -> usize {
        let lowest = if self.shadow.shrinking {
            0
        } else {
            3.min(self.shadow.roots.len() - 1)
        };
        self.rng.random_range(lowest..self.shadow.roots.len())
    }

    /// Root pushes, pops and sets. The first three roots hold most of the graph: while
    /// it grows, only a shrinking program replaces them.
    fn op_root(&mut self) {
        let r = self.rng.random_range(0..10);
        if r < 4 && self.shadow.roots.len() < MAX_ROOTS {
            if let Some(id) = self.walk() {
                let o = self.obj(id);
                let i = self.m.push_root(o).expect("root");
                assert_eq!(i, self.shadow.roots.len(), "{}: push_root index", self.at());
                self.shadow.roots.push(Some(id));
            }
        } else if r < 7 && self.shadow.roots.len() > 3 {
            let got = self.m.pop_root();
            let want = self.shadow.roots.pop().expect("non-empty");
            assert_eq!(
                got,
                want.map(|id| self.obj(id)),
                "{}: pop_root returned the wrong root",
                self.at()
            );
        } else if !self.shadow.roots.is_empty() {
            let i = self.root_to_replace();
            let null_odds = if self.shadow.shrinking { 0.5 } else { 0.1 };
            let value = if self.rng.random_bool(null_odds) {
                None
            } else {
                self.walk()
            };
            let o = value.map(|id| self.obj(id));
            self.m.set_root(i, o).expect("root index in range");
            self.shadow.roots[i] = value;
            assert_eq!(self.m.root(i), o, "{}: root {i} reads back", self.at());
        }
    }
}

impl ShadowProgram for Program {
    type Extra = Live;

    /// Compares every reachable object with the heap, then forgets the unreachable ones
    /// (remembering them for the next checkpoint) and adjusts the program's growth to
    /// the reachable bytes.
    fn verify(&mut self) {
        self.counts.verifies += 1;
        let reachable = self.shadow.verify(&self.m, &|| self.at());
        let live_bytes: usize = reachable
            .iter()
            .map(|id| {
                let s = &self.shadow[id];
                cell_estimate(s.edges.len(), s.payload.len())
            })
            .sum();
        let live = &mut self.counts.extra;
        live.max_objects = live.max_objects.max(reachable.len());
        live.max_bytes = live.max_bytes.max(live_bytes);
        self.shadow.forget_unreachable(&reachable);
        self.shadow.steer(live_bytes, self.budget);
    }

    fn check_dead(&mut self) -> DeadCheck {
        let heap = self.m.heap().clone();
        let (ctx, op) = (&self.ctx, self.op);
        self.shadow
            .check_dead(&mut self.m, &|| context(ctx, op, &heap))
    }

    fn counts(&mut self) -> &mut Counts {
        &mut self.counts
    }
}

/// The failure context of a program: barrier, threads, seed, operation, heap state.
fn context(ctx: &str, op: u64, heap: &Heap) -> String {
    let st = heap.stats();
    format!(
        "{ctx} op {op} (heap: {} cycles, {} verifier failures {:?}, {} degraded cycles, tracker \
         {:?})",
        st.cycles,
        st.verifier_failures,
        st.verifier_messages.first(),
        st.degraded_cycles(),
        st.tracker
    )
}
