//! The dirty record of a page tracker and the protocol it follows: what `uffd-wp`,
//! `uffd-wp-sigbus` and `mprotect` keep in common, written once, so that each
//! mechanism's file holds only its mechanism (how it protects a range, unprotects it,
//! and serves a fault).
//!
//! [`PageRecord`] is the exact dirty bitmap (one bit per heap page, outside the heap) and
//! the "everything is dirty" flag, with the cycle around them:
//! [`arm`](PageRecord::arm), [`harvest`](PageRecord::harvest),
//! [`disarm_ahead`](PageRecord::disarm_ahead) and [`disarm`](PageRecord::disarm),
//! [`hand_out`](PageRecord::hand_out). A harvest *takes
//! the record, then re-protects* what it took, and the caller rescans after: the reverse
//! order loses a write that lands in between. Re-protecting goes span by span (runs close
//! together joined into one call, the clean pages between protected again), or over the
//! whole prefix in one call when the calls would cost more ([`CALL_PAGES`]). Only the
//! prefix the heap has used is protected ([`InUsePrefix`]).
//!
//! *Open pages*: the allocation frontier costs few protection changes. Every change that
//! makes a page writable flushes its TLB entry on every CPU the process runs on, which
//! on a VM is an inter-processor interrupt the asking thread waits for (tens of
//! microseconds on the 2-vCPU guest this was measured on, while the collector thread
//! runs on the other vCPU). So a hand-out also *opens* the free pages after it, which the
//! pool hands out next, and no other hand-out takes before this one returns: they become
//! writable in the same call but are not recorded, since nobody writes a free page;
//! handing out an open page later only records it. Arm,
//! told the allocator's free pages, opens their long runs instead of protecting them. The
//! invariant: IF a page is writable while armed THEN it is recorded, or it is open (free,
//! so unwritten until a hand-out records it). A protection change of the whole prefix
//! closes every open page; a stale open bit can only cost a fault or a redundant call,
//! never a lost write, because a hand-out always records.
//!
//! *Kept pages*: most pages an arm would protect hold only garbage by then (GCBench at 64
//! MiB: ~11,000 of the 12,500–14,500 pages in use, allocated into since the last
//! cycle). Arm, told the runs allocated into since the last arm, *keeps* their long parts
//! writable and recorded instead, as a hand-out leaves a page; each harvest told the marks
//! ([`PageRecord::harvest`] with `marked`) hands over and re-protects only the kept pages
//! that now hold a marked object, and leaves the others recorded and out of the set; disarm
//! skips the long runs still kept. The rule: IF a kept page holds no marked object at a
//! harvest THEN no object on it has been scanned, so no write to it can have hidden a
//! pointer from the mark; and since it stays recorded, every later harvest (remark's
//! too) asks again, so an object marked on it later is rescanned after any write it got
//! before remark. A kept page is writable and recorded, so the invariant above holds.
//!
//! Degradation: IF a protection change fails THEN the whole range is made writable, and
//! every harvest reports "everything dirty" until a whole-range re-protect succeeds (or,
//! for a [`PageProtection::STICKY`] mechanism, until the next arm). The cycle counts once
//! in [`TrackerStats::degradations`], and its first failure is kept, with the step, the
//! call, the errno and the range, in [`TrackerStats::last_degradation`].
//! [`PageRecord::degrade`] follows the writer's order for the whole range (make
//! everything writable, *then* raise the flag), which is safe whoever serves faults: a
//! flag raised first could be taken by a harvest before the unprotect lands, and the
//! pages it then leaves writable would be reported by nobody.
//!
//! Fault injection: [`TestKnobs::fail_next`] fails the next protection changes of a run of
//! pages (a fault's unprotect, a harvest's run-by-run re-protect, a hand-out), never a
//! change of the whole prefix, which is what a degraded tracker falls back on; the failure
//! has the mechanism's [`PageProtection::INJECTED`] errno. Page trackers inject it here
//! only ([`PageRecord::protect_run`], [`PageRecord::unprotect_run`]), through the one
//! injection point every tracker uses, [`TestKnobs::injected`].
//!
//! Never: allocate, lock or panic in what a signal handler calls ([`PageRecord::record`],
//! [`PageRecord::unprotect_run`], [`PageRecord::degrade`]).

