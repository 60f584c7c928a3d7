//! Allocation during every phase of a cycle: a stress case aimed at the allocator (runs
//! of free cells reserved in bulk, allocation black from the initial-mark flip, the sweep
//! freeing and zeroing cells beside mutators that hold runs in the same pages).
//!
//! For every barrier, on 1, 2 and 4 mutator threads, with collections back to back
//! (a thread that is not a mutator calls `collect()` in a loop; the heap is small, so
//! the trigger fires too), each mutator allocates and links objects into a rooted
//! structure of its own: most land in a reachable slot (inserted in front of the old
//! target while the structure grows, replacing it while it shrinks, so that whole
//! subgraphs become garbage), some are garbage at once; sizes span every small class,
//! and a few objects are large (a span of pages). Just before each allocation the
//! mutator reads `Heap::phase()` and counts the allocation under that phase. A mutator
//! cannot allocate *inside* a pause (the pause stops it), but it can read the pause's
//! phase right after the pause, before the collector moves on: those are counted as
//! allocations that *raced* the pause.
//!
//! Checked, against a shadow of each thread's structure (every object carries its id in
//! its first 8 payload bytes and a pattern derived from it in the rest):
//! - at regular points, after each `collect()` and at the end: every object reachable
//!   in the shadow is live, with its id, shape, payload and children (each slot names the
//!   object with the expected id);
//! - after each `collect()` (a whole cycle that starts after the call): every object
//!   that was unreachable before it is free, or its cell was reused (another id);
//! - the verifier (a full re-trace at every remark) reports nothing;
//! - allocations were observed in every phase a mutator can run in, and large objects
//!   (whole page spans, handed to the mutator dirty while the tracker is armed) among
//!   them in pre-clean: arm, concurrent mark, pre-clean, disarm and sweep for the
//!   concurrent barriers (for the two whose
//!   disarm does nothing, the interval after the remark pause and before the sweep
//!   instead: see [`required`]); idle and sweep for `none`. To keep short phases
//!   observable the collector pre-cleans up to 8 rounds to a threshold of 0 and verifies
//!   at every remark, and each configuration runs past its minimum number of operations
//!   until every such phase has been seen (or a deadline).
//!
//! Beside the mutators, a churn thread makes short-lived mutators one after another:
//! each allocates a rooted list, checks it, and is dropped, giving back its runs of free
//! cells in whatever phase the collector is in; after a later collection the lists of
//! dropped mutators must be gone.
//!
//! `BARRIERLAB_SEED` reproduces each thread's program (the interleaving of threads and
//! collector is the machine's); the seed is printed and is in every failure message.
//! `BARRIERLAB_REQUIRE_ALL=1` turns a barrier this kernel lacks into a failure.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use barrierlab::{BarrierKind, Heap, HeapConfig, Mutator, ObjRef, Phase};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use support::shadow::Program as ShadowProgram;
use support::shadow::{
    self, AbortOnPanic, DeadCheck, Node, Schedule, Shadow, collect_and_check_dead,
};
use support::with_timeout;
use support::{base_seed, debug_divisor, heap_or_skip, splitmix};

/// Payloads from this size on make a large object (a span of pages: past the largest
/// size class).
const LARGE_PAYLOAD: usize = 2100;

/// Small: a cycle takes well under a millisecond, so many run during a configuration.
const HEAP_BYTES: usize = 2 << 20;
/// Objects a configuration keeps reachable at most (split among its threads), before
/// its threads start cutting edges: about a tenth of the heap.
const BUDGET_OBJECTS: usize = 3_000;
/// Operations per configuration at least (split among its threads), in a release build.
const MIN_OPS: u64 = 120_000;
/// A configuration stops looking for unobserved phases after this long.
const DEADLINE: Duration = Duration::from_secs(6);
/// A comparison of the shadow with the heap every 1000 operations, and every fourth of
/// them a checkpoint (collect, then check that garbage was freed).
const SCHEDULE: Schedule = Schedule {
    verify_every: 1_000,
    checkpoint_every: 4,
};
/// Roots per thread, each an anchor object with a few slots.
const ROOTS: usize = 6;
const ANCHOR_SLOTS: usize = 4;
/// A random walk from a root follows fewer edges than this.
const WALK_STEPS: usize = 10;
/// The churn thread's rest between two short-lived mutators.
const CHURN_PAUSE: Duration = Duration::from_micros(200);
/// The whole test of one thread count (every barrier) must end within this.
const TIMEOUT_SECS: u64 = 180;

