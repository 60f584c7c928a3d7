//! The userfaultfd bit masks as typed sets: the features `UFFDIO_API` negotiates, the
//! ioctls a descriptor or a range allows, and the modes of `UFFDIO_REGISTER`,
//! `UFFDIO_WRITEPROTECT` and `UFFDIO_COPY`.

use bitflags::bitflags;

use super::raw;
use crate::error::Error;

bitflags! {
    /// `UFFD_FEATURE_*`: what `UFFDIO_API` can negotiate.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Features: u64 {
        /// Write-protect faults on anonymous memory (`UFFD_FEATURE_PAGEFAULT_FLAG_WP`).
        const PAGEFAULT_FLAG_WP = 1 << 0;
        /// `UFFD_EVENT_FORK` messages.
        const EVENT_FORK = 1 << 1;
        /// `UFFD_EVENT_REMAP` messages.
        const EVENT_REMAP = 1 << 2;
        /// `UFFD_EVENT_REMOVE` messages.
        const EVENT_REMOVE = 1 << 3;
        /// Missing faults on hugetlbfs.
        const MISSING_HUGETLBFS = 1 << 4;
        /// Missing faults on shmem.
        const MISSING_SHMEM = 1 << 5;
        /// `UFFD_EVENT_UNMAP` messages.
        const EVENT_UNMAP = 1 << 6;
        /// Raise SIGBUS on the faulting thread instead of queueing a message.
        const SIGBUS = 1 << 7;
        /// Page-fault messages carry the faulting thread id.
        const THREAD_ID = 1 << 8;
        /// Minor faults on hugetlbfs.
        const MINOR_HUGETLBFS = 1 << 9;
        /// Minor faults on shmem.
        const MINOR_SHMEM = 1 << 10;
        /// Fault addresses are not rounded down to the page.
        const EXACT_ADDRESS = 1 << 11;
        /// Write-protect on hugetlbfs and shmem.
        const WP_HUGETLBFS_SHMEM = 1 << 12;
        /// Write-protect also applies to pages not yet populated (Linux 6.4+).
        const WP_UNPOPULATED = 1 << 13;
        /// `UFFDIO_POISON`.
        const POISON = 1 << 14;
        /// The kernel resolves write-protect faults itself (Linux 6.7+).
        const WP_ASYNC = 1 << 15;
        /// `UFFDIO_MOVE`.
        const MOVE = 1 << 16;
    }
}

impl Features {
    /// The error for features asked for and not granted: these bits, with the names of
    /// those this crate knows.
    pub(super) fn missing(self) -> Error {
        Error::MissingFeatures {
            missing: self.bits(),
            names: self.iter_names().map(|(name, _)| name).collect(),
        }
    }
}

bitflags! {
    /// The `ioctls` masks returned by `UFFDIO_API` and `UFFDIO_REGISTER`
    /// (bit `n` set = the ioctl with number `n` is allowed).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Ioctls: u64 {
        /// `UFFDIO_REGISTER`.
        const REGISTER = 1 << raw::_UFFDIO_REGISTER;
        /// `UFFDIO_UNREGISTER`.
        const UNREGISTER = 1 << raw::_UFFDIO_UNREGISTER;
        /// `UFFDIO_WAKE`.
        const WAKE = 1 << raw::_UFFDIO_WAKE;
        /// `UFFDIO_COPY`.
        const COPY = 1 << raw::_UFFDIO_COPY;
        /// `UFFDIO_ZEROPAGE`.
        const ZEROPAGE = 1 << raw::_UFFDIO_ZEROPAGE;
        /// `UFFDIO_MOVE`.
        const MOVE = 1 << raw::_UFFDIO_MOVE;
        /// `UFFDIO_WRITEPROTECT`.
        const WRITEPROTECT = 1 << raw::_UFFDIO_WRITEPROTECT;
        /// `UFFDIO_CONTINUE`.
        const CONTINUE = 1 << raw::_UFFDIO_CONTINUE;
        /// `UFFDIO_POISON`.
        const POISON = 1 << raw::_UFFDIO_POISON;
        /// `UFFDIO_API`.
        const API = 1 << raw::_UFFDIO_API;
    }
}

bitflags! {
    /// `UFFDIO_REGISTER_MODE_*`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct RegisterMode: u64 {
        /// Missing-page faults.
        const MISSING = raw::UFFDIO_REGISTER_MODE_MISSING;
        /// Write-protect faults.
        const WP = raw::UFFDIO_REGISTER_MODE_WP;
        /// Minor faults.
        const MINOR = raw::UFFDIO_REGISTER_MODE_MINOR;
    }
}

bitflags! {
    /// `UFFDIO_WRITEPROTECT_MODE_*` that may accompany an unprotect or protect.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct WpMode: u64 {
        /// Do not wake the threads blocked on the range.
        const DONTWAKE = raw::UFFDIO_WRITEPROTECT_MODE_DONTWAKE;
    }
}

bitflags! {
    /// `UFFDIO_COPY_MODE_*`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct CopyMode: u64 {
        /// Do not wake the threads blocked on the range.
        const DONTWAKE = raw::UFFDIO_COPY_MODE_DONTWAKE;
        /// Leave the copied pages write-protected.
        const WP = raw::UFFDIO_COPY_MODE_WP;
    }
}
