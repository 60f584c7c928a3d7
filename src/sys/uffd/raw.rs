//! The userfaultfd UAPI as `include/uapi/linux/userfaultfd.h` (Linux 6.18) defines it:
//! structures, request numbers, mode and event constants, each defined once, with
//! compile-time size checks.
//!
//! The system headers of the machines this was written for are older (Linux 6.1) and
//! `libc` has none of these, so they are written out here by hand. Nothing here calls
//! the kernel: [`super::Uffd`] does, with these.

use crate::sys::{io, ior, iowr};

/// The API version `UFFDIO_API` negotiates.
pub const UFFD_API: u64 = 0xAA;
/// The ioctl type byte of userfaultfd.
pub const UFFDIO: u8 = 0xAA;
/// `flags` bit for `userfaultfd(2)`: handle faults from user mode only.
pub const UFFD_USER_MODE_ONLY: i32 = 1;

/// ioctl numbers, as bit positions in the `ioctls` masks.
pub const _UFFDIO_REGISTER: u8 = 0x00;
/// See [`_UFFDIO_REGISTER`].
pub const _UFFDIO_UNREGISTER: u8 = 0x01;
/// See [`_UFFDIO_REGISTER`].
pub const _UFFDIO_WAKE: u8 = 0x02;
/// See [`_UFFDIO_REGISTER`].
pub const _UFFDIO_COPY: u8 = 0x03;
/// See [`_UFFDIO_REGISTER`].
pub const _UFFDIO_ZEROPAGE: u8 = 0x04;
/// See [`_UFFDIO_REGISTER`].
pub const _UFFDIO_MOVE: u8 = 0x05;
/// See [`_UFFDIO_REGISTER`].
pub const _UFFDIO_WRITEPROTECT: u8 = 0x06;
/// See [`_UFFDIO_REGISTER`].
pub const _UFFDIO_CONTINUE: u8 = 0x07;
/// See [`_UFFDIO_REGISTER`].
pub const _UFFDIO_POISON: u8 = 0x08;
/// See [`_UFFDIO_REGISTER`].
pub const _UFFDIO_API: u8 = 0x3F;

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

impl uffdio_range {
    /// `[start, start + len)`.
    pub const fn new(start: usize, len: usize) -> uffdio_range {
        uffdio_range {
            start: start as u64,
            len: len as u64,
        }
    }
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

impl uffdio_writeprotect {
    /// `[start, start + len)` with `mode` (`UFFDIO_WRITEPROTECT_MODE_*`).
    pub const fn new(start: usize, len: usize, mode: u64) -> uffdio_writeprotect {
        uffdio_writeprotect {
            range: uffdio_range::new(start, len),
            mode,
        }
    }
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
pub const UFFDIO_API: u64 = iowr::<uffdio_api>(UFFDIO, _UFFDIO_API);
/// `ioctl(fd, UFFDIO_REGISTER, &uffdio_register)`.
pub const UFFDIO_REGISTER: u64 = iowr::<uffdio_register>(UFFDIO, _UFFDIO_REGISTER);
/// `ioctl(fd, UFFDIO_UNREGISTER, &uffdio_range)`.
pub const UFFDIO_UNREGISTER: u64 = ior::<uffdio_range>(UFFDIO, _UFFDIO_UNREGISTER);
/// `ioctl(fd, UFFDIO_WAKE, &uffdio_range)`.
pub const UFFDIO_WAKE: u64 = ior::<uffdio_range>(UFFDIO, _UFFDIO_WAKE);
/// `ioctl(fd, UFFDIO_COPY, &uffdio_copy)`.
pub const UFFDIO_COPY: u64 = iowr::<uffdio_copy>(UFFDIO, _UFFDIO_COPY);
/// `ioctl(fd, UFFDIO_WRITEPROTECT, &uffdio_writeprotect)`.
pub const UFFDIO_WRITEPROTECT: u64 = iowr::<uffdio_writeprotect>(UFFDIO, _UFFDIO_WRITEPROTECT);
/// `ioctl(open("/dev/userfaultfd"), USERFAULTFD_IOC_NEW, flags)`.
pub const USERFAULTFD_IOC_NEW: u64 = io(UFFDIO, 0x00);

const _: () = assert!(std::mem::size_of::<uffdio_api>() == 24);
const _: () = assert!(std::mem::size_of::<uffdio_range>() == 16);
const _: () = assert!(std::mem::size_of::<uffdio_register>() == 32);
const _: () = assert!(std::mem::size_of::<uffdio_copy>() == 40);
const _: () = assert!(std::mem::size_of::<uffdio_writeprotect>() == 24);
const _: () = assert!(std::mem::size_of::<uffd_msg>() == 32);
