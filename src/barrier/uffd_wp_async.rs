//! userfaultfd asynchronous write-protect (`UFFD_FEATURE_WP_ASYNC`, Linux 6.7+), harvested
//! with `PAGEMAP_SCAN`: the kernel resolves the write faults itself, so there is no
//! message, no handler and no thread.
//!
//! Mechanism: the heap is registered once with `UFFDIO_REGISTER_MODE_WP` on a userfaultfd
//! opened with `WP_ASYNC` and `WP_UNPOPULATED`. A protected page's PTE carries the uffd-wp
//! bit (pagemap bit 57); the first write to it takes a minor fault in which the kernel
//! clears the bit and lets the write through (~0.8 µs), and from then on the page counts as
//! *written* (`PAGE_IS_WRITTEN`). A [`harvest`](DirtyTracker::harvest) is one
//! `PAGEMAP_SCAN` over the heap with `PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC` and
//! `category_mask = PAGE_IS_WRITTEN`: it returns the written pages as runs and
//! write-protects exactly those pages in the same walk.
//!
//! Order (the kernel-resolved rule of the ordering section of [`crate::barrier`]): reading
//! a page's written state and re-protecting it happen atomically per page, under the page
//! table lock, in the kernel. IF a write lands before the scan reaches its page THEN the
//! scan returns the page (and the caller's rescan, which comes after, sees the write); IF
//! after THEN the page is protected again, so the write marks it written for the next
//! harvest. Because that is safe, every harvest re-protects, also without `rearm` (at
//! remark): it is harmless and leaves the heap protected for the next cycle.
//!
//! Between cycles, by default, the heap is writable as with every other tracker:
//! [`disarm`](DirtyTracker::disarm) unprotects the whole heap and every
//! [`arm`](DirtyTracker::arm) protects all of it again (~70 ns per heap page). The
//! `keep-protected` variant ([`UffdWpAsyncOptions::keep_protected`]) makes disarm do
//! nothing: the heap stays protected, a write between cycles (by a mutator, or by the
//! concurrent sweep zeroing dead cells) costs one kernel-resolved fault on the first write
//! to each page, and the next arm is a scan whose result is thrown away (it only
//! re-protects the pages written since).
//!
//! Young pages ([`DirtyTracker::arm_with_young`]): not kept. The other page trackers
//! keep the long runs of pages allocated into since the last arm writable and recorded
//! until a harvest finds a marked object on them; done here (the scan skipping the kept
//! runs), it ran GCBench classic at 64 MiB 0.95× [0.93–0.97] as fast but the study's
//! GCBench (64 MiB live in 140 MiB) 1.07× [1.02–1.13] and 1.10× [1.03–1.18] as slow, in
//! two series of six rounds against the build before (2026-12-07), with 6–8 more cycles per run:
//! a pre-clean rescans whole every kept page that came to hold a marked object, and
//! here twice as many pages as under the others, since a kept run that such a page cut
//! below 256 pages had to be scanned, and so reported, whole.
//!
//! The frontier ([`DirtyTracker::hand_out`]): nothing to do. A page handed to the
//! allocator while protected stays protected, and the first write to it is the
//! kernel-resolved fault that records it (~0.8 µs, no message, no thread). Unprotecting
//! it ahead, as the other page trackers do, would record it too ("written" means "not
//! write-protected"), but a `UFFDIO_WRITEPROTECT` that makes pages writable flushes the
//! TLB of every CPU the process runs on, and the mutator waits for that interrupt: tens
//! of microseconds on the 2-vCPU VM it was measured on, more than the faults it spares
//! (GCBench classic at 64 MiB, five alternating runs: 290–315 ms with the hand-out, 264–
//! 278 ms without).
//!
//! Costs (`papers/reference/c-probe-2026-11-29.md`): 0 per store; per dirtied page ~0.8 µs
//! for the kernel-resolved fault plus ~40 ns in the scan that re-protects it; per cycle ~1
//! ns per heap page for a scan over clean pages.
//!
//! Except while a protection change is in flight: a first write the kernel resolves while
//! any thread of the process is inside a protection change (this tracker's own arm,
//! harvest or disarm on the collector thread, an `mprotect`) also flushes that page's
//! translation on every other CPU running the process, and the writer waits for the
//! interrupt. `do_wp_page` checks `mm_tlb_flush_pending` after clearing the uffd-wp bit
//! (a check added in Linux 5.12 against a memory corruption), and a served or signalled
//! fault returns before that check, so only this tracker pays it. A whole-heap arm or
//! disarm takes milliseconds (~70 ns per page), so a mutator that writes through them
//! pays a shootdown per first write: in a barrier-only run of the LRU cache with a 2 GiB
//! heap, mutator and collector pinned to two CPUs, the collector's CPU received 422,155
//! shootdowns from the mutator's first writes, and a `perf` profile put a quarter of the
//! mutator's samples in sending them. The study's micro prices such a write
//! (`pages-spp1-shot-at`: the first write while another thread changes protections).
//!
//! Failure modes: a written page is reported even if the kernel wrote it (`read(2)` into
//! the heap): kernel writes are recorded, not refused. "Written" means "not
//! write-protected", so a page that lost its protection any other way is reported too: the
//! tracker over-approximates rather than loses writes (a page zapped with `MADV_DONTNEED`
//! loses its uffd-wp bit, and the next scan reports it as written). IF a scan fails THEN
//! that harvest reports "everything dirty" (counted once per cycle in
//! [`TrackerStats::degradations`], with the scan's errno as the cause) and the whole heap
//! is re-protected with `UFFDIO_WRITEPROTECT`. Test knob: `TestKnobs::fail_next` fails
//! the next scans with `EIO`.
//!
//! Of what the page trackers share (`page_tracker/`) this tracker uses the in-use prefix
//! (the same operations for arm, harvest and disarm), the counters and the
//! injection point (`TestKnobs::injected`) only: its record is the
//! page table itself, read and re-protected by the kernel.
//!
//! Never: write-protect pages with `UFFDIO_WRITEPROTECT` while armed (except the whole heap
//! after a failed scan, whose harvest reports everything): that would clear their written
//! state without reporting it.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::counters::Counters;
use super::mechanism::{self, Edge, Granule, Mechanism, SecondChannel, ServedBy};
use super::page_tracker::{InUsePrefix, open_userfaultfd};
use super::{
    BarrierConfig, BarrierKind, Built, Call, Degradation, DirtySet, DirtyTracker, MechanismOptions,
    Step, TrackerStats, built,
};
use crate::error::{Error, Result};
use crate::sys::PAGE_SHIFT;
use crate::sys::pagemap::{Pagemap, ScanRequest};
use crate::sys::uffd::{Features, RegisterMode, Uffd, WpMode};

