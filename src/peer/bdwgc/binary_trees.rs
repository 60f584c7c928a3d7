//! Binary trees over `GC_malloc`: [`crate::workload::binary_trees`] step for step, with
//! GCBench's node and tree building ([`super::gcbench`]).
//!
//! The same work as barrierlab's thread 0: the long-lived complete tree of `depth` built
//! top-down, then `operations` operations, each a walk along a random path to a node at
//! level `depth - subtree - 1`, a fresh complete subtree of `subtree` depth built
//! bottom-up and stored into a random child slot of that node, and `swaps` exchanges of
//! one child subtree of two random nodes at a random level. The random draws are the
//! same, in the same order, from the same generator with the same seed and of the same
//! types (a slot is a `usize` draw, a level a `u32` one), so the same subtrees are replaced
//! and swapped. At the end the tree is counted, every leaf checked to be at `depth`.
//!
//! Roots: the tree's root and the walk's nodes are plain locals, the fresh subtree is held
//! in the locals of the recursion that builds it, as in GCBench (see [`super`] for why
//! bdwgc sees them). The count at the end allocates from Rust's allocator only, so no
//! collection runs while its stack holds the only copies of some node pointers.

use std::ptr::NonNull;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::gcbench::{Bench, Exhausted, Node};
use crate::error::{Error, Result};
use crate::workload::BinaryTreesParams;

/// The child in `slot` (0: left, 1: right) of an inner node.
///
/// # Safety
/// `node` is a live node of the complete tree the caller holds, above the leaves (so both
/// its slots are set); nothing allocates while the read is in flight.
#[inline(always)]
unsafe fn child(node: NonNull<Node>, slot: usize) -> NonNull<Node> {
    // SAFETY: `node` is live (the caller's contract); a plain read of one field.
    let c = unsafe {
        if slot == 0 {
            (*node.as_ptr()).left
        } else {
            (*node.as_ptr()).right
        }
    };
    NonNull::new(c).expect("an inner node has two children")
}

/// Stores `child` into `slot` of `node`.
///
/// # Safety
/// `node` and `child` are live nodes, reachable from pointers the caller holds; no
/// reference to `node` exists.
#[inline(always)]
unsafe fn set_child(node: NonNull<Node>, slot: usize, child: NonNull<Node>) {
    // SAFETY: as the caller promises; a plain store through the raw pointer.
    unsafe {
        if slot == 0 {
            (*node.as_ptr()).left = child.as_ptr();
        } else {
            (*node.as_ptr()).right = child.as_ptr();
        }
    }
}

/// A random node at `level` (the root is level 0), drawing one slot per level as
/// barrierlab's `walk` does.
///
/// # Safety
/// `root` is the live root of a complete tree deeper than `level`.
#[inline(always)]
unsafe fn walk(rng: &mut SmallRng, root: NonNull<Node>, level: u32) -> NonNull<Node> {
    let mut n = root;
    for _ in 0..level {
        let slot: usize = rng.random_range(0..2);
        // SAFETY: `n` is at a level above `level`, so above the leaves.
        n = unsafe { child(n, slot) };
    }
    n
}

/// Counts the nodes of the tree under `root`; an error if a node's children do not
/// make it complete to `depth` (a leaf above the bottom, or children below it).
fn count(root: NonNull<Node>, depth: u32) -> Result<u64> {
    let (mut n, mut stack) = (0, vec![(root, depth)]);
    while let Some((node, depth)) = stack.pop() {
        n += 1;
        // SAFETY: `node` is reachable from `root`, which the caller holds; nothing here
        // allocates from bdwgc, so no collection runs during the count.
        let (l, r) = unsafe { ((*node.as_ptr()).left, (*node.as_ptr()).right) };
        match (NonNull::new(l), NonNull::new(r), depth) {
            (None, None, 0) => {}
            (Some(l), Some(r), d) if d > 0 => stack.extend([(r, d - 1), (l, d - 1)]),
            _ => {
                return Err(Error::Misbehaved {
                    mechanism: "bdwgc (binary trees)",
                    seen: format!(
                        "a node {depth} levels above the leaves has children {l:?}, {r:?}"
                    ),
                });
            }
        }
    }
    Ok(n)
}

/// Runs binary trees with `p` as barrierlab's thread 0 does; returns the allocation calls
/// made (the tree's nodes and each operation's subtree).
pub(super) fn run(bench: &Bench, p: &BinaryTreesParams) -> Result<u64> {
    if p.depth == 0 {
        return Err(Error::InvalidArgument(
            "binary trees: the long-lived tree needs a depth of at least 1".into(),
        ));
    }
    let exhausted = |Exhausted| Error::OutOfMemory {
        requested: std::mem::size_of::<Node>(),
        sizing: None,
    };
    // Thread 0's generator: the seed mixed with 0.
    let thread: u64 = 0;
    let mut rng = SmallRng::seed_from_u64(p.seed ^ thread.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let root = bench.new_node().map_err(exhausted)?;
    bench.populate(p.depth, root).map_err(exhausted)?;
    // The subtree depth barrierlab uses (`BinaryTreesParams::subtree`): at most
    // `depth - 1`, so that a replaced subtree has a parent.
    let sub = p.subtree_depth.min(p.depth - 1);
    for _ in 0..p.operations {
        // 1. Replace.
        // SAFETY: `root` is the live root of the complete tree of `depth`, and
        // `depth - sub - 1 < depth`.
        let parent = unsafe { walk(&mut rng, root, p.depth - sub - 1) };
        let side: usize = rng.random_range(0..2);
        let fresh = bench.make_tree(sub).map_err(exhausted)?;
        // SAFETY: `parent` is in the tree (reachable from `root` across the build, which
        // no one else changes), `fresh` was just built and is held in a local.
        unsafe { set_child(parent, side, fresh) };
        // 2. Swap: one child subtree of each of two nodes of one level.
        for _ in 0..p.swaps {
            let level: u32 = rng.random_range(0..p.depth);
            // SAFETY: `level < depth`, so both nodes are inner nodes of the tree.
            let (a, b) = unsafe { (walk(&mut rng, root, level), walk(&mut rng, root, level)) };
            let (sa, sb): (usize, usize) = (rng.random_range(0..2), rng.random_range(0..2));
            // SAFETY: `a` and `b` are inner nodes of the tree; the two children are
            // read before either store, and both stay reachable (each is stored into
            // the other's slot); nothing allocates in between.
            unsafe {
                let (ca, cb) = (child(a, sa), child(b, sb));
                set_child(a, sa, cb);
                set_child(b, sb, ca);
            }
        }
    }
    let nodes = count(root, p.depth)?;
    let want = BinaryTreesParams::tree_size(p.depth);
    if nodes != want {
        return Err(Error::Misbehaved {
            mechanism: "bdwgc (binary trees)",
            seen: format!("the long-lived tree has {nodes} nodes, not {want}"),
        });
    }
    Ok(bench.allocs.get())
}
