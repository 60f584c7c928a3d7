//! The work of a workload's end-to-end runs, sized by time on the machine at hand.
//!
//! A fixed volume of work gave runs of 2 s one day and 4 s the next on the same 2-vCPU
//! guest, as the host's speed moved, and the study's length with them. So before its
//! end-to-end points, the default and full studies run `none` at each workload's largest
//! heap (its fastest point) [`CALIBRATION_RUNS`] times at the workload's starting work
//! ([`crate::study::config::PerLive`]), take the fastest, and scale the work so that the
//! point would last [`crate::study::StudyConfig::run_ms`]
//! ([`crate::study::config::RUN_MS_TARGET`] unless `--run-ms` says otherwise;
//! [`StudyWorkload::calibrated_per_live`]). Taking the fastest run errs towards more
//! work, hence towards runs no shorter than the target. The calibration runs are not
//! results: their rows (`calibration` section) record each run's time and the work
//! chosen, which every point of the workload then runs (it travels in the point's spec).

use super::Runner;
use crate::error::Result;
use crate::study::config::StudyWorkload;
use crate::study::data::{Metric, Section};
use crate::study::point::Point;
use crate::study::runner::{Key, classify, invoke};

/// Calibration runs per workload; the fastest sizes the work.
pub const CALIBRATION_RUNS: usize = 2;

impl Runner<'_> {
    /// Sizes the work of `w`'s end-to-end runs from [`CALIBRATION_RUNS`] runs of `none`
    /// on `threads` threads in a heap of `heap_bytes`, so that its fastest lasts
    /// `target_ms`, records it for every later point of `w`, and writes the
    /// `calibration` rows. A workload none of whose runs gave a
    /// time keeps its starting work (an `error` row says why).
    pub(super) fn calibrate(
        &mut self,
        w: &StudyWorkload,
        threads: usize,
        heap_bytes: usize,
        target_ms: f64,
    ) -> Result<()> {
        let key = Key {
            tracker: "none".into(),
            workload: w.label.clone(),
            threads,
            heap_mib: heap_bytes as f64 / super::MIB,
        };
        let work = format!("{:.2} bytes per live byte", w.allocated_per_live);
        let mut times = Vec::new();
        for run in 0..CALIBRATION_RUNS {
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
                    times.push(ms);
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
        let fastest = times.iter().copied().fold(f64::INFINITY, f64::min);
        match w.calibrated_per_live(fastest, target_ms) {
            Some(per_live) => {
                let note = format!(
                    "from {} run(s) at {work}, the fastest {fastest:.0} ms, for {target_ms:.0} ms",
                    times.len()
                );
                self.sink.push(key.row(
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
                    .push(key.row(Section::Error, 0, Metric::Failed, 1.0, note))?;
            }
        }
        Ok(())
    }

    /// `w` with the work the study calibrated for it, if it did.
    pub(super) fn sized(&self, w: StudyWorkload) -> StudyWorkload {
        match self.per_live.get(&w.label) {
            Some(&per_live) => w.with_allocated_per_live(per_live),
            None => w,
        }
    }
}
