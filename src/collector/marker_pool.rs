//! The marker helper threads: created with the heap, parked between pauses, and woken
//! to join a parallel drain in a pause ([`super::mark::Marker::drain_parallel`]), or in
//! a concurrent mark that no mutator is running beside ([`super::mark::Marker::drain`]).
//!
//! Why a pool: a pause that spawns its helpers pays thread creation (tens of
//! microseconds each, and as much again to join them) in every pause that has enough
//! work to share; parked threads cost one wake-up, which the pause overlaps with its own
//! tracing. Their CPU time counts as the collector's (they are named
//! [`MARKER_THREAD`]).
//!
//! Protocol: the drain publishes a job (the heap's space, the cycle's mark bitmap and
//! the shared grey pool) under the pool's lock with a new generation number and the
//! number of helpers it wants. After its own share of the work it withdraws the wants
//! that no helper has taken yet, and waits until every helper that took the job has
//! finished it. A helper takes a job at most once per generation, and only under the
//! lock while it is wanted. IF the drain returns THEN no helper still uses the job's
//! references: that is what makes lending them to threads that outlive the pause
//! sound. The marking ends when every thread that joined the grey pool is idle and
//! the pool is empty; a helper that joins after that finds nothing and leaves.
//!
//! A helper that panics (a bug, or [`crate::heap::testing::Testing::fail_in_marker`]) reports
//! its failure and finishes the job as far as the drain is concerned; the drain waits for
//! every helper whatever happened on its own thread, then panics on the collector
//! thread with the first failure, which fails the heap's collector (`run_cycle`)
//! instead of leaving a pause waiting for a helper that will never report.
//!
//! Helpers read the heap as the collector thread's concurrent mark does (atomic slot
//! loads and mark bits), so they are correct beside running mutators; they are woken
//! only when the mutators' CPUs are idle (a pause, or a concurrent drain that found no
//! mutator running), since they spin while out of work. Never: return (or unwind) from
//! a drain before its helpers have finished.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use super::trace::{Ahead, Traced, scan_entry};
use crate::bitmap::Bitmap;
use crate::error::{Error, Result};
use crate::heap::Space;
use crate::sys::cpu::ThreadRole;

/// The helper threads' name: [`ThreadRole::Marker`]'s.
pub const MARKER_THREAD: &str = ThreadRole::Marker.name();

/// What a drain lends its helpers: references valid until it has seen them finish.
#[derive(Clone, Copy)]
struct Job {
    space: *const Space,
    marks: *const Bitmap,
    pool: *const Pool,
}

// SAFETY: the pointers are shared references to `Sync` data (`Space`, `Bitmap`, `Pool`
// are only read or updated atomically / under their own locks), and the drain that lent
// them outlives every use (module docs).
unsafe impl Send for Job {}

struct State {
    job: Option<Job>,
    generation: u64,
    /// Helpers the current job still wants to start.
    wanted: usize,
    /// Helpers that took the current job and have not finished it.
    running: usize,
    /// The first failure of a helper in the current job.
    failed: Option<String>,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    start: Condvar,
    done: Condvar,
    /// [`crate::heap::testing::Testing::fail_in_marker`].
    plant_failure: bool,
}

