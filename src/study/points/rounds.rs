//! The invocation rounds of the end-to-end and barrier-only points, and the study's time
//! budget.
//!
//! A part's points are grouped into **blocks**: every variant of one (workload, threads,
//! heap), huge-page runs included. A round gives every block one invocation of each of
//! its variants, back to back, in a fresh random order inside the block, the blocks
//! themselves in a random order (seeded). So invocation `k` of a variant and of the
//! baseline beside it ran seconds apart, at the host's speed of that moment, and the
//! report forms their ratio pair by pair ([`crate::study::stats::Design::Blocks`]): the
//! host's drift over the study, tens of percent on a shared machine, then cancels
//! instead of widening every interval.
//!
//! Every block first gets [`InvocationPolicy::min`] rounds (a barrier-only block at
//! least [`crate::study::StudyConfig::barrier_only_min_invocations`]) ([`Runner::first_round`]).
//! Once both parts have had theirs, more rounds go to each block one of whose variants is
//! not yet settled: its paired wall-time ratio to the block's `none` (or, without one,
//! its median wall time) has a 95% interval still wider than
//! [`InvocationPolicy::target_width`] of the estimate; up to [`InvocationPolicy::max`]
//! rounds, the two parts' blocks interleaved ([`Runner::more_rounds`]). With a budget
//! ([`InvocationPolicy::budget_s`]) an extra round of a block starts only while the
//! study's time so far, plus the block's mean round time, plus [`RENDER_RESERVE_S`],
//! stays within it; the first that would not ends the extras, and the points then still
//! wide are counted (`meta.json`'s `cut_by_budget`, and the report's header). The minimum
//! invocations are never cut: the budget buys precision, not results.

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

use super::{Planned, Runner};
use crate::error::Result;
use crate::study::config::RENDER_RESERVE_S;
use crate::study::data::{At, Metric, Row, select_numbered};
use crate::study::meta::InvocationPolicy;
use crate::study::runner::{Key, classify, invoke};
use crate::study::stats::{self, Design};

