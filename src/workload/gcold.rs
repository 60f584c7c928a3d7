//! GCOld, the old-generation benchmark of Sun Microsystems Laboratories, ported: an
//! array of long-lived binary trees replaced in FIFO order, short-lived garbage, and a
//! rate of pointer stores into the old trees.
//!
//! **Source.** GCOld 1.0 (`GCOld.java`, "Copyright (c) 2001 Sun Microsystems, Inc."),
//! written by David Detlefs "to exercise large old-generation heaps during research on
//! concurrent collection", with bugs found by Matthias Jacob and a rewrite by Will
//! Clinger; its README is "GCOld: a benchmark to stress old-generation collection". It is
//! distributed in the GC benchmark archive at
//! <http://www.cs.cmu.edu/~spoons/gc/benchmarks.tar.gz>, and translated to Scheme in
//! Larceny's `test/Benchmarking/GC/gcold.sch` (<https://github.com/larcenists/larceny>),
//! whose default run is `GCOld 25 0 10 10 <steps>`. **Licence:** the Java header sends
//! the reader to a `license.terms` file for usage and redistribution, with a disclaimer of
//! all warranties; that file was not found beside any copy, and the Scheme translation
//! says "Copyright 2000 Sun Microsystems, Inc. All rights reserved." So this module holds
//! no code or text of the original: it implements the algorithm its README and program
//! describe, in barrierlab's own code, and names it as the source.
//!
//! **The benchmark.** Each thread keeps an array of complete binary trees of
//! [`GcOldParams::tree_height`] levels (a node: two reference slots and its height), as
//! many as fit in [`GcOldParams::live_bytes`]. A *step* then
//! 1. allocates [`GcOldParams::step_bytes`] of short-lived garbage (objects of 100 words,
//!    the last one reachable until the next, as GCOld's exported array);
//! 2. does [`GcOldParams::work_units`] × `step_bytes / 10` iterations of a counting loop
//!    (mutator work that allocates nothing);
//! 3. promotes `step_bytes / short_per_long` bytes: whole new trees replace the oldest
//!    (a cursor walks the array), and the remainder is built as smaller trees, each
//!    replacing the subtree of the same height in the tree under the cursor (the descent
//!    alternates left and right, so the tree stays complete), one pointer mutation each;
//! 4. makes pointer mutations until the step has made
//!    [`GcOldParams::mutations_per_step`]: each swaps one child of a random node with the
//!    same child of a node at the same depth of another random tree (two old-to-old
//!    stores), so every tree keeps its shape.
//!
//! Lifetimes are FIFO: the oldest trees die first, the weak generational hypothesis holds
//! for the garbage of step 1, and the mutation rate is the axis on which card marking and
//! page protection trade places (a store costs the card table a byte store every time, a
//! page tracker one fault per page per cycle).
//!
//! **Parameters** (GCOld's command line `<size> <work> <ratio> <mutation> <steps>`):
//!
//! | GCOld | here | note |
//! |---|---|---|
//! | `size` (MB of live trees) | [`GcOldParams::live_bytes`] | bytes, per thread |
//! | `work` | [`GcOldParams::work_units`] | same loop: `work × n / 10` per step |
//! | `ratio` (short/long, `promoteRate`) | [`GcOldParams::short_per_long`] | promoted share `1 / (ratio + 1)` |
//! | `mutation` (`ptrMutRate`) | [`GcOldParams::mutations_per_step`] | per step of short-lived allocation |
//! | `steps` | [`GcOldParams::steps`] | scaled by [`crate::workload::Workload::scaled_to_heap`] |
//! | `MEG` = 10⁶ bytes per step | [`GcOldParams::step_bytes`] | |
//! | `treeHeight` = 14 | [`GcOldParams::tree_height`] | a tree of 16,383 nodes |
//! | `INSIGNIFICANT` = 999 | [`INSIGNIFICANT`] | promoted remainder left out |
//!
//! Differences: bytes are counted in heap cells ([`crate::workload::cell_bytes`]): a node is a 32-byte cell
//! (GCOld counts 40 bytes for a Java node), so a tree of height 14 is 512 KiB (GCOld:
//! 655 KB), and a short-lived object of 100 words is an 816-byte cell (GCOld counts 800).
//! A node's payload holds its height and a tag, and [`GcOld::check`] runs after the last
//! step and returns an error if any tree lost its shape, a node its height or tag, or two
//! trees share a node (GCOld prints `*****BUG`, and its Java version leaves the final
//! check commented out). Random choices come from a seeded [`SmallRng`] per thread.
//!
//! Rooting: the array is rooted, and a tree is rooted while it is built, each node linked
//! into its parent before the next allocation. Nothing here may allocate on the Rust side
//! per step (the promotion plan is computed once per run), nor hold an unrooted object
//! across an allocation.

