//! What the collector records: every pause, and a summary of every cycle.

use std::time::Duration;

use super::pacer::Schedule;
use crate::barrier::{BarrierKind, TrackerStats};

/// Which pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PauseKind {
    /// Roots snapshot of a concurrent cycle.
    InitialMark,
    /// Final rescan of a concurrent cycle.
    Remark,
    /// A whole stop-the-world mark (`none`, or a tracker that could not arm).
    StopTheWorld,
    /// A full collection for an allocation that found no room: mark and sweep in one
    /// pause, every mutator's allocation buffers returned first.
    Full,
}

impl PauseKind {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            PauseKind::InitialMark => "initial-mark",
            PauseKind::Remark => "remark",
            PauseKind::StopTheWorld => "stop-the-world",
            PauseKind::Full => "full",
        }
    }
}

/// What the collector is doing ([`crate::Heap::phase`]): the steps of a cycle, in the
/// order of the collector module's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// No cycle is running.
    Idle = 0,
    /// 1. Arming the tracker.
    Arm,
    /// 2. The initial-mark pause.
    InitialMark,
    /// 3. Concurrent marking.
    ConcurrentMark,
    /// 4. Pre-cleaning.
    Preclean,
    /// 5. The remark pause.
    Remark,
    /// The whole mark in one pause (`none`, or a tracker that could not arm).
    StopTheWorld,
    /// 6. Sweeping (and disarming the tracker ahead of the sweep).
    Sweep,
    /// 7. Disarming the tracker: what the sweep's steps left.
    Disarm,
    /// Barrier-only mode: the tracker armed on its duty cycle, no collection running
    /// ([`crate::HeapConfig::duty_cycle`]).
    Duty,
}

impl Phase {
    /// Every phase, in cycle order.
    pub const ALL: [Phase; 10] = [
        Phase::Idle,
        Phase::Arm,
        Phase::InitialMark,
        Phase::ConcurrentMark,
        Phase::Preclean,
        Phase::Remark,
        Phase::StopTheWorld,
        Phase::Sweep,
        Phase::Disarm,
        Phase::Duty,
    ];

    pub(crate) fn from_u8(v: u8) -> Phase {
        Phase::ALL[v as usize]
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Arm => "arm",
            Phase::InitialMark => "initial-mark",
            Phase::ConcurrentMark => "concurrent-mark",
            Phase::Preclean => "pre-clean",
            Phase::Remark => "remark",
            Phase::Disarm => "disarm",
            Phase::StopTheWorld => "stop-the-world",
            Phase::Sweep => "sweep",
            Phase::Duty => "duty",
        }
    }
}

/// Why a cycle ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Cause {
    /// The allocation trigger (occupancy or pacing).
    #[default]
    Trigger,
    /// [`crate::Heap::collect`] or [`crate::Mutator::collect`].
    Explicit,
    /// An allocation found no room: the fall-back full collection (a concurrent-mode
    /// failure for the concurrent barriers).
    AllocationFailure,
}

impl Cause {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Cause::Trigger => "trigger",
            Cause::Explicit => "explicit",
            Cause::AllocationFailure => "allocation-failure",
        }
    }
}

/// One pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    /// Which pause.
    pub kind: PauseKind,
    /// The cycle it belongs to (from 1).
    pub cycle: u64,
    /// When it started (from the heap's creation).
    pub start: Duration,
    /// From the stop request until the collector released the world: what a mutator
    /// may wait, less the wake-up of a parked mutator after the release (tens of
    /// microseconds on a VM), which is the scheduler's, as in HotSpot's safepoint times.
    pub duration: Duration,
    /// Of that, the time until every mutator reached a safepoint.
    pub time_to_safepoint: Duration,
    /// The collector thread's CPU time from the stop request to the release. Far below
    /// `duration` minus `time_to_safepoint`, the collector was not running for part of
    /// the pause (another process had its CPU): the pause measures the machine's load.
    pub collector_cpu: Duration,
    /// Threads that marked in it (1: the collector alone).
    pub marker_threads: usize,
}

