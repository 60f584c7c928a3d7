//! The work of a workload's end-to-end runs, sized by time on the machine at hand.
//!
//! A fixed volume of work gave runs of 2 s one day and 4 s the next on the same 2-vCPU
//! guest, as the host's speed moved, and the study's length with them. So before its
//! end-to-end points, the default and full studies run `none` [`RUNS_PER_END`] times at
//! each workload's smallest heap and as many at its largest, alternating, at the
//! workload's starting work ([`crate::study::config::PerLive`]), take the fastest, and
//! scale the work so that it
//! would last [`crate::study::StudyConfig::run_ms`]
//! ([`crate::study::config::RUN_MS_TARGET`] unless `--run-ms` says otherwise;
//! [`StudyWorkload::calibrated_per_live`]). Both ends, for the cost of as many runs at one:
//! a collector-bound workload runs fastest at its largest heap, but one whose time grew
//! with the heap (locality lost over more pages) would run fastest at its smallest, and
//! is covered too. (None of the default study's measurably does: graph mutation at the
//! same work ran 8.3 and 8.9 s at 132 MiB, 6.5 and 8.9 s at 264 MiB, interleaved, on
//! 2026-12-07.) Taking the fastest errs towards more work, hence towards runs no shorter
//! than the target. The calibration runs are not
//! results: their rows (`calibration` section) record each run's heap and time and the
//! work chosen, which every point of the workload then runs (it travels in the point's
//! spec).

use super::Runner;

/// Calibration runs at each end of a workload's heaps, the ends alternating: the fastest
/// of all sizes the work. One run per end let one slow moment of the host size it: in
/// the second of two default studies of 2026-12-07 (05:28 UTC), graph mutation's runs
/// took 6,005 ms at 132 MiB and 3,033 ms at 264 MiB, where the first study's had taken
/// 1,817 and 1,407 ms at the same work, so the second ran less than half the work (20.8
/// bytes per live byte against 44.8) and 25 of its 103 (point, barrier) pairs ran under
/// 2 s. A slow run is the common error on a shared host, so the fastest is kept.
pub(crate) const RUNS_PER_END: usize = 2;
use crate::error::Result;
use crate::study::config::StudyWorkload;
use crate::study::data::{Metric, Section};
use crate::study::point::Point;
use crate::study::runner::{Key, classify, invoke};

impl Runner<'_> {
    /// Sizes the work of `w`'s end-to-end runs from [`RUNS_PER_END`] runs of `none` on
    /// `threads` threads at the smallest and at the largest of `heaps` (bytes), so that
    /// the fastest
    /// lasts `target_ms`, records it for every later point of `w`, and writes the
    /// `calibration` rows. A workload none of whose runs gave a time keeps its starting
    /// work (an `error` row says why).
    pub(super) fn calibrate(
        &mut self,
        w: &StudyWorkload,
        threads: usize,
        heaps: &[usize],
        target_ms: f64,
    ) -> Result<()> {
        let (Some(&smallest), Some(&largest)) = (heaps.iter().min(), heaps.iter().max()) else {
            return Ok(());
        };
        let key = |heap_bytes: usize| Key {
            tracker: "none".into(),
            workload: w.label.clone(),
            threads,
            heap_mib: heap_bytes as f64 / super::MIB,
        };
        let work = format!("{:.2} bytes per live byte", w.allocated_per_live);
        // (ms, heap) of each run that gave a time.
        let mut times: Vec<(f64, usize)> = Vec::new();
        let order = [smallest, largest].repeat(RUNS_PER_END);
        for (run, heap_bytes) in order.into_iter().enumerate() {
            self.bar.grow(1);
            self.bar.step(format!("calibrate {} #{run}", w.label));
            let point = Point::Run {
                workload: w.label.clone(),
                variant: "none".into(),
                threads,
                heap_bytes,
                heap_map: false,
                huge_pages: false,
                barrier_only: false,
            };
            let key = key(heap_bytes);
            let ran = invoke(&self.exe, &self.spec(point, 0), self.config.timeout);
            let rows = match classify(&key, run, ran) {
                Ok(rows) => rows,
                Err(why) => vec![key.row(Section::Error, run, Metric::Failed, 1.0, why)],
            };
            // A run with too few cycles for a result (`invalid`) still gives its time.
            let wall = rows
                .iter()
                .find(|r| r.metric == Metric::WallMs)
                .map(|r| r.value);
            match wall {
                Some(ms) => {
                    times.push((ms, heap_bytes));
                    let row = key.row(
                        Section::Calibration,
                        run,
                        Metric::CalibrationMs,
                        ms,
                        work.clone(),
                    );
                    self.sink.push(row)?;
                }
                // No time: the reason (an `error` row, or an `invalid` one for a run out
                // of memory) goes to the CSV.
                None => rows
                    .into_iter()
                    .filter(|r| !r.section.is_result())
                    .try_for_each(|r| self.sink.push(r))?,
            }
        }
        let fastest = times.iter().copied().min_by(|a, b| a.0.total_cmp(&b.0));
        let sized = |(ms, heap)| Some((w.calibrated_per_live(ms, target_ms, largest)?, ms, heap));
        match fastest.and_then(sized) {
            Some((per_live, ms, heap)) => {
                let note = format!(
                    "from {} run(s) at {work}, the fastest {ms:.0} ms at {:.0} MiB, for \
                     {target_ms:.0} ms",
                    times.len(),
                    heap as f64 / super::MIB
                );
                self.sink.push(key(heap).row(
                    Section::Calibration,
                    0,
                    Metric::AllocatedPerLive,
                    per_live,
                    note,
                ))?;
                self.per_live.insert(w.label.clone(), per_live);
            }
            None => {
                let note = format!(
                    "calibration of {} gave no run time: its points run the starting work ({work})",
                    w.label
                );
                self.sink
                    .push(key(largest).row(Section::Error, 0, Metric::Failed, 1.0, note))?;
            }
        }
        Ok(())
    }

    /// Records the work an earlier study gave `w` (`--work-from`) as its `calibration`
    /// row, once per workload, where it was given.
    pub(super) fn given_work(
        &mut self,
        w: &StudyWorkload,
        threads: usize,
        heaps: &[usize],
    ) -> Result<()> {
        let (Some((dir, work)), Some(&largest)) = (&self.config.work_from, heaps.iter().max())
        else {
            return Ok(());
        };
        let Some(&per_live) = work.get(&w.label) else {
            return Ok(());
        };
        let recorded = self.sink.rows.iter().any(|r| {
            r.section == Section::Calibration
                && r.metric == Metric::AllocatedPerLive
                && r.workload == w.label
        });
        if recorded {
            return Ok(());
        }
        let key = Key {
            tracker: "none".into(),
            workload: w.label.clone(),
            threads,
            heap_mib: largest as f64 / super::MIB,
        };
        let note = format!(
            "given: the work of the study in {} (--work-from)",
            dir.display()
        );
        self.sink.push(key.row(
            Section::Calibration,
            0,
            Metric::AllocatedPerLive,
            per_live,
            note,
        ))
    }

    /// `w` with the work the study calibrated for it, if it did.
    pub(super) fn sized(&self, w: StudyWorkload) -> StudyWorkload {
        match self.per_live.get(&w.label) {
            Some(&per_live) => w.with_allocated_per_live(per_live),
            None => w,
        }
    }
}
