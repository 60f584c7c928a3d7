//! userfaultfd write-protect with `UFFD_FEATURE_SIGBUS`: the fault is served by a signal
//! handler on the writing thread, with no message, no service thread and no cross-thread
//! wake-up.
//!
//! Mechanism: the heap is registered once with `UFFDIO_REGISTER_MODE_WP` (and
//! `UFFD_FEATURE_WP_UNPOPULATED`, so that pages never touched are protected too).
//! [`arm`](super::DirtyTracker::arm) clears the record and write-protects the whole heap
//! with one `UFFDIO_WRITEPROTECT`. The first write to a protected page makes the kernel
//! raise SIGBUS (`BUS_ADRERR`) on the writing thread instead of queueing a message. The
//! handler (shared with the `mprotect` tracker, see
//! `signal_registry.rs`) finds the heap the address belongs to,
//! removes the protection of that one page with a raw `UFFDIO_WRITEPROTECT` ioctl (mode 0;
//! an ioctl is async-signal-safe), **then** records the page, and returns: the write
//! retries and goes through. The descriptor is never read.
//!
//! Order (the handler rule of the ordering section of [`crate::barrier`]): *unprotect, then
//! record*, on the fault path every handler mechanism shares (`page_tracker/`, with its IF
//! … THEN argument); a [`harvest`](super::DirtyTracker::harvest) takes (clears) the record,
//! then re-protects the taken pages, then the caller rescans them. IF a write lands after
//! the re-protect THEN it faults again and is recorded again; IF before THEN the rescan
//! sees it.
//!
//! Costs: 0 per store; per dirtied page a signal delivery plus one `UFFDIO_WRITEPROTECT`
//! (~1 µs for the ioctl in `papers/reference/c-probe-2026-11-29.md`); per cycle a
//! whole-range protect (~70 ns per heap page) and, per harvest with re-arm, one ioctl per
//! run of dirty pages (or the whole range when there are many runs). Unlike `mprotect`, the
//! protection lives in the page table entries, so the VMA is never split and
//! `vm.max_map_count` does not matter.
//!
//! Failure modes:
//! - IF the one-page unprotect fails (after a bounded number of `EAGAIN` retries) THEN the
//!   handler unprotects the whole heap and marks the tracker degraded: the next harvest
//!   reports everything (and, with re-arm, re-protects the whole heap, which makes the
//!   tracker precise again; a harvest whose re-protect fails degrades the same way). IF
//!   even the whole-heap unprotect fails THEN the signal is passed on and the process dies
//!   of SIGBUS: a write must never be retried on a page that stays protected, which would
//!   loop forever. The cycle counts once in
//!   [`TrackerStats::degradations`](super::TrackerStats::degradations), with the failed
//!   ioctl as its cause.
//! - A write by the kernel (`read(2)` into a protected heap page) fails with `EFAULT`: with
//!   `UFFD_FEATURE_SIGBUS` there is nobody to resolve a kernel-mode fault.
//! - `MADV_DONTNEED` on an armed heap page drops its protection (on anonymous memory a zap
//!   drops the uffd-wp bit and installs no marker, even with `WP_UNPOPULATED`; seen on
//!   6.18): IF the heap zaps a page while armed THEN the next write to it is not recorded.
//!   The heap must not give pages back while a cycle is armed.
//! - A SIGBUS outside every registered heap is passed to the previous handler, so a real
//!   SIGBUS (a truncated file mapping) still kills the process.
//!
//! Test knob: `TestKnobs::fail_next` fails the next
//! unprotects or re-protects of a run of pages (the handler's, a harvest's run-by-run
//! re-protect, a hand-out's) with `EIO` (the whole-heap unprotect that follows is real).
//!
//! The record, the harvest protocol, the counters and the writer's fault path are the page
//! tracker's (`page_tracker/`); this file is the mechanism: registering the heap with the
//! SIGBUS feature.
//!
//! Never: take a lock or allocate in the handler; record a page before it is writable.

use super::mechanism::{self, Edge, Granule, Mechanism, SecondChannel, ServedBy};
use super::page_tracker::{self, PageMechanism, PageRecord, PageTracker, open_userfaultfd};
use super::signal_registry::{FaultSignal, Registration};
use super::{BarrierKind, Built, MechanismOptions, TrackerStats, built};
use crate::error::Result;
use crate::sys::uffd::{Features, RegisterMode, Uffd};