/// A part's points and what each has had so far.
#[derive(Default)]
pub(in crate::study) struct Batch {
    points: Vec<Planned>,
    /// The points grouped by (workload, threads, heap), in the order first seen.
    blocks: Vec<Vec<usize>>,
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
        let blocks = blocks_of(points.iter().map(|p| &p.key));
        Batch {
            points,
            blocks,
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

    /// The mean time of block `b`'s rounds so far (s; 0 before its first).
    fn mean_round_s(&self, b: usize) -> f64 {
        (self.blocks[b].iter())
            .map(|&p| self.took_s[p] / self.done[p].max(1) as f64)
            .sum()
    }
}

/// The indices of `keys` grouped by (workload, threads, heap), groups in the order of
/// their first member.
fn blocks_of<'k>(keys: impl Iterator<Item = &'k Key>) -> Vec<Vec<usize>> {
    let mut blocks: Vec<(&'k Key, Vec<usize>)> = Vec::new();
    for (i, key) in keys.enumerate() {
        let same = |k: &Key| {
            k.workload == key.workload
                && k.threads == key.threads
                && k.heap_mib.total_cmp(&key.heap_mib).is_eq()
        };
        match blocks.iter_mut().find(|(k, _)| same(k)) {
            Some((_, members)) => members.push(i),
            None => blocks.push((key, vec![i])),
        }
    }
    blocks.into_iter().map(|(_, members)| members).collect()
}

/// One round over `blocks` (indices into them): the blocks in a random order, each
/// block's members back to back in a random order of their own.
fn round_order(blocks: &[Vec<usize>], which: &[usize], rng: &mut SmallRng) -> Vec<usize> {
    let mut order = which.to_vec();
    order.shuffle(rng);
    order
        .into_iter()
        .flat_map(|b| {
            let mut members = blocks[b].clone();
            members.shuffle(rng);
            members
        })
        .collect()
}

impl Runner<'_> {
    /// Every block of `batch` gets the policy's fewest rounds (the module doc).
    pub(super) fn first_round(&mut self, batch: &mut Batch) -> Result<()> {
        let mut rng = SmallRng::seed_from_u64(batch.seed);
        let all: Vec<usize> = (0..batch.blocks.len()).collect();
        self.bar.grow((batch.points.len() * batch.min) as u64);
        for _ in 0..batch.min {
            for p in round_order(&batch.blocks, &all, &mut rng) {
                self.invoke_point(batch, p)?;
            }
        }
        Ok(())
    }

    /// Rounds of one more invocation of every variant of each block of `batches` not yet
    /// settled, the blocks in a random order, until every block has settled or the budget
    /// is spent (the module doc). Returns the points left unsettled by the budget
    /// (`None` if it did not stop them).
    pub(super) fn more_rounds(&mut self, batches: &mut [Batch]) -> Result<Option<usize>> {
        let policy = self.config.invocations;
        let mut rng = SmallRng::seed_from_u64(self.config.seed ^ 0x6d6f7265);
        loop {
            // (batch, block, its points still unsettled)
            let mut jobs: Vec<(usize, usize, usize)> = Vec::new();
            for (b, batch) in batches.iter().enumerate() {
                for (k, block) in batch.blocks.iter().enumerate() {
                    let open = (block.iter())
                        .filter(|&&p| {
                            !batch.skip[p] && !self.settled(batch, p, policy.target_width)
                        })
                        .count();
                    if open > 0 {
                        jobs.push((b, k, open));
                    }
                }
            }
            if jobs.is_empty() {
                return Ok(None);
            }
            jobs.shuffle(&mut rng);
            self.bar.grow(
                jobs.iter()
                    .map(|&(b, k, _)| batches[b].blocks[k].len() as u64)
                    .sum(),
            );
            for (i, &(b, k, _)) in jobs.iter().enumerate() {
                if let Some(budget) = policy.budget_s {
                    let spent = self.started.elapsed().as_secs_f64();
                    if spent + batches[b].mean_round_s(k) + RENDER_RESERVE_S > budget {
                        return Ok(Some(jobs[i..].iter().map(|&(_, _, open)| open).sum()));
                    }
                }
                let batch = &mut batches[b];
                for p in round_order(&batch.blocks, &[k], &mut rng) {
                    if batch.done[p] < batch.max {
                        self.invoke_point(batch, p)?;
                    }
                }
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

    /// Whether point `p` of `batch` has what it needs: its wall time's paired ratio to
    /// the `none` of its block and section (or, for `none` and where there is none, its
    /// median wall time) known within `target_width` of the estimate (from three values
    /// or more), or the batch's most invocations, or no valid invocation after the fewest.
    /// `none` itself is settled once it has had the fewest: its precision is its
    /// variants'.
    fn settled(&self, batch: &Batch, p: usize, target_width: f64) -> bool {
        let done = batch.done[p];
        if done >= batch.max {
            return true;
        }
        if done < batch.min {
            return false;
        }
        let Planned { key, section, .. } = &batch.points[p];
        if key.tracker == "none" {
            return true;
        }
        let wall = |tracker: &str| {
            select_numbered(
                &self.sink.rows,
                At::new(*section, &key.workload, key.threads, Some(key.heap_mib)),
                tracker,
                Metric::WallMs,
            )
        };
        let own = wall(&key.tracker);
        // No valid invocation after the minimum: more would not make one. Fewer than
        // three values: their interval says little (two values' t interval is 12.7
        // standard errors wide either side).
        if own.len() < 3 {
            return own.is_empty();
        }
        let seed = stats::seed_for(self.config.seed, &format!("settle/{key:?}"));
        let none = wall("none");
        let interval = if none.is_empty() {
            stats::median_ci(&own.iter().map(|&(_, v)| v).collect::<Vec<_>>(), seed)
        } else {
            stats::ratio_to(Design::Blocks, &own, &none, seed)
        };
        interval.is_some_and(|i| (i.hi - i.lo) / i.estimate.abs() <= target_width)
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

    fn key(tracker: &str, workload: &str, heap_mib: f64) -> Key {
        Key {
            tracker: tracker.into(),
            workload: workload.into(),
            threads: 1,
            heap_mib,
        }
    }

    #[test]
    fn every_variant_of_a_workload_and_heap_is_one_block() {
        let keys = [
            key("none", "lru", 140.0),
            key("none", "lru", 210.0),
            key("mprotect", "lru", 140.0),
            key("none", "graph", 140.0),
            key("mprotect", "lru", 210.0),
            // A huge-page run of a point has the same key as its `macro` run.
            key("mprotect", "lru", 140.0),
        ];
        assert_eq!(
            blocks_of(keys.iter()),
            vec![vec![0, 2, 5], vec![1, 4], vec![3]]
        );
    }

    #[test]
    fn a_round_runs_each_block_back_to_back_in_a_fresh_order() {
        let blocks = vec![vec![0, 1, 2, 3], vec![4, 5, 6], vec![7, 8]];
        let mut rng = SmallRng::seed_from_u64(9);
        let rounds: Vec<Vec<usize>> = (0..8)
            .map(|_| round_order(&blocks, &[0, 1, 2], &mut rng))
            .collect();
        for order in &rounds {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(
                sorted,
                (0..9).collect::<Vec<_>>(),
                "each point once: {order:?}"
            );
            // Contiguous: a block's members follow one another.
            let block_of = |p: usize| blocks.iter().position(|b| b.contains(&p)).unwrap();
            let runs = order
                .windows(2)
                .filter(|w| block_of(w[0]) != block_of(w[1]))
                .count();
            assert_eq!(runs, 2, "three blocks, two changes between them: {order:?}");
        }
        assert!(
            rounds.windows(2).any(|w| w[0] != w[1]),
            "the order is drawn afresh each round"
        );
        // A round of chosen blocks runs only those.
        let one = round_order(&blocks, &[1], &mut rng);
        assert_eq!(one.len(), 3);
        assert!(one.iter().all(|p| blocks[1].contains(p)));
    }
}
