//! What a reader runs and reads: every example builds and prints what it must, the
//! write-up in `papers/` stays reproducible against its stored results, and every test
//! the docs cite exists.
//!
//! One test binary per layer of the crate (`tests/<layer>/main.rs`), each test in the
//! module of the file it lives in; the fixtures are in `tests/support`.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod cited_paths;
mod examples;
mod paper;
