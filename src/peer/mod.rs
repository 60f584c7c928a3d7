//! An outside collector on the same work: barrierlab's workloads run over a collector
//! that is not barrierlab's, so that barrierlab's figures have an anchor measured on the
//! same machine in the same minute.
//!
//! The one peer is the Boehm–Demers–Weiser collector ([`bdwgc`], `libgc.so.1`), the
//! collector whose "mostly parallel" algorithm barrierlab's is modelled on. It runs two
//! workloads ([`PeerWorkload`]): GCBench (`barrierlab gcbench --peer bdwgc`), and binary
//! trees as a study point sizes them (`barrierlab run --study-workload
//! binary-trees-l<MiB> --heap-mib H --allocated-per-live A --peer bdwgc`, beside the same
//! command with `--barrier none`); see *Binary trees* below for what differs there.
//!
//! # What is the same work, and what differs
//! The same: GCBench with the same parameters ([`GcBenchParams`]: stretch tree, long-lived
//! tree and array kept alive throughout, temporary trees built top-down and bottom-up), the
//! same node shape (two references and 8 payload bytes, 24 bytes), the same checks at the
//! end (the long-lived tree has all its nodes, the array still holds its values), one
//! mutator thread, the same `--heap-mib`, and the same clocks (wall, and the process's CPU
//! time: `cpu=`) around the same span (the workload only, not the collector's start-up).
//!
//! The peer is itself checked against bdwgc as a C program uses it:
//! `papers/reference/gcbench.c` is the same GCBench in C, with the same heap set-up, clocks
//! and pause brackets, built against the same library (see its README). Both print
//! `allocs=` (allocation calls) and `alloc_bytes=` (bdwgc's own count of the bytes it
//! handed out, `GC_get_total_bytes`), so that one can check they did the same work
//! (`tests/study/peer_reference.rs` does).
//!
//! What differs, so that a reader does not compare what is not comparable:
//! - **Precision.** barrierlab is precise: the collector knows every reference slot and
//!   the mutator's roots are an explicit root stack. bdwgc is *conservative*: any word on
//!   the stack, in registers, in static data or in a scanned object that looks like a
//!   pointer into its heap keeps that object alive. The bdwgc GCBench therefore keeps its
//!   pointers in plain Rust locals, as the C GCBench does (soundness: see [`bdwgc`]).
//! - **Neither moves objects.** Both are non-moving mark-sweep. bdwgc allocates from
//!   size-segregated, thread-local free lists (a 24-byte node takes a 32-byte cell: its
//!   granule is 16 bytes, and it adds a byte so that a pointer just past an object still
//!   counts as pointing into it).
//! - **When to collect, and the heap.** barrierlab reserves `--heap-mib`; its
//!   stop-the-world collector (`--barrier none`) collects when the heap is full (its
//!   pacer's goal: `crate::collector` docs). bdwgc is given the same size twice: as a cap
//!   (`GC_set_max_heap_size`: beyond it allocation fails) and as an up-front expansion
//!   (`GC_expand_hp`). Its allocator asks for a collection only when no free block is left
//!   to carve cells from; then it collects if the bytes allocated since the last
//!   collection exceed about the bytes in use divided by its *free-space divisor* (3 by
//!   default), and otherwise grows the heap — up to the cap. Expanded up front, it
//!   therefore collects roughly when the heap is full; without the expansion it would
//!   start small and grow by that rule. Blocks that stay free for several collections are
//!   returned to the kernel, so `heap_final=` (`GC_get_heap_size`, which excludes them)
//!   may end below the cap.
//! - **Sweeping.** bdwgc sweeps lazily, a block at a time, inside allocation (mutator
//!   time, in `total=` but in no pause); barrierlab sweeps on its collector thread.
//! - **Who marks.** barrierlab marks on a collector thread while the mutator waits (with
//!   `--barrier none`) or runs. bdwgc marks on the thread that allocates, with the world
//!   stopped; it would start parallel marker threads only if the program created threads
//!   through it or asked for them, and the child does neither (the summary's `markers=`
//!   says how many marked).
//! - **Incremental mode.** With `--incremental` bdwgc uses *virtual dirty bits* to find
//!   pages written since a mark: on Linux it tries soft-dirty PTEs first and falls back to
//!   `mprotect` + SIGSEGV, which is what it uses on kernels without
//!   `CONFIG_MEM_SOFT_DIRTY`. That is the same mechanism as barrierlab's `mprotect`
//!   barrier. The summary says which it ran with: `vdb=`, from `GC_get_actual_vdb` where
//!   the library has it (bdwgc 8.4 and later; `vdb_from=actual_vdb`), else read from
//!   `GC_incremental_protection_needs` (`vdb_from=protection_needs`; its raw value is
//!   `protection_needs=`, 1 when pointer-containing heap pages are write-protected), with
//!   the version (`version=`) and the file the loader mapped (`lib=`).
//!
//!   bdwgc's incremental mode is *generational*: a collection marks from the previous
//!   collection's mark bits plus the objects on pages dirtied since, and only every
//!   `full_freq + 1`th (`full_freq=`, 19 by default) clears the mark bits and traces the
//!   whole heap (bdwgc 8.2.2: `GC_maybe_gc` and `GC_full_freq` in `alloc.c`; `gc.h` calls
//!   the mode "incremental/generational"). `full=` counts the full collections, through
//!   the callback bdwgc calls at the start of each (`GC_set_start_callback`); the rest of
//!   `cycles=` are partial, so `full` below `cycles` is the generational mode seen at work
//!   (bdwgc also starts a full one early when the heap grows a lot). Builds with
//!   parallel marking (Debian's among them) default to no time limit on a stopped mark
//!   (`time_limit=unlimited`; `alloc.c` sets `GC_time_limit` to `GC_TIME_UNLIMITED` under
//!   `PARALLEL_MARK`), and then the mode is generational *only*: `gc.h` says "only the
//!   generational piece of this is functional" then, so each collection, partial or
//!   full, marks with the world stopped (`generational=yes`).
//!
//! # Binary trees
//! The port ([`bdwgc`]'s `binary_trees.rs`) is [`crate::workload::binary_trees`] as its
//! thread 0 runs it, with the parameters `run --study-workload` gives barrierlab's own run
//! (the same sizing function: the depth from the live size, the operations from
//! `--allocated-per-live`): the long-lived complete tree built top-down, then per operation
//! a walk to a random node, a fresh subtree built bottom-up and stored into a random child
//! slot, and the swaps of child subtrees of random nodes. It makes the same random draws
//! from the same generator and seed, so it replaces and swaps the same subtrees; it
//! counts the tree at the end (an error if it lost nodes or a leaf is not at the bottom).
//! `allocs=` is the tree's nodes plus one subtree per operation, exactly barrierlab's
//! allocation calls, and `alloc_bytes=` agrees with barrierlab's `allocated=` to the
//! free-list granularity (both take a 32-byte cell per node); the summary's first word is
//! barrierlab's name for the workload (`binary-trees-d20`). What differs, beside what the
//! list above says of GCBench:
//! - **Roots and stores.** barrierlab roots the tree's root and each fresh subtree on its
//!   root stack and makes every reference store through its (here empty) barrier; the
//!   port keeps the root, the walk's nodes and the subtree under construction in plain
//!   locals, which bdwgc finds by scanning the stack conservatively, and stores with plain
//!   writes. Stop-the-world bdwgc needs nothing more. In incremental mode every store into
//!   an old node dirties a page bdwgc learns of through its virtual dirty bits (with
//!   `mprotect`, a SIGSEGV on the first write to a protected page), as barrierlab's page
//!   trackers do; the replace and swap stores land anywhere in the tree.
//! - **Sweeping.** As for GCBench, bdwgc reclaims the replaced subtrees lazily, inside
//!   `GC_malloc` on the mutator thread; barrierlab sweeps them on its collector thread, so
//!   barrierlab's `cpu=` includes a second thread's time and bdwgc's `total=` includes
//!   the sweep.
//! - **When each collects.** Both collect about when the heap is full: barrierlab's
//!   `none` at its pacer's goal (the whole heap less the mutators' buffers), bdwgc,
//!   expanded to the cap up front, when no free block is left (see above). On
//!   binary-trees-l64 with `--allocated-per-live 25.6`, at 132 MiB (twice its minimum
//!   heap) both ran 23 collections and at 264 MiB both 7 (five runs each; with the
//!   concurrent collectors' goal of 95%, `none` had run 26 or 27 and 8 or 9). bdwgc's
//!   pauses are its whole mark (one thread marks: `markers=1`), barrierlab's `none` its whole mark on its marker threads.
//! - **Incremental mode at small multiples.** bdwgc's generational collections keep
//!   garbage that was marked in an earlier collection until the next full one (every 20th
//!   by default), and the replaced subtrees are exactly such garbage. Near the minimum
//!   heap it runs out of heap (bdwgc returns null and the port fails with an out-of-memory
//!   error): binary-trees-l64 failed at 132 and 160 MiB and ran at 264 MiB;
//!   binary-trees-l4 failed at 8 to 16 MiB and ran at 24. In incremental mode bdwgc also
//!   reported a heap above the cap (`heap_final=`, from `GC_get_heap_size`: 328 MiB at a
//!   264 MiB cap, 27.9 MiB at 24), which it did not in stop-the-world mode; that is not
//!   pinned down.
//!
//! # Pauses
//! bdwgc reports progress through `GC_set_on_collection_event`. A pause is the time from
//! `GC_EVENT_PRE_STOP_WORLD` to `GC_EVENT_POST_START_WORLD` (`pause=world-stop`): the
//! world-stopped mark. Builds without threads do not fire the world-stop events; there a
//! pause is `GC_EVENT_START` to `GC_EVENT_END` (`pause=collection`), which also covers
//! what bdwgc does on the same thread after it restarts the world (setting up the lazy
//! sweep). Not in either: lazy sweeping inside allocation, and (in a time-limited
//! incremental build) mark increments done inside allocation with the world running.
//! `cycles=` counts completed collections from `GC_get_gc_no`, a second channel beside
//! the events; `full=` counts the full ones among them.
//!
//! # What the peer adds to bdwgc, and what it cannot
//! Calling bdwgc through `dlsym` pointers costs what a C program's calls through the PLT
//! cost: one indirect call per allocation, no wrapper. What made the peer slower than the
//! C program was its own code: GCBench's recursion returned the crate's `Result` (72
//! bytes) through a stack buffer at every level, which doubled the time spent in the tree
//! code outside bdwgc. It returns a pointer-sized result now (see [`bdwgc`]). On the
//! project's 2-vCPU KVM guest (busy: load 7, so CPU time is the figure to read), GCBench
//! classic at 64 MiB, two sets of 10 interleaved rounds, median CPU time of the whole
//! process against the C program built the same way: 1.04× and 1.05× before, 1.02× after
//! (the rest is Rust's start-up of the parent and the child; inside the timed span,
//! `cpu=` 1.01×). In incremental mode the peer took 1.04× (8 rounds) and ran about 5%
//! fewer collections (medians 249 against 261), one or two more of them full (30 against
//! 28.5): its collections found about 6% more pointer-containing heap in use
//! (`GC_PRINT_STATS=1`, one run each), which suggests more conservative retention
//! through its stack; that is not pinned down.
//!
//! Inherent to calling `GC_malloc` in the shared library for every object: a program
//! linked with `libgc.so.1` (the peer, or the C GCBench built the default way) took 1.27×
//! the CPU time of the same program linked with the static `libgc.a` of the same Debian
//! package (bdwgc 8.2.2; `make STATIC=1`), in the same rounds. Inside the shared object
//! every `GC_malloc` reaches its thread-local free lists through `__tls_get_addr` (the
//! general-dynamic TLS model of position-independent code; about 10% of the profile's
//! samples, none in the static build) and goes through PLT stubs within the library.
//! Compare the peer with the C program linked the same way. A client avoids the cost
//! without linking statically by taking a whole free list per call (`GC_malloc_many`, on
//! which `gc_inline.h`'s inline allocation is built): a variant of the C GCBench that took
//! its nodes that way (6 rounds; not kept) used 0.69× the CPU time of the per-object
//! shared build with either link, less than the static per-object build (0.77×). The
//! peer, like the C GCBench kept here, allocates one object per call.
//!
//! # Why a child process
//! bdwgc scans the whole process conservatively — every thread it knows, static data of
//! every loaded object — and installs its own signal handlers (thread suspension, and the
//! SIGSEGV handler of its `mprotect` dirty bits in incremental mode). Those must not meet
//! barrierlab's heaps and barrierlab's own SIGSEGV/SIGBUS handlers in one process, so
//! `barrierlab gcbench --peer bdwgc` (and `run --peer bdwgc`) re-executes the current
//! binary with a hidden subcommand that loads bdwgc, runs the workload, and prints a [`PeerRun`] as one
//! machine-readable record line ([`PeerRun::to_record`]); the parent parses it and prints
//! the summary ([`PeerRun`]'s `Display`). The child exits with [`EXIT_UNAVAILABLE`] when
//! the collector cannot be loaded.

