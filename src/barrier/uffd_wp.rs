//! userfaultfd write-protect with the faults served on the collector side: the
//! hardware-assisted write barrier at the centre of barrierlab.
//!
//! Mechanism: the heap is registered once with `UFFDIO_REGISTER_MODE_WP` (with
//! `UFFD_FEATURE_WP_UNPOPULATED`, so that pages never touched yet are protected too). To
//! [`arm`](DirtyTracker::arm), one `UFFDIO_WRITEPROTECT` covers the whole heap. The first
//! write to a protected page blocks the writing thread in the kernel and queues a
//! page-fault message with `UFFD_PAGEFAULT_FLAG_WP`. A collector-side thread reads the
//! messages (many per `read(2)`), **records** each page in the dirty bitmap, and **then**
//! unprotects it with `UFFDIO_WRITEPROTECT` (mode 0), which wakes the writer; its store
//! retries and goes through. Stores to a page already unprotected cost nothing: the store
//! path of the mutator is a plain `mov`.
//!
//! Order (see `DESIGN.md`): the service runs on another thread and is not stopped by a
//! pause, so it must record before it unprotects (a remark then sees the page of every
//! write that went through), and a harvest with re-arm must not interleave with serving:
//! one lock, held only by collector-side threads (never by a mutator), serialises them.
//! A harvest clears the bitmap, re-protects the harvested pages, and only then does the
//! caller rescan them.
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
//! Costs: per dirtied page, a fault round trip (kernel entry, message, read, two ioctls,
//! wake-up); per cycle, a whole-range protect (~70 ns per heap page). Failure: if an
//! unprotect fails, the writer is released by a whole-range unprotect and the tracker
//! degrades to "everything dirty" for the cycle.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use super::{BarrierKind, DirtySet, DirtyTracker, TrackerOptions, TrackerStats};
use crate::error::{Error, Result};
use crate::sys::eventfd::{EventFd, poll_readable};
use crate::sys::uffd::{Event, Features, PageFaultFlags, RegisterMode, Uffd, WpMode, raw};
use crate::sys::{PAGE_SHIFT, PAGE_SIZE};

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
    pub fn name(self) -> &'static str {
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

/// Messages read per `read(2)`.
const BATCH: usize = 64;

/// A bitmap of heap pages, set by the fault service and taken by harvests.
#[derive(Debug)]
pub(crate) struct PageBitmap {
    words: Box<[AtomicU64]>,
}

