//! The record's protocol against a protection that logs its calls.

use super::*;
use crate::sys::RawResult;
use std::sync::Mutex;

#[test]
fn runs_are_maximal_and_spans_bridge_short_gaps() {
    let mut runs = Vec::new();
    for_each_run(&[1, 2, 3, 7, 9, 10], |a, n| runs.push((a, n)));
    assert_eq!(runs, vec![(1, 3), (7, 1), (9, 2)]);
    // Three pages lie between 1..4 and 7..8, one between 7..8 and 9..11.
    assert_eq!(spans(&[1, 2, 3, 7, 9, 10], 3), vec![1..4, 7..11]);
    assert_eq!(spans(&[1, 2, 3, 7, 9, 10], 4), vec![1..11]);
    assert_eq!(spans(&[1, 2, 3, 7, 9, 10], 0), vec![1..4, 7..8, 9..11]);
    assert!(spans(&[], 5).is_empty());
}

/// A protection that logs its calls and fails the ones it is told to.
#[derive(Default)]
struct Log {
    calls: Mutex<Vec<(bool, usize, usize)>>,
    fail_protect: AtomicBool,
}

// SAFETY: only used in these tests, never from a signal handler.
unsafe impl PageProtection for Log {
    const CALL: Call = Call::Mprotect;
    const STICKY: bool = false;
    const INJECTED: i32 = libc::EIO;
    fn protect(&self, start: usize, len: usize) -> RawResult {
        self.calls.lock().unwrap().push((true, start, len));
        if self.fail_protect.load(Ordering::Relaxed) {
            Err(libc::ENOMEM)
        } else {
            Ok(())
        }
    }
    fn unprotect(&self, start: usize, len: usize) -> RawResult {
        self.calls.lock().unwrap().push((false, start, len));
        Ok(())
    }
}

const BASE: usize = 1 << 30;
/// More pages than the re-protect's bridge, so that a harvest can choose.
const PAGES: usize = 2048;

fn calls(p: &Log) -> Vec<(bool, usize, usize)> {
    std::mem::take(&mut *p.calls.lock().unwrap())
}

#[test]
fn a_harvest_re_protects_span_by_span_or_the_whole_heap() {
    let r = PageRecord::new(BASE, PAGES * PAGE_SIZE, None).unwrap();
    let p = Log::default();
    r.arm(&p, Arming::default()).unwrap();
    assert_eq!(calls(&p), vec![(true, BASE, PAGES * PAGE_SIZE)]);
    for page in [3, 4, 9] {
        r.record(page);
    }
    let mut out = DirtySet::default();
    r.harvest(&p, &mut out, true, None).unwrap();
    assert_eq!(out.granules, vec![3, 4, 9]);
    // Pages 5..9 lie between: one call for the span is cheaper than two.
    assert_eq!(calls(&p), vec![call(true, 3, 7)]);
    // Runs a bridge or more apart: a call each.
    r.record(3);
    r.record(3 + CALL_PAGES + 1);
    r.harvest(&p, &mut out, true, None).unwrap();
    assert_eq!(
        calls(&p),
        vec![call(true, 3, 1), call(true, 4 + CALL_PAGES, 1)]
    );
    // Sixteen of them: their calls cost more than the whole heap's (16 × 129 > 2,048).
    for k in 0..16 {
        r.record(k * (CALL_PAGES + 2));
    }
    r.harvest(&p, &mut out, true, None).unwrap();
    assert_eq!(calls(&p), vec![(true, BASE, PAGES * PAGE_SIZE)]);
    // Without rearm nothing is re-protected.
    r.record(5);
    r.harvest(&p, &mut out, false, None).unwrap();
    assert_eq!(out.granules, vec![5]);
    assert!(calls(&p).is_empty());
    assert_eq!(r.counters().stats().faults, 22);
    assert_eq!(r.counters().stats().recorded, 22);
}

