//! One mutator thread's program: allocations by phase, checked against its shadow.

use std::sync::atomic::Ordering;

use barrierlab::{Heap, Mutator, ObjRef};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::phases::Shared;
use super::{ANCHOR_SLOTS, LARGE_PAYLOAD, PHASES, ROOTS, WALK_STEPS, payload_of};
use crate::support::shadow::{self, DeadCheck, Node, Program as ShadowProgram, Shadow};

/// This test's counters beside the shadow programs' common ones.
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct Extra {
    /// Objects allocated and linked nowhere.
    pub(crate) garbage_at_once: u64,
}

impl std::ops::AddAssign for Extra {
    fn add_assign(&mut self, o: Extra) {
        self.garbage_at_once += o.garbage_at_once;
    }
}

type Counts = shadow::Counts<Extra>;

/// One mutator thread's program and its shadow.
pub(crate) struct Program<'s> {
    m: Mutator,
    heap: Heap,
    shared: &'s Shared,
    rng: StdRng,
    /// Its roots are always `ROOTS` long.
    shadow: Shadow,
    /// Reachable objects allowed before the program starts cutting edges.
    budget: usize,
    /// Allocations by phase since the last flush to `shared`.
    phases: [u64; PHASES],
    /// Of those, large objects.
    large_phases: [u64; PHASES],
    ctx: String,
    op: u64,
    counts: Counts,
}

impl<'s> Program<'s> {
    pub(crate) fn new(
        heap: &Heap,
        shared: &'s Shared,
        seed: u64,
        thread: usize,
        budget: usize,
        ctx: String,
    ) -> Self {
        let mut p = Program {
            m: heap.mutator(),
            heap: heap.clone(),
            shared,
            rng: StdRng::seed_from_u64(seed),
            shadow: Shadow::new(thread),
            budget,
            phases: [0; PHASES],
            large_phases: [0; PHASES],
            ctx,
            op: 0,
            counts: Counts::default(),
        };
        for _ in 0..ROOTS {
            let (obj, id) = p.alloc(ANCHOR_SLOTS, 8);
            p.m.push_root(obj).expect("root");
            p.shadow.roots.push(Some(id));
        }
        p
    }

    /// This program's failure context ([`context`]), as it is now.
    fn at(&self) -> String {
        context(&self.ctx, self.op, &self.heap)
    }

    /// Allocates an object with `nrefs` null slots and its id and pattern written, and
    /// adds it to the shadow (unreachable: the caller links it before the next safepoint).
    /// Counts the allocation under the phase seen just before it.
    fn alloc(&mut self, nrefs: usize, payload: usize) -> (ObjRef, u64) {
        let phase = self.heap.phase();
        let obj = self.m.alloc(nrefs, payload).unwrap_or_else(|e| {
            panic!(
                "{}: alloc({nrefs}, {payload}) in phase {} failed: {e}",
                self.at(),
                phase.name()
            )
        });
        self.phases[phase as usize] += 1;
        if payload >= LARGE_PAYLOAD {
            self.large_phases[phase as usize] += 1;
        }
        self.counts.allocs += 1;
        let id = self.shadow.fresh_id();
        let node = Node {
            obj,
            edges: vec![None; nrefs],
            payload: payload_of(id, payload),
            born: self.op,
        };
        // No safepoint until the caller links it: write_bytes and write_ref do not poll.
        self.shadow
            .add(&mut self.m, id, node)
            .unwrap_or_else(|e| panic!("{}: write_bytes into new object {id:#x}: {e}", self.at()));
        (obj, id)
    }

    fn obj(&self, id: u64) -> ObjRef {
        self.shadow.obj(id)
    }

    /// Stores `value` into slot `slot` of `src`, in the heap and in the shadow.
    fn store(&mut self, src: u64, slot: usize, value: Option<u64>) {
        let (s, v) = (self.obj(src), value.map(|id| self.obj(id)));
        self.m.write_ref(s, slot, v).unwrap_or_else(|e| {
            panic!(
                "{}: write_ref({src:#x}, {slot}, {value:x?}): {e}",
                self.at()
            )
        });
        self.shadow.node_mut(src).edges[slot] = value;
    }

    /// A random object reachable from the roots (a short random walk).
    fn walk(&mut self) -> Option<u64> {
        self.shadow.walk(&mut self.rng, WALK_STEPS)
    }

    /// A reachable object with at least one slot, if a few walks find one.
    fn walk_to_slots(&mut self) -> Option<u64> {
        self.shadow.walk_to_slots(&mut self.rng, WALK_STEPS)
    }

    pub(crate) fn step(&mut self) {
        self.op += 1;
        self.counts.ops += 1;
        match self.rng.random_range(0..100) {
            0..60 => self.op_alloc(),
            60..75 => self.op_store(),
            75..82 => self.op_root(),
            82..84 => self.m.blocking(std::thread::yield_now),
            _ => {}
        }
        if self.rng.random_bool(0.3) {
            self.m.safepoint();
        }
    }

