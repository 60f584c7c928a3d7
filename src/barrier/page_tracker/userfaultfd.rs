//! The userfaultfd a page tracker runs on: opening it with the tracker's features (full
//! mode, falling back to user-mode-only, never silently), the mode it got ([`UffdMode`]),
//! and its protection primitive (`UFFDIO_WRITEPROTECT` as a [`PageProtection`]).

use crate::sys::RawResult;
use std::fmt;

use super::protection::PageProtection;
use crate::barrier::Call;
use crate::error::{Error, Result};
use crate::sys::uffd::{Features, Origin, Uffd};

/// The userfaultfd a tracker runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UffdMode {
    /// `UFFD_USER_MODE_ONLY`: a write by the kernel into a protected page fails with
    /// `EFAULT` instead of faulting.
    pub user_mode_only: bool,
    /// Opened with the system call or through `/dev/userfaultfd`.
    pub origin: Origin,
    /// Full mode was asked for and refused (no privilege): user-mode-only is a fallback.
    pub fell_back: bool,
}

impl UffdMode {
    /// `full` or `user-mode-only`.
    pub fn name(&self) -> &'static str {
        if self.user_mode_only {
            "user-mode-only"
        } else {
            "full"
        }
    }
}

impl fmt::Display for UffdMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let via = match self.origin {
            Origin::Syscall => "userfaultfd(2)",
            Origin::DevNode => "/dev/userfaultfd",
        };
        write!(f, "{} via {via}", self.name())?;
        if self.fell_back {
            write!(f, " (fallback: full mode was refused)")?;
        }
        Ok(())
    }
}

/// Opens the userfaultfd of a tracker with `features`: full mode unless `user_mode_only`,
/// falling back to `UFFD_USER_MODE_ONLY` when full mode is refused for lack of privilege
/// (`vm.unprivileged_userfaultfd=0`). The returned mode says which, so that the fallback
/// shows in [`TrackerStats::uffd`], the probe and `gcbench`'s line.
pub(crate) fn open_userfaultfd(
    features: Features,
    user_mode_only: bool,
    nonblocking: bool,
) -> Result<(Uffd, UffdMode)> {
    let open = |umo: bool| {
        Uffd::builder()
            .features(features)
            .user_mode_only(umo)
            .nonblocking(nonblocking)
            .create()
    };
    let mode = |uffd: &Uffd, fell_back| UffdMode {
        user_mode_only: uffd.user_mode_only(),
        origin: uffd.origin(),
        fell_back,
    };
    match open(user_mode_only) {
        Ok(uffd) => {
            let m = mode(&uffd, false);
            Ok((uffd, m))
        }
        Err(
            full @ (Error::Unavailable { .. }
            | Error::Sys {
                errno: libc::EPERM, ..
            }),
        ) if !user_mode_only => match open(true) {
            Ok(uffd) => {
                let m = mode(&uffd, true);
                Ok((uffd, m))
            }
            Err(umo) => Err(Error::Unavailable {
                mechanism: "userfaultfd",
                causes: vec![full, umo],
            }),
        },
        Err(e) => Err(e),
    }
}

// SAFETY: `protect_errno` and `unprotect_errno` are each one ioctl on a stack argument
// with a bounded retry, documented async-signal-safe; neither panics; each applies to
// the range given. An empty range changes nothing and makes no call.
unsafe impl PageProtection for Uffd {
    const CALL: Call = Call::WriteProtect;
    const STICKY: bool = false;
    const INJECTED: i32 = libc::EIO;

    /// An empty range (a heap that has used no page yet, armed) is nothing to protect:
    /// `Ok` without the ioctl, which refuses a zero length with `EINVAL` (`mprotect(2)`
    /// accepts it).
    fn protect(&self, start: usize, len: usize) -> RawResult {
        if len == 0 {
            return Ok(());
        }
        self.protect_errno(start, len)
    }

    /// As [`Uffd::protect`](PageProtection::protect): an empty range is `Ok`.
    fn unprotect(&self, start: usize, len: usize) -> RawResult {
        if len == 0 {
            return Ok(());
        }
        self.unprotect_errno(start, len)
    }
}
