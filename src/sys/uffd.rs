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
//! [`RegisterMode::WP`] can be write-protected with [`Uffd::write_protect`]; a write to a
//! protected page then blocks the writing thread and queues a page-fault message with
//! [`PageFaultFlags::WP`] on the descriptor (or, with `UFFD_FEATURE_SIGBUS`, raises
//! SIGBUS on the writer; or, with `UFFD_FEATURE_WP_ASYNC`, is resolved by the kernel
//! itself). [`Uffd::write_unprotect`] removes the protection and wakes the writer unless
//! [`WpMode::DONTWAKE`] is given, in which case [`Uffd::wake`] does it.
//!
//! `EAGAIN` from `UFFDIO_WRITEPROTECT` and `UFFDIO_COPY` means the address space changed
//! under the call (a pending non-cooperative event such as `UFFD_EVENT_REMOVE`); the
//! wrappers here retry a bounded number of times, counting each retry, and otherwise
//! return the error. They never retry `EINVAL`, `ENOENT` or `EFAULT`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use bitflags::bitflags;

use crate::error::{Error, Result};

/// Raw UAPI definitions (`include/uapi/linux/userfaultfd.h`, Linux 6.18).
pub mod raw {
    use crate::sys::{io, ior, iowr};

    /// The API version `UFFDIO_API` negotiates.
    pub const UFFD_API: u64 = 0xAA;
    /// The ioctl type byte of userfaultfd.
    pub const UFFDIO: u8 = 0xAA;
    /// `flags` bit for `userfaultfd(2)`: handle faults from user mode only.
    pub const UFFD_USER_MODE_ONLY: i32 = 1;

    /// ioctl numbers, as bit positions in the `ioctls` masks.
    pub const _UFFDIO_REGISTER: u32 = 0x00;
    /// See [`_UFFDIO_REGISTER`].
    pub const _UFFDIO_UNREGISTER: u32 = 0x01;
    /// See [`_UFFDIO_REGISTER`].
    pub const _UFFDIO_WAKE: u32 = 0x02;
    /// See [`_UFFDIO_REGISTER`].
    pub const _UFFDIO_COPY: u32 = 0x03;
    /// See [`_UFFDIO_REGISTER`].
    pub const _UFFDIO_ZEROPAGE: u32 = 0x04;
    /// See [`_UFFDIO_REGISTER`].
    pub const _UFFDIO_MOVE: u32 = 0x05;
    /// See [`_UFFDIO_REGISTER`].
    pub const _UFFDIO_WRITEPROTECT: u32 = 0x06;
    /// See [`_UFFDIO_REGISTER`].
    pub const _UFFDIO_CONTINUE: u32 = 0x07;
    /// See [`_UFFDIO_REGISTER`].
    pub const _UFFDIO_POISON: u32 = 0x08;
    /// See [`_UFFDIO_REGISTER`].
    pub const _UFFDIO_API: u32 = 0x3F;

    /// `struct uffdio_api`.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy)]
    pub struct uffdio_api {
        /// Requested API version (in), always [`UFFD_API`].
        pub api: u64,
        /// Requested features (in), granted features (out).
        pub features: u64,
        /// Ioctls available on the descriptor (out).
        pub ioctls: u64,
    }

    /// `struct uffdio_range`.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy)]
    pub struct uffdio_range {
        /// Start address, page aligned.
        pub start: u64,
        /// Length in bytes, a page multiple.
        pub len: u64,
    }

    /// `struct uffdio_register`.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy)]
    pub struct uffdio_register {
        /// The range to register.
        pub range: uffdio_range,
        /// `UFFDIO_REGISTER_MODE_*`.
        pub mode: u64,
        /// Ioctls allowed on the range (out).
        pub ioctls: u64,
    }

    /// `struct uffdio_copy`.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy)]
    pub struct uffdio_copy {
        /// Destination (registered, missing) address.
        pub dst: u64,
        /// Source address.
        pub src: u64,
        /// Length in bytes.
        pub len: u64,
        /// `UFFDIO_COPY_MODE_*`.
        pub mode: u64,
        /// Bytes copied, or a negated errno (out).
        pub copy: i64,
    }

