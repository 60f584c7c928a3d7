//! userfaultfd write-protect with `UFFD_FEATURE_SIGBUS`: the fault is served by a
//! signal handler on the writing thread, with no message, no service thread and no
//! cross-thread wake-up.
//!
//! Mechanism: the heap is registered once with `UFFDIO_REGISTER_MODE_WP` (and
//! `UFFD_FEATURE_WP_UNPOPULATED`, so that pages never touched are protected too).
//! [`arm`](DirtyTracker::arm) clears the record and write-protects the whole heap with
//! one `UFFDIO_WRITEPROTECT`. The first write to a protected page makes the kernel raise
//! SIGBUS (`BUS_ADRERR`) on the writing thread instead of queueing a message. The
//! handler (shared with the `mprotect` tracker, see [`signal_registry`]) finds the heap
//! the address belongs to, removes the protection of that one page with a raw
//! `UFFDIO_WRITEPROTECT` ioctl (mode 0; an ioctl is async-signal-safe), **then** records
//! the page, and returns: the write retries and goes through. The descriptor is never
//! read.
//!
//! Order (`DESIGN.md`, "Handler on the writing thread"): *unprotect, then record*; a
//! [`harvest`](DirtyTracker::harvest) takes (clears) the record, then re-protects the
//! taken pages, then the caller rescans them. IF a write lands after the re-protect THEN
//! it faults again and is recorded again; IF before THEN the rescan sees it.
//!
//! IF another thread writes the page between a handler's unprotect and its record THEN
//! that write does not fault and is reported when the record lands, possibly one
//! harvest later than the write; it is never lost, because the handler records before
//! it returns and the remark pause starts only when every mutator is at a safepoint,
//! which is never inside the handler. (`no_write_slips_past_concurrent_harvests` races
//! this with the steps widened, and catches the reverse order every time.)
//!
//! Costs: 0 per store; per dirtied page a signal delivery plus one `UFFDIO_WRITEPROTECT`
//! (~1 µs for the ioctl in `papers/reference/c-probe-2026-11-29.md`); per cycle a whole-range
//! protect (~70 ns per heap page) and, per harvest with re-arm, one ioctl per run of
//! dirty pages (or the whole range when there are many runs). Unlike `mprotect`, the
//! protection lives in the page table entries, so the VMA is never split and
//! `vm.max_map_count` does not matter.
//!
//! Failure modes:
//! - IF the one-page unprotect fails (after a bounded number of `EAGAIN` retries) THEN
//!   the handler unprotects the whole heap and marks the tracker degraded: the next
//!   harvest reports everything (and, with re-arm, re-protects the whole heap, which
//!   makes the tracker precise again; a harvest whose re-protect fails degrades the same
//!   way). IF even the whole-heap unprotect fails THEN the signal is passed on
//!   and the process dies of SIGBUS: a write must never be retried on a page that stays
//!   protected, which would loop forever. The cycle counts once in
//!   [`TrackerStats::degradations`], with the failed ioctl as its cause.
//! - A write by the kernel (`read(2)` into a protected heap page) fails with `EFAULT`:
//!   with `UFFD_FEATURE_SIGBUS` there is nobody to resolve a kernel-mode fault.
//! - `MADV_DONTNEED` on an armed heap page drops its protection (on anonymous memory a
//!   zap drops the uffd-wp bit and installs no marker, even with `WP_UNPOPULATED`; seen
//!   on 6.18): IF the heap zaps a page while armed THEN the next write to it is not
//!   recorded. The heap must not give pages back while a cycle is armed.
//! - A SIGBUS outside every registered heap is passed to the previous handler, so a real
//!   SIGBUS (a truncated file mapping) still kills the process.
//!
//! Test knob: [`TestKnobs::fail_next`] fails the handler's next one-page unprotects with
//! `EIO` (the whole-heap unprotect that follows is real).
//!
//! The record, the harvest protocol and the counters are the shared page record
//! (`page_record.rs`); this file is the mechanism: registering the heap with the
//! SIGBUS feature and serving a fault in the handler.
//!
//! Never: take a lock or allocate in the handler; record a page before it is writable.

use std::sync::Arc;

use super::mechanism::{self, Edge, Granule, Mechanism, SecondChannel, ServedBy};
use super::page_record::{PageRecord, Step, open_userfaultfd};
use super::signal_registry::{self, FaultServer, FaultSignal, Registration, Served};
use super::{BarrierKind, DirtySet, DirtyTracker, TestKnobs, TrackerOptions, TrackerStats};
use crate::error::Result;
use crate::sys::uffd::{Features, RegisterMode, Uffd};
use crate::sys::{PAGE_SHIFT, PAGE_SIZE};

