//! Binary trees with a long-lived tree that is rewired: a variant of the binary-trees
//! benchmark (Hans Boehm's GCBench, after John Ellis and Pete Kovac, and the Computer
//! Language Benchmarks Game's `binary-trees`), in which the long-lived tree does not sit
//! still while short-lived trees come and go, but has its subtrees replaced and swapped.
//!
//! The tree: a complete binary tree of `depth` (GCBench's node: two reference slots and 8
//! payload bytes), built top-down at the start as GCBench builds its long-lived tree,
//! one root. An operation:
//! 1. **replace**: walk from the root along a random path to a node at level `depth -
//!    subtree_depth - 1`, build a fresh complete tree of `subtree_depth` bottom-up (as
//!    GCBench's `make_tree`), and store it into a random child slot of that node: one
//!    old-to-young store into an old node, and the replaced subtree becomes garbage;
//! 2. **swap** (`swaps` times): pick two random nodes at a random level, and exchange
//!    one child subtree of each: two old-to-old stores into old nodes far apart.
//!
//! The tree stays complete (every leaf at `depth`), so the live set is fixed at
//! `tree_size(depth)` nodes, and the tree is counted at the end to check that nothing was
//! lost. What it stresses: reference stores into an old structure at random places
//! (every replace and swap dirties an old page or card that the collector must rescan,
//! spread over the whole tree), with young subtrees hung from old nodes while the
//! collector marks, and the garbage of whole subtrees at a steady rate.
//!
//! Allocation: `tree_size(subtree_depth)` 32-byte cells per operation. The defaults
//! (depth 16, subtrees of depth 5, two swaps) measure 2,226 bytes per operation (the
//! long-lived tree's 4 MiB included) and run in a heap of 5 MiB per thread (with `none`).
//!
//! Rooting: the tree's root is rooted; a fresh subtree is rooted while it is built (as
//! in GCBench); the walk's nodes are reachable from the root across the build because
//! only this thread changes its tree. Nothing on the Rust side is allocated per
//! operation.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::barrier::StoreBarrier;
use crate::error::{Error, Result};
use crate::heap::ObjRef;
use crate::mutator::Mutator;
use crate::workload::cell_bytes;

/// The knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinaryTreesParams {
    /// Depth of the long-lived tree (levels `0..=depth`).
    pub depth: u32,
    /// Depth of each replacement subtree (less than `depth`).
    pub subtree_depth: u32,
    /// Operations (replacements) per thread.
    pub operations: u64,
    /// Subtree swaps per operation.
    pub swaps: u32,
    /// Seed of the random choices.
    pub seed: u64,
}

impl Default for BinaryTreesParams {
    fn default() -> Self {
        BinaryTreesParams {
            depth: 16,
            subtree_depth: 5,
            operations: 20_000,
            swaps: 2,
            seed: 42,
        }
    }
}

const LEFT: usize = 0;
const RIGHT: usize = 1;
const NODE_PAYLOAD: usize = 8;

impl BinaryTreesParams {
    /// These parameters with the deepest long-lived tree that fits in `live_bytes` (at
    /// least one level deeper than the subtrees); the other knobs unchanged.
    pub fn with_live(self, live_bytes: u64) -> BinaryTreesParams {
        let node = cell_bytes(2, NODE_PAYLOAD);
        let mut depth = self.subtree_depth + 1;
        while Self::tree_size(depth + 1) * node <= live_bytes {
            depth += 1;
        }
        BinaryTreesParams { depth, ..self }
    }

    /// Nodes in a complete tree of `depth`.
    pub fn tree_size(depth: u32) -> u64 {
        (1 << (depth + 1)) - 1
    }

    /// The subtree depth actually used: at most `depth - 1`, so that a replaced subtree
    /// has a parent.
    fn subtree(&self) -> u32 {
        self.subtree_depth.min(self.depth.saturating_sub(1))
    }

    /// Bytes allocated before the first operation: the long-lived tree.
    pub fn setup_bytes(&self) -> u64 {
        Self::tree_size(self.depth) * cell_bytes(2, NODE_PAYLOAD)
    }

    /// Bytes allocated per operation: one subtree.
    pub fn bytes_per_operation(&self) -> u64 {
        Self::tree_size(self.subtree()) * cell_bytes(2, NODE_PAYLOAD)
    }

