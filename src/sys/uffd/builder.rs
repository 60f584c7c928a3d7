//! Creating a userfaultfd: [`UffdBuilder`] opens the descriptor (the system call, or
//! `/dev/userfaultfd` when the call is refused) and performs the `UFFDIO_API` handshake,
//! failing with the missing feature bits named when the kernel lacks any.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::hint::{dev_node_hint, syscall_hint};
use super::{Features, Ioctls, Uffd, raw};
use crate::error::{Error, Result};
use crate::sys::errno;

/// How the descriptor was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The `userfaultfd(2)` system call.
    Syscall,
    /// `/dev/userfaultfd` and `USERFAULTFD_IOC_NEW`.
    DevNode,
}

/// How to create a [`Uffd`].
#[derive(Debug, Clone)]
pub struct UffdBuilder {
    features: Features,
    user_mode_only: bool,
    nonblocking: bool,
    dev_fallback: bool,
    force_dev: bool,
}

impl Default for UffdBuilder {
    fn default() -> Self {
        UffdBuilder::new()
    }
}

impl UffdBuilder {
    /// Defaults: no features, full mode (kernel faults too), blocking reads,
    /// `/dev/userfaultfd` tried when the system call is refused.
    pub fn new() -> Self {
        UffdBuilder {
            features: Features::empty(),
            user_mode_only: false,
            nonblocking: false,
            dev_fallback: true,
            force_dev: false,
        }
    }

    /// Features to request in the `UFFDIO_API` handshake; all must be granted.
    pub fn features(mut self, features: Features) -> Self {
        self.features = features;
        self
    }

    /// `UFFD_USER_MODE_ONLY`: only faults from user mode are reported; a kernel access
    /// (e.g. `read(2)` into a protected page) fails with `EFAULT` instead. Allowed to
    /// unprivileged users even under `vm.unprivileged_userfaultfd=0`.
    pub fn user_mode_only(mut self, yes: bool) -> Self {
        self.user_mode_only = yes;
        self
    }

    /// `O_NONBLOCK`: [`Uffd::read_events`] returns an empty batch instead of blocking.
    pub fn nonblocking(mut self, yes: bool) -> Self {
        self.nonblocking = yes;
        self
    }

    /// Whether to try `/dev/userfaultfd` when the system call is refused (default on).
    pub fn dev_fallback(mut self, yes: bool) -> Self {
        self.dev_fallback = yes;
        self
    }

    /// Use `/dev/userfaultfd` only, without trying the system call (for tests).
    pub fn force_dev_node(mut self, yes: bool) -> Self {
        self.force_dev = yes;
        self
    }

    /// Creates the descriptor and performs the `UFFDIO_API` handshake.
    pub fn create(&self) -> Result<Uffd> {
        let mut flags = libc::O_CLOEXEC;
        if self.nonblocking {
            flags |= libc::O_NONBLOCK;
        }
        if self.user_mode_only {
            flags |= raw::UFFD_USER_MODE_ONLY;
        }
        let (fd, origin) = if self.force_dev {
            (open_dev_node(flags)?, Origin::DevNode)
        } else {
            match open_syscall(flags) {
                Ok(fd) => (fd, Origin::Syscall),
                Err(e)
                    if self.dev_fallback
                        && matches!(e.errno(), Some(libc::EPERM) | Some(libc::EACCES)) =>
                {
                    match open_dev_node(flags) {
                        Ok(fd) => (fd, Origin::DevNode),
                        Err(dev) => {
                            return Err(Error::Unavailable {
                                mechanism: "userfaultfd",
                                causes: vec![e, dev],
                            });
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let mut api = raw::uffdio_api {
            api: raw::UFFD_API,
            features: self.features.bits(),
            ioctls: 0,
        };
        // SAFETY: `fd` is a fresh userfaultfd; `api` is a valid uffdio_api the kernel
        // reads and writes for the duration of the call.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), raw::UFFDIO_API as _, &mut api) };
        if rc != 0 {
            let errno = errno();
            // The kernel clears `features` on EINVAL for unknown bits; name what we asked.
            if errno == libc::EINVAL && !self.features.is_empty() {
                let known = Features::all();
                let unknown = self.features.difference(known);
                if !unknown.is_empty() {
                    return Err(unknown.missing());
                }
            }
            return Err(Error::from_errno("UFFDIO_API", None, errno).with_hint(
                "the handshake was refused: a feature bit this kernel does not know, \
                 or the descriptor was already initialised",
            ));
        }
        let granted = Features::from_bits_retain(api.features);
        let missing = self.features.difference(granted);
        if !missing.is_empty() {
            return Err(missing.missing());
        }
        Ok(Uffd::new(
            fd,
            granted,
            Ioctls::from_bits_retain(api.ioctls),
            origin,
            self.user_mode_only,
        ))
    }
}

fn open_syscall(flags: i32) -> Result<OwnedFd> {
    // SAFETY: userfaultfd(2) takes an int of flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
    if fd < 0 {
        let errno = errno();
        return Err(Error::from_errno("userfaultfd(2)", None, errno).with_hint(syscall_hint(errno)));
    }
    // SAFETY: the call returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn open_dev_node(flags: i32) -> Result<OwnedFd> {
    let path = c"/dev/userfaultfd";
    // SAFETY: `path` is a valid C string; open returns a new descriptor or -1.
    let dev = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if dev < 0 {
        let errno = errno();
        return Err(Error::from_errno("open(/dev/userfaultfd)", None, errno)
            .with_hint(dev_node_hint(errno)));
    }
    // SAFETY: `dev` is a new descriptor we own.
    let dev = unsafe { OwnedFd::from_raw_fd(dev) };
    // SAFETY: USERFAULTFD_IOC_NEW takes the creation flags as its integer argument and
    // returns a new userfaultfd descriptor or -1.
    let fd = unsafe { libc::ioctl(dev.as_raw_fd(), raw::USERFAULTFD_IOC_NEW as _, flags) };
    if fd < 0 {
        return Err(Error::last_os("USERFAULTFD_IOC_NEW", None));
    }
    // SAFETY: the ioctl returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