/// The description of `uffd-wp-async`. Its options are [`UffdWpAsyncOptions`]; its
/// variants disarm (the default) or keep the heap protected between cycles.
pub(crate) const MECHANISM: Mechanism = Mechanism {
    kind: BarrierKind::UffdWpAsync,
    name: "uffd-wp-async",
    summary: "userfaultfd async write-protect; harvested with PAGEMAP_SCAN",
    granule: Granule::Page,
    served_by: ServedBy::Kernel,
    kernel: "UFFD_FEATURE_WP_ASYNC and the PAGEMAP_SCAN ioctl (6.7+)",
    second_channel: SecondChannel::PagemapWpBit,
    edges: &[
        (
            Edge::KernelWrite,
            "the kernel resolves it: succeeds, recorded (`tests/barrier/edges.rs`)",
        ),
        (Edge::FaultOutsideHeap, mechanism::NO_HANDLER),
        (Edge::MaxMapCount, mechanism::NEVER_SPLITS),
        (Edge::UserModeOnly, "works"),
        (Edge::DontNeed, "page reported written"),
        (Edge::HugePages, mechanism::HUGE_PAGES_CORRECT),
        (Edge::Fork, mechanism::FORK_CHILD_WRITES),
    ],
    mapping_lock: super::mechanism::MappingLock::Read,
    variants: &[
        (
            "disarm",
            BarrierConfig::UffdWpAsync(UffdWpAsyncOptions::DEFAULT),
        ),
        (
            "keep-protected",
            BarrierConfig::UffdWpAsync(UffdWpAsyncOptions {
                keep_protected: true,
                ..UffdWpAsyncOptions::DEFAULT
            }),
        ),
    ],
};