    /// Reference stores per thread: building the long-lived tree (two per inner node),
    /// and per operation the subtree's inner nodes (two each), its link, and two per
    /// swap.
    pub fn stores(&self) -> u64 {
        let inner = |d: u32| Self::tree_size(d) - (1 << d);
        let per_op = 2 * inner(self.subtree()) + 1 + 2 * self.swaps as u64;
        2 * inner(self.depth) + per_op * self.operations
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BinaryTreesOutcome {
    /// Operations (replacements).
    pub operations: u64,
    /// Reference stores.
    pub ref_stores: u64,
}

#[inline(always)]
fn load<B: StoreBarrier>(m: &Mutator<B>, node: ObjRef, slot: usize) -> ObjRef {
    // SAFETY: every node has two slots, and callers pass nodes of the rooted tree or of
    // a rooted subtree (see the module docs).
    unsafe { m.read_ref_unchecked(node, slot) }.expect("an inner node has two children")
}

#[inline(always)]
fn link<B: StoreBarrier>(
    m: &mut Mutator<B>,
    stores: &mut u64,
    parent: ObjRef,
    slot: usize,
    child: ObjRef,
) {
    *stores += 1;
    // SAFETY: as in `load`; `child` is a live node (of the tree, or rooted).
    unsafe { m.write_ref_unchecked(parent, slot, Some(child)) }
}

/// Gives `node` (reachable from a root) two children, recursively, to `depth`.
fn populate<B: StoreBarrier>(
    m: &mut Mutator<B>,
    stores: &mut u64,
    depth: u32,
    node: ObjRef,
) -> Result<()> {
    if depth == 0 {
        return Ok(());
    }
    let left = m.alloc(2, NODE_PAYLOAD)?;
    link(m, stores, node, LEFT, left);
    let right = m.alloc(2, NODE_PAYLOAD)?;
    link(m, stores, node, RIGHT, right);
    populate(m, stores, depth - 1, left)?;
    populate(m, stores, depth - 1, right)
}

/// Builds a tree of `depth` bottom-up, rooted at the top of the root stack (the caller
/// pops it).
fn make_tree<B: StoreBarrier>(m: &mut Mutator<B>, stores: &mut u64, depth: u32) -> Result<ObjRef> {
    if depth == 0 {
        let leaf = m.alloc(2, NODE_PAYLOAD)?;
        m.push_root(leaf)?;
        return Ok(leaf);
    }
    let left = make_tree(m, stores, depth - 1)?;
    let right = make_tree(m, stores, depth - 1)?;
    let node = m.alloc(2, NODE_PAYLOAD)?;
    link(m, stores, node, LEFT, left);
    link(m, stores, node, RIGHT, right);
    m.pop_root();
    m.pop_root();
    m.push_root(node)?;
    Ok(node)
}

/// A random node at `level` (the root is level 0).
fn walk<B: StoreBarrier>(m: &Mutator<B>, rng: &mut SmallRng, root: ObjRef, level: u32) -> ObjRef {
    let mut n = root;
    for _ in 0..level {
        n = load(m, n, rng.random_range(0..2));
    }
    n
}

/// Counts the nodes of a tree and checks that every leaf is at `depth` (checked loads),
/// with a safepoint poll every [`super::CHECK_POLL`] nodes (the nodes on its stack are
/// reachable from the rooted tree, so they stay live across a pause).
fn count<B: StoreBarrier>(m: &mut Mutator<B>, root: ObjRef, depth: u32) -> Result<u64> {
    let (mut n, mut stack) = (0, vec![(root, depth)]);
    while let Some((node, depth)) = stack.pop() {
        n += 1;
        if n % super::CHECK_POLL == 0 {
            m.safepoint();
        }
        let (l, r) = (m.read_ref(node, LEFT)?, m.read_ref(node, RIGHT)?);
        match (l, r, depth) {
            (None, None, 0) => {}
            (Some(l), Some(r), d) if d > 0 => stack.extend([(r, d - 1), (l, d - 1)]),
            _ => panic!(
                "binary trees: a node {depth} levels above the leaves has children {l:?}, {r:?}"
            ),
        }
    }
    Ok(n)
}

/// Runs binary trees on `m`.
pub fn run<B: StoreBarrier>(
    m: &mut Mutator<B>,
    p: &BinaryTreesParams,
    thread: usize,
) -> Result<BinaryTreesOutcome> {
    if p.depth == 0 {
        return Err(Error::InvalidArgument(
            "binary trees: the long-lived tree needs a depth of at least 1".into(),
        ));
    }
    let base = m.roots_len();
    let mut rng =
        SmallRng::seed_from_u64(p.seed ^ (thread as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut stores = 0;
    let root = m.alloc(2, NODE_PAYLOAD)?;
    m.push_root(root)?;
    populate(m, &mut stores, p.depth, root)?;
    let sub = p.subtree();
    for _ in 0..p.operations {
        // 1. Replace.
        let parent = walk(m, &mut rng, root, p.depth - sub - 1);
        let side = rng.random_range(0..2);
        let fresh = make_tree(m, &mut stores, sub)?;
        link(m, &mut stores, parent, side, fresh);
        m.pop_root();
        // 2. Swap: one child subtree of each of two nodes of one level.
        for _ in 0..p.swaps {
            let level = rng.random_range(0..p.depth);
            let (a, b) = (
                walk(m, &mut rng, root, level),
                walk(m, &mut rng, root, level),
            );
            let (sa, sb) = (rng.random_range(0..2), rng.random_range(0..2));
            let (ca, cb) = (load(m, a, sa), load(m, b, sb));
            link(m, &mut stores, a, sa, cb);
            link(m, &mut stores, b, sb, ca);
        }
    }
    let nodes = count(m, root, p.depth)?;
    assert_eq!(
        nodes,
        BinaryTreesParams::tree_size(p.depth),
        "binary trees: the long-lived tree lost nodes"
    );
    m.truncate_roots(base);
    Ok(BinaryTreesOutcome {
        operations: p.operations,
        ref_stores: stores,
    })
}
