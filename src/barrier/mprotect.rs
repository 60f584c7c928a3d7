//! `mprotect(PROT_READ)` and a SIGSEGV handler on the writing thread: the classic page
//! barrier (bdwgc's `MPROTECT_VDB`), which needs nothing from the kernel but `mprotect`.
//!
//! Mechanism: [`arm`](DirtyTracker::arm) clears the record and makes the whole heap
//! read-only with one `mprotect`. The first write to a read-only page raises SIGSEGV on
//! the writing thread; the handler (shared with the SIGBUS tracker, see
//! [`signal_registry`]) finds the heap the address belongs to, makes that one page
//! writable again with `mprotect(page, PROT_READ | PROT_WRITE)`, **then** records it in
//! the dirty bitmap, and returns: the write retries and goes through. Later writes to
//! the page cost nothing.
//!
//! Order (`DESIGN.md`, "Handler on the writing thread"): *unprotect, then record*. A
//! [`harvest`](DirtyTracker::harvest) takes (clears) the record, then makes the taken
//! pages read-only again, then the caller rescans them. IF a write lands after the
//! re-protect THEN it faults again and is recorded again; IF it lands before THEN the
//! rescan sees it. The reverse order in the handler (record, then unprotect) would let a
//! harvest take the record and re-protect in between, and the page would then be left
//! writable with no record.
//!
//! IF another thread writes the page between a handler's unprotect and its record THEN
//! that write does not fault and is reported when the record lands, possibly one
//! harvest later than the write; it is never lost, because the handler records before
//! it returns and the remark pause starts only when every mutator is at a safepoint,
//! which is never inside the handler. (`no_write_slips_past_concurrent_harvests` races
//! this with the steps widened, and catches the reverse order every time.)
//!
//! Costs (`papers/reference/c-probe-2026-11-29.md`): 0 per store; per dirtied page a signal delivery
//! plus one `mprotect` (~5.3 µs in sequential order, ~8.2 µs in random order, where each
//! unprotected page splits the heap's mapping into more VMAs); per cycle a whole-heap
//! `mprotect` (~70 ns per heap page) and, per harvest with re-arm, one `mprotect` per run
//! of dirty pages (or the whole heap when there are many runs).
//!
//! Failure modes:
//! - **`vm.max_map_count`**: every page unprotected in the middle of a read-only run
//!   splits a VMA in three. When the process reaches the limit, `mprotect` fails with
//!   `ENOMEM`. IF that (or any other failure) happens in the handler THEN it makes the
//!   whole heap writable with one `mprotect` (which only merges VMAs, so it needs no new
//!   one and succeeds), marks the tracker degraded, and returns; IF a harvest's
//!   re-protect fails THEN the harvest does the same. A degraded tracker reports
//!   "everything dirty" from then until the next [`arm`](DirtyTracker::arm) and no longer
//!   re-protects (that would only hit the limit again); [`TrackerStats::degradations`]
//!   counts such cycles.
//! - A write by the kernel (`read(2)` into a read-only heap page) fails with `EFAULT`
//!   instead of faulting: no signal is raised for kernel-mode accesses.
//! - A SIGSEGV outside every registered heap (or one this tracker cannot fix) is passed
//!   to the previous handler (Rust's stack-overflow handler among them), so a real crash
//!   is still a crash. So is the rare case of the whole-heap `mprotect` itself failing
//!   (possible only when the heap shares a VMA with a read-only neighbour).
//!
//! Test knob: [`TestKnobs::fail_next`] fails the next page `mprotect`s (in the handler
//! or a harvest's re-protect, never a whole-heap one) with `ENOMEM`, as at the mapping
//! limit.
//!
//! The record, the harvest protocol and the counters are the shared page record
//! (`page_record.rs`); this file is the mechanism: `mprotect` and serving a fault
//! in the handler. It is the one sticky mechanism: a degraded cycle stays degraded until the next arm.
//!
//! Never: take a lock or allocate in the handler; let a harvest re-protect a page
//! before it has taken the page's record.

use std::sync::Arc;

use super::mechanism::{self, Edge, Granule, Mechanism, SecondChannel, ServedBy};
use super::page_record::{Call, PageProtection, PageRecord, Step};
use super::signal_registry::{self, FaultServer, FaultSignal, Registration, Served};
use super::{BarrierKind, DirtySet, DirtyTracker, TestKnobs, TrackerStats};
use crate::error::{Error, Result};
use crate::sys::mem::{Protection, mprotect_errno};
use crate::sys::{PAGE_SHIFT, PAGE_SIZE};

