//! GCBench (John Ellis and Pete Kovac, modified by Hans Boehm): binary trees built top
//! down and bottom up, a long-lived tree and a large array kept alive throughout.
//!
//! The classic parameters are kept so that the numbers can be set beside other
//! collectors': stretch tree depth 18, long-lived tree depth 16, an array of 500,000
//! doubles, trees of depth 4..=16 in steps of 2, each built `2 * treesize(18) /
//! treesize(d)` times top-down ("populate") and as many times bottom-up. A node has two
//! reference slots (left, right) and 8 payload bytes (the classic two ints).
//!
//! `repeat` runs the whole benchmark that many times in a row (each time with a new
//! long-lived tree and array; the previous ones become garbage), so that a run allocates
//! a multiple of its heap while the live set stays that of one run
//! ([`crate::workload::Workload::scaled_to_heap`]).
//!
//! Rooting: the mutator's root stack is the shadow stack. Every node that is only in a
//! Rust local across an allocation is pushed first; `populate` writes each new node into
//! its (already reachable) parent before allocating the next.
//!
//! Stores and loads are the unchecked ones a compiled language would emit
//! ([`Mutator::write_ref_unchecked`]): every node has its two slots, and every node
//! stored or loaded is live (rooted or reachable from a root), which is what the checked
//! calls would verify. Debug builds still verify it.

use crate::barrier::StoreBarrier;
use crate::error::Result;
use crate::heap::ObjRef;
use crate::mutator::Mutator;

/// GCBench's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcBenchParams {
    /// Depth of the stretch tree (classic: 18).
    pub stretch_depth: u32,
    /// Depth of the long-lived tree (classic: 16).
    pub long_lived_depth: u32,
    /// Elements of the array of doubles (classic: 500,000).
    pub array_len: usize,
    /// Smallest temporary tree depth (classic: 4).
    pub min_depth: u32,
    /// Largest temporary tree depth (classic: 16).
    pub max_depth: u32,
    /// Runs of the whole benchmark, one after the other (classic: 1).
    pub repeat: u32,
}

impl GcBenchParams {
    /// GCBench sized for about `live_bytes` of long-lived data, split between the
    /// long-lived tree (the deepest complete tree of at most half of it) and the array of
    /// doubles (the rest); the stretch tree one level deeper than the long-lived tree, and
    /// temporary trees from depth 4 up to two levels below it. The algorithm is the
    /// classic one; only its sizes follow the live set (the classic parameters hold about
    /// 6 MiB).
    pub fn for_live(live_bytes: u64) -> GcBenchParams {
        let node = crate::workload::cell_bytes(2, NODE_PAYLOAD);
        let mut depth = 4;
        while Self::tree_size(depth + 1) * node <= live_bytes / 2 {
            depth += 1;
        }
        let tree = Self::tree_size(depth) * node;
        GcBenchParams {
            stretch_depth: depth + 1,
            long_lived_depth: depth,
            array_len: (live_bytes.saturating_sub(tree) / 8).max(1) as usize,
            min_depth: 4,
            max_depth: depth.saturating_sub(2).max(4),
            repeat: 1,
        }
    }

    /// Bytes of the long-lived data: the long-lived tree's cells and the array's pages.
    pub fn live_bytes(&self) -> u64 {
        Self::tree_size(self.long_lived_depth) * crate::workload::cell_bytes(2, NODE_PAYLOAD)
            + crate::workload::cell_bytes(0, self.array_len * 8)
    }

    /// The classic parameters.
    pub const CLASSIC: GcBenchParams = GcBenchParams {
        stretch_depth: 18,
        long_lived_depth: 16,
        array_len: 500_000,
        min_depth: 4,
        max_depth: 16,
        repeat: 1,
    };

    /// A scaled-down run for CI and `--quick` (about 1/16 of the work).
    pub const QUICK: GcBenchParams = GcBenchParams {
        stretch_depth: 14,
        long_lived_depth: 12,
        array_len: 50_000,
        min_depth: 4,
        max_depth: 12,
        repeat: 1,
    };

    /// Nodes in a complete tree of `depth`.
    pub fn tree_size(depth: u32) -> u64 {
        (1 << (depth + 1)) - 1
    }

    /// How many trees of `depth` each phase builds.
    pub fn iterations(&self, depth: u32) -> u64 {
        2 * Self::tree_size(self.stretch_depth) / Self::tree_size(depth)
    }

    /// Nodes allocated by one run, all repetitions (the work, for rates).
    pub fn nodes_allocated(&self) -> u64 {
        self.nodes_per_repeat() * self.repeat as u64
    }

    /// Nodes allocated by one run of the benchmark.
    fn nodes_per_repeat(&self) -> u64 {
        let mut n = Self::tree_size(self.stretch_depth) + Self::tree_size(self.long_lived_depth);
        let mut d = self.min_depth;
        while d <= self.max_depth {
            n += 2 * self.iterations(d) * Self::tree_size(d);
            d += 2;
        }
        n
    }

    /// Bytes one run of the benchmark allocates: its nodes' cells and the array's pages.
    pub fn bytes_per_repeat(&self) -> u64 {
        self.nodes_per_repeat() * crate::workload::cell_bytes(2, NODE_PAYLOAD)
            + crate::workload::cell_bytes(0, self.array_len * 8)
    }
}

const LEFT: usize = 0;
const RIGHT: usize = 1;
const NODE_PAYLOAD: usize = 8;