pub mod bdwgc;
mod record;

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::workload::{BinaryTreesParams, GcBenchParams, Workload};

pub use record::{PauseSource, PeerMode, PeerRun};

/// The exit status of the child process when the peer collector cannot be loaded (its
/// message, on stderr, says what to install). Other failures exit with 1.
pub const EXIT_UNAVAILABLE: u8 = 2;

/// An outside collector barrierlab can run its workloads on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The Boehm–Demers–Weiser collector, `libgc.so.1`, loaded at run time.
    Bdwgc,
}

impl Peer {
    /// The name on the command line and in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Bdwgc => "bdwgc",
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Peer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bdwgc" => Ok(Peer::Bdwgc),
            _ => Err(Error::InvalidArgument(format!(
                "unknown peer collector `{s}`; expected: bdwgc"
            ))),
        }
    }
}

/// A workload the peer runs, with its parameters: the same ones barrierlab's own
/// workload takes, so that both do the same work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PeerWorkload {
    /// GCBench ([`crate::workload::gcbench`]), `repeat` passes.
    GcBench(GcBenchParams),
    /// Binary trees ([`crate::workload::binary_trees`]), as its thread 0 runs them.
    BinaryTrees(BinaryTreesParams),
}

impl PeerWorkload {
    /// The workloads the peer runs, for messages.
    pub const SUPPORTED: &'static str = "GCBench (`gcbench --peer`) and binary trees \
         (`run --study-workload binary-trees-l<MiB> --peer`)";