    /// `struct uffdio_writeprotect`.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy)]
    pub struct uffdio_writeprotect {
        /// The range.
        pub range: uffdio_range,
        /// `UFFDIO_WRITEPROTECT_MODE_*`.
        pub mode: u64,
    }

    /// `struct uffd_msg`: 32 bytes, an event byte and a 24-byte union.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy)]
    pub struct uffd_msg {
        /// `UFFD_EVENT_*`.
        pub event: u8,
        /// Reserved.
        pub reserved1: u8,
        /// Reserved.
        pub reserved2: u16,
        /// Reserved.
        pub reserved3: u32,
        /// The event's arguments, interpreted according to `event`.
        pub arg: [u64; 3],
    }

    /// A page fault (missing, write-protect or minor).
    pub const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
    /// `fork(2)` of a process with `UFFD_FEATURE_EVENT_FORK`.
    pub const UFFD_EVENT_FORK: u8 = 0x13;
    /// `mremap(2)` of a registered range.
    pub const UFFD_EVENT_REMAP: u8 = 0x14;
    /// `madvise(MADV_DONTNEED/REMOVE)` in a registered range.
    pub const UFFD_EVENT_REMOVE: u8 = 0x15;
    /// `munmap(2)` of a registered range.
    pub const UFFD_EVENT_UNMAP: u8 = 0x16;

    /// Page-fault flag: the access was a write.
    pub const UFFD_PAGEFAULT_FLAG_WRITE: u64 = 1 << 0;
    /// Page-fault flag: the fault is a write-protect fault.
    pub const UFFD_PAGEFAULT_FLAG_WP: u64 = 1 << 1;
    /// Page-fault flag: a minor fault.
    pub const UFFD_PAGEFAULT_FLAG_MINOR: u64 = 1 << 2;

    /// Register for missing-page faults.
    pub const UFFDIO_REGISTER_MODE_MISSING: u64 = 1 << 0;
    /// Register for write-protect faults.
    pub const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
    /// Register for minor faults.
    pub const UFFDIO_REGISTER_MODE_MINOR: u64 = 1 << 2;

    /// `UFFDIO_COPY`: do not wake the faulting threads.
    pub const UFFDIO_COPY_MODE_DONTWAKE: u64 = 1 << 0;
    /// `UFFDIO_COPY`: leave the copied page write-protected.
    pub const UFFDIO_COPY_MODE_WP: u64 = 1 << 1;

    /// `UFFDIO_WRITEPROTECT`: protect (absent: unprotect).
    pub const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;
    /// `UFFDIO_WRITEPROTECT`: do not wake the faulting threads.
    pub const UFFDIO_WRITEPROTECT_MODE_DONTWAKE: u64 = 1 << 1;

    /// `ioctl(fd, UFFDIO_API, &uffdio_api)`.
    pub const UFFDIO_API: u64 = iowr::<uffdio_api>(UFFDIO, _UFFDIO_API as u8);
    /// `ioctl(fd, UFFDIO_REGISTER, &uffdio_register)`.
    pub const UFFDIO_REGISTER: u64 = iowr::<uffdio_register>(UFFDIO, _UFFDIO_REGISTER as u8);
    /// `ioctl(fd, UFFDIO_UNREGISTER, &uffdio_range)`.
    pub const UFFDIO_UNREGISTER: u64 = ior::<uffdio_range>(UFFDIO, _UFFDIO_UNREGISTER as u8);
    /// `ioctl(fd, UFFDIO_WAKE, &uffdio_range)`.
    pub const UFFDIO_WAKE: u64 = ior::<uffdio_range>(UFFDIO, _UFFDIO_WAKE as u8);
    /// `ioctl(fd, UFFDIO_COPY, &uffdio_copy)`.
    pub const UFFDIO_COPY: u64 = iowr::<uffdio_copy>(UFFDIO, _UFFDIO_COPY as u8);
    /// `ioctl(fd, UFFDIO_WRITEPROTECT, &uffdio_writeprotect)`.
    pub const UFFDIO_WRITEPROTECT: u64 =
        iowr::<uffdio_writeprotect>(UFFDIO, _UFFDIO_WRITEPROTECT as u8);
    /// `ioctl(open("/dev/userfaultfd"), USERFAULTFD_IOC_NEW, flags)`.
    pub const USERFAULTFD_IOC_NEW: u64 = io(UFFDIO, 0x00);

