//! The page tracker: one [`DirtyTracker`] for every mechanism that records the first
//! write to each 4 KiB page by protecting it (`uffd-wp`, `uffd-wp-sigbus`, `mprotect`).
//!
//! [`PageTracker<M>`] implements the tracker contract once, over a [`PageRecord`] (the
//! dirty bitmap, the harvest protocol, the in-use prefix, the counters, the stall log,
//! degradation, the frontier hand-out). A mechanism `M` supplies only what is its own
//! ([`PageMechanism`]): its protection primitive, what serves its faults, and the steps
//! it does differently (`uffd-wp` serialises serving with arm and harvest).
//!
//! The writer's fault path is written here once, for the mechanisms whose faults a
//! signal handler serves on the writing thread (`mprotect`, `uffd-wp-sigbus`): the
//! [`FaultServer`] of [`Shared`]. Its order is *unprotect, then record* (the handler
//! rule of the ordering section of [`crate::barrier`]):
//! - IF a write lands after a harvest's re-protect THEN it faults again and is recorded
//!   again; IF it lands before THEN the harvest's caller rescans the page and sees it.
//! - IF another thread writes the page between the unprotect and the record THEN that
//!   write does not fault and is reported when the record lands, possibly one harvest
//!   later than the write; it is never lost, because the handler records before it
//!   returns and the remark pause starts only when every mutator is at a safepoint,
//!   which is never inside the handler.
//! - The reverse order (record, then unprotect) would let a harvest take the record and
//!   re-protect in between, leaving the page writable with no record.
//!   (`no_write_slips_past_concurrent_harvests` races this with the steps widened, and
//!   catches the reverse order every time.)
//! - IF the unprotect fails THEN the whole heap is made writable and the cycle degrades
//!   ([`PageRecord::degrade`]); IF even that fails THEN the signal is passed on: a write
//!   must never be retried on a page that stays protected, which would fault forever.
//!
//! `uffd-wp-async` is not a page tracker of this kind: its record is the page table,
//! read and re-protected by the kernel; it shares the [`InUsePrefix`] and the counters.
//!
//! Never: take a lock or allocate on the writer's fault path; record a page before it is
//! writable there.

mod prefix;
mod protection;
mod record;
mod stall_log;
mod userfaultfd;

use std::fmt;
use std::ops::Range;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

pub(crate) use prefix::InUsePrefix;
pub(crate) use protection::PageProtection;
pub(crate) use record::{Arming, PageRecord, for_each_run};
pub use userfaultfd::UffdMode;
pub(crate) use userfaultfd::open_userfaultfd;

use super::signal_registry::{self, FaultServer, FaultSignal, Registration, Served};
use super::{
    BarrierKind, DirtySet, DirtyTracker, FaultService, FreeRuns, Marked, ServeFaults, Step,
    TrackerStats,
};
use crate::error::Result;
use crate::sys::{PAGE_SHIFT, PAGE_SIZE};

