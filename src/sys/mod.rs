//! The kernel layer: the only place in barrierlab that makes raw system calls.
//!
//! Everything above this module sees owning handles and typed results:
//! - [`uffd`]: userfaultfd, as `ioctl_userfaultfd(2)` documents it: the raw UAPI, the
//!   typed masks, the fault messages, the builder (`UFFDIO_API`), the owning handle
//!   (register, protect and unprotect, copy, wake, read) and the errno hints.
//! - [`pagemap`]: `/proc/self/pagemap` entries and the `PAGEMAP_SCAN` ioctl (Linux 6.7+).
//! - [`mem`]: one owning anonymous mapping with `mprotect` and `madvise`.
//! - [`signal`]: installing a `SA_SIGINFO` handler and restoring the previous one.
//! - [`eventfd`]: a counter file descriptor used to wake a thread blocked in `poll(2)`.
//! - [`cpu`]: per-thread and process CPU time, pinning to a CPU.
//! - [`process`]: a file lock, a parent-death signal, the CPUs this process may use, its
//!   peak resident set.
//! - [`kernel`]: kernel version, transparent huge page mode, soft-dirty detection, and
//!   the machine's `/proc` and `/sys` facts (CPU model and counters, load, cache size).
//! - [`smaps`]: how much of a range transparent huge pages back.
//!
//! The system headers on the machines this was written for are from Linux 6.1, so the
//! userfaultfd and `PAGEMAP_SCAN` structures and request numbers are defined here by
//! hand, from the kernel's UAPI, with compile-time size checks. Nothing here decides
//! policy: a failure is returned as [`crate::Error`] with the operation, range and errno.

pub mod child;
pub mod cpu;
pub mod eventfd;
pub mod kernel;
pub mod mem;
pub mod pagemap;
pub mod process;
pub mod signal;
pub mod smaps;
pub mod uffd;

/// The base page size this crate is built for (x86-64 and most arm64 kernels).
pub const PAGE_SIZE: usize = 4096;

/// The outcome of a raw call made where nothing may allocate (a signal handler): `Err`
/// holds the errno.
pub type RawResult = std::result::Result<(), i32>;

/// `log2(PAGE_SIZE)`.
pub const PAGE_SHIFT: u32 = 12;

/// The system page size, checked once against [`PAGE_SIZE`].
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    size as usize
}

/// Linux `_IOC` request encoding (asm-generic: 2 direction bits, 14 size bits).
const fn ioc(dir: u64, ty: u8, nr: u8, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((ty as u64) << 8) | nr as u64
}
const IOC_NONE: u64 = 0;
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;

/// `_IO(ty, nr)`.
pub(crate) const fn io(ty: u8, nr: u8) -> u64 {
    ioc(IOC_NONE, ty, nr, 0)
}
/// `_IOR(ty, nr, T)`.
pub(crate) const fn ior<T>(ty: u8, nr: u8) -> u64 {
    ioc(IOC_READ, ty, nr, std::mem::size_of::<T>())
}
/// `_IOWR(ty, nr, T)`.
pub(crate) const fn iowr<T>(ty: u8, nr: u8) -> u64 {
    ioc(IOC_READ | IOC_WRITE, ty, nr, std::mem::size_of::<T>())
}

/// The calling thread's `errno`.
pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The calling thread's kernel thread id.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// `CLOCK_MONOTONIC` in nanoseconds. Async-signal-safe (`clock_gettime` is on POSIX's
/// list) and free of allocation and locks, so a callback that runs inside a collector with
/// the world stopped may call it.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC exists on every Linux,
    // so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_matches_the_build_constant() {
        assert_eq!(page_size(), PAGE_SIZE);
        assert_eq!(1usize << PAGE_SHIFT, PAGE_SIZE);
    }

    #[test]
    fn ioctl_encoding_matches_the_kernel_values() {
        // Values printed by a C program including <linux/userfaultfd.h> on x86-64.
        assert_eq!(uffd::raw::UFFDIO_API, 0xc018_aa3f);
        assert_eq!(uffd::raw::UFFDIO_REGISTER, 0xc020_aa00);
        assert_eq!(uffd::raw::UFFDIO_UNREGISTER, 0x8010_aa01);
        assert_eq!(uffd::raw::UFFDIO_WAKE, 0x8010_aa02);
        assert_eq!(uffd::raw::UFFDIO_COPY, 0xc028_aa03);
        assert_eq!(uffd::raw::UFFDIO_WRITEPROTECT, 0xc018_aa06);
        assert_eq!(uffd::raw::USERFAULTFD_IOC_NEW, 0xaa00);
        assert_eq!(pagemap::raw::PAGEMAP_SCAN, 0xc060_6610);
    }
}
