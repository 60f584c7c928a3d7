//! The planted bugs a heap can be built with, for the crate's own tests: [`Testing`],
//! set through `HeapConfig::testing` with the `lab-internals` feature (and reached as
//! `barrierlab::internals::Testing`). Without the feature nothing can set them, and a
//! heap runs with all of them off.

/// Planted bugs, for testing the verifier, the collector's failure paths and the tests
/// themselves: a heap configured with any of these loses writes or fails on purpose. Reached as
/// `barrierlab::internals::Testing` by the crate's tests, with the `lab-internals` feature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Testing {
    /// Drop every n-th harvested dirty granule, as a broken tracker would.
    pub drop_every_nth_dirty: Option<usize>,
    /// Hand pages to the allocator writable but not recorded, as a heap that forgot the
    /// frontier rule would (`TestKnobs::forget_hand_outs`): writes into
    /// objects allocated during a cycle are lost to a page tracker's record.
    #[cfg_attr(not(feature = "lab-internals"), allow(dead_code))]
    pub forget_hand_outs: bool,
    /// Tell the tracker that no page holds a marked object
    /// (`DirtyTracker::harvest_marked`), as a collector that broke its side of that
    /// contract would: the young pages arm kept writable are never harvested, so writes
    /// into the objects on them that the mark has already scanned are lost.
    pub deny_marks: bool,
    /// Fail (panic, as a bug in the collector would) at the end of the work of every
    /// pause of this cycle (numbered from 1), before the pause resumes the world.
    pub fail_in_pause_of_cycle: Option<u64>,
    /// Fail (panic) in every marker helper thread that joins a parallel drain in a pause.
    pub fail_in_marker: bool,
    /// Pace the mutators from the first pre-clean round on, whatever the rounds find
    /// (with [`crate::HeapConfig::preclean_pacing`] set), and keep pacing on for at
    /// least 5 ms before remark (`collector/pace.rs`, `TEST_HOLD`), so that a mutator
    /// that polls often is sure to owe a wait: forces the pacing path, which changes
    /// when the mutators run, never what is recorded.
    pub pace_from_first_round: bool,
}
