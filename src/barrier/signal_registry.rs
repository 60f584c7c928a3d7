//! The registry of heaps whose write faults are served by a signal handler on the writing
//! thread: `mprotect` + SIGSEGV and userfaultfd write-protect + SIGBUS.
//!
//! What: one fixed table of `SLOTS` (64) slots, each naming a heap range `[base, base + len)`,
//! the signal its faults arrive as, and the tracker state that serves them (a
//! `FaultServer` behind an `Arc`, so that its address is stable). One process-wide
//! handler per signal (`on_fault`) looks the fault address up in the table and calls
//! the server. A fault in no registered heap, or one the server cannot serve, is passed
//! on to the action that was in place before (Rust's stack-overflow handler, a
//! debugger's, or the default action), so that a real crash is still a crash.
//!
//! Why a table of atomics: the lookup runs inside a signal handler, which may interrupt
//! any code on the faulting thread, including code that holds a lock or is inside the
//! allocator. It may read only atomics, never a `Mutex` or a `Vec` that another thread
//! might be changing. Registering and unregistering are rare (one per tracker) and run
//! in normal context, so they may lock (one `Mutex` per signal serialises installs) and
//! wait (for handlers still using a slot they retire).
//!
//! Lifetime protocol of a slot (`state`): `FREE` → `CLAIMED` (fields being written) →
//! `LIVE` (published with `SeqCst`) → `RETIRING` → `FREE`. A handler that matched a slot
//! counts itself in the slot's `active` before re-checking that the slot is still `LIVE`
//! and re-reading its fields; the unregistering thread stores `RETIRING` and then waits
//! until `active` is zero. Both sides use `SeqCst`, so at least one of them sees the
//! other (Dekker): IF a handler is using a slot THEN the tracker behind it is not
//! dropped until the handler is done.
//!
//! The handler for a signal is installed when the first tracker using it registers and
//! the previous action is restored when the last one unregisters. The previous action
//! is copied into a static cell that the handler reads lock-free, guarded the same way
//! (`prev_ready` + a `chaining` count).
//!
//! Never: allocate, lock, panic or format in the handler; never let a handler unwind
//! (it is `extern "C"`); never drop a tracker's state while a handler may use it. A
//! thread that blocks SIGSEGV or SIGBUS cannot run the handler: the kernel forces the
//! default action on a blocked synchronous fault signal, so its first write to an armed
//! page kills the process.

use std::cell::UnsafeCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::sys::signal::{self, InstalledHandler};

/// How many heaps can be registered at once (all signals together).
pub(crate) const SLOTS: usize = 64;

/// `si_code` of a SIGSEGV raised by a write to a mapped page whose protection forbids it
/// (`SEGV_ACCERR` in `<asm-generic/siginfo.h>`; the `libc` crate does not define it).
const SEGV_ACCERR: i32 = 2;

/// The signals a page tracker's fault arrives as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultSignal {
    /// SIGSEGV: a write to a `PROT_READ` page (`mprotect`).
    Segv = 0,
    /// SIGBUS: a write to a userfaultfd write-protected page with `UFFD_FEATURE_SIGBUS`.
    Bus = 1,
}

impl FaultSignal {
    fn number(self) -> i32 {
        match self {
            FaultSignal::Segv => libc::SIGSEGV,
            FaultSignal::Bus => libc::SIGBUS,
        }
    }

    fn from_number(signal: i32) -> Option<FaultSignal> {
        match signal {
            libc::SIGSEGV => Some(FaultSignal::Segv),
            libc::SIGBUS => Some(FaultSignal::Bus),
            _ => None,
        }
    }

    /// The only `si_code` the trackers serve. Any other (a signal sent with `kill(2)` or
    /// `tgkill(2)`, `SEGV_MAPERR` for an unmapped address, a machine-check `SIGBUS`) is
    /// never ours, even inside a heap: "serving" it would retry a fault that the tracker
    /// cannot fix, forever.
    fn served_code(self) -> i32 {
        match self {
            FaultSignal::Segv => SEGV_ACCERR,
            // The kernel raises a userfaultfd SIGBUS with BUS_ADRERR (`do_sigbus`).
            FaultSignal::Bus => libc::BUS_ADRERR,
        }
    }
}

