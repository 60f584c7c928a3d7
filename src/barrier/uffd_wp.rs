//! userfaultfd write-protect with the faults served on the collector side: the
//! hardware-assisted write barrier at the centre of barrierlab.
//!
//! Mechanism: the heap is registered once with `UFFDIO_REGISTER_MODE_WP` (with
//! `UFFD_FEATURE_WP_UNPOPULATED`, so that pages never touched yet are protected too). To
//! [`arm`](super::DirtyTracker::arm), one `UFFDIO_WRITEPROTECT` covers the whole heap. The first
//! write to a protected page blocks the writing thread in the kernel and queues a
//! page-fault message with `UFFD_PAGEFAULT_FLAG_WP`. A collector-side thread reads the
//! messages (many per `read(2)`), **records** each page in the dirty bitmap, and **then**
//! unprotects it with `UFFDIO_WRITEPROTECT` (mode 0), which wakes the writer; its store
//! retries and goes through. Stores to a page already unprotected cost nothing: the store
//! path of the mutator is a plain `mov`.
//!
//! Order (the service rule of the ordering section of [`crate::barrier`]): the service
//! runs on another thread and is not stopped by a pause, so it must record before it
//! unprotects (a remark then sees the page of every write that went through), and a
//! harvest with re-arm must not interleave with serving: one lock, held only by
//! collector-side threads (never by a mutator), serialises them. A harvest clears the
//! bitmap, re-protects the harvested pages, and only then does the caller rescan them.
//! IF a fault were served between a harvest's take and its re-protect THEN its unprotect
//! could land after the re-protect, leaving the page writable with its record taken:
//! the lock is held across both.
//!
//! Who serves ([`ServiceLayout`]):
//! - `Collector`: the marking thread polls the non-blocking descriptor between mark
//!   increments and while it waits for safepoints: no extra thread and no extra wake-up
//!   while it is busy, but a fault waits for the next poll.
//! - `Thread`: a dedicated thread sleeps in `poll(2)`: each fault pays a cross-CPU wake-up
//!   (~25–50 µs in a 2-vCPU VM).
//! - `SpinThread`: a dedicated thread busy-reads the descriptor while the heap is armed
//!   (burns a CPU during the cycle, sleeps between cycles): the fastest round trip.
//!
//! The record, the harvest protocol and the counters are the page tracker's
//! (`page_tracker/`); this file is the mechanism: registering, reading and serving the
//! fault messages, and the service thread.
//!
//! Costs: per dirtied page, a fault round trip (kernel entry, message, read, two ioctls,
//! wake-up); per cycle, a whole-range protect (~70 ns per heap page). Failure: IF an
//! unprotect, a `read(2)` or a `poll(2)` fails THEN the whole heap is unprotected (which
//! releases every blocked writer) and the tracker degrades to "everything dirty" for the
//! cycle, keeping the failure as its cause. Test knob:
//! `TestKnobs::fail_next` fails the next unprotects or
//! re-protects of a run of pages (the service's, a harvest's run-by-run re-protect, a
//! hand-out's) with `EIO`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use super::mechanism::{self, Edge, Granule, Mechanism, SecondChannel, ServedBy};
use super::page_tracker::{
    self, Arming, PageMechanism, PageRecord, PageTracker, Shared, for_each_run, open_userfaultfd,
};
use super::{
    BarrierConfig, BarrierKind, Built, Call, DirtySet, Marked, MechanismOptions, Step,
    TrackerStats, built,
};
use crate::error::{Error, Result};
use crate::sys::PAGE_SIZE;
use crate::sys::cpu::ThreadRole;
use crate::sys::eventfd::{EventFd, poll_readable};
use crate::sys::uffd::{Event, Features, PageFaultFlags, RegisterMode, Uffd, raw};

