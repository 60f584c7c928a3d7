//! Embedding: the library as a language runtime would use it, beside the checked calls a
//! learner starts with.
//!
//! Run: `cargo run --release --example embedding`
//!
//! The program keeps a binary tree alive and replaces random subtrees of it with new
//! ones (a mutation rate held steady, as an old-generation benchmark does), once per
//! barrier. It shows four things a runtime needs:
//! - **Root scopes** ([`Mutator::root_scope`]): a function that allocates roots what it
//!   builds in its own scope; the roots are popped when the scope ends, an early `?`
//!   included, so no function leaves roots behind.
//! - **Typed payload access**: [`Mutator::read_payload`] and [`Mutator::write_payload`]
//!   read and write a scalar field, checked; their `_unchecked` forms are what a
//!   compiled language's field load and store become, with the checks left to debug
//!   builds.
//! - **The monomorphised store path** ([`Heap::run_typed`]): the work is written once,
//!   generic over the store path ([`StoreBarrier`]), and runs with the heap's barrier
//!   inlined into every reference store. A closure cannot be generic, hence the small
//!   task struct.
//! - **A steady state** ([`barrierlab::Stats::since`]): the statistics of the mutation
//!   phase alone, without the building of the tree.
//!
//! The columns: `cycles` and `fallbacks` (full collections an allocation needed) of the
//! mutation phase, `faults` the tracker served in it, `recorded` the pages or cards its
//! harvests handed to the collector, `checksum` the sum of the tree's keys at the end
//! (the same under every barrier: the same seed makes the same replacements).

use barrierlab::probe::Probe;
use barrierlab::{
    BarrierKind, Heap, HeapConfig, Mutator, MutatorTask, ObjRef, Result, StoreBarrier,
};
use rand::{Rng, SeedableRng};

/// Levels of the long-lived tree (2^17 - 1 nodes of 40 bytes: about 5 MiB).
const DEPTH: u32 = 17;
/// Levels of each replacement subtree.
const SUBTREE: u32 = 6;
/// Replacements in the mutation phase.
const REPLACEMENTS: usize = 60_000;
/// A node: two reference slots (left, right) and a payload of one `u64` key.
const KEY: usize = 0;

fn main() -> Result<()> {
    let probe = Probe::run();
    for kind in BarrierKind::ALL {
        if let Err(e) = probe.require(kind) {
            println!("{kind:<15} skipped: {e}");
            continue;
        }
        let heap = match Heap::new(HeapConfig::new().heap_bytes(24 << 20).barrier(kind)) {
            Ok(h) => h,
            Err(e) => {
                println!("{kind:<15} skipped: {e}");
                continue;
            }
        };
        let out = heap.run_typed(Mutate { seed: 7 })?;
        let s = out.steady;
        println!(
            "{kind:<15} cycles {:>3}  fallbacks {:>2}  faults {:>6}  recorded {:>6}  checksum {}",
            s.cycles,
            s.fallbacks(),
            s.tracker.faults,
            s.tracker.recorded,
            out.checksum
        );
    }
    Ok(())
}

/// What the mutation phase measured and left.
struct Outcome {
    steady: barrierlab::Stats,
    checksum: u64,
}

/// The work, generic over the store path.
struct Mutate {
    seed: u64,
}

impl MutatorTask for Mutate {
    type Output = Result<Outcome>;

    fn run<B: StoreBarrier>(self, m: &mut Mutator<B>) -> Result<Outcome> {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(self.seed);
        let tree = build(m, DEPTH, 1)?;
        let root = m.push_root(tree)?;
        let before = m.heap().stats();
        for _ in 0..REPLACEMENTS {
            // Walk down to a random node a subtree's height above the leaves, then hang
            // a new subtree under it in place of one of its children.
            let mut node = m.root(root).expect("the tree is rooted");
            for _ in 0..DEPTH - SUBTREE - 1 {
                // SAFETY: every inner node of the tree has two children, and `node` is
                // reachable from the root, so live.
                node = unsafe { m.read_ref_unchecked(node, rng.random_range(0..2)) }
                    .expect("an inner node has children");
            }
            // `build` allocates, and may collect: `node` must stay rooted meanwhile.
            let mut scope = m.root_scope();
            scope.push_root(node)?;
            let key = rng.random_range(0..1_000);
            let fresh = build(&mut scope, SUBTREE, key)?;
            let side = rng.random_range(0..2);
            // SAFETY: `node` is live (rooted by the scope), has two slots, and `fresh`
            // was just allocated in this heap.
            unsafe { scope.write_ref_unchecked(node, side, Some(fresh)) };
        }
        let steady = m.heap().stats().since(&before);
        let checksum = sum(m, m.root(root).expect("the tree is rooted"))?;
        m.pop_root();
        Ok(Outcome { steady, checksum })
    }
}

/// A complete tree of `depth` levels whose keys are all `key`. Its roots live in a scope
/// of their own: whatever happens, the caller's root stack is as it was.
fn build<B: StoreBarrier>(m: &mut Mutator<B>, depth: u32, key: u64) -> Result<ObjRef> {
    let mut scope = m.root_scope();
    let node = scope.alloc(2, 8)?;
    scope.write_payload(node, KEY, key)?;
    if depth > 1 {
        let at = scope.push_root(node)?;
        for side in 0..2 {
            let child = build(&mut scope, depth - 1, key)?;
            let parent = scope.root(at).expect("rooted above");
            scope.write_ref(parent, side, Some(child))?;
        }
    }
    Ok(node)
}

/// The sum of the keys under `node`, by the unchecked load a compiled language would
/// emit (an explicit stack: the tree is deep).
fn sum<B: StoreBarrier>(m: &Mutator<B>, node: ObjRef) -> Result<u64> {
    let mut total = 0u64;
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        // SAFETY: `n` is reachable from the rooted tree and nothing allocates here, so
        // it stays live; every node has a `u64` key at `KEY` and two slots.
        unsafe {
            total = total.wrapping_add(m.read_payload_unchecked::<u64>(n, KEY));
            stack.extend((0..2).filter_map(|i| m.read_ref_unchecked(n, i)));
        }
    }
    Ok(total)
}