/// The parked helper threads of one heap.
pub(crate) struct MarkerPool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl MarkerPool {
    /// Starts `helpers` parked threads (the collector thread is the first marker, so a
    /// heap that marks with `n` threads has `n - 1` helpers); with `plant_failure` each
    /// fails whenever it joins a drain.
    pub(crate) fn new(helpers: usize, plant_failure: bool) -> Result<MarkerPool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                job: None,
                generation: 0,
                wanted: 0,
                running: 0,
                failed: None,
                shutdown: false,
            }),
            start: Condvar::new(),
            done: Condvar::new(),
            plant_failure,
        });
        let mut pool = MarkerPool {
            shared,
            threads: Vec::with_capacity(helpers),
        };
        for _ in 0..helpers {
            let shared = pool.shared.clone();
            let t = ThreadRole::Marker
                .builder(None)
                .spawn(move || helper(&shared))
                .map_err(|e| Error::io("spawn a marker thread", e))?;
            pool.threads.push(t);
        }
        Ok(pool)
    }

    /// How many helpers there are.
    pub(crate) fn helpers(&self) -> usize {
        self.threads.len()
    }

    /// Traces from `stack` on this thread while up to `helpers` helpers (at most
    /// [`MarkerPool::helpers`]) share the work through one [`Pool`], and returns when all
    /// that joined have finished, with what all traced and how many threads marked (this
    /// one and the helpers that joined). Panics, once all have finished, if this
    /// thread's work or a helper's failed.
    ///
    /// A helper that has not taken the job by the time this thread runs out of work is
    /// not waited for: the work is done, and waking a parked thread on the other vCPU
    /// takes 7–50 µs on this kind of VM, or milliseconds when the host has descheduled
    /// that vCPU, which the pause would otherwise wait out. (With
    /// [`crate::heap::testing::Testing::fail_in_marker`] every wanted helper is waited
    /// for, so that the planted failure shows in every drain that wanted helpers.)
    pub(crate) fn drain(
        &self,
        space: &Space,
        marks: &Bitmap,
        stack: Vec<usize>,
        helpers: usize,
    ) -> (Totals, usize) {
        let helpers = helpers.min(self.helpers());
        let pool = &Pool::new();
        {
            let mut s = self.shared.state.lock();
            s.job = Some(Job { space, marks, pool });
            s.generation += 1;
            s.wanted = helpers;
            s.running = 0;
            s.failed = None;
            self.shared.start.notify_all();
        }
        // Caught so that the helpers are waited for before the panic leaves: they hold
        // references to `pool`, which lives in the caller's frame.
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            work(space, marks, pool, stack)
        }));
        if mine.is_err() {
            pool.abandon();
        }
        let mut s = self.shared.state.lock();
        if !self.shared.plant_failure {
            s.wanted = 0; // late helpers: not needed any more
        }
        while s.wanted > 0 || s.running > 0 {
            self.shared.done.wait(&mut s);
        }
        s.job = None;
        let failed = s.failed.take();
        drop(s);
        let mine = mine.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if let Some(msg) = failed {
            std::panic::resume_unwind(Box::new(format!("a marker thread failed: {msg}")));
        }
        (
            mine.plus(pool.totals()),
            pool.joined.load(Ordering::Acquire),
        )
    }
}

impl Drop for MarkerPool {
    fn drop(&mut self) {
        self.shared.state.lock().shutdown = true;
        self.shared.start.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One helper: park until a job of a new generation wants a helper, work on it, report.
fn helper(shared: &Shared) {
    let mut seen = 0;
    loop {
        let job = {
            let mut s = shared.state.lock();
            loop {
                if s.shutdown {
                    return;
                }
                if s.generation != seen && s.wanted > 0 {
                    seen = s.generation;
                    s.wanted -= 1;
                    s.running += 1;
                    break s.job.expect("a job is published with its generation");
                }
                shared.start.wait(&mut s);
            }
        };
        // SAFETY: the drain that published the job waits until `running` is back to zero
        // before it returns or unwinds, so the references outlive this use (module docs).
        unsafe { &*job.pool }.join();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if shared.plant_failure {
                std::panic::resume_unwind(Box::new("planted failure in a marker thread"));
            }
            // SAFETY: the drain that published the job waits until `running` is back to
            // zero before it returns or unwinds, so the references outlive this use
            // (module docs).
            let totals = unsafe { work(&*job.space, &*job.marks, &*job.pool, Vec::new()) };
            // SAFETY: as above; the pool is still the drain's.
            unsafe { &*job.pool }.add_totals(totals);
        }));
        if outcome.is_err() {
            // SAFETY: as above: the drain waits for this helper's report below.
            unsafe { &*job.pool }.abandon();
        }
        let mut s = shared.state.lock();
        if let Err(panic) = outcome {
            s.failed.get_or_insert_with(|| panic_message(&*panic));
        }
        s.running -= 1;
        if s.running == 0 && s.wanted == 0 {
            shared.done.notify_all();
        }
    }
}

/// The message of a panic's payload (a `&str` or a `String`, as `panic!` makes them).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// What a parallel drain did: objects newly marked and their bytes, and objects
/// rescanned in dirty granules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) objects: u64,
    pub(crate) bytes: u64,
    pub(crate) rescanned: u64,
}

impl Totals {
    fn plus(self, o: Totals) -> Totals {
        Totals {
            objects: self.objects + o.objects,
            bytes: self.bytes + o.bytes,
            rescanned: self.rescanned + o.rescanned,
        }
    }
}

