//! The crate's one error type.
//!
//! Every failure that comes from the kernel carries the operation, the address range
//! it was applied to (where there is one) and the `errno`, so that a report names
//! exactly which call failed on which memory. Inputs that the caller got wrong (a slot
//! index out of range, an object too large for the heap) are errors too; only broken
//! invariants panic.

use std::fmt;
use std::io;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in barrierlab.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call or ioctl failed.
    Sys {
        /// What was being done, e.g. `"UFFDIO_WRITEPROTECT"`.
        op: &'static str,
        /// The address range the call applied to, if any (start, length in bytes).
        range: Option<(usize, usize)>,
        /// The `errno` the kernel returned.
        errno: i32,
        /// What the error means here, and what to change (may be empty).
        hint: String,
    },
    /// The kernel does not offer a userfaultfd feature that was asked for.
    MissingFeatures {
        /// The requested feature bits that the kernel did not grant.
        missing: crate::sys::uffd::Features,
    },
    /// A registered range does not allow an ioctl that the caller needs.
    MissingIoctl {
        /// Name of the ioctl, e.g. `"UFFDIO_WRITEPROTECT"`.
        ioctl: &'static str,
        /// The range that was registered.
        range: (usize, usize),
    },
    /// A write-barrier mechanism cannot run on this machine; the reason says why.
    Unavailable {
        /// The mechanism (a `BarrierKind` name or a probe item).
        mechanism: &'static str,
        /// The precise reason, as the probe reports it.
        reason: String,
    },
    /// The heap is full after a full collection.
    OutOfMemory {
        /// Bytes requested by the allocation that failed.
        requested: usize,
    },
    /// An argument was out of range or inconsistent.
    InvalidArgument(String),
    /// An `ObjRef` does not name a live object of this heap (freed, or foreign).
    StaleRef(usize),
}

impl Error {
    /// Wraps the current `errno` for `op` on `range`.
    pub(crate) fn last_os(op: &'static str, range: Option<(usize, usize)>) -> Error {
        Error::from_errno(
            op,
            range,
            io::Error::last_os_error().raw_os_error().unwrap_or(0),
        )
    }

    /// Wraps a given `errno` for `op` on `range`, with the crate's standard hint.
    pub(crate) fn from_errno(op: &'static str, range: Option<(usize, usize)>, errno: i32) -> Error {
        Error::Sys {
            op,
            range,
            errno,
            hint: String::new(),
        }
    }

    /// Adds an explanation to a [`Error::Sys`]; other variants are returned unchanged.
    pub(crate) fn with_hint(mut self, text: impl Into<String>) -> Error {
        if let Error::Sys { hint, .. } = &mut self {
            *hint = text.into();
        }
        self
    }

    /// The `errno` of a [`Error::Sys`], if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Sys { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// The symbolic name of an errno value (`EINVAL`), for messages.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ENOTTY => "ENOTTY",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ESRCH => "ESRCH",
        _ => "E?",
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sys {
                op,
                range,
                errno,
                hint,
            } => {
                write!(f, "{op}")?;
                if let Some((start, len)) = range {
                    write!(f, " on [{start:#x}, +{len:#x})")?;
                }
                write!(
                    f,
                    " failed: {} ({})",
                    errno_name(*errno),
                    io::Error::from_raw_os_error(*errno)
                )?;
                if !hint.is_empty() {
                    write!(f, "; {hint}")?;
                }
                Ok(())
            }
            Error::MissingFeatures { missing } => write!(
                f,
                "the kernel does not offer the userfaultfd features {missing:?} (bits {:#x}); \
                 see ioctl_userfaultfd(2) and the kernel version each feature needs",
                missing.bits()
            ),
            Error::MissingIoctl { ioctl, range } => write!(
                f,
                "{ioctl} is not allowed on the registered range [{:#x}, +{:#x}) \
                 (not in the ioctls mask UFFDIO_REGISTER returned)",
                range.0, range.1
            ),
            Error::Unavailable { mechanism, reason } => {
                write!(f, "{mechanism} is unavailable: {reason}")
            }
            Error::OutOfMemory { requested } => write!(
                f,
                "out of memory: {requested} bytes could not be allocated after a full collection"
            ),
            Error::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            Error::StaleRef(addr) => write!(
                f,
                "stale or foreign ObjRef {addr:#x}: no live object of this heap starts there"
            ),
        }
    }
}

impl std::error::Error for Error {}