/// The description of `mprotect`. Its constructor reads no option.
pub(crate) const MECHANISM: Mechanism = Mechanism {
    kind: BarrierKind::Mprotect,
    name: "mprotect",
    summary: "mprotect(PROT_READ) and a SIGSEGV handler on the writer",
    granule: Granule::Page,
    served_by: ServedBy::Handler,
    kernel: "nothing; vm.max_map_count bounds how many pages it can split out",
    second_channel: SecondChannel::ProcMaps,
    edges: &[
        (Edge::KernelWrite, "`EFAULT` (`tests/edges.rs`)"),
        (
            Edge::FaultOutsideHeap,
            "chained: the process dies of SIGSEGV (`tests/edges.rs`)",
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
    variants: &[],
    build: |base, len, _| Ok(Some(Box::new(MprotectTracker::new(base, len)?))),
};

/// State shared by the tracker and the SIGSEGV handler.
#[derive(Debug)]
struct State {
    record: PageRecord,
}

// SAFETY: both calls are one `mprotect(2)` through `mprotect_errno` plus atomics (the
// test knob); no allocation, no lock, no panic; the range is the caller's.
unsafe impl PageProtection for State {
    const CALL: Call = Call::Mprotect;
    // A re-protect after a degradation would split the mapping again and hit the same
    // limit: stay degraded (and writable) until the next arm.
    const STICKY: bool = true;

    fn protect(&self, start: usize, len: usize) -> std::result::Result<(), i32> {
        self.change(start, len, Protection::Read)
    }

    fn unprotect(&self, start: usize, len: usize) -> std::result::Result<(), i32> {
        self.change(start, len, Protection::ReadWrite)
    }
}

impl State {
    /// `mprotect`, failing a page-run call (not a whole-heap one, which only merges
    /// mappings) with `ENOMEM` while the test knob says so. Async-signal-safe.
    fn change(&self, start: usize, len: usize, prot: Protection) -> std::result::Result<(), i32> {
        if len != self.record.len() && self.record.knobs().take_failure() {
            return Err(libc::ENOMEM);
        }
        mprotect_errno(start, len, prot)
    }
}

// SAFETY: `serve` makes one-page and (on failure) whole-heap `mprotect` calls and
// otherwise only touches atomics; no allocation, no lock, no panic (wrapping
// arithmetic, `try_set`).
unsafe impl FaultServer for State {
    fn serve(&self, addr: usize) -> Served {
        let t0 = crate::sys::monotonic_ns();
        let page = self.record.page_of(addr);
        let start = self.record.addr_of(page);
        // Unprotect, then record: see the module docs.
        match self.unprotect(start, PAGE_SIZE) {
            Ok(()) => {
                self.record.knobs().widen();
                self.record.record(page);
                self.record.stalls().push_since(t0);
                Served::Handled
            }
            // ENOMEM at the mapping limit, in practice; any failure is handled alike.
            Err(errno) => match self.record.degrade(self, Step::Fault, errno, (start, PAGE_SIZE)) {
                Ok(()) => Served::Handled,
                Err(_) => Served::Chain,
            },
        }
    }
}

/// The `mprotect` tracker over one heap.
#[derive(Debug)]
pub struct MprotectTracker {
    state: Arc<State>,
    /// Fields drop after [`Drop::drop`] has made the heap writable, so unregistering
    /// comes last and a fault raised before that still finds its heap.
    _registration: Registration,
}

impl MprotectTracker {
    /// A tracker for the heap `[base, base + len)` (page aligned, mapped readable and
    /// writable by the caller, and outliving the tracker). Installs the SIGSEGV handler
    /// if no other tracker has.
    pub fn new(base: usize, len: usize) -> Result<MprotectTracker> {
        if base % PAGE_SIZE != 0 || len % PAGE_SIZE != 0 || len == 0 {
            return Err(Error::InvalidArgument(format!(
                "mprotect tracker over [{base:#x}, +{len:#x}): the heap must be whole pages"
            )));
        }
        let state = Arc::new(State {
            record: PageRecord::new(base, len, None)?,
        });
        let registration = signal_registry::register(FaultSignal::Segv, base, len, state.clone())?;
        Ok(MprotectTracker {
            state,
            _registration: registration,
        })
    }
}

impl DirtyTracker for MprotectTracker {
    fn kind(&self) -> BarrierKind {
        BarrierKind::Mprotect
    }

    fn granule_shift(&self) -> u32 {
        PAGE_SHIFT
    }

    fn arm(&self) -> Result<()> {
        self.state.record.arm(&*self.state)
    }

    fn harvest(&self, out: &mut DirtySet, rearm: bool) -> Result<()> {
        self.state.record.harvest(&*self.state, out, rearm)
    }

    fn in_use(&self, bytes: usize) {
        self.state.record.in_use(bytes);
    }

    fn disarm(&self) -> Result<()> {
        self.state.record.disarm(&*self.state)
    }

    fn hand_out(&self, start: usize, len: usize) {
        self.state.record.hand_out(&*self.state, start, len);
    }

    fn stats(&self) -> TrackerStats {
        self.state.record.stats(super::STALL_IN_HANDLER)
    }

    fn take_stalls(&self, out: &mut Vec<(u64, u64)>) {
        self.state.record.stalls().take(out);
    }

    fn test_knobs(&self) -> Option<&TestKnobs> {
        Some(self.state.record.knobs())
    }
}

impl Drop for MprotectTracker {
    fn drop(&mut self) {
        // Writable before unregistering: a write after this needs no handler.
        let r = &self.state.record;
        let _ = mprotect_errno(r.base(), r.len(), Protection::ReadWrite);
    }
}
