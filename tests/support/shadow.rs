//! The shadow-graph harness of the collector stress tests (`tests/collector/stress`,
//! `tests/collector/alloc_phases`): what a mutator program believes its objects are (the *shadow*),
//! random walks over it, and the two checks against the heap — every object reachable in
//! the shadow is live and intact ([`Shadow::verify`]), and every object found unreachable
//! is gone after a cycle that starts later ([`collect_and_check_dead`]).
//!
//! Every object carries its id in its first 8 payload bytes (so that a reused cell is
//! told apart from a survivor); what the rest holds is the test's choice, recorded in
//! [`Node::payload`]. A worker drives its [`Program`] with a [`Schedule`] of comparisons
//! and checkpoints and ends it with [`finish`]. The programs themselves (which
//! operations, how often, what a budget measures, when a worker stops) stay in the test
//! files: they differ on purpose.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use barrierlab::{Mutator, ObjRef};
use rand::Rng;

use super::read_id;

/// One object as the program believes it is.
pub struct Node {
    pub obj: ObjRef,
    /// The id each reference slot names (`None` = null).
    pub edges: Vec<Option<u64>>,
    /// The whole payload; its first 8 bytes are the id.
    pub payload: Vec<u8>,
    /// The operation that allocated it.
    pub born: u64,
}

/// Counters one thread reports: the ones every shadow program has, and the test's own
/// (`extra`, added by its own `AddAssign`).
#[derive(Default, Debug, Clone, Copy)]
pub struct Counts<X> {
    pub ops: u64,
    pub allocs: u64,
    pub large: u64,
    pub verifies: u64,
    pub checkpoints: u64,
    /// Unreachable objects checked at checkpoints.
    pub dead_checked: u64,
    /// Of those, the ones whose cell had been reused by a new object.
    pub dead_reused: u64,
    pub extra: X,
}

impl<X: std::ops::AddAssign> std::ops::AddAssign for Counts<X> {
    fn add_assign(&mut self, o: Counts<X>) {
        self.ops += o.ops;
        self.allocs += o.allocs;
        self.large += o.large;
        self.verifies += o.verifies;
        self.checkpoints += o.checkpoints;
        self.dead_checked += o.dead_checked;
        self.dead_reused += o.dead_reused;
        self.extra += o.extra;
    }
}

impl<X> Counts<X> {
    /// Adds what a check of the dead found.
    pub fn add_dead(&mut self, d: DeadCheck) {
        self.dead_checked += d.checked;
        self.dead_reused += d.reused;
    }
}

/// Formats as the string its closure makes, only when it is formatted (a failure
/// message's context is costly to build).
pub struct Lazy<F: Fn() -> String>(pub F);

impl<F: Fn() -> String> std::fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&(self.0)())
    }
}

/// Tells the other threads of a configuration to stop when this one panics, so that a
/// failure is reported as itself rather than as a deadlock.
pub struct AbortOnPanic<'a>(pub &'a AtomicBool);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}

/// One thread's shadow: its objects by id, its root stack, and what it found dead.
pub struct Shadow {
    nodes: HashMap<u64, Node>,
    /// Mirrors the mutator's root stack.
    pub roots: Vec<Option<u64>>,
    next_id: u64,
    /// Objects found unreachable, not yet checked at a checkpoint.
    dead: Vec<(ObjRef, u64)>,
    /// Whether the program is cutting edges (set by [`Shadow::steer`]).
    pub shrinking: bool,
}

impl std::ops::Index<&u64> for Shadow {
    type Output = Node;

    fn index(&self, id: &u64) -> &Node {
        &self.nodes[id]
    }
}

impl Shadow {
    /// An empty shadow for thread `thread`, whose ids carry the thread in their high bits.
    pub fn new(thread: usize) -> Shadow {
        Shadow {
            nodes: HashMap::new(),
            roots: Vec::new(),
            next_id: ((thread as u64 + 1) << 48) + 1,
            dead: Vec::new(),
            shrinking: false,
        }
    }

    /// A new object's id.
    pub fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Writes a new object's payload (`node.payload`, its first 8 bytes the id) into the
    /// heap and adds the object to the shadow, so that the two agree from the start.
    /// Writing reaches no safepoint: the caller links the object before its next one.
    pub fn add(&mut self, m: &mut Mutator, id: u64, node: Node) -> barrierlab::Result<()> {
        debug_assert_eq!(node.payload[..8], id.to_le_bytes());
        m.write_bytes(node.obj, 0, &node.payload)?;
        self.nodes.insert(id, node);
        Ok(())
    }

    pub fn obj(&self, id: u64) -> ObjRef {
        self.nodes[&id].obj
    }

