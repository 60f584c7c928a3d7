//! GCBench on bdwgc: the run (the collector started as the configuration says, the
//! event log installed, the workload timed) and the workload itself over `GC_malloc`.

use std::cell::Cell;
use std::ffi::c_void;
use std::ptr::NonNull;
use std::time::Instant;

use super::Bdwgc;
use super::events::{EVENT_CAPACITY, EventLog, pauses_from_events};
use crate::error::{Error, Result};
use crate::peer::{Peer, PeerConfig, PeerMode, PeerRun};
use crate::workload::GcBenchParams;

/// Starts bdwgc on this thread as `cfg` says, runs GCBench on it and measures it.
///
/// Run it in a process of its own, on its main thread (`barrierlab gcbench --peer bdwgc`
/// does): it starts the collector, may install its SIGSEGV handler, and registers the
/// collection-event callback.
pub fn run_gcbench(gc: &Bdwgc, cfg: &PeerConfig) -> Result<PeerRun> {
    if cfg.heap_bytes == 0 {
        // GC_set_max_heap_size(0) would mean "unbounded".
        return Err(Error::InvalidArgument(
            "the heap must be at least 1 MiB".into(),
        ));
    }
    // Before GC_init, so that its initial heap respects the cap.
    gc.set_max_heap_size(cfg.heap_bytes);
    gc.init();
    if cfg.incremental {
        gc.enable_incremental();
        if !gc.is_incremental_mode() {
            return Err(Error::Misbehaved {
                mechanism: "bdwgc incremental mode",
                seen: "GC_enable_incremental left it off (is GC_DISABLE_INCREMENTAL or \
                       GC_DONT_GC set in the environment?)"
                    .into(),
            });
        }
    }
    // The whole heap up front, as barrierlab reserves its region; bdwgc still decides
    // when to collect by its free-space divisor, and the cap stops any growth beyond.
    let have = gc.heap_size();
    if cfg.heap_bytes > have && !gc.expand_hp(cfg.heap_bytes - have) {
        return Err(Error::Misbehaved {
            mechanism: "bdwgc",
            seen: format!(
                "GC_expand_hp({} bytes) refused to grow the heap from {have} to {} bytes",
                cfg.heap_bytes - have,
                cfg.heap_bytes
            ),
        });
    }

    let log = EventLog::install(gc, EVENT_CAPACITY)?;
    let gc_no_before = gc.gc_no();
    let bytes_before = gc.total_bytes();
    let cpu0 = crate::sys::cpu::process_cpu_time()?;
    let t0 = Instant::now();
    // `repeat` passes, as barrierlab's GCBench runs them (`workload/gcbench.rs`).
    let bench = Bench::new(gc);
    let mut allocs = 0;
    for _ in 0..cfg.params.repeat.max(1) {
        allocs = bench.run(&cfg.params)?;
    }
    let total = t0.elapsed();
    let cpu = crate::sys::cpu::process_cpu_time()?.saturating_sub(cpu0);
    let alloc_bytes = gc.total_bytes() - bytes_before;
    let cycles = gc.gc_no() - gc_no_before;
    let (events, full_cycles) = log.finish()?;
    let (pause_source, pauses) = pauses_from_events(&events);

    Ok(PeerRun {
        peer: Peer::Bdwgc,
        mode: if gc.is_incremental_mode() {
            PeerMode::Incremental
        } else {
            PeerMode::Stw
        },
        version: gc.version().unwrap_or_else(|| "unknown".into()),
        heap_bytes: cfg.heap_bytes,
        heap_final_bytes: gc.heap_size(),
        total,
        cpu,
        cycles,
        full_cycles,
        pause_source,
        pauses,
        allocs,
        alloc_bytes,
        settings: settings(gc),
    })
}

/// What the run's summary says about how bdwgc was built and set (see [`crate::peer`] for
/// what each means).
fn settings(gc: &Bdwgc) -> Vec<(String, String)> {
    // A record field holds no whitespace.
    let mut out = vec![(
        "lib".to_string(),
        gc.loaded_path().replace(char::is_whitespace, "_"),
    )];
    let (vdb, vdb_from) = gc.vdb();
    out.push(("vdb".into(), vdb));
    if gc.is_incremental_mode() {
        out.push(("vdb_from".into(), vdb_from.into()));
        out.push(("protection_needs".into(), gc.protection_needs().to_string()));
        // Partial collections mark from the last marks plus the dirty pages; only a full
        // one (every `full_freq + 1`th) clears the marks. With `full_freq` 0 every
        // collection is full, so nothing is generational.
        let full_freq = gc.full_freq();
        let generational = full_freq.is_none_or(|f| f > 0);
        out.push((
            "generational".into(),
            if generational { "yes" } else { "no" }.into(),
        ));
        if let Some(f) = full_freq {
            out.push(("full_freq".into(), f.to_string()));
        }
        if let Some(limit) = gc.time_limit() {
            out.push(("time_limit".into(), limit));
        }
    }
    if let Some(m) = gc.markers() {
        out.push(("markers".into(), m.to_string()));
    }
    if let Some(d) = gc.free_space_divisor() {
        out.push(("free_space_divisor".into(), d.to_string()));
    }
    out
}

/// A GCBench node: two references and 8 payload bytes (the classic two ints, never read),
/// as in [`crate::workload::gcbench`].
#[repr(C)]
struct Node {
    left: *mut Node,
    right: *mut Node,
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
struct Exhausted;

const _: () = assert!(std::mem::size_of::<std::result::Result<NonNull<Node>, Exhausted>>() == 8);

/// GCBench over bdwgc, function for function the same as [`crate::workload::gcbench`]
/// and as `papers/reference/gcbench.c`; the roots are the locals (see the module doc).
struct Bench {
    /// `GC_malloc`, copied out of [`Bdwgc`] so that a call is one indirect call.
    malloc: unsafe extern "C" fn(usize) -> *mut c_void,
    /// `GC_malloc_atomic`.
    malloc_atomic: unsafe extern "C" fn(usize) -> *mut c_void,
    /// Allocation calls that returned memory, as the C GCBench counts them.
    allocs: Cell<u64>,
}

impl Bench {
    fn new(gc: &Bdwgc) -> Bench {
        Bench {
            malloc: gc.malloc,
            malloc_atomic: gc.malloc_atomic,
            allocs: Cell::new(0),
        }
    }

    #[inline(always)]
    fn new_node(&self) -> std::result::Result<NonNull<Node>, Exhausted> {
        // SAFETY: `run_gcbench` initialised the collector on this thread, the only one
        // that runs the bench; the node is kept only in locals and in other nodes, which
        // bdwgc scans (see the module doc).
        let node = unsafe { (self.malloc)(std::mem::size_of::<Node>()) };
        let node = NonNull::new(node.cast::<Node>()).ok_or(Exhausted)?;
        self.allocs.set(self.allocs.get() + 1);
        Ok(node)
    }

    /// Gives `node` two children, recursively, to `depth` (top-down).
    fn populate(&self, depth: u32, node: NonNull<Node>) -> std::result::Result<(), Exhausted> {
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
    fn make_tree(&self, depth: u32) -> std::result::Result<NonNull<Node>, Exhausted> {
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
    fn run(&self, p: &GcBenchParams) -> Result<u64> {
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