    const _: () = assert!(std::mem::size_of::<uffdio_api>() == 24);
    const _: () = assert!(std::mem::size_of::<uffdio_range>() == 16);
    const _: () = assert!(std::mem::size_of::<uffdio_register>() == 32);
    const _: () = assert!(std::mem::size_of::<uffdio_copy>() == 40);
    const _: () = assert!(std::mem::size_of::<uffdio_writeprotect>() == 24);
    const _: () = assert!(std::mem::size_of::<uffd_msg>() == 32);
}

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
    fn missing(self) -> Error {
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

bitflags! {
    /// `UFFD_PAGEFAULT_FLAG_*` of a page-fault message.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PageFaultFlags: u64 {
        /// The access was a write.
        const WRITE = raw::UFFD_PAGEFAULT_FLAG_WRITE;
        /// A write-protect fault.
        const WP = raw::UFFD_PAGEFAULT_FLAG_WP;
        /// A minor fault.
        const MINOR = raw::UFFD_PAGEFAULT_FLAG_MINOR;
    }
}

/// A decoded `uffd_msg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A thread faulted on a registered range and is blocked until the fault is resolved.
    PageFault {
        /// Faulting address (page-rounded unless `EXACT_ADDRESS` was negotiated).
        address: usize,
        /// What kind of fault.
        flags: PageFaultFlags,
        /// Kernel thread id of the faulting thread, when `THREAD_ID` was negotiated.
        thread_id: Option<u32>,
    },
    /// The process forked; the child's userfaultfd descriptor number.
    Fork {
        /// The new descriptor (in this process) for the child's copy.
        child_fd: u32,
    },
    /// A registered range moved.
    Remap {
        /// Old start.
        from: usize,
        /// New start.
        to: usize,
        /// Length.
        len: usize,
    },
    /// Pages in `[start, end)` were zapped by `madvise`.
    Remove {
        /// Start.
        start: usize,
        /// End (exclusive).
        end: usize,
    },
    /// `[start, end)` was unmapped.
    Unmap {
        /// Start.
        start: usize,
        /// End (exclusive).
        end: usize,
    },
    /// An event this crate does not know (newer kernel).
    Unknown(u8),
}

impl Event {
    /// Decodes one message. `thread_ids` says whether `UFFD_FEATURE_THREAD_ID` was granted.
    pub fn decode(msg: &raw::uffd_msg, thread_ids: bool) -> Event {
        let a = msg.arg;
        match msg.event {
            raw::UFFD_EVENT_PAGEFAULT => Event::PageFault {
                flags: PageFaultFlags::from_bits_retain(a[0]),
                address: a[1] as usize,
                thread_id: thread_ids.then_some(a[2] as u32),
            },
            raw::UFFD_EVENT_FORK => Event::Fork {
                child_fd: a[0] as u32,
            },
            raw::UFFD_EVENT_REMAP => Event::Remap {
                from: a[0] as usize,
                to: a[1] as usize,
                len: a[2] as usize,
            },
            raw::UFFD_EVENT_REMOVE => Event::Remove {
                start: a[0] as usize,
                end: a[1] as usize,
            },
            raw::UFFD_EVENT_UNMAP => Event::Unmap {
                start: a[0] as usize,
                end: a[1] as usize,
            },
            other => Event::Unknown(other),
        }
    }
}

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
            let errno = super::errno();
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
        Ok(Uffd {
            fd,
            features: granted,
            ioctls: Ioctls::from_bits_retain(api.ioctls),
            origin,
            user_mode_only: self.user_mode_only,
            eagain_retries: AtomicU64::new(0),
        })
    }
}

