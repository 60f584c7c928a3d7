//! barrierlab: a laboratory for garbage-collector write barriers on Linux.
//!
//! A small, precise, non-moving mark-sweep [`Heap`] whose collector runs mostly
//! concurrently with its mutators (Boehm–Demers–Shenker "mostly parallel" marking with an
//! incremental-update barrier), with a pluggable dirty tracker ([`BarrierKind`]): no
//! barrier (stop-the-world), a software card table, and the page-level mechanisms Linux
//! offers — userfaultfd write-protect served by a collector thread, async write-protect
//! harvested with `PAGEMAP_SCAN`, write-protect raising SIGBUS on the writer, and
//! `mprotect` + SIGSEGV. Every barrier runs the same workloads, so their costs can be
//! measured side by side, explained, and taught.
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
//!   the unit a tracker records (a card, or a 4 KiB page).
//! - **arm**: start recording writes; **harvest**: take the recorded **dirty set**;
//!   **disarm**: stop recording.
//! - **pre-clean**: concurrent rounds of harvest + rescan before remark, to shrink it;
//!   **remark**: the final pause that rescans what is still dirty.
//! - **floating garbage**: objects that die during a cycle and survive it.
//!
//! # Layers
//! [`sys`] (the only raw syscalls) → [`barrier`] (one description per mechanism, and the
//! trackers) → [`heap`] (the space: mapping, side tables, allocation primitives) →
//! [`collector`] (the cycle, on a view of the space) → [`runtime`] ([`Heap`]: the parts
//! assembled) and [`Mutator`] → [`workload`] → [`study`]. [`probe`] says what this kernel
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
/// of the heap does not program against. Not a stable surface.
pub mod internals {
    pub use crate::barrier::TestKnobs;
    pub use crate::barrier::signal_registry;
    pub use crate::heap::Testing;
}

pub use barrier::{BarrierKind, ServiceLayout};
pub use collector::{Cause, Pause, PauseKind, Phase, Stall, Stats};
pub use error::{Error, Result, Sizing};
pub use heap::{HeapConfig, ObjRef};
pub use mutator::{Mutator, MutatorTask};
pub use runtime::Heap;
