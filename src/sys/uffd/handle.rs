//! The owning userfaultfd handle, [`Uffd`]: every operation on a descriptor that passed
//! the handshake, each ioctl issued through one private `ioctl_errno` with the bounded
//! `EAGAIN` retry, and the descriptor closed on drop.

use crate::sys::RawResult;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use super::hint::ioctl_hint;
use super::{CopyMode, Event, Features, Ioctls, Origin, RegisterMode, UffdBuilder, WpMode, raw};
use crate::error::{Error, Result};
use crate::sys::errno;

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
    /// The handle of a descriptor that passed the `UFFDIO_API` handshake.
    pub(super) fn new(
        fd: OwnedFd,
        features: Features,
        ioctls: Ioctls,
        origin: Origin,
        user_mode_only: bool,
    ) -> Uffd {
        Uffd {
            fd,
            features,
            ioctls,
            origin,
            user_mode_only,
            eagain_retries: AtomicU64::new(0),
        }
    }

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
            range: raw::uffdio_range::new(start, len),
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
        let mut range = raw::uffdio_range::new(start, len);
        self.ioctl(
            "UFFDIO_UNREGISTER",
            raw::UFFDIO_UNREGISTER,
            &mut range,
            (start, len),
            false,
        )
    }

    /// Write-protects `[start, start + len)` (`UFFDIO_WRITEPROTECT_MODE_WP`).
    pub fn protect(&self, start: usize, len: usize) -> Result<()> {
        let mut wp = raw::uffdio_writeprotect::new(start, len, raw::UFFDIO_WRITEPROTECT_MODE_WP);
        let op = "UFFDIO_WRITEPROTECT";
        self.ioctl(op, raw::UFFDIO_WRITEPROTECT, &mut wp, (start, len), true)
    }

    /// Removes write protection from `[start, start + len)`, waking the threads
    /// blocked on it unless `mode` has [`WpMode::DONTWAKE`].
    pub fn unprotect(&self, start: usize, len: usize, mode: WpMode) -> Result<()> {
        let mut wp = raw::uffdio_writeprotect::new(start, len, mode.bits());
        let op = "UFFDIO_WRITEPROTECT";
        self.ioctl(op, raw::UFFDIO_WRITEPROTECT, &mut wp, (start, len), true)
    }

    /// [`Uffd::protect`], failing with the bare errno. Async-signal-safe: one ioctl on a
    /// stack argument, `EAGAIN` retried a bounded number of times, no allocation and no
    /// lock; the signal-handler trackers call it from their handler.
    pub fn protect_errno(&self, start: usize, len: usize) -> RawResult {
        let mut wp = raw::uffdio_writeprotect::new(start, len, raw::UFFDIO_WRITEPROTECT_MODE_WP);
        self.ioctl_errno(raw::UFFDIO_WRITEPROTECT, &mut wp, true)
    }

    /// [`Uffd::unprotect`] without `DONTWAKE`, failing with the bare errno.
    /// Async-signal-safe, as [`Uffd::protect_errno`].
    pub fn unprotect_errno(&self, start: usize, len: usize) -> RawResult {
        let mut wp = raw::uffdio_writeprotect::new(start, len, 0);
        self.ioctl_errno(raw::UFFDIO_WRITEPROTECT, &mut wp, true)
    }

    /// Wakes the threads blocked on faults in `[start, start + len)`.
    pub fn wake(&self, start: usize, len: usize) -> Result<()> {
        let mut range = raw::uffdio_range::new(start, len);
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
    fn ioctl_errno<T>(&self, request: u64, arg: &mut T, retry_eagain: bool) -> RawResult {
        let mut tries = 0;
        loop {
            // SAFETY: `request` is the userfaultfd ioctl whose argument type is `T` (each
            // call site pairs them as the UAPI does); `arg` is valid for the call.
            let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), request as _, arg as *mut T) };
            if rc == 0 {
                return Ok(());
            }
            let errno = errno();
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
            match errno() {
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
            if errno() != libc::EINTR {
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

impl AsFd for Uffd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
