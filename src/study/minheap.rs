//! The minimum heap: the smallest heap in which a workload completes with the
//! stop-the-world collector, found by bisection to within [`PRECISION`] of it.
//!
//! A size *fits* only when [`RUNS_TO_FIT`] runs in a row complete (one that runs out of
//! memory is enough to say it does not): near the minimum a run's outcome depends on
//! where its cycles fall, and one lucky run would make the minimum, and every multiple of
//! it, too small. The search starts from the live set's size, grows by [`GROWTH`] (or
//! halves) to bracket the minimum, then bisects until the largest size that failed is within
//! [`PRECISION`] of the smallest that fitted; both are recorded. Sizes are multiples of
//! [`GRAIN`]. It decides sizes; the caller runs them.

use crate::barrier::BarrierKind;
use crate::error::{Error, Result};
use crate::workload::Workload;

/// The search stops when (fits − fails) / fits is at most this.
pub const PRECISION: f64 = 0.05;

/// Runs in a row that must complete for a size to fit.
pub const RUNS_TO_FIT: usize = 3;

/// The factor by which the search grows a size that did not fit, until one fits. The
/// study's workloads need 1.03–1.1 times their live set, so a small factor brackets the
/// minimum at once and leaves two or three bisections to [`PRECISION`], where doubling
/// left four or five, each up to [`RUNS_TO_FIT`] slow runs near the minimum: 17–19 runs
/// per workload in the default study of 2026-12-07.
pub const GROWTH: f64 = 1.25;

/// Heap sizes are multiples of this (64 KiB).
pub const GRAIN: usize = 64 << 10;

/// The largest heap the search tries (16 GiB).
pub const LIMIT: usize = 16 << 30;

/// What one run at a size showed.
#[derive(Debug, Clone, PartialEq)]
pub enum Trial {
    /// It completed.
    Completed,
    /// It ran out of memory.
    OutOfMemory,
    /// It could not say (crashed, timed out, failed): the reason.
    Broken(String),
}

/// The search's answer, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bracket {
    /// The smallest size that fitted.
    pub fits: usize,
    /// The largest size that did not (0 when none was tried below `fits`).
    pub fails: usize,
    /// Runs made.
    pub runs: usize,
}

fn grain(bytes: f64) -> usize {
    ((bytes / GRAIN as f64).ceil() as usize).max(1) * GRAIN
}

/// Searches from `start` bytes with `run` (one run at a size), [`RUNS_TO_FIT`] in a
/// row to fit. A broken run is tried once more; twice broken ends the search with the
/// reason (the size named).
pub fn search(
    start: usize,
    runs_to_fit: usize,
    mut run: impl FnMut(usize) -> Trial,
) -> std::result::Result<Bracket, String> {
    let mut runs = 0;
    let mut fits = |bytes: usize| -> std::result::Result<bool, String> {
        let mut broken = 0;
        let mut ok = 0;
        while ok < runs_to_fit {
            runs += 1;
            match run(bytes) {
                Trial::Completed => ok += 1,
                Trial::OutOfMemory => return Ok(false),
                Trial::Broken(why) => {
                    broken += 1;
                    if broken == 2 {
                        return Err(format!(
                            "at {:.2} MiB a run broke twice: {why}",
                            bytes as f64 / (1 << 20) as f64
                        ));
                    }
                }
            }
        }
        Ok(true)
    };
    let mut size = grain(start.max(GRAIN) as f64);
    let (mut lo, mut hi);
    if fits(size)? {
        hi = size;
        lo = 0;
        while size > GRAIN {
            size = grain(size as f64 / 2.0);
            if size >= hi {
                break;
            }
            if fits(size)? {
                hi = size;
            } else {
                lo = size;
                break;
            }
        }
    } else {
        lo = size;
        loop {
            size = grain(size as f64 * GROWTH).max(size + GRAIN);
            if size > LIMIT {
                return Err(format!("it does not fit in {} GiB", LIMIT >> 30));
            }
            if fits(size)? {
                hi = size;
                break;
            }
            lo = size;
        }
    }
    while lo > 0 && (hi - lo) as f64 / hi as f64 > PRECISION {
        let mid = grain((lo + hi) as f64 / 2.0);
        if mid >= hi || mid <= lo {
            break;
        }
        if fits(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Bracket {
        fits: hi,
        fails: lo,
        runs,
    })
}

/// The minimum heap of `w` on `threads` threads with the stop-the-world collector,
/// searched in this process, one run per size (the benches' unit of heap size; the study
/// runs the search with a fresh process per run and [`RUNS_TO_FIT`] runs to fit).
pub fn min_heap_bytes(w: &Workload, threads: usize) -> Result<usize> {
    let run = |bytes: usize| {
        let cfg = crate::heap::HeapConfig::new()
            .heap_bytes(bytes)
            .barrier(BarrierKind::None);
        match crate::workload::run(&cfg, w, threads) {
            Ok(_) => Trial::Completed,
            Err(Error::OutOfMemory { .. }) => Trial::OutOfMemory,
            Err(e) => Trial::Broken(e.to_string()),
        }
    };
    search(1 << 20, 1, run)
        .map(|b| b.fits)
        .map_err(|why| Error::InvalidArgument(format!("{}: {why}", w.name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_brackets_the_minimum_within_its_precision() {
        for need in [GRAIN, 3 * GRAIN, 1 << 20, 7 << 20, 100 << 20, 300 << 20] {
            for start in [1 << 20, 64 << 20] {
                let b = search(start, 1, |s| {
                    if s >= need {
                        Trial::Completed
                    } else {
                        Trial::OutOfMemory
                    }
                })
                .unwrap();
                assert!(b.fits >= need && b.fails < need, "{need}: {b:?}");
                assert!(
                    b.fails == 0
                        || (b.fits - b.fails) as f64 / b.fits as f64 <= PRECISION
                        || b.fits - b.fails == GRAIN,
                    "{need} from {start}: {b:?}"
                );
                assert!(b.fits % GRAIN == 0 && b.fails % GRAIN == 0);
            }
        }
    }

    #[test]
    fn a_size_fits_only_when_three_runs_in_a_row_complete() {
        // Every third run at the minimum runs out of memory: the minimum is not it.
        let need = 50 << 20;
        let mut count = 0;
        let b = search(64 << 20, RUNS_TO_FIT, |s| {
            count += 1;
            if s >= need + (4 << 20) || (s >= need && count % 3 != 0) {
                Trial::Completed
            } else {
                Trial::OutOfMemory
            }
        })
        .unwrap();
        assert!(
            b.fits >= need + (4 << 20),
            "a size that failed once is not the minimum: {b:?}"
        );
        assert!(b.runs >= RUNS_TO_FIT, "{b:?}");
    }

    #[test]
    fn a_search_that_breaks_says_why_and_where_not_invalid_argument() {
        let e = search(1 << 20, 3, |_| Trial::Broken("timed out after 60s".into())).unwrap_err();
        assert!(
            e.contains("timed out after 60s") && e.contains("1.00 MiB"),
            "{e}"
        );
        assert!(!e.contains("invalid argument"), "{e}");
        let e = search(1 << 20, 1, |_| Trial::OutOfMemory).unwrap_err();
        assert!(e.contains("16 GiB"), "{e}");
    }
}
