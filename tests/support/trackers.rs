//! The trackers' part of the support module: a tracker over its own region
//! ([`TrackerLab`], on the library's `BareTracker`), writes through its store path,
//! harvests, and the race of writers against harvests ([`race_writers_and_harvests`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use barrierlab::barrier::{
    BareTracker, BarrierKind, DirtySet, DirtyTracker, Idle, StoreBarrier, Variant,
};
use barrierlab::sys::mem::Region;
use barrierlab::sys::{PAGE_SHIFT, PAGE_SIZE};

use super::{is_missing_feature, skip_or_fail, write_page};

/// A tracker over a region of its own ([`BareTracker`], with its thread standing in for
/// the collector when the tracker wants its faults served by the collector:
/// `uffd-wp[collector]`), and the variant it was built from.
pub struct TrackerLab {
    /// The variant the tracker was built from.
    pub variant: Variant,
    bare: BareTracker,
}

impl TrackerLab {
    /// `variant`'s tracker over a fresh region of `pages` pages whose first `populated`
    /// pages are written once before the tracker is built (the others stay unpopulated).
    pub fn new(variant: Variant, pages: usize, populated: usize) -> barrierlab::Result<Self> {
        let bare = BareTracker::new(variant.config, pages, populated, Idle::Yield)?;
        assert!(
            bare.tracker().is_some(),
            "BarrierKind::None has no tracker to test"
        );
        Ok(TrackerLab { variant, bare })
    }

    /// [`TrackerLab::new`], or `None` after [`skip_or_fail`] when the kernel lacks the
    /// mechanism. Any other error panics.
    pub fn or_skip(variant: Variant, pages: usize, populated: usize, test: &str) -> Option<Self> {
        match TrackerLab::new(variant, pages, populated) {
            Ok(lab) => Some(lab),
            Err(e) if is_missing_feature(&e) => {
                skip_or_fail(test, &format!("{}: {e}", variant.name()));
                None
            }
            Err(e) => panic!("{test}: building {} failed: {e}", variant.name()),
        }
    }

    /// The tracker.
    pub fn tracker(&self) -> &dyn DirtyTracker {
        self.bare.tracker().expect("checked in new")
    }

    /// The region's first address.
    pub fn base(&self) -> usize {
        self.bare.base()
    }

    /// The region.
    pub fn region(&self) -> &Region {
        self.bare.region()
    }

    /// The kind.
    pub fn kind(&self) -> BarrierKind {
        self.variant.kind()
    }

    /// The granule index of page `page`'s first word.
    pub fn granule(&self, page: usize) -> usize {
        (page << PAGE_SHIFT) >> self.tracker().granule_shift()
    }

    /// The granule indices of `pages`, ascending and unique.
    pub fn granules(&self, pages: &[usize]) -> Vec<usize> {
        let mut g: Vec<usize> = pages.iter().map(|&p| self.granule(p)).collect();
        g.sort_unstable();
        g.dedup();
        g
    }

    /// Writes `value` to page `page`'s first word, then runs the store path on it.
    pub fn write(&self, page: usize, value: u64) {
        write_through(self.tracker(), self.base(), page, value);
    }

    /// Writes `pages`, half from each of two threads.
    pub fn write_from_two_threads(&self, pages: &[usize], value: u64) {
        std::thread::scope(|s| {
            for half in pages.chunks(pages.len().div_ceil(2).max(1)) {
                s.spawn(move || half.iter().for_each(|&p| self.write(p, value)));
            }
        });
    }

    /// Harvests and returns the dirty set.
    pub fn harvest(&self, rearm: bool) -> DirtySet {
        harvest(self.tracker(), rearm)
    }
}

/// Writes `value` to page `page` of the memory at `base`, then runs `t`'s store path on
/// the word (a card table marks its card; a page tracker's path is empty).
pub fn write_through(t: &dyn DirtyTracker, base: usize, page: usize, value: u64) {
    write_page(base, page, value);
    // SAFETY: the word is inside the region `t` covers, and `t` is alive.
    unsafe { t.store_barrier().on_store(base + page * PAGE_SIZE) };
}

/// Harvests and returns the dirty set (passing in a set that is not empty, so that a
/// harvest that forgets to clear it is caught).
pub fn harvest(t: &dyn DirtyTracker, rearm: bool) -> DirtySet {
    let mut out = DirtySet {
        granules: vec![12345],
        all: true,
    };
    t.harvest(&mut out, rearm).expect("harvest");
    out
}

/// How soon a write must show up in a harvest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// In the first harvest that begins after the write ended (or the one it overlapped):
    /// the kernel reads and re-protects each page atomically.
    Next,
    /// In some harvest after the one that preceded the write, at the latest in the last
    /// one (taken with every writer stopped, like a remark). A handler on the writing
    /// thread unprotects, then records: another thread's write through that window is
    /// recorded when the handler gets to it, possibly one harvest later.
    Eventually,
}

