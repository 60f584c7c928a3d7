//! The one home of the integration tests' helpers. Each layer's test binary
//! (`tests/<layer>/main.rs`) declares `#[macro_use] #[path = "../support/mod.rs"] mod
//! support;` before its modules (so that `test_name!`, `require!` and `skip!` reach them),
//! and each module imports it with `use crate::support;`.
//!
//! - here: a timeout around anything that may block on a fault ([`with_timeout`]),
//!   skipping a test when the kernel lacks a feature (or failing it under
//!   `BARRIERLAB_REQUIRE_ALL=1`: [`require_all`], [`skip_or_fail`]), forked children
//!   that only store ([`fork_and_wait`]), words of a region, writer threads that fault on a
//!   region, and a guard that releases them on every path;
//! - [`trackers`]: a tracker over its own region ([`TrackerLab`]), writes through its
//!   store path, harvests, and the race of writers against harvests;
//! - [`heap`]: building a heap or skipping its barrier, the seed and soak knobs, object
//!   ids (the collector tests);
//! - [`shadow`]: the shadow-graph harness of the collector stress tests (a program's
//!   belief about its objects, checked against the heap), used as `support::shadow::…`;
//! - [`binary`]: the real `barrierlab` binary, or any command, run under a deadline
//!   (`support::binary::run`);
//! - [`child`]: a test body run in a fresh process of the test binary
//!   ([`in_fresh_process`]), for children that allocate, lock or install handlers.
//!
//! The tests run against real kernel memory; nothing here mocks a system call.
//!
//! Environment: `BARRIERLAB_REQUIRE_ALL=1` turns every skip into a failure (CI sets it);
//! `BARRIERLAB_SEED` and `BARRIERLAB_SOAK` are read by [`heap`].

// Each test binary uses a subset of these helpers.
#![allow(dead_code, unused_macros, unused_imports)]

pub mod binary;
pub mod child;
pub mod heap;
pub mod shadow;
pub mod trackers;

pub use child::{Outcome, in_fresh_process};
pub use heap::*;
pub use trackers::*;

use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use barrierlab::Error;
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::{Protection, Region};
use barrierlab::sys::uffd::{Uffd, WpMode};

/// The name of the enclosing test function (closures stripped), for skip messages.
macro_rules! test_name {
    () => {{
        fn here() {}
        fn type_name_of<T>(_: T) -> &'static str {
            std::any::type_name::<T>()
        }
        $crate::support::clean_test_name(type_name_of(here))
    }};
}

/// `Ok(v)` → `Some(v)`. An error that means "this kernel lacks a feature" prints
/// `SKIP: <test>: <reason>` and gives `None` (or panics under `BARRIERLAB_REQUIRE_ALL=1`);
/// any other error panics. Use as `let Some(x) = require!(expr) else { return };`.
macro_rules! require {
    ($e:expr) => {
        match $e {
            Ok(v) => Some(v),
            Err(e) => {
                $crate::support::missing_or_panic(test_name!(), &e);
                None
            }
        }
    };
}

/// Skips the enclosing test (returns from it) with a reason, or fails it under
/// `BARRIERLAB_REQUIRE_ALL=1`.
macro_rules! skip {
    ($($reason:tt)+) => {{
        $crate::support::skip_or_fail(test_name!(), &format!($($reason)+));
        return;
    }};
}

/// The name libtest knows a test by, from a `type_name` path inside it: the test crate's
/// name (the path's first segment), `::here` and every `::{{closure}}` stripped, so
/// `collector::failure::a_test::{{closure}}::here` gives `failure::a_test`.
pub fn clean_test_name(path: &'static str) -> &'static str {
    let mut p = path.strip_suffix("::here").unwrap_or(path);
    while let Some(s) = p.strip_suffix("::{{closure}}") {
        p = s;
    }
    p.split_once("::").map_or(p, |(_crate, test)| test)
}

/// Runs `f` on its own thread and waits at most `secs` seconds for it. A body that does
/// not finish in time fails the test as a deadlock (its thread is left behind: there is
/// no safe way to stop it, and the test process ends with the failure anyway). A panic in
/// the body is propagated unchanged.
pub fn with_timeout<T: Send + 'static>(
    secs: u64,
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let r = f();
            let _ = tx.send(());
            r
        })
        .expect("spawn the test body");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        // Finished, or panicked (the sender is dropped while unwinding): join either way.
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!(
            "deadlock: `{name}` did not finish within {secs} s (a fault was never served, \
             or a thread blocked on one was never woken)"
        ),
    }
}