/// The description of `uffd-wp-sigbus`. Its options are [`UffdWpSigbusOptions`].
pub(crate) const MECHANISM: Mechanism = Mechanism {
    kind: BarrierKind::UffdWpSigbus,
    name: "uffd-wp-sigbus",
    summary: "userfaultfd write-protect raising SIGBUS on the writer, which unprotects",
    granule: Granule::Page,
    served_by: ServedBy::Handler,
    kernel: "userfaultfd write-protect and UFFD_FEATURE_SIGBUS",
    second_channel: SecondChannel::PagemapWpBit,
    edges: &[
        (Edge::KernelWrite, "`EFAULT` (`tests/barrier/edges.rs`)"),
        (
            Edge::FaultOutsideHeap,
            "chained: the process dies of SIGBUS (`tests/barrier/edges.rs`)",
        ),
        (Edge::MaxMapCount, mechanism::NEVER_SPLITS),
        (Edge::UserModeOnly, "works"),
        (Edge::DontNeed, mechanism::DONTNEED_DROPS),
        (Edge::HugePages, mechanism::HUGE_PAGES_CORRECT),
        (Edge::Fork, mechanism::FORK_CHILD_WRITES),
    ],
    mapping_lock: super::mechanism::MappingLock::Read,
    variants: &[],
};

/// Its tracker.
pub(super) fn build(base: usize, len: usize, options: &UffdWpSigbusOptions) -> Built {
    built(UffdWpSigbusTracker::new(base, len, options))
}

/// The options of a [`UffdWpSigbusTracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UffdWpSigbusOptions {
    /// Open userfaultfd with `UFFD_USER_MODE_ONLY` (otherwise full mode, falling back).
    pub user_mode_only: bool,
}

impl MechanismOptions for UffdWpSigbusOptions {
    const DEFAULT: Self = UffdWpSigbusOptions {
        user_mode_only: false,
    };
    fn user_mode_only(&self) -> bool {
        self.user_mode_only
    }
    fn set_user_mode_only(&mut self, yes: bool) {
        self.user_mode_only = yes;
    }
}

/// The `uffd-wp-sigbus` mechanism: a userfaultfd registered for write-protect with
/// `UFFD_FEATURE_SIGBUS`, whose faults the SIGBUS handler serves on the writer. Its
/// descriptor is never read.
#[derive(Debug)]
pub struct UffdWpSigbus {
    uffd: Uffd,
}

impl PageMechanism for UffdWpSigbus {
    type Protection = Uffd;
    type Server = Registration;
    const KIND: BarrierKind = BarrierKind::UffdWpSigbus;
    const STALL_METHOD: &'static str = super::STALL_IN_HANDLER;

    fn protection(&self) -> &Uffd {
        &self.uffd
    }

    fn stats(&self, record: TrackerStats) -> TrackerStats {
        TrackerStats {
            eagain_retries: self.uffd.eagain_retries(),
            ..record
        }
    }
}

/// The `uffd-wp-sigbus` tracker over one heap.
pub type UffdWpSigbusTracker = PageTracker<UffdWpSigbus>;

impl PageTracker<UffdWpSigbus> {
    /// Registers the heap `[base, base + len)` (page aligned, mapped by the caller and
    /// outliving the tracker) for write-protect with `UFFD_FEATURE_SIGBUS`, and installs
    /// the SIGBUS handler if no other tracker has. Falls back to `UFFD_USER_MODE_ONLY`
    /// when full mode is refused: [`TrackerStats::uffd`] reports it.
    pub fn new(
        base: usize,
        len: usize,
        options: &UffdWpSigbusOptions,
    ) -> Result<UffdWpSigbusTracker> {
        // Blocking is fine: nothing ever reads this descriptor.
        let (uffd, mode) = open_userfaultfd(
            Features::PAGEFAULT_FLAG_WP | Features::WP_UNPOPULATED | Features::SIGBUS,
            options.user_mode_only,
            false,
        )?;
        uffd.register(base, len, RegisterMode::WP)?;
        let record = PageRecord::new(base, len, Some(mode))?;
        page_tracker::on_writer(FaultSignal::Bus, UffdWpSigbus { uffd }, record)
    }
}
