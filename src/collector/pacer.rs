//! The pacer: when the next cycle starts.
//!
//! The rule, in bytes (the way Go's pacer states its heap goal): after a cycle ends, let
//! - `L` = the bytes live after it (marked, plus allocated black during it),
//! - `G` = the heap goal, [`GOAL`] of the heap less what every mutator's allocation
//!   buffers may hold,
//! - `E` = the bytes the mutators are predicted to allocate while the next cycle runs,
//!   up to its sweep (which gives room back page by page, faster than mutators
//!   allocate): `r × M`, where `M` is the bytes the last cycle marked and `r` the bytes
//!   allocated per byte marked during the cycles so far, smoothed over cycles
//!   (`r ← (r + r_last) / 2`), so that one slow cycle does not move the next start by
//!   itself.
//!
//! The next cycle is requested when the bytes allocated since the last one ended reach
//! `max(G − L − MARGIN × E, floor)`: as late as lets it finish before the heap reaches
//! its goal. `floor = min(max((G − L) / 2, heap / 64), (heap − L) / 2)` keeps cycles from
//! running back to back when the prediction says they should: every cycle lets at least
//! half of the free bytes be allocated, so a run of `A` bytes takes at most about
//! `2 × A ÷ (heap − live)` cycles; and it never waits for more than half of what the heap
//! still holds, so that a cycle whose black allocation left the heap nearly full is
//! followed by one requested before the heap fills, not by a full collection.
//! If a cycle cannot finish in that room, the mutator that finds the heap full waits for
//! it (an allocation stall, counted), and only an allocation that finds no room with no
//! cycle running falls back to a full collection.
//!
//! The same rule serves the stop-the-world collector (`none`), with a goal of the whole
//! heap ([`STW_GOAL`]) from its first collection on: its `E` is nothing (it allocates
//! nothing while it marks, and what the mutators allocate during its concurrent sweep
//! counts in `L`), so it collects when the heap is full, as a stop-the-world collector
//! should; starting earlier, or keeping a concurrent collector's margin, only runs it
//! more often. (With the concurrent goal it ran 26–27 collections of binary trees at
//! 132 MiB, 2× its live set, where bdwgc's stop-the-world collector ran 23 on the same
//! work under the same cap: each collection had 10% less room.)
//!
//! Fragmentation is the allocator's: pages with free cells are reused through the size
//! classes' lists, and the pages in use are only a floor near exhaustion: a cycle is also
//! requested when the free pages could not hold `MARGIN × E`, but never before `floor`
//! bytes were allocated since the last cycle (pages held by scattered survivors would
//! otherwise start cycles back to back).
//!
//! With pacing off ([`crate::HeapConfig::pacing`]) the trigger is fixed: a cycle starts
//! when `L` plus the bytes allocated since reach [`crate::HeapConfig::trigger`] of the
//! heap. With pacing on, that fraction of the goal starts a concurrent collector's first
//! cycle, before any has been measured (the stop-the-world collector's starts at its goal).
//!
//! What the mutators read is two thresholds, computed once per cycle: the poll after each
//! new run is a subtraction and two compares.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::heap::{HeapConfig, Space};
use crate::sys::PAGE_SIZE;

/// The share of the heap the pacer aims to finish each concurrent cycle below.
pub const GOAL: f64 = 0.95;
/// The same for the stop-the-world collector: the whole heap (less what the mutators'
/// allocation buffers may hold), from the first collection on.
pub const STW_GOAL: f64 = 1.0;
/// The safety factor on the predicted allocation during a cycle.
pub const MARGIN: f64 = 1.25;
/// The least marked bytes a cycle's ratio is taken over (a cycle that marked almost
/// nothing says nothing about the allocation rate per byte marked).
const MIN_MARKED: u64 = 64 << 10;

/// What one ended cycle tells the pacer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CycleEnd {
    /// `Space::bytes_allocated` now.
    pub allocated_now: u64,
    /// Bytes allocated from the cycle's start to its sweep.
    pub during: u64,
    /// Bytes the cycle marked by tracing.
    pub marked: u64,
    /// Bytes live after it (marked, plus allocated black during it).
    pub live: u64,
    /// Mutators registered.
    pub mutators: usize,
    /// A full collection: it measures nothing about the allocation during a cycle.
    pub full: bool,
}