/// One cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CycleStats {
    /// Cycle number, from 1.
    pub cycle: u64,
    /// Why it ran.
    pub cause: Cause,
    /// Bytes in use when it started: live after the last cycle plus allocated since.
    pub heap_before: u64,
    /// Bytes in use when it ended: marked, plus allocated (black) during it.
    pub heap_after: u64,
    /// Bytes the mutators allocated from its start to its end.
    pub allocated: u64,
    /// What the pacer decided when it ended: the inputs and the next trigger.
    pub schedule: Schedule,
    /// Write faults the tracker served during it ([`crate::barrier::TrackerStats::faults`]).
    pub faults: u64,
    /// Of those, faults on pages handed to the allocator during it
    /// ([`crate::barrier::TrackerStats::frontier_faults`]).
    pub frontier_faults: u64,
    /// Pages made writable and recorded as the allocator handed them out
    /// ([`crate::barrier::TrackerStats::handed_out`]).
    pub handed_out: u64,
    /// Granules found dirty by each pre-clean round.
    pub preclean_dirty: Vec<usize>,
    /// The pre-clean round (from 1) after which the mutators were paced, if they were
    /// (`collector/pace.rs`).
    pub paced_from_round: Option<usize>,
    /// The pre-clean rounds after which the mutators' share while paced was halved
    /// (`Pace::tighten`).
    pub pace_halved_after: Vec<usize>,
    /// The heap pages dirty at the first pre-clean round (written since arm), when
    /// [`crate::HeapConfig::record_dirty_pages`] is on.
    pub dirty_pages: Vec<usize>,
    /// Granules handed over by this cycle's harvests (pre-clean and remark, each listing
    /// counted) that lie on pages allocated into during the cycle: first writes to
    /// objects allocated during it, the allocation frontier.
    pub dirty_frontier: usize,
    /// The other harvested granules: writes to objects older than the cycle.
    pub dirty_old: usize,
    /// Objects rescanned by all pre-clean rounds.
    pub preclean_rescanned: usize,
    /// Granules dirty at remark.
    pub remark_dirty: usize,
    /// Marked objects rescanned at remark because they overlap a dirty granule.
    pub remark_rescanned: usize,
    /// Objects newly traced during the remark pause.
    pub remark_traced: u64,
    /// The remark pause's harvest.
    pub remark_harvest: Duration,
    /// The remark pause's rescan, with the roots and the trace after them (the rest of
    /// the pause is the harvest, the time to safepoint and the resume).
    pub remark_trace: Duration,
    /// Objects marked by tracing (allocated-black objects not included).
    pub objects_marked: u64,
    /// Bytes of the cells marked by tracing.
    pub bytes_marked: u64,
    /// Bytes freed by the sweep.
    pub bytes_freed: u64,
    /// Objects freed by the sweep.
    pub objects_freed: u64,
    /// The tracker degraded to "everything dirty" (or could not arm).
    pub degraded: bool,
    /// Why, when it degraded: the phase and the error (operation, errno, range).
    pub degradation: Option<String>,
    /// The most threads that marked in one of this cycle's pauses.
    pub marker_threads_max: usize,
    /// Concurrent drains (mark, pre-clean rounds) that the helpers finished because no
    /// mutator was running (all waited for room).
    pub helped_drains: u32,
    /// Roots found in its pauses that named no live object of the heap, and were not
    /// marked from (counted once per pause that saw them; see
    /// [`crate::Mutator::push_root`]).
    pub stale_roots: usize,
    /// Time to arm.
    pub arm: Duration,
    /// Time in harvests (pre-clean and remark).
    pub harvest: Duration,
    /// Time to disarm: the steps ahead of the sweep and the last one after it.
    pub disarm: Duration,
    /// Concurrent mark and pre-clean.
    pub mark: Duration,
    /// Sweep, less the disarm's steps in it.
    pub sweep: Duration,
    /// The whole cycle.
    pub total: Duration,
}

