//! An end-to-end workload of the study, by label: its kind, live size and work.

use super::{FITS_ALLOCATED_PER_LIVE, MAX_CALIBRATION_SCALE, MIN_ROOMS_ALLOCATED, MIN_RUN_MS};
use crate::workload::{GcBenchParams, Workload};

/// An end-to-end workload of the study: its kind and live size, by label.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyWorkload {
    /// `gcbench-l64`, `graph-spp1024-l64`, `lru-l64`, `binary-trees-l64` (live MiB).
    pub label: String,
    /// The workload's kind with its other knobs (its live size is set per thread count).
    pub base: Workload,
    /// Live bytes, all threads together.
    pub live_bytes: u64,
    /// Bytes a run allocates per live byte.
    pub allocated_per_live: f64,
    /// The heap multiples it runs at, where not the study's own (the GCOld sweep runs
    /// one multiple per mutation rate).
    pub multiples: Option<Vec<f64>>,
}

impl StudyWorkload {
    pub(super) fn new(
        kind: &str,
        base: Workload,
        live_mib: u64,
        allocated_per_live: f64,
    ) -> StudyWorkload {
        let live_bytes = live_mib << 20;
        let label = if live_mib >= 1 {
            format!("{kind}-l{live_mib}")
        } else {
            kind.to_string()
        };
        StudyWorkload {
            label,
            base,
            live_bytes,
            allocated_per_live,
            multiples: None,
        }
    }

    /// The same workload doing `per_live` bytes of allocation per live byte.
    pub fn with_allocated_per_live(&self, per_live: f64) -> StudyWorkload {
        StudyWorkload {
            allocated_per_live: per_live,
            ..self.clone()
        }
    }

    /// The work per live byte that makes a run of this workload last `target_ms`, given
    /// that a run of its present work lasted `ran_ms`: its allocation scaled in
    /// proportion to the time, but never below [`FITS_ALLOCATED_PER_LIVE`] nor below
    /// [`MIN_ROOMS_ALLOCATED`] times the free room (heap less live set) of its largest
    /// heap, `largest_heap` bytes, so that every point collects often enough to be a
    /// result; and never above [`MAX_CALIBRATION_SCALE`] times
    /// [`StudyWorkload::allocated_per_live`]. GCBench's work stays whole passes: the
    /// count nearest the target, but none predicted under [`MIN_RUN_MS`] (or the target,
    /// if shorter). `None` for a run time that is no time (not finite, or not above zero).
    pub fn calibrated_per_live(
        &self,
        ran_ms: f64,
        target_ms: f64,
        largest_heap: usize,
    ) -> Option<f64> {
        if !(ran_ms.is_finite() && ran_ms > 0.0 && target_ms > 0.0) {
            return None;
        }
        let top = self.allocated_per_live * MAX_CALIBRATION_SCALE;
        let room = largest_heap.saturating_sub(self.live_bytes as usize) as f64;
        let floor = (MIN_ROOMS_ALLOCATED * room / self.live_bytes.max(1) as f64)
            .max(FITS_ALLOCATED_PER_LIVE)
            .min(top);
        match self.at_threads(1) {
            Workload::GcBench(p) => {
                let per_pass_ms = ran_ms / f64::from(p.repeat.max(1));
                let per_pass = p.bytes_per_repeat() as f64 / self.live_bytes as f64;
                let most = (top / per_pass).floor().max(1.0);
                // Whole passes: as many as come nearest the target, but never a run
                // predicted under the shortest a point may take. Always rounding up made
                // GCBench's fastest point run 2.6-4.1 s for a 2.3 s target (a 2026-12-07
                // default study, passes of ~0.57 s: five, where four make 2.3 s), and
                // GCBench is a third of the end-to-end part's time.
                let shortest = MIN_RUN_MS.min(target_ms);
                let passes = (target_ms / per_pass_ms)
                    .round()
                    .max((shortest / per_pass_ms).ceil())
                    .max((floor / per_pass).ceil())
                    .clamp(1.0, most);
                Some(passes * per_pass)
            }
            _ => Some((self.allocated_per_live * target_ms / ran_ms).clamp(floor, top)),
        }
    }

    /// The workload one of `threads` threads runs: its share of the live set, and of the
    /// allocation ([`StudyWorkload::allocated_per_live`]).
    pub fn at_threads(&self, threads: usize) -> Workload {
        self.sized(threads, self.allocated_per_live)
    }

    /// The workload of a barrier-only point: the length of a minimum-heap search step
    /// ([`FITS_ALLOCATED_PER_LIVE`]), since its heap holds everything it allocates and
    /// every arm protects all of it.
    pub fn barrier_only(&self, threads: usize) -> Workload {
        self.for_fits(threads)
    }

    /// The share of an end-to-end run's allocation that a barrier-only run allocates
    /// (1 for GCBench, whose work is fixed).
    pub fn barrier_only_share(&self) -> f64 {
        let full = self.at_threads(1).allocation_estimate() as f64;
        self.barrier_only(1).allocation_estimate() as f64 / full.max(1.0)
    }

    /// The workload of a minimum-heap search step ([`FITS_ALLOCATED_PER_LIVE`]).
    pub fn for_fits(&self, threads: usize) -> Workload {
        self.sized(
            threads,
            FITS_ALLOCATED_PER_LIVE.min(self.allocated_per_live),
        )
    }

    fn sized(&self, threads: usize, per_live: f64) -> Workload {
        let per_thread = self.live_bytes / threads.max(1) as u64;
        let w = self.base.with_live(per_thread);
        let bytes = self.live_bytes as f64 * per_live;
        match w {
            // Its work is the benchmark itself: whole passes, as many as come nearest.
            Workload::GcBench(p) => {
                let per_pass = p.bytes_per_repeat() as f64 * threads.max(1) as f64;
                let passes = (bytes / per_pass).round().clamp(1.0, f64::from(u32::MAX));
                Workload::GcBench(GcBenchParams {
                    repeat: passes as u32,
                    ..p
                })
            }
            _ => w.with_allocation(bytes, threads),
        }
    }
}