const PHASES: usize = Phase::ALL.len();

/// Where allocations must be observed: at least one allocation in a phase of each group.
///
/// After the remark pause the collector disarms the tracker, then sweeps. The card
/// table's disarm does nothing, and neither does `uffd-wp-async`'s (its pages stay
/// protected between cycles, `async_keep_protected`), so for them `Disarm` lasts two
/// clock reads, and an allocation lands in it only when the collector thread happens to
/// be preempted there. The interval it stands for — the remark pause is over, the sweep
/// has not begun — is then observed as an allocation that still saw `Remark`: the
/// collector leaves that phase only to enter `Disarm`, and a mutator that allocates is
/// never inside a pause. The other trackers unprotect the heap in `Disarm`, which takes
/// long enough to be seen.
fn required(kind: BarrierKind) -> &'static [&'static [Phase]] {
    use Phase::*;
    // A store-path mechanism (the card table, the write watch) disarms with nothing to do.
    let quick_disarm = kind.mechanism().served_by == barrierlab::barrier::ServedBy::StorePath
        || kind == BarrierKind::UffdWpAsync;
    match kind {
        BarrierKind::None => &[&[Idle], &[Sweep]],
        _ if quick_disarm => &[
            &[Arm],
            &[ConcurrentMark],
            &[Preclean],
            &[Disarm, Remark],
            &[Sweep],
        ],
        _ => &[&[Arm], &[ConcurrentMark], &[Preclean], &[Disarm], &[Sweep]],
    }
}

/// A group of [`required`], for messages: `disarm/remark`.
fn group_name(g: &[Phase]) -> String {
    g.iter().map(|p| p.name()).collect::<Vec<_>>().join("/")
}

/// The phases that are pauses: an allocation that saw one raced it (right after it).
fn is_pause(p: Phase) -> bool {
    matches!(p, Phase::InitialMark | Phase::Remark | Phase::StopTheWorld)
}