/// How long, in seconds, a test body that may block on a fault gets by default.
pub const TIMEOUT_SECS: u64 = 30;

/// Whether every kernel feature must be present (`BARRIERLAB_REQUIRE_ALL=1`).
pub fn require_all() -> bool {
    std::env::var("BARRIERLAB_REQUIRE_ALL").as_deref() == Ok("1")
}

/// Reports a missing kernel feature: `SKIP: <test>: <reason>` on stderr, or a panic
/// under `BARRIERLAB_REQUIRE_ALL=1`.
pub fn skip_or_fail(test: &str, reason: &str) {
    assert!(
        !require_all(),
        "{test}: required kernel feature missing (BARRIERLAB_REQUIRE_ALL=1): {reason}"
    );
    eprintln!("SKIP: {test}: {reason}");
}

/// Whether `e` says that the kernel (or its configuration) lacks something, as opposed
/// to a call that went wrong.
pub fn is_missing_feature(e: &Error) -> bool {
    match e {
        Error::MissingFeatures { .. } | Error::MissingIoctl { .. } | Error::Unavailable { .. } => {
            true
        }
        Error::Sys { op, errno, .. } => {
            matches!(
                *errno,
                libc::ENOSYS | libc::EPERM | libc::EACCES | libc::ENOTTY | libc::EOPNOTSUPP
            ) || (*op == "open(/dev/userfaultfd)" && *errno == libc::ENOENT)
        }
        _ => false,
    }
}

/// The `Err` arm of [`require!`]: skip (or fail) for a missing feature, panic otherwise.
pub fn missing_or_panic(test: &str, e: &Error) {
    if is_missing_feature(e) {
        skip_or_fail(test, &e.to_string());
    } else {
        panic!("{test}: unexpected error: {e}");
    }
}

/// The errno of `r`'s error; panics if `r` is `Ok` or not a system-call error.
pub fn expect_errno<T: std::fmt::Debug>(what: &str, r: barrierlab::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e
            .errno()
            .unwrap_or_else(|| panic!("{what}: expected a system-call error, got {e}")),
    }
}

/// Turns core files off for this process: for a child that is meant to die.
/// Async-signal-safe (two system calls), so a forked child may call it.
pub fn no_core_file() {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit and prctl only change this process's attributes.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        libc::prctl(libc::PR_SET_DUMPABLE, 0);
    }
}

/// Forks; the child runs `child` with core dumps off and exits with status 0 if it
/// returns (it may `_exit` with another status itself). The parent waits up to
/// [`TIMEOUT_SECS`] (then kills the child) and returns the raw wait status.
///
/// The child must only do async-signal-safe things (stores, system calls; no allocation,
/// no lock, no output): the test process has other threads, whose locks the child
/// inherits held. For anything more use [`in_fresh_process`]; `fork` stays for tests of
/// what a fork does.
pub fn fork_and_wait(child: impl FnOnce()) -> i32 {
    // SAFETY: the child runs only `child` (async-signal-safe by contract) and leaves
    // with `_exit`, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        no_core_file();
        child();
        // SAFETY: `_exit` is async-signal-safe and never returns.
        unsafe { libc::_exit(0) };
    }
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            return status;
        }
        assert_eq!(rc, 0, "waitpid: {}", std::io::Error::last_os_error());
        if Instant::now() > deadline {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the forked child did not finish within {TIMEOUT_SECS} s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Exit status of an [`in_fresh_process`] body that skipped; its message says why.
pub const SKIP_STATUS: i32 = 77;

/// Asserts that the wait `status` says the process died of `signal`; `what` says what
/// was expected (and why), the assertion adds what happened.
pub fn assert_killed_by(status: i32, signal: i32, what: &str) {
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == signal,
        "{what}, but it {}",
        describe(status)
    );
}

/// For a child of [`in_fresh_process`]: writes a fresh page made read-only, which no
/// heap owns, so that the process dies of SIGSEGV however a tracker's handler chains.
/// Returns only if it survived, with what to report.
pub fn write_a_read_only_page_of_no_heap() -> Result<String, String> {
    let other = Region::new(PAGE_SIZE).map_err(|e| e.to_string())?;
    other
        .protect(other.base(), PAGE_SIZE, Protection::Read)
        .map_err(|e| e.to_string())?;
    write_page(other.base(), 0, 1);
    Err("survived a write to a read-only page outside every heap".into())
}