    /// Object `id`, to change it.
    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&id).expect("id in the shadow")
    }

    /// A random object reachable from the roots (a walk of fewer than `max_steps` edges),
    /// or `None` when every root is null.
    pub fn walk(&self, rng: &mut impl Rng, max_steps: usize) -> Option<u64> {
        let set: Vec<u64> = self.roots.iter().flatten().copied().collect();
        if set.is_empty() {
            return None;
        }
        let mut cur = set[rng.random_range(0..set.len())];
        for _ in 0..rng.random_range(0..max_steps) {
            let edges = &self.nodes[&cur].edges;
            let n = edges.iter().flatten().count();
            if n == 0 {
                break;
            }
            let k = rng.random_range(0..n);
            cur = *edges.iter().flatten().nth(k).expect("k < n");
        }
        Some(cur)
    }

    /// A reachable object with at least one reference slot, if a few walks find one.
    pub fn walk_to_slots(&self, rng: &mut impl Rng, max_steps: usize) -> Option<u64> {
        for _ in 0..4 {
            let id = self.walk(rng, max_steps)?;
            if !self.nodes[&id].edges.is_empty() {
                return Some(id);
            }
        }
        None
    }

    /// The ids reachable from the roots, in the shadow.
    pub fn reachable(&self) -> HashSet<u64> {
        let mut seen = HashSet::new();
        let mut stack: Vec<u64> = self.roots.iter().flatten().copied().collect();
        while let Some(id) = stack.pop() {
            if seen.insert(id) {
                stack.extend(self.nodes[&id].edges.iter().flatten().copied());
            }
        }
        seen
    }

    /// What is known of object `id`, for a failure message.
    pub fn explain(&self, m: &Mutator, id: u64) -> String {
        match self.nodes.get(&id) {
            None => format!("{id:#x} (not in the shadow)"),
            Some(s) => format!(
                "{id:#x} at {:?} (allocated at op {}, {} slots, {} payload bytes; live now: {}, \
                 id there now: {:?})",
                s.obj,
                s.born,
                s.edges.len(),
                s.payload.len(),
                m.heap().is_live(s.obj),
                read_id(m, s.obj).map(|i| format!("{i:#x}"))
            ),
        }
    }

    /// Compares the roots and every reachable object with the heap: it is live, has the
    /// same shape and payload bytes, and each reference slot names the object with the
    /// expected id. Returns the reachable ids. `at` is the failure context.
    pub fn verify(&self, m: &Mutator, at: &dyn Fn() -> String) -> HashSet<u64> {
        let at = Lazy(at);
        let heap = m.heap();
        assert_eq!(m.roots_len(), self.roots.len(), "{at}: root stack length");
        for (i, want) in self.roots.iter().enumerate() {
            assert_eq!(m.root(i), want.map(|id| self.obj(id)), "{at}: root {i}");
        }
        let reachable = self.reachable();
        let mut buf = Vec::new();
        for &id in &reachable {
            let s = &self.nodes[&id];
            assert!(
                heap.is_live(s.obj),
                "{at}: reachable object {} was freed",
                self.explain(m, id)
            );
            let shape = m
                .shape(s.obj)
                .unwrap_or_else(|e| panic!("{at}: shape of {}: {e}", self.explain(m, id)));
            assert_eq!(
                shape,
                (s.edges.len(), s.payload.len()),
                "{at}: object {id:#x} at {:?} has the wrong shape",
                s.obj
            );
            buf.resize(s.payload.len(), 0);
            m.read_bytes(s.obj, 0, &mut buf)
                .unwrap_or_else(|e| panic!("{at}: read_bytes of {}: {e}", self.explain(m, id)));
            if buf != s.payload {
                let first = buf.iter().zip(&s.payload).position(|(a, b)| a != b);
                panic!(
                    "{at}: payload of object {id:#x} at {:?} differs from the shadow \
                     (first difference at byte {first:?}; id read back {:#x})",
                    s.obj,
                    u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"))
                );
            }
            for (i, want) in s.edges.iter().enumerate() {
                let got = m
                    .read_ref(s.obj, i)
                    .unwrap_or_else(|e| panic!("{at}: read_ref({id:#x}, {i}): {e}"));
                match (got, want) {
                    (None, None) => {}
                    (Some(r), Some(w)) => {
                        let target = &self.nodes[w];
                        assert_eq!(
                            r, target.obj,
                            "{at}: slot {i} of {id:#x} points to {r:?}, expected {w:#x} at {:?}",
                            target.obj
                        );
                        assert_eq!(
                            read_id(m, r),
                            Some(*w),
                            "{at}: slot {i} of {id:#x} points to {r:?}, whose id is not {w:#x}"
                        );
                    }
                    _ => panic!("{at}: slot {i} of {id:#x} is {got:?}, expected id {want:?}"),
                }
            }
        }
        reachable
    }

    /// Moves the objects not in `reachable` out of the shadow, to be checked at the next
    /// checkpoint (they can never become reachable again: a program only stores
    /// references to objects it reached from a root).
    pub fn forget_unreachable(&mut self, reachable: &HashSet<u64>) {
        let dead: Vec<u64> = self
            .nodes
            .keys()
            .filter(|id| !reachable.contains(id))
            .copied()
            .collect();
        for id in dead {
            let s = self.nodes.remove(&id).expect("present");
            self.dead.push((s.obj, id));
        }
    }

    /// Starts cutting edges once `live` exceeds `budget`, and growing again below half
    /// of it (what `live` measures is the test's: objects, or bytes).
    pub fn steer(&mut self, live: usize, budget: usize) {
        if live > budget {
            self.shrinking = true;
        } else if live < budget / 2 {
            self.shrinking = false;
        }
    }

    /// [`collect_and_check_dead`] for the objects this shadow found unreachable.
    pub fn check_dead(&mut self, m: &mut Mutator, at: &dyn Fn() -> String) -> DeadCheck {
        collect_and_check_dead(m, std::mem::take(&mut self.dead), at)
    }
}