fn open_syscall(flags: i32) -> Result<OwnedFd> {
    // SAFETY: userfaultfd(2) takes an int of flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
    if fd < 0 {
        let errno = super::errno();
        let hint = match errno {
            libc::EPERM | libc::EACCES => permission_hint(),
            libc::ENOSYS => "the kernel was built without CONFIG_USERFAULTFD".to_string(),
            libc::EINVAL => "an unsupported flag (UFFD_USER_MODE_ONLY needs Linux 5.11+)".into(),
            _ => String::new(),
        };
        return Err(Error::from_errno("userfaultfd(2)", None, errno).with_hint(hint));
    }
    // SAFETY: the call returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn open_dev_node(flags: i32) -> Result<OwnedFd> {
    let path = c"/dev/userfaultfd";
    // SAFETY: `path` is a valid C string; open returns a new descriptor or -1.
    let dev = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if dev < 0 {
        let errno = super::errno();
        let hint = match errno {
            libc::ENOENT => "/dev/userfaultfd does not exist (Linux 6.1+ creates it)".into(),
            libc::EACCES | libc::EPERM => {
                "no read-write access to /dev/userfaultfd: ask the administrator to grant it \
                 (e.g. a group with rw on the node), or use UFFD_USER_MODE_ONLY"
                    .to_string()
            }
            _ => String::new(),
        };
        return Err(Error::from_errno("open(/dev/userfaultfd)", None, errno).with_hint(hint));
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

/// The explanation given when creating a userfaultfd is refused.
pub fn permission_hint() -> String {
    let sysctl = std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    format!(
        "vm.unprivileged_userfaultfd={sysctl}: an unprivileged process needs \
         UFFD_USER_MODE_ONLY (kernel faults, such as read(2) into the heap, then fail with \
         EFAULT), or read-write access to /dev/userfaultfd, or CAP_SYS_PTRACE, or \
         `sysctl vm.unprivileged_userfaultfd=1`"
    )
}

/// An owning userfaultfd handle.
#[derive(Debug)]
pub struct Uffd {
    fd: OwnedFd,
    features: Features,
    ioctls: Ioctls,
    origin: Origin,
    user_mode_only: bool,
    eagain_retries: AtomicU64,
}

/// How many times an ioctl that returns `EAGAIN` is retried before giving up.
pub const EAGAIN_RETRY_LIMIT: u32 = 1000;

impl Uffd {
    /// A builder with the defaults of [`UffdBuilder::new`].
    pub fn builder() -> UffdBuilder {
        UffdBuilder::new()
    }

    /// The features the kernel granted.
    pub fn features(&self) -> Features {
        self.features
    }

    /// The ioctls the descriptor supports (from `UFFDIO_API`).
    pub fn api_ioctls(&self) -> Ioctls {
        self.ioctls
    }

    /// How the descriptor was obtained.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Whether `UFFD_USER_MODE_ONLY` is in effect.
    pub fn user_mode_only(&self) -> bool {
        self.user_mode_only
    }

    /// How many `EAGAIN` answers were retried so far.
    pub fn eagain_retries(&self) -> u64 {
        self.eagain_retries.load(Ordering::Relaxed)
    }

    /// Registers `[start, start + len)`; returns the ioctls allowed on the range.
    pub fn register(&self, start: usize, len: usize, mode: RegisterMode) -> Result<Ioctls> {
        let mut reg = raw::uffdio_register {
            range: raw::uffdio_range {
                start: start as u64,
                len: len as u64,
            },
            mode: mode.bits(),
            ioctls: 0,
        };
        self.ioctl(
            "UFFDIO_REGISTER",
            raw::UFFDIO_REGISTER,
            &mut reg,
            (start, len),
            false,
        )?;
        let ioctls = Ioctls::from_bits_retain(reg.ioctls);
        if mode.contains(RegisterMode::WP) && !ioctls.contains(Ioctls::WRITEPROTECT) {
            return Err(Error::MissingIoctl {
                ioctl: "UFFDIO_WRITEPROTECT",
                range: (start, len),
            });
        }
        Ok(ioctls)
    }

    /// Unregisters `[start, start + len)`.
    pub fn unregister(&self, start: usize, len: usize) -> Result<()> {
        let mut range = raw::uffdio_range {
            start: start as u64,
            len: len as u64,
        };
        self.ioctl(
            "UFFDIO_UNREGISTER",
            raw::UFFDIO_UNREGISTER,
            &mut range,
            (start, len),
            false,
        )
    }

    /// Write-protects `[start, start + len)` (`UFFDIO_WRITEPROTECT_MODE_WP`).
    pub fn write_protect(&self, start: usize, len: usize) -> Result<()> {
        self.writeprotect(start, len, raw::UFFDIO_WRITEPROTECT_MODE_WP)
    }

    /// Removes write protection from `[start, start + len)`, waking the threads
    /// blocked on it unless `mode` has [`WpMode::DONTWAKE`].
    pub fn write_unprotect(&self, start: usize, len: usize, mode: WpMode) -> Result<()> {
        self.writeprotect(start, len, mode.bits())
    }

    fn writeprotect(&self, start: usize, len: usize, mode: u64) -> Result<()> {
        self.writeprotect_errno(start, len, mode).map_err(|errno| {
            Error::from_errno("UFFDIO_WRITEPROTECT", Some((start, len)), errno)
                .with_hint(ioctl_hint(errno))
        })
    }

    /// [`Uffd::write_protect`] (`protect`) or [`Uffd::write_unprotect`] without
    /// `DONTWAKE` (not `protect`), failing with the bare errno. Async-signal-safe: one
    /// ioctl on a stack argument, `EAGAIN` retried a bounded number of times, no
    /// allocation and no lock; the signal-handler trackers call it from their handler.
    pub fn write_protect_errno(
        &self,
        start: usize,
        len: usize,
        protect: bool,
    ) -> std::result::Result<(), i32> {
        let mode = if protect {
            raw::UFFDIO_WRITEPROTECT_MODE_WP
        } else {
            0
        };
        self.writeprotect_errno(start, len, mode)
    }

    fn writeprotect_errno(
        &self,
        start: usize,
        len: usize,
        mode: u64,
    ) -> std::result::Result<(), i32> {
        let mut wp = raw::uffdio_writeprotect {
            range: raw::uffdio_range {
                start: start as u64,
                len: len as u64,
            },
            mode,
        };
        self.ioctl_errno(raw::UFFDIO_WRITEPROTECT, &mut wp, true)
    }

    /// Wakes the threads blocked on faults in `[start, start + len)`.
    pub fn wake(&self, start: usize, len: usize) -> Result<()> {
        let mut range = raw::uffdio_range {
            start: start as u64,
            len: len as u64,
        };
        self.ioctl(
            "UFFDIO_WAKE",
            raw::UFFDIO_WAKE,
            &mut range,
            (start, len),
            false,
        )
    }

    /// Fills missing pages `[dst, dst + len)` from `src` (`UFFDIO_COPY`); returns the
    /// bytes copied.
    ///
    /// # Safety
    /// `src` must be readable for `len` bytes.
    pub unsafe fn copy(
        &self,
        dst: usize,
        src: *const u8,
        len: usize,
        mode: CopyMode,
    ) -> Result<usize> {
        let mut copy = raw::uffdio_copy {
            dst: dst as u64,
            src: src as u64,
            len: len as u64,
            mode: mode.bits(),
            copy: 0,
        };
        self.ioctl("UFFDIO_COPY", raw::UFFDIO_COPY, &mut copy, (dst, len), true)?;
        Ok(copy.copy as usize)
    }

    /// Issues one ioctl, retrying `EAGAIN` (bounded) when `retry_eagain`.
    fn ioctl<T>(
        &self,
        op: &'static str,
        request: u64,
        arg: &mut T,
        range: (usize, usize),
        retry_eagain: bool,
    ) -> Result<()> {
        self.ioctl_errno(request, arg, retry_eagain)
            .map_err(|errno| Error::from_errno(op, Some(range), errno).with_hint(ioctl_hint(errno)))
    }

    /// [`Uffd::ioctl`] failing with the bare errno. Async-signal-safe: no allocation, no
    /// lock; the retry yields with `sched_yield(2)`, a plain system call.
    fn ioctl_errno<T>(
        &self,
        request: u64,
        arg: &mut T,
        retry_eagain: bool,
    ) -> std::result::Result<(), i32> {
        let mut tries = 0;
        loop {
            // SAFETY: `request` is the userfaultfd ioctl whose argument type is `T` (each
            // call site pairs them as the UAPI does); `arg` is valid for the call.
            let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), request as _, arg as *mut T) };
            if rc == 0 {
                return Ok(());
            }
            let errno = super::errno();
            if errno == libc::EAGAIN && retry_eagain && tries < EAGAIN_RETRY_LIMIT {
                tries += 1;
                self.eagain_retries.fetch_add(1, Ordering::Relaxed);
                std::thread::yield_now();
                continue;
            }
            return Err(errno);
        }
    }

    /// Reads up to `buf.len()` messages with one `read(2)`. Returns an empty slice when
    /// the descriptor is non-blocking and nothing is queued. Decode with [`Event::decode`]
    /// or use [`Uffd::read_events`].
    pub fn read_raw<'a>(&self, buf: &'a mut [raw::uffd_msg]) -> Result<&'a [raw::uffd_msg]> {
        loop {
            // SAFETY: `buf` is valid for writes of `size_of_val(buf)` bytes, and uffd_msg
            // is plain old data.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    std::mem::size_of_val(buf),
                )
            };
            if n >= 0 {
                let count = n as usize / std::mem::size_of::<raw::uffd_msg>();
                return Ok(&buf[..count]);
            }
            match super::errno() {
                libc::EAGAIN => return Ok(&buf[..0]),
                libc::EINTR => continue,
                errno => return Err(Error::from_errno("read(userfaultfd)", None, errno)),
            }
        }
    }

    /// Reads and decodes up to `buf.len()` messages with one `read(2)`.
    pub fn read_events(&self, buf: &mut [raw::uffd_msg]) -> Result<Vec<Event>> {
        let thread_ids = self.features.contains(Features::THREAD_ID);
        Ok(self
            .read_raw(buf)?
            .iter()
            .map(|m| Event::decode(m, thread_ids))
            .collect())
    }

    /// Waits up to `timeout_ms` (`-1`: forever) for a message; true if one is queued.
    ///
    /// Needs a non-blocking descriptor ([`UffdBuilder::nonblocking`]): for a blocking one
    /// the kernel answers `POLLERR` at once, never `POLLIN`, which is returned as an error
    /// rather than as "nothing queued".
    pub fn poll_readable(&self, timeout_ms: i32) -> Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if rc >= 0 {
                if pfd.revents & libc::POLLERR != 0 {
                    return Err(Error::InvalidArgument(
                        "poll on a blocking userfaultfd: the kernel answers POLLERR, never \
                         POLLIN; create it with nonblocking(true)"
                            .into(),
                    ));
                }
                return Ok(rc > 0 && pfd.revents & libc::POLLIN != 0);
            }
            if super::errno() != libc::EINTR {
                return Err(Error::last_os("poll(userfaultfd)", None));
            }
        }
    }
}

impl AsRawFd for Uffd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// What an errno from a userfaultfd ioctl means, per `ioctl_userfaultfd(2)`.
fn ioctl_hint(errno: i32) -> &'static str {
    match errno {
        libc::EINVAL => {
            "an unaligned or zero-length range, a range outside the registration, \
             or an unknown mode bit"
        }
        libc::ENOENT => "the range is not registered, or (UFFDIO_WRITEPROTECT) not mapped",
        libc::EFAULT => "a pointer argument is not readable or writable",
        libc::EAGAIN => {
            "the address space changed under the call (a non-cooperative event is pending); retried and gave up"
        }
        libc::EEXIST => "UFFDIO_COPY: the page is already present",
        libc::EBUSY => "the range is registered on another userfaultfd",
        libc::ENOMEM => "the kernel could not allocate memory",
        libc::ESRCH => "the faulting process has exited",
        _ => "",
    }
}