#[test]
fn only_the_used_prefix_is_protected_and_pages_coming_into_use_are_reported() {
    let r = PageRecord::new(BASE, PAGES * PAGE_SIZE, None).unwrap();
    let p = Log::default();
    r.in_use(40 * PAGE_SIZE + 1); // rounds up to 41 pages
    r.arm(&p, Arming::default()).unwrap();
    assert_eq!(calls(&p), vec![(true, BASE, 41 * PAGE_SIZE)]);
    // The heap grows to 48 pages during the cycle: pages 41..48 were never
    // protected, so the harvest reports them after the recorded page, and protects
    // them with it (in one call over the 48 pages, cheaper than a span's).
    r.record(1);
    r.in_use(48 * PAGE_SIZE);
    let mut out = DirtySet::default();
    r.harvest(&p, &mut out, true, None).unwrap();
    let mut expect = vec![1];
    expect.extend(41..48);
    assert_eq!(out.granules, expect);
    assert_eq!(calls(&p), vec![call(true, 0, 48)]);
    // Reported once: the next harvest has nothing new.
    r.harvest(&p, &mut out, false, None).unwrap();
    assert!(out.granules.is_empty() && !out.all);
    // Disarm unprotects the protected prefix, not the reservation.
    r.disarm(&p).unwrap();
    assert_eq!(calls(&p), vec![(false, BASE, 48 * PAGE_SIZE)]);
}

#[test]
fn a_failed_re_protect_degrades_once_per_cycle_and_keeps_its_cause() {
    let r = PageRecord::new(BASE, PAGES * PAGE_SIZE, None).unwrap();
    let p = Log::default();
    r.arm(&p, Arming::default()).unwrap();
    r.record(7);
    p.fail_protect.store(true, Ordering::Relaxed);
    let mut out = DirtySet::default();
    r.harvest(&p, &mut out, true, None).unwrap();
    assert!(out.all);
    let _ = calls(&p);
    // Still everything without rearm, and the flag survives it.
    r.harvest(&p, &mut out, false, None).unwrap();
    assert!(out.all);
    // A whole-range re-protect that fails again: the same cycle, counted once.
    r.harvest(&p, &mut out, true, None).unwrap();
    assert!(out.all);
    let s = r.counters().stats();
    assert_eq!(s.degradations, 1);
    assert_eq!(
        s.last_degradation,
        Some(Degradation {
            step: Step::Harvest,
            call: Call::Mprotect,
            errno: libc::ENOMEM,
            range: Some((BASE + 7 * PAGE_SIZE, PAGE_SIZE)),
        })
    );
    // It succeeds: precise again.
    p.fail_protect.store(false, Ordering::Relaxed);
    r.harvest(&p, &mut out, true, None).unwrap();
    assert!(
        out.all,
        "the harvest that re-protects still reports everything"
    );
    r.harvest(&p, &mut out, true, None).unwrap();
    assert_eq!(out, DirtySet::default());
    // A new cycle that degrades counts again.
    r.arm(&p, Arming::default()).unwrap();
    p.fail_protect.store(true, Ordering::Relaxed);
    r.record(1);
    r.harvest(&p, &mut out, true, None).unwrap();
    assert_eq!(r.counters().stats().degradations, 2);
}

#[test]
fn a_failed_arm_leaves_the_heap_writable_and_names_the_call() {
    let r = PageRecord::new(BASE, PAGES * PAGE_SIZE, None).unwrap();
    let p = Log::default();
    p.fail_protect.store(true, Ordering::Relaxed);
    let e = r.arm(&p, Arming::default()).unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENOMEM));
    assert_eq!(
        calls(&p),
        vec![
            (true, BASE, PAGES * PAGE_SIZE),
            (false, BASE, PAGES * PAGE_SIZE)
        ]
    );
    let d = r.counters().stats().last_degradation.unwrap();
    assert_eq!((d.step, d.call), (Step::Arm, Call::Mprotect));
    assert!(d.to_string().starts_with("arm: mprotect on ["), "{d}");
}