/// Its tracker.
pub(super) fn build(base: usize, len: usize, options: &UffdWpAsyncOptions) -> Built {
    built(UffdWpAsyncTracker::new(base, len, options))
}

/// The options of a [`UffdWpAsyncTracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UffdWpAsyncOptions {
    /// Keep the heap protected between cycles (see the module docs).
    pub keep_protected: bool,
    /// Open userfaultfd with `UFFD_USER_MODE_ONLY` (otherwise full mode, falling back).
    pub user_mode_only: bool,
}

impl MechanismOptions for UffdWpAsyncOptions {
    const DEFAULT: Self = UffdWpAsyncOptions {
        keep_protected: false,
        user_mode_only: false,
    };
    fn user_mode_only(&self) -> bool {
        self.user_mode_only
    }
    fn set_user_mode_only(&mut self, yes: bool) {
        self.user_mode_only = yes;
    }
}

/// Regions returned per `PAGEMAP_SCAN` call; a harvest with more runs makes more calls.
pub const SCAN_VEC_LEN: usize = 1024;

/// The `uffd-wp-async` tracker over one heap.
#[derive(Debug)]
pub struct UffdWpAsyncTracker {
    uffd: Uffd,
    base: usize,
    len: usize,
    keep_protected: bool,
    /// `/proc/self/pagemap` and the scan's output vector, reused by every harvest.
    pagemap: Mutex<Pagemap>,
    /// The used prefix ([`DirtyTracker::in_use`]) and the protected one (and scanned):
    /// arm and every harvest extend it to the used one, reporting the pages they add,
    /// which were never protected and may have been written unseen. Nothing is protected
    /// before the first arm and after an unprotect.
    prefix: InUsePrefix,
    scan_eagain: AtomicU64,
    counters: Counters,
}

impl UffdWpAsyncTracker {
    /// Registers the heap `[base, base + len)` (page aligned, mapped by the caller and
    /// outliving the tracker) for asynchronous write-protect. Falls back to
    /// `UFFD_USER_MODE_ONLY` when full mode is refused: [`TrackerStats::uffd`] reports it.
    pub fn new(
        base: usize,
        len: usize,
        options: &UffdWpAsyncOptions,
    ) -> Result<UffdWpAsyncTracker> {
        let (uffd, mode) = open_userfaultfd(
            Features::PAGEFAULT_FLAG_WP | Features::WP_ASYNC | Features::WP_UNPOPULATED,
            options.user_mode_only,
            true,
        )?;
        uffd.register(base, len, RegisterMode::WP)?;
        Ok(UffdWpAsyncTracker {
            uffd,
            base,
            len,
            keep_protected: options.keep_protected,
            pagemap: Mutex::new(Pagemap::open(SCAN_VEC_LEN)?),
            prefix: InUsePrefix::new(len),
            scan_eagain: AtomicU64::new(0),
            counters: Counters::new(Some(mode)),
        })
    }

