//! The record every page tracker keeps and the protocol it follows: what `uffd-wp`,
//! `uffd-wp-async`, `uffd-wp-sigbus` and `mprotect` have in common, written once, so
//! that each mechanism's file holds only its mechanism (how it protects a range,
//! unprotects it, and serves a fault).
//!
//! What is here:
//! - [`PageRecord`]: the exact dirty bitmap (one bit per heap page, outside the heap) and
//!   the "everything is dirty" flag, with the cycle around them: [`arm`](PageRecord::arm),
//!   [`harvest`](PageRecord::harvest), [`disarm`](PageRecord::disarm). A harvest *takes
//!   the record, then re-protects* what it took, and the caller rescans after: the
//!   reverse order loses a write that lands in between. Re-protecting goes run by run, or
//!   over the whole range in one call when the runs are many. Only the prefix the heap
//!   has used ([`PageRecord::in_use`], its high-water mark) is protected; pages that come
//!   into use during a cycle were never protected, so the next harvest reports them
//!   (all of them: they may have been written unseen) and protects them.
//! - [`Counters`]: the counters of [`TrackerStats`], each defined once there: faults
//!   served, granules recorded, degraded cycles with the first failure of the latest one,
//!   and the userfaultfd mode in use.
//! - [`TestKnobs`]: fault injection and widened races, for the tests only.
//! - [`open_userfaultfd`]: the descriptor a userfaultfd tracker runs on; a fallback to
//!   user-mode-only is kept in its [`UffdMode`], so it is never silent.
//!
//! A mechanism supplies a [`PageProtection`] and its fault path. Who serves the fault
//! decides the order there (`DESIGN.md`, "Ordering"): a handler on the writing thread
//! *unprotects, then records*; a service on another thread *records, then unprotects*
//! and excludes harvests with a lock. [`PageRecord::degrade`] follows the handler's
//! order for the whole range (make everything writable, *then* raise the flag), which is
//! safe in both: a flag raised first could be taken by a harvest before the unprotect
//! lands, and the pages it then leaves writable would be reported by nobody.
//!
//! Degradation: IF a protection change fails THEN the whole range is made writable, and
//! every harvest reports "everything dirty" until a whole-range re-protect succeeds (or,
//! for a [`PageProtection::STICKY`] mechanism, until the next arm). The cycle counts once
//! in [`TrackerStats::degradations`], and its first failure is kept, with the step, the
//! call, the errno and the range, in [`TrackerStats::last_degradation`].
//!
//! Never: allocate, lock or panic in what a signal handler calls ([`PageRecord::record`],
//! [`PageRecord::degrade`], [`TestKnobs`]' injection points, the cause cell's writer).

use std::fmt;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

use super::{DirtySet, TrackerStats};
use crate::bitmap::Bitmap;
use crate::error::{Error, Result};
use crate::side_table::SideTable;
use crate::sys::uffd::{Features, Origin, Uffd};
use crate::sys::{PAGE_SHIFT, PAGE_SIZE};

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

/// The userfaultfd a tracker runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UffdMode {
    /// `UFFD_USER_MODE_ONLY`: a write by the kernel into a protected page fails with
    /// `EFAULT` instead of faulting.
    pub user_mode_only: bool,
    /// Opened with the system call or through `/dev/userfaultfd`.
    pub origin: Origin,
    /// Full mode was asked for and refused (no privilege): user-mode-only is a fallback.
    pub fell_back: bool,
}

impl UffdMode {
    /// `full` or `user-mode-only`.
    pub fn name(&self) -> &'static str {
        if self.user_mode_only {
            "user-mode-only"
        } else {
            "full"
        }
    }
}

impl fmt::Display for UffdMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let via = match self.origin {
            Origin::Syscall => "userfaultfd(2)",
            Origin::DevNode => "/dev/userfaultfd",
        };
        write!(f, "{} via {via}", self.name())?;
        if self.fell_back {
            write!(f, " (fallback: full mode was refused)")?;
        }
        Ok(())
    }
}