/// The description of `uffd-wp`. Its options are [`UffdWpOptions`]; its variants are its
/// service layouts.
pub(crate) const MECHANISM: Mechanism = Mechanism {
    kind: BarrierKind::UffdWp,
    name: "uffd-wp",
    summary: "userfaultfd write-protect; faults served on a collector-side thread",
    granule: Granule::Page,
    served_by: ServedBy::Service,
    kernel: "userfaultfd with UFFD_FEATURE_PAGEFAULT_FLAG_WP (5.7+) and \
             UFFD_FEATURE_WP_UNPOPULATED (6.4+)",
    second_channel: SecondChannel::PagemapWpBit,
    edges: &[
        (
            Edge::KernelWrite,
            "full mode: a WP fault, served and recorded (`tests/barrier/edges.rs`); user-mode-only: \
             `EFAULT` (`tests/sys/uffd/kernel_writes.rs`)",
        ),
        (Edge::FaultOutsideHeap, mechanism::NO_HANDLER),
        (Edge::MaxMapCount, mechanism::NEVER_SPLITS),
        (
            Edge::UserModeOnly,
            "works; kernel writes `EFAULT` (`tests/sys/uffd`)",
        ),
        (Edge::DontNeed, mechanism::DONTNEED_DROPS),
        (Edge::HugePages, mechanism::HUGE_PAGES_CORRECT),
        (Edge::Fork, mechanism::FORK_CHILD_WRITES),
    ],
    mapping_lock: super::mechanism::MappingLock::Read,
    variants: &[
        layout_variant(ServiceLayout::Collector),
        layout_variant(ServiceLayout::Thread),
        layout_variant(ServiceLayout::SpinThread),
    ],
};

/// The variant of `uffd-wp` served by `layout`, labelled with its name.
const fn layout_variant(layout: ServiceLayout) -> (&'static str, BarrierConfig) {
    (
        layout.name(),
        BarrierConfig::UffdWp(UffdWpOptions {
            service: layout,
            ..UffdWpOptions::DEFAULT
        }),
    )
}

/// Its tracker.
pub(super) fn build(base: usize, len: usize, options: &UffdWpOptions) -> Built {
    built(UffdWpTracker::new(base, len, options))
}

/// Who serves the write-protect faults of [`BarrierKind::UffdWp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ServiceLayout {
    /// The marking thread polls the descriptor between mark increments.
    Collector,
    /// A dedicated thread blocked in `poll(2)`: the default, because end to end (GCBench
    /// on 2 vCPUs) it gave the shortest pauses; a spinning thread takes a CPU from the
    /// collector and the mutators.
    #[default]
    Thread,
    /// A dedicated thread busy-reading the descriptor while armed.
    SpinThread,
}

impl ServiceLayout {
    /// Every layout.
    pub const ALL: [ServiceLayout; 3] = [
        ServiceLayout::Collector,
        ServiceLayout::Thread,
        ServiceLayout::SpinThread,
    ];

    /// The kebab-case name.
    pub const fn name(self) -> &'static str {
        match self {
            ServiceLayout::Collector => "collector",
            ServiceLayout::Thread => "thread",
            ServiceLayout::SpinThread => "spin-thread",
        }
    }
}

impl std::str::FromStr for ServiceLayout {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ServiceLayout::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown service layout `{s}`; expected collector, thread or spin-thread"
                ))
            })
    }
}

/// The options of a [`UffdWpTracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UffdWpOptions {
    /// Who serves the faults.
    pub service: ServiceLayout,
    /// Open userfaultfd with `UFFD_USER_MODE_ONLY` (otherwise full mode, falling back).
    pub user_mode_only: bool,
}

impl MechanismOptions for UffdWpOptions {
    const DEFAULT: Self = UffdWpOptions {
        service: ServiceLayout::Thread,
        user_mode_only: false,
    };
    fn user_mode_only(&self) -> bool {
        self.user_mode_only
    }
    fn set_user_mode_only(&mut self, yes: bool) {
        self.user_mode_only = yes;
    }
}

/// Messages read per `read(2)`.
const BATCH: usize = 64;

