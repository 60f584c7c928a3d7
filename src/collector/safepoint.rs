//! Stopping the world: the safepoint handshake between the collector and the mutators.
//!
//! Safepoints are cooperative. A global epoch is odd while the collector wants the world
//! stopped. A mutator polls it (one relaxed load) at every allocation and at
//! [`crate::Mutator::safepoint`]; when it is odd the mutator records the epoch it stopped
//! at, tells the collector (an eventfd, so that the collector can sleep in `poll(2)` on
//! that and on the userfaultfd at once), and sleeps until the epoch changes. A mutator
//! that is about to block (sleep, I/O, waiting for a collection) *leaves*: it is then
//! counted as stopped, and on the way back it *enters*, which parks it if a pause is on.
//!
//! Leaving and entering race with a stop request; both sides write their flag, then read
//! the other's, with `SeqCst` (Dekker): either the collector sees the mutator running, or
//! the mutator sees the request.
//!
//! A mutator blocked in a write-protect fault is not at a safepoint, so the collector
//! keeps serving faults while it waits ([`Safepoints::stop_world`] takes the tracker).
//!
//! # What the collector reads of a mutator
//! A mutator's root stack (its shadow stack) and its allocation buffers live in its
//! [`MutatorShared`], in `UnsafeCell`s: the mutator pushes, pops and bumps them with plain
//! loads and stores, and the collector reads them (and, in a full collection, empties the
//! buffers) **only while that mutator is stopped or blocked**, between
//! [`Safepoints::stop_world`] and the resume or drop of the [`StoppedWorld`] it returns.
//! The handshake orders the two: the mutator's last writes come before its `SeqCst`
//! store of its state, which the collector's `SeqCst` load observes before it reads;
//! the collector's reads come before its `SeqCst` epoch increment, which the mutator
//! observes before it runs again.

use std::cell::UnsafeCell;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::barrier::DirtyTracker;
use crate::error::Result;
use crate::heap::AllocBuffers;
use crate::sys::eventfd::{EventFd, poll_readable};

const RUNNING: u8 = 0;
const STOPPED: u8 = 1;
const BLOCKED: u8 = 2;

/// The part of a mutator the collector sees.
pub(crate) struct MutatorShared {
    state: AtomicU8,
    stopped_at: AtomicU64,
    /// The root stack (addresses; 0 is null).
    roots: UnsafeCell<Vec<usize>>,
    /// The allocation buffers, one run per size class.
    buffers: UnsafeCell<AllocBuffers>,
    /// What this mutator waits for in a full collection, which serves it in the pause,
    /// before any other mutator can take the room (same access rule as the buffers).
    wanted: UnsafeCell<Wanted>,
}

/// An allocation that found no room, for the full collection to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Wanted {
    /// Nothing.
    #[default]
    Nothing,
    /// A run of cells of this class (into the mutator's buffer).
    Small(usize),
    /// A large object of this many bytes.
    Large(usize),
    /// The large object the collector allocated for it.
    GrantedLarge(usize),
    /// The cell the collector took for it from the run it refilled its buffer with
    /// (taken in the pause, so that a later full collection, which returns every
    /// buffer's unused cells before the mutator runs again, cannot take it back).
    GrantedSmall(usize),
}

// SAFETY: the `UnsafeCell`s are written only by the owning mutator's thread, and read by
// the collector only while that mutator is stopped or blocked (see the module docs), so
// no access to them ever races.
unsafe impl Sync for MutatorShared {}

