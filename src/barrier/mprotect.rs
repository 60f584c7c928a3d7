//! `mprotect(PROT_READ)` and a SIGSEGV handler on the writing thread: the classic page
//! barrier (bdwgc's `MPROTECT_VDB`), which needs nothing from the kernel but `mprotect`.
//!
//! Mechanism: [`arm`](super::DirtyTracker::arm) clears the record and makes the whole heap
//! read-only with one `mprotect`. The first write to a read-only page raises SIGSEGV on the
//! writing thread; the handler (shared with the SIGBUS tracker, see
//! `signal_registry.rs`) finds the heap the address belongs to,
//! makes that one page writable again with `mprotect(page, PROT_READ | PROT_WRITE)`,
//! **then** records it in the dirty bitmap, and returns: the write retries and goes
//! through. Later writes to the page cost nothing.
//!
//! Order (the handler rule of the ordering section of [`crate::barrier`]): *unprotect, then
//! record*, on the fault path every handler mechanism shares (`page_tracker/`, with its IF
//! … THEN argument). A [`harvest`](super::DirtyTracker::harvest) takes (clears) the record,
//! then makes the taken pages read-only again, then the caller rescans them. IF a write
//! lands after the re-protect THEN it faults again and is recorded again; IF it lands
//! before THEN the rescan sees it.
//!
//! Costs (`papers/reference/c-probe-2026-11-29.md`): 0 per store; per dirtied page a signal
//! delivery plus one `mprotect` (~5.3 µs in sequential order, ~8.2 µs in random order,
//! where each unprotected page splits the heap's mapping into more VMAs); per cycle a
//! whole-heap `mprotect` (~70 ns per heap page) and, per harvest with re-arm, one
//! `mprotect` per run of dirty pages (or the whole heap when there are many runs).
//!
//! Failure modes:
//! - **`vm.max_map_count`**: every page unprotected in the middle of a read-only run splits
//!   a VMA in three. When the process reaches the limit, `mprotect` fails with `ENOMEM`. IF
//!   that (or any other failure) happens in the handler THEN it makes the whole heap
//!   writable with one `mprotect` (which only merges VMAs, so it needs no new one and
//!   succeeds), marks the tracker degraded, and returns; IF a harvest's re-protect fails
//!   THEN the harvest does the same. A degraded tracker reports "everything dirty" from
//!   then until the next [`arm`](super::DirtyTracker::arm) and no longer re-protects (that
//!   would only hit the limit again);
//!   [`TrackerStats::degradations`](super::TrackerStats::degradations) counts such cycles.
//! - A write by the kernel (`read(2)` into a read-only heap page) fails with `EFAULT`
//!   instead of faulting: no signal is raised for kernel-mode accesses.
//! - A SIGSEGV outside every registered heap (or one this tracker cannot fix) is passed to
//!   the previous handler (Rust's stack-overflow handler among them), so a real crash is
//!   still a crash. So is the rare case of the whole-heap `mprotect` itself failing
//!   (possible only when the heap shares a VMA with a read-only neighbour).
//!
//! Test knob: `TestKnobs::fail_next` fails the next
//! `mprotect`s of a run of pages (the handler's, a harvest's run-by-run re-protect, a
//! hand-out's; never a whole-heap one) with `ENOMEM`, as at the mapping limit.
//!
//! The record, the harvest protocol, the counters and the writer's fault path are the page
//! tracker's (`page_tracker/`); this file is the mechanism: `mprotect` as the protection.
//! It is the one sticky mechanism: a degraded cycle stays degraded until the next arm.
//!
//! Never: take a lock or allocate in the handler; let a harvest re-protect a page before it
//! has taken the page's record.

use super::mechanism::{self, Edge, Granule, Mechanism, SecondChannel, ServedBy};
use super::page_tracker::{self, PageMechanism, PageProtection, PageRecord, PageTracker};
use super::signal_registry::{FaultSignal, Registration};
use super::{BarrierKind, Built, Call, NoOptions, built};
use crate::error::{Error, Result};
use crate::sys::PAGE_SIZE;
use crate::sys::RawResult;
use crate::sys::mem::{Protection, mprotect_errno};

/// The description of `mprotect`. It has no options.
pub(crate) const MECHANISM: Mechanism = Mechanism {
    kind: BarrierKind::Mprotect,
    name: "mprotect",
    summary: "mprotect(PROT_READ) and a SIGSEGV handler on the writer",
    granule: Granule::Page,
    served_by: ServedBy::Handler,
    kernel: "nothing; vm.max_map_count bounds how many pages it can split out",
    second_channel: SecondChannel::ProcMaps,
    edges: &[
        (Edge::KernelWrite, "`EFAULT` (`tests/barrier/edges.rs`)"),
        (
            Edge::FaultOutsideHeap,
            "chained: the process dies of SIGSEGV (`tests/barrier/edges.rs`)",
        ),
        (
            Edge::MaxMapCount,
            "`ENOMEM` → degrades to everything dirty (`tests/mprotect_max_map_count.rs`)",
        ),
        (Edge::UserModeOnly, "n/a"),
        (Edge::DontNeed, "protection kept (on the mapping)"),
        (Edge::HugePages, mechanism::HUGE_PAGES_CORRECT),
        (Edge::Fork, mechanism::FORK_CHILD_WRITES),
    ],
    mapping_lock: super::mechanism::MappingLock::Write,
    variants: &[],
};

/// Its tracker.
pub(super) fn build(base: usize, len: usize, _: &NoOptions) -> Built {
    built(MprotectTracker::new(base, len))
}

/// The `mprotect` mechanism: `mprotect(2)` as the protection, served by the SIGSEGV
/// handler on the writer.
#[derive(Debug)]
pub struct Mprotect;

// SAFETY: both calls are one `mprotect(2)` through `mprotect_errno`; no allocation, no
// lock, no panic; the range is the caller's.
unsafe impl PageProtection for Mprotect {
    const CALL: Call = Call::Mprotect;
    // A re-protect after a degradation would split the mapping again and hit the same
    // limit: stay degraded (and writable) until the next arm.
    const STICKY: bool = true;
    // As at `vm.max_map_count`.
    const INJECTED: i32 = libc::ENOMEM;

    fn protect(&self, start: usize, len: usize) -> RawResult {
        mprotect_errno(start, len, Protection::Read)
    }

    fn unprotect(&self, start: usize, len: usize) -> RawResult {
        mprotect_errno(start, len, Protection::ReadWrite)
    }
}

impl PageMechanism for Mprotect {
    type Protection = Mprotect;
    type Server = Registration;
    const KIND: BarrierKind = BarrierKind::Mprotect;
    const STALL_METHOD: &'static str = super::STALL_IN_HANDLER;

    fn protection(&self) -> &Mprotect {
        self
    }
}

/// The `mprotect` tracker over one heap.
pub type MprotectTracker = PageTracker<Mprotect>;

impl PageTracker<Mprotect> {
    /// A tracker for the heap `[base, base + len)` (page aligned, mapped readable and
    /// writable by the caller, and outliving the tracker). Installs the SIGSEGV handler
    /// if no other tracker has.
    pub fn new(base: usize, len: usize) -> Result<MprotectTracker> {
        if base % PAGE_SIZE != 0 || len % PAGE_SIZE != 0 || len == 0 {
            return Err(Error::InvalidArgument(format!(
                "mprotect tracker over [{base:#x}, +{len:#x}): the heap must be whole pages"
            )));
        }
        let record = PageRecord::new(base, len, None)?;
        page_tracker::on_writer(FaultSignal::Segv, Mprotect, record)
    }
}