/// The `uffd-wp` mechanism: a userfaultfd registered for write-protect, whose fault
/// messages a collector-side thread reads and serves.
#[derive(Debug)]
pub struct UffdWp {
    uffd: Uffd,
    layout: ServiceLayout,
    /// Serialises serving with arm and harvests; holds the message buffer.
    serve: Mutex<Vec<raw::uffd_msg>>,
    armed: AtomicBool,
    stop: AtomicBool,
    wake: EventFd,
    messages: AtomicU64,
    reads: AtomicU64,
}

impl UffdWp {
    /// Reads one batch of messages and serves it. Returns the number of messages.
    fn serve_batch(&self, record: &PageRecord) -> usize {
        let mut buf = self.serve.lock();
        let msgs = match self.uffd.read_raw(&mut buf) {
            Ok(m) => m,
            Err(e) => {
                self.degrade(record, Step::Service, Call::ReadUserfaultfd, &e);
                return 0;
            }
        };
        if msgs.is_empty() {
            return 0;
        }
        let read_at = crate::sys::monotonic_ns();
        let n = msgs.len();
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.messages.fetch_add(n as u64, Ordering::Relaxed);
        let mut pages: Vec<usize> = Vec::with_capacity(n);
        for m in msgs {
            if let Event::PageFault { address, flags, .. } = Event::decode(m, false)
                && flags.contains(PageFaultFlags::WP)
            {
                let page = record.page_of(address);
                // Record first: a harvest that runs after the unprotect below must see it.
                record.record(page);
                pages.push(page);
            }
        }
        // Coalesce duplicate faults on one page, and neighbouring pages into one ioctl.
        pages.sort_unstable();
        pages.dedup();
        let mut failed = None;
        for_each_run(&pages, |first, count| {
            if failed.is_none() {
                let range = (record.addr_of(first), count * PAGE_SIZE);
                let result = record.unprotect_run(&self.uffd, range.0, range.1);
                failed = result.err().map(|errno| (errno, range));
            }
        });
        if let Some((errno, range)) = failed {
            // Still under the lock: no harvest can take the flag before it is raised.
            let _ = record.degrade(&self.uffd, Step::Fault, errno, range);
        }
        // Each writer of the batch waited at least from the read to its wake-up.
        for _ in 0..n {
            record.stalls().push_since(read_at);
        }
        n
    }

    /// Loses precision, never a write: every blocked writer is released and every page
    /// counts as dirty this cycle.
    fn degrade(&self, record: &PageRecord, step: Step, call: Call, e: &Error) {
        let errno = e.errno().unwrap_or(0);
        let _ = record.degrade_with(&self.uffd, step, call, errno, None);
    }
}

impl Shared<UffdWp> {
    fn service_loop(&self, spin: bool) {
        let (m, record) = (&self.mechanism, &self.record);
        let fds = [m.uffd.as_raw_fd(), m.wake.as_raw_fd()];
        while !m.stop.load(Ordering::Acquire) {
            if spin && m.armed.load(Ordering::Acquire) {
                // Look without the lock, so that a harvest is never starved by the spinner.
                match m.uffd.poll_readable(0) {
                    Ok(true) => {
                        m.serve_batch(record);
                    }
                    Ok(false) => std::hint::spin_loop(),
                    Err(e) => m.degrade(record, Step::Service, Call::PollUserfaultfd, &e),
                }
                continue;
            }
            match poll_readable(fds, -1) {
                Ok([fault, woken]) => {
                    if woken {
                        m.wake.drain();
                    }
                    if fault {
                        m.serve_batch(record);
                    }
                }
                Err(e) => m.degrade(record, Step::Service, Call::PollUserfaultfd, &e),
            }
        }
    }
}

/// The dedicated service thread of the `thread` and `spin-thread` layouts (none for
/// `collector`), joined on drop, once [`PageMechanism::release`] has told it to stop.
#[derive(Debug)]
pub(crate) struct ServiceThread(Option<JoinHandle<()>>);

impl Drop for ServiceThread {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            let _ = t.join();
        }
    }
}

impl PageMechanism for UffdWp {
    type Protection = Uffd;
    type Server = ServiceThread;
    const KIND: BarrierKind = BarrierKind::UffdWp;
    const STALL_METHOD: &'static str = super::STALL_SERVICE;

