//! The phases allocations must be seen in, and the counts the threads share.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use barrierlab::{BarrierKind, Phase};

use super::PHASES;

/// Where allocations must be observed: at least one allocation in a phase of each group.
///
/// After the remark pause the collector sweeps, disarming the tracker ahead of the sweep
/// a chunk at a time (a page tracker unprotects each chunk before the sweep zeroes its
/// dead cells), then ends the disarm. So every protection change after remark happens
/// in `Sweep`, while mutators allocate and are handed pages the steps have not reached
/// yet: that is the phase required. The last step, `Disarm`, has nothing left to
/// unprotect once the sweep has covered the heap, and lasts a few clock reads for every
/// tracker; an allocation lands in it only when the collector thread happens to be
/// preempted there, so it is not required.
fn required(kind: BarrierKind) -> &'static [&'static [Phase]] {
    use Phase::*;
    match kind {
        BarrierKind::None => &[&[Idle], &[Sweep]],
        _ => &[&[Arm], &[ConcurrentMark], &[Preclean], &[Sweep]],
    }
}

/// A group of [`required`], for messages: `disarm/remark`.
fn group_name(g: &[Phase]) -> String {
    g.iter().map(|p| p.name()).collect::<Vec<_>>().join("/")
}

/// The phases that are pauses: an allocation that saw one raced it (right after it).
pub(crate) fn is_pause(p: Phase) -> bool {
    matches!(p, Phase::InitialMark | Phase::Remark | Phase::StopTheWorld)
}

/// What the threads of one configuration share.
pub(crate) struct Shared {
    /// Allocations by the phase seen just before them (flushed at each verify).
    pub(crate) phases: [AtomicU64; PHASES],
    /// Of those, large objects.
    pub(crate) large_phases: [AtomicU64; PHASES],
    /// Set by a thread that panics, so that the others stop.
    pub(crate) abort: AtomicBool,
    /// Mutator threads still running (the collecting thread stops at 0).
    pub(crate) running: AtomicUsize,
}

impl Shared {
    pub(crate) fn histogram(&self) -> [u64; PHASES] {
        std::array::from_fn(|i| self.phases[i].load(Ordering::Relaxed))
    }

    /// The groups of [`required`] with no allocation yet, and, for a concurrent barrier,
    /// pre-clean if no large object was allocated in it yet.
    pub(crate) fn missing(&self, kind: BarrierKind) -> Vec<String> {
        let h = self.histogram();
        let mut missing: Vec<String> = required(kind)
            .iter()
            .filter(|g| g.iter().all(|&p| h[p as usize] == 0))
            .map(|g| group_name(g))
            .collect();
        if kind.is_concurrent()
            && self.large_phases[Phase::Preclean as usize].load(Ordering::Relaxed) == 0
        {
            missing.push("a large object in pre-clean".into());
        }
        missing
    }
}

/// Formats a phase histogram: `idle 12, arm 3, …` (phases with no allocation left out).
pub(crate) fn show(h: &[u64; PHASES]) -> String {
    Phase::ALL
        .iter()
        .filter(|&&p| h[p as usize] > 0)
        .map(|&p| format!("{} {}", p.name(), h[p as usize]))
        .collect::<Vec<_>>()
        .join(", ")
}