    /// The peer's form of barrierlab's `workload`, or an error naming the ones it has.
    pub fn of(workload: &Workload) -> Result<PeerWorkload> {
        match *workload {
            Workload::GcBench(p) => Ok(PeerWorkload::GcBench(p)),
            Workload::BinaryTrees(p) => Ok(PeerWorkload::BinaryTrees(p)),
            _ => Err(Error::InvalidArgument(format!(
                "the peer does not run {}; it runs {}",
                workload.name(),
                Self::SUPPORTED
            ))),
        }
    }

    /// The first word of the summary line: `gcbench` for GCBench (whatever its
    /// parameters, as `gcbench --peer` has always printed), else barrierlab's own name
    /// for the workload (`binary-trees-d21`), as `barrierlab run` prints it.
    pub fn name(&self) -> String {
        match *self {
            PeerWorkload::GcBench(_) => "gcbench".into(),
            PeerWorkload::BinaryTrees(p) => Workload::BinaryTrees(p).name(),
        }
    }
}

impl From<GcBenchParams> for PeerWorkload {
    fn from(p: GcBenchParams) -> PeerWorkload {
        PeerWorkload::GcBench(p)
    }
}

impl From<BinaryTreesParams> for PeerWorkload {
    fn from(p: BinaryTreesParams) -> PeerWorkload {
        PeerWorkload::BinaryTrees(p)
    }
}