/// Statistics of a heap so far ([`crate::Heap::stats`]).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// The barrier.
    pub barrier: Option<BarrierKind>,
    /// Cycles completed.
    pub cycles: u64,
    /// Every pause, in order.
    pub pauses: Vec<Pause>,
    /// Every cycle, in order.
    pub cycle_log: Vec<CycleStats>,
    /// The tracker's counters (faults served, messages, degradations).
    pub tracker: TrackerStats,
    /// Tri-colour violations found by the verifier (only with `verify`).
    pub verifier_failures: u64,
    /// The first few verifier messages.
    pub verifier_messages: Vec<String>,
    /// Bytes handed to mutators (runs of cells reserved, large objects).
    pub bytes_allocated: u64,
    /// Threads configured to mark in pauses ([`crate::HeapConfig::marker_threads`]).
    pub marker_threads: usize,
    /// Allocations that found the heap full while a cycle was running (or requested) and
    /// waited for it to complete, in the order they happened. A fallback to a full
    /// collection comes only after such a wait found no room.
    pub allocation_stalls: Vec<Stall>,
    /// The waits of mutators paced by a pre-clean that did not converge
    /// ([`crate::HeapConfig::preclean_pacing`]), in the order they happened.
    pub paced: Vec<Stall>,
    /// Barrier-only mode ([`crate::HeapConfig::duty_cycle`]): the periods completed, the
    /// time the tracker was armed in them, and the granules their harvests handed over.
    pub duty: DutyStats,
    /// Writers' fault stalls as the tracker measured them (how:
    /// [`crate::barrier::TrackerStats::stall_method`]), in the order measured, collected at
    /// the end of each cycle and when statistics are read.
    pub stalls: Vec<Stall>,
    /// `--log-cycles` lines that could not be written (stderr closed, full, or a pipe
    /// nobody reads): dropped, never a failure of the collector.
    pub log_lines_lost: u64,
}

/// What barrier-only mode's periods did ([`Stats::duty`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DutyStats {
    /// Periods completed (armed, harvested, disarmed).
    pub periods: u64,
    /// Periods cut short by a collection request.
    pub interrupted: u64,
    /// Time the tracker was armed, from the end of each arm to the start of its disarm
    /// (the harvest included): the same for every barrier, whatever its arm costs.
    pub armed: Duration,
    /// Time in the arms themselves.
    pub arm: Duration,
    /// Time in the harvests.
    pub harvest: Duration,
    /// Time in the disarms.
    pub disarm: Duration,
    /// Granules the harvests handed over (pages, or cards for the card table).
    pub recorded: u64,
    /// Periods in which the tracker could not arm, harvest or disarm.
    pub failures: u64,
}

impl DutyStats {
    /// The periods after `earlier` (see [`Stats::since`]).
    pub fn since(&self, earlier: &DutyStats) -> DutyStats {
        DutyStats {
            periods: self.periods.saturating_sub(earlier.periods),
            interrupted: self.interrupted.saturating_sub(earlier.interrupted),
            armed: self.armed.saturating_sub(earlier.armed),
            arm: self.arm.saturating_sub(earlier.arm),
            harvest: self.harvest.saturating_sub(earlier.harvest),
            disarm: self.disarm.saturating_sub(earlier.disarm),
            recorded: self.recorded.saturating_sub(earlier.recorded),
            failures: self.failures.saturating_sub(earlier.failures),
        }
    }
}

/// One mutator's stall: in a write fault, or waiting for a cycle to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// When it started, from the heap's creation (the origin of [`Pause::start`]).
    pub start: Duration,
    /// How long it lasted.
    pub duration: Duration,
    /// For an allocation stall, what the collector was doing when it began (a stall
    /// in `sweep` waits for the sweep to give pages back; one in a marking phase, for the
    /// cycle to reach its sweep); `None` for a writer's fault stall, whose tracker
    /// measures it where the phase is not read.
    pub phase: Option<Phase>,
}

