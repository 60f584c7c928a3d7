//! The kernel layer (`barrierlab::sys`) against the real kernel: userfaultfd, `/proc/self/pagemap`
//! and `PAGEMAP_SCAN`, mappings, signal handlers and the capability probe. No heap, no
//! tracker: what the layers above build on.
//!
//! One test binary per layer of the crate (`tests/<layer>/main.rs`), each test in the
//! module of the file it lives in; the fixtures are in `tests/support`.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod mem_signal;
mod pagemap;
mod uffd;
