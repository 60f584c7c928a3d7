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
//! the previous action is restored when the last one unregisters — if barrierlab's
//! handler is still the installed one. IF another component installed its handler
//! after barrierlab's THEN that handler is left in place, and barrierlab's stays behind
//! it, passing on what it does not own to the action before it, for as long as the
//! other handler chains to it; the next tracker reuses that chain. The previous action
//! is copied into a static cell that the handler reads lock-free, guarded the same way
//! (`prev_ready` + a `chaining` count).
//!
//! Never: allocate, lock, panic or format in the handler; never let a handler unwind
//! (it is `extern "C"`); never drop a tracker's state while a handler may use it. A
//! thread that blocks SIGSEGV or SIGBUS cannot run the handler: the kernel forces the
//! default action on a blocked synchronous fault signal, so its first write to an armed
//! page kills the process.
//!
//! Lab internals: public only so that its own tests (`tests/barrier/signal_registry.rs`) can
//! register servers; reach it as `barrierlab::internals::signal_registry`.

// Public only with the `lab-internals` feature; without it, what only the tests call is unused.
#![cfg_attr(not(feature = "lab-internals"), allow(dead_code))]

use std::cell::UnsafeCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::sys::signal::{self, InstalledHandler};

/// How many heaps can be registered at once (all signals together).
pub const SLOTS: usize = 64;

/// `si_code` of a SIGSEGV raised by a write to a mapped page whose protection forbids it
/// (`SEGV_ACCERR` in `<asm-generic/siginfo.h>`; the `libc` crate does not define it).
const SEGV_ACCERR: i32 = 2;

/// The signals a page tracker's fault arrives as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultSignal {
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
pub enum Served {
    /// The page is writable now; returning from the handler retries the write.
    Handled,
    /// The server cannot make the page writable: pass the signal on (which ends the
    /// process unless the previous handler fixes the fault).
    Chain,
}

/// The part of a tracker that serves a fault inside a signal handler.
///
/// # Safety
/// [`FaultServer::serve`] runs in a signal handler on the faulting thread, which may have
/// been interrupted anywhere (holding a lock, inside `malloc`). An implementation must:
/// 1. be async-signal-safe: atomics and single system calls (`mprotect`, `ioctl`) only;
///    no allocation or free, no lock (`Mutex`, `parking_lot`, stdout), no formatting, no
///    thread-local that initialises lazily;
/// 2. never panic, so no indexing or arithmetic that can (the handler is `extern "C"`: a
///    panic aborts the process);
/// 3. not block: return promptly so that the write retries;
/// 4. return [`Served::Handled`] only if the page holding `addr` is writable now (a
///    write retried on a protected page faults forever), and otherwise
///    [`Served::Chain`];
/// 5. make the page writable *before* recording it (the handler rule of the ordering
///    section of [`crate::barrier`]): the reverse lets a harvest take the record and re-protect in
///    between, leaving the page writable with no record.
pub unsafe trait FaultServer: Send + Sync + 'static {
    /// Makes the page holding `addr` (inside the registered range) writable and records
    /// it, in that order.
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
    /// The last user left while another component's handler was installed over ours:
    /// ours stayed in that handler's chain, with `prev` still published, and is reused
    /// as it is by the next user instead of being installed again (installing again
    /// would put the other handler behind ours, and each would chain to the other).
    left_in_chain: bool,
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
                left_in_chain: false,
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
        if install.users == 0 && !install.left_in_chain {
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

    /// Counts one user less, restoring the previous action after the last, if ours is
    /// still the installed one. If another component installed its handler over ours,
    /// that one stays, and ours stays behind it with `prev` published, so that a fault
    /// it passes on to ours is passed on again to the action before ours.
    fn release(&self, install: &mut Install) {
        install.users -= 1;
        if install.users == 0 {
            // No handler of ours to restore: an earlier last user already left ours in
            // another component's chain, and this user reused it there. It stays there,
            // with `prev` published: unpublishing it would make ours return from every
            // fault it passes on, and a fault that nobody owns would retry forever.
            let restored = install
                .handler
                .take()
                .is_some_and(InstalledHandler::uninstall);
            if !restored {
                install.left_in_chain = true;
                return;
            }
            install.left_in_chain = false;
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
pub struct Registration {
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
pub fn register<T: FaultServer>(
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
        return Err(Error::from_errno(
            "register with the fault handler",
            Some((base, len)),
            libc::ENOSPC,
        )
        .with_hint(format!(
            "all {SLOTS} slots are taken: at most {SLOTS} heaps can use the mprotect \
                     and uffd-wp-sigbus trackers at once"
        )));
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

/// The address of the process-wide handler, to compare with what `sigaction(2)` reports
/// as installed.
pub fn handler_address() -> usize {
    on_fault as *const () as usize
}
