//! GCOld's knobs and its allocation model: what a run of given parameters builds,
//! allocates and stores, computed without running it (for the driver's estimates, the
//! study's scaling and the tests).
//!
//! Everything here is arithmetic on the parameters; it must never touch a heap, so that
//! the model and the run ([`super::GcOld`]) can be checked against each other.

use crate::error::{Error, Result};
use crate::workload::cell_bytes;

/// GCOld's knobs ([`crate::workload::gcold`] maps them to its command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOldParams {
    /// Bytes of long-lived trees per thread, rounded down to whole trees (at least one).
    pub live_bytes: u64,
    /// Levels of each long-lived tree (GCOld: 14); 2 to 24.
    pub tree_height: u32,
    /// Short-lived bytes allocated per step (GCOld: 10⁶); at least 1.
    pub step_bytes: u64,
    /// Short-lived bytes per promoted byte (GCOld's `ratio`); at least 1.
    pub short_per_long: u64,
    /// Pointer mutations into the old trees per step (GCOld's `mutation`).
    pub mutations_per_step: u64,
    /// Mutator work per step, in GCOld's units (`work × step_bytes / 10` iterations).
    pub work_units: u64,
    /// Steps per thread.
    pub steps: u64,
    /// Seed of the random choices.
    pub seed: u64,
}

impl Default for GcOldParams {
    /// Larceny's default run, `GCOld 25 0 10 10`, with 400 steps (about 440 MB of
    /// allocation per thread).
    fn default() -> Self {
        GcOldParams {
            live_bytes: 25_000_000,
            tree_height: 14,
            step_bytes: 1_000_000,
            short_per_long: 10,
            mutations_per_step: 10,
            work_units: 0,
            steps: 400,
            seed: 42,
        }
    }
}

/// A mutation-rate sweep for the study: pointer mutations per step of 10⁶ short-lived
/// bytes, from none to one per 10 bytes.
pub const MUTATION_SWEEP: [u64; 6] = [0, 10, 100, 1_000, 10_000, 100_000];

/// Promoted bytes left over below this many are not built (GCOld's `INSIGNIFICANT`).
pub const INSIGNIFICANT: u64 = 999;

/// A short-lived object: 100 words of payload (GCOld's `WORDS_DEAD`).
pub(super) const YOUNG_PAYLOAD: usize = 100 * 8;
pub(super) const LEFT: usize = 0;
pub(super) const RIGHT: usize = 1;
/// A node's payload: its height in the low 32 bits, [`TAG`] in the high 32.
pub(super) const NODE_PAYLOAD: usize = 8;
pub(super) const TAG: u64 = 0x6763_6f6c;
/// Safepoint polls in the mutator work's counting loop: every this many iterations
/// (tens of microseconds; the pointer mutations poll at every swap).
pub(super) const WORK_POLL: u64 = 1 << 16;

/// What one step promotes, the same every step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotionPlan {
    /// Whole trees that replace the oldest ones.
    pub full_trees: u64,
    /// Heights of the smaller trees that replace subtrees, largest first.
    pub partial_heights: Vec<u32>,
}

impl GcOldParams {
    /// Bytes of a node's cell.
    pub fn node_bytes() -> u64 {
        cell_bytes(2, NODE_PAYLOAD)
    }

    /// Bytes of a short-lived object's cell.
    pub fn young_bytes() -> u64 {
        cell_bytes(0, YOUNG_PAYLOAD)
    }

    /// Nodes of a complete tree of `height` levels.
    pub fn tree_nodes(height: u32) -> u64 {
        (1u64 << height) - 1
    }

    /// Bytes of a complete tree of `height` levels.
    pub fn tree_bytes(height: u32) -> u64 {
        Self::tree_nodes(height) * Self::node_bytes()
    }

    /// The height of the largest complete tree in `bytes` (0 if not even a node fits).
    pub fn height_for(bytes: u64) -> u32 {
        let nodes = bytes / Self::node_bytes();
        // The largest h with 2^h - 1 <= nodes.
        (nodes + 1).ilog2()
    }

    /// Long-lived trees per thread.
    pub fn trees(&self) -> u64 {
        (self.live_bytes / Self::tree_bytes(self.tree_height)).max(1)
    }

    /// Bytes promoted per step, before rounding to trees.
    pub fn promoted_per_step(&self) -> u64 {
        self.step_bytes / self.short_per_long.max(1)
    }

    /// The trees one step builds to promote [`GcOldParams::promoted_per_step`] bytes.
    pub fn plan(&self) -> PromotionPlan {
        let full = Self::tree_bytes(self.tree_height);
        let mut rest = self.promoted_per_step() % full;
        let mut partial_heights = Vec::new();
        while rest > INSIGNIFICANT {
            let h = Self::height_for(rest);
            partial_heights.push(h);
            rest -= Self::tree_bytes(h);
        }
        PromotionPlan {
            full_trees: self.promoted_per_step() / full,
            partial_heights,
        }
    }

    /// Short-lived objects per step.
    pub fn young_per_step(&self) -> u64 {
        self.step_bytes.div_ceil(Self::young_bytes())
    }

    /// Subtree swaps per step: the mutations left after the partial replacements, two per
    /// swap (as GCOld: an odd remainder is not made).
    pub fn swaps_per_step(&self) -> u64 {
        let partial = self.plan().partial_heights.len() as u64;
        self.mutations_per_step.saturating_sub(partial) / 2
    }

    /// Pointer mutations per step as GCOld counts them: one per partial replacement, two
    /// per swap.
    pub fn mutations_made_per_step(&self) -> u64 {
        self.plan().partial_heights.len() as u64 + 2 * self.swaps_per_step()
    }

