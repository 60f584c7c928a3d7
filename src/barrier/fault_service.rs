//! The fault service a tracker may need from the collector thread ([`FaultService`]).

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

#[cfg(doc)]
use super::DirtyTracker;

/// Faults that only the collector thread serves: `uffd-wp` in the collector layout,
/// whose userfaultfd no thread of the tracker reads, so the collector polls the
/// descriptor while it waits and serves it between increments of marking. Kept apart
/// from [`DirtyTracker`] (one layout of one mechanism needs it, and every other tracker
/// has none): a tracker offers one through [`DirtyTracker::fault_service`] only when it
/// has a descriptor to poll.
#[derive(Clone, Copy)]
pub struct FaultService<'t> {
    fd: BorrowedFd<'t>,
    server: &'t dyn ServeFaults,
}

/// The serving half of a [`FaultService`].
pub trait ServeFaults: Send + Sync {
    /// Serves whatever faults are queued, without blocking. Returns how many.
    fn serve_pending(&self) -> usize;
}

impl<'t> FaultService<'t> {
    /// Faults queued on `fd` (readable when there are some), served by `server`.
    pub fn new(fd: BorrowedFd<'t>, server: &'t dyn ServeFaults) -> FaultService<'t> {
        FaultService { fd, server }
    }

    /// The descriptor to poll: readable when faults are queued.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Serves whatever faults are queued, without blocking. Returns how many.
    pub fn serve_pending(&self) -> usize {
        self.server.serve_pending()
    }
}