/// The decision the pacer took at the end of a cycle, for the cycle log.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Schedule {
    /// Live bytes after the cycle (`L`).
    pub live: u64,
    /// The heap goal (`G`).
    pub goal: u64,
    /// The smoothed bytes allocated per byte marked (`r`); 0 before the first cycle.
    pub ratio: f64,
    /// The predicted allocation during the next cycle (`E`).
    pub predicted: u64,
    /// Bytes to allocate before the next cycle starts.
    pub trigger: u64,
    /// The least bytes allocated before a cycle starts for lack of free pages.
    pub floor: u64,
    /// Free pages below which a cycle starts (once `floor` bytes were allocated).
    pub page_floor: usize,
}

/// The pacer of one heap.
#[derive(Debug)]
pub(crate) struct Pacer {
    heap_bytes: u64,
    /// The stop-the-world collector's pacer (its goal is [`STW_GOAL`], not [`GOAL`]).
    stw: bool,
    pacing: bool,
    trigger_fraction: f64,
    /// `Space::bytes_allocated` when the last cycle ended.
    origin: AtomicU64,
    /// Bytes allocated since `origin` at which the next cycle is requested.
    trigger: AtomicU64,
    /// Bytes allocated since `origin` before free pages alone may request one.
    floor: AtomicU64,
    /// Free pages at or below which a cycle is requested (once past `floor`).
    page_floor: AtomicUsize,
    live: AtomicU64,
    /// The smoothed ratio, written by the collector thread at the end of each cycle.
    ratio: Mutex<Option<f64>>,
}

impl Pacer {
    pub(crate) fn new(config: &HeapConfig) -> Pacer {
        let heap_bytes = config.heap_bytes as u64;
        let stw = !config.barrier.kind().is_concurrent();
        let pacer = Pacer {
            heap_bytes,
            stw,
            pacing: config.pacing,
            trigger_fraction: config.trigger,
            origin: AtomicU64::new(0),
            trigger: AtomicU64::new(0),
            floor: AtomicU64::new(u64::MAX),
            page_floor: AtomicUsize::new(0),
            live: AtomicU64::new(0),
            ratio: Mutex::new(None),
        };
        let first = if config.pacing && stw {
            pacer.goal(1)
        } else if config.pacing {
            (config.trigger * pacer.goal(1) as f64) as u64
        } else {
            (config.trigger * heap_bytes as f64) as u64
        };
        pacer.trigger.store(first, Ordering::Relaxed);
        if config.pacing && stw {
            // Bytes allocated undercount the pages they fill (cells left over in pages of
            // their class): the first collection also starts when the free pages fall to
            // what one mutator may take at once, not only at the goal in bytes.
            pacer.floor.store(0, Ordering::Relaxed);
            pacer.page_floor.store(Self::reserve(1), Ordering::Relaxed);
        }
        pacer
    }

    /// The free pages the stop-the-world collector keeps in reserve with `mutators`
    /// mutators: what their allocation buffers may take at once, so that the allocation
    /// that crosses the goal requests a collection rather than finds no page.
    fn reserve(mutators: usize) -> usize {
        mutators.max(1) * Space::most_a_mutator_holds() / PAGE_SIZE
    }

    /// `G` with `mutators` mutators.
    fn goal(&self, mutators: usize) -> u64 {
        let share = if self.stw { STW_GOAL } else { GOAL };
        let held = (mutators.max(1) * Space::most_a_mutator_holds()) as u64;
        ((share * self.heap_bytes as f64) as u64).saturating_sub(held)
    }

    /// Whether a cycle should start, after the mutators have allocated `allocated` bytes
    /// in all, with `free_pages` pages left in the pool.
    #[inline]
    pub(crate) fn should_start(&self, allocated: u64, free_pages: usize) -> bool {
        let since = allocated.saturating_sub(self.origin.load(Ordering::Relaxed));
        since >= self.trigger.load(Ordering::Relaxed)
            || (since >= self.floor.load(Ordering::Relaxed)
                && free_pages <= self.page_floor.load(Ordering::Relaxed))
    }

