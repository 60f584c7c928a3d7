//! userfaultfd asynchronous write-protect (`UFFD_FEATURE_WP_ASYNC`, Linux 6.7+),
//! harvested with `PAGEMAP_SCAN`: the kernel resolves the write faults itself, so there
//! is no message, no handler and no thread.
//!
//! Mechanism: the heap is registered once with `UFFDIO_REGISTER_MODE_WP` on a
//! userfaultfd opened with `WP_ASYNC` and `WP_UNPOPULATED`. A protected page's PTE
//! carries the uffd-wp bit (pagemap bit 57); the first write to it takes a minor fault
//! in which the kernel clears the bit and lets the write through (~0.8 µs), and from
//! then on the page counts as *written* (`PAGE_IS_WRITTEN`). A
//! [`harvest`](DirtyTracker::harvest) is one `PAGEMAP_SCAN` over the heap with
//! `PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC` and `category_mask = PAGE_IS_WRITTEN`:
//! it returns the written pages as runs and write-protects exactly those pages in the
//! same walk.
//!
//! Order (`DESIGN.md`, "Kernel-resolved"): reading a page's written state and
//! re-protecting it happen atomically per page, under the page table lock, in the
//! kernel. IF a write lands before the scan reaches its page THEN the scan returns the
//! page (and the caller's rescan, which comes after, sees the write); IF after THEN the
//! page is protected again, so the write marks it written for the next harvest. Because
//! that is safe, every harvest re-protects, also without `rearm` (at remark): it is
//! harmless and leaves the heap protected for the next cycle.
//!
//! Between cycles ([`TrackerOptions::async_keep_protected`], on by default),
//! [`disarm`](DirtyTracker::disarm) does nothing: the heap stays protected, a write
//! between cycles costs one kernel-resolved fault on the first write to each page, and
//! the next [`arm`](DirtyTracker::arm) is a scan whose result is thrown away (it only
//! re-protects the pages written since). With the option off, disarm unprotects the
//! whole heap and every arm protects all of it again (~70 ns per heap page).
//!
//! Costs (`../shared/probe/RESULTS.md`): 0 per store; per dirtied page ~0.8 µs for the
//! kernel-resolved fault plus ~40 ns in the scan that re-protects it; per cycle ~1 ns per
//! heap page for a scan over clean pages.
//!
//! Failure modes: a written page is reported even if the kernel wrote it (`read(2)` into
//! the heap): kernel writes are recorded, not refused. "Written" means "not
//! write-protected", so a page that lost its protection any other way is reported too:
//! the tracker over-approximates rather than loses writes (a page zapped with
//! `MADV_DONTNEED` loses its uffd-wp bit, and the next scan reports it as written). IF a
//! scan fails THEN that harvest reports "everything dirty" (counted in
//! [`TrackerStats::degradations`]) and the whole heap is re-protected with
//! `UFFDIO_WRITEPROTECT`.
//!
//! Never: write-protect pages with `UFFDIO_WRITEPROTECT` while armed (except the whole
//! heap after a failed scan, whose harvest reports everything): that would clear their
//! written state without reporting it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use super::uffd_wp::open_wp;
use super::{BarrierKind, DirtySet, DirtyTracker, TrackerOptions, TrackerStats};
use crate::error::Result;
use crate::sys::PAGE_SHIFT;
use crate::sys::pagemap::{Pagemap, ScanRequest};
use crate::sys::uffd::{Features, RegisterMode, Uffd, WpMode};

/// Regions returned per `PAGEMAP_SCAN` call; a harvest with more runs makes more calls.
const SCAN_VEC_LEN: usize = 1024;

/// The `uffd-wp-async` tracker over one heap.
#[derive(Debug)]
pub struct UffdWpAsyncTracker {
    uffd: Uffd,
    base: usize,
    len: usize,
    keep_protected: bool,
    /// `/proc/self/pagemap` and the scan's output vector, reused by every harvest.
    pagemap: Mutex<Pagemap>,
    /// The whole heap was protected and not unprotected since (arm may then just scan).
    protected: AtomicBool,
    faults: AtomicU64,
    scan_eagain: AtomicU64,
    degradations: AtomicU64,
    /// This cycle degraded at least once (counted once in `degradations`).
    cycle_degraded: AtomicBool,
    /// Test hook: the next scan fails as if the ioctl had.
    fail_next_scan: AtomicBool,
}