#[inline(always)]
fn new_node<B: StoreBarrier>(m: &mut Mutator<B>) -> Result<ObjRef> {
    m.alloc(2, NODE_PAYLOAD)
}

/// `parent.slot = child`, both live nodes (two slots each).
#[inline(always)]
fn link<B: StoreBarrier>(m: &mut Mutator<B>, parent: ObjRef, slot: usize, child: ObjRef) {
    debug_assert!(slot == LEFT || slot == RIGHT);
    // SAFETY: every node GCBench makes has two slots, and callers pass nodes that are
    // live: just allocated, rooted, or reachable from a root (see the module docs).
    unsafe { m.write_ref_unchecked(parent, slot, Some(child)) }
}

/// Gives `node` two children, recursively, to `depth` (top-down). `node` must be
/// reachable from a root.
fn populate<B: StoreBarrier>(m: &mut Mutator<B>, depth: u32, node: ObjRef) -> Result<()> {
    if depth == 0 {
        return Ok(());
    }
    let left = new_node(m)?;
    link(m, node, LEFT, left);
    let right = new_node(m)?;
    link(m, node, RIGHT, right);
    populate(m, depth - 1, left)?;
    populate(m, depth - 1, right)
}

/// Builds a tree of `depth` bottom-up; the result is rooted at the top of the root stack
/// (the caller pops it).
fn make_tree<B: StoreBarrier>(m: &mut Mutator<B>, depth: u32) -> Result<ObjRef> {
    if depth == 0 {
        let leaf = new_node(m)?;
        m.push_root(leaf)?;
        return Ok(leaf);
    }
    let left = make_tree(m, depth - 1)?;
    let right = make_tree(m, depth - 1)?;
    let node = new_node(m)?;
    link(m, node, LEFT, left);
    link(m, node, RIGHT, right);
    m.pop_root();
    m.pop_root();
    m.push_root(node)?;
    Ok(node)
}

/// Counts the nodes of a tree (to check the long-lived tree survived intact), with a
/// safepoint poll every [`super::CHECK_POLL`] nodes. The nodes on its stack stay live
/// across a pause: they are reachable from the rooted tree, and nothing is moved.
fn count<B: StoreBarrier>(m: &mut Mutator<B>, node: ObjRef) -> Result<u64> {
    let (mut n, mut stack) = (0, vec![node]);
    while let Some(node) = stack.pop() {
        n += 1;
        if n % super::CHECK_POLL == 0 {
            m.safepoint();
        }
        for slot in [LEFT, RIGHT] {
            if let Some(child) = m.read_ref(node, slot)? {
                stack.push(child);
            }
        }
    }
    Ok(n)
}

/// Runs GCBench `p.repeat` times on `m`. Returns the number of nodes allocated.
pub fn run<B: StoreBarrier>(m: &mut Mutator<B>, p: &GcBenchParams) -> Result<u64> {
    for _ in 0..p.repeat {
        run_once(m, p)?;
    }
    Ok(p.nodes_allocated())
}

/// One run of the benchmark.
fn run_once<B: StoreBarrier>(m: &mut Mutator<B>, p: &GcBenchParams) -> Result<()> {
    let base = m.roots_len();
    // Stretch the heap.
    make_tree(m, p.stretch_depth)?;
    m.pop_root();
    // The long-lived tree and array, rooted for the whole run.
    let long_lived = new_node(m)?;
    m.push_root(long_lived)?;
    populate(m, p.long_lived_depth, long_lived)?;
    let array = m.alloc(0, p.array_len * 8)?;
    m.push_root(array)?;
    for i in 1..p.array_len / 2 {
        m.write_payload(array, i * 8, 1.0 / i as f64)?;
        // A safepoint poll per page written, as a compiled loop's back-edge has: the
        // array of the scaled GCBench spans thousands of pages, each a write fault under a
        // page tracker, and a pause requested meanwhile waited for the whole fill (remark
        // pauses of 200 ms under `uffd-wp` on a loaded machine, all of it time to
        // safepoint).
        if i % (crate::sys::PAGE_SIZE / 8) == 0 {
            m.safepoint();
        }
    }
    let mut depth = p.min_depth;
    while depth <= p.max_depth {
        let iters = p.iterations(depth);
        // Top-down.
        for _ in 0..iters {
            let temp = new_node(m)?;
            m.push_root(temp)?;
            populate(m, depth, temp)?;
            m.pop_root();
        }
        // Bottom-up.
        for _ in 0..iters {
            make_tree(m, depth)?;
            m.pop_root();
        }
        depth += 2;
    }
    // The survivors must be intact.
    let nodes = count(m, long_lived)?;
    assert_eq!(
        nodes,
        GcBenchParams::tree_size(p.long_lived_depth),
        "GCBench: the long-lived tree lost nodes"
    );
    let mut probe = [0u8; 8];
    let check = (p.array_len / 2 - 1).min(1000);
    m.read_bytes(array, check * 8, &mut probe)?;
    assert_eq!(
        f64::from_ne_bytes(probe),
        1.0 / check as f64,
        "GCBench: the array changed"
    );
    m.truncate_roots(base);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_parameters_match_the_original() {
        let p = GcBenchParams::CLASSIC;
        assert_eq!(GcBenchParams::tree_size(18), 524_287);
        assert_eq!(p.iterations(4), 2 * 524_287 / 31);
        assert_eq!(p.iterations(16), 2 * 524_287 / 131_071);
    }
}