impl PageBitmap {
    pub(crate) fn new(pages: usize) -> Self {
        PageBitmap {
            words: (0..pages.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn set(&self, page: usize) {
        self.words[page / 64].fetch_or(1 << (page % 64), Ordering::Relaxed);
    }

    pub(crate) fn clear_all(&self) {
        for w in self.words.iter() {
            w.store(0, Ordering::Relaxed);
        }
    }

    /// Clears the bitmap, appending the pages that were set (ascending) to `out`.
    pub(crate) fn take(&self, out: &mut Vec<usize>) {
        for (i, w) in self.words.iter().enumerate() {
            if w.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut bits = w.swap(0, Ordering::AcqRel);
            while bits != 0 {
                out.push(i * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
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

/// Write-protects again the pages of a harvested set: run by run, or the whole range when
/// the set is "everything" or has many runs (one ioctl per run costs ~1 µs, a whole-range
/// protect ~70 ns per page).
pub(crate) fn reprotect(uffd: &Uffd, base: usize, len: usize, set: &DirtySet) -> Result<()> {
    let mut runs = 0;
    for_each_run(&set.granules, |_, _| runs += 1);
    if set.all || runs * 16 > len / PAGE_SIZE {
        return uffd.write_protect(base, len);
    }
    let mut result = Ok(());
    for_each_run(&set.granules, |first, count| {
        if result.is_ok() {
            result = uffd.write_protect(base + (first << PAGE_SHIFT), count * PAGE_SIZE);
        }
    });
    result
}

/// State shared by the tracker and its service thread.
#[derive(Debug)]
struct Shared {
    uffd: Uffd,
    base: usize,
    len: usize,
    dirty: PageBitmap,
    /// Serialises serving with harvests; holds the message buffer.
    serve: Mutex<Vec<raw::uffd_msg>>,
    armed: AtomicBool,
    degraded: AtomicBool,
    stop: AtomicBool,
    wake: EventFd,
    faults: AtomicU64,
    messages: AtomicU64,
    reads: AtomicU64,
    degradations: AtomicU64,
}

impl Shared {
    /// Reads one batch of messages and serves it. Returns the number of messages.
    fn serve_batch(&self) -> usize {
        let mut buf = self.serve.lock();
        let msgs = match self.uffd.read_raw(&mut buf) {
            Ok(m) => m,
            Err(_) => {
                self.degrade();
                return 0;
            }
        };
        if msgs.is_empty() {
            return 0;
        }
        let n = msgs.len();
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.messages.fetch_add(n as u64, Ordering::Relaxed);
        let mut pages: Vec<usize> = Vec::with_capacity(n);
        for m in msgs {
            if let Event::PageFault { address, flags, .. } = Event::decode(m, false)
                && flags.contains(PageFaultFlags::WP)
            {
                let page = (address - self.base) >> PAGE_SHIFT;
                // Record first: a harvest that runs after the unprotect below must see it.
                self.dirty.set(page);
                pages.push(page);
            }
        }
        self.faults.fetch_add(pages.len() as u64, Ordering::Relaxed);
        // Coalesce duplicate faults on one page, and neighbouring pages into one ioctl.
        pages.sort_unstable();
        pages.dedup();
        let mut failed = false;
        for_each_run(&pages, |first, count| {
            if !failed {
                failed = self
                    .uffd
                    .write_unprotect(
                        self.base + (first << PAGE_SHIFT),
                        count * PAGE_SIZE,
                        WpMode::empty(),
                    )
                    .is_err();
            }
        });
        drop(buf);
        if failed {
            self.degrade();
        }
        n
    }

    /// Loses precision, never a write: every page counts as dirty this cycle, and every
    /// blocked writer is released.
    fn degrade(&self) {
        if !self.degraded.swap(true, Ordering::AcqRel) {
            self.degradations.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self
            .uffd
            .write_unprotect(self.base, self.len, WpMode::empty());
    }

    fn service_loop(&self, spin: bool) {
        let fds = [self.uffd.as_raw_fd(), self.wake.as_raw_fd()];
        while !self.stop.load(Ordering::Acquire) {
            if spin && self.armed.load(Ordering::Acquire) {
                // Look without the lock, so that a harvest is never starved by the spinner.
                match self.uffd.poll_readable(0) {
                    Ok(true) => {
                        self.serve_batch();
                    }
                    Ok(false) => std::hint::spin_loop(),
                    Err(_) => self.degrade(),
                }
                continue;
            }
            match poll_readable(fds, -1) {
                Ok([fault, woken]) => {
                    if woken {
                        self.wake.drain();
                    }
                    if fault {
                        self.serve_batch();
                    }
                }
                Err(_) => self.degrade(),
            }
        }
    }
}

/// The `uffd-wp` tracker.
#[derive(Debug)]
pub struct UffdWpTracker {
    shared: Arc<Shared>,
    layout: ServiceLayout,
    thread: Option<JoinHandle<()>>,
}

impl UffdWpTracker {
    /// Registers the heap `[base, base + len)` for write-protect and starts the service
    /// thread if the layout has one. Falls back to `UFFD_USER_MODE_ONLY` when full mode
    /// is refused (`vm.unprivileged_userfaultfd=0`): [`UffdWpTracker::user_mode_only`]
    /// reports it.
    pub fn new(base: usize, len: usize, options: &TrackerOptions) -> Result<UffdWpTracker> {
        let uffd = open_wp(
            Features::PAGEFAULT_FLAG_WP | Features::WP_UNPOPULATED,
            options.user_mode_only,
            true,
        )?;
        uffd.register(base, len, RegisterMode::WP)?;
        let shared = Arc::new(Shared {
            uffd,
            base,
            len,
            dirty: PageBitmap::new(len / PAGE_SIZE),
            serve: Mutex::new(vec![raw::uffd_msg::default(); BATCH]),
            armed: AtomicBool::new(false),
            degraded: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            wake: EventFd::new()?,
            faults: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            degradations: AtomicU64::new(0),
        });
        let thread = match options.service {
            ServiceLayout::Collector => None,
            layout => {
                let s = shared.clone();
                let spin = layout == ServiceLayout::SpinThread;
                Some(
                    std::thread::Builder::new()
                        .name("uffd-wp-service".into())
                        .spawn(move || s.service_loop(spin))
                        .map_err(|e| {
                            Error::InvalidArgument(format!(
                                "cannot spawn the fault service thread: {e}"
                            ))
                        })?,
                )
            }
        };
        Ok(UffdWpTracker {
            shared,
            layout: options.service,
            thread,
        })
    }

    /// Who serves the faults.
    pub fn layout(&self) -> ServiceLayout {
        self.layout
    }

    /// Whether `UFFD_USER_MODE_ONLY` is in effect (kernel writes into the heap then fail
    /// with `EFAULT` instead of faulting).
    pub fn user_mode_only(&self) -> bool {
        self.shared.uffd.user_mode_only()
    }
}

/// Opens a userfaultfd with `features`, falling back to `UFFD_USER_MODE_ONLY` when full
/// mode is refused for lack of privilege.
pub(crate) fn open_wp(features: Features, user_mode_only: bool, nonblocking: bool) -> Result<Uffd> {
    let open = |umo: bool| {
        Uffd::builder()
            .features(features)
            .user_mode_only(umo)
            .nonblocking(nonblocking)
            .create()
    };
    match open(user_mode_only) {
        Err(Error::Unavailable { .. })
        | Err(Error::Sys {
            errno: libc::EPERM, ..
        }) if !user_mode_only => open(true),
        other => other,
    }
}

impl DirtyTracker for UffdWpTracker {
    fn kind(&self) -> BarrierKind {
        BarrierKind::UffdWp
    }

    fn granule_shift(&self) -> u32 {
        PAGE_SHIFT
    }

    fn arm(&self) -> Result<()> {
        let s = &self.shared;
        // Held so that a stale message from the last cycle is not served across the arm:
        // its record would land before the clear and its unprotect after the protect,
        // leaving a page writable and unrecorded for the whole cycle.
        let _serving = s.serve.lock();
        s.dirty.clear_all();
        s.degraded.store(false, Ordering::Release);
        s.uffd.write_protect(s.base, s.len)?;
        s.armed.store(true, Ordering::Release);
        s.wake.signal();
        Ok(())
    }

    fn harvest(&self, out: &mut DirtySet, rearm: bool) -> Result<()> {
        let s = &self.shared;
        out.clear();
        // Held across take + re-protect so that no fault is served in between: a served
        // fault records, then unprotects; if that unprotect landed after our re-protect,
        // the page would be writable but its record already taken.
        let _serving = s.serve.lock();
        s.dirty.take(&mut out.granules);
        out.all = s.degraded.swap(false, Ordering::AcqRel);
        if rearm {
            let result = reprotect(&s.uffd, s.base, s.len, out);
            // The records are taken: pages left writable would go unrecorded, so a
            // failed re-protect makes the rest of the cycle "everything dirty".
            if result.is_err() {
                s.degraded.store(true, Ordering::Release);
                s.degradations.fetch_add(1, Ordering::Relaxed);
                out.all = true;
            }
        }
        Ok(())
    }

    fn disarm(&self) -> Result<()> {
        let s = &self.shared;
        s.armed.store(false, Ordering::Release);
        // Wakes every writer still blocked; messages still queued are stale and are
        // served (record + unprotect, both harmless) by whoever reads next.
        s.uffd.write_unprotect(s.base, s.len, WpMode::empty())?;
        if self.layout == ServiceLayout::Collector {
            while s.serve_batch() > 0 {}
        }
        Ok(())
    }

    fn service_fd(&self) -> Option<RawFd> {
        (self.layout == ServiceLayout::Collector).then(|| self.shared.uffd.as_raw_fd())
    }

    fn serve_pending(&self) -> usize {
        if self.layout != ServiceLayout::Collector {
            return 0;
        }
        let mut total = 0;
        loop {
            let n = self.shared.serve_batch();
            total += n;
            if n < BATCH {
                return total;
            }
        }
    }

    fn stats(&self) -> TrackerStats {
        let s = &self.shared;
        TrackerStats {
            faults: s.faults.load(Ordering::Relaxed),
            messages: s.messages.load(Ordering::Relaxed),
            reads: s.reads.load(Ordering::Relaxed),
            eagain_retries: s.uffd.eagain_retries(),
            degradations: s.degradations.load(Ordering::Relaxed),
        }
    }
}

impl Drop for UffdWpTracker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.signal();
        let _ =
            self.shared
                .uffd
                .write_unprotect(self.shared.base, self.shared.len, WpMode::empty());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_maximal() {
        let mut runs = Vec::new();
        for_each_run(&[1, 2, 3, 7, 9, 10], |a, n| runs.push((a, n)));
        assert_eq!(runs, vec![(1, 3), (7, 1), (9, 2)]);
    }

    #[test]
    fn page_bitmap_take_returns_ascending_and_clears() {
        let b = PageBitmap::new(200);
        for p in [130, 3, 64, 3, 199] {
            b.set(p);
        }
        let mut out = Vec::new();
        b.take(&mut out);
        assert_eq!(out, vec![3, 64, 130, 199]);
        out.clear();
        b.take(&mut out);
        assert!(out.is_empty());
    }
}