impl std::fmt::Debug for MutatorShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MutatorShared")
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl MutatorShared {
    /// The root stack, for the owning mutator.
    ///
    /// # Safety
    /// Only the owning mutator's thread may call this, and not while a reference from an
    /// earlier call is alive.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)] // exclusive by the thread discipline of the module docs
    pub(crate) unsafe fn roots_mut(&self) -> &mut Vec<usize> {
        // SAFETY: forwarded to the caller.
        unsafe { &mut *self.roots.get() }
    }

    /// The allocation buffers, for the owning mutator.
    ///
    /// # Safety
    /// As [`MutatorShared::roots_mut`].
    #[inline(always)]
    #[allow(clippy::mut_from_ref)] // exclusive by the thread discipline of the module docs
    pub(crate) unsafe fn buffers_mut(&self) -> &mut AllocBuffers {
        // SAFETY: forwarded to the caller.
        unsafe { &mut *self.buffers.get() }
    }

    /// The root stack, for the collector.
    ///
    /// # Safety
    /// The mutator must be stopped or blocked for as long as the slice is used.
    pub(crate) unsafe fn roots(&self) -> &[usize] {
        // SAFETY: forwarded to the caller: the owner does not run, so nothing writes.
        unsafe { &*self.roots.get() }
    }

    /// What the mutator waits for, for the owner (before it blocks, after it is back) or
    /// for the collector (while the owner is stopped).
    ///
    /// # Safety
    /// The owner's thread, or the collector while the owner is stopped or blocked; no
    /// other reference to it may be alive.
    #[allow(clippy::mut_from_ref)] // exclusive by the thread discipline of the module docs
    pub(crate) unsafe fn wanted(&self) -> &mut Wanted {
        // SAFETY: forwarded to the caller.
        unsafe { &mut *self.wanted.get() }
    }

    /// The allocation buffers, for the collector to empty (a full collection returns
    /// every mutator's runs to the heap).
    ///
    /// # Safety
    /// As [`MutatorShared::roots`], and no other reference to the buffers may be alive.
    #[allow(clippy::mut_from_ref)] // exclusive: the owner is stopped, see the module docs
    pub(crate) unsafe fn buffers_while_stopped(&self) -> &mut AllocBuffers {
        // SAFETY: forwarded to the caller: the owner does not run, and the handshake
        // orders this write before the owner's next access.
        unsafe { &mut *self.buffers.get() }
    }

    /// The allocation buffers, for the collector.
    ///
    /// # Safety
    /// As [`MutatorShared::roots`].
    pub(crate) unsafe fn buffers(&self) -> &AllocBuffers {
        // SAFETY: forwarded to the caller.
        unsafe { &*self.buffers.get() }
    }
}

/// The handshake state of one heap.
#[derive(Debug)]
pub(crate) struct Safepoints {
    epoch: AtomicU64,
    registry: Mutex<Vec<Arc<MutatorShared>>>,
    resume: Mutex<()>,
    resumed: Condvar,
    arrived: EventFd,
}

impl Safepoints {
    pub(crate) fn new() -> Result<Safepoints> {
        Ok(Safepoints {
            epoch: AtomicU64::new(0),
            registry: Mutex::new(Vec::new()),
            resume: Mutex::new(()),
            resumed: Condvar::new(),
            arrived: EventFd::new()?,
        })
    }

    /// A new mutator, registered in the blocked state; call [`Safepoints::enter`] next.
    pub(crate) fn register(&self) -> Arc<MutatorShared> {
        let m = Arc::new(MutatorShared {
            state: AtomicU8::new(BLOCKED),
            stopped_at: AtomicU64::new(0),
            roots: UnsafeCell::new(Vec::new()),
            buffers: UnsafeCell::new(AllocBuffers::default()),
            wanted: UnsafeCell::new(Wanted::Nothing),
        });
        self.registry.lock().push(m.clone());
        m
    }

    /// How many mutators are registered.
    pub(crate) fn mutators(&self) -> usize {
        self.registry.lock().len()
    }

    /// Removes a mutator (which must have left).
    pub(crate) fn unregister(&self, m: &Arc<MutatorShared>) {
        self.registry.lock().retain(|x| !Arc::ptr_eq(x, m));
        self.arrived.signal();
    }

    /// The word a mutator polls: odd while a pause is requested.
    pub(crate) fn poll_word(&self) -> &AtomicU64 {
        &self.epoch
    }

    /// The slow path of a poll: stop until the pause is over.
    ///
    /// The collector is told before this thread takes the resume lock: woken, the
    /// collector may preempt this thread on its CPU, and must then never find the lock
    /// held by it when it ends the pause (it would wait a scheduler time slice, whole
    /// milliseconds, with every mutator stopped). No wake-up is lost: the epoch is
    /// re-read under the lock, which [`Safepoints::resume_world`] holds to change it.
    #[cold]
    pub(crate) fn park(&self, m: &MutatorShared) {
        let e = self.epoch.load(Ordering::SeqCst);
        if e & 1 == 0 {
            return;
        }
        m.stopped_at.store(e, Ordering::SeqCst);
        m.state.store(STOPPED, Ordering::SeqCst);
        self.arrived.signal();
        let mut guard = self.resume.lock();
        while self.epoch.load(Ordering::SeqCst) == e {
            self.resumed.wait(&mut guard);
        }
        drop(guard);
        m.state.store(RUNNING, Ordering::SeqCst);
    }

    /// The mutator is about to block: count it as stopped until it enters again.
    pub(crate) fn leave(&self, m: &MutatorShared) {
        m.state.store(BLOCKED, Ordering::SeqCst);
        self.arrived.signal();
    }

    /// The mutator is back: park first if a pause is on.
    pub(crate) fn enter(&self, m: &MutatorShared) {
        m.state.store(RUNNING, Ordering::SeqCst);
        if self.epoch.load(Ordering::SeqCst) & 1 == 1 {
            self.park(m);
        }
    }