#[test]
fn a_hand_out_opens_the_free_pages_after_it_in_the_same_call() {
    let r = PageRecord::new(BASE, PAGES * PAGE_SIZE, None).unwrap();
    let p = Log::default();
    r.arm(&p, Arming::default()).unwrap();
    let _ = calls(&p);
    // Page 4 handed out, pages 5..8 opened: one call for the four.
    r.hand_out(&p, BASE + 4 * PAGE_SIZE, PAGE_SIZE, 3 * PAGE_SIZE);
    assert_eq!(
        calls(&p),
        vec![(false, BASE + 4 * PAGE_SIZE, 4 * PAGE_SIZE)]
    );
    // Taking page 5 later only records it, and opens nothing more.
    r.hand_out(&p, BASE + 5 * PAGE_SIZE, PAGE_SIZE, 3 * PAGE_SIZE);
    assert!(calls(&p).is_empty(), "an open page needs no call");
    assert_eq!(r.counters().stats().hand_out_calls, 1);
    assert_eq!(r.counters().stats().handed_out, 2);
    // The harvest reports the handed-out pages, not the open ones (nobody wrote
    // them), and re-protects only what it reports.
    let mut out = DirtySet::default();
    r.harvest(&p, &mut out, true, None).unwrap();
    assert_eq!(out.granules, vec![4, 5]);
    assert_eq!(calls(&p), vec![(true, BASE + 4 * PAGE_SIZE, 2 * PAGE_SIZE)]);
    // Page 6 is still open: taking it needs no call either.
    r.hand_out(&p, BASE + 6 * PAGE_SIZE, PAGE_SIZE, 0);
    assert!(calls(&p).is_empty(), "page 6 was open");
    r.harvest(&p, &mut out, true, None).unwrap();
    assert_eq!(out.granules, vec![6]);
}

#[test]
fn a_re_protect_closes_the_open_pages_it_covers() {
    let r = PageRecord::new(BASE, PAGES * PAGE_SIZE, None).unwrap();
    let p = Log::default();
    r.arm(&p, Arming::default()).unwrap();
    r.hand_out(&p, BASE + 40 * PAGE_SIZE, PAGE_SIZE, 4 * PAGE_SIZE);
    // Pages recorded by faults around the open pages 41..45: one span over 0..51, which
    // protects them again and closes them.
    for page in [0, 10, 20, 30, 50] {
        r.record(page);
    }
    let mut out = DirtySet::default();
    r.harvest(&p, &mut out, true, None).unwrap();
    assert_eq!(out.granules, vec![0, 10, 20, 30, 40, 50]);
    assert_eq!(calls(&p).last(), Some(&call(true, 0, 51)));
    // Page 41 is protected again: taking it needs a call (and opens the rest again).
    r.hand_out(&p, BASE + 41 * PAGE_SIZE, PAGE_SIZE, 3 * PAGE_SIZE);
    assert_eq!(calls(&p), vec![call(false, 41, 4)]);
    // The whole prefix closes every open page, 42..45 included: with page 41, sixteen
    // spans (16 × 129 > 2,048).
    for k in 0..15 {
        r.record(41 + (k + 1) * (CALL_PAGES + 1));
    }
    r.harvest(&p, &mut out, true, None).unwrap();
    assert_eq!(calls(&p), vec![(true, BASE, PAGES * PAGE_SIZE)]);
    r.hand_out(&p, BASE + 42 * PAGE_SIZE, PAGE_SIZE, 0);
    assert_eq!(calls(&p), vec![call(false, 42, 1)]);
}

#[test]
fn the_planted_bug_forgets_a_page_taken_from_an_open_run_too() {
    let r = PageRecord::new(BASE, PAGES * PAGE_SIZE, None).unwrap();
    let p = Log::default();
    r.arm(&p, Arming::default()).unwrap();
    r.hand_out(&p, BASE + 4 * PAGE_SIZE, PAGE_SIZE, PAGE_SIZE);
    r.knobs().forget_hand_outs(true);
    r.hand_out(&p, BASE + 5 * PAGE_SIZE, PAGE_SIZE, 0);
    let mut out = DirtySet::default();
    r.harvest(&p, &mut out, false, None).unwrap();
    assert_eq!(out.granules, vec![4], "page 5 is writable and unrecorded");
}

/// A protection whose first protect hands pages out while it runs, as a mutator
/// allocating during arm does: page `page`, opening `ahead` pages after it.
struct HandOutDuringArm {
    log: Log,
    record: std::sync::OnceLock<std::sync::Arc<PageRecord>>,
    page: usize,
    ahead: usize,
}

impl HandOutDuringArm {
    fn new(record: &std::sync::Arc<PageRecord>, page: usize, ahead: usize) -> Self {
        let p = HandOutDuringArm {
            log: Log::default(),
            record: std::sync::OnceLock::new(),
            page,
            ahead,
        };
        let _ = p.record.set(record.clone());
        p
    }
}