/// Opens the userfaultfd of a tracker with `features`: full mode unless `user_mode_only`,
/// falling back to `UFFD_USER_MODE_ONLY` when full mode is refused for lack of privilege
/// (`vm.unprivileged_userfaultfd=0`). The returned mode says which, so that the fallback
/// shows in [`TrackerStats::uffd`], the probe and `gcbench`'s line.
pub(crate) fn open_userfaultfd(
    features: Features,
    user_mode_only: bool,
    nonblocking: bool,
) -> Result<(Uffd, UffdMode)> {
    let open = |umo: bool| {
        Uffd::builder()
            .features(features)
            .user_mode_only(umo)
            .nonblocking(nonblocking)
            .create()
    };
    let mode = |uffd: &Uffd, fell_back| UffdMode {
        user_mode_only: uffd.user_mode_only(),
        origin: uffd.origin(),
        fell_back,
    };
    match open(user_mode_only) {
        Ok(uffd) => {
            let m = mode(&uffd, false);
            Ok((uffd, m))
        }
        Err(
            full @ (Error::Unavailable { .. }
            | Error::Sys {
                errno: libc::EPERM, ..
            }),
        ) if !user_mode_only => match open(true) {
            Ok(uffd) => {
                let m = mode(&uffd, true);
                Ok((uffd, m))
            }
            Err(umo) => Err(Error::Unavailable {
                mechanism: "userfaultfd",
                causes: vec![full, umo],
            }),
        },
        Err(e) => Err(e),
    }
}

/// How a mechanism changes the protection of a page-aligned range of its heap.
///
/// # Safety
/// [`PageRecord`] calls these from a signal handler (when it degrades there), so an
/// implementation must:
/// 1. be async-signal-safe: single system calls and atomics only; no allocation, no
///    lock, no formatting, no lazily initialised thread-local;
/// 2. not panic (the handler is `extern "C"`: a panic aborts the process);
/// 3. apply exactly to `[start, start + len)`, which the caller keeps inside the heap.
pub(crate) unsafe trait PageProtection {
    /// The call both methods make, named in a [`Degradation`].
    const CALL: Call;
    /// A degraded cycle stays degraded (its harvests re-protect nothing) until the next
    /// arm: for a mechanism whose re-protect would only fail again the same way.
    const STICKY: bool;
    /// Write-protects `[start, start + len)`; the errno on failure.
    fn protect(&self, start: usize, len: usize) -> std::result::Result<(), i32>;
    /// Makes `[start, start + len)` writable (waking writers blocked on it); the errno on
    /// failure.
    fn unprotect(&self, start: usize, len: usize) -> std::result::Result<(), i32>;
}

// SAFETY: `protect_errno` and `unprotect_errno` are each one ioctl on a stack argument
// with a bounded retry, documented async-signal-safe; neither panics; each applies to
// the range given.
unsafe impl PageProtection for Uffd {
    const CALL: Call = Call::WriteProtect;
    const STICKY: bool = false;

    fn protect(&self, start: usize, len: usize) -> std::result::Result<(), i32> {
        self.protect_errno(start, len)
    }

    fn unprotect(&self, start: usize, len: usize) -> std::result::Result<(), i32> {
        self.unprotect_errno(start, len)
    }
}

/// Calls `f(first, count)` for each run of consecutive values in a sorted slice.
pub(crate) fn for_each_run(sorted: &[usize], mut f: impl FnMut(usize, usize)) {
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j] == sorted[j - 1] + 1 {
            j += 1;
        }
        f(sorted[i], j - i);
        i = j;
    }
}

/// Above one run per this many heap pages, a harvest re-protects the whole heap in one
/// call (~70 ns per page, `papers/reference/c-probe-2026-11-29.md`) instead of one call per run
/// (~1–2 µs each).
const PAGES_PER_RUN: usize = 16;

