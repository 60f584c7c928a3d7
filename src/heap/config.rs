//! How a heap is built: [`HeapConfig`], a builder read by the space, the tracker and the
//! collector alike. Plain data: it names a barrier with its options ([`BarrierConfig`]),
//! and depends on nothing above the barrier layer.

use super::testing::Testing;
use crate::barrier::{BarrierConfig, BarrierKind};
use crate::error::{Error, Result};
use crate::sys::PAGE_SIZE;

/// How a heap is built. A builder: `HeapConfig::new().heap_bytes(64 << 20).barrier(kind)`.
#[derive(Debug, Clone)]
pub struct HeapConfig {
    /// Size of the heap mapping in bytes (rounded up to pages).
    pub heap_bytes: usize,
    /// The write barrier, with the options of its mechanism (card marking variant,
    /// fault-service layout, userfaultfd mode).
    pub barrier: BarrierConfig,
    /// With [`HeapConfig::pacing`]: the share of the pacer's heap goal at which a
    /// concurrent collector's first cycle starts, before any cycle has been measured (the
    /// stop-the-world collector starts its first at the goal). Without: a fixed trigger, a cycle
    /// starts when the live bytes plus the bytes allocated since the last cycle reach this
    /// share of the heap (1.0: never by itself, only when an allocation finds no room).
    pub trigger: f64,
    /// Start each cycle from bytes, as late as lets it finish before the heap reaches its
    /// goal (the pacer, `collector/pacer.rs`); `false` keeps the fixed trigger.
    pub pacing: bool,
    /// At most this many pre-clean rounds per cycle, 12 by default (fewer when a round
    /// finds at most [`HeapConfig::preclean_threshold`] dirty granules, or, for a page
    /// tracker, no fewer than the round before, except the round just after pacing began
    /// or its share was halved: [`HeapConfig::preclean_pacing`]).
    pub max_preclean_rounds: usize,
    /// Stop pre-cleaning when a round finds at most this many dirty granules.
    pub preclean_threshold: usize,
    /// While pre-cleaning does not converge, the mutators run at most this share of the
    /// time, waiting at their allocations (`collector/pace.rs`), so that remark inherits
    /// a short round; `None`: never pace (remark then takes whatever the last round left).
    pub preclean_pacing: Option<f64>,
    /// Objects traced between two polls of the fault service (`uffd-wp`, collector layout).
    pub mark_poll_interval: usize,
    /// Ask for transparent huge pages on the heap (default: `MADV_NOHUGEPAGE`).
    pub huge_pages: bool,
    /// Run the verifier at every remark (a full re-trace; for tests).
    pub verify: bool,
    /// Print one line per pause and one per cycle to stderr as they happen, in the manner
    /// of HotSpot's `-Xlog:gc` ([`crate::Pause::log_line`],
    /// [`crate::collector::CycleStats::log_line`]).
    pub log_cycles: bool,
    /// Knobs for the crate's own tests (planted bugs); all off by default, and never
    /// what a measurement should run with. Set only with the `lab-internals` feature
    /// ([`HeapConfig::testing`]).
    pub(crate) testing: Testing,
    /// Threads that mark in a stop-the-world pause (the whole mark of `none`, and the
    /// initial-mark and remark pauses of the concurrent barriers), the collector thread
    /// included. Default: the CPUs this process may run on. The mutators are stopped
    /// then, so their CPUs are free; helpers join only when a pause has enough work
    /// (`Marker::drain_parallel` in `collector/mark.rs`, with the parked helpers of
    /// `collector/marker_pool.rs`). They join a concurrent mark too, when no mutator is
    /// running (each waits for room: an allocation stall), counted per cycle in
    /// [`crate::collector::CycleStats::helped_drains`].
    pub marker_threads: usize,
    /// Keep each cycle's first pre-clean dirty set, as heap page indices, in
    /// [`crate::collector::CycleStats::dirty_pages`] (for the study's heap map). Arms then
    /// keep no young page writable ([`crate::barrier::DirtyTracker::arm_with_young`]): a
    /// kept page is harvested once it holds a marked object, written or not, and the set
    /// is to say where the mutators wrote.
    pub record_dirty_pages: bool,
    /// Arms keep the long runs of pages allocated into since the last arm writable and
    /// recorded instead of protecting them, and each harvest takes back only those that
    /// hold a marked object by then ([`crate::barrier::DirtyTracker::arm_with_young`];
    /// the page trackers but `uffd-wp-async`). Off by default, as an experiment: it took
    /// 0.04 to 0.11 off the page trackers' ratio to `none` on GCBench at 64 MiB, but one
    /// CI run of the test suite with it on saw the verifier find a marked object with an
    /// unmarked child under `mprotect` (GCOld, 16 MiB, two threads). Its likely cause, a
    /// race in which the allocator opened free pages after another mutator had taken one
    /// (`Space::take_pages_placed`), is fixed; the keeping stays off until CI runs with
    /// it on agree.
    pub keep_young_pages: bool,
    /// Barrier-only mode: while no collection runs, the collector thread arms the
    /// tracker, harvests it and disarms it on this fixed schedule, so that every barrier
    /// costs the mutators what it costs under the same arm/harvest schedule, with no
    /// collection in the measurement (see `collector/duty.rs`). `None` (the default):
    /// the tracker is armed only by cycles.
    pub duty_cycle: Option<DutyCycle>,
    /// Where the threads run: `None` (the default) leaves them to the scheduler. With a
    /// [`Placement`], the collector and its marker helpers run on one CPU and the mutator
    /// threads that [`crate::workload::run`] starts on another, so that the TLB
    /// shootdowns each CPU receives say which side sent them (barrier-only runs; a
    /// program that drives the heap itself pins its own mutators). The `uffd-wp` fault
    /// service thread is left where the thread that builds the heap may run: pinned
    /// beside the collector it would wait out each of the collector's arms before serving
    /// a fault (in one study run so, the barrier-only prediction explained 0.35–0.61 of
    /// `uffd-wp[thread]`'s slowdown, against 0.75–0.90 in an earlier unplaced one), and
    /// the micro prices its faults unplaced.
    pub placement: Option<Placement>,
}

