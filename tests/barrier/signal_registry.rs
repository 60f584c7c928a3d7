//! The signal-handler registry (`barrierlab::internals::signal_registry`) on its own,
//! with a test server: a registered range is served and the handler installed; a fault
//! outside every heap, and a signal sent with `kill(2)` inside one, are passed on.
//!
//! The cases that change the process's signal actions for good, or must die of a
//! signal, run in a fresh process of this test binary (`in_fresh_process`), never in a
//! forked copy of it: registering takes locks that another test thread may hold.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use barrierlab::internals::signal_registry::{
    FaultServer, FaultSignal, Served, handler_address, register,
};
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::{Protection, Region, mprotect_errno};
use support::{
    TIMEOUT_SECS, assert_killed_by, in_fresh_process, read_page, with_timeout,
    write_a_read_only_page_of_no_heap, write_page,
};

/// A server that makes the page writable and counts.
struct Unprotect {
    served: AtomicU64,
}

// SAFETY: `serve` is one `mprotect(2)` and an atomic add; it cannot panic (the page
// address is masked, not indexed), and it answers `Handled` only once the page is
// writable.
unsafe impl FaultServer for Unprotect {
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
    with_timeout(TIMEOUT_SECS, "a_registered_range_is_served", || {
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
        assert_eq!(current_handler(libc::SIGSEGV), handler_address());
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
fn a_fault_outside_every_heap_kills_the_process_with_sigsegv() {
    let outcome = in_fresh_process(test_name!(), || {
        let heap = Region::new(4 * PAGE_SIZE).map_err(|e| e.to_string())?;
        let _reg = register(
            FaultSignal::Segv,
            heap.base(),
            heap.len(),
            Arc::new(Unprotect {
                served: AtomicU64::new(0),
            }),
        )
        .map_err(|e| e.to_string())?;
        write_a_read_only_page_of_no_heap()
    });
    let what = format!("the child should die of SIGSEGV ({})", outcome.message);
    assert_killed_by(outcome.status, libc::SIGSEGV, &what);
}

#[test]
fn a_signal_sent_with_kill_is_not_served_even_inside_a_heap() {
    // A SIGSEGV whose si_code is SI_TKILL is never a fault, so it is passed on: with
    // the default action behind the handler, the process dies of it, unserved.
    let outcome = in_fresh_process(test_name!(), || {
        let heap = Region::new(PAGE_SIZE).map_err(|e| e.to_string())?;
        let server = Arc::new(Unprotect {
            served: AtomicU64::new(0),
        });
        let _reg = register(FaultSignal::Segv, heap.base(), heap.len(), server.clone())
            .map_err(|e| e.to_string())?;
        // SAFETY: raise(3) sends the signal to this thread; nothing else happens.
        unsafe { libc::raise(libc::SIGSEGV) };
        let served = server.served.load(Ordering::Relaxed);
        // SAFETY: as above; the chain restored the default action, so this one ends us.
        unsafe { libc::raise(libc::SIGSEGV) };
        Err(format!("survived two raised SIGSEGVs ({served} served)"))
    });
    let what = format!(
        "the child should die of SIGSEGV, unserved ({})",
        outcome.message
    );
    assert_killed_by(outcome.status, libc::SIGSEGV, &what);
}

/// Faults the foreign handler saw; it chains every one to the action before it.
static FOREIGN_SEEN: AtomicU64 = AtomicU64::new(0);
/// The action the foreign handler found installed (barrierlab's), which it chains to.
static mut FOREIGN_PREVIOUS: std::mem::MaybeUninit<libc::sigaction> =
    std::mem::MaybeUninit::uninit();

/// Another component's SIGSEGV handler, installed after barrierlab's, that passes every
/// signal on to the action it replaced, as a well-behaved library's handler does.
/// Async-signal-safe: one atomic add, a read of a static written before installation,
/// and a call of the previous handler.
extern "C" fn foreign_handler(signal: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    FOREIGN_SEEN.fetch_add(1, Ordering::Relaxed);
    // SAFETY: written once before this handler was installed, never again.
    let previous = unsafe { (*std::ptr::addr_of!(FOREIGN_PREVIOUS)).assume_init_ref() };
    // SAFETY: barrierlab's handler is installed with SA_SIGINFO; it gets the kernel's
    // arguments.
    let f: extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) =
        unsafe { std::mem::transmute(previous.sa_sigaction) };
    f(signal, info, ctx);
}

fn install_foreign() {
    // SAFETY: zeroed sigactions are valid values; the new one names a SA_SIGINFO handler
    // with an empty mask, and the old one is written into the static before the handler
    // can run (it runs only on a fault, and the fault comes later on this thread).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = foreign_handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGSEGV, &action, &mut old), 0);
        (*std::ptr::addr_of_mut!(FOREIGN_PREVIOUS)).write(old);
    }
}

#[test]
fn a_handler_installed_after_barrierlabs_survives_and_the_chain_keeps_working() {
    // In a fresh process: the test changes the process's SIGSEGV action for good.
    let outcome = in_fresh_process(test_name!(), || {
        let served = Arc::new(Unprotect {
            served: AtomicU64::new(0),
        });
        let region = Region::new(4 * PAGE_SIZE).map_err(|e| e.to_string())?;
        let register_heap = || {
            register(
                FaultSignal::Segv,
                region.base(),
                region.len(),
                served.clone(),
            )
            .map_err(|e| e.to_string())
        };
        let foreign = foreign_handler as *const () as usize;
        let reg = register_heap()?;
        install_foreign();
        // The last barrierlab user leaves: the foreign handler must stay installed.
        drop(reg);
        if current_handler(libc::SIGSEGV) != foreign {
            return Err("dropping the last registration replaced the foreign handler".into());
        }
        // A new barrierlab user: its faults reach it through the foreign handler's chain.
        let reg = register_heap()?;
        if current_handler(libc::SIGSEGV) != foreign {
            return Err("a new registration replaced the foreign handler".into());
        }
        region
            .protect(region.base(), region.len(), Protection::Read)
            .map_err(|e| e.to_string())?;
        write_page(region.base(), 2, 7);
        let (ours, theirs, value) = (
            served.served.load(Ordering::Relaxed),
            FOREIGN_SEEN.load(Ordering::Relaxed),
            read_page(region.base(), 2),
        );
        if (ours, theirs, value) != (1, 1, 7) {
            return Err(format!(
                "through the chain: served {ours} (want 1), foreign saw {theirs} (want 1), \
                 read {value} (want 7)"
            ));
        }
        drop(reg);
        // A fault nobody owns goes foreign → barrierlab's → the default action: death
        // by SIGSEGV, not a loop.
        write_a_read_only_page_of_no_heap()
    });
    let what = format!(
        "the child should die of SIGSEGV after the chain checks pass ({})",
        outcome.message
    );
    assert_killed_by(outcome.status, libc::SIGSEGV, &what);
}
