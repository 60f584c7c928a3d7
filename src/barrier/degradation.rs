//! Why a tracker lost precision for a cycle: the step and the kernel call that failed
//! ([`Step`], [`Call`], [`Degradation`]), and the cell that keeps the first failure of a
//! cycle where a signal handler may write it.
//!
//! A tracker that cannot do its job for a cycle degrades to "everything is dirty", counts
//! the cycle once in [`TrackerStats::degradations`](super::TrackerStats::degradations) and
//! keeps the cause, so that a report names the call, the errno and the range rather than
//! a boolean.
//!
//! Never: allocate, lock or wait in [`CauseCell::write`], which runs in signal handlers.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use crate::error::Error;

/// Where in a tracker's cycle a degradation happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Protecting the heap at arm (the collector then marks with the world stopped).
    Arm,
    /// Serving a write fault (the handler or the fault service).
    Fault,
    /// Re-protecting the pages a harvest took.
    Harvest,
    /// Unprotecting the heap at disarm.
    Disarm,
    /// Reading or polling the userfaultfd in the fault service.
    Service,
    /// Making pages writable as the allocator hands them out
    /// ([`DirtyTracker::hand_out`](super::DirtyTracker::hand_out)).
    HandOut,
}

impl Step {
    const ALL: [Step; 6] = [
        Step::Arm,
        Step::Fault,
        Step::Harvest,
        Step::Disarm,
        Step::Service,
        Step::HandOut,
    ];

    /// What the step was doing, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Step::Arm => "arm",
            Step::Fault => "serving a fault",
            Step::Harvest => "re-protecting at harvest",
            Step::Disarm => "disarm",
            Step::Service => "the fault service",
            Step::HandOut => "handing pages to the allocator",
        }
    }
}

/// A call a page tracker makes to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// `UFFDIO_WRITEPROTECT` (protect or unprotect).
    WriteProtect,
    /// `mprotect(2)`.
    Mprotect,
    /// The `PAGEMAP_SCAN` ioctl on `/proc/self/pagemap`.
    PagemapScan,
    /// `read(2)` of userfaultfd messages.
    ReadUserfaultfd,
    /// `poll(2)` on the userfaultfd.
    PollUserfaultfd,
}

impl Call {
    const ALL: [Call; 5] = [
        Call::WriteProtect,
        Call::Mprotect,
        Call::PagemapScan,
        Call::ReadUserfaultfd,
        Call::PollUserfaultfd,
    ];

    /// The call's name, as [`Error::Sys`] names it.
    pub fn name(self) -> &'static str {
        match self {
            Call::WriteProtect => "UFFDIO_WRITEPROTECT",
            Call::Mprotect => "mprotect",
            Call::PagemapScan => "PAGEMAP_SCAN",
            Call::ReadUserfaultfd => "read(userfaultfd)",
            Call::PollUserfaultfd => "poll(userfaultfd)",
        }
    }
}

/// Why a tracker degraded to "everything dirty" (or could not arm) in a cycle: the first
/// failure of that cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Degradation {
    /// Where in the cycle.
    pub step: Step,
    /// The call that failed.
    pub call: Call,
    /// The `errno` it failed with.
    pub errno: i32,
    /// The range it applied to (start, length in bytes), if any.
    pub range: Option<(usize, usize)>,
}

impl Degradation {
    /// The failure as the crate's error (operation, range, errno).
    pub fn error(&self) -> Error {
        Error::from_errno(self.call.name(), self.range, self.errno)
    }
}

impl fmt::Display for Degradation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step.name(), self.error())
    }
}

/// The first failure of the latest degraded cycle, written by whoever degrades (a signal
/// handler among them) and read by `stats`.
///
/// A sequence lock over atomics: a writer makes `seq` odd, stores the fields and makes it
/// even again; a reader keeps what it read only if `seq` was the same even number before
/// and after. Writers exclude each other with `writing`; one that finds it taken gives up
/// (the cycle is still counted, only its cause is not written). `seq == 0`: never written.
#[derive(Debug, Default)]
pub(crate) struct CauseCell {
    writing: AtomicBool,
    seq: AtomicU64,
    step: AtomicU8,
    call: AtomicU8,
    errno: AtomicI32,
    has_range: AtomicBool,
    start: AtomicUsize,
    len: AtomicUsize,
}

impl CauseCell {
    /// Async-signal-safe: atomics only, no wait.
    pub(crate) fn write(&self, d: &Degradation) {
        if self.writing.swap(true, Ordering::Acquire) {
            return;
        }
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        self.step.store(d.step as u8, Ordering::Relaxed);
        self.call.store(d.call as u8, Ordering::Relaxed);
        self.errno.store(d.errno, Ordering::Relaxed);
        let (start, len) = d.range.unwrap_or((0, 0));
        self.has_range.store(d.range.is_some(), Ordering::Relaxed);
        self.start.store(start, Ordering::Relaxed);
        self.len.store(len, Ordering::Relaxed);
        self.seq.store(seq + 2, Ordering::Release);
        self.writing.store(false, Ordering::Release);
    }

    pub(crate) fn read(&self) -> Option<Degradation> {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            let d = Degradation {
                step: Step::ALL[usize::from(self.step.load(Ordering::Relaxed))],
                call: Call::ALL[usize::from(self.call.load(Ordering::Relaxed))],
                errno: self.errno.load(Ordering::Relaxed),
                range: self.has_range.load(Ordering::Relaxed).then(|| {
                    (
                        self.start.load(Ordering::Relaxed),
                        self.len.load(Ordering::Relaxed),
                    )
                }),
            };
            std::sync::atomic::fence(Ordering::Acquire);
            if before % 2 == 0 && self.seq.load(Ordering::Relaxed) == before {
                return Some(d);
            }
            std::thread::yield_now();
        }
    }
}
