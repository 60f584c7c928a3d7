//! The invocation rounds of the end-to-end and barrier-only points, and the study's time
//! budget.
//!
//! Every point first gets [`InvocationPolicy::min`] invocations (a barrier-only point at
//! least [`crate::study::StudyConfig::barrier_only_min_invocations`]), all of a part's points'
//! invocations in a seeded random order ([`Runner::first_round`]). Once both parts have
//! had theirs, rounds of one more invocation go to each point whose 95% interval of the
//! median wall time is still wider than [`InvocationPolicy::target_width`] of the median,
//! up to [`InvocationPolicy::max`], the two parts' points interleaved
//! ([`Runner::more_rounds`]). With a budget ([`InvocationPolicy::budget_s`]) an extra
//! invocation starts only while the study's time so far, plus that point's mean
//! invocation time, plus [`RENDER_RESERVE_S`], stays within it; the first invocation
//! that would not ends the extras, and the points then still wide are counted
//! (`meta.json`'s `cut_by_budget`, and the report's header). The minimum invocations are
//! never cut: the budget buys precision, not results.

use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::{Planned, Runner};
use crate::error::Result;
use crate::study::config::RENDER_RESERVE_S;
use crate::study::data::{Metric, Row};
use crate::study::meta::InvocationPolicy;
use crate::study::runner::{classify, invoke};
use crate::study::stats;

/// A part's points and what each has had so far.
#[derive(Default)]
pub(in crate::study) struct Batch {
    points: Vec<Planned>,
    /// Invocations made, per point.
    done: Vec<usize>,
    /// Points whose variant cannot run (the first invocation said why).
    skip: Vec<bool>,
    /// Seconds their invocations took, process start to exit, per point.
    took_s: Vec<f64>,
    /// Seed of the first round's order.
    seed: u64,
    /// The fewest and the most invocations of each point.
    min: usize,
    max: usize,
}

impl Batch {
    /// `points`, none invoked yet, each to get `policy`'s invocations; `seed` orders the
    /// first round.
    pub(super) fn new(points: Vec<Planned>, seed: u64, policy: &InvocationPolicy) -> Batch {
        let n = points.len();
        Batch {
            points,
            done: vec![0; n],
            skip: vec![false; n],
            took_s: vec![0.0; n],
            seed,
            min: policy.min,
            max: policy.max,
        }
    }

    /// At least `min` invocations of each point (and as many more at most as the
    /// policy's most allows beyond its fewest).
    pub(super) fn at_least(mut self, min: usize) -> Batch {
        if min > self.min {
            self.max += min - self.min;
            self.min = min;
        }
        self
    }

    /// The mean time of point `p`'s invocations so far (s; 0 before its first).
    fn mean_s(&self, p: usize) -> f64 {
        self.took_s[p] / self.done[p].max(1) as f64
    }
}

