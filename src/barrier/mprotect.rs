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
//! Costs (`../shared/probe/RESULTS.md`): 0 per store; per dirtied page a signal delivery
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
//! Never: take a lock or allocate in the handler; let a harvest re-protect a page
//! before it has taken the page's record.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::signal_registry::{self, FaultServer, FaultSignal, Registration, Served};
use super::uffd_wp::{PageBitmap, for_each_run};
use super::{BarrierKind, DirtySet, DirtyTracker, TrackerOptions, TrackerStats};
use crate::error::{Error, Result};
use crate::sys::mem::{Protection, mprotect_errno};
use crate::sys::{PAGE_SHIFT, PAGE_SIZE};

/// State shared by the tracker and the SIGSEGV handler.
#[derive(Debug)]
struct State {
    base: usize,
    len: usize,
    dirty: PageBitmap,
    /// An `mprotect` failed this cycle (`ENOMEM` at the mapping limit, in practice): the
    /// whole heap is writable and every harvest reports everything until the next arm.
    degraded: AtomicBool,
    faults: AtomicU64,
    degradations: AtomicU64,
    /// Test hook: this many page-sized `mprotect`s fail with `ENOMEM` as if the mapping
    /// limit were reached.
    inject_enomem: AtomicU32,
    /// Test hook: spins between the steps of the handler and of a harvest.
    widen: AtomicU32,
}

impl State {
    /// `mprotect` on a run of pages (the handler's and the harvest's calls, never the
    /// whole heap's), failing with `ENOMEM` while the test hook says so.
    /// Async-signal-safe.
    fn protect_pages(&self, first: usize, count: usize, prot: Protection) -> Result<(), i32> {
        let injected = self
            .inject_enomem
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if injected {
            return Err(libc::ENOMEM);
        }
        mprotect_errno(self.base + (first << PAGE_SHIFT), count * PAGE_SIZE, prot)
    }

    /// Gives up precision for the rest of the cycle: the whole heap becomes writable
    /// (one `mprotect` that merges the split VMAs back) and every harvest reports
    /// everything until the next arm. Async-signal-safe.
    fn degrade(&self) -> Result<(), i32> {
        let whole = mprotect_errno(self.base, self.len, Protection::ReadWrite);
        if !self.degraded.swap(true, Ordering::AcqRel) {
            self.degradations.fetch_add(1, Ordering::Relaxed);
        }
        whole
    }

    fn whole(&self, op: &'static str, prot: Protection) -> Result<()> {
        mprotect_errno(self.base, self.len, prot).map_err(|errno| {
            Error::from_errno(op, Some((self.base, self.len)), errno)
                .with_hint("whole-heap mprotect of the mprotect tracker")
        })
    }
}

