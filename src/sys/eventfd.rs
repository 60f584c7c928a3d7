//! An `eventfd(2)` counter: lets one thread wake another that sleeps in `poll(2)` on
//! several descriptors (the collector waits on "a mutator reached its safepoint" and on
//! "a write-protect fault is queued" at once).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};

/// An owning, non-blocking eventfd.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new counter at zero.
    pub fn new() -> Result<EventFd> {
        // SAFETY: eventfd has no pointer arguments.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(Error::last_os("eventfd", None));
        }
        // SAFETY: a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    /// Adds one to the counter, making the descriptor readable.
    pub fn signal(&self) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from a valid u64. A full counter (EAGAIN) already wakes.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Resets the counter to zero; returns what it was.
    pub fn drain(&self) -> u64 {
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into a valid u64; EAGAIN (zero) leaves it untouched.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        v
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// `poll(2)` for readability on up to a few descriptors; returns which are readable.
pub fn poll_readable<const N: usize>(fds: [RawFd; N], timeout_ms: i32) -> Result<[bool; N]> {
    let mut pfds = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    loop {
        // SAFETY: `pfds` is an array of N valid pollfd structs.
        let rc = unsafe { libc::poll(pfds.as_mut_ptr(), N as libc::nfds_t, timeout_ms) };
        if rc >= 0 {
            return Ok(pfds.map(|p| p.revents & libc::POLLIN != 0));
        }
        if super::errno() != libc::EINTR {
            return Err(Error::last_os("poll", None));
        }
    }
}