/// What a check of the dead found.
#[derive(Debug, Clone, Copy)]
pub struct DeadCheck {
    /// Unreachable objects checked.
    pub checked: u64,
    /// Of those, the ones whose cell had been reused by a new object.
    pub reused: u64,
}

/// Garbage stays garbage: runs `collect()` (a whole cycle that starts after the call,
/// which it checks) and then checks that every object of `dead` (unreachable before the
/// call) is free, or its cell reused by another object (another id there).
pub fn collect_and_check_dead(
    m: &mut Mutator,
    dead: Vec<(ObjRef, u64)>,
    at: &dyn Fn() -> String,
) -> DeadCheck {
    let at = Lazy(at);
    let heap = m.heap().clone();
    let before = heap.stats().cycles;
    m.collect().expect("collect");
    let after = heap.stats().cycles;
    assert!(after > before, "{at}: collect() ran no cycle");
    let mut d = DeadCheck {
        checked: 0,
        reused: 0,
    };
    for (obj, id) in dead {
        d.checked += 1;
        if heap.is_live(obj) {
            assert_ne!(
                read_id(m, obj),
                Some(id),
                "{at}: object {id:#x} at {obj:?} was unreachable before cycle {} started \
                 (cycles {before}..{after}) but survived it",
                before + 1
            );
            d.reused += 1;
        }
    }
    d
}

/// A mutator program with a shadow, as a configuration's worker thread drives it.
pub trait Program {
    /// The test's own counters (see [`Counts`]).
    type Extra;

    /// Compares the shadow with the heap (and forgets the unreachable objects, keeping
    /// them for the next checkpoint).
    fn verify(&mut self);
    /// [`Shadow::check_dead`] with this program's failure context.
    fn check_dead(&mut self) -> DeadCheck;
    fn counts(&mut self) -> &mut Counts<Self::Extra>;

    /// Garbage stays garbage: every object found unreachable so far must be gone after a
    /// cycle that starts now; and what is reachable survived it (compared before and
    /// after).
    fn checkpoint(&mut self) {
        self.verify();
        let d = self.check_dead();
        let c = self.counts();
        c.checkpoints += 1;
        c.add_dead(d);
        self.verify();
    }
}

/// When a worker compares its shadow with the heap.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Operations between two comparisons.
    pub verify_every: u64,
    /// Comparisons between two checkpoints (the others are plain comparisons).
    pub checkpoint_every: u64,
}

impl Schedule {
    /// After operation `i` (from 1): a checkpoint, a comparison, or nothing. Returns
    /// whether it compared.
    pub fn after_op(self, p: &mut impl Program, i: u64) -> bool {
        if i % self.verify_every != 0 {
            return false;
        }
        if i % (self.verify_every * self.checkpoint_every) == 0 {
            p.checkpoint();
        } else {
            p.verify();
        }
        true
    }
}

/// The end of a worker: a last checkpoint (unless another thread failed), then one
/// mutator fewer in `running`. Returns the worker's counters.
pub fn finish<P: Program>(p: &mut P, abort: &AtomicBool, running: &AtomicUsize) -> Counts<P::Extra>
where
    P::Extra: Copy,
{
    if !abort.load(Ordering::Relaxed) {
        p.checkpoint();
    }
    running.fetch_sub(1, Ordering::Release);
    *p.counts()
}

/// Joins the workers and adds up their counters; a worker's panic is re-raised as is.
pub fn join_counts<X: Default + std::ops::AddAssign>(
    workers: Vec<std::thread::ScopedJoinHandle<'_, Counts<X>>>,
) -> Counts<X> {
    let mut totals = Counts::default();
    for w in workers {
        match w.join() {
            Ok(c) => totals += c,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
    totals
}

/// What every configuration must show at its end: the verifier (a full re-trace at every
/// remark) found nothing, a cycle ran, and the programs made garbage to check.
pub fn assert_sound<X>(ctx: &str, st: &barrierlab::Stats, totals: &Counts<X>) {
    assert_eq!(
        st.verifier_failures, 0,
        "{ctx}: the verifier found tri-colour violations: {:?}",
        st.verifier_messages
    );
    assert!(
        st.cycles > 0 && totals.dead_checked > 0,
        "{ctx}: no cycle ran or the program made no garbage"
    );
}