/// Two CPUs for the two sides of a run ([`HeapConfig::placement`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The CPU of every mutator thread.
    pub mutators: usize,
    /// The CPU of the heap's own threads.
    pub collector: usize,
}

impl Placement {
    /// The first two CPUs this thread may run on, mutators on the first; `None` with
    /// fewer than two.
    pub fn first_two_allowed() -> Result<Option<Placement>> {
        let cpus = crate::sys::process::allowed_cpus()?;
        Ok(match cpus[..] {
            [mutators, collector, ..] => Some(Placement {
                mutators,
                collector,
            }),
            _ => None,
        })
    }
}

/// A fixed arm/harvest schedule for barrier-only runs ([`HeapConfig::duty_cycle`]): each
/// `period`, the tracker is armed for `armed_share` of it, then harvested (everything it
/// recorded is handed over and dropped) and disarmed for the rest. Both spans are counted
/// from the end of the arm and of the disarm, so that the tracker's own time in them
/// lengthens its periods instead of shortening what it is measured under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DutyCycle {
    /// The length of one period.
    pub period: std::time::Duration,
    /// The share of each period the tracker is armed, in (0, 1].
    pub armed_share: f64,
}

impl Default for HeapConfig {
    fn default() -> Self {
        HeapConfig {
            heap_bytes: 64 << 20,
            barrier: BarrierConfig::of(BarrierKind::CardTable),
            trigger: 0.6,
            pacing: true,
            max_preclean_rounds: 12,
            preclean_threshold: 32,
            preclean_pacing: Some(0.5),
            mark_poll_interval: 64,
            huge_pages: false,
            verify: false,
            log_cycles: false,
            testing: Testing::default(),
            record_dirty_pages: false,
            keep_young_pages: false,
            duty_cycle: None,
            placement: None,
            marker_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl HeapConfig {
    /// The defaults: 64 MiB, card table, the pacer (a concurrent collector's first cycle at
    /// 60% of its goal).
    pub fn new() -> Self {
        Self::default()
    }
    /// Heap size in bytes.
    pub fn heap_bytes(mut self, bytes: usize) -> Self {
        self.heap_bytes = bytes;
        self
    }
    /// The write barrier: a [`BarrierKind`] with its defaults, or a [`BarrierConfig`]
    /// with the options of its mechanism:
    ///
    /// ```
    /// use barrierlab::HeapConfig;
    /// use barrierlab::barrier::{
    ///     BarrierConfig, MechanismOptions, ServiceLayout, UffdWpOptions,
    /// };
    ///
    /// let spin = BarrierConfig::UffdWp(UffdWpOptions {
    ///     service: ServiceLayout::SpinThread,
    ///     ..UffdWpOptions::DEFAULT
    /// });
    /// let config = HeapConfig::new().barrier(spin);
    /// assert_eq!(config.barrier.kind(), barrierlab::BarrierKind::UffdWp);
    /// ```
    pub fn barrier(mut self, barrier: impl Into<BarrierConfig>) -> Self {
        self.barrier = barrier.into();
        self
    }
    /// Occupancy (0..1] at which the first cycle starts (with pacing) or every cycle
    /// starts (without); see [`HeapConfig::trigger`].
    pub fn trigger(mut self, fraction: f64) -> Self {
        self.trigger = fraction;
        self
    }
    /// Pace cycles from bytes (default on), or only by the fixed trigger.
    pub fn pacing(mut self, yes: bool) -> Self {
        self.pacing = yes;
        self
    }
    /// Pre-clean rounds at most.
    pub fn max_preclean_rounds(mut self, n: usize) -> Self {
        self.max_preclean_rounds = n;
        self
    }
    /// Pre-clean stops at this many dirty granules.
    pub fn preclean_threshold(mut self, n: usize) -> Self {
        self.preclean_threshold = n;
        self
    }
    /// The mutators' share of the time while a non-converging pre-clean paces them
    /// (in (0, 1)), or `None` for no pacing.
    pub fn preclean_pacing(mut self, share: Option<f64>) -> Self {
        self.preclean_pacing = share;
        self
    }
    /// Transparent huge pages on the heap.
    pub fn huge_pages(mut self, yes: bool) -> Self {
        self.huge_pages = yes;
        self
    }
    /// Verify the tri-colour invariant at every remark.
    pub fn verify(mut self, yes: bool) -> Self {
        self.verify = yes;
        self
    }
    /// Log every pause and cycle to stderr (see [`HeapConfig::log_cycles`]).
    pub fn log_cycles(mut self, yes: bool) -> Self {
        self.log_cycles = yes;
        self
    }

    /// Barrier-only mode (see [`HeapConfig::duty_cycle`]): the tracker armed for
    /// `armed_share` of every `period` while no collection runs.
    pub fn duty_cycle(mut self, period: std::time::Duration, armed_share: f64) -> Self {
        self.duty_cycle = Some(DutyCycle {
            period,
            armed_share,
        });
        self
    }

    /// Places the heap's threads and the mutators on two CPUs (see
    /// [`HeapConfig::placement`]).
    pub fn placement(mut self, placement: Placement) -> Self {
        self.placement = Some(placement);
        self
    }

    /// The test knobs (see `barrierlab::internals::Testing`). Only with the
    /// `lab-internals` feature.
    #[cfg(feature = "lab-internals")]
    pub fn testing(mut self, testing: Testing) -> Self {
        self.testing = testing;
        self
    }

    /// Threads that mark in a pause (see [`HeapConfig::marker_threads`]).
    pub fn marker_threads(mut self, n: usize) -> Self {
        self.marker_threads = n;
        self
    }

    /// Record each cycle's dirty pages (see [`HeapConfig::record_dirty_pages`]).
    pub fn record_dirty_pages(mut self, yes: bool) -> Self {
        self.record_dirty_pages = yes;
        self
    }

    /// Keep young pages writable at arm (see [`HeapConfig::keep_young_pages`]).
    pub fn keep_young_pages(mut self, yes: bool) -> Self {
        self.keep_young_pages = yes;
        self
    }

    /// Whether arms keep young pages: when asked, but never while the dirty pages are
    /// recorded (a kept page is harvested once marked, written or not).
    pub(crate) fn keeps_young_pages(&self) -> bool {
        self.keep_young_pages && !self.record_dirty_pages
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.heap_bytes < 16 * PAGE_SIZE {
            return Err(Error::InvalidArgument(format!(
                "heap_bytes {} is too small: at least 16 pages ({} bytes)",
                self.heap_bytes,
                16 * PAGE_SIZE
            )));
        }
        if self.heap_bytes > 1 << 40 {
            return Err(Error::InvalidArgument(format!(
                "heap_bytes {} is larger than the 1 TiB this heap supports",
                self.heap_bytes
            )));
        }
        if !(self.trigger > 0.0 && self.trigger <= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "trigger {} must be in (0, 1]",
                self.trigger
            )));
        }
        if let Some(share) = self.preclean_pacing
            && !(share > 0.0 && share < 1.0)
        {
            return Err(Error::InvalidArgument(format!(
                "preclean_pacing {share} must be in (0, 1): the mutators' share of the time \
                 while pre-cleaning paces them"
            )));
        }
        if self.testing.drop_every_nth_dirty == Some(0) || self.mark_poll_interval == 0 {
            return Err(Error::InvalidArgument(
                "drop_every_nth_dirty and mark_poll_interval must be positive".into(),
            ));
        }
        if let Some(p) = self.placement
            && p.mutators == p.collector
        {
            return Err(Error::InvalidArgument(format!(
                "placement puts the mutators and the collector on the same CPU {}: a \
                 placement is two CPUs",
                p.mutators
            )));
        }
        if let Some(d) = self.duty_cycle {
            if d.period < std::time::Duration::from_micros(100) || d.period.as_secs() > 60 {
                return Err(Error::InvalidArgument(format!(
                    "duty-cycle period {:?} must be from 100 µs to 60 s",
                    d.period
                )));
            }
            if !(d.armed_share > 0.0 && d.armed_share <= 1.0) {
                return Err(Error::InvalidArgument(format!(
                    "duty-cycle armed share {} must be in (0, 1]",
                    d.armed_share
                )));
            }
        }
        if self.marker_threads == 0 || self.marker_threads > 256 {
            return Err(Error::InvalidArgument(format!(
                "marker_threads {} must be in 1..=256",
                self.marker_threads
            )));
        }
        Ok(())
    }
}
