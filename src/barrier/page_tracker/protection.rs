//! A mechanism's protection primitive ([`PageProtection`]): what the record calls to
//! protect and unprotect a run of pages, from a signal handler too, hence its safety
//! contract.

use crate::barrier::Call;
use crate::sys::RawResult;

/// How a mechanism changes the protection of a page-aligned range of its heap.
///
/// # Safety
/// [`PageRecord`](super::PageRecord) calls these from a signal handler (the writer's
/// fault path, and a degradation there), so an implementation must:
/// 1. be async-signal-safe: single system calls and atomics only; no allocation, no
///    lock, no formatting, no lazily initialised thread-local;
/// 2. not panic (the handler is `extern "C"`: a panic aborts the process);
/// 3. apply exactly to `[start, start + len)`, which the caller keeps inside the heap.
pub(crate) unsafe trait PageProtection: Send + Sync + 'static {
    /// The call both methods make, named in a
    /// [`Degradation`](crate::barrier::Degradation).
    const CALL: Call;
    /// A degraded cycle stays degraded (its harvests re-protect nothing) until the next
    /// arm: for a mechanism whose re-protect would only fail again the same way.
    const STICKY: bool;
    /// The errno of a failure injected by
    /// [`TestKnobs::fail_next`](crate::barrier::TestKnobs::fail_next): the one the kernel
    /// would most plausibly return.
    const INJECTED: i32;
    /// Write-protects `[start, start + len)`; the errno on failure.
    fn protect(&self, start: usize, len: usize) -> RawResult;
    /// Makes `[start, start + len)` writable (waking writers blocked on it); the errno on
    /// failure.
    fn unprotect(&self, start: usize, len: usize) -> RawResult;
}
