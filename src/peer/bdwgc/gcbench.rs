//! GCBench over `GC_malloc`: its node, and the tree building that the binary-trees port
//! ([`super::binary_trees`]) shares.

use std::cell::Cell;
use std::ffi::c_void;
use std::ptr::NonNull;

use super::Bdwgc;
use crate::error::{Error, Result};
use crate::workload::GcBenchParams;

/// A GCBench node: two references and 8 payload bytes (the classic two ints, never read),
/// as in [`crate::workload::gcbench`].
#[repr(C)]
pub(super) struct Node {
    pub(super) left: *mut Node,
    pub(super) right: *mut Node,
    _payload: [u8; 8],
}

const _: () = assert!(std::mem::size_of::<Node>() == 24);

/// The one way GCBench's tree building fails: bdwgc returned null, its heap exhausted at
/// the cap. A field-less zero-sized error, so that `Result<NonNull<Node>, Exhausted>` is
/// one pointer (the niche of `NonNull` holds the error) and `Result<(), Exhausted>` one
/// byte: the recursion returns in registers, as the C GCBench's does. The caller turns it
/// into [`Error::OutOfMemory`]. As the crate's `Result<*mut Node>` (72 bytes) every level
/// returned through a stack buffer, and the trees took twice the C program's time outside
/// bdwgc (see [`crate::peer`], *What the peer adds*).
#[derive(Debug)]
pub(super) struct Exhausted;

const _: () = assert!(std::mem::size_of::<std::result::Result<NonNull<Node>, Exhausted>>() == 8);

/// GCBench over bdwgc, function for function the same as [`crate::workload::gcbench`]
/// and as `papers/reference/gcbench.c`; the roots are the locals (see the module doc).
pub(super) struct Bench {
    /// `GC_malloc`, copied out of [`Bdwgc`] so that a call is one indirect call.
    malloc: unsafe extern "C" fn(usize) -> *mut c_void,
    /// `GC_malloc_atomic`.
    malloc_atomic: unsafe extern "C" fn(usize) -> *mut c_void,
    /// Allocation calls that returned memory, as the C GCBench counts them.
    pub(super) allocs: Cell<u64>,
}

impl Bench {
    pub(super) fn new(gc: &Bdwgc) -> Bench {
        Bench {
            malloc: gc.malloc,
            malloc_atomic: gc.malloc_atomic,
            allocs: Cell::new(0),
        }
    }

    #[inline(always)]
    pub(super) fn new_node(&self) -> std::result::Result<NonNull<Node>, Exhausted> {
        // SAFETY: `run` initialised the collector on this thread, the only one
        // that runs the bench; the node is kept only in locals and in other nodes, which
        // bdwgc scans (see the module doc).
        let node = unsafe { (self.malloc)(std::mem::size_of::<Node>()) };
        let node = NonNull::new(node.cast::<Node>()).ok_or(Exhausted)?;
        self.allocs.set(self.allocs.get() + 1);
        Ok(node)
    }

    /// Gives `node` two children, recursively, to `depth` (top-down).
    pub(super) fn populate(
        &self,
        depth: u32,
        node: NonNull<Node>,
    ) -> std::result::Result<(), Exhausted> {
        if depth == 0 {
            return Ok(());
        }
        let left = self.new_node()?;
        // SAFETY: `node` is a live node (the caller holds it, so bdwgc sees it) and no
        // reference to it exists: a plain store through the raw pointer.
        unsafe { (*node.as_ptr()).left = left.as_ptr() };
        let right = self.new_node()?;
        // SAFETY: as above.
        unsafe { (*node.as_ptr()).right = right.as_ptr() };
        self.populate(depth - 1, left)?;
        self.populate(depth - 1, right)
    }

    /// Builds a tree of `depth` bottom-up.
    pub(super) fn make_tree(&self, depth: u32) -> std::result::Result<NonNull<Node>, Exhausted> {
        if depth == 0 {
            return self.new_node();
        }
        let left = self.make_tree(depth - 1)?;
        let right = self.make_tree(depth - 1)?;
        let node = self.new_node()?;
        // SAFETY: `node` was just allocated and is held in a local; no reference exists.
        unsafe {
            (*node.as_ptr()).left = left.as_ptr();
            (*node.as_ptr()).right = right.as_ptr();
        }
        Ok(node)
    }

    /// Counts the nodes of a tree.
    fn count(node: NonNull<Node>) -> u64 {
        // SAFETY: `node` is a live node of a tree held by the caller; reading its slots
        // allocates nothing, so no collection runs meanwhile.
        let (left, right) = unsafe { ((*node.as_ptr()).left, (*node.as_ptr()).right) };
        1 + [left, right]
            .into_iter()
            .filter_map(NonNull::new)
            .map(Self::count)
            .sum::<u64>()
    }

    /// Runs GCBench once and checks the survivors; returns the allocation calls made so
    /// far (by every run of this bench).
    pub(super) fn run(&self, p: &GcBenchParams) -> Result<u64> {
        let exhausted = |requested: usize| {
            move |Exhausted| Error::OutOfMemory {
                requested,
                sizing: None,
            }
        };
        let node = exhausted(std::mem::size_of::<Node>());
        // Stretch the heap.
        self.make_tree(p.stretch_depth).map_err(node)?;
        // The long-lived tree and array, in locals used at the end, so alive throughout.
        let long_lived = self.new_node().map_err(node)?;
        self.populate(p.long_lived_depth, long_lived)
            .map_err(node)?;
        // SAFETY: as for `malloc` in `new_node`; the array holds doubles only.
        let array = unsafe { (self.malloc_atomic)(p.array_len * 8) }.cast::<f64>();
        if array.is_null() {
            return Err(exhausted(p.array_len * 8)(Exhausted));
        }
        self.allocs.set(self.allocs.get() + 1);
        for i in 1..p.array_len / 2 {
            // SAFETY: `i < array_len`, inside the array, which `array` keeps alive.
            unsafe { array.add(i).write(1.0 / i as f64) };
        }
        let mut depth = p.min_depth;
        while depth <= p.max_depth {
            let iters = p.iterations(depth);
            // Top-down.
            for _ in 0..iters {
                let temp = self.new_node().map_err(node)?;
                self.populate(depth, temp).map_err(node)?;
            }
            // Bottom-up.
            for _ in 0..iters {
                self.make_tree(depth).map_err(node)?;
            }
            depth += 2;
        }
        // The survivors must be intact.
        assert_eq!(
            Self::count(long_lived),
            GcBenchParams::tree_size(p.long_lived_depth),
            "GCBench on bdwgc: the long-lived tree lost nodes"
        );
        let check = (p.array_len / 2 - 1).min(1000);
        // SAFETY: `check < array_len`; the array is alive (used here).
        let value = unsafe { array.add(check).read() };
        assert_eq!(
            value,
            1.0 / check as f64,
            "GCBench on bdwgc: the array changed"
        );
        Ok(self.allocs.get())
    }
}