    /// One `PAGEMAP_SCAN` harvest over the protected prefix: appends the written pages'
    /// indices to `pages` (when given) and re-protects them. Returns how many there were.
    fn scan(&self, mut pages: Option<&mut Vec<usize>>) -> Result<usize> {
        let extent = self.prefix.protected();
        if let Err(errno) = self.counters.knobs().injected(libc::EIO) {
            return Err(Error::from_errno(
                "PAGEMAP_SCAN",
                Some((self.base, extent)),
                errno,
            ));
        }
        let mut pm = self.pagemap.lock();
        let mut found = 0;
        let req = ScanRequest::harvest_written(self.base, self.base + extent);
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

    /// Protects the used prefix; a failure degrades the cycle at `step`. A heap that has
    /// used no page yet has nothing to protect (and the ioctl refuses a zero length).
    fn protect_all(&self, step: Step) -> Result<()> {
        let extent = self.prefix.protect_used();
        if extent == 0 {
            return Ok(());
        }
        self.uffd
            .protect(self.base, extent)
            .inspect_err(|e| self.degraded(step, Call::WriteProtect, e))
    }

    /// Extends the protected prefix to the used one: appends the pages it adds to
    /// `pages` (they were never protected, so they count as written) and protects them.
    fn protect_grown(&self, pages: Option<&mut Vec<usize>>) -> Result<()> {
        let Some(grown) = self.prefix.take_grown() else {
            return Ok(());
        };
        if let Some(v) = pages {
            v.extend(grown.clone());
        }
        let start = self.base + (grown.start << PAGE_SHIFT);
        self.uffd.protect(start, grown.len() << PAGE_SHIFT)
    }

    /// A step of the disarm: `pages` writable again, a failure counted as a degradation.
    fn unprotect_pages(&self, pages: Range<usize>) -> Result<()> {
        if pages.is_empty() {
            return Ok(());
        }
        let start = self.base + (pages.start << PAGE_SHIFT);
        self.uffd
            .unprotect(start, pages.len() << PAGE_SHIFT, WpMode::empty())
            .inspect_err(|e| self.degraded(Step::Disarm, Call::WriteProtect, e))
    }

    /// Counts the cycle as degraded by `e`, a failure of `call` over the whole heap.
    fn degraded(&self, step: Step, call: Call, e: &Error) {
        self.counters.degraded(Degradation {
            step,
            call,
            errno: e.errno().unwrap_or(0),
            range: Some((self.base, self.len)),
        });
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
        self.counters.begin_cycle();
        // Still protected since the last cycle: re-protecting what was written since (and
        // the pages that came into use) is all it takes to start recording afresh; the
        // pages are not needed.
        if self.keep_protected
            && self.prefix.protected() > 0
            && self.scan(None).is_ok()
            && self.protect_grown(None).is_ok()
        {
            return Ok(());
        }
        self.protect_all(Step::Arm)
    }

    fn harvest(&self, out: &mut DirtySet, _rearm: bool) -> Result<()> {
        out.clear();
        if self.prefix.protected() == 0 {
            // Disarmed (or never armed): nothing is recorded.
            return Ok(());
        }
        match self
            .scan(Some(&mut out.granules))
            .and_then(|_| self.protect_grown(Some(&mut out.granules)))
        {
            Ok(()) => {
                // The kernel returns runs in address order and resumes a full vector
                // after the last run, so this holds; checked because the contract
                // (sorted, unique) is cheap to keep whatever the kernel does.
                if !out.granules.windows(2).all(|w| w[0] < w[1]) {
                    out.granules.sort_unstable();
                    out.granules.dedup();
                }
                self.counters.recorded(out.granules.len());
                Ok(())
            }
            Err(e) => {
                // Some pages may have been re-protected without being reported.
                out.all = true;
                self.degraded(Step::Harvest, Call::PagemapScan, &e);
                self.protect_all(Step::Harvest)
            }
        }
    }

    fn disarm_ahead(&self, bytes: usize) -> Result<()> {
        if self.keep_protected {
            return Ok(());
        }
        self.unprotect_pages(self.prefix.take_unprotect(bytes))
    }

    fn disarm(&self) -> Result<()> {
        if self.keep_protected {
            return Ok(());
        }
        let rest = self.prefix.take_rest();
        self.prefix.forget_protected();
        self.unprotect_pages(rest)
    }

    fn in_use(&self, bytes: usize) {
        self.prefix.report(bytes);
    }

    fn stats(&self) -> TrackerStats {
        TrackerStats {
            eagain_retries: self.uffd.eagain_retries() + self.scan_eagain.load(Ordering::Relaxed),
            stall_method: super::STALL_KERNEL,
            ..self.counters.stats()
        }
    }

    #[cfg(feature = "lab-internals")]
    fn test_knobs(&self) -> Option<&super::TestKnobs> {
        Some(self.counters.knobs())
    }
}

impl Drop for UffdWpAsyncTracker {
    fn drop(&mut self) {
        // The heap outlives the tracker: leave it as it was found, unprotected.
        let _ = self.uffd.unprotect(self.base, self.len, WpMode::empty());
    }
}