impl UffdWpAsyncTracker {
    /// Registers the heap `[base, base + len)` (page aligned, mapped by the caller and
    /// outliving the tracker) for asynchronous write-protect. Falls back to
    /// `UFFD_USER_MODE_ONLY` when full mode is refused.
    pub fn new(base: usize, len: usize, options: &TrackerOptions) -> Result<UffdWpAsyncTracker> {
        let uffd = open_wp(
            Features::PAGEFAULT_FLAG_WP | Features::WP_ASYNC | Features::WP_UNPOPULATED,
            options.user_mode_only,
            true,
        )?;
        uffd.register(base, len, RegisterMode::WP)?;
        Ok(UffdWpAsyncTracker {
            uffd,
            base,
            len,
            keep_protected: options.async_keep_protected,
            pagemap: Mutex::new(Pagemap::open(SCAN_VEC_LEN)?),
            protected: AtomicBool::new(false),
            faults: AtomicU64::new(0),
            scan_eagain: AtomicU64::new(0),
            degradations: AtomicU64::new(0),
            cycle_degraded: AtomicBool::new(false),
            fail_next_scan: AtomicBool::new(false),
        })
    }

    /// Whether `UFFD_USER_MODE_ONLY` is in effect.
    pub fn user_mode_only(&self) -> bool {
        self.uffd.user_mode_only()
    }

    /// Whether the heap stays protected between cycles.
    pub fn keeps_protected(&self) -> bool {
        self.keep_protected
    }

    /// One `PAGEMAP_SCAN` harvest over the heap: appends the written pages' indices to
    /// `pages` (when given) and re-protects them. Returns how many there were.
    fn scan(&self, mut pages: Option<&mut Vec<usize>>) -> Result<usize> {
        if self.fail_next_scan.swap(false, Ordering::Relaxed) {
            return Err(crate::Error::from_errno(
                "PAGEMAP_SCAN",
                Some((self.base, self.len)),
                libc::EIO,
            ));
        }
        let mut pm = self.pagemap.lock();
        let mut found = 0;
        let req = ScanRequest::harvest_written(self.base, self.base + self.len);
        let stats = pm.scan(&req, |start, end| {
            let first = (start - self.base) >> PAGE_SHIFT;
            let last = (end - self.base) >> PAGE_SHIFT;
            found += last - first;
            if let Some(v) = pages.as_deref_mut() {
                v.extend(first..last);
            }
        })?;
        self.scan_eagain
            .fetch_add(u64::from(stats.eagain_retries), Ordering::Relaxed);
        Ok(found)
    }

    fn protect_all(&self) -> Result<()> {
        self.uffd.write_protect(self.base, self.len)?;
        self.protected.store(true, Ordering::Release);
        Ok(())
    }

    /// Test hook: the next scan fails.
    #[cfg(test)]
    pub(crate) fn fail_next_scan(&self) {
        self.fail_next_scan.store(true, Ordering::Relaxed);
    }
}

impl DirtyTracker for UffdWpAsyncTracker {
    fn kind(&self) -> BarrierKind {
        BarrierKind::UffdWpAsync
    }

    fn granule_shift(&self) -> u32 {
        PAGE_SHIFT
    }

    fn arm(&self) -> Result<()> {
        self.cycle_degraded.store(false, Ordering::Relaxed);
        // Still protected since the last cycle: re-protecting what was written since is
        // all it takes to start recording afresh; the pages are not needed.
        if self.keep_protected && self.protected.load(Ordering::Acquire) && self.scan(None).is_ok()
        {
            return Ok(());
        }
        self.protect_all()
    }

    fn harvest(&self, out: &mut DirtySet, _rearm: bool) -> Result<()> {
        out.clear();
        match self.scan(Some(&mut out.granules)) {
            Ok(found) => {
                self.faults.fetch_add(found as u64, Ordering::Relaxed);
                // The kernel returns runs in address order and resumes a full vector
                // after the last run, so this holds; checked because the contract
                // (sorted, unique) is cheap to keep whatever the kernel does.
                if !out.granules.windows(2).all(|w| w[0] < w[1]) {
                    out.granules.sort_unstable();
                    out.granules.dedup();
                }
                Ok(())
            }
            Err(_) => {
                // Some pages may have been re-protected without being reported.
                out.all = true;
                if !self.cycle_degraded.swap(true, Ordering::Relaxed) {
                    self.degradations.fetch_add(1, Ordering::Relaxed);
                }
                self.protect_all()
            }
        }
    }

    fn disarm(&self) -> Result<()> {
        if self.keep_protected {
            return Ok(());
        }
        self.protected.store(false, Ordering::Release);
        self.uffd
            .write_unprotect(self.base, self.len, WpMode::empty())
    }

    fn stats(&self) -> TrackerStats {
        TrackerStats {
            faults: self.faults.load(Ordering::Relaxed),
            eagain_retries: self.uffd.eagain_retries() + self.scan_eagain.load(Ordering::Relaxed),
            degradations: self.degradations.load(Ordering::Relaxed),
            ..TrackerStats::default()
        }
    }
}

