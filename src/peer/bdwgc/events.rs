//! The collection-event log: bdwgc's callbacks, which may do nothing but atomic stores,
//! write into slots allocated before the run; the pauses are read from the events after.

use std::ffi::c_int;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use super::{Bdwgc, event};
use crate::error::{Error, Result};
use crate::peer::PauseSource;

/// One collection event as the callback recorded it.
#[derive(Default)]
struct EventSlot {
    kind: AtomicU32,
    ns: AtomicU64,
}

/// The log the callback writes: non-null only while an [`EventLog`] owns the slots.
static LOG_SLOTS: AtomicPtr<EventSlot> = AtomicPtr::new(ptr::null_mut());
/// How many slots `LOG_SLOTS` points to.
static LOG_CAPACITY: AtomicUsize = AtomicUsize::new(0);
/// Events seen since the log was installed (may exceed the capacity: overflow).
static LOG_LEN: AtomicUsize = AtomicUsize::new(0);
/// One log at a time: the callback has one set of statics.
static LOG_IN_USE: AtomicBool = AtomicBool::new(false);
/// Full collections started since the log was installed.
static FULL_COLLECTIONS: AtomicU64 = AtomicU64::new(0);

/// bdwgc's collection-event callback.
///
/// Rules (it runs inside the collector, with the allocation lock held, and between the
/// world-stop events with every other thread suspended wherever it was): no allocation,
/// no lock, no panic, nothing but an atomic increment and two atomic stores into slots
/// allocated before the run. `clock_gettime` is async-signal-safe.
extern "C" fn on_collection_event(kind: c_int) {
    let ns = crate::sys::monotonic_ns();
    let i = LOG_LEN.fetch_add(1, Ordering::Relaxed);
    let slots = LOG_SLOTS.load(Ordering::Acquire);
    if slots.is_null() || i >= LOG_CAPACITY.load(Ordering::Relaxed) {
        return; // counted in LOG_LEN: the log reports the overflow
    }
    // `slots` is non-null only between `EventLog::install`, which stores it after
    // allocating `LOG_CAPACITY` slots, and `EventLog::stop`, which unregisters this
    // callback (under the allocation lock, so no call is in flight) before it clears the
    // pointer and frees the slots.
    // SAFETY: so the slots are allocated here, and `i` is below the capacity.
    let slot = unsafe { &*slots.add(i) };
    slot.kind.store(kind as u32, Ordering::Relaxed);
    slot.ns.store(ns, Ordering::Relaxed);
}

/// bdwgc's start callback (`GC_set_start_callback`, `gc_mark.h`), which it calls "at the
/// start of every full GC" with the allocation lock held: a stop-the-world collection, or
/// in incremental mode one that clears the mark bits first (`GC_maybe_gc` in `alloc.c`).
/// The same rules as [`on_collection_event`]: one atomic increment.
extern "C" fn on_full_collection() {
    FULL_COLLECTIONS.fetch_add(1, Ordering::Relaxed);
}

/// Owns the slots [`on_collection_event`] writes and the registrations of both callbacks.
pub(super) struct EventLog<'a> {
    gc: &'a Bdwgc,
    slots: Box<[EventSlot]>,
    installed: bool,
}

impl<'a> EventLog<'a> {
    /// Allocates `capacity` slots (written once here, so the callback never faults a page
    /// in) and registers the callback.
    pub(super) fn install(gc: &'a Bdwgc, capacity: usize) -> Result<EventLog<'a>> {
        if LOG_IN_USE.swap(true, Ordering::AcqRel) {
            return Err(Error::InvalidArgument(
                "a bdwgc event log is already installed in this process".into(),
            ));
        }
        let mut slots: Box<[EventSlot]> = (0..capacity).map(|_| EventSlot::default()).collect();
        LOG_LEN.store(0, Ordering::Relaxed);
        LOG_CAPACITY.store(capacity, Ordering::Relaxed);
        LOG_SLOTS.store(slots.as_mut_ptr(), Ordering::Release);
        FULL_COLLECTIONS.store(0, Ordering::Relaxed);
        gc.set_on_collection_event(Some(on_collection_event));
        gc.set_start_callback(Some(on_full_collection));
        Ok(EventLog {
            gc,
            slots,
            installed: true,
        })
    }

    fn stop(&mut self) {
        if std::mem::take(&mut self.installed) {
            self.gc.set_on_collection_event(None);
            self.gc.set_start_callback(None);
            LOG_SLOTS.store(ptr::null_mut(), Ordering::Release);
            LOG_IN_USE.store(false, Ordering::Release);
        }
    }

    /// Unregisters the callbacks and returns the events, `(kind, CLOCK_MONOTONIC ns)`, in
    /// order, and the number of full collections; an error if there were more events than
    /// the log could hold.
    pub(super) fn finish(mut self) -> Result<(Vec<(u32, u64)>, u64)> {
        self.stop();
        let len = LOG_LEN.load(Ordering::Relaxed);
        if len > self.slots.len() {
            return Err(Error::InvalidArgument(format!(
                "bdwgc reported {len} collection events, more than the {} the log holds",
                self.slots.len()
            )));
        }
        let events = self.slots[..len]
            .iter()
            .map(|s| (s.kind.load(Ordering::Relaxed), s.ns.load(Ordering::Relaxed)))
            .collect();
        Ok((events, FULL_COLLECTIONS.load(Ordering::Relaxed)))
    }
}

impl Drop for EventLog<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Event-log capacity: a collection fires about ten events; classic GCBench runs a few
/// hundred collections at most.
pub(super) const EVENT_CAPACITY: usize = 1 << 17;

/// The pauses in an event sequence: world-stop brackets where they fire, else whole
/// collections (see [`crate::peer`]).
pub(super) fn pauses_from_events(events: &[(u32, u64)]) -> (PauseSource, Vec<Duration>) {
    let brackets = |open: u32, close: u32| {
        let mut started = None;
        let mut out = Vec::new();
        for &(kind, ns) in events {
            if kind == open {
                started = Some(ns);
            } else if kind == close {
                if let Some(t0) = started.take() {
                    out.push(Duration::from_nanos(ns.saturating_sub(t0)));
                }
            }
        }
        out
    };
    let world = brackets(event::PRE_STOP_WORLD, event::POST_START_WORLD);
    if !world.is_empty() {
        return (PauseSource::WorldStop, world);
    }
    let whole = brackets(event::START, event::END);
    if !whole.is_empty() {
        return (PauseSource::Collection, whole);
    }
    (PauseSource::None, Vec::new())
}