/// The description of `uffd-wp-sigbus`. Its constructor reads
/// [`TrackerOptions::user_mode_only`].
pub(crate) const MECHANISM: Mechanism = Mechanism {
    kind: BarrierKind::UffdWpSigbus,
    name: "uffd-wp-sigbus",
    summary: "userfaultfd write-protect raising SIGBUS on the writer, which unprotects",
    granule: Granule::Page,
    served_by: ServedBy::Handler,
    kernel: "userfaultfd write-protect and UFFD_FEATURE_SIGBUS",
    second_channel: SecondChannel::PagemapWpBit,
    edges: &[
        (Edge::KernelWrite, "`EFAULT` (`tests/edges.rs`)"),
        (
            Edge::FaultOutsideHeap,
            "chained: the process dies of SIGBUS (`tests/edges.rs`)",
        ),
        (Edge::MaxMapCount, mechanism::NEVER_SPLITS),
        (Edge::UserModeOnly, "works"),
        (Edge::DontNeed, mechanism::DONTNEED_DROPS),
        (Edge::HugePages, mechanism::HUGE_PAGES_CORRECT),
        (Edge::Fork, mechanism::FORK_CHILD_WRITES),
    ],
    variants: &[],
    build: |base, len, options| {
        Ok(Some(Box::new(UffdWpSigbusTracker::new(
            base,
            len,
            &UffdWpSigbusOptions::from(options),
        )?)))
    },
};

/// The options of a [`UffdWpSigbusTracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UffdWpSigbusOptions {
    /// Open userfaultfd with `UFFD_USER_MODE_ONLY` (otherwise full mode, falling back).
    pub user_mode_only: bool,
}

impl From<&TrackerOptions> for UffdWpSigbusOptions {
    fn from(o: &TrackerOptions) -> Self {
        UffdWpSigbusOptions {
            user_mode_only: o.user_mode_only,
        }
    }
}

/// State shared by the tracker and the SIGBUS handler.
#[derive(Debug)]
struct State {
    uffd: Uffd,
    record: PageRecord,
}

// SAFETY: `serve` makes one-page and (on failure) whole-heap `UFFDIO_WRITEPROTECT` calls
// through `unprotect_errno`, and otherwise only touches atomics (the record, its
// counters and knobs); it allocates nothing, takes no lock, and cannot panic (the page
// index is computed with wrapping arithmetic and recorded with `try_set`).
unsafe impl FaultServer for State {
    fn serve(&self, addr: usize) -> Served {
        let t0 = crate::sys::monotonic_ns();
        let page = self.record.page_of(addr);
        let start = self.record.addr_of(page);
        let unprotected = if self.record.knobs().take_failure() {
            Err(libc::EIO)
        } else {
            self.uffd.unprotect_errno(start, PAGE_SIZE)
        };
        // Unprotect, then record: see the module docs.
        match unprotected {
            Ok(()) => {
                self.record.knobs().widen();
                self.record.record(page);
                self.record.stalls().push_since(t0);
                Served::Handled
            }
            Err(errno) => {
                match self
                    .record
                    .degrade(&self.uffd, Step::Fault, errno, (start, PAGE_SIZE))
                {
                    Ok(()) => Served::Handled,
                    Err(_) => Served::Chain,
                }
            }
        }
    }
}

/// The `uffd-wp-sigbus` tracker over one heap.
#[derive(Debug)]
pub struct UffdWpSigbusTracker {
    state: Arc<State>,
    /// Fields drop after [`Drop::drop`] has unprotected the heap, so unregistering comes
    /// last and a fault raised before that still finds its heap.
    _registration: Registration,
}

impl UffdWpSigbusTracker {
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
        let state = Arc::new(State {
            uffd,
            record: PageRecord::new(base, len, Some(mode))?,
        });
        let registration = signal_registry::register(FaultSignal::Bus, base, len, state.clone())?;
        Ok(UffdWpSigbusTracker {
            state,
            _registration: registration,
        })
    }
}

impl DirtyTracker for UffdWpSigbusTracker {
    fn kind(&self) -> BarrierKind {
        BarrierKind::UffdWpSigbus
    }

    fn granule_shift(&self) -> u32 {
        PAGE_SHIFT
    }

    fn arm(&self) -> Result<()> {
        self.state.record.arm(&self.state.uffd)
    }

    fn harvest(&self, out: &mut DirtySet, rearm: bool) -> Result<()> {
        self.state.record.harvest(&self.state.uffd, out, rearm)
    }

    fn in_use(&self, bytes: usize) {
        self.state.record.in_use(bytes);
    }

    fn disarm(&self) -> Result<()> {
        self.state.record.disarm(&self.state.uffd)
    }

    fn hand_out(&self, start: usize, len: usize) {
        self.state.record.hand_out(&self.state.uffd, start, len);
    }

    fn stats(&self) -> TrackerStats {
        TrackerStats {
            eagain_retries: self.state.uffd.eagain_retries(),
            ..self.state.record.stats(super::STALL_IN_HANDLER)
        }
    }

    fn take_stalls(&self, out: &mut Vec<(u64, u64)>) {
        self.state.record.stalls().take(out);
    }

    fn test_knobs(&self) -> Option<&TestKnobs> {
        Some(self.state.record.knobs())
    }
}

impl Drop for UffdWpSigbusTracker {
    fn drop(&mut self) {
        let r = &self.state.record;
        let _ = self.state.uffd.unprotect_errno(r.base(), r.len());
    }
}
