//! The workloads (`barrierlab::workload`) on real heaps: their invariants and end-of-run
//! checks, the statistics the driver reports, and barrier-only mode (the tracker armed and
//! harvested on a fixed schedule with no collection).
//!
//! One test binary per layer of the crate (`tests/<layer>/main.rs`), each test in the
//! module of the file it lives in; the fixtures are in `tests/support`.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod barrier_only;
mod gcold;
mod workloads;