    fn protection(&self) -> &Uffd {
        &self.uffd
    }

    fn arm(&self, record: &PageRecord, with: Arming<'_>) -> Result<()> {
        // Held so that a stale message from the last cycle is not served across the arm:
        // its record would land before the clear and its unprotect after the protect,
        // leaving a page writable and unrecorded for the whole cycle.
        let _serving = self.serve.lock();
        record.arm(&self.uffd, with)?;
        self.armed.store(true, Ordering::Release);
        self.wake.signal();
        Ok(())
    }

    fn harvest(
        &self,
        record: &PageRecord,
        out: &mut DirtySet,
        rearm: bool,
        marked: Option<Marked<'_>>,
    ) -> Result<()> {
        // Held across take + re-protect so that no fault is served in between: a served
        // fault records, then unprotects; if that unprotect landed after our re-protect,
        // the page would be writable but its record already taken.
        let _serving = self.serve.lock();
        record.harvest(&self.uffd, out, rearm, marked)
    }

    fn disarm(&self, record: &PageRecord) -> Result<()> {
        self.armed.store(false, Ordering::Release);
        // Wakes every writer still blocked; messages still queued are stale and are
        // served (record + unprotect, both harmless) by whoever reads next.
        record.disarm(&self.uffd)?;
        if self.layout == ServiceLayout::Collector {
            while self.serve_batch(record) > 0 {}
        }
        Ok(())
    }

    fn service_fd(&self) -> Option<BorrowedFd<'_>> {
        (self.layout == ServiceLayout::Collector).then(|| self.uffd.as_fd())
    }

    fn serve_pending(&self, record: &PageRecord) -> usize {
        if self.layout != ServiceLayout::Collector {
            return 0;
        }
        let mut total = 0;
        loop {
            let n = self.serve_batch(record);
            total += n;
            if n < BATCH {
                return total;
            }
        }
    }

    fn stats(&self, record: TrackerStats) -> TrackerStats {
        TrackerStats {
            messages: self.messages.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            eagain_retries: self.uffd.eagain_retries(),
            ..record
        }
    }

    fn release(&self, record: &PageRecord) {
        self.stop.store(true, Ordering::Release);
        self.wake.signal();
        let _ = self.uffd.unprotect_errno(record.base(), record.len());
    }
}

/// The `uffd-wp` tracker.
pub type UffdWpTracker = PageTracker<UffdWp>;

impl PageTracker<UffdWp> {
    /// Registers the heap `[base, base + len)` for write-protect and starts the service
    /// thread if the layout has one. Falls back to `UFFD_USER_MODE_ONLY` when full mode
    /// is refused (`vm.unprivileged_userfaultfd=0`): [`TrackerStats::uffd`] reports it.
    pub fn new(base: usize, len: usize, options: &UffdWpOptions) -> Result<UffdWpTracker> {
        let (uffd, mode) = open_userfaultfd(
            Features::PAGEFAULT_FLAG_WP | Features::WP_UNPOPULATED,
            options.user_mode_only,
            true,
        )?;
        uffd.register(base, len, RegisterMode::WP)?;
        let shared = Arc::new(Shared {
            record: PageRecord::new(base, len, Some(mode))?,
            mechanism: UffdWp {
                uffd,
                layout: options.service,
                serve: Mutex::new(vec![raw::uffd_msg::default(); BATCH]),
                armed: AtomicBool::new(false),
                stop: AtomicBool::new(false),
                wake: EventFd::new()?,
                messages: AtomicU64::new(0),
                reads: AtomicU64::new(0),
            },
        });
        let thread = match options.service {
            ServiceLayout::Collector => None,
            layout => {
                let s = shared.clone();
                let spin = layout == ServiceLayout::SpinThread;
                Some(
                    ThreadRole::FaultService
                        .builder(None)
                        .spawn(move || s.service_loop(spin))
                        .map_err(|e| Error::io("spawn the uffd-wp fault service thread", e))?,
                )
            }
        };
        Ok(page_tracker::assemble(shared, ServiceThread(thread)))
    }
}