// SAFETY: only used in these tests, never from a signal handler.
unsafe impl PageProtection for HandOutDuringArm {
    const CALL: Call = Call::Mprotect;
    const STICKY: bool = false;
    const INJECTED: i32 = libc::EIO;
    fn protect(&self, start: usize, len: usize) -> RawResult {
        self.log.protect(start, len)?;
        if let Some(r) = self.record.get()
            && self.log.calls.lock().unwrap().len() == 1
        {
            let page = BASE + self.page * PAGE_SIZE;
            r.hand_out(self, page, PAGE_SIZE, self.ahead * PAGE_SIZE);
        }
        Ok(())
    }
    fn unprotect(&self, start: usize, len: usize) -> RawResult {
        self.log.unprotect(start, len)
    }
}

#[test]
fn pages_handed_out_while_arm_protects_are_made_writable_again_after_it() {
    let r = std::sync::Arc::new(PageRecord::new(BASE, PAGES * PAGE_SIZE, None).unwrap());
    let p = HandOutDuringArm::new(&r, 4, 2);
    r.arm(&p, Arming::default()).unwrap();
    // The protect, the hand-out inside it (page 4, pages 5 and 6 opened), then arm
    // unprotects that run again, since the protect may have run over it.
    let run = (false, BASE + 4 * PAGE_SIZE, 3 * PAGE_SIZE);
    assert_eq!(
        calls(&p.log),
        vec![(true, BASE, PAGES * PAGE_SIZE), run, run]
    );
    // Page 4 stays recorded, pages 5 and 6 open: taking 5 needs no call.
    r.hand_out(&p, BASE + 5 * PAGE_SIZE, PAGE_SIZE, 0);
    assert!(calls(&p.log).is_empty());
    let mut out = DirtySet::default();
    r.harvest(&p, &mut out, false, None).unwrap();
    assert_eq!(out.granules, vec![4, 5]);
}

/// `free` for [`PageRecord::arm`]: the free runs `(first page, pages)` as the allocator
/// lists them.
fn free_runs(runs: &'static [(usize, usize)]) -> impl Fn(&mut dyn FnMut(usize, usize)) {
    move |f: &mut dyn FnMut(usize, usize)| {
        for &(first, n) in runs {
            f(BASE + first * PAGE_SIZE, n * PAGE_SIZE);
        }
    }
}