impl Drop for UffdWpAsyncTracker {
    fn drop(&mut self) {
        // The heap outlives the tracker: leave it as it was found, unprotected.
        let _ = self
            .uffd
            .write_unprotect(self.base, self.len, WpMode::empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::signal_registry::testkit::*;
    use crate::sys::PAGE_SIZE;
    use crate::sys::mem::Region;

    const PAGES: usize = 64;

    fn tracker(region: &Region, keep_protected: bool) -> UffdWpAsyncTracker {
        let options = TrackerOptions {
            async_keep_protected: keep_protected,
            ..TrackerOptions::default()
        };
        UffdWpAsyncTracker::new(region.base(), region.len(), &options).unwrap()
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
            for p in 0..PAGES / 2 {
                write_page(base, p, 1);
            }
            let t = tracker(&region, true);
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
            // Without rearm too, the harvest re-protects.
            assert_eq!(harvest(&t, false).granules, vec![21, 63]);
            assert!(wp_bits(&mut pm, base).iter().all(|&b| b));
            for (p, v) in [(0, 0), (3, 3), (9, 9), (20, 7), (21, 1), (50, 7), (63, 1)] {
                assert_eq!(read_page(base, p), v, "page {p}");
            }
            assert_eq!(t.stats().degradations, 0);
        });
    }

    #[test]
    fn kept_protected_between_cycles_the_next_arm_forgets_what_was_written() {
        with_timeout(|| {
            let region = Region::new(PAGES * PAGE_SIZE).unwrap();
            let base = region.base();
            let t = tracker(&region, true);
            let mut pm = Pagemap::open(1).unwrap();
            t.arm().unwrap();
            write_page(base, 4, 4);
            assert_eq!(harvest(&t, false).granules, vec![4]);
            t.disarm().unwrap();
            assert!(wp_bits(&mut pm, base).iter().all(|&b| b), "still protected");
            // Between cycles: resolved by the kernel, not recorded anywhere.
            write_page(base, 7, 7);
            write_page(base, 8, 8);
            assert!(!pm.entry(base + 7 * PAGE_SIZE).unwrap().uffd_wp());
            let faults = t.stats().faults;
            t.arm().unwrap();
            assert!(
                wp_bits(&mut pm, base).iter().all(|&b| b),
                "arm re-protected 7, 8"
            );
            assert_eq!(harvest(&t, true), DirtySet::default());
            assert_eq!(t.stats().faults, faults);
            assert_eq!((read_page(base, 7), read_page(base, 8)), (7, 8));
        });
    }

    #[test]
    fn without_keep_protected_disarm_unprotects_and_arm_protects_everything() {
        with_timeout(|| {
            let region = Region::new(PAGES * PAGE_SIZE).unwrap();
            let base = region.base();
            let t = tracker(&region, false);
            let mut pm = Pagemap::open(1).unwrap();
            t.arm().unwrap();
            assert!(wp_bits(&mut pm, base).iter().all(|&b| b));
            write_page(base, 4, 4);
            assert_eq!(harvest(&t, false).granules, vec![4]);
            t.disarm().unwrap();
            assert!(wp_bits(&mut pm, base).iter().all(|&b| !b), "disarmed");
            let faults = t.stats().faults;
            for p in 0..PAGES {
                write_page(base, p, 9);
            }
            t.arm().unwrap();
            assert!(wp_bits(&mut pm, base).iter().all(|&b| b), "armed again");
            assert_eq!(harvest(&t, true), DirtySet::default());
            assert_eq!(t.stats().faults, faults);
        });
    }

    #[test]
    fn a_failed_scan_degrades_the_harvest_and_re_protects_everything() {
        with_timeout(|| {
            let region = Region::new(PAGES * PAGE_SIZE).unwrap();
            let base = region.base();
            let t = tracker(&region, true);
            let mut pm = Pagemap::open(1).unwrap();
            t.arm().unwrap();
            write_page(base, 2, 2);
            t.fail_next_scan();
            let d = harvest(&t, true);
            assert!(d.all);
            assert_eq!(t.stats().degradations, 1);
            assert!(wp_bits(&mut pm, base).iter().all(|&b| b));
            write_page(base, 3, 3);
            assert_eq!(harvest(&t, true).granules, vec![3]);
        });
    }

    #[test]
    fn no_write_slips_past_concurrent_harvests() {
        // Nothing to widen: the kernel reads and re-protects each page in one step.
        with_timeout(|| race_writers_and_harvests(|r, _| tracker(r, true), Bound::Next));
    }

    #[test]
    fn many_runs_fill_the_scan_vector_and_all_are_reported() {
        // More runs than one PAGEMAP_SCAN call can return (every other page of 4096).
        with_timeout(|| {
            let pages = 4 * SCAN_VEC_LEN;
            let region = Region::new(pages * PAGE_SIZE).unwrap();
            let t =
                UffdWpAsyncTracker::new(region.base(), region.len(), &TrackerOptions::default())
                    .unwrap();
            t.arm().unwrap();
            let written: Vec<usize> = (0..pages).step_by(2).collect();
            for &p in &written {
                write_page(region.base(), p, 1);
            }
            assert_eq!(harvest(&t, true).granules, written);
            assert_eq!(harvest(&t, true), DirtySet::default());
        });
    }
}