const MIB: f64 = (1 << 20) as f64;

impl Pause {
    /// The line `--log-cycles` prints for this pause, in the manner of HotSpot's
    /// `-Xlog:gc`: `[gc 3 @1.234s] pause remark 0.231ms (to safepoint 0.012ms, collector
    /// cpu 0.190ms, 2 marker(s))`.
    pub fn log_line(&self) -> String {
        format!(
            "[gc {} @{:.3}s] pause {} {:.3}ms (to safepoint {:.3}ms, collector cpu {:.3}ms, \
             {} marker(s))",
            self.cycle,
            self.start.as_secs_f64(),
            self.kind.name(),
            self.duration.as_secs_f64() * 1e3,
            self.time_to_safepoint.as_secs_f64() * 1e3,
            self.collector_cpu.as_secs_f64() * 1e3,
            self.marker_threads,
        )
    }
}

impl CycleStats {
    /// The line `--log-cycles` prints when this cycle ends, in the manner of HotSpot's
    /// `-Xlog:gc`: cause, time (and the time of each concurrent step: arm, concurrent mark
    /// with pre-clean, harvests, disarm, sweep), heap before → after (of `heap_bytes`), bytes marked,
    /// freed and allocated during it, dirty granules (allocation frontier / older
    /// objects), remark's dirty granules with the objects it rescanned in them, the
    /// objects it newly marked (after each pre-clean round's dirty granules, the
    /// round after which the mutators were paced and those after which their share was
    /// halved), and the time of its harvest and of its rescan and trace, pages handed out, the concurrent drains helpers finished, faults (of
    /// which on the frontier), the degradation
    /// with its cause, and the pacer's inputs and decision (live `L`, goal `G`, ratio
    /// `r`, predicted allocation `E`, the next trigger and its floor).
    pub fn log_line(&self, heap_bytes: usize) -> String {
        let s = &self.schedule;
        format!(
            "[gc {}] cycle {} {:.3}ms (arm {:.3} mark {:.3} harvest {:.3} disarm {:.3} \
             sweep {:.3}) heap {:.1}M->{:.1}M({:.0}M) marked {:.1}M freed {:.1}M \
             allocated {:.1}M dirty {} (frontier {}, old {}) pre-clean {:?}{} remark-dirty {} (rescanned {}, traced {}; harvest {:.3}ms, \
             rescan and trace {:.3}ms) handed-out {} \
             helped {} faults {} (frontier {}) degraded {} | pacer L {:.1}M G {:.1}M r {:.3} E {:.1}M \
             next after {:.1}M (floor {:.1}M, {} free pages)",
            self.cycle,
            self.cause.name(),
            self.total.as_secs_f64() * 1e3,
            self.arm.as_secs_f64() * 1e3,
            self.mark.as_secs_f64() * 1e3,
            self.harvest.as_secs_f64() * 1e3,
            self.disarm.as_secs_f64() * 1e3,
            self.sweep.as_secs_f64() * 1e3,
            self.heap_before as f64 / MIB,
            self.heap_after as f64 / MIB,
            heap_bytes as f64 / MIB,
            self.bytes_marked as f64 / MIB,
            self.bytes_freed as f64 / MIB,
            self.allocated as f64 / MIB,
            self.dirty_frontier + self.dirty_old,
            self.dirty_frontier,
            self.dirty_old,
            self.preclean_dirty,
            match (self.paced_from_round, self.pace_halved_after.as_slice()) {
                (Some(r), []) => format!(" paced after round {r}"),
                (Some(r), halved) =>
                    format!(" paced after round {r}, share halved after {halved:?}"),
                (None, _) => String::new(),
            },
            self.remark_dirty,
            self.remark_rescanned,
            self.remark_traced,
            self.remark_harvest.as_secs_f64() * 1e3,
            self.remark_trace.as_secs_f64() * 1e3,
            self.handed_out,
            self.helped_drains,
            self.faults,
            self.frontier_faults,
            self.degradation.as_deref().unwrap_or("no"),
            s.live as f64 / MIB,
            s.goal as f64 / MIB,
            s.ratio,
            s.predicted as f64 / MIB,
            s.trigger as f64 / MIB,
            s.floor as f64 / MIB,
            s.page_floor,
        )
    }
}