impl Runner<'_> {
    /// Every point of `batch` gets the policy's minimum invocations, in a random order.
    pub(super) fn first_round(&mut self, batch: &mut Batch) -> Result<()> {
        let min = batch.min;
        let mut jobs: Vec<usize> = (0..batch.points.len())
            .flat_map(|p| std::iter::repeat_n(p, min))
            .collect();
        jobs.shuffle(&mut rand::rngs::SmallRng::seed_from_u64(batch.seed));
        self.bar.grow(jobs.len() as u64);
        for p in jobs {
            self.invoke_point(batch, p)?;
        }
        Ok(())
    }

    /// Rounds of one more invocation for every point of `batches` not yet settled, in a
    /// random order, until every point has settled or the budget is spent (the module
    /// doc). Returns the points left unsettled by the budget (`None` if it did not stop
    /// them).
    pub(super) fn more_rounds(&mut self, batches: &mut [Batch]) -> Result<Option<usize>> {
        let policy = self.config.invocations;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(self.config.seed ^ 0x6d6f7265);
        loop {
            let mut jobs: Vec<(usize, usize)> = Vec::new();
            for (b, batch) in batches.iter().enumerate() {
                for p in 0..batch.points.len() {
                    if !batch.skip[p] && !self.settled(batch, p, policy.target_width) {
                        jobs.push((b, p));
                    }
                }
            }
            if jobs.is_empty() {
                return Ok(None);
            }
            jobs.shuffle(&mut rng);
            self.bar.grow(jobs.len() as u64);
            for (i, &(b, p)) in jobs.iter().enumerate() {
                if let Some(budget) = policy.budget_s {
                    let spent = self.started.elapsed().as_secs_f64();
                    if spent + batches[b].mean_s(p) + RENDER_RESERVE_S > budget {
                        return Ok(Some(jobs.len() - i));
                    }
                }
                self.invoke_point(&mut batches[b], p)?;
            }
        }
    }

    /// One invocation of point `p` of `batch`: its rows to the sink, or, where its
    /// variant cannot run, the point skipped from then on and the reason kept.
    fn invoke_point(&mut self, batch: &mut Batch, p: usize) -> Result<()> {
        let Planned {
            key,
            point,
            multiple,
            section,
        } = &batch.points[p];
        let done = batch.done[p];
        self.bar.step(format!(
            "{} {} x{} {:.0} MiB #{done}",
            key.workload, key.tracker, key.threads, key.heap_mib
        ));
        if batch.skip[p] {
            return Ok(());
        }
        let t0 = std::time::Instant::now();
        let ran = invoke(&self.exe, &self.spec(point.clone(), 0), self.config.timeout);
        batch.took_s[p] += t0.elapsed().as_secs_f64();
        match classify(key, done, ran) {
            Ok(mut rows) => {
                if multiple.is_finite() && rows.iter().any(|r| r.section == *section) {
                    rows.push(key.row(
                        *section,
                        done,
                        Metric::HeapMultiple,
                        *multiple,
                        String::new(),
                    ));
                }
                rows.into_iter().try_for_each(|r: Row| self.sink.push(r))?;
            }
            Err(why) => {
                batch.skip[p] = true;
                let tracker = key.tracker.clone();
                self.unavailable(tracker, why);
            }
        }
        batch.done[p] += 1;
        Ok(())
    }

    /// Whether point `p` of `batch` has what it needs: its wall-time interval within
    /// `target_width` of its median (from three values or more), or the batch's most
    /// invocations, or no valid invocation after the fewest.
    fn settled(&self, batch: &Batch, p: usize, target_width: f64) -> bool {
        let done = batch.done[p];
        if done >= batch.max {
            return true;
        }
        if done < batch.min {
            return false;
        }
        let Planned { key, section, .. } = &batch.points[p];
        let wall: Vec<f64> = self
            .sink
            .rows
            .iter()
            .filter(|r| {
                r.section == *section
                    && r.metric == Metric::WallMs
                    && r.tracker == key.tracker
                    && r.workload == key.workload
                    && r.threads == key.threads
                    && r.heap_mib == key.heap_mib
            })
            .map(|r| r.value)
            .collect();
        // No valid invocation after the minimum: more would not make one. Fewer than
        // three values: their bootstrap interval says nothing (one value's is zero wide).
        if wall.len() < 3 {
            return wall.is_empty();
        }
        let seed = stats::seed_for(self.config.seed, &format!("settle/{key:?}"));
        stats::median_ci(&wall, seed)
            .is_some_and(|i| (i.hi - i.lo) / i.estimate.abs() <= target_width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_raised_to_more_invocations_keeps_the_policys_room_for_extras() {
        let policy = InvocationPolicy {
            min: 3,
            max: 5,
            target_width: 0.1,
            budget_s: None,
        };
        let b = Batch::new(Vec::new(), 1, &policy).at_least(5);
        assert_eq!((b.min, b.max), (5, 7));
        let b = Batch::new(Vec::new(), 1, &policy).at_least(2);
        assert_eq!((b.min, b.max), (3, 5), "never fewer than the policy's");
    }
}