/// Describes a wait status for assertion messages.
pub fn describe(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else {
        format!("wait status {status:#x}")
    }
}

/// Writes `value` to the word at page `page` of the memory at `base`.
pub fn write_page(base: usize, page: usize, value: u64) {
    // SAFETY: the callers pass a page inside a live test mapping; volatile so that every
    // store really happens (it is the store that faults).
    unsafe { ((base + page * PAGE_SIZE) as *mut u64).write_volatile(value) };
}

/// Reads the word at page `page` of the memory at `base`.
pub fn read_page(base: usize, page: usize) -> u64 {
    // SAFETY: as in `write_page`.
    unsafe { ((base + page * PAGE_SIZE) as *const u64).read_volatile() }
}

/// Address of page `i` of `region` (panics when out of range).
pub fn page(region: &Region, i: usize) -> usize {
    assert!(
        i < region.pages(),
        "page {i} outside a {}-page region",
        region.pages()
    );
    region.base() + i * PAGE_SIZE
}

/// Writes `v` at `region.base() + offset` with a volatile store.
pub fn write_u64(region: &Region, offset: usize, v: u64) {
    assert!(
        offset % 8 == 0 && offset + 8 <= region.len(),
        "offset {offset:#x}"
    );
    // SAFETY: the word lies inside `region`, a live readable and writable mapping that
    // `region` owns (it is borrowed for the call); the tests access its words only
    // through volatile accesses, never through Rust references.
    unsafe { ((region.base() + offset) as *mut u64).write_volatile(v) }
}

/// Reads the word at `region.base() + offset` with a volatile load.
pub fn read_u64(region: &Region, offset: usize) -> u64 {
    assert!(
        offset % 8 == 0 && offset + 8 <= region.len(),
        "offset {offset:#x}"
    );
    // SAFETY: as in `write_u64`: inside a live, readable mapping owned by `region`.
    unsafe { ((region.base() + offset) as *const u64).read_volatile() }
}

/// Writes one word to every page of `region` so that every PTE is present (write-protect
/// without `WP_UNPOPULATED` only applies to present pages).
pub fn populate(region: &Region) {
    for i in 0..region.pages() {
        write_u64(region, i * PAGE_SIZE, 0x1111_0000 + i as u64);
    }
}

/// A thread that stores one word into a region (and may block on a fault doing it).
#[derive(Debug)]
pub struct Writer {
    tid: mpsc::Receiver<i32>,
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts a thread that sends its kernel tid, stores `value` at `offset` of `region`,
    /// then sets its done flag. It holds `region`, so the mapping outlives it.
    pub fn spawn(region: &Arc<Region>, offset: usize, value: u64) -> Writer {
        let (tx, tid) = mpsc::channel();
        let done = Arc::new(AtomicBool::new(false));
        let (r, d) = (Arc::clone(region), Arc::clone(&done));
        let handle = std::thread::Builder::new()
            .name(format!("writer-{offset:#x}"))
            .spawn(move || {
                let _ = tx.send(barrierlab::sys::gettid());
                write_u64(&r, offset, value);
                d.store(true, Ordering::SeqCst);
            })
            .expect("spawn a writer");
        Writer {
            tid,
            done,
            handle: Some(handle),
        }
    }

    /// The writer's kernel thread id (waits until it has started).
    pub fn tid(&self) -> i32 {
        self.tid
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer thread did not start")
    }

    /// Whether the store has completed.
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits for the writer; panics if it panicked.
    pub fn join(mut self) {
        if let Some(h) = self.handle.take() {
            h.join().expect("the writer thread panicked");
        }
    }
}

/// Unprotects (and wakes) a range when dropped, so that a writer blocked on a
/// write-protect fault is released on every path out of a test, including a failed
/// assertion. (A writer blocked on a *missing* fault is released when the [`Uffd`] is
/// dropped: closing a userfaultfd wakes every thread waiting on it.)
pub struct Release<'a> {
    uffd: &'a Uffd,
    start: usize,
    len: usize,
}

impl<'a> Release<'a> {
    /// Guards `[start, start + len)` of `uffd`.
    pub fn new(uffd: &'a Uffd, start: usize, len: usize) -> Self {
        Release { uffd, start, len }
    }
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let _ = self.uffd.unprotect(self.start, self.len, WpMode::empty());
        let _ = self.uffd.wake(self.start, self.len);
    }
}