/// What to run on the peer: the collector's settings and the workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerConfig {
    /// The collector's incremental mode instead of stop-the-world.
    pub incremental: bool,
    /// The maximum heap, in bytes (also expanded to at the start).
    pub heap_bytes: usize,
    /// The workload.
    pub workload: PeerWorkload,
}

/// Runs the configured workload on `peer` in this process. Only the hidden child
/// subcommand (and a study's peer point, in a process of its own) calls this: see the
/// module doc for why the peer runs in a process of its own.
pub fn run(peer: Peer, cfg: &PeerConfig) -> Result<PeerRun> {
    match peer {
        Peer::Bdwgc => bdwgc::run(&bdwgc::Bdwgc::load()?, cfg),
    }
}

/// What the parent says when the peer completed no collection: such a run measured no
/// garbage collector, so it is not a result (barrierlab's own runs say the same of
/// theirs).
pub fn no_collection_message(peer: Peer, workload: &PeerWorkload, heap_mib: usize) -> String {
    let remedy = match workload {
        PeerWorkload::GcBench(_) => "the classic parameters (without --quick)",
        PeerWorkload::BinaryTrees(_) => "more work (a larger --allocated-per-live)",
    };
    let what = match workload {
        PeerWorkload::GcBench(_) => "GCBench".to_string(),
        PeerWorkload::BinaryTrees(_) => workload.name(),
    };
    format!(
        "no collection ran: {peer} completed {what} in a {heap_mib} MiB heap without \
         collecting, so this run measured no garbage collection; use a smaller --heap-mib or \
         {remedy}"
    )
}