use crate::sys::RawResult;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use super::prefix::InUsePrefix;
use super::protection::PageProtection;
use super::stall_log::StallLog;
use super::userfaultfd::UffdMode;
use crate::barrier::counters::Counters;
use crate::barrier::{
    Call, Degradation, DirtySet, FreeRuns, Marked, Step, TestKnobs, TrackerStats,
};
use crate::bitmap::Bitmap;
use crate::error::{Error, Result};
use crate::sys::{PAGE_SHIFT, PAGE_SIZE};

mod kept;
mod runs;
pub(crate) use runs::for_each_run;
use runs::{between, marked_runs, spans};

/// The shortest run of free pages that arm leaves open. Splitting arm's protect around a
/// free run costs a call more at arm and at disarm, each flushing the TLB of the CPU the
/// mutator runs on (an interrupt it takes, and the caller waits for: 10–50 µs on the
/// 2-vCPU guest this was measured on); a page left open saves arm's and disarm's
/// ~70–110 ns and its share of a hand-out call (a call per up to 64 pages, with its own
/// flush), about 0.5 µs. So only a run of this many pages (1 MiB) pays for its calls:
/// with every free run opened, the LRU cache and binary trees, whose free pages lie
/// scattered, ran 4–9% slower under the page trackers.
const MIN_OPEN_RUN: usize = 256;

/// What one protection-change call costs, in pages of a range protect: a harvest joins
/// two dirty runs this close into one call (protecting the clean pages between them
/// again is harmless: they are protected already, or open, and then closed), and
/// re-protects the whole prefix in one call when its calls would cost more than that.
/// A range protect costs ~70 ns per page (`papers/reference/c-probe-2026-11-29.md`); a
/// call with the mutator running on the other CPU costs the TLB flush it waits for
/// there: on the 2-vCPU guest this was measured on, the LRU cache's harvests under
/// `mprotect` re-protected ~2,500 scattered pages per cycle, a call each, in 42–50 ms,
/// ~16 µs per call, where the probe's lone thread takes ~1 µs. 128 pages is ~9 µs.
const CALL_PAGES: usize = 128;

/// What arm is told about the heap: the allocator's free runs, and the runs of pages
/// allocated into since the last arm (address ranges), either maybe empty.
#[derive(Clone, Copy, Default)]
pub(crate) struct Arming<'a> {
    pub(crate) free: Option<FreeRuns<'a>>,
    pub(crate) young: &'a [Range<usize>],
}

/// The dirty record of a page tracker over the heap `[base, base + len)`: which pages
/// were written since the last arm or harvest, or that every page must count as written.
#[derive(Debug)]
pub(crate) struct PageRecord {
    base: usize,
    len: usize,
    dirty: Bitmap,
    /// Pages handed to the allocator since arm ([`PageRecord::hand_out`]): a fault on one
    /// of them is a write to an object allocated during the cycle, counted apart.
    handed: Bitmap,
    /// Free pages a hand-out made writable ahead of the allocator, unrecorded (see the
    /// module docs).
    open: Bitmap,
    /// Young pages arm left writable and recorded, which no protection change has
    /// covered since (see the module docs): writable, so disarm skips their long runs.
    kept: Bitmap,
    /// Between arm and disarm: pages handed out are made writable and recorded.
    active: AtomicBool,
    /// Pages may be writable without a record (a protection change failed): harvests
    /// report everything until a whole-range re-protect succeeds or the next arm.
    everything: AtomicBool,
    /// The used prefix, and the prefix protected since arm: arm protects the used prefix,
    /// and a harvest extends it to the latest used one, reporting the pages it adds.
    prefix: InUsePrefix,
    counters: Counters,
    /// The fault stalls the mechanism measured.
    stalls: StallLog,
}

impl PageRecord {
    /// A clean record for `[base, base + len)` (whole pages) on the userfaultfd `mode`;
    /// fails only if its bitmap's mapping cannot be reserved.
    pub(crate) fn new(base: usize, len: usize, mode: Option<UffdMode>) -> Result<PageRecord> {
        Ok(PageRecord {
            base,
            len,
            dirty: Bitmap::new(len / PAGE_SIZE)?,
            handed: Bitmap::new(len / PAGE_SIZE)?,
            open: Bitmap::new(len / PAGE_SIZE)?,
            kept: Bitmap::new(len / PAGE_SIZE)?,
            active: AtomicBool::new(false),
            everything: AtomicBool::new(false),
            prefix: InUsePrefix::new(len),
            counters: Counters::new(mode),
            stalls: StallLog::new()?,
        })
    }

    /// The heap's first address.
    pub(crate) fn base(&self) -> usize {
        self.base
    }