/// What a page mechanism adds to [`PageTracker`]: its protection primitive, what keeps
/// its faults served, and the steps it does differently from the record's own. Each
/// default is the record's step with the mechanism's protection.
pub(crate) trait PageMechanism: fmt::Debug + Send + Sync + Sized + 'static {
    /// How it protects and unprotects a range.
    type Protection: PageProtection;
    /// What serves its faults for as long as the tracker lives (a signal registration,
    /// a service thread); dropped after [`release`](Self::release).
    type Server: fmt::Debug + Send + Sync;
    /// Its kind.
    const KIND: BarrierKind;
    /// How it measures a writer's fault stall ([`TrackerStats::stall_method`]).
    const STALL_METHOD: &'static str;

    /// Its protection primitive.
    fn protection(&self) -> &Self::Protection;

    /// [`DirtyTracker::arm`], [`DirtyTracker::arm_with_free`] or
    /// [`DirtyTracker::arm_with_young`], as `with` says.
    fn arm(&self, record: &PageRecord, with: Arming<'_>) -> Result<()> {
        record.arm(self.protection(), with)
    }

    /// [`DirtyTracker::harvest`], or with `marked` [`DirtyTracker::harvest_marked`].
    fn harvest(
        &self,
        record: &PageRecord,
        out: &mut DirtySet,
        rearm: bool,
        marked: Option<Marked<'_>>,
    ) -> Result<()> {
        record.harvest(self.protection(), out, rearm, marked)
    }

    /// [`DirtyTracker::disarm_ahead`].
    fn disarm_ahead(&self, record: &PageRecord, bytes: usize) -> Result<()> {
        record.disarm_ahead(self.protection(), bytes)
    }

    /// [`DirtyTracker::disarm`].
    fn disarm(&self, record: &PageRecord) -> Result<()> {
        record.disarm(self.protection())
    }

    /// The descriptor of [`DirtyTracker::fault_service`], if the collector serves.
    fn service_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// [`ServeFaults::serve_pending`].
    fn serve_pending(&self, _record: &PageRecord) -> usize {
        0
    }

    /// The record's counters with the mechanism's own added.
    fn stats(&self, record: TrackerStats) -> TrackerStats {
        record
    }

    /// The tracker is dropped: leave the heap writable (the whole reservation: the heap
    /// outlives the tracker), and stop serving.
    fn release(&self, record: &PageRecord) {
        let _ = self.protection().unprotect(record.base(), record.len());
    }
}

/// What the tracker shares with whoever serves its faults (a signal handler, a service
/// thread): the record, and the mechanism's state.
#[derive(Debug)]
pub(crate) struct Shared<M> {
    pub(crate) record: PageRecord,
    pub(crate) mechanism: M,
}

/// The tracker of a page mechanism `M`: [`MprotectTracker`](super::MprotectTracker),
/// [`UffdWpSigbusTracker`](super::UffdWpSigbusTracker) and
/// [`UffdWpTracker`](super::UffdWpTracker) are this over their mechanism.
#[derive(Debug)]
// The bound names a crate-private trait on purpose: the crate's page mechanisms are its
// only implementations, and a user names the trackers by their aliases.
#[allow(private_bounds)]
pub struct PageTracker<M: PageMechanism> {
    shared: Arc<Shared<M>>,
    /// Drops after [`Drop::drop`] has released the heap, so that a fault raised before
    /// that is still served.
    _server: M::Server,
}

/// The tracker of `shared`, whose faults `server` serves.
pub(crate) fn assemble<M: PageMechanism>(
    shared: Arc<Shared<M>>,
    server: M::Server,
) -> PageTracker<M> {
    PageTracker {
        shared,
        _server: server,
    }
}

/// The tracker of a mechanism whose faults a handler of `signal` serves on the writing
/// thread: registers the record's heap with the handler.
pub(crate) fn on_writer<M: PageMechanism<Server = Registration>>(
    signal: FaultSignal,
    mechanism: M,
    record: PageRecord,
) -> Result<PageTracker<M>> {
    let (base, len) = (record.base(), record.len());
    let shared = Arc::new(Shared { record, mechanism });
    let registration = signal_registry::register(signal, base, len, shared.clone())?;
    Ok(assemble(shared, registration))
}

// SAFETY: `serve` calls the record's `unprotect_run`, `record` and `degrade` and the
// stall log's `push_since`, which touch only atomics and make single protection changes
// through `PageProtection`, itself async-signal-safe and panic-free by its contract
// (rules 1–3); it allocates nothing, takes no lock, does not block, and cannot panic
// (wrapping page arithmetic, `try_set`). It returns `Handled` only once the page is
// writable (rule 4: the unprotect, or the whole-heap unprotect of a degradation,
// succeeded) and records only after the unprotect (rule 5).
unsafe impl<M: PageMechanism<Server = Registration>> FaultServer for Shared<M> {
    fn serve(&self, addr: usize) -> Served {
        let t0 = crate::sys::monotonic_ns();
        let (r, p) = (&self.record, self.mechanism.protection());
        let page = r.page_of(addr);
        let start = r.addr_of(page);
        // Unprotect, then record: see the module docs.
        match r.unprotect_run(p, start, PAGE_SIZE) {
            Ok(()) => {
                r.knobs().widen();
                r.record(page);
                r.stalls().push_since(t0);
                Served::Handled
            }
            Err(errno) => match r.degrade(p, Step::Fault, errno, (start, PAGE_SIZE)) {
                Ok(()) => Served::Handled,
                Err(_) => Served::Chain,
            },
        }
    }
}

