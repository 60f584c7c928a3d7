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
//! (~1 µs for the ioctl in `../shared/probe/RESULTS.md`); per cycle a whole-range
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
//!   protected, which would loop forever.
//! - A write by the kernel (`read(2)` into a protected heap page) fails with `EFAULT`:
//!   with `UFFD_FEATURE_SIGBUS` there is nobody to resolve a kernel-mode fault.
//! - `MADV_DONTNEED` on an armed heap page drops its protection (on anonymous memory a
//!   zap drops the uffd-wp bit and installs no marker, even with `WP_UNPOPULATED`; seen
//!   on 6.18): IF the heap zaps a page while armed THEN the next write to it is not
//!   recorded. The heap must not give pages back while a cycle is armed.
//! - A SIGBUS outside every registered heap is passed to the previous handler, so a real
//!   SIGBUS (a truncated file mapping) still kills the process.
//!
//! Never: take a lock or allocate in the handler; record a page before it is writable.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::signal_registry::{self, FaultServer, FaultSignal, Registration, Served};
use super::uffd_wp::{PageBitmap, open_wp, reprotect};
use super::{BarrierKind, DirtySet, DirtyTracker, TrackerOptions, TrackerStats};
use crate::error::Result;
use crate::sys::uffd::{Features, RegisterMode, Uffd, WpMode, raw};
use crate::sys::{PAGE_SHIFT, PAGE_SIZE};

/// How many times the handler retries an unprotect that returns `EAGAIN` (the address
/// space is changing under it: a pending non-cooperative event) before giving up.
const HANDLER_EAGAIN_LIMIT: u32 = 1000;

/// State shared by the tracker and the SIGBUS handler.
#[derive(Debug)]
struct State {
    uffd: Uffd,
    /// `uffd.as_raw_fd()`, for the handler's raw ioctl.
    fd: RawFd,
    base: usize,
    len: usize,
    dirty: PageBitmap,
    /// Pages may be writable without a record (the handler unprotected the whole heap,
    /// or a re-protect failed): the next harvest reports everything and re-protects the
    /// whole heap.
    degraded: AtomicBool,
    /// This cycle degraded at least once (counted once in `degradations`).
    cycle_degraded: AtomicBool,
    faults: AtomicU64,
    degradations: AtomicU64,
    handler_eagain: AtomicU64,
    /// Test hook: this many one-page unprotects in the handler fail as if the ioctl had.
    inject_failures: AtomicU32,
    /// Test hook: spins between the steps of the handler and of a harvest.
    widen: AtomicU32,
}

