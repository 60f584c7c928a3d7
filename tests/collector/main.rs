//! The heap, the collector, the mutator and the runtime through the public API: unit
//! properties, the shadow-graph stress test, allocation in every phase of a cycle, the
//! verifier, concurrent-mode failures, failure paths, several heaps on several threads, a
//! forked child, payload I/O, and what a language runtime does that a benchmark does not.
//! Every test that builds a heap runs under a timeout: a deadlock fails, it does not hang.
//!
//! One test binary per layer of the crate (`tests/<layer>/main.rs`), each test in the
//! module of the file it lives in; the fixtures are in `tests/support`.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod alloc_phases;
mod concurrent_mode_failure;
mod failure;
mod fork_child;
mod multi_heap;
mod no_false_oom;
mod payload_io;
mod robustness;
mod smoke;
mod stress;
mod unit;
mod verifier;