    /// The heap's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The page index of a heap address (wrapping: the caller checked the range).
    pub(crate) fn page_of(&self, addr: usize) -> usize {
        addr.wrapping_sub(self.base) >> PAGE_SHIFT
    }

    /// The address of page `page`.
    pub(crate) fn addr_of(&self, page: usize) -> usize {
        self.base + (page << PAGE_SHIFT)
    }

    /// The counters.
    #[cfg(test)]
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The test knobs.
    pub(crate) fn knobs(&self) -> &TestKnobs {
        self.counters.knobs()
    }

    /// The fault stalls measured so far.
    pub(crate) fn stalls(&self) -> &StallLog {
        &self.stalls
    }

    /// The counters kept here and the stall log's, for a mechanism whose stalls are
    /// measured as `stall_method` says; the mechanism adds its own counters.
    pub(crate) fn stats(&self, stall_method: &'static str) -> TrackerStats {
        TrackerStats {
            stall_method,
            stalls_dropped: self.stalls.dropped(),
            ..self.counters.stats()
        }
    }

    /// Records one served fault on `page`. Async-signal-safe; never panics.
    pub(crate) fn record(&self, page: usize) {
        if self.dirty.try_set(page) {
            self.counters.served(1);
            if self.handed.get_checked(page) {
                self.counters.frontier_fault();
            }
        }
    }

    /// Write-protects a run of pages, failing instead as [`TestKnobs::fail_next`] asks.
    /// Async-signal-safe.
    pub(crate) fn protect_run<P: PageProtection>(
        &self,
        p: &P,
        start: usize,
        len: usize,
    ) -> RawResult {
        self.injected::<P>()?;
        p.protect(start, len)
    }

    /// Makes a run of pages writable, failing instead as [`TestKnobs::fail_next`] asks.
    /// Async-signal-safe.
    pub(crate) fn unprotect_run<P: PageProtection>(
        &self,
        p: &P,
        start: usize,
        len: usize,
    ) -> RawResult {
        self.injected::<P>()?;
        p.unprotect(start, len)
    }

    /// The injected failure, if this change is one to fail. Async-signal-safe.
    fn injected<P: PageProtection>(&self) -> RawResult {
        self.knobs().injected(P::INJECTED)
    }

    /// The allocator hands `[start, start + len)` to a mutator, and will hand out the
    /// free pages of `[start + len, start + len + ahead)` next
    /// ([`DirtyTracker::hand_out_and_open`](crate::barrier::DirtyTracker::hand_out_and_open)).
    /// While armed, the pages of both that lie in the protected prefix and are neither
    /// recorded nor open are made writable, one call per run of such pages (usually one
    /// call for both), *then* the handed-out ones are recorded and the others opened. A
    /// handed-out page that was open is recorded with no call, and opens nothing ahead
    /// (else taking the pages of an open run one by one would open one more page each
    /// time, a call per page). Pages beyond the prefix were never protected, and the next
    /// harvest reports them anyway.
    ///
    /// Why "unprotect, then record" is safe here whoever serves faults: no mutator writes
    /// the range before this returns. IF a harvest takes the record between the two
    /// steps THEN it does not have this page, and re-protects it only if it re-protects
    /// the whole prefix, after which the page is recorded anyway (and a write faults and
    /// is recorded again); the next harvest reports it. The reverse order would let a
    /// harvest take the record and re-protect nothing before the unprotect lands, leaving
    /// the page writable and unrecorded. A page already recorded is skipped: it is either
    /// still writable, or a harvest has re-protected it and a write faults. An open page
    /// found closed by the time it is recorded was closed by a whole-prefix protect: a
    /// write faults.
    pub(crate) fn hand_out<P: PageProtection>(
        &self,
        p: &P,
        start: usize,
        len: usize,
        ahead: usize,
    ) {
        if len == 0 || !self.active.load(Ordering::Acquire) {
            return;
        }
        let forget = self.knobs().forgets_hand_outs();
        let first = self.page_of(start);
        let handed_end = first + len.div_ceil(PAGE_SIZE);
        let skip = |q: usize| self.dirty.get(q) || self.open.get(q);
        // Open ahead only along with a change the hand-out needs anyway: a page taken
        // from an open run would otherwise open one more page, one call per page.
        let protected = (self.prefix.protected() >> PAGE_SHIFT).min(handed_end);
        let ahead = if (first..protected).all(skip) {
            0
        } else {
            ahead
        };
        let calls = self
            .prefix
            .hand_out_runs(self.base, skip, start, len + ahead, |from, end| {
                let range = (self.addr_of(from), (end - from) * PAGE_SIZE);
                if let Err(errno) = self.unprotect_run(p, range.0, range.1) {
                    // Degraded: everything writable, every harvest reports everything.
                    let _ = self.degrade(p, Step::HandOut, errno, range);
                    return false;
                }
                for q in from..end {
                    if q >= handed_end {
                        self.open.set(q);
                    } else if !forget {
                        self.dirty.set(q);
                    }
                }
                true
            });
        for q in first..handed_end {
            self.handed.set(q);
            if self.open.get(q) {
                if !forget {
                    self.dirty.set(q);
                }
                self.open.clear(q);
            }
        }
        self.counters.handed_out(handed_end - first, calls);
    }