/// How a peer ran, from its settings, in a sentence for the report: its virtual dirty
/// bits and how they were found out, and whether its incremental mode was generational.
pub fn settings_note(settings: &[(String, String)]) -> String {
    let get = |k: &str| {
        settings
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let mut note = match get("vdb") {
        Some("none") | None => "stop-the-world, no virtual dirty bits".to_string(),
        Some(vdb) => format!(
            "virtual dirty bits: {vdb} (from {})",
            get("vdb_from").unwrap_or("?")
        ),
    };
    if let Some(g) = get("generational") {
        note.push_str(&format!("; generational: {g}"));
        if let Some(f) = get("full_freq") {
            note.push_str(&format!(" (full_freq {f})"));
        }
    }
    if let Some(lib) = get("lib") {
        note.push_str(&format!("; library {lib}"));
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_note_says_its_dirty_bits_and_generations() {
        let kv = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let inc = kv(&[
            ("lib", "/usr/lib/libgc.so.1"),
            ("vdb", "mprotect"),
            ("vdb_from", "actual_vdb"),
            ("generational", "yes"),
            ("full_freq", "19"),
        ]);
        assert_eq!(
            settings_note(&inc),
            "virtual dirty bits: mprotect (from actual_vdb); generational: yes (full_freq 19); \
             library /usr/lib/libgc.so.1"
        );
        let stw = kv(&[("lib", "libgc.so.1"), ("vdb", "none")]);
        assert_eq!(
            settings_note(&stw),
            "stop-the-world, no virtual dirty bits; library libgc.so.1"
        );
    }
}