    /// Bytes allocated since the last cycle ended.
    pub(crate) fn since(&self, allocated: u64) -> u64 {
        allocated.saturating_sub(self.origin.load(Ordering::Relaxed))
    }

    /// Live bytes after the last cycle.
    pub(crate) fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    /// Takes the measurements of a cycle that ended and sets the next start.
    pub(crate) fn cycle_ended(&self, end: CycleEnd) -> Schedule {
        let goal = self.goal(end.mutators);
        let ratio = {
            let mut r = self.ratio.lock();
            if !end.full {
                let last = end.during as f64 / end.marked.max(MIN_MARKED) as f64;
                *r = Some(r.map_or(last, |r| (r + last) / 2.0));
            }
            r.unwrap_or(0.0)
        };
        let predicted = (ratio * end.marked.max(MIN_MARKED) as f64) as u64;
        let room = goal.saturating_sub(end.live);
        // Never more than half of what the heap still holds: after a cycle whose black
        // allocation filled the heap past its goal, a floor of heap / 64 let the mutators
        // fill the rest before the next cycle was requested, and the allocation that found
        // no room fell back to a full collection (GCOld at 2x: 129.4 MiB live of 132 after
        // one cycle, the next due after 2.1 MiB).
        let headroom = self.heap_bytes.saturating_sub(end.live);
        let floor = (room / 2).max(self.heap_bytes / 64).min(headroom / 2);
        let (trigger, floor) = if self.pacing {
            let paced = room.saturating_sub((MARGIN * predicted as f64) as u64);
            (paced.max(floor), floor)
        } else {
            let fixed = (self.trigger_fraction * self.heap_bytes as f64) as u64;
            (fixed.saturating_sub(end.live), u64::MAX)
        };
        let page_floor = ((MARGIN * predicted as f64) as u64).div_ceil(PAGE_SIZE as u64) as usize;
        let page_floor = if self.stw && self.pacing {
            page_floor.max(Self::reserve(end.mutators))
        } else {
            page_floor
        };
        self.live.store(end.live, Ordering::Relaxed);
        self.trigger.store(trigger, Ordering::Relaxed);
        self.floor.store(floor, Ordering::Relaxed);
        self.page_floor.store(page_floor, Ordering::Relaxed);
        self.origin.store(end.allocated_now, Ordering::Relaxed);
        Schedule {
            live: end.live,
            goal,
            ratio,
            predicted,
            trigger,
            floor: if self.pacing { floor } else { 0 },
            page_floor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn pacer(pacing: bool) -> Pacer {
        Pacer::new(
            &HeapConfig::new()
                .heap_bytes(64 << 20)
                .pacing(pacing)
                .trigger(0.5),
        )
    }

    fn end(allocated_now: u64, during: u64, marked: u64) -> CycleEnd {
        CycleEnd {
            allocated_now,
            during,
            marked,
            live: marked + during,
            mutators: 1,
            full: false,
        }
    }

    #[test]
    fn the_first_cycle_starts_at_the_configured_share_of_the_goal() {
        let p = pacer(true);
        let goal = p.goal(1);
        assert!(!p.should_start(goal / 2 - 1, 1 << 20));
        assert!(p.should_start(goal / 2, 1 << 20));
    }

    #[test]
    fn the_stop_the_world_collector_collects_when_the_heap_is_full() {
        let p = Pacer::new(
            &HeapConfig::new()
                .heap_bytes(64 << 20)
                .barrier(crate::barrier::BarrierKind::None)
                .trigger(0.5),
        );
        // The whole heap less one mutator's buffers, from the first collection on (not
        // the configured share, which only a concurrent collector's first cycle uses).
        let goal = p.goal(1);
        assert_eq!(goal, 64 * MIB - Space::most_a_mutator_holds() as u64);
        let reserve = Pacer::reserve(1);
        assert!(!p.should_start(goal - 1, reserve + 1));
        assert!(p.should_start(goal, reserve + 1));
        // Bytes undercount pages: the free pages at the reserve start it too.
        assert!(p.should_start(0, reserve));
        // After a collection (nothing allocated while it marked): the next when the
        // heap is full again, with the same reserve.
        let s = p.cycle_ended(end(100 * MIB, 0, 20 * MIB));
        assert_eq!(s.predicted, 0, "{s:?}");
        assert_eq!(s.trigger, s.goal - s.live, "{s:?}");
        assert_eq!(s.page_floor, reserve, "{s:?}");
    }

    #[test]
    fn a_fast_allocator_starts_cycles_earlier_but_never_back_to_back() {
        let p = pacer(true);
        // 16 MiB live, 1 MiB allocated during the cycle: start late.
        let slow = p.cycle_ended(end(100 * MIB, MIB, 15 * MIB));
        let room = slow.goal - slow.live;
        assert!(slow.trigger > room / 2, "{slow:?}");
        assert_eq!(
            slow.trigger,
            room - (MARGIN * slow.predicted as f64) as u64,
            "{slow:?}"
        );
        // Allocation during cycles grows to 40 MiB: the smoothed prediction grows, and the
        // trigger stops at half the room.
        let mut s = slow;
        for _ in 0..8 {
            s = p.cycle_ended(end(200 * MIB, 40 * MIB, 15 * MIB));
        }
        assert!(s.predicted > slow.predicted);
        assert_eq!(s.trigger, s.floor);
        assert_eq!(s.floor, (s.goal - s.live) / 2);
        // The trigger counts from the end of the last cycle.
        assert!(!p.should_start(200 * MIB + s.trigger - 1, 1 << 20));
        assert!(p.should_start(200 * MIB + s.trigger, 1 << 20));
    }

    #[test]
    fn one_slow_cycle_moves_the_prediction_halfway() {
        let p = pacer(true);
        let a = p.cycle_ended(end(0, 4 * MIB, 16 * MIB));
        let b = p.cycle_ended(end(0, 12 * MIB, 16 * MIB));
        assert!((a.ratio - 0.25).abs() < 1e-9);
        assert!((b.ratio - 0.5).abs() < 1e-9, "{b:?}");
        // A full collection measures no concurrent allocation: the ratio stays.
        let c = p.cycle_ended(CycleEnd {
            full: true,
            ..end(0, 0, 16 * MIB)
        });
        assert_eq!(c.ratio, b.ratio);
    }

    #[test]
    fn a_heap_left_nearly_full_by_black_allocation_starts_the_next_cycle_before_it_fills() {
        let p = pacer(true);
        // 64 MiB heap: 16 MiB marked, 46.5 MiB allocated black during the cycle, so 62.5
        // MiB live, past the goal; 1.5 MiB left.
        let s = p.cycle_ended(end(100 * MIB, 46 * MIB + MIB / 2, 16 * MIB));
        assert!(s.live > s.goal, "{s:?}");
        assert_eq!(s.trigger, (64 * MIB - s.live) / 2, "{s:?}");
        assert!(
            s.trigger < 64 * MIB / 64,
            "below the old floor of heap / 64: {s:?}"
        );
        assert!(p.should_start(100 * MIB + s.trigger, 1 << 20));
        // With 4.5 MiB left, the floor of heap / 64 (1 MiB) still holds cycles apart.
        let near = p.cycle_ended(end(200 * MIB, 0, 59 * MIB + MIB / 2));
        assert_eq!(near.floor, MIB, "{near:?}");
    }

    #[test]
    fn free_pages_start_a_cycle_only_past_the_floor() {
        let p = pacer(true);
        let s = p.cycle_ended(end(0, 8 * MIB, 16 * MIB));
        assert!(s.page_floor > 0);
        assert!(!p.should_start(s.floor - 1, 0));
        assert!(p.should_start(s.floor, s.page_floor));
        assert!(!p.should_start(s.floor, s.page_floor + 1));
    }

    #[test]
    fn without_pacing_the_trigger_is_a_fixed_occupancy() {
        let p = pacer(false);
        assert!(!p.should_start(32 * MIB - 1, 0));
        assert!(p.should_start(32 * MIB, 0));
        let s = p.cycle_ended(end(50 * MIB, 0, 10 * MIB));
        assert_eq!(s.trigger, 22 * MIB);
        assert!(
            !p.should_start(50 * MIB + 22 * MIB - 1, 0),
            "pages never start it"
        );
    }
}