/// What a [`FaultServer`] did with a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// The page is writable now; returning from the handler retries the write.
    Handled,
    /// The server cannot make the page writable: pass the signal on (which ends the
    /// process unless the previous handler fixes the fault).
    Chain,
}

/// The part of a tracker that serves a fault inside a signal handler.
pub(crate) trait FaultServer: Send + Sync + 'static {
    /// Makes the page holding `addr` (inside the registered range) writable and records
    /// it, in that order (see `DESIGN.md`, "Handler on the writing thread").
    ///
    /// Runs in a signal handler on the faulting thread: it must be async-signal-safe.
    /// Atomics and single system calls (`mprotect`, `ioctl`) only; no allocation, no
    /// lock, no panic, no formatting, no lazily initialised thread-local.
    fn serve(&self, addr: usize) -> Served;
}

const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const LIVE: u8 = 2;
const RETIRING: u8 = 3;

/// The type-erased call of a `FaultServer`: `trampoline::<T>`.
type ServeFn = unsafe fn(*const (), usize) -> Served;

/// Calls `T::serve` on the erased pointer.
///
/// # Safety
/// `data` must point to a live `T`.
unsafe fn trampoline<T: FaultServer>(data: *const (), addr: usize) -> Served {
    // SAFETY: by this function's contract, `data` is the address of a live `T`.
    unsafe { &*data.cast::<T>() }.serve(addr)
}

/// One registered heap. Every field is an atomic so that the handler may read it.
struct Slot {
    state: AtomicU8,
    signal: AtomicU8,
    base: AtomicUsize,
    len: AtomicUsize,
    /// `Arc::as_ptr` of the server.
    data: AtomicPtr<()>,
    /// `trampoline::<T>` as a data pointer.
    serve: AtomicPtr<()>,
    /// Handlers currently using this slot's fields.
    active: AtomicUsize,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            state: AtomicU8::new(FREE),
            signal: AtomicU8::new(0),
            base: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            data: AtomicPtr::new(std::ptr::null_mut()),
            serve: AtomicPtr::new(std::ptr::null_mut()),
            active: AtomicUsize::new(0),
        }
    }

    fn covers(&self, signal: FaultSignal, addr: usize, order: Ordering) -> bool {
        self.signal.load(order) == signal as u8
            && addr.wrapping_sub(self.base.load(order)) < self.len.load(order)
    }

    /// Serves the fault if this slot is a live registration covering `addr`.
    /// Async-signal-safe.
    fn try_serve(&self, signal: FaultSignal, addr: usize) -> Option<Served> {
        // A cheap look first, on possibly stale values: most slots are not the one.
        if self.state.load(Ordering::Relaxed) != LIVE
            || !self.covers(signal, addr, Ordering::Relaxed)
        {
            return None;
        }
        self.active.fetch_add(1, Ordering::SeqCst);
        // Re-check now that the unregistering side must wait for us; the fields are
        // re-read because the slot may have been retired and reused since the look.
        let result = if self.state.load(Ordering::SeqCst) == LIVE
            && self.covers(signal, addr, Ordering::Relaxed)
        {
            let data = self.data.load(Ordering::Relaxed).cast_const();
            let serve = self.serve.load(Ordering::Relaxed);
            // SAFETY: a LIVE slot's `serve` was stored by `register::<T>` from
            // `trampoline::<T>`, a function pointer of exactly this type.
            let serve: ServeFn = unsafe { std::mem::transmute::<*mut (), ServeFn>(serve) };
            // SAFETY: a LIVE slot's `data` points to the `T` that its `Registration`
            // keeps alive, and it cannot be dropped while `active` counts us.
            Some(unsafe { serve(data, addr) })
        } else {
            None
        };
        self.active.fetch_sub(1, Ordering::Release);
        result
    }
}

static TABLE: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
/// One past the highest slot ever used: the handler scans no further.
static HIGH_WATER: AtomicUsize = AtomicUsize::new(0);

/// The handler installation for one signal.
struct SignalState {
    install: Mutex<Install>,
    /// The previous action, readable by the handler while `prev_ready`.
    prev: UnsafeCell<MaybeUninit<libc::sigaction>>,
    prev_ready: AtomicBool,
    /// Handlers currently copying `prev`.
    chaining: AtomicUsize,
}