mod params;

pub use params::{GcOldParams, INSIGNIFICANT, MUTATION_SWEEP, PromotionPlan};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::barrier::StoreBarrier;
use crate::error::{Error, Result};
use crate::heap::ObjRef;
use crate::mutator::Mutator;
use params::{LEFT, NODE_PAYLOAD, RIGHT, TAG, WORK_POLL, YOUNG_PAYLOAD};

/// What one run did (GCOld's end-of-run figures).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcOldOutcome {
    /// Steps done.
    pub steps: u64,
    /// Short-lived bytes allocated in the steps.
    pub young_bytes: u64,
    /// Bytes promoted in the steps (trees built after the initial ones).
    pub promoted_bytes: u64,
    /// Pointer mutations into old trees (GCOld's `actuallyMut`).
    pub mutations: u64,
    /// Reference stores, the initial trees included.
    pub ref_stores: u64,
    /// Payload writes (a node's height), the initial trees included.
    pub payload_writes: u64,
    /// The mutator work's sum (kept so that the loop is not optimised away).
    pub work_sum: u64,
    /// What the final check found.
    pub check: TreeCheck,
}

/// What [`GcOld::check`] found: every tree complete and intact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeCheck {
    /// Trees in the array.
    pub trees: u64,
    /// Distinct nodes reachable from the array.
    pub nodes: u64,
    /// An order-independent hash of the nodes' addresses: unchanged by swaps (they move
    /// nodes between trees), changed by a replacement (new nodes).
    pub fingerprint: u64,
}

/// One thread's GCOld: the array of trees, the FIFO cursor and the counters.
pub struct GcOld {
    p: GcOldParams,
    plan: PromotionPlan,
    trees: ObjRef,
    ntrees: usize,
    /// Root index of the array; the next root holds the last short-lived object.
    root: usize,
    /// The oldest tree: the next to be replaced (GCOld's `where`).
    cursor: usize,
    rng: SmallRng,
    /// Counters so far.
    pub counts: GcOldOutcome,
}

#[inline(always)]
fn load<B: StoreBarrier>(m: &Mutator<B>, node: ObjRef, slot: usize) -> Option<ObjRef> {
    // SAFETY: `node` is the rooted array (`slot` below its length) or a node of a tree
    // reachable from it or rooted (two slots), as the module docs' rooting says.
    unsafe { m.read_ref_unchecked(node, slot) }
}