/// A thread shares grey objects only while it holds more than this many; it then moves
/// the older half of its stack (the entries nearest the roots, which in a depth-first
/// trace head the largest unexplored subgraphs) to the shared pool.
pub(super) const SHARE_ABOVE: usize = 1;
/// Grey objects shared between the threads of a parallel drain. Threads out of work
/// spin rather than sleep: the pause is short, the mutators' CPUs are idle, and a
/// sleep and wake-up would cost more than the pause itself on a VM.
pub(crate) struct Pool {
    chunks: Mutex<Vec<Vec<usize>>>,
    /// `chunks.len()`, readable without the lock.
    available: AtomicUsize,
    /// Threads that found no work: a busy thread shares while this is non-zero, and
    /// marking is complete when every thread that joined is idle and no chunk is left.
    idle: AtomicUsize,
    /// Threads that joined: the drain's own, and each helper that took the job. A
    /// helper that joins after the end finds nothing and leaves at once.
    joined: AtomicUsize,
    /// What the helpers traced, added as each finishes.
    objects: AtomicU64,
    bytes: AtomicU64,
    rescanned: AtomicU64,
}

impl Pool {
    /// An empty pool that the drain's own thread has joined.
    fn new() -> Pool {
        Pool {
            chunks: Mutex::new(Vec::new()),
            available: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            joined: AtomicUsize::new(1),
            objects: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            rescanned: AtomicU64::new(0),
        }
    }

    /// Adds a helper's (objects, bytes) traced.
    pub(crate) fn add_totals(&self, t: Totals) {
        self.objects.fetch_add(t.objects, Ordering::Relaxed);
        self.bytes.fetch_add(t.bytes, Ordering::Relaxed);
        self.rescanned.fetch_add(t.rescanned, Ordering::Relaxed);
    }

    /// A helper joins, before its first look at the pool.
    fn join(&self) {
        self.joined.fetch_add(1, Ordering::AcqRel);
    }

    /// A thread's `work` panicked (it can only while tracing, counted busy): count it
    /// idle for good, so that the others still see the end of the marking (every thread
    /// idle, the pool empty) instead of waiting for it.
    pub(crate) fn abandon(&self) {
        self.idle.fetch_add(1, Ordering::AcqRel);
    }

    /// The helpers' (objects, bytes) traced.
    pub(crate) fn totals(&self) -> Totals {
        Totals {
            objects: self.objects.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            rescanned: self.rescanned.load(Ordering::Relaxed),
        }
    }

    fn put(&self, chunk: Vec<usize>) {
        let mut c = self.chunks.lock();
        c.push(chunk);
        self.available.store(c.len(), Ordering::Release);
    }

    fn take(&self) -> Option<Vec<usize>> {
        let mut c = self.chunks.lock();
        let chunk = c.pop();
        self.available.store(c.len(), Ordering::Release);
        chunk
    }
}

/// Objects a thread traces between two shares.
const SHARE_EVERY: u64 = 64;

/// One thread of a parallel drain: trace from `stack`, share while others are idle, take
/// from the pool when out of work. Returns (objects, bytes) traced.
///
/// A thread leaves only when its own stack is empty, every thread is idle and the pool
/// is empty, so no grey object is left behind. (A thread may see that state for an
/// instant while another has just taken the last chunk; it then leaves early, and the
/// other finishes alone: less parallel, never incomplete.)
fn work(space: &Space, marks: &Bitmap, pool: &Pool, mut stack: Vec<usize>) -> Totals {
    let mut totals = Totals::default();
    let mut since_share = 0u64;
    let mut ahead = Ahead::new();
    loop {
        while let Some(entry) = ahead.next(&mut stack) {
            let traced = scan_entry(space, marks, entry, &mut stack);
            match traced {
                Traced::Marked(b) => {
                    totals.objects += 1;
                    totals.bytes += b;
                }
                Traced::Rescanned(n) => totals.rescanned += n,
            }
            since_share += traced.work();
            if since_share >= SHARE_EVERY
                && stack.len() > SHARE_ABOVE
                && pool.idle.load(Ordering::Relaxed) > 0
                && pool.available.load(Ordering::Relaxed) == 0
            {
                since_share = 0;
                pool.put(stack.drain(..stack.len() / 2).collect());
            }
        }
        pool.idle.fetch_add(1, Ordering::AcqRel);
        let mut spins = 0u32;
        loop {
            if pool.available.load(Ordering::Acquire) > 0 {
                if let Some(c) = pool.take() {
                    pool.idle.fetch_sub(1, Ordering::AcqRel);
                    stack = c;
                    break;
                }
            } else if pool.idle.load(Ordering::Acquire) == pool.joined.load(Ordering::Acquire) {
                return totals;
            }
            spins += 1;
            if spins % 64 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}