    /// Whether no registered mutator is running: each is blocked (left: waiting for
    /// room, sleeping) or stopped. A snapshot: a blocked mutator may enter right after.
    pub(crate) fn none_running(&self) -> bool {
        let registry = self.registry.lock();
        registry
            .iter()
            .all(|m| m.state.load(Ordering::SeqCst) != RUNNING)
    }

    /// Whether the mutator is running (not left).
    pub(crate) fn is_running(&self, m: &MutatorShared) -> bool {
        m.state.load(Ordering::SeqCst) != BLOCKED
    }

    /// The first half of entering a left mutator without parking it here: counts it as
    /// running again. Read [`Safepoints::pause_requested`] next (the Dekker order of the
    /// module docs), and leave again if a pause is on.
    pub(crate) fn set_running(&self, m: &MutatorShared) {
        m.state.store(RUNNING, Ordering::SeqCst);
    }

    /// The epoch of the pause requested or in progress, if there is one.
    pub(crate) fn pause_requested(&self) -> Option<u64> {
        let e = self.epoch.load(Ordering::SeqCst);
        (e & 1 == 1).then_some(e)
    }

    /// Waits until the pause of epoch `e` is over (a mutator of this thread that waits
    /// here must have left: it counts as stopped).
    pub(crate) fn wait_for_resume(&self, e: u64) {
        let mut guard = self.resume.lock();
        while self.epoch.load(Ordering::SeqCst) == e {
            self.resumed.wait(&mut guard);
        }
    }

    /// Requests a pause and waits until every mutator is stopped or blocked, serving the
    /// tracker's faults meanwhile. The pause lasts as long as the returned
    /// [`StoppedWorld`]: dropping it resumes the world, on every path out of the pause,
    /// a panic's unwinding included (a world left stopped parks every mutator for good).
    pub(crate) fn stop_world(&self, tracker: Option<&dyn DirtyTracker>) -> StoppedWorld<'_> {
        let t0 = Instant::now();
        let e = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        debug_assert!(e & 1 == 1);
        let mut world = StoppedWorld {
            safepoints: self,
            mutators: Vec::new(),
            time_to_safepoint: Duration::ZERO,
            released: false,
        };
        let service = tracker.and_then(|t| t.fault_service());
        loop {
            let mutators = self.registry.lock().clone();
            let all_stopped = mutators.iter().all(|m| {
                let s = m.state.load(Ordering::SeqCst);
                s == BLOCKED || (s == STOPPED && m.stopped_at.load(Ordering::SeqCst) == e)
            });
            if all_stopped {
                world.mutators = mutators;
                world.time_to_safepoint = t0.elapsed();
                return world;
            }
            // Sleep until a mutator arrives or a fault needs serving; the timeout only
            // guards against a lost signal.
            match service {
                Some(service) => {
                    let [arrived, fault] =
                        poll_readable([self.arrived.as_raw_fd(), service.fd()], 10)
                            .unwrap_or([true, true]);
                    if arrived {
                        self.arrived.drain();
                    }
                    if fault {
                        service.serve_pending();
                    }
                }
                None => {
                    if poll_readable([self.arrived.as_raw_fd()], 10).unwrap_or([true])[0] {
                        self.arrived.drain();
                    }
                }
            }
        }
    }

    /// Ends the pause (see [`StoppedWorld`]): returns when the world was released, the
    /// instant the epoch changed, before the parked mutators are woken.
    fn resume_world(&self) -> Instant {
        let _guard = self.resume.lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let released = Instant::now();
        self.resumed.notify_all();
        released
    }
}

/// A pause in progress: every mutator stopped or blocked until this is resumed
/// ([`StoppedWorld::resume`]) or dropped, which resumes them too (also when the
/// collector's work in the pause panics).
pub(crate) struct StoppedWorld<'a> {
    safepoints: &'a Safepoints,
    /// The mutators registered when the world stopped; their root stacks and buffers
    /// are the collector's to read until the resume or drop.
    pub(crate) mutators: Vec<Arc<MutatorShared>>,
    /// From the stop request until the last mutator stopped.
    pub(crate) time_to_safepoint: Duration,
    /// Whether [`StoppedWorld::resume`] has released the world.
    released: bool,
}

impl StoppedWorld<'_> {
    /// Ends the pause; returns the instant the world was released, which is the pause's
    /// end. Not the instant this returns: waking a parked mutator can hand it this
    /// thread's CPU at once, and the collector thread then waits for a scheduler slice
    /// (3–4 ms here) while the mutator runs. Measured at `--log-cycles` on GCBench: two
    /// initial marks of 3.4 and 4.3 ms, all but 0.03 ms of them after the release.
    pub(crate) fn resume(mut self) -> Instant {
        self.released = true;
        self.safepoints.resume_world()
    }
}

impl Drop for StoppedWorld<'_> {
    fn drop(&mut self) {
        if !self.released {
            self.safepoints.resume_world();
        }
    }
}