    /// The heap has used only its first `bytes` so far (a high-water mark: it never
    /// shrinks); see [`InUsePrefix`].
    pub(crate) fn in_use(&self, bytes: usize) {
        self.prefix.report(bytes);
    }

    /// Starts a cycle: clears the record, then protects the heap's used prefix, except,
    /// given free runs ([`DirtyTracker::arm_with_free`]), the runs of at least
    /// [`MIN_OPEN_RUN`] pages the allocator holds free, which it opens instead: writable
    /// and unrecorded, so that handing one out records it with no protection change (see
    /// the module docs); and except, given young runs
    /// ([`DirtyTracker::arm_with_young`]), their parts of at least [`MIN_OPEN_RUN`] pages
    /// that are not open, which it *keeps*: writable and recorded, as a hand-out leaves a
    /// page, until a harvest finds a marked object on them. The free pages are opened
    /// while the allocator's lock is held, so that a page handed out from then on finds
    /// its open bit; one handed out before is taken, hence not listed, and is protected
    /// and then reopened with the others the allocator handed out meanwhile. IF a protect
    /// fails THEN the heap is left writable, the cycle counts as degraded and the error
    /// is returned (the collector then marks with the world stopped).
    ///
    /// [`DirtyTracker::arm_with_free`]: crate::barrier::DirtyTracker::arm_with_free
    /// [`DirtyTracker::arm_with_young`]: crate::barrier::DirtyTracker::arm_with_young
    pub(crate) fn arm<P: PageProtection>(&self, p: &P, with: Arming<'_>) -> Result<()> {
        self.dirty.clear_all();
        self.handed.clear_all();
        self.open.clear_all();
        self.kept.clear_all();
        self.everything.store(false, Ordering::Release);
        self.counters.begin_cycle();
        let extent = self.prefix.protect_used();
        let pages = extent / PAGE_SIZE;
        // Before the protect: a hand-out from now on records its pages (one that lands
        // before the protect leaves its page protected and recorded, which is safe).
        self.active.store(true, Ordering::Release);
        let mut opened = Vec::new();
        if let Some(free) = with.free {
            free(&mut |start, bytes| {
                let first = self.page_of(start);
                let end = (first + bytes / PAGE_SIZE).min(pages);
                if end >= first + MIN_OPEN_RUN {
                    // A word at a time: the allocator waits for its lock meanwhile.
                    self.open.set_strided(first, end - first, 1);
                    opened.push(first..end);
                }
            });
        }
        // Every page is writable before the protect (the last disarm left it so), and a
        // kept page is recorded before it: the invariant holds throughout.
        let kept = self.keep_young(with.young, pages);
        let mut skipped: Vec<Range<usize>> = opened.iter().chain(&kept).cloned().collect();
        skipped.sort_unstable_by_key(|r| r.start);
        // At most one run in use between two skipped runs of MIN_OPEN_RUN pages: few calls.
        let closed = between(&skipped, 0..pages);
        self.protect_runs(p, &closed)?;
        self.counters
            .armed_open(opened.iter().map(|r| r.len()).sum::<usize>());
        self.counters
            .armed_kept(kept.iter().map(|r| r.len()).sum::<usize>());
        for run in closed {
            self.reopen(p, run);
        }
        Ok(())
    }

    /// Arm's protect of `runs` of pages; a failure degrades the cycle.
    fn protect_runs<P: PageProtection>(&self, p: &P, runs: &[Range<usize>]) -> Result<()> {
        for run in runs {
            let range = (self.addr_of(run.start), run.len() * PAGE_SIZE);
            p.protect(range.0, range.1).map_err(|errno| {
                let _ = self.degrade(p, Step::Arm, errno, range);
                self.whole_range_error(P::CALL, errno, "protecting the heap at arm")
            })?;
        }
        Ok(())
    }