impl<M: PageMechanism> DirtyTracker for PageTracker<M> {
    fn kind(&self) -> BarrierKind {
        M::KIND
    }

    fn granule_shift(&self) -> u32 {
        PAGE_SHIFT
    }

    fn arm(&self) -> Result<()> {
        let with = Arming::default();
        self.shared.mechanism.arm(&self.shared.record, with)
    }

    fn arm_with_free(&self, free: FreeRuns<'_>) -> Result<()> {
        let with = Arming {
            free: Some(free),
            ..Arming::default()
        };
        self.shared.mechanism.arm(&self.shared.record, with)
    }

    fn arm_with_young(&self, free: FreeRuns<'_>, young: &[Range<usize>]) -> Result<()> {
        let with = Arming {
            free: Some(free),
            young,
        };
        self.shared.mechanism.arm(&self.shared.record, with)
    }

    fn harvest(&self, out: &mut DirtySet, rearm: bool) -> Result<()> {
        let s = &self.shared;
        s.mechanism.harvest(&s.record, out, rearm, None)
    }

    fn harvest_marked(&self, out: &mut DirtySet, rearm: bool, marked: Marked<'_>) -> Result<()> {
        let s = &self.shared;
        s.mechanism.harvest(&s.record, out, rearm, Some(marked))
    }

    fn disarm_ahead(&self, bytes: usize) -> Result<()> {
        let s = &self.shared;
        s.mechanism.disarm_ahead(&s.record, bytes)
    }

    fn disarm(&self) -> Result<()> {
        self.shared.mechanism.disarm(&self.shared.record)
    }

    fn hand_out(&self, start: usize, len: usize) {
        // Without any lock of the mechanism: the mutator's unprotect-then-record is safe
        // against a concurrent harvest (see `PageRecord::hand_out`), and a mutator must
        // never wait for a lock that a fault service holds.
        let s = &self.shared;
        s.record.hand_out(s.mechanism.protection(), start, len, 0);
    }

    fn hand_out_and_open(&self, start: usize, len: usize, ahead: usize) {
        let s = &self.shared;
        s.record
            .hand_out(s.mechanism.protection(), start, len, ahead);
    }

    fn in_use(&self, bytes: usize) {
        self.shared.record.in_use(bytes);
    }

    fn fault_service(&self) -> Option<FaultService<'_>> {
        let fd = self.shared.mechanism.service_fd()?;
        Some(FaultService::new(fd, self))
    }

    fn stats(&self) -> TrackerStats {
        let s = &self.shared;
        s.mechanism.stats(s.record.stats(M::STALL_METHOD))
    }

    fn take_stalls(&self, out: &mut Vec<(u64, u64)>) {
        self.shared.record.stalls().take(out);
    }

    #[cfg(feature = "lab-internals")]
    fn test_knobs(&self) -> Option<&super::TestKnobs> {
        Some(self.shared.record.knobs())
    }

    fn describe_page(&self, addr: usize) -> Option<String> {
        let r = &self.shared.record;
        Some(r.describe(r.page_of(addr)))
    }
}

impl<M: PageMechanism> ServeFaults for PageTracker<M> {
    fn serve_pending(&self) -> usize {
        self.shared.mechanism.serve_pending(&self.shared.record)
    }
}

impl<M: PageMechanism> Drop for PageTracker<M> {
    fn drop(&mut self) {
        self.shared.mechanism.release(&self.shared.record);
    }
}