    /// A new object: garbage at once, or linked into a reachable slot.
    fn op_alloc(&mut self) {
        // Mostly the smallest classes, some of every class up to 2 KiB, a few spans.
        let r = self.rng.random_range(0..200);
        let large = r == 0;
        let payload = match r {
            0 => self.rng.random_range(LARGE_PAYLOAD..6000),
            1..20 => self.rng.random_range(113..=2000),
            _ => self.rng.random_range(8..=112),
        };
        let dest = if self.rng.random_range(0..10) == 0 {
            None
        } else {
            self.pick_dest()
        };
        self.alloc_into(dest, payload);
        self.counts.large += large as u64;
    }

    /// A reachable slot for a new object. Chosen before the allocation (a safepoint),
    /// which changes nothing this thread reaches: the destination is still reachable
    /// after it.
    fn pick_dest(&mut self) -> Option<(u64, usize)> {
        self.walk_to_slots().map(|id| {
            let n = self.shadow[&id].edges.len();
            (id, self.rng.random_range(0..n))
        })
    }

    /// Allocates an object and stores it into `dest` (`None`: garbage at once). While the
    /// structure grows, the new object is inserted in front of the slot's old target
    /// (its slot 0 takes it over); while it shrinks, it replaces it, and whatever hung
    /// from the old target only may become garbage.
    fn alloc_into(&mut self, dest: Option<(u64, usize)>, payload: usize) {
        let adopt = match dest {
            Some((parent, slot)) if !self.shadow.shrinking => self.shadow[&parent].edges[slot],
            _ => None,
        };
        let nrefs = self
            .rng
            .random_range(0..=3usize)
            .max(adopt.is_some() as usize);
        let (_, id) = self.alloc(nrefs, payload);
        if let Some(old) = adopt {
            self.store(id, 0, Some(old));
        }
        match dest {
            Some((parent, slot)) => self.store(parent, slot, Some(id)),
            None => self.counts.extra.garbage_at_once += 1,
        }
    }

    /// A reference store between reachable objects, or a null (more often while
    /// shrinking). While growing, an occupied slot is mostly left alone.
    fn op_store(&mut self) {
        let Some(src) = self.walk_to_slots() else {
            return;
        };
        let slot = self.rng.random_range(0..self.shadow[&src].edges.len());
        if !self.shadow.shrinking
            && self.shadow[&src].edges[slot].is_some()
            && self.rng.random_bool(0.9)
        {
            return;
        }
        let value = if self
            .rng
            .random_bool(if self.shadow.shrinking { 0.5 } else { 0.05 })
        {
            None
        } else {
            self.walk()
        };
        self.store(src, slot, value);
    }

    /// A root replaced by a fresh anchor (dropping what hung from the old one, while
    /// shrinking) or by a reachable object.
    fn op_root(&mut self) {
        if !self.shadow.shrinking && self.rng.random_bool(0.8) {
            return;
        }
        let i = self.rng.random_range(0..ROOTS);
        let value = if self.rng.random_bool(0.5) {
            let (obj, id) = self.alloc(ANCHOR_SLOTS, 8);
            self.m.set_root(i, Some(obj)).expect("root index in range");
            Some(id)
        } else {
            let v = self.walk();
            self.m
                .set_root(i, v.map(|id| self.obj(id)))
                .expect("root index in range");
            v
        };
        self.shadow.roots[i] = value;
    }
}

impl ShadowProgram for Program<'_> {
    type Extra = Extra;

    /// Every reachable object is live and intact; the unreachable ones leave the shadow
    /// for the next checkpoint. Flushes the phase counts.
    fn verify(&mut self) {
        self.counts.verifies += 1;
        for (i, n) in self.phases.iter_mut().enumerate() {
            self.shared.phases[i].fetch_add(std::mem::take(n), Ordering::Relaxed);
        }
        for (i, n) in self.large_phases.iter_mut().enumerate() {
            self.shared.large_phases[i].fetch_add(std::mem::take(n), Ordering::Relaxed);
        }
        let reachable = self.shadow.verify(&self.m, &|| self.at());
        self.shadow.forget_unreachable(&reachable);
        self.shadow.steer(reachable.len(), self.budget);
    }

    fn check_dead(&mut self) -> DeadCheck {
        let (ctx, op, heap) = (&self.ctx, self.op, &self.heap);
        self.shadow
            .check_dead(&mut self.m, &|| context(ctx, op, heap))
    }

    fn counts(&mut self) -> &mut Counts {
        &mut self.counts
    }
}

/// The failure context of a program: configuration, seed, thread, operation, heap state.
fn context(ctx: &str, op: u64, heap: &Heap) -> String {
    let st = heap.stats();
    format!(
        "{ctx} op {op} (heap: {} cycles, phase {}, {} verifier failures {:?})",
        st.cycles,
        heap.phase().name(),
        st.verifier_failures,
        st.verifier_messages.first(),
    )
}