/// Races `writers` threads writing the pages `targets` of `lab` against harvests with
/// re-arm for `duration` (longer if by then fewer than [`MIN_HARVESTS`] harvests or
/// [`MIN_WRITES`] writes were made, as on a loaded machine, up to [`MAX_STRETCH`] times
/// `duration`), and checks that no write slipped past every harvest that should hold it: a write that began after harvest `j` returned must be in a harvest `k > j`
/// (`Bound::Eventually`), and with `Bound::Next` also `k <= m + 1` when it ended before
/// harvest `m + 1` began. Writers hit a few pages over and over, so that pages are
/// re-protected while being written.
/// The harvests a race must have made before it may stop.
pub const MIN_HARVESTS: usize = 12;
/// The writes a race must have made before it may stop.
pub const MIN_WRITES: usize = 1_000;
/// How many times its duration a race runs at most to reach the minimums.
pub const MAX_STRETCH: u32 = 20;

pub fn no_write_slips_past_harvests(
    lab: &TrackerLab,
    targets: &[usize],
    writers: usize,
    duration: Duration,
    bound: Bound,
) {
    let t = lab.tracker();
    let started = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let written = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    t.arm().expect("arm");
    // sets[k - 1] is harvest k's dirty set.
    let (sets, records) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (started, finished, stop, written) = (&started, &finished, &stop, &written);
                s.spawn(move || {
                    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (w as u64 + 1);
                    let mut records = Vec::new();
                    // Bounded, so that the records stay small (a write to a writable page
                    // takes nanoseconds).
                    while !stop.load(Ordering::Relaxed) && records.len() < 200_000 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let page = targets[(x % targets.len() as u64) as usize];
                        let lo = finished.load(Ordering::SeqCst);
                        lab.write(page, x);
                        let hi = started.load(Ordering::SeqCst);
                        records.push((lab.granule(page), lo, hi));
                        written.fetch_add(1, Ordering::Relaxed);
                        for _ in 0..64 {
                            std::hint::spin_loop();
                        }
                    }
                    records
                })
            })
            .collect();
        let mut sets = Vec::new();
        let begun = Instant::now();
        let (end, limit) = (begun + duration, begun + duration * MAX_STRETCH);
        let enough = |sets: &Vec<DirtySet>| {
            sets.len() >= MIN_HARVESTS && written.load(Ordering::Relaxed) >= MIN_WRITES
        };
        let mut round = 0u32;
        while Instant::now() < end || (!enough(&sets) && Instant::now() < limit) {
            started.fetch_add(1, Ordering::SeqCst);
            sets.push(harvest(t, true));
            finished.fetch_add(1, Ordering::SeqCst);
            round += 1;
            // Vary the gap between harvests: none, a yield, a short sleep.
            match round % 3 {
                0 => {}
                1 => std::thread::yield_now(),
                _ => std::thread::sleep(Duration::from_micros(50)),
            }
        }
        stop.store(true, Ordering::Relaxed);
        let records: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("writer"))
            .collect();
        // The last harvest, after every writer stopped.
        sets.push(harvest(t, false));
        (sets, records)
    });
    t.disarm().expect("disarm");
    let contains = |k: usize, granule: usize| {
        let d = &sets[k - 1];
        d.all || d.granules.binary_search(&granule).is_ok()
    };
    let mut missed = Vec::new();
    for &(granule, lo, hi) in &records {
        let last = match bound {
            Bound::Next => (hi + 1).min(sets.len()),
            Bound::Eventually => sets.len(),
        };
        if !(lo + 1..=last).any(|k| contains(k, granule)) {
            missed.push((granule, lo, hi));
        }
    }
    assert!(
        missed.is_empty(),
        "{}: {} of {} writes were in no harvest that could hold them (granule, after \
         harvest, before harvest): {:?}",
        lab.variant.name(),
        missed.len(),
        records.len(),
        &missed[..missed.len().min(10)]
    );
    assert!(
        records.len() >= MIN_WRITES && sets.len() > MIN_HARVESTS,
        "{}: too little happened in {} times the race's duration: {} writes, {} harvests",
        lab.variant.name(),
        MAX_STRETCH,
        records.len(),
        sets.len()
    );
}

/// Runs [`no_write_slips_past_harvests`] over `variant`'s tracker on a 16-page region
/// whose harvests re-protect it whole, on 16 pages 8 apart in a 1024-page region (one
/// call over the span from the first to the last, the clean pages between protected
/// again), and on 16 pages 256 apart in a 4096-page region (a call each); each without
/// and with races widened by the tracker's test knobs (where it has them).
pub fn race_writers_and_harvests(variant: Variant, bound: Bound, test: &str) {
    let duration = Duration::from_millis(200);
    let dense_pages: Vec<usize> = (0..16).collect();
    let bridged_pages: Vec<usize> = (0..16).map(|i| i * 8 + 1).collect();
    let sparse_pages: Vec<usize> = (0..16).map(|i| i * 256 + 1).collect();
    let layouts = [
        (16, &dense_pages),
        (1024, &bridged_pages),
        (4096, &sparse_pages),
    ];
    for spins in [0, 2000] {
        for (pages, targets) in layouts {
            let Some(lab) = TrackerLab::or_skip(variant, pages, 0, test) else {
                return;
            };
            if let Some(knobs) = lab.tracker().test_knobs() {
                knobs.widen_races(spins);
            }
            no_write_slips_past_harvests(&lab, targets, 2, duration, bound);
        }
    }
}