struct Install {
    handler: Option<InstalledHandler>,
    users: usize,
}

// SAFETY: `prev` is written only under `install`, while `prev_ready` is false and no
// handler is copying it (see `acquire`/`release`); it is read only by handlers that
// counted themselves in `chaining` and saw `prev_ready`.
unsafe impl Sync for SignalState {}

impl SignalState {
    const fn new() -> SignalState {
        SignalState {
            install: Mutex::new(Install {
                handler: None,
                users: 0,
            }),
            prev: UnsafeCell::new(MaybeUninit::uninit()),
            prev_ready: AtomicBool::new(false),
            chaining: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Install> {
        // A panic while holding it leaves `Install` consistent (every update is one
        // assignment), so a poisoned lock is still usable.
        self.install.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more user, installing the handler for the first.
    fn acquire(&self, install: &mut Install, signal: FaultSignal) -> Result<()> {
        if install.users == 0 {
            // SAFETY: `on_fault` follows the async-signal-safety rules written above it
            // and reads only statics, which live forever.
            let handler = unsafe { InstalledHandler::install(signal.number(), on_fault)? };
            // SAFETY: `prev_ready` is false and the last `release` waited until no
            // handler was copying `prev`, so nothing reads it while it is written.
            unsafe { (*self.prev.get()).write(*handler.previous()) };
            self.prev_ready.store(true, Ordering::SeqCst);
            install.handler = Some(handler);
        }
        install.users += 1;
        Ok(())
    }

    /// Counts one user less, restoring the previous action after the last.
    fn release(&self, install: &mut Install) {
        install.users -= 1;
        if install.users == 0 {
            drop(install.handler.take());
            self.prev_ready.store(false, Ordering::SeqCst);
            while self.chaining.load(Ordering::SeqCst) != 0 {
                std::thread::yield_now();
            }
        }
    }

    /// Passes the signal to the previous action. Async-signal-safe.
    ///
    /// # Safety
    /// Called from `on_fault` with the arguments the kernel gave it.
    unsafe fn chain(&self, signal: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
        self.chaining.fetch_add(1, Ordering::SeqCst);
        if !self.prev_ready.load(Ordering::SeqCst) {
            // Installed a moment ago and `prev` not yet published, or just restored:
            // return, and the faulting instruction runs again and faults again, this
            // time into the action then in place (a signal sent with `kill(2)` in this
            // window of nanoseconds is lost).
            self.chaining.fetch_sub(1, Ordering::Release);
            return;
        }
        // SAFETY: `prev_ready` was seen while counted in `chaining`, so `prev` is
        // initialised and not written until we uncount ourselves; this copies it.
        let previous = unsafe { (*self.prev.get()).assume_init_read() };
        self.chaining.fetch_sub(1, Ordering::Release);
        // SAFETY: we are the handler for `signal`, passing on the kernel's arguments.
        unsafe { signal::chain(&previous, signal, info, context) };
    }
}

static SIGNALS: [SignalState; 2] = [SignalState::new(), SignalState::new()];

// The signal handler.
//
// Async-signal-safety rules (the handler may interrupt any code on the faulting thread,
// including code holding a lock or inside `malloc`):
// - It may: load and update atomics; call `mprotect(2)` and `ioctl(2)`
//   (`UFFDIO_WRITEPROTECT`) through its `FaultServer`; call `sigaction(2)` and the
//   previous handler through `signal::chain`; read and restore `errno`.
// - It must never: allocate or free, take a lock (a `Mutex`, `parking_lot`, stdout),
//   panic (an `extern "C"` function aborts on a panic), format, or touch a thread-local
//   that initialises lazily (`thread_local!` with a destructor, `std::thread::current`).
//   Index and arithmetic must not be able to panic: addresses are compared with
//   `wrapping_sub`, slots are iterated, not indexed.
// - It does not block: the fault is served by one or two system calls and the write
//   retries when the handler returns.
// Why a pause never sees a half-served fault: mutators stop only at cooperative
// safepoints (allocation, `Mutator::safepoint`), never inside this handler, so when the
// collector's remark pause starts, every handler that began has unprotected its page
// *and* recorded it. (bdwgc stops threads with signals, so it must block its suspend
// signal in the fault handler's `sa_mask`; barrierlab needs no such care.)
extern "C" fn on_fault(signal: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // The interrupted code may be between a system call and its read of errno.
    // SAFETY: `__errno_location` returns the calling thread's errno, set up by libc when
    // the thread was created (not lazily).
    let errno = unsafe { *libc::__errno_location() };
    let Some(which) = FaultSignal::from_number(signal) else {
        return;
    };
    // SAFETY: the kernel passes a valid siginfo to a SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    let served = if code == which.served_code() {
        // SAFETY: for SIGSEGV and SIGBUS raised by a fault the kernel fills si_addr.
        let addr = unsafe { signal::fault_address(info) };
        dispatch(which, addr)
    } else {
        None
    };
    if served != Some(Served::Handled) {
        // SAFETY: we are the handler for `signal`, with the kernel's arguments.
        unsafe { SIGNALS[which as usize].chain(signal, info, context) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Finds the registration covering `addr` and serves the fault. Async-signal-safe.
fn dispatch(signal: FaultSignal, addr: usize) -> Option<Served> {
    let high = HIGH_WATER.load(Ordering::Acquire);
    TABLE
        .iter()
        .take(high)
        .find_map(|slot| slot.try_serve(signal, addr))
}

/// A heap registered with the fault handler of its signal; unregisters on drop, after
/// waiting for every handler still serving one of its faults.
pub(crate) struct Registration {
    signal: FaultSignal,
    slot: usize,
    /// Keeps the server alive for as long as the slot can point to it.
    _server: Arc<dyn FaultServer>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("signal", &self.signal)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

/// Registers the heap `[base, base + len)`: from now on a `signal` fault inside it (with
/// the tracker's `si_code`) is served by `server`. Installs the handler if this is the
/// first registration for `signal`.
pub(crate) fn register<T: FaultServer>(
    signal: FaultSignal,
    base: usize,
    len: usize,
    server: Arc<T>,
) -> Result<Registration> {
    let state = &SIGNALS[signal as usize];
    let mut install = state.lock();
    state.acquire(&mut install, signal)?;
    let Some(index) = TABLE.iter().position(|s| {
        s.state
            .compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }) else {
        state.release(&mut install);
        return Err(Error::Unavailable {
            mechanism: "signal handler registry",
            reason: format!(
                "all {SLOTS} slots are taken: at most {SLOTS} heaps can use the mprotect and \
                 uffd-wp-sigbus trackers at once"
            ),
        });
    };
    let slot = &TABLE[index];
    slot.signal.store(signal as u8, Ordering::Relaxed);
    slot.base.store(base, Ordering::Relaxed);
    slot.len.store(len, Ordering::Relaxed);
    slot.data.store(
        Arc::as_ptr(&server).cast::<()>().cast_mut(),
        Ordering::Relaxed,
    );
    slot.serve
        .store(trampoline::<T> as ServeFn as *mut (), Ordering::Relaxed);
    HIGH_WATER.fetch_max(index + 1, Ordering::AcqRel);
    // Publishes the fields above to every handler that sees LIVE.
    slot.state.store(LIVE, Ordering::SeqCst);
    drop(install);
    Ok(Registration {
        signal,
        slot: index,
        _server: server,
    })
}

impl Drop for Registration {
    fn drop(&mut self) {
        let slot = &TABLE[self.slot];
        slot.state.store(RETIRING, Ordering::SeqCst);
        while slot.active.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        slot.len.store(0, Ordering::Relaxed);
        slot.base.store(0, Ordering::Relaxed);
        slot.data.store(std::ptr::null_mut(), Ordering::Relaxed);
        slot.serve.store(std::ptr::null_mut(), Ordering::Relaxed);
        slot.state.store(FREE, Ordering::Release);
        let state = &SIGNALS[self.signal as usize];
        let mut install = state.lock();
        state.release(&mut install);
    }
}

/// Test hook shared by the handler-on-the-writer trackers: busy-waits `spins` times
/// between the two steps of the fault handler (unprotect | record) and of a harvest
/// (take | re-protect), to widen the races between them. Async-signal-safe.
pub(crate) fn widen(spins: u32) {
    for _ in 0..spins {
        std::hint::spin_loop();
    }
}

/// Helpers for the trackers' tests: real memory, timeouts, forked children.
#[cfg(test)]
pub(crate) mod testkit {
    use std::sync::mpsc;
    use std::time::Duration;

    use crate::barrier::DirtySet;
    use crate::sys::PAGE_SIZE;

    /// How long a test body that may block or fault gets before the test fails.
    pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

    /// Runs `body` on its own thread and fails if it does not finish within [`TIMEOUT`]
    /// (a deadlocked fault path then fails the test instead of hanging the run).
    pub(crate) fn with_timeout(body: impl FnOnce() + Send + 'static) {
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            body();
            let _ = tx.send(());
        });
        match rx.recv_timeout(TIMEOUT) {
            Ok(()) => t.join().expect("test body"),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The body panicked: re-raise its panic here.
                if let Err(p) = t.join() {
                    std::panic::resume_unwind(p);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the test body did not finish within {TIMEOUT:?}")
            }
        }
    }

    /// Writes `value` to the word at page `page` of the heap at `base`.
    pub(crate) fn write_page(base: usize, page: usize, value: u64) {
        // SAFETY: the callers pass a page inside a live test mapping; volatile so that
        // every store really happens (it is the store that faults).
        unsafe { ((base + page * PAGE_SIZE) as *mut u64).write_volatile(value) };
    }

    /// Reads the word at page `page` of the heap at `base`.
    pub(crate) fn read_page(base: usize, page: usize) -> u64 {
        // SAFETY: as in `write_page`.
        unsafe { ((base + page * PAGE_SIZE) as *const u64).read_volatile() }
    }

    /// Writes `pages`, half from each of two threads.
    pub(crate) fn write_from_two_threads(base: usize, pages: &[usize], value: u64) {
        std::thread::scope(|s| {
            for half in pages.chunks(pages.len().div_ceil(2).max(1)) {
                s.spawn(move || half.iter().for_each(|&p| write_page(base, p, value)));
            }
        });
    }

    /// Harvests and returns the dirty set.
    pub(crate) fn harvest(t: &dyn crate::barrier::DirtyTracker, rearm: bool) -> DirtySet {
        let mut out = DirtySet {
            granules: vec![12345],
            all: true,
        };
        t.harvest(&mut out, rearm).expect("harvest");
        out
    }

    /// Forks; the child runs `child` with core dumps off and exits with status 0 if it
    /// returns. The parent waits up to [`TIMEOUT`] (then kills the child) and returns the
    /// raw wait status.
    ///
    /// The child must only do async-signal-safe things (no allocation, no locks): the
    /// test process has other threads, whose locks the child inherits held.
    pub(crate) fn fork_and_wait(child: impl FnOnce()) -> i32 {
        // SAFETY: the child runs only `child` (async-signal-safe by contract) and
        // leaves with `_exit`, never returning into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: setrlimit and _exit are async-signal-safe system calls.
            unsafe {
                libc::setrlimit(libc::RLIMIT_CORE, &none);
                child();
                libc::_exit(0);
            }
        }
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if rc == pid {
                return status;
            }
            assert_eq!(rc, 0, "waitpid: {}", std::io::Error::last_os_error());
            if std::time::Instant::now() > deadline {
                // SAFETY: killing and reaping our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                panic!("the forked child did not finish within {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// How soon a write must show up in a harvest.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Bound {
        /// In the first harvest that begins after the write ended (or the one it
        /// overlapped): the kernel reads and re-protects each page atomically.
        Next,
        /// In some harvest after the one that preceded the write, at the latest in the
        /// last one (taken with every writer stopped, like a remark). A handler on the
        /// writing thread unprotects, then records: another thread's write through that
        /// window is recorded when the handler gets to it, possibly one harvest later.
        Eventually,
    }

    /// Races `writers` threads writing the pages `targets` against harvests with re-arm
    /// for `duration`, and checks that no write slipped past every harvest that should
    /// hold it: a write that began after harvest `j` returned must be in a harvest
    /// `k > j` (`Bound::Eventually`), and with `Bound::Next` also `k <= m + 1` when it
    /// ended before harvest `m + 1` began. Writers hit a few pages over and over, so that
    /// pages are re-protected while being written.
    pub(crate) fn no_write_slips_past_harvests(
        t: &(dyn crate::barrier::DirtyTracker + 'static),
        base: usize,
        targets: &[usize],
        writers: usize,
        duration: Duration,
        bound: Bound,
    ) {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let started = AtomicUsize::new(0);
        let finished = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        t.arm().expect("arm");
        // sets[k - 1] is harvest k's dirty set.
        let (sets, records) = std::thread::scope(|s| {
            let handles: Vec<_> = (0..writers)
                .map(|w| {
                    let (started, finished, stop) = (&started, &finished, &stop);
                    s.spawn(move || {
                        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (w as u64 + 1);
                        let mut records = Vec::new();
                        // Bounded, so that the records stay small (a write to a writable
                        // page takes nanoseconds).
                        while !stop.load(Ordering::Relaxed) && records.len() < 200_000 {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            let page = targets[(x % targets.len() as u64) as usize];
                            let lo = finished.load(Ordering::SeqCst);
                            write_page(base, page, x);
                            let hi = started.load(Ordering::SeqCst);
                            records.push((page, lo, hi));
                            for _ in 0..64 {
                                std::hint::spin_loop();
                            }
                        }
                        records
                    })
                })
                .collect();
            let mut sets = Vec::new();
            let end = std::time::Instant::now() + duration;
            let mut round = 0u32;
            while std::time::Instant::now() < end {
                started.fetch_add(1, Ordering::SeqCst);
                sets.push(harvest(t, true));
                finished.fetch_add(1, Ordering::SeqCst);
                round += 1;
                // Vary the gap between harvests: none, a yield, a short sleep.
                match round % 3 {
                    0 => {}
                    1 => std::thread::yield_now(),
                    _ => std::thread::sleep(Duration::from_micros(50)),
                }
            }
            stop.store(true, Ordering::Relaxed);
            let records: Vec<_> = handles
                .into_iter()
                .flat_map(|h| h.join().expect("writer"))
                .collect();
            // The last harvest, after every writer stopped.
            sets.push(harvest(t, false));
            (sets, records)
        });
        t.disarm().expect("disarm");
        let contains = |k: usize, page: usize| {
            let d = &sets[k - 1];
            d.all || d.granules.binary_search(&page).is_ok()
        };
        let mut missed = Vec::new();
        for &(page, lo, hi) in &records {
            let last = match bound {
                Bound::Next => (hi + 1).min(sets.len()),
                Bound::Eventually => sets.len(),
            };
            if !(lo + 1..=last).any(|k| contains(k, page)) {
                missed.push((page, lo, hi));
            }
        }
        assert!(
            missed.is_empty(),
            "{} of {} writes were in no harvest that could hold them (page, after harvest, \
             before harvest): {:?}",
            missed.len(),
            records.len(),
            &missed[..missed.len().min(10)]
        );
        assert!(
            records.len() > 100 && sets.len() > 10,
            "too little happened"
        );
    }

    /// Runs [`no_write_slips_past_harvests`] over trackers that `make(region, spins)`
    /// builds (`spins` widens the races, see [`super::widen`]): on a 16-page heap whose
    /// harvests re-protect it whole, and on 16 pages spread over a 1024-page heap,
    /// re-protected run by run; each without and with widened races.
    pub(crate) fn race_writers_and_harvests<T: crate::barrier::DirtyTracker + 'static>(
        make: impl Fn(&crate::sys::mem::Region, u32) -> T,
        bound: Bound,
    ) {
        use crate::sys::mem::Region;
        let duration = Duration::from_millis(200);
        let dense = Region::new(16 * PAGE_SIZE).unwrap();
        let sparse = Region::new(1024 * PAGE_SIZE).unwrap();
        let dense_pages: Vec<usize> = (0..16).collect();
        let sparse_pages: Vec<usize> = (0..16).map(|i| i * 64 + 1).collect();
        for spins in [0, 2000] {
            for (region, pages) in [(&dense, &dense_pages), (&sparse, &sparse_pages)] {
                let t = make(region, spins);
                no_write_slips_past_harvests(&t, region.base(), pages, 2, duration, bound);
            }
        }
    }

    /// Describes a wait status for assertion messages.
    pub(crate) fn describe(status: i32) -> String {
        if libc::WIFSIGNALED(status) {
            format!("killed by signal {}", libc::WTERMSIG(status))
        } else if libc::WIFEXITED(status) {
            format!("exited with status {}", libc::WEXITSTATUS(status))
        } else {
            format!("wait status {status:#x}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use crate::sys::PAGE_SIZE;
    use crate::sys::mem::{Protection, Region, mprotect_errno};
    use std::sync::atomic::AtomicU64;

    /// A server that makes the page writable and counts.
    struct Unprotect {
        served: AtomicU64,
    }

    impl FaultServer for Unprotect {
        fn serve(&self, addr: usize) -> Served {
            let page = addr & !(PAGE_SIZE - 1);
            match mprotect_errno(page, PAGE_SIZE, Protection::ReadWrite) {
                Ok(()) => {
                    self.served.fetch_add(1, Ordering::Relaxed);
                    Served::Handled
                }
                Err(_) => Served::Chain,
            }
        }
    }

    fn current_handler(signal: i32) -> usize {
        // SAFETY: a zeroed sigaction is valid output space; querying changes nothing.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: reading the current action into `old`.
        unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) };
        old.sa_sigaction
    }

    #[test]
    fn a_registered_range_is_served_and_the_handler_is_installed() {
        with_timeout(|| {
            let region = Region::new(8 * PAGE_SIZE).unwrap();
            let server = Arc::new(Unprotect {
                served: AtomicU64::new(0),
            });
            let reg = register(
                FaultSignal::Segv,
                region.base(),
                region.len(),
                server.clone(),
            )
            .unwrap();
            assert_eq!(
                current_handler(libc::SIGSEGV),
                on_fault as *const () as usize
            );
            region
                .protect(region.base(), region.len(), Protection::Read)
                .unwrap();
            for p in [1, 5, 5, 7] {
                write_page(region.base(), p, 40 + p as u64);
            }
            assert_eq!(server.served.load(Ordering::Relaxed), 3);
            for p in [1, 5, 7] {
                assert_eq!(read_page(region.base(), p), 40 + p as u64);
            }
            drop(reg);
            // The server is released once the registration is gone.
            assert_eq!(Arc::strong_count(&server), 1);
        });
    }

    #[test]
    fn a_fault_outside_every_heap_kills_a_forked_child_with_sigsegv() {
        let heap = Region::new(4 * PAGE_SIZE).unwrap();
        let _reg = register(
            FaultSignal::Segv,
            heap.base(),
            heap.len(),
            Arc::new(Unprotect {
                served: AtomicU64::new(0),
            }),
        )
        .unwrap();
        let other = Region::new(PAGE_SIZE).unwrap();
        other
            .protect(other.base(), PAGE_SIZE, Protection::Read)
            .unwrap();
        let status = fork_and_wait(|| write_page(other.base(), 0, 1));
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
            "the child should die of SIGSEGV, but it {}",
            describe(status)
        );
    }

    #[test]
    fn a_signal_sent_with_kill_is_not_served_even_inside_a_heap() {
        // A SIGSEGV whose si_code is SI_TKILL is never a fault, so it is passed on: with
        // the default action behind the handler, a forked child dies of it.
        let heap = Region::new(PAGE_SIZE).unwrap();
        let server = Arc::new(Unprotect {
            served: AtomicU64::new(0),
        });
        let _reg = register(FaultSignal::Segv, heap.base(), heap.len(), server.clone()).unwrap();
        let status = fork_and_wait(|| {
            // SAFETY: raise(3) is async-signal-safe.
            unsafe { libc::raise(libc::SIGSEGV) };
            // SAFETY: the chain restored the default action; a second one ends us.
            unsafe { libc::raise(libc::SIGSEGV) };
        });
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
            "the child should die of SIGSEGV, but it {}",
            describe(status)
        );
        assert_eq!(server.served.load(Ordering::Relaxed), 0);
    }
}