/// What arm is told: the free runs `runs` lists, no young run.
fn free(runs: FreeRuns<'_>) -> Arming<'_> {
    Arming {
        free: Some(runs),
        young: &[],
    }
}

/// A heap large enough for free runs of [`MIN_OPEN_RUN`] pages.
const BIG: usize = 2048;

/// The call `(protect, first page, pages)` as the log holds it.
fn call(protect: bool, first: usize, pages: usize) -> (bool, usize, usize) {
    (protect, BASE + first * PAGE_SIZE, pages * PAGE_SIZE)
}

#[test]
fn arm_leaves_long_free_runs_open_and_a_hand_out_from_one_needs_no_call() {
    let r = PageRecord::new(BASE, BIG * PAGE_SIZE, None).unwrap();
    let p = Log::default();
    r.in_use(1536 * PAGE_SIZE);
    // Free: 100..108 (too short to open), 256..512, 1024..1280 and 1280..1580 (cut at
    // the used prefix, still 256 pages), and 1800..2048, beyond it.
    static FREE: [(usize, usize); 5] =
        [(100, 8), (256, 256), (1024, 256), (1280, 300), (1800, 248)];
    r.arm(&p, free(&free_runs(&FREE))).unwrap();
    assert_eq!(
        calls(&p),
        vec![call(true, 0, 256), call(true, 512, 512)],
        "the pages in use and the short free run, not the long free runs"
    );
    assert_eq!(r.counters().stats().opened_at_arm, 768);
    // A page of a long free run handed out is recorded with no protection change; one
    // of the short run, and one in use, are made writable.
    r.hand_out(&p, BASE + 300 * PAGE_SIZE, PAGE_SIZE, 0);
    assert!(calls(&p).is_empty(), "page 300 was left writable at arm");
    r.hand_out(&p, BASE + 100 * PAGE_SIZE, PAGE_SIZE, 0);
    r.hand_out(&p, BASE + 600 * PAGE_SIZE, PAGE_SIZE, 0);
    assert_eq!(calls(&p), vec![call(false, 100, 1), call(false, 600, 1)]);
    r.record(700);
    let mut out = DirtySet::default();
    r.harvest(&p, &mut out, false, None).unwrap();
    assert_eq!(
        out.granules,
        vec![100, 300, 600, 700],
        "open pages are not reported"
    );
    // Disarm skips the open runs still 256 pages long (301..512 is not).
    r.disarm(&p).unwrap();
    assert_eq!(calls(&p), vec![call(false, 0, 1024)]);
}

#[test]
fn a_listed_page_handed_out_while_arm_protects_is_recorded_and_never_protected() {
    let r = std::sync::Arc::new(PageRecord::new(BASE, BIG * PAGE_SIZE, None).unwrap());
    // Page 1025 is taken after arm listed it free (a mutator can take one only once
    // the allocator's lock is free again), and handed out while arm protects.
    let p = HandOutDuringArm::new(&r, 1025, 0);
    r.arm(&p, free(&free_runs(&[(1024, 1024)]))).unwrap();
    // One protect of the pages in use; page 1025 handed out inside it needed no call.
    assert_eq!(calls(&p.log), vec![call(true, 0, 1024)]);
    let mut out = DirtySet::default();
    r.harvest(&p, &mut out, false, None).unwrap();
    assert_eq!(out.granules, vec![1025]);
}

#[test]
fn marked_runs_are_maximal_and_cross_words_and_the_range_bounds_them() {
    // Pages 3..5, 60..70 (across a word boundary), 130 and 190..200 marked, 200 pages.
    let marked = |q: usize| (3..5).contains(&q) || (60..70).contains(&q) || q == 130 || q >= 190;
    let words = |w: usize| {
        (w * 64..(w + 1) * 64)
            .filter(|&q| marked(q))
            .fold(0u64, |acc, q| acc | 1 << (q % 64))
    };
    assert_eq!(
        marked_runs(0..200, words, marked),
        vec![3..5, 60..70, 130..131, 190..200]
    );
    // A range that starts and ends inside runs cuts them.
    assert_eq!(
        marked_runs(4..195, words, marked),
        vec![4..5, 60..70, 130..131, 190..195]
    );
    // A word claimed empty is skipped whole: the words are what the scan trusts.
    assert_eq!(
        marked_runs(0..200, |w| if w == 0 { 0 } else { words(w) }, marked),
        vec![64..70, 130..131, 190..200]
    );
    assert!(marked_runs(5..60, words, marked).is_empty());
}

#[test]
fn the_disarm_s_steps_unprotect_each_page_once_and_disarm_takes_the_rest() {
    let r = PageRecord::new(BASE, BIG * PAGE_SIZE, None).unwrap();
    let p = Log::default();
    // Free 400..700: opened at arm; a step boundary at 512 cuts it into runs shorter
    // than MIN_OPEN_RUN, which still count as the long run they are part of.
    static FREE: [(usize, usize); 1] = [(400, 300)];
    r.arm(&p, free(&free_runs(&FREE))).unwrap();
    assert_eq!(
        calls(&p),
        vec![call(true, 0, 400), call(true, 700, BIG - 700)]
    );
    r.disarm_ahead(&p, 512 * PAGE_SIZE).unwrap();
    assert_eq!(
        calls(&p),
        vec![call(false, 0, 400)],
        "the open run is skipped"
    );
    // Taken already: a repeated or a lower bound changes nothing.
    r.disarm_ahead(&p, 512 * PAGE_SIZE).unwrap();
    r.disarm_ahead(&p, 100 * PAGE_SIZE).unwrap();
    assert!(calls(&p).is_empty());
    // A step in a page's middle covers the page.
    r.disarm_ahead(&p, 800 * PAGE_SIZE + 1).unwrap();
    assert_eq!(calls(&p), vec![call(false, 700, 101)]);
    // Recording goes on until disarm: a hand-out above the steps is made writable and
    // recorded; one below them needs no call.
    r.hand_out(&p, BASE + 10 * PAGE_SIZE, PAGE_SIZE, 0);
    assert!(
        calls(&p).is_empty(),
        "page 10 is writable since the first step"
    );
    r.hand_out(&p, BASE + 1000 * PAGE_SIZE, PAGE_SIZE, 0);
    assert_eq!(calls(&p), vec![call(false, 1000, 1)]);
    r.disarm(&p).unwrap();
    assert_eq!(calls(&p), vec![call(false, 801, BIG - 801)], "the rest");
    // Nothing protected any more: neither a second disarm nor a hand-out calls, and a
    // harvest reports no page as come into use.
    r.disarm(&p).unwrap();
    r.hand_out(&p, BASE + 1500 * PAGE_SIZE, PAGE_SIZE, 0);
    assert!(calls(&p).is_empty());
    let mut out = DirtySet::default();
    r.harvest(&p, &mut out, false, None).unwrap();
    assert_eq!(
        out.granules,
        vec![1000],
        "the page handed out before the disarm"
    );
    // The next arm protects again from the start, and its steps start over.
    r.arm(&p, Arming::default()).unwrap();
    assert_eq!(calls(&p), vec![call(true, 0, BIG)]);
    r.disarm_ahead(&p, 64 * PAGE_SIZE).unwrap();
    assert_eq!(calls(&p), vec![call(false, 0, 64)]);
}

/// Arm keeps the long young runs (not the short one, nor the open pages among them)
/// writable and recorded; a harvest told the marks reports and re-protects only the kept
/// pages that hold a marked object, and keeps the others recorded and writable; one not
/// told the marks takes everything; disarm skips the runs still kept.
#[test]
fn arm_keeps_long_young_runs_recorded_until_a_harvest_finds_a_mark_on_them() {
    let r = PageRecord::new(BASE, BIG * PAGE_SIZE, None).unwrap();
    let p = Log::default();
    r.in_use(1536 * PAGE_SIZE);
    // Young: 0..10 (too short), 256..768, and 1024..1400 whose 1100..1380 is free and
    // open, which leaves 1024..1100 and 1380..1400, both too short.
    let page = |q: usize| BASE + q * PAGE_SIZE;
    let young = [
        page(0)..page(10),
        page(256)..page(768),
        page(1024)..page(1400),
    ];
    let listed = free_runs(&[(1100, 280)]);
    let with = Arming {
        free: Some(&listed),
        young: &young,
    };
    r.arm(&p, with).unwrap();
    assert_eq!(
        calls(&p),
        vec![
            call(true, 0, 256),
            call(true, 768, 332),
            call(true, 1380, 156)
        ],
        "everything in use but the long young run and the open free run"
    );
    assert_eq!(r.counters().stats().kept_at_arm, 512);
    // Nothing marked: the kept pages stay recorded and out of the harvest.
    r.record(800);
    let mut out = DirtySet::default();
    r.harvest(&p, &mut out, true, Some(&|_| false)).unwrap();
    assert_eq!(out.granules, vec![800]);
    assert_eq!(calls(&p), vec![call(true, 800, 1)]);
    // Pages 300 and 301 now hold a marked object: taken and re-protected, the rest kept.
    let marked = |addr: usize| addr == page(300) || addr == page(301);
    r.harvest(&p, &mut out, true, Some(&marked)).unwrap();
    assert_eq!(out.granules, vec![300, 301]);
    assert_eq!(calls(&p), vec![call(true, 300, 2)]);
    r.harvest(&p, &mut out, true, Some(&marked)).unwrap();
    assert!(out.granules.is_empty(), "pages 300 and 301 were protected");
    // Remark, not told the marks: the kept pages are reported, written or not.
    r.harvest(&p, &mut out, false, None).unwrap();
    assert_eq!(out.granules.len(), 510);
    assert!(calls(&p).is_empty(), "no re-protect without re-arm");
    // Disarm: the pages in use but the kept run still long enough to skip (302..768;
    // 256..300 is too short) and the open one.
    r.disarm(&p).unwrap();
    assert_eq!(
        calls(&p),
        vec![
            call(false, 0, 302),
            call(false, 768, 332),
            call(false, 1380, 156)
        ]
    );
}