    /// Bytes allocated before the first step: the array and the trees.
    pub fn setup_bytes(&self) -> u64 {
        cell_bytes(self.trees() as usize, 0) + self.trees() * Self::tree_bytes(self.tree_height)
    }

    /// Bytes promoted per step, as built.
    pub fn promoted_bytes_per_step(&self) -> u64 {
        let plan = self.plan();
        let partial: u64 = plan
            .partial_heights
            .iter()
            .map(|&h| Self::tree_bytes(h))
            .sum();
        plan.full_trees * Self::tree_bytes(self.tree_height) + partial
    }

    /// Bytes allocated per step: the short-lived objects and the promoted trees.
    pub fn bytes_per_step(&self) -> u64 {
        self.young_per_step() * Self::young_bytes() + self.promoted_bytes_per_step()
    }

    /// The share of each step's allocation that becomes long-lived.
    pub fn promoted_share(&self) -> f64 {
        self.promoted_bytes_per_step() as f64 / self.bytes_per_step().max(1) as f64
    }

    /// Pointer mutations per MiB allocated: the mutation rate against all allocation.
    pub fn mutations_per_mib(&self) -> f64 {
        self.mutations_made_per_step() as f64 * (1u64 << 20) as f64
            / self.bytes_per_step().max(1) as f64
    }

    /// Reference stores and payload writes per thread: a link per node but a tree's top
    /// (linked into the array or into the tree it replaces a subtree of), a payload
    /// write per node, and two stores per swap.
    pub fn stores(&self) -> u64 {
        let tree = |h: u32| 2 * Self::tree_nodes(h);
        let plan = self.plan();
        let per_step = plan.full_trees * tree(self.tree_height)
            + plan.partial_heights.iter().map(|&h| tree(h)).sum::<u64>()
            + 2 * self.swaps_per_step();
        self.trees() * tree(self.tree_height) + per_step * self.steps
    }

    /// Checks that the knobs make a run.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(format!("gcold: {what}")));
        if !(2..=24).contains(&self.tree_height) {
            return bad(format!("tree height {} is not in 2..=24", self.tree_height));
        }
        if self.step_bytes == 0 || self.short_per_long == 0 {
            return bad("step_bytes and short_per_long must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_node_cell() {
        assert_eq!(GcOldParams::node_bytes(), 32);
        assert_eq!(GcOldParams::young_bytes(), 816);
        assert_eq!(GcOldParams::tree_nodes(14), 16_383);
        assert_eq!(GcOldParams::tree_bytes(14), 524_256);
        for h in 1..20 {
            let b = GcOldParams::tree_bytes(h);
            assert_eq!(GcOldParams::height_for(b), h, "exactly one tree of {h}");
            assert_eq!(GcOldParams::height_for(b - 1), h - 1, "just short of {h}");
            assert_eq!(GcOldParams::height_for(2 * b + 31), h, "two trees of {h}");
        }
        assert_eq!(GcOldParams::height_for(31), 0);
    }

    #[test]
    fn the_default_run_is_larcenys_gcold_25_0_10_10() {
        let p = GcOldParams::default();
        assert_eq!(p.trees(), 25_000_000 / 524_256);
        // 100,000 promoted bytes: no whole tree; trees of 11, 10 and 5 levels (98,272
        // bytes), and 768 bytes left, below INSIGNIFICANT.
        let plan = p.plan();
        assert_eq!(plan.full_trees, 0);
        assert_eq!(plan.partial_heights, [11, 10, 5]);
        assert_eq!(p.promoted_bytes_per_step(), 32 * (2047 + 1023 + 31));
        // Ten mutations: three replacements, then three swaps (the odd one is not made).
        assert_eq!(p.swaps_per_step(), 3);
        assert_eq!(p.mutations_made_per_step(), 9);
        assert_eq!(p.young_per_step(), 1_000_000u64.div_ceil(816));
        let share = p.promoted_share();
        assert!(
            (share - 99_232.0 / (1226.0 * 816.0 + 99_232.0)).abs() < 1e-12,
            "{share}"
        );
    }

    #[test]
    fn a_plan_promotes_what_the_ratio_asks_within_insignificant_bytes() {
        for (ratio, step) in [(1, 1_000_000), (2, 3_000_000), (10, 1_000_000), (7, 12_345)] {
            let p = GcOldParams {
                short_per_long: ratio,
                step_bytes: step,
                ..GcOldParams::default()
            };
            let want = p.promoted_per_step();
            let got = p.promoted_bytes_per_step();
            // Each partial tree takes the most it can, so what is left after the last one
            // is not enough for a tree of one more node than the last.
            assert!(
                got <= want && want - got <= INSIGNIFICANT,
                "ratio {ratio}: {got} of {want}"
            );
            let heights = p.plan().partial_heights;
            assert!(heights.windows(2).all(|w| w[0] > w[1]), "{heights:?}");
            assert!(heights.iter().all(|&h| h < p.tree_height), "{heights:?}");
        }
    }

    #[test]
    fn validate_rejects_what_cannot_run() {
        let ok = GcOldParams::default();
        assert!(ok.validate().is_ok());
        for bad in [
            GcOldParams {
                tree_height: 1,
                ..ok
            },
            GcOldParams {
                tree_height: 25,
                ..ok
            },
            GcOldParams {
                short_per_long: 0,
                ..ok
            },
            GcOldParams {
                step_bytes: 0,
                ..ok
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(Error::InvalidArgument(_))),
                "{bad:?}"
            );
        }
    }
}
