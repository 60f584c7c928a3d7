//! The barrier layer (`barrierlab::barrier`): every tracker against the tracker contract
//! (the conformance table), the edge-behaviour table of `src/barrier/mod.rs`, what only one
//! mechanism does, transparent huge pages, and the signal-handler registry. Trackers run over
//! bare regions here, served by the stand-in collector thread of `support::trackers`.
//!
//! One test binary per layer of the crate (`tests/<layer>/main.rs`), each test in the
//! module of the file it lives in; the fixtures are in `tests/support`.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod conformance;
mod disarm_steps;
mod edges;
mod free_pages;
mod huge_pages;
mod kept_pages;
mod signal_registry;
mod trackers;