impl Stats {
    /// What happened after `earlier`, an earlier [`crate::Heap::stats`] of the same heap:
    /// the counters' differences and the pauses, cycles and stalls logged since, so that
    /// a steady state is measured without its warm-up. The first few verifier messages
    /// are kept as they are (they are not a log); the barrier and the marker threads are
    /// this snapshot's. A snapshot taken *before* `earlier` gives zeros and empty logs,
    /// never a wrapped counter.
    ///
    /// ```
    /// use barrierlab::{Heap, HeapConfig};
    ///
    /// # fn main() -> barrierlab::Result<()> {
    /// let heap = Heap::new(HeapConfig::new().heap_bytes(4 << 20))?;
    /// let mut m = heap.mutator();
    /// m.collect()?; // a warm-up
    /// let before = heap.stats();
    /// for _ in 0..3 {
    ///     m.collect()?;
    /// }
    /// let steady = heap.stats().since(&before);
    /// assert_eq!(steady.cycles, 3);
    /// assert_eq!(steady.cycle_log.len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn since(&self, earlier: &Stats) -> Stats {
        fn tail<T: Clone>(now: &[T], then: &[T]) -> Vec<T> {
            now.get(then.len()..).unwrap_or_default().to_vec()
        }
        Stats {
            barrier: self.barrier,
            cycles: self.cycles.saturating_sub(earlier.cycles),
            pauses: tail(&self.pauses, &earlier.pauses),
            cycle_log: tail(&self.cycle_log, &earlier.cycle_log),
            tracker: self.tracker.since(&earlier.tracker),
            verifier_failures: self
                .verifier_failures
                .saturating_sub(earlier.verifier_failures),
            verifier_messages: self.verifier_messages.clone(),
            bytes_allocated: self.bytes_allocated.saturating_sub(earlier.bytes_allocated),
            marker_threads: self.marker_threads,
            allocation_stalls: tail(&self.allocation_stalls, &earlier.allocation_stalls),
            paced: tail(&self.paced, &earlier.paced),
            duty: self.duty.since(&earlier.duty),
            stalls: tail(&self.stalls, &earlier.stalls),
            log_lines_lost: self.log_lines_lost.saturating_sub(earlier.log_lines_lost),
        }
    }

    /// The longest pause.
    pub fn max_pause(&self) -> Duration {
        self.pauses
            .iter()
            .map(|p| p.duration)
            .max()
            .unwrap_or_default()
    }

    /// The sum of all pauses.
    pub fn total_pause(&self) -> Duration {
        self.pauses.iter().map(|p| p.duration).sum()
    }

    /// Harvested granules over all cycles, split as (allocation frontier, older
    /// objects): see [`CycleStats::dirty_frontier`].
    pub fn dirty_split(&self) -> (usize, usize) {
        self.cycle_log
            .iter()
            .fold((0, 0), |(f, o), c| (f + c.dirty_frontier, o + c.dirty_old))
    }

    /// Cycles in which the tracker degraded.
    pub fn degraded_cycles(&self) -> usize {
        self.cycle_log.iter().filter(|c| c.degraded).count()
    }

    /// Full collections run because an allocation found no room (concurrent-mode
    /// failures, for the concurrent barriers).
    pub fn fallbacks(&self) -> usize {
        self.cycle_log
            .iter()
            .filter(|c| c.cause == Cause::AllocationFailure)
            .count()
    }
}