impl State {
    /// Marks the tracker degraded. Async-signal-safe.
    fn degrade(&self) {
        self.degraded.store(true, Ordering::Release);
        if !self.cycle_degraded.swap(true, Ordering::AcqRel) {
            self.degradations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `UFFDIO_WRITEPROTECT` mode 0 on `[start, start + len)`, retrying `EAGAIN` a
    /// bounded number of times. Async-signal-safe: one ioctl on a stack argument.
    fn unprotect_in_handler(&self, start: usize, len: usize) -> bool {
        let mut wp = raw::uffdio_writeprotect {
            range: raw::uffdio_range {
                start: start as u64,
                len: len as u64,
            },
            mode: 0,
        };
        for _ in 0..=HANDLER_EAGAIN_LIMIT {
            // SAFETY: `fd` is the userfaultfd owned by `self.uffd`, open while `self`
            // lives; `wp` is a valid uffdio_writeprotect for the duration of the call.
            let rc = unsafe { libc::ioctl(self.fd, raw::UFFDIO_WRITEPROTECT as _, &mut wp) };
            if rc == 0 {
                return true;
            }
            if crate::sys::errno() != libc::EAGAIN {
                return false;
            }
            self.handler_eagain.fetch_add(1, Ordering::Relaxed);
            std::hint::spin_loop();
        }
        false
    }
}

impl FaultServer for State {
    fn serve(&self, addr: usize) -> Served {
        let page = addr.wrapping_sub(self.base) >> PAGE_SHIFT;
        let injected = self
            .inject_failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        // Unprotect, then record: see the module docs.
        if !injected && self.unprotect_in_handler(self.base + (page << PAGE_SHIFT), PAGE_SIZE) {
            signal_registry::widen(self.widen.load(Ordering::Relaxed));
            self.dirty.set(page);
            self.faults.fetch_add(1, Ordering::Relaxed);
            return Served::Handled;
        }
        if self.unprotect_in_handler(self.base, self.len) {
            // Whole heap writable first, then the "record" that says so.
            self.degrade();
            return Served::Handled;
        }
        Served::Chain
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
    /// when full mode is refused.
    pub fn new(base: usize, len: usize, options: &TrackerOptions) -> Result<UffdWpSigbusTracker> {
        // Blocking is fine: nothing ever reads this descriptor.
        let uffd = open_wp(
            Features::PAGEFAULT_FLAG_WP | Features::WP_UNPOPULATED | Features::SIGBUS,
            options.user_mode_only,
            false,
        )?;
        uffd.register(base, len, RegisterMode::WP)?;
        let state = Arc::new(State {
            fd: uffd.as_raw_fd(),
            uffd,
            base,
            len,
            dirty: PageBitmap::new(len / PAGE_SIZE),
            degraded: AtomicBool::new(false),
            cycle_degraded: AtomicBool::new(false),
            faults: AtomicU64::new(0),
            degradations: AtomicU64::new(0),
            handler_eagain: AtomicU64::new(0),
            inject_failures: AtomicU32::new(0),
            widen: AtomicU32::new(0),
        });
        let registration = signal_registry::register(FaultSignal::Bus, base, len, state.clone())?;
        Ok(UffdWpSigbusTracker {
            state,
            _registration: registration,
        })
    }

    /// Whether `UFFD_USER_MODE_ONLY` is in effect.
    pub fn user_mode_only(&self) -> bool {
        self.state.uffd.user_mode_only()
    }

    /// Test hook: the handler's next `n` one-page unprotects fail.
    #[cfg(test)]
    pub(crate) fn fail_next_unprotects(&self, n: u32) {
        self.state.inject_failures.store(n, Ordering::Relaxed);
    }

    /// Test hook: spin `spins` times between the steps of the handler and of a harvest.
    #[cfg(test)]
    pub(crate) fn widen_races(&self, spins: u32) {
        self.state.widen.store(spins, Ordering::Relaxed);
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
        let s = &self.state;
        s.dirty.clear_all();
        s.degraded.store(false, Ordering::Release);
        s.cycle_degraded.store(false, Ordering::Release);
        s.uffd.write_protect(s.base, s.len)
    }

    fn harvest(&self, out: &mut DirtySet, rearm: bool) -> Result<()> {
        let s = &self.state;
        out.clear();
        // Take the record (the bitmap and the "everything" flag) first, then re-protect.
        s.dirty.take(&mut out.granules);
        out.all = s.degraded.swap(false, Ordering::AcqRel);
        signal_registry::widen(s.widen.load(Ordering::Relaxed));
        if rearm {
            let reprotected = reprotect(&s.uffd, s.base, s.len, out);
            // Pages taken but left unprotected would miss later writes: report everything
            // now, and again at the next harvest, which retries a whole-range protect.
            if reprotected.is_err() {
                out.all = true;
                s.degrade();
            }
        }
        Ok(())
    }

    fn disarm(&self) -> Result<()> {
        let s = &self.state;
        s.uffd.write_unprotect(s.base, s.len, WpMode::empty())
    }

    fn stats(&self) -> TrackerStats {
        let s = &self.state;
        TrackerStats {
            faults: s.faults.load(Ordering::Relaxed),
            eagain_retries: s.uffd.eagain_retries() + s.handler_eagain.load(Ordering::Relaxed),
            degradations: s.degradations.load(Ordering::Relaxed),
            ..TrackerStats::default()
        }
    }
}

impl Drop for UffdWpSigbusTracker {
    fn drop(&mut self) {
        let s = &self.state;
        let _ = s.uffd.write_unprotect(s.base, s.len, WpMode::empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::signal_registry::testkit::*;
    use crate::sys::mem::Region;
    use crate::sys::pagemap::Pagemap;

    const PAGES: usize = 64;

    fn tracker(region: &Region) -> UffdWpSigbusTracker {
        UffdWpSigbusTracker::new(region.base(), region.len(), &TrackerOptions::default()).unwrap()
    }

    fn wp_bits(pm: &mut Pagemap, base: usize) -> Vec<bool> {
        (0..PAGES)
            .map(|p| pm.entry(base + p * PAGE_SIZE).unwrap().uffd_wp())
            .collect()
    }

    #[test]
    fn harvest_returns_exactly_the_written_pages_then_nothing() {
        with_timeout(|| {
            let region = Region::new(PAGES * PAGE_SIZE).unwrap();
            let base = region.base();
            // Half the heap populated before arming, half never touched (WP_UNPOPULATED).
            for p in 0..PAGES / 2 {
                write_page(base, p, 1);
            }
            let t = tracker(&region);
            let mut pm = Pagemap::open(1).unwrap();
            t.arm().unwrap();
            assert!(
                wp_bits(&mut pm, base).iter().all(|&b| b),
                "armed: all protected"
            );
            for p in [9, 3, 3, 40, 63, 0] {
                write_page(base, p, p as u64);
            }
            write_from_two_threads(base, &[20, 21, 22, 50, 51], 7);
            let written = [0, 3, 9, 20, 21, 22, 40, 50, 51, 63];
            for (p, bit) in wp_bits(&mut pm, base).into_iter().enumerate() {
                assert_eq!(bit, !written.contains(&p), "pagemap bit 57 of page {p}");
            }
            let d = harvest(&t, true);
            assert!(!d.all);
            assert_eq!(d.granules, written);
            assert_eq!(t.stats().faults, 10);
            assert!(wp_bits(&mut pm, base).iter().all(|&b| b), "re-armed");
            assert_eq!(harvest(&t, true), DirtySet::default());
            write_page(base, 21, 1);
            write_page(base, 63, 1);
            assert_eq!(harvest(&t, false).granules, vec![21, 63]);
            for (p, v) in [(0, 0), (3, 3), (9, 9), (20, 7), (21, 1), (50, 7), (63, 1)] {
                assert_eq!(read_page(base, p), v, "page {p}");
            }
            t.disarm().unwrap();
            assert!(wp_bits(&mut pm, base).iter().all(|&b| !b), "disarmed");
            let faults = t.stats().faults;
            for p in 0..PAGES {
                write_page(base, p, 2);
            }
            assert_eq!(t.stats().faults, faults);
            assert_eq!(harvest(&t, false), DirtySet::default());
            assert_eq!(t.stats().degradations, 0);
        });
    }

    #[test]
    fn a_failed_unprotect_degrades_the_cycle_and_a_rearm_recovers() {
        with_timeout(|| {
            let region = Region::new(PAGES * PAGE_SIZE).unwrap();
            let base = region.base();
            let t = tracker(&region);
            let mut pm = Pagemap::open(1).unwrap();
            t.arm().unwrap();
            write_page(base, 1, 11);
            t.fail_next_unprotects(1);
            write_page(base, 2, 22);
            assert!(
                wp_bits(&mut pm, base).iter().all(|&b| !b),
                "whole heap writable"
            );
            write_page(base, 30, 30);
            assert_eq!(t.stats().degradations, 1);
            assert_eq!(t.stats().faults, 1);
            let d = harvest(&t, true);
            assert!(d.all);
            // Re-protected as a whole: precise again.
            write_page(base, 5, 5);
            assert_eq!(
                harvest(&t, true),
                DirtySet {
                    granules: vec![5],
                    all: false
                }
            );
            for (p, v) in [(1, 11), (2, 22), (30, 30), (5, 5)] {
                assert_eq!(read_page(base, p), v, "page {p}: a write was lost");
            }
        });
    }

    #[test]
    fn no_write_slips_past_concurrent_harvests() {
        with_timeout(|| {
            race_writers_and_harvests(
                |r, spins| {
                    let t = tracker(r);
                    t.widen_races(spins);
                    t
                },
                Bound::Eventually,
            )
        });
    }

    #[test]
    fn a_sigbus_outside_every_heap_kills_a_forked_child_with_sigbus() {
        let region = Region::new(PAGES * PAGE_SIZE).unwrap();
        let t = tracker(&region);
        t.arm().unwrap();
        // A shared file mapping one page longer than the file: touching the second
        // page raises a real SIGBUS (BUS_ADRERR), like a heap fault.
        // SAFETY: memfd_create with a valid name; the descriptor is closed below.
        let fd = unsafe { libc::memfd_create(c"barrierlab-sigbus".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: plain system calls on our descriptor and a fresh mapping.
        let map = unsafe {
            assert_eq!(libc::ftruncate(fd, PAGE_SIZE as i64), 0);
            libc::mmap(
                std::ptr::null_mut(),
                2 * PAGE_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        let status = fork_and_wait(|| {
            // A heap write still works in the child (without UFFD_FEATURE_EVENT_FORK
            // the child's copy of the heap is not write-protected at all)...
            write_page(region.base(), 3, 1);
            // ...but a real SIGBUS is passed on.
            write_page(map as usize, 1, 1);
        });
        // SAFETY: unmapping and closing what was created above.
        unsafe {
            libc::munmap(map, 2 * PAGE_SIZE);
            libc::close(fd);
        }
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGBUS,
            "the child should die of SIGBUS, but it {}",
            describe(status)
        );
        t.disarm().unwrap();
    }
}