/// The first failure of the latest degraded cycle, written by whoever degrades (a signal
/// handler among them) and read by `stats`.
///
/// A sequence lock over atomics: a writer makes `seq` odd, stores the fields and makes it
/// even again; a reader keeps what it read only if `seq` was the same even number before
/// and after. Writers exclude each other with `writing`; one that finds it taken gives up
/// (the cycle is still counted, only its cause is not written). `seq == 0`: never written.
#[derive(Debug, Default)]
struct CauseCell {
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
    fn write(&self, d: &Degradation) {
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

    fn read(&self) -> Option<Degradation> {
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

/// Lab internals: the test knobs of a page tracker
/// ([`DirtyTracker::test_knobs`](super::DirtyTracker::test_knobs)). Tests set them; a
/// measurement leaves them at zero, where each costs one relaxed load on its path.
#[derive(Debug, Default)]
pub struct TestKnobs {
    fail_next: AtomicU32,
    widen: AtomicU32,
    forget_hand_outs: AtomicBool,
}

impl TestKnobs {
    /// The next `n` protection changes at the mechanism's injection point fail as if the
    /// kernel had refused them. Each mechanism's module docs name the point and the
    /// errno (`mprotect`: `ENOMEM` in a page `mprotect`, as at `vm.max_map_count`).
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::Relaxed);
    }

    /// Spin `spins` times between the two steps of serving a fault (unprotect | record)
    /// and of a harvest (take | re-protect), to widen the races between them.
    pub fn widen_races(&self, spins: u32) {
        self.widen.store(spins, Ordering::Relaxed);
    }

    /// A planted bug: pages handed to the allocator while armed are made writable but not
    /// recorded, so that writes to objects allocated in them are lost to the barrier (the
    /// verifier must catch it). Has no effect on `uffd-wp-async`, whose record is the
    /// protection itself: a page made writable is reported written.
    pub fn forget_hand_outs(&self, yes: bool) {
        self.forget_hand_outs.store(yes, Ordering::Relaxed);
    }

    /// Whether [`TestKnobs::forget_hand_outs`] is on.
    pub(crate) fn forgets_hand_outs(&self) -> bool {
        self.forget_hand_outs.load(Ordering::Relaxed)
    }

    /// Whether this protection change is one to fail (counting it). Async-signal-safe.
    pub(crate) fn take_failure(&self) -> bool {
        self.fail_next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Spins as [`TestKnobs::widen_races`] asked. Async-signal-safe.
    pub(crate) fn widen(&self) {
        for _ in 0..self.widen.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
    }
}

/// Fault stalls as a tracker measured them, `(start, duration)` in `CLOCK_MONOTONIC`
/// nanoseconds, in a fixed-capacity log that a signal handler may append to: an entry is
/// claimed with one `fetch_add` and published by storing its duration with
/// [`StallLog::READY`] set. The log is never reset (a reset could race a writer that has
/// claimed an entry); the reader keeps a cursor, and stalls past the capacity are counted
/// as dropped. The table is a side table: only the entries used cost memory.
#[derive(Debug)]
pub(crate) struct StallLog {
    entries: SideTable<AtomicU64>,
    next: AtomicUsize,
    /// The first entry not yet taken (the reader's, under its lock).
    taken: parking_lot::Mutex<usize>,
    dropped: AtomicU64,
}

impl StallLog {
    /// Stalls one log keeps: 1 Mi (16 MiB reserved).
    pub(crate) const CAPACITY: usize = 1 << 20;
    /// Set in a published duration.
    const READY: u64 = 1 << 63;

    pub(crate) fn new() -> Result<StallLog> {
        Ok(StallLog {
            entries: SideTable::new(2 * Self::CAPACITY)?,
            next: AtomicUsize::new(0),
            taken: parking_lot::Mutex::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Appends a stall that began at `start_ns` and ends now. Async-signal-safe; never
    /// panics.
    pub(crate) fn push_since(&self, start_ns: u64) {
        let duration = crate::sys::monotonic_ns().saturating_sub(start_ns);
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        match (self.entries.get(2 * i), self.entries.get(2 * i + 1)) {
            (Some(s), Some(d)) => {
                s.store(start_ns, Ordering::Relaxed);
                d.store(duration | Self::READY, Ordering::Release);
            }
            _ => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Moves the stalls published since the last call into `out`, in claim order; an
    /// entry claimed but not yet published ends the call (it is taken next time).
    pub(crate) fn take(&self, out: &mut Vec<(u64, u64)>) {
        let mut taken = self.taken.lock();
        let end = self.next.load(Ordering::Acquire).min(Self::CAPACITY);
        while *taken < end {
            let d = self.entries[2 * *taken + 1].load(Ordering::Acquire);
            if d & Self::READY == 0 {
                break;
            }
            out.push((
                self.entries[2 * *taken].load(Ordering::Relaxed),
                d & !Self::READY,
            ));
            *taken += 1;
        }
    }

    /// Stalls that did not fit.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The counters of a tracker, each as [`TrackerStats`] defines it.
#[derive(Debug)]
pub(crate) struct Counters {
    faults: AtomicU64,
    frontier_faults: AtomicU64,
    handed_out: AtomicU64,
    hand_out_calls: AtomicU64,
    recorded: AtomicU64,
    degradations: AtomicU64,
    /// This cycle is counted in `degradations` already.
    cycle_degraded: AtomicBool,
    cause: CauseCell,
    mode: Option<UffdMode>,
    knobs: TestKnobs,
}

impl Counters {
    /// Counters for a tracker on the userfaultfd `mode` (`None`: it has none).
    pub(crate) fn new(mode: Option<UffdMode>) -> Counters {
        Counters {
            faults: AtomicU64::new(0),
            frontier_faults: AtomicU64::new(0),
            handed_out: AtomicU64::new(0),
            hand_out_calls: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            degradations: AtomicU64::new(0),
            cycle_degraded: AtomicBool::new(false),
            cause: CauseCell::default(),
            mode,
            knobs: TestKnobs::default(),
        }
    }

    /// A new cycle (arm): it has not degraded yet.
    pub(crate) fn begin_cycle(&self) {
        self.cycle_degraded.store(false, Ordering::Release);
    }

    /// `n` faults served. Async-signal-safe.
    pub(crate) fn served(&self, n: u64) {
        self.faults.fetch_add(n, Ordering::Relaxed);
    }

    /// A fault served on a page handed to the allocator this cycle (one that a harvest
    /// had protected again). Async-signal-safe.
    pub(crate) fn frontier_fault(&self) {
        self.frontier_faults.fetch_add(1, Ordering::Relaxed);
    }

    /// `pages` pages made writable and recorded at hand-out, with `calls` protection
    /// changes.
    pub(crate) fn handed_out(&self, pages: usize, calls: usize) {
        self.handed_out.fetch_add(pages as u64, Ordering::Relaxed);
        self.hand_out_calls
            .fetch_add(calls as u64, Ordering::Relaxed);
    }

    /// A harvest handed over `n` granules.
    pub(crate) fn recorded(&self, n: usize) {
        self.recorded.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// This cycle degraded because of `cause`: counted once per cycle, the first cause
    /// kept. Async-signal-safe.
    pub(crate) fn degraded(&self, cause: Degradation) {
        if !self.cycle_degraded.swap(true, Ordering::AcqRel) {
            self.cause.write(&cause);
            self.degradations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The test knobs.
    pub(crate) fn knobs(&self) -> &TestKnobs {
        &self.knobs
    }

    /// The counters kept here; the mechanism adds its own (`messages`, `reads`,
    /// `eagain_retries`).
    pub(crate) fn stats(&self) -> TrackerStats {
        TrackerStats {
            faults: self.faults.load(Ordering::Relaxed),
            frontier_faults: self.frontier_faults.load(Ordering::Relaxed),
            handed_out: self.handed_out.load(Ordering::Relaxed),
            hand_out_calls: self.hand_out_calls.load(Ordering::Relaxed),
            recorded: self.recorded.load(Ordering::Relaxed),
            degradations: self.degradations.load(Ordering::Relaxed),
            last_degradation: self.cause.read(),
            uffd: self.mode,
            ..TrackerStats::default()
        }
    }
}

/// The dirty record of a page tracker over the heap `[base, base + len)`: which pages
/// were written since the last arm or harvest, or that every page must count as written.
#[derive(Debug)]
pub(crate) struct PageRecord {
    base: usize,
    len: usize,
    dirty: Bitmap,
    /// Pages handed to the allocator since arm ([`PageRecord::hand_out`]): a fault on one
    /// of them is a write to an object allocated during the cycle, counted apart.
    handed: Bitmap,
    /// Between arm and disarm: pages handed out are made writable and recorded.
    active: AtomicBool,
    /// Pages may be writable without a record (a protection change failed): harvests
    /// report everything until a whole-range re-protect succeeds or the next arm.
    everything: AtomicBool,
    /// The prefix of the heap, in bytes, that the heap says it has used
    /// ([`PageRecord::in_use`]); the whole heap until it says.
    in_use: AtomicUsize,
    /// The prefix protected since arm: arm protects `[base, base + in_use)`, and a
    /// harvest extends it to the latest `in_use`, reporting the pages it adds.
    armed: AtomicUsize,
    counters: Counters,
    /// The fault stalls the mechanism measured.
    stalls: StallLog,
}

impl PageRecord {
    /// A clean record for `[base, base + len)` (whole pages) on the userfaultfd `mode`;
    /// fails only if its bitmap's mapping cannot be reserved.
    pub(crate) fn new(base: usize, len: usize, mode: Option<UffdMode>) -> Result<PageRecord> {
        Ok(PageRecord {
            base,
            len,
            dirty: Bitmap::new(len / PAGE_SIZE)?,
            handed: Bitmap::new(len / PAGE_SIZE)?,
            active: AtomicBool::new(false),
            everything: AtomicBool::new(false),
            in_use: AtomicUsize::new(len),
            armed: AtomicUsize::new(0),
            counters: Counters::new(mode),
            stalls: StallLog::new()?,
        })
    }

    /// The heap's first address.
    pub(crate) fn base(&self) -> usize {
        self.base
    }

    /// The heap's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The page index of a heap address (wrapping: the caller checked the range).
    pub(crate) fn page_of(&self, addr: usize) -> usize {
        addr.wrapping_sub(self.base) >> PAGE_SHIFT
    }

    /// The address of page `page`.
    pub(crate) fn addr_of(&self, page: usize) -> usize {
        self.base + (page << PAGE_SHIFT)
    }

    /// The counters.
    #[cfg(test)]
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The test knobs.
    pub(crate) fn knobs(&self) -> &TestKnobs {
        self.counters.knobs()
    }

    /// The fault stalls measured so far.
    pub(crate) fn stalls(&self) -> &StallLog {
        &self.stalls
    }

    /// The counters kept here and the stall log's, for a mechanism whose stalls are
    /// measured as `stall_method` says; the mechanism adds its own counters.
    pub(crate) fn stats(&self, stall_method: &'static str) -> TrackerStats {
        TrackerStats {
            stall_method,
            stalls_dropped: self.stalls.dropped(),
            ..self.counters.stats()
        }
    }

    /// Records one served fault on `page`. Async-signal-safe; never panics.
    pub(crate) fn record(&self, page: usize) {
        if self.dirty.try_set(page) {
            self.counters.served(1);
            if self.handed.get_checked(page) {
                self.counters.frontier_fault();
            }
        }
    }

    /// The allocator hands `[start, start + len)` to a mutator
    /// ([`DirtyTracker::hand_out`](super::DirtyTracker::hand_out)). While armed, the pages
    /// of it that lie in the protected prefix and are not recorded yet are made writable,
    /// one call per run of such pages, *then* recorded. Pages beyond the prefix were never
    /// protected, and the next harvest reports them anyway.
    ///
    /// Why "unprotect, then record" is safe here whoever serves faults: no mutator writes
    /// the range before this returns. IF a harvest takes the record between the two
    /// steps THEN it does not have this page, and re-protects it only if it re-protects
    /// the whole prefix, after which the page is recorded anyway (and a write faults and
    /// is recorded again); the next harvest reports it. The reverse order would let a
    /// harvest take the record and re-protect nothing before the unprotect lands, leaving
    /// the page writable and unrecorded. A page already recorded is skipped: it is either
    /// still writable, or a harvest has re-protected it and a write faults.
    pub(crate) fn hand_out<P: PageProtection>(&self, p: &P, start: usize, len: usize) {
        if len == 0 || !self.active.load(Ordering::Acquire) {
            return;
        }
        let protected = self.armed.load(Ordering::Acquire) / PAGE_SIZE;
        let first = self.page_of(start);
        let end = (first + len.div_ceil(PAGE_SIZE)).min(protected);
        let (mut pages, mut calls) = (0, 0);
        let mut page = first;
        while page < end {
            if self.dirty.get(page) {
                page += 1;
                continue;
            }
            let run = page;
            while page < end && !self.dirty.get(page) {
                page += 1;
            }
            let range = (self.addr_of(run), (page - run) * PAGE_SIZE);
            calls += 1;
            if let Err(errno) = p.unprotect(range.0, range.1) {
                // Degraded: everything writable, every harvest reports everything.
                let _ = self.degrade(p, Step::HandOut, errno, range);
                break;
            }
            for q in run..page {
                self.handed.set(q);
                if !self.knobs().forgets_hand_outs() {
                    self.dirty.set(q);
                }
            }
            pages += page - run;
        }
        self.counters.handed_out(pages, calls);
    }

    /// The heap has used only its first `bytes` so far (a high-water mark: it never
    /// shrinks). Arm protects only that prefix, so that a cycle costs what the pages in
    /// use cost, not the reservation (a 64 GiB heap with a few MiB in use).
    pub(crate) fn in_use(&self, bytes: usize) {
        let bytes = bytes.next_multiple_of(PAGE_SIZE).min(self.len);
        self.in_use.store(bytes, Ordering::Release);
    }

    /// Starts a cycle: clears the record, then protects the heap's used prefix
    /// ([`PageRecord::in_use`]). IF that fails THEN the heap is left writable, the cycle
    /// counts as degraded and the error is returned (the collector then marks with the
    /// world stopped).
    pub(crate) fn arm<P: PageProtection>(&self, p: &P) -> Result<()> {
        self.dirty.clear_all();
        self.handed.clear_all();
        self.everything.store(false, Ordering::Release);
        self.counters.begin_cycle();
        let extent = self.in_use.load(Ordering::Acquire);
        self.armed.store(extent, Ordering::Release);
        // Before the protect: a hand-out from now on records its pages (one that lands
        // before the protect leaves its page protected and recorded, which is safe).
        self.active.store(true, Ordering::Release);
        p.protect(self.base, extent).map_err(|errno| {
            let _ = self.degrade(p, Step::Arm, errno, (self.base, extent));
            self.whole_range_error(P::CALL, errno, "protecting the heap at arm")
        })
    }

    /// Pages the heap started using since they were last protected: they were never
    /// protected, so they may have been written unseen. Appends them to `out` (after
    /// every recorded page, which all lie below the old extent) and extends the
    /// protected prefix over them; the caller's re-protect then covers them.
    fn take_grown(&self, out: &mut Vec<usize>) {
        let extent = self.in_use.load(Ordering::Acquire);
        let old = self.armed.load(Ordering::Acquire);
        if extent > old {
            out.extend(old / PAGE_SIZE..extent / PAGE_SIZE);
            self.armed.store(extent, Ordering::Release);
        }
    }

    /// Moves the record into `out` and, with `rearm`, re-protects what it took, in that
    /// order: the take clears the record first, so that a write after the re-protect
    /// faults and is recorded again, and one before it is seen by the caller's rescan.
    /// Fails only if even making the heap writable failed after a failed re-protect.
    pub(crate) fn harvest<P: PageProtection>(
        &self,
        p: &P,
        out: &mut DirtySet,
        rearm: bool,
    ) -> Result<()> {
        out.clear();
        self.dirty.take(&mut out.granules);
        self.take_grown(&mut out.granules);
        out.all = if P::STICKY {
            self.everything.load(Ordering::Acquire)
        } else {
            self.everything.swap(false, Ordering::AcqRel)
        };
        self.knobs().widen();
        let result = if !rearm || (P::STICKY && out.all) {
            // Nothing re-protected: pages still writable without a record stay reported.
            if out.all && !P::STICKY {
                self.everything.store(true, Ordering::Release);
            }
            Ok(())
        } else {
            match self.reprotect(p, out) {
                Ok(()) => Ok(()),
                Err((errno, range)) => {
                    // Pages taken but left writable would miss later writes.
                    out.all = true;
                    self.degrade(p, Step::Harvest, errno, range).map_err(|e| {
                        self.whole_range_error(P::CALL, e, "degrading after a failed re-protect")
                    })
                }
            }
        };
        self.counters.recorded(out.granules.len());
        result
    }

    /// Ends a cycle: the protected prefix writable again (nothing beyond it was
    /// protected). A failure is counted as a degradation of the cycle and returned.
    pub(crate) fn disarm<P: PageProtection>(&self, p: &P) -> Result<()> {
        // A hand-out that skips from now on leaves a page protected until the unprotect
        // below: a write to it meanwhile faults and is served, as any other.
        self.active.store(false, Ordering::Release);
        let extent = self.armed.load(Ordering::Acquire);
        p.unprotect(self.base, extent).map_err(|errno| {
            self.counters.degraded(Degradation {
                step: Step::Disarm,
                call: P::CALL,
                errno,
                range: Some((self.base, extent)),
            });
            self.whole_range_error(P::CALL, errno, "unprotecting the heap at disarm")
        })
    }

    /// Gives up precision for the cycle: the whole heap writable first, then the flag,
    /// then the count and the cause. Returns the whole-range unprotect's result: IF it
    /// failed THEN pages may stay protected, and a handler must pass its fault on rather
    /// than retry a write that would fault forever. Async-signal-safe.
    pub(crate) fn degrade<P: PageProtection>(
        &self,
        p: &P,
        step: Step,
        errno: i32,
        range: (usize, usize),
    ) -> std::result::Result<(), i32> {
        self.degrade_with(p, step, P::CALL, errno, Some(range))
    }

    /// [`PageRecord::degrade`] for a failure of another call than the mechanism's
    /// protection change (reading or polling the userfaultfd).
    pub(crate) fn degrade_with<P: PageProtection>(
        &self,
        p: &P,
        step: Step,
        call: Call,
        errno: i32,
        range: Option<(usize, usize)>,
    ) -> std::result::Result<(), i32> {
        let whole = p.unprotect(self.base, self.len);
        self.everything.store(true, Ordering::Release);
        self.counters.degraded(Degradation {
            step,
            call,
            errno,
            range,
        });
        whole
    }

    /// Re-protects the pages of a harvested set: the whole heap when the set is
    /// "everything" or has many runs, else run by run. The errno and range of the first
    /// failure.
    fn reprotect<P: PageProtection>(
        &self,
        p: &P,
        set: &DirtySet,
    ) -> std::result::Result<(), (i32, (usize, usize))> {
        let mut runs = 0;
        for_each_run(&set.granules, |_, _| runs += 1);
        let extent = self.armed.load(Ordering::Acquire);
        if set.all || runs * PAGES_PER_RUN > extent / PAGE_SIZE {
            return p
                .protect(self.base, extent)
                .map_err(|e| (e, (self.base, extent)));
        }
        let mut result = Ok(());
        for_each_run(&set.granules, |first, count| {
            if result.is_ok() {
                let range = (self.addr_of(first), count * PAGE_SIZE);
                result = p.protect(range.0, range.1).map_err(|e| (e, range));
            }
        });
        result
    }

    fn whole_range_error(&self, call: Call, errno: i32, what: &str) -> Error {
        Error::from_errno(call.name(), Some((self.base, self.len)), errno)
            .with_hint(format!("{what}; the tracker degraded for this cycle"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn runs_are_maximal() {
        let mut runs = Vec::new();
        for_each_run(&[1, 2, 3, 7, 9, 10], |a, n| runs.push((a, n)));
        assert_eq!(runs, vec![(1, 3), (7, 1), (9, 2)]);
    }

    /// A protection that logs its calls and fails the ones it is told to.
    #[derive(Default)]
    struct Log {
        calls: Mutex<Vec<(bool, usize, usize)>>,
        fail_protect: AtomicBool,
    }

    // SAFETY: only used in these tests, never from a signal handler.
    unsafe impl PageProtection for Log {
        const CALL: Call = Call::Mprotect;
        const STICKY: bool = false;
        fn protect(&self, start: usize, len: usize) -> std::result::Result<(), i32> {
            self.calls.lock().unwrap().push((true, start, len));
            if self.fail_protect.load(Ordering::Relaxed) {
                Err(libc::ENOMEM)
            } else {
                Ok(())
            }
        }
        fn unprotect(&self, start: usize, len: usize) -> std::result::Result<(), i32> {
            self.calls.lock().unwrap().push((false, start, len));
            Ok(())
        }
    }

    const BASE: usize = 1 << 30;
    const PAGES: usize = 64;

    fn calls(p: &Log) -> Vec<(bool, usize, usize)> {
        std::mem::take(&mut *p.calls.lock().unwrap())
    }

    #[test]
    fn a_harvest_re_protects_run_by_run_or_the_whole_heap() {
        let r = PageRecord::new(BASE, PAGES * PAGE_SIZE, None).unwrap();
        let p = Log::default();
        r.arm(&p).unwrap();
        assert_eq!(calls(&p), vec![(true, BASE, PAGES * PAGE_SIZE)]);
        for page in [3, 4, 9] {
            r.record(page);
        }
        let mut out = DirtySet::default();
        r.harvest(&p, &mut out, true).unwrap();
        assert_eq!(out.granules, vec![3, 4, 9]);
        assert_eq!(
            calls(&p),
            vec![
                (true, BASE + 3 * PAGE_SIZE, 2 * PAGE_SIZE),
                (true, BASE + 9 * PAGE_SIZE, PAGE_SIZE)
            ]
        );
        // Five runs on 64 pages: more than one run per 16 pages, so the whole heap.
        for page in [0, 10, 20, 30, 40] {
            r.record(page);
        }
        r.harvest(&p, &mut out, true).unwrap();
        assert_eq!(calls(&p), vec![(true, BASE, PAGES * PAGE_SIZE)]);
        // Without rearm nothing is re-protected.
        r.record(5);
        r.harvest(&p, &mut out, false).unwrap();
        assert_eq!(out.granules, vec![5]);
        assert!(calls(&p).is_empty());
        assert_eq!(r.counters().stats().faults, 9);
        assert_eq!(r.counters().stats().recorded, 9);
    }

    #[test]
    fn a_stall_log_hands_over_each_stall_once_in_order() {
        let log = StallLog::new().unwrap();
        let now = crate::sys::monotonic_ns();
        for k in 0..3 {
            log.push_since(now - 1000 * (k + 1));
        }
        let mut out = Vec::new();
        log.take(&mut out);
        assert_eq!(out.len(), 3);
        for (k, &(start, duration)) in out.iter().enumerate() {
            assert_eq!(start, now - 1000 * (k as u64 + 1));
            assert!(duration >= 1000 * (k as u64 + 1), "{duration}");
        }
        out.clear();
        log.take(&mut out);
        assert!(out.is_empty(), "taken twice: {out:?}");
        log.push_since(now);
        log.take(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn only_the_used_prefix_is_protected_and_pages_coming_into_use_are_reported() {
        let r = PageRecord::new(BASE, PAGES * PAGE_SIZE, None).unwrap();
        let p = Log::default();
        r.in_use(40 * PAGE_SIZE + 1); // rounds up to 41 pages
        r.arm(&p).unwrap();
        assert_eq!(calls(&p), vec![(true, BASE, 41 * PAGE_SIZE)]);
        // The heap grows to 48 pages during the cycle: pages 41..48 were never
        // protected, so the harvest reports them after the recorded page, and protects
        // them with it (two runs: run by run).
        r.record(1);
        r.in_use(48 * PAGE_SIZE);
        let mut out = DirtySet::default();
        r.harvest(&p, &mut out, true).unwrap();
        let mut expect = vec![1];
        expect.extend(41..48);
        assert_eq!(out.granules, expect);
        assert_eq!(
            calls(&p),
            vec![
                (true, BASE + PAGE_SIZE, PAGE_SIZE),
                (true, BASE + 41 * PAGE_SIZE, 7 * PAGE_SIZE)
            ]
        );
        // Reported once: the next harvest has nothing new.
        r.harvest(&p, &mut out, false).unwrap();
        assert!(out.granules.is_empty() && !out.all);
        // Disarm unprotects the protected prefix, not the reservation.
        r.disarm(&p).unwrap();
        assert_eq!(calls(&p), vec![(false, BASE, 48 * PAGE_SIZE)]);
    }

    #[test]
    fn a_failed_re_protect_degrades_once_per_cycle_and_keeps_its_cause() {
        let r = PageRecord::new(BASE, PAGES * PAGE_SIZE, None).unwrap();
        let p = Log::default();
        r.arm(&p).unwrap();
        r.record(7);
        p.fail_protect.store(true, Ordering::Relaxed);
        let mut out = DirtySet::default();
        r.harvest(&p, &mut out, true).unwrap();
        assert!(out.all);
        let _ = calls(&p);
        // Still everything without rearm, and the flag survives it.
        r.harvest(&p, &mut out, false).unwrap();
        assert!(out.all);
        // A whole-range re-protect that fails again: the same cycle, counted once.
        r.harvest(&p, &mut out, true).unwrap();
        assert!(out.all);
        let s = r.counters().stats();
        assert_eq!(s.degradations, 1);
        assert_eq!(
            s.last_degradation,
            Some(Degradation {
                step: Step::Harvest,
                call: Call::Mprotect,
                errno: libc::ENOMEM,
                range: Some((BASE + 7 * PAGE_SIZE, PAGE_SIZE)),
            })
        );
        // It succeeds: precise again.
        p.fail_protect.store(false, Ordering::Relaxed);
        r.harvest(&p, &mut out, true).unwrap();
        assert!(
            out.all,
            "the harvest that re-protects still reports everything"
        );
        r.harvest(&p, &mut out, true).unwrap();
        assert_eq!(out, DirtySet::default());
        // A new cycle that degrades counts again.
        r.arm(&p).unwrap();
        p.fail_protect.store(true, Ordering::Relaxed);
        r.record(1);
        r.harvest(&p, &mut out, true).unwrap();
        assert_eq!(r.counters().stats().degradations, 2);
    }

    #[test]
    fn a_failed_arm_leaves_the_heap_writable_and_names_the_call() {
        let r = PageRecord::new(BASE, PAGES * PAGE_SIZE, None).unwrap();
        let p = Log::default();
        p.fail_protect.store(true, Ordering::Relaxed);
        let e = r.arm(&p).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOMEM));
        assert_eq!(
            calls(&p),
            vec![
                (true, BASE, PAGES * PAGE_SIZE),
                (false, BASE, PAGES * PAGE_SIZE)
            ]
        );
        let d = r.counters().stats().last_degradation.unwrap();
        assert_eq!((d.step, d.call), (Step::Arm, Call::Mprotect));
        assert!(d.to_string().starts_with("arm: mprotect on ["), "{d}");
    }
}