impl FaultServer for State {
    fn serve(&self, addr: usize) -> Served {
        let page = addr.wrapping_sub(self.base) >> PAGE_SHIFT;
        // Unprotect, then record: see the module docs.
        match self.protect_pages(page, 1, Protection::ReadWrite) {
            Ok(()) => {
                signal_registry::widen(self.widen.load(Ordering::Relaxed));
                self.dirty.set(page);
                self.faults.fetch_add(1, Ordering::Relaxed);
                Served::Handled
            }
            // ENOMEM at the mapping limit, in practice; any failure is handled alike.
            Err(_) => match self.degrade() {
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
    pub fn new(base: usize, len: usize, _options: &TrackerOptions) -> Result<MprotectTracker> {
        if base % PAGE_SIZE != 0 || len % PAGE_SIZE != 0 || len == 0 {
            return Err(Error::InvalidArgument(format!(
                "mprotect tracker over [{base:#x}, +{len:#x}): the heap must be whole pages"
            )));
        }
        let state = Arc::new(State {
            base,
            len,
            dirty: PageBitmap::new(len / PAGE_SIZE),
            degraded: AtomicBool::new(false),
            faults: AtomicU64::new(0),
            degradations: AtomicU64::new(0),
            inject_enomem: AtomicU32::new(0),
            widen: AtomicU32::new(0),
        });
        let registration = signal_registry::register(FaultSignal::Segv, base, len, state.clone())?;
        Ok(MprotectTracker {
            state,
            _registration: registration,
        })
    }

    /// Test hook: the next `n` page `mprotect`s (in the handler or a harvest) fail with
    /// `ENOMEM`, as when `vm.max_map_count` is reached.
    #[cfg(test)]
    pub(crate) fn fail_next_mprotects(&self, n: u32) {
        self.state.inject_enomem.store(n, Ordering::Relaxed);
    }

    /// Test hook: spin `spins` times between the steps of the handler and of a harvest.
    #[cfg(test)]
    pub(crate) fn widen_races(&self, spins: u32) {
        self.state.widen.store(spins, Ordering::Relaxed);
    }
}

/// Above this many runs per heap page a harvest re-protects the whole heap in one call
/// (~70 ns per page) instead of one `mprotect` per run (~1–2 µs each).
const RUNS_PER_WHOLE: usize = 16;

impl DirtyTracker for MprotectTracker {
    fn kind(&self) -> BarrierKind {
        BarrierKind::Mprotect
    }

    fn granule_shift(&self) -> u32 {
        PAGE_SHIFT
    }

    fn arm(&self) -> Result<()> {
        let s = &self.state;
        s.dirty.clear_all();
        s.degraded.store(false, Ordering::Release);
        if let Err(e) = s.whole("mprotect(heap, PROT_READ)", Protection::Read) {
            // Leave the heap usable: the collector falls back to a stop-the-world mark.
            let _ = s.whole(
                "mprotect(heap, PROT_READ|PROT_WRITE)",
                Protection::ReadWrite,
            );
            return Err(e);
        }
        Ok(())
    }

    fn harvest(&self, out: &mut DirtySet, rearm: bool) -> Result<()> {
        let s = &self.state;
        out.clear();
        // Take the record first, then re-protect: see the module docs.
        s.dirty.take(&mut out.granules);
        signal_registry::widen(s.widen.load(Ordering::Relaxed));
        if s.degraded.load(Ordering::Acquire) {
            out.all = true;
            return Ok(());
        }
        if rearm {
            let total = s.len / PAGE_SIZE;
            let mut runs = 0;
            for_each_run(&out.granules, |_, _| runs += 1);
            let reprotected = if runs * RUNS_PER_WHOLE > total {
                mprotect_errno(s.base, s.len, Protection::Read)
            } else {
                let mut result = Ok(());
                for_each_run(&out.granules, |first, count| {
                    if result.is_ok() {
                        result = s.protect_pages(first, count, Protection::Read);
                    }
                });
                result
            };
            // Whatever the reason (ENOMEM at the mapping limit, most likely), pages that
            // were taken but not re-protected would miss later writes: degrade.
            if reprotected.is_err() {
                s.degrade().map_err(|errno| {
                    Error::from_errno(
                        "mprotect(heap, PROT_READ|PROT_WRITE)",
                        Some((s.base, s.len)),
                        errno,
                    )
                    .with_hint("degrading the mprotect tracker after a failed re-protect")
                })?;
            }
        }
        // A handler may have degraded while we re-protected.
        out.all = s.degraded.load(Ordering::Acquire);
        Ok(())
    }

    fn disarm(&self) -> Result<()> {
        self.state.whole(
            "mprotect(heap, PROT_READ|PROT_WRITE)",
            Protection::ReadWrite,
        )
    }

    fn stats(&self) -> TrackerStats {
        let s = &self.state;
        TrackerStats {
            faults: s.faults.load(Ordering::Relaxed),
            degradations: s.degradations.load(Ordering::Relaxed),
            ..TrackerStats::default()
        }
    }
}

impl Drop for MprotectTracker {
    fn drop(&mut self) {
        // Writable before unregistering: a write after this needs no handler.
        let _ = self.state.whole(
            "mprotect(heap, PROT_READ|PROT_WRITE)",
            Protection::ReadWrite,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::signal_registry::testkit::*;
    use crate::sys::mem::Region;

    const PAGES: usize = 64;

    fn tracker(region: &Region) -> MprotectTracker {
        MprotectTracker::new(region.base(), region.len(), &TrackerOptions::default()).unwrap()
    }

    #[test]
    fn harvest_returns_exactly_the_written_pages_then_nothing() {
        with_timeout(|| {
            let region = Region::new(PAGES * PAGE_SIZE).unwrap();
            let base = region.base();
            let t = tracker(&region);
            t.arm().unwrap();
            for p in [9, 3, 3, 40, 63, 0] {
                write_page(base, p, p as u64);
            }
            write_from_two_threads(base, &[20, 21, 22, 50, 51], 7);
            let d = harvest(&t, true);
            assert!(!d.all);
            assert_eq!(d.granules, vec![0, 3, 9, 20, 21, 22, 40, 50, 51, 63]);
            assert_eq!(t.stats().faults, 10);
            assert_eq!(harvest(&t, true), DirtySet::default());
            // Re-armed: the same pages fault again.
            write_page(base, 21, 1);
            write_page(base, 63, 1);
            assert_eq!(harvest(&t, false).granules, vec![21, 63]);
            for (p, v) in [(0, 0), (3, 3), (9, 9), (20, 7), (21, 1), (50, 7), (63, 1)] {
                assert_eq!(read_page(base, p), v, "page {p}");
            }
            // Disarmed: writes are free and not recorded.
            t.disarm().unwrap();
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
    fn a_new_arm_forgets_the_previous_cycle() {
        with_timeout(|| {
            let region = Region::new(PAGES * PAGE_SIZE).unwrap();
            let t = tracker(&region);
            t.arm().unwrap();
            write_page(region.base(), 5, 1);
            t.disarm().unwrap();
            t.arm().unwrap();
            write_page(region.base(), 6, 1);
            assert_eq!(harvest(&t, true).granules, vec![6]);
        });
    }

    #[test]
    fn enomem_in_the_handler_degrades_to_everything_dirty_until_the_next_arm() {
        with_timeout(|| {
            let region = Region::new(PAGES * PAGE_SIZE).unwrap();
            let base = region.base();
            let t = tracker(&region);
            t.arm().unwrap();
            write_page(base, 1, 11);
            t.fail_next_mprotects(1);
            // This fault's mprotect fails: the handler makes the whole heap writable.
            write_page(base, 2, 22);
            // No fault any more: the heap is writable.
            for p in 10..20 {
                write_page(base, p, p as u64);
            }
            assert_eq!(t.stats().faults, 1);
            assert_eq!(t.stats().degradations, 1);
            let d = harvest(&t, true);
            assert!(d.all);
            // Still degraded, without re-protecting: later writes are not recorded but
            // every harvest says "everything".
            write_page(base, 30, 30);
            assert!(harvest(&t, true).all);
            assert!(harvest(&t, false).all);
            assert_eq!(t.stats().faults, 1);
            for (p, v) in [(1, 11), (2, 22), (15, 15), (30, 30)] {
                assert_eq!(read_page(base, p), v, "page {p}: a write was lost");
            }
            // The next cycle is precise again, and counted once.
            t.disarm().unwrap();
            t.arm().unwrap();
            write_page(base, 4, 4);
            let d = harvest(&t, true);
            assert!(!d.all);
            assert_eq!(d.granules, vec![4]);
            assert_eq!(t.stats().degradations, 1);
        });
    }

    #[test]
    fn enomem_while_re_protecting_degrades_the_harvest() {
        with_timeout(|| {
            let region = Region::new(PAGES * PAGE_SIZE).unwrap();
            let base = region.base();
            let t = tracker(&region);
            t.arm().unwrap();
            for p in [3, 7, 8] {
                write_page(base, p, 1);
            }
            t.fail_next_mprotects(1);
            let d = harvest(&t, true);
            assert!(d.all, "a failed re-protect must report everything");
            assert_eq!(t.stats().degradations, 1);
            // The heap is writable: no fault, no lost write.
            write_page(base, 7, 77);
            assert_eq!(read_page(base, 7), 77);
            assert_eq!(t.stats().faults, 3);
            assert!(harvest(&t, false).all);
        });
    }

    #[test]
    fn protection_is_visible_in_proc_self_maps() {
        // The second channel for mprotect: the VMA list. Arming makes the heap one
        // read-only VMA; a written page becomes a writable VMA in the middle of it.
        with_timeout(|| {
            let region = Region::new(PAGES * PAGE_SIZE).unwrap();
            let base = region.base();
            let t = tracker(&region);
            let perms_at = |addr: usize| -> String {
                let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
                maps.lines()
                    .find_map(|l| {
                        let (range, rest) = l.split_once(' ')?;
                        let (s, e) = range.split_once('-')?;
                        let (s, e) = (
                            usize::from_str_radix(s, 16).ok()?,
                            usize::from_str_radix(e, 16).ok()?,
                        );
                        (s <= addr && addr < e).then(|| rest[..4].to_string())
                    })
                    .unwrap()
            };
            t.arm().unwrap();
            assert_eq!(perms_at(base + 10 * PAGE_SIZE), "r--p");
            write_page(base, 10, 1);
            assert_eq!(perms_at(base + 10 * PAGE_SIZE), "rw-p");
            assert_eq!(perms_at(base + 11 * PAGE_SIZE), "r--p");
            harvest(&t, true);
            assert_eq!(perms_at(base + 10 * PAGE_SIZE), "r--p");
            t.disarm().unwrap();
            assert_eq!(perms_at(base + 10 * PAGE_SIZE), "rw-p");
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
    fn a_write_outside_the_heap_kills_a_forked_child_with_sigsegv() {
        let region = Region::new(PAGES * PAGE_SIZE).unwrap();
        let t = tracker(&region);
        t.arm().unwrap();
        let other = Region::new(PAGE_SIZE).unwrap();
        other
            .protect(other.base(), PAGE_SIZE, Protection::Read)
            .unwrap();
        let status = fork_and_wait(|| {
            // The tracker still serves its own heap in the child...
            write_page(region.base(), 3, 1);
            // ...but not this page.
            write_page(other.base(), 0, 1);
        });
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
            "the child should die of SIGSEGV, but it {}",
            describe(status)
        );
        t.disarm().unwrap();
    }
}
