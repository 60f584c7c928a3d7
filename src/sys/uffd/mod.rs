//! userfaultfd, as `ioctl_userfaultfd(2)` and the kernel's
//! `Documentation/admin-guide/mm/userfaultfd.rst` describe it.
//!
//! A [`Uffd`] is an owning handle (the descriptor is closed on drop). It is created by
//! the `userfaultfd(2)` system call or, when that is refused (`EPERM` under
//! `vm.unprivileged_userfaultfd=0`), through `/dev/userfaultfd` (`USERFAULTFD_IOC_NEW`),
//! whose file permissions then decide. [`UffdBuilder::create`] performs the `UFFDIO_API`
//! handshake and fails with the missing feature bits named if the kernel lacks any.
//!
//! Write-protect in one paragraph: a range registered with
//! [`RegisterMode::WP`] can be write-protected with [`Uffd::protect`]; a write to a
//! protected page then blocks the writing thread and queues a page-fault message with
//! [`PageFaultFlags::WP`] on the descriptor (or, with `UFFD_FEATURE_SIGBUS`, raises
//! SIGBUS on the writer; or, with `UFFD_FEATURE_WP_ASYNC`, is resolved by the kernel
//! itself). [`Uffd::unprotect`] removes the protection and wakes the writer unless
//! [`WpMode::DONTWAKE`] is given, in which case [`Uffd::wake`] does it. A signal handler
//! uses [`Uffd::protect_errno`] and [`Uffd::unprotect_errno`], which are async-signal-safe
//! and fail with the bare errno.
//!
//! `EAGAIN` from `UFFDIO_WRITEPROTECT` and `UFFDIO_COPY` means the address space changed
//! under the call (a pending non-cooperative event such as `UFFD_EVENT_REMOVE`); the
//! wrappers here retry a bounded number of times, counting each retry, and otherwise
//! return the error. They never retry `EINVAL`, `ENOENT` or `EFAULT`.
//!
//! The parts, in the order they build on each other:
//! - [`raw`]: the UAPI (structures, request numbers, constants), with size checks;
//! - `flags`: the bit masks as typed sets ([`Features`], [`Ioctls`], the modes);
//! - `event`: the messages, decoded ([`Event`]);
//! - `builder`: opening and the handshake ([`UffdBuilder`]);
//! - `handle`: the owning handle and its operations ([`Uffd`]);
//! - `hint`: what each errno means and what to change.

mod builder;
mod event;
mod flags;
mod handle;
mod hint;
pub mod raw;

pub use builder::{Origin, UffdBuilder};
pub use event::{Event, PageFaultFlags};
pub use flags::{CopyMode, Features, Ioctls, RegisterMode, WpMode};
pub use handle::{EAGAIN_RETRY_LIMIT, Uffd};
pub use hint::permission_hint;