    /// After arm's protect of `run`: its pages handed out or opened while the protect ran
    /// (the allocator does not wait for it) were protected again by it; they are made
    /// writable again, one call per run, so that the mutator filling them takes no fault.
    /// They stay recorded, or open (free), so the module's invariant holds; a failure
    /// degrades the cycle like any other protection change.
    fn reopen<P: PageProtection>(&self, p: &P, run: Range<usize>) {
        let word = |b: &Bitmap, w: usize| b.word(w).load(Ordering::Acquire);
        let words = |w: usize| word(&self.dirty, w) | word(&self.open, w);
        let marked = |q: usize| self.dirty.get(q) || self.open.get(q);
        for taken in marked_runs(run, words, marked) {
            let range = (self.addr_of(taken.start), taken.len() * PAGE_SIZE);
            if let Err(errno) = self.unprotect_run(p, range.0, range.1) {
                let _ = self.degrade(p, Step::Arm, errno, range);
                return;
            }
        }
    }

    /// Moves the record into `out` and, with `rearm`, re-protects what it took, in that
    /// order: the take clears the record first, so that a write after the re-protect
    /// faults and is recorded again, and one before it is seen by the caller's rescan.
    /// Fails only if even making the heap writable failed after a failed re-protect.
    pub(crate) fn harvest<P: PageProtection>(
        &self,
        p: &P,
        out: &mut DirtySet,
        rearm: bool,
        marked: Option<Marked<'_>>,
    ) -> Result<()> {
        out.clear();
        match marked.filter(|_| !self.everything.load(Ordering::Acquire)) {
            Some(marked) => {
                self.release_marked(marked);
                self.dirty.take_except(&self.kept, &mut out.granules);
            }
            None => self.dirty.take(&mut out.granules),
        }
        // The pages the heap started using since the prefix was protected, after every
        // recorded page (which all lie below the old extent): the re-protect below
        // covers them.
        out.granules
            .extend(self.prefix.take_grown().unwrap_or_default());
        out.all = if P::STICKY {
            self.everything.load(Ordering::Acquire)
        } else {
            self.everything.swap(false, Ordering::AcqRel)
        };
        self.knobs().widen();
        let result = if !rearm || (P::STICKY && out.all) {
            // Nothing re-protected: pages still writable without a record stay reported.
            if out.all && !P::STICKY {
                self.everything.store(true, Ordering::Release);
            }
            Ok(())
        } else {
            match self.reprotect(p, out) {
                Ok(()) => Ok(()),
                Err((errno, range)) => {
                    // Pages taken but left writable would miss later writes.
                    out.all = true;
                    self.degrade(p, Step::Harvest, errno, range).map_err(|e| {
                        self.whole_range_error(P::CALL, e, "degrading after a failed re-protect")
                    })
                }
            }
        };
        self.counters.recorded(out.granules.len());
        result
    }

    /// A step of the disarm, ahead of the sweep
    /// ([`DirtyTracker::disarm_ahead`](crate::barrier::DirtyTracker::disarm_ahead)): the
    /// protected pages below `bytes` that no step took yet are made writable, except the
    /// runs of at least [`MIN_OPEN_RUN`] open pages, which are writable already. Recording
    /// goes on (a hand-out still unprotects and records the pages above), so that a
    /// mutator handed a page the steps have not reached takes no fault. A failure is
    /// counted as a degradation of the cycle and returned.
    pub(crate) fn disarm_ahead<P: PageProtection>(&self, p: &P, bytes: usize) -> Result<()> {
        let run = self.prefix.take_unprotect(bytes);
        self.unprotect_closed(p, run)
    }

    /// Ends a cycle: recording stops, and what of the protected prefix the steps of
    /// [`disarm_ahead`](Self::disarm_ahead) did not reach is made writable as they do
    /// (nothing beyond the prefix was protected). A failure is counted as a degradation
    /// of the cycle and returned.
    pub(crate) fn disarm<P: PageProtection>(&self, p: &P) -> Result<()> {
        // A hand-out that skips from now on leaves a page protected until the unprotect
        // below: a write to it meanwhile faults and is served, as any other.
        self.active.store(false, Ordering::Release);
        let rest = self.prefix.take_rest();
        self.unprotect_closed(p, rest)
    }

