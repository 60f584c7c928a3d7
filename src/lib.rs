//! barrierlab: a laboratory for garbage-collector write barriers on Linux.
//!
//! A small, precise, non-moving mark-sweep [`Heap`] whose collector runs mostly
//! concurrently with its mutators (Boehm–Demers–Shenker "mostly parallel" marking with an
//! incremental-update barrier), with a pluggable dirty tracker ([`BarrierKind`]): no
//! barrier (stop-the-world), a software card table, and the page-level mechanisms Linux
//! offers — userfaultfd write-protect served by a collector thread, async write-protect
//! harvested with `PAGEMAP_SCAN`, write-protect raising SIGBUS on the writer, and
//! `mprotect` + SIGSEGV — and a software write watch, the card table's store path at the
//! page trackers' 4 KiB granule, to tell the granule from the mechanism. Every barrier
//! runs the same workloads, so their costs can be measured side by side, explained, and
//! taught. A barrier-only mode ([`HeapConfig::duty_cycle`]) arms and harvests the tracker
//! on a fixed schedule with no collection, to measure what a barrier costs the mutators
//! alone.
//!
//! # Reading order
//! 1. `README.md`: what the lab measures, the two commands, the kernel requirements.
//! 2. The examples, in this order: `quickstart` (one heap per barrier, and what each
//!    recorded of the writes made while its collector marked), `lost_object` (what a
//!    barrier prevents: with its record lost, the verifier finds reachable objects the
//!    collector would free), `card_table` (the software barrier by hand), `mprotect_segv`,
//!    `uffd_wp_fault` and `pagemap_scan` (each page-level mechanism alone, on a bare
//!    mapping), `crossover` (where card marking and page protection meet), `embedding`
//!    (the library as a language runtime uses it: root scopes, typed payload access, the
//!    monomorphised store path, a steady state measured with [`Stats::since`]). Run one
//!    with `cargo run --release --example NAME`.
//! 3. `papers/write-barriers-on-linux.md`: the write-up and its results.
//! 4. The modules, below the way the layers run: [`barrier`] (one module per mechanism,
//!    each with its costs and edges), [`heap`], [`collector`] (the cycle and its
//!    invariants), [`Mutator`], [`workload`], [`study`].
//!
//! # A first heap
//! ```
//! use barrierlab::{BarrierKind, Heap, HeapConfig};
//!
//! # fn main() -> barrierlab::Result<()> {
//! // A 4 MiB heap whose collector is told about reference stores by a card table.
//! let heap = Heap::new(HeapConfig::new().heap_bytes(4 << 20).barrier(BarrierKind::CardTable))?;
//! let mut m = heap.mutator();
//! // An object with one reference slot and 8 payload bytes, kept alive by a root.
//! let a = m.alloc(1, 8)?;
//! let root = m.push_root(a)?;
//! let b = m.alloc(0, 16)?;
//! m.write_ref(a, 0, Some(b))?; // the barriered store
//! m.collect()?; // a whole cycle; this mutator waits at a safepoint meanwhile
//! assert!(heap.is_live(b), "reachable from the root through `a`");
//! m.set_root(root, None)?;
//! m.collect()?;
//! assert!(!heap.is_live(a), "unreachable objects are freed");
//! assert_eq!(heap.stats().cycles, 2);
//! # Ok(())
//! # }
//! ```
//!
//! # Two ways to use it
//! The calls above are checked: every object is verified to be a live object of this
//! heap, every slot and payload range to be inside it, and a mistake is an
//! [`Error`]. A runtime embedding the heap uses the same mutator differently: roots in
//! scopes ([`Mutator::root_scope`], popped however the scope ends), scalar fields read
//! and written by type ([`Mutator::read_payload`], or [`Mutator::read_payload_unchecked`]
//! and [`Mutator::write_ref_unchecked`] where the compiler has proved the object and the
//! offset), its work generic over the store path ([`StoreBarrier`], run by
//! [`Heap::run_typed`]), and steady-state statistics with [`Stats::since`]. The
//! `embedding` example shows them together.
//!
//! # Vocabulary
//! - **mutator**: a thread of the program that allocates and writes the heap
//!   ([`Mutator`]); **collector**: the thread that finds and frees garbage.
//! - **root**: a reference the collector starts from (each mutator's root stack).
//! - **safepoint**: a point where a mutator may be stopped; a **pause** stops all.
//! - **mark**: set an object's mark bit; **white** (unmarked), **grey** (marked, children
//!   not yet scanned: on the mark stack), **black** (marked and scanned).
//! - **sweep**: free every allocated, unmarked object.
//! - **write barrier**: what a mutator's store does so that a concurrent collector does
//!   not miss an edge; its **store path** runs on every reference store.
//! - **card**: a 512-byte slice of the heap with one byte in the card table; **granule**:
//!   the unit a tracker records (a card, or a 4 KiB page: recorded at its first write by
//!   the page trackers, marked by the store path by the write watch).
//! - **arm**: start recording writes; **harvest**: take the recorded **dirty set**;
//!   **disarm**: stop recording.
//! - **pre-clean**: concurrent rounds of harvest + rescan before remark, to shrink it;
//!   **remark**: the final pause that rescans what is still dirty.
//! - **floating garbage**: objects that die during a cycle and survive it.
//! - **allocation frontier**: the pages the allocator hands to mutators during a cycle;
//!   a page tracker receives them already recorded and writable (**hand-out**), so that
//!   new objects take no fault and remark still rescans them (async write-protect
//!   excepted: the kernel records their first write itself, more cheaply).
//! - **pacer**: what decides, in bytes, when the next cycle starts; a **fallback** is a
//!   full stop-the-world collection for an allocation that found the heap full with no
//!   cycle running; an **allocation stall** is a mutator waiting for a running cycle
//!   because the heap is full.
//!
//! # Layers
//! [`sys`] (the only raw syscalls) → [`barrier`] (one description per mechanism, and the
//! trackers) → [`heap`] (the space: mapping, side tables, allocation primitives) →
//! [`collector`] (the cycle, on a view of the space) → [`runtime`] ([`Heap`]: the parts
//! assembled) → [`mutator`] ([`Mutator`], and the per-thread registry of mutators with
//! the `Heap` methods that use it) → [`workload`] → [`study`]. [`probe`] says what this kernel
//! offers, by running each mechanism's check. [`peer`] runs the same GCBench on an
//! outside collector (bdwgc), as an anchor for barrierlab's figures.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod barrier;
mod bitmap;
pub mod collector;
pub mod error;
pub mod heap;
pub mod mutator;
pub mod peer;
pub mod probe;
pub mod runtime;
mod side_table;
pub mod study;
pub mod sys;
pub mod workload;

/// Lab internals: what the crate's own tests, examples and benches reach into, and a user
/// of the heap does not program against (planted bugs, fault injection, the signal
/// registry). Only with the `lab-internals` feature, which the crate's dev-dependency on
/// itself turns on for its tests and examples. Not a stable surface.
#[cfg(feature = "lab-internals")]
pub mod internals {
    pub use crate::barrier::signal_registry;
    pub use crate::barrier::test_knobs::TestKnobs;
    pub use crate::heap::testing::Testing;
}

pub use barrier::{BarrierConfig, BarrierKind, DynBarrier, ServiceLayout, StoreBarrier};
pub use collector::{Cause, Pause, PauseKind, Phase, Stall, Stats};
pub use error::{Error, Result, Sizing};
pub use heap::{HeapConfig, ObjRef};
pub use mutator::{Mutator, MutatorTask, RootScope, Scalar};
pub use runtime::Heap;