/// Payload byte `i` of object `id`: the id itself in bytes 0..8, a pattern after.
fn payload_of(id: u64, len: usize) -> Vec<u8> {
    let mut b: Vec<u8> = (0..len)
        .map(|i| (id as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect();
    b[..8].copy_from_slice(&id.to_le_bytes());
    b
}

/// This test's counters beside the shadow programs' common ones.
#[derive(Default, Debug, Clone, Copy)]
struct Extra {
    /// Objects allocated and linked nowhere.
    garbage_at_once: u64,
}

impl std::ops::AddAssign for Extra {
    fn add_assign(&mut self, o: Extra) {
        self.garbage_at_once += o.garbage_at_once;
    }
}

type Counts = shadow::Counts<Extra>;

/// What the threads of one configuration share.
struct Shared {
    /// Allocations by the phase seen just before them (flushed at each verify).
    phases: [AtomicU64; PHASES],
    /// Of those, large objects.
    large_phases: [AtomicU64; PHASES],
    /// Set by a thread that panics, so that the others stop.
    abort: AtomicBool,
    /// Mutator threads still running (the collecting thread stops at 0).
    running: AtomicUsize,
}

impl Shared {
    fn histogram(&self) -> [u64; PHASES] {
        std::array::from_fn(|i| self.phases[i].load(Ordering::Relaxed))
    }

    /// The groups of [`required`] with no allocation yet, and, for a concurrent barrier,
    /// pre-clean if no large object was allocated in it yet.
    fn missing(&self, kind: BarrierKind) -> Vec<String> {
        let h = self.histogram();
        let mut missing: Vec<String> = required(kind)
            .iter()
            .filter(|g| g.iter().all(|&p| h[p as usize] == 0))
            .map(|g| group_name(g))
            .collect();
        if kind.is_concurrent()
            && self.large_phases[Phase::Preclean as usize].load(Ordering::Relaxed) == 0
        {
            missing.push("a large object in pre-clean".into());
        }
        missing
    }
}

/// Formats a phase histogram: `idle 12, arm 3, …` (phases with no allocation left out).
fn show(h: &[u64; PHASES]) -> String {
    Phase::ALL
        .iter()
        .filter(|&&p| h[p as usize] > 0)
        .map(|&p| format!("{} {}", p.name(), h[p as usize]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One mutator thread's program and its shadow.
struct Program<'s> {
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
    fn new(
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

    fn step(&mut self) {
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

/// What the churn thread did.
#[derive(Default, Debug, Clone, Copy)]
struct Churn {
    /// Mutators made and dropped.
    mutators: u64,
    allocs: u64,
    /// Mutators dropped (their runs given back) by the phase seen just before.
    retired: [u64; PHASES],
    dead_checked: u64,
    dead_reused: u64,
}

/// Short-lived mutators, one after another on one thread: each allocates a rooted list,
/// checks it after a safepoint, and is dropped — its runs of free cells given back in
/// whatever phase the collector is in. Every few mutators, a collection; after it, the
/// lists of the mutators dropped before it must be gone.
fn churn(heap: &Heap, shared: &Shared, seed: u64, ctx: &str) -> Churn {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = Churn::default();
    let mut dead: Vec<(ObjRef, u64)> = Vec::new();
    // Above every worker's ids, which start at (thread + 1) << 48.
    let mut next_id = 0x80u64 << 48;
    let check_dead = |m: &mut Mutator, dead: &mut Vec<(ObjRef, u64)>, c: &mut Churn| {
        let d = collect_and_check_dead(m, std::mem::take(dead), &|| {
            format!("{ctx} churn (the lists of dropped mutators)")
        });
        c.dead_checked += d.checked;
        c.dead_reused += d.reused;
    };
    loop {
        let done = shared.running.load(Ordering::Acquire) == 0;
        if shared.abort.load(Ordering::Acquire) {
            return c;
        }
        let mut m = heap.mutator();
        if done || c.mutators % 8 == 7 {
            check_dead(&mut m, &mut dead, &mut c);
            if done {
                return c;
            }
        }
        c.mutators += 1;
        let len = rng.random_range(16..128);
        let mut list = Vec::with_capacity(len);
        let mut prev = None;
        for _ in 0..len {
            let payload = rng.random_range(8..=96);
            let obj = m
                .alloc(1, payload)
                .unwrap_or_else(|e| panic!("{ctx} churn: alloc(1, {payload}): {e}"));
            let id = next_id;
            next_id += 1;
            m.write_bytes(obj, 0, &payload_of(id, payload))
                .expect("write into a new object");
            match prev {
                None => {
                    m.push_root(obj).expect("root");
                }
                Some(p) => m.write_ref(p, 0, Some(obj)).expect("link the list"),
            }
            prev = Some(obj);
            list.push((obj, id, payload));
        }
        m.safepoint();
        let mut cur = m.root(0);
        let mut buf = Vec::new();
        for &(obj, id, payload) in &list {
            assert_eq!(
                cur,
                Some(obj),
                "{ctx} churn: list of mutator {}",
                c.mutators
            );
            buf.resize(payload, 0);
            m.read_bytes(obj, 0, &mut buf)
                .unwrap_or_else(|e| panic!("{ctx} churn: read_bytes of {id:#x}: {e}"));
            assert!(
                buf == payload_of(id, payload),
                "{ctx} churn: object {id:#x} at {obj:?} changed"
            );
            cur = m.read_ref(obj, 0).expect("a list node");
        }
        assert_eq!(cur, None, "{ctx} churn: list end");
        c.allocs += len as u64;
        c.retired[heap.phase() as usize] += 1;
        drop(m);
        dead.extend(list.iter().map(|&(obj, id, _)| (obj, id)));
        // Leave the CPUs to the mutators and the collector most of the time.
        std::thread::sleep(CHURN_PAUSE);
    }
}

/// One configuration: `threads` mutators over `kind`, collections back to back.
/// Returns the phase histogram, or `None` when the barrier is unavailable.
fn run_config(kind: BarrierKind, threads: usize, base: u64) -> Option<[u64; PHASES]> {
    let seed = splitmix(base ^ splitmix((kind as u64) << 32 | (threads as u64) << 16));
    let what = format!("alloc phases [{kind}, {threads} threads]");
    let heap = heap_or_skip(
        HeapConfig::new()
            .heap_bytes(HEAP_BYTES)
            .barrier(kind)
            .trigger(0.4)
            .max_preclean_rounds(8)
            .preclean_threshold(0)
            .verify(true),
        &what,
    )?;
    let ctx = format!("[{kind}, {threads} threads, BARRIERLAB_SEED={base}]");
    let shared = Shared {
        phases: std::array::from_fn(|_| AtomicU64::new(0)),
        large_phases: std::array::from_fn(|_| AtomicU64::new(0)),
        abort: AtomicBool::new(false),
        running: AtomicUsize::new(threads),
    };
    let min_ops = MIN_OPS / debug_divisor() / threads as u64;
    let budget = BUDGET_OBJECTS / threads;
    let started = Instant::now();
    let (totals, background, churned) = std::thread::scope(|s| {
        let (heap, shared) = (&heap, &shared);
        let churning = {
            let ctx = ctx.clone();
            s.spawn(move || {
                let _guard = AbortOnPanic(&shared.abort);
                churn(heap, shared, splitmix(seed ^ 0x6368_7572), &ctx)
            })
        };
        let collecting = s.spawn(move || {
            let _guard = AbortOnPanic(&shared.abort);
            let mut n = 0u64;
            while shared.running.load(Ordering::Acquire) > 0
                && !shared.abort.load(Ordering::Acquire)
            {
                heap.collect().expect("collect");
                n += 1;
            }
            n
        });
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let ctx = format!("{ctx} thread {t}");
                s.spawn(move || {
                    let _guard = AbortOnPanic(&shared.abort);
                    let mut p =
                        Program::new(heap, shared, splitmix(seed + t as u64), t, budget, ctx);
                    let mut i = 0u64;
                    while !shared.abort.load(Ordering::Relaxed) {
                        i += 1;
                        p.step();
                        // Past its minimum, a worker stops once every phase has been seen (or at
                        // the deadline).
                        if SCHEDULE.after_op(&mut p, i)
                            && i >= min_ops
                            && (shared.missing(kind).is_empty() || started.elapsed() > DEADLINE)
                        {
                            break;
                        }
                    }
                    shadow::finish(&mut p, &shared.abort, &shared.running)
                })
            })
            .collect();
        let totals = shadow::join_counts(workers);
        let background = collecting
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let churned = churning
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (totals, background, churned)
    });
    let st = heap.stats();
    let h = shared.histogram();
    let raced: [u64; PHASES] =
        std::array::from_fn(|i| if is_pause(Phase::ALL[i]) { h[i] } else { 0 });
    let running: [u64; PHASES] = std::array::from_fn(|i| h[i] - raced[i]);
    eprintln!(
        "{kind:>14} x{threads}: {} cycles ({background} from the collecting thread, {} \
         degraded), {} ops, {} allocs ({} large, {} garbage at once); by phase: {}; raced \
         pauses: [{}]; {} dead checked ({} reused), {} verifies; churn: {} \
         mutators ({} allocs) dropped in [{}], {} of their objects checked freed ({} \
         reused); {:.2?}",
        st.cycles,
        st.degraded_cycles(),
        totals.ops,
        totals.allocs,
        totals.large,
        totals.extra.garbage_at_once,
        show(&running),
        show(&raced),
        totals.dead_checked,
        totals.dead_reused,
        totals.verifies,
        churned.mutators,
        churned.allocs,
        show(&churned.retired),
        churned.dead_checked,
        churned.dead_reused,
        started.elapsed()
    );
    shadow::assert_sound(&ctx, &st, &totals);
    let missing = shared.missing(kind);
    assert!(
        missing.is_empty(),
        "{ctx}: no allocation observed in {missing:?} (by phase: {}) within {:?} and {} ops",
        show(&h),
        DEADLINE,
        totals.ops
    );
    Some(h)
}

fn alloc_phases(threads: usize) {
    let test = format!("alloc_phases_{threads}_threads");
    let base = base_seed(&test);
    with_timeout(TIMEOUT_SECS, &test.clone(), move || {
        let mut ran = Vec::new();
        for kind in BarrierKind::ALL {
            if run_config(kind, threads, base).is_some() {
                ran.push(kind.name());
            }
        }
        eprintln!("{test}: ran {} (seed {base})", ran.join(", "));
        assert!(!ran.is_empty(), "{test}: no barrier could run");
    });
}

#[test]
fn alloc_phases_1_thread() {
    alloc_phases(1);
}

#[test]
fn alloc_phases_2_threads() {
    alloc_phases(2);
}

#[test]
fn alloc_phases_4_threads() {
    alloc_phases(4);
}