    /// The disarm's unprotect of the pages of `range`, skipping its runs of at least
    /// [`MIN_OPEN_RUN`] open pages, which no protection change closed since arm (a
    /// whole-prefix protect clears their bits after it lands): writable already, and long
    /// enough to pay for the call more that skipping them costs.
    fn unprotect_closed<P: PageProtection>(&self, p: &P, range: Range<usize>) -> Result<()> {
        let word = |b: &Bitmap, w: usize| b.word(w).load(Ordering::Acquire);
        let words = |w: usize| word(&self.open, w) | word(&self.kept, w);
        let open = |q: usize| self.open.get(q) || self.kept.get(q);
        // A run cut by the step's bounds counts with its pages beyond them (enough of
        // them to tell).
        let whole = |run: &Range<usize>| {
            let pages = self.len / PAGE_SIZE;
            let before = (0..run.start).rev().take_while(|&q| open(q));
            let after = (run.end..pages).take_while(|&q| open(q));
            run.len() + before.take(MIN_OPEN_RUN).count() + after.take(MIN_OPEN_RUN).count()
        };
        let opened: Vec<Range<usize>> = marked_runs(range.clone(), words, open)
            .into_iter()
            .filter(|run| run.len() >= MIN_OPEN_RUN || whole(run) >= MIN_OPEN_RUN)
            .collect();
        for run in between(&opened, range) {
            let range = (self.addr_of(run.start), run.len() * PAGE_SIZE);
            p.unprotect(range.0, range.1).map_err(|errno| {
                self.counters.degraded(Degradation {
                    step: Step::Disarm,
                    call: P::CALL,
                    errno,
                    range: Some(range),
                });
                self.whole_range_error(P::CALL, errno, "unprotecting the heap at disarm")
            })?;
        }
        Ok(())
    }

    /// Gives up precision for the cycle: the whole heap writable first, then the flag,
    /// then the count and the cause. Returns the whole-range unprotect's result: IF it
    /// failed THEN pages may stay protected, and a handler must pass its fault on rather
    /// than retry a write that would fault forever. Async-signal-safe.
    pub(crate) fn degrade<P: PageProtection>(
        &self,
        p: &P,
        step: Step,
        errno: i32,
        range: (usize, usize),
    ) -> RawResult {
        self.degrade_with(p, step, P::CALL, errno, Some(range))
    }

    /// [`PageRecord::degrade`] for a failure of another call than the mechanism's
    /// protection change (reading or polling the userfaultfd).
    pub(crate) fn degrade_with<P: PageProtection>(
        &self,
        p: &P,
        step: Step,
        call: Call,
        errno: i32,
        range: Option<(usize, usize)>,
    ) -> RawResult {
        let whole = p.unprotect(self.base, self.len);
        self.everything.store(true, Ordering::Release);
        self.counters.degraded(Degradation {
            step,
            call,
            errno,
            range,
        });
        whole
    }

    /// Re-protects the pages of a harvested set: the whole prefix when the set is
    /// "everything" or when its calls would cost more ([`CALL_PAGES`]), closing every
    /// open page, else span by span ([`spans`]), closing the open pages of each span.
    /// The errno and range of the first failure.
    fn reprotect<P: PageProtection>(
        &self,
        p: &P,
        set: &DirtySet,
    ) -> std::result::Result<(), (i32, (usize, usize))> {
        let extent = self.prefix.protected();
        let spans = spans(&set.granules, CALL_PAGES);
        let cost: usize = spans.iter().map(|s| CALL_PAGES + s.len()).sum();
        if set.all || cost > extent / PAGE_SIZE {
            p.protect(self.base, extent)
                .map_err(|e| (e, (self.base, extent)))?;
            self.open.clear_prefix(extent / PAGE_SIZE);
            self.kept.clear_prefix(extent / PAGE_SIZE);
            return Ok(());
        }
        for span in spans {
            let range = (self.addr_of(span.start), span.len() * PAGE_SIZE);
            self.protect_run(p, range.0, range.1)
                .map_err(|e| (e, range))?;
            // After the protect, as for the whole prefix: a hand-out that found the bit
            // still set records the page with no call, and its first write faults.
            self.open.clear_strided(span.start, span.len(), 1);
            self.kept.clear_strided(span.start, span.len(), 1);
        }
        Ok(())
    }

    fn whole_range_error(&self, call: Call, errno: i32, what: &str) -> Error {
        Error::from_errno(call.name(), Some((self.base, self.len)), errno)
            .with_hint(format!("{what}; the tracker degraded for this cycle"))
    }
}

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;
