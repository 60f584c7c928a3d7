//! Installing a `SA_SIGINFO` signal handler and restoring the previous one.
//!
//! The page trackers that serve their fault on the writing thread (`mprotect` + SIGSEGV,
//! userfaultfd write-protect + SIGBUS) install a handler with raw `sigaction(2)`
//! (`SA_SIGINFO | SA_ONSTACK | SA_RESTART`): `signal-hook` refuses SIGSEGV by design.
//! The previous action is kept so that a fault the handler does not own (outside the
//! heap) is passed on: to Rust's own stack-overflow handler, a debugger's, or the
//! default action, which kills the process with the same signal.

use crate::error::{Error, Result};

/// The signature of a `SA_SIGINFO` handler.
pub type SigInfoHandler = extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void);

/// An installed handler. Dropped, it restores the previous action, but only if this
/// handler is still the installed one: a handler another component installed after it
/// (and which may chain to it) is left in place.
#[derive(Debug)]
pub struct InstalledHandler {
    signal: i32,
    handler: usize,
    previous: libc::sigaction,
}

// SAFETY: a sigaction struct is plain data; restoring it from another thread is fine.
unsafe impl Send for InstalledHandler {}
// SAFETY: `&InstalledHandler` only reads the stored plain-data previous action.
unsafe impl Sync for InstalledHandler {}

impl InstalledHandler {
    /// Installs `handler` for `signal`.
    ///
    /// # Safety
    /// `handler` must be async-signal-safe, and the caller must make sure that whatever
    /// it reads is valid for as long as it is installed.
    pub unsafe fn install(signal: i32, handler: SigInfoHandler) -> Result<InstalledHandler> {
        // SAFETY: a zeroed sigaction is a valid starting value (empty mask, no flags).
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = handler as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
        // SAFETY: `action.sa_mask` is a valid sigset_t.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: as above.
        let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid sigaction structs; the caller vouches for the
        // handler.
        if unsafe { libc::sigaction(signal, &action, &mut previous) } != 0 {
            return Err(Error::last_os("sigaction", None));
        }
        Ok(InstalledHandler {
            signal,
            handler: handler as usize,
            previous,
        })
    }

    /// The action that was in place before this one.
    pub fn previous(&self) -> &libc::sigaction {
        &self.previous
    }

    /// Restores the previous action if this handler is still the installed one, and
    /// says whether it did. `false`: another component installed its own handler since
    /// (it may chain to this one, whose code must then keep passing faults on), and it is
    /// left in place. (Between the check and the restore, another thread could install
    /// yet another handler; `sigaction(2)` has no compare-and-swap.)
    pub fn uninstall(self) -> bool {
        let restored = self.restore_if_current();
        std::mem::forget(self);
        restored
    }

    fn restore_if_current(&self) -> bool {
        // SAFETY: a zeroed sigaction is valid output space; querying changes nothing.
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: reading the current action into `current`.
        if unsafe { libc::sigaction(self.signal, std::ptr::null(), &mut current) } != 0
            || current.sa_sigaction != self.handler
        {
            return false;
        }
        // SAFETY: restoring the action that sigaction returned when this was installed.
        unsafe { libc::sigaction(self.signal, &self.previous, std::ptr::null_mut()) == 0 }
    }
}

impl Drop for InstalledHandler {
    fn drop(&mut self) {
        self.restore_if_current();
    }
}

/// Passes a signal that the current handler does not own to `previous`, as if the
/// current handler were not there. Async-signal-safe.
///
/// # Safety
/// Must be called from inside a signal handler for `signal`, with the `info` and
/// `context` it received.
pub unsafe fn chain(
    previous: &libc::sigaction,
    signal: i32,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Restore the default action and return: the faulting instruction re-executes,
        // faults again, and the kernel delivers the signal with the default action
        // (terminate with a core dump), so the process dies of the real signal.
        // SAFETY: a zeroed sigaction with SIG_DFL is the default action.
        let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
        dfl.sa_sigaction = libc::SIG_DFL;
        // SAFETY: sigaction is async-signal-safe; the struct is valid.
        unsafe { libc::sigaction(signal, &dfl, std::ptr::null_mut()) };
        // A signal sent by kill/tgkill (si_code <= 0) has no faulting instruction to
        // re-execute: send it again, so that the default action happens now.
        // SAFETY: `info` is the siginfo the kernel passed; raise is async-signal-safe.
        if !info.is_null() && unsafe { (*info).si_code } <= 0 {
            // SAFETY: as above.
            unsafe { libc::raise(signal) };
        }
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so this is its
        // signature; it gets the arguments the kernel gave us.
        let f: extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(signal, info, context);
    } else {
        // SAFETY: a handler installed without SA_SIGINFO takes only the signal number.
        let f: extern "C" fn(i32) = unsafe { std::mem::transmute(handler) };
        f(signal);
    }
}

/// The faulting address of a SIGSEGV/SIGBUS.
///
/// # Safety
/// `info` must be the siginfo the kernel passed to a handler.
pub unsafe fn fault_address(info: *const libc::siginfo_t) -> usize {
    // SAFETY: for SIGSEGV and SIGBUS the kernel fills si_addr.
    unsafe { (*info).si_addr() as usize }
}