impl GcOld {
    /// Allocates the array and its trees on `m` (two roots, popped by
    /// [`GcOld::release`]); `thread` varies the seed.
    pub fn new<B: StoreBarrier>(
        m: &mut Mutator<B>,
        p: &GcOldParams,
        thread: usize,
    ) -> Result<GcOld> {
        p.validate()?;
        let ntrees = p.trees() as usize;
        let trees = m.alloc(ntrees, 0)?;
        let root = m.push_root(trees)?;
        // The slot of the last short-lived object, holding the array until there is one.
        m.push_root(trees)?;
        let mut g = GcOld {
            p: *p,
            plan: p.plan(),
            trees,
            ntrees,
            root,
            cursor: 0,
            rng: SmallRng::seed_from_u64(
                p.seed ^ (thread as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ),
            counts: GcOldOutcome::default(),
        };
        for i in 0..ntrees {
            let t = g.make_tree(m, p.tree_height)?;
            g.store(m, trees, i, Some(t));
            m.pop_root();
        }
        Ok(g)
    }

    /// The index of the oldest tree, the next one a promotion replaces.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Tree `i` of the array.
    pub fn tree<B: StoreBarrier>(&self, m: &Mutator<B>, i: usize) -> Result<Option<ObjRef>> {
        m.read_ref(self.trees, i)
    }

    /// Pops the roots (and any above them): the trees become garbage.
    pub fn release<B: StoreBarrier>(self, m: &mut Mutator<B>) {
        m.truncate_roots(self.root);
    }

    #[inline(always)]
    fn store<B: StoreBarrier>(
        &mut self,
        m: &mut Mutator<B>,
        obj: ObjRef,
        slot: usize,
        v: Option<ObjRef>,
    ) {
        self.counts.ref_stores += 1;
        // SAFETY: as in `load`; `v` is null or a live node (reachable or rooted).
        unsafe { m.write_ref_unchecked(obj, slot, v) }
    }

    /// A new node of `height` (its payload written, its slots null), not yet linked.
    fn new_node<B: StoreBarrier>(&mut self, m: &mut Mutator<B>, height: u32) -> Result<ObjRef> {
        let n = m.alloc(2, NODE_PAYLOAD)?;
        m.write_bytes(n, 0, &(height as u64 | TAG << 32).to_ne_bytes())?;
        self.counts.payload_writes += 1;
        Ok(n)
    }

    /// A node's payload word, its height and tag (checked: a freed node is an error).
    fn payload_word<B: StoreBarrier>(m: &Mutator<B>, node: ObjRef) -> Result<u64> {
        let mut b = [0u8; NODE_PAYLOAD];
        m.read_bytes(node, 0, &mut b)?;
        Ok(u64::from_ne_bytes(b))
    }

    /// A complete tree of `height` levels, built top-down in pre-order (as GCOld's
    /// `makeTree`) and rooted at the top of the root stack (the caller pops it).
    fn make_tree<B: StoreBarrier>(&mut self, m: &mut Mutator<B>, height: u32) -> Result<ObjRef> {
        let top = self.new_node(m, height)?;
        m.push_root(top)?;
        self.grow(m, top, height)?;
        Ok(top)
    }

    /// Gives `node` (reachable or rooted, of `height`) its subtrees.
    fn grow<B: StoreBarrier>(
        &mut self,
        m: &mut Mutator<B>,
        node: ObjRef,
        height: u32,
    ) -> Result<()> {
        if height <= 1 {
            return Ok(());
        }
        for side in [LEFT, RIGHT] {
            let child = self.new_node(m, height - 1)?;
            self.store(m, node, side, Some(child));
            self.grow(m, child, height - 1)?;
        }
        Ok(())
    }

    /// Moves the cursor to the next oldest tree.
    fn advance(&mut self) {
        self.cursor = (self.cursor + 1) % self.ntrees;
    }

    /// Hangs `partial` (a complete tree of `height`) in place of the subtree of the same
    /// height in the tree under the cursor: the descent alternates sides, starting left
    /// for an even height (GCOld's `replaceTree`). One pointer mutation.
    fn replace_subtree<B: StoreBarrier>(
        &mut self,
        m: &mut Mutator<B>,
        partial: ObjRef,
        height: u32,
    ) -> Result<()> {
        let mut node = load(m, self.trees, self.cursor).expect("every array slot holds a tree");
        let mut left = height % 2 == 0;
        let taller = |m: &Mutator<B>, c: Option<ObjRef>| -> Result<bool> {
            Ok(match c {
                Some(c) => Self::payload_word(m, c)? & 0xffff_ffff > height as u64,
                None => false,
            })
        };
        loop {
            let (l, r) = (load(m, node, LEFT), load(m, node, RIGHT));
            let side = match (taller(m, l)?, taller(m, r)?) {
                (true, true) => {
                    node = if left { l } else { r }.expect("a taller child exists");
                    left = !left;
                    continue;
                }
                (false, false) if left => LEFT,
                (false, false) => RIGHT,
                (false, true) => LEFT,
                (true, false) => RIGHT,
            };
            self.store(m, node, side, Some(partial));
            self.counts.mutations += 1;
            return Ok(());
        }
    }

    /// Swaps one child of a random node with the same child of the node at the same
    /// path in another random tree (GCOld's `oldGenSwapSubtrees`). Two mutations.
    fn swap<B: StoreBarrier>(&mut self, m: &mut Mutator<B>) {
        let (i, j) = (
            self.rng.random_range(0..self.ntrees),
            self.rng.random_range(0..self.ntrees),
        );
        let depth = self.rng.random_range(0..self.p.tree_height);
        let mut path: u32 = self.rng.random();
        let (mut a, mut b) = (load(m, self.trees, i), load(m, self.trees, j));
        for _ in 0..depth {
            let side = (path & 1) as usize;
            a = load(m, a.expect("a node above the leaves"), side);
            b = load(m, b.expect("a node above the leaves"), side);
            path >>= 1;
        }
        let (a, b) = (a.expect("a node"), b.expect("a node"));
        let side = (path & 1) as usize;
        let (ca, cb) = (load(m, a, side), load(m, b, side));
        self.store(m, a, side, cb);
        self.store(m, b, side, ca);
        self.counts.mutations += 2;
    }

    /// One step (see the module docs).
    pub fn step<B: StoreBarrier>(&mut self, m: &mut Mutator<B>) -> Result<()> {
        let mutations_before = self.counts.mutations;
        // 1. Short-lived garbage; the last object stays reachable until the next.
        for _ in 0..self.p.young_per_step() {
            let young = m.alloc(0, YOUNG_PAYLOAD)?;
            m.set_root(self.root + 1, Some(young))?;
            self.counts.young_bytes += GcOldParams::young_bytes();
        }
        // 2. Mutator work.
        let mut sum = 0u64;
        for k in 0..self.p.work_units * self.p.step_bytes / 10 {
            sum = std::hint::black_box(sum + 1);
            if k % WORK_POLL == 0 {
                m.safepoint();
            }
        }
        self.counts.work_sum = self.counts.work_sum.wrapping_add(sum);
        // 3. Promotion: whole trees replace the oldest, smaller ones replace subtrees.
        for _ in 0..self.plan.full_trees {
            let t = self.make_tree(m, self.p.tree_height)?;
            self.store(m, self.trees, self.cursor, Some(t));
            m.pop_root();
            self.advance();
        }
        for k in 0..self.plan.partial_heights.len() {
            let h = self.plan.partial_heights[k];
            let t = self.make_tree(m, h)?;
            self.replace_subtree(m, t, h)?;
            m.pop_root();
            self.advance();
        }
        self.counts.promoted_bytes += self.p.promoted_bytes_per_step();
        // 4. Pointer mutation, up to the step's rate.
        let made = self.counts.mutations - mutations_before;
        let swaps = self.p.mutations_per_step.saturating_sub(made) / 2;
        // A poll per swap (one load beside two random walks down the trees): a swap's
        // two stores may each wait in a write fault, and polled every 1,024 swaps a
        // pause waited for up to 2,048 of them (GCOld at 10,000 mutations per MB, 132
        // MiB: times to safepoint of 11 to 73 ms under `uffd-wp`).
        for _ in 0..swaps {
            m.safepoint();
            self.swap(m);
        }
        self.counts.steps += 1;
        Ok(())
    }

    /// Walks every tree with checked loads: each is complete with
    /// [`GcOldParams::tree_height`] levels, each node holds its height and the tag, and
    /// no node is in two places. A failure is [`Error::Misbehaved`] naming the heap's
    /// barrier: the heap freed or changed an object the program could reach.
    ///
    /// It polls a safepoint every [`super::CHECK_POLL`] nodes; the nodes on its stack
    /// are reachable from the rooted trees, so they stay live across a pause.
    pub fn check<B: StoreBarrier>(&self, m: &mut Mutator<B>) -> Result<TreeCheck> {
        let mechanism = m.heap().barrier().name();
        let lost = |what: String| Error::Misbehaved {
            mechanism,
            seen: format!("gcold: {what} (a reachable object was freed or overwritten)"),
        };
        let (base, end) = m.heap().range();
        let seen = crate::bitmap::Bitmap::new((end - base) / crate::heap::size_class::GRANULE)?;
        let mut out = TreeCheck {
            trees: self.ntrees as u64,
            ..TreeCheck::default()
        };
        let mut stack = Vec::new();
        for i in 0..self.ntrees {
            let top = m
                .read_ref(self.trees, i)
                .map_err(|e| lost(format!("array slot {i}: {e}")))?;
            stack.push((top, self.p.tree_height, 0u32));
            while let Some((node, height, depth)) = stack.pop() {
                let at = || format!("tree {i}, depth {depth}");
                let Some(node) = node else {
                    return Err(lost(format!(
                        "{}: a node of height {height} is missing",
                        at()
                    )));
                };
                let word =
                    Self::payload_word(m, node).map_err(|e| lost(format!("{}: {e}", at())))?;
                if word != height as u64 | TAG << 32 {
                    return Err(lost(format!(
                        "{}: a node of height {height} holds {word:#x}",
                        at()
                    )));
                }
                if seen.set((node.addr() - base) / crate::heap::size_class::GRANULE) {
                    return Err(lost(format!("{}: node {node:?} is in two places", at())));
                }
                out.nodes += 1;
                if out.nodes % super::CHECK_POLL == 0 {
                    m.safepoint();
                }
                out.fingerprint = out.fingerprint.wrapping_add(mix(node.addr() as u64));
                for side in [LEFT, RIGHT] {
                    let child = m
                        .read_ref(node, side)
                        .map_err(|e| lost(format!("{}: {e}", at())))?;
                    match (height, child) {
                        (1, None) => {}
                        (1, Some(c)) => {
                            return Err(lost(format!("{}: a leaf has a child {c:?}", at())));
                        }
                        _ => stack.push((child, height - 1, depth + 1)),
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A 64-bit mixer (splitmix64's finaliser), so that the fingerprint's sum depends on
/// every address bit.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Runs GCOld on `m`: the trees, `p.steps` steps, and the check (an error if it fails).
pub fn run<B: StoreBarrier>(
    m: &mut Mutator<B>,
    p: &GcOldParams,
    thread: usize,
) -> Result<GcOldOutcome> {
    let mut g = GcOld::new(m, p, thread)?;
    for _ in 0..p.steps {
        g.step(m)?;
    }
    let check = g.check(m)?;
    let out = GcOldOutcome { check, ..g.counts };
    g.release(m);
    Ok(out)
}
