//! The command line, the study and the bdwgc peer, through the real binary
//! (`CARGO_BIN_EXE_barrierlab`): what a user types and what it writes.
//!
//! One test binary per layer of the crate (`tests/<layer>/main.rs`), each test in the
//! module of the file it lives in; the fixtures are in `tests/support`.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod budget;
mod cli;
mod peer_bdwgc;
mod peer_binary_trees;
mod peer_reference;
mod study;
mod study_cli;
