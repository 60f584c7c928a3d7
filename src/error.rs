//! The crate's one error type.
//!
//! Every failure that comes from the kernel carries the operation, the address range
//! it was applied to (where there is one) and the `errno`, so that a report names
//! exactly which call failed on which memory. Inputs that the caller got wrong (a slot
//! index out of range, an object too large for the heap) are errors too; only broken
//! invariants panic. An I/O failure keeps its [`io::Error`] as its source, and a
//! mechanism that cannot run keeps the errors its check ran into: a cause is never
//! turned into a string or a boolean on the way up.
//!
//! `Error` is `Clone` (an I/O error is shared behind an [`Arc`]) so that the probe's
//! results can be cached and handed out more than once.

use std::fmt;
use std::io;
use std::sync::Arc;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in barrierlab.
#[derive(Debug, Clone)]
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
        /// The requested `UFFD_FEATURE_*` bits that the kernel did not grant
        /// (`sys::uffd::Features::from_bits_retain` reads them back).
        missing: u64,
        /// The names of the bits among them that this crate knows (`WP_ASYNC`), in bit
        /// order; a bit it does not know is only in `missing`.
        names: Vec<&'static str>,
    },
    /// A registered range does not allow an ioctl that the caller needs.
    MissingIoctl {
        /// Name of the ioctl, e.g. `"UFFDIO_WRITEPROTECT"`.
        ioctl: &'static str,
        /// The range that was registered.
        range: (usize, usize),
    },
    /// A write-barrier mechanism (or a kernel facility) cannot run on this machine.
    Unavailable {
        /// The mechanism (a `BarrierKind` name, `"userfaultfd"`, a probe item).
        mechanism: &'static str,
        /// What its check ran into, in the order it tried (e.g. the system call, then
        /// `/dev/userfaultfd`); at least one.
        causes: Vec<Error>,
    },
    /// A kernel facility accepted every call but did not do its job: the probe provoked a
    /// fault that never arrived, a scan missed the page just written.
    Misbehaved {
        /// What was being checked, e.g. `"uffd-wp"`.
        mechanism: &'static str,
        /// What was expected and what was seen instead.
        seen: String,
    },
    /// Reading or writing a file, or spawning a thread, failed.
    Io {
        /// What was being done, e.g. `"write report.md"` (with the path where there is one).
        what: String,
        /// The error the standard library returned.
        source: Arc<io::Error>,
    },
    /// The heap is full after a full collection.
    OutOfMemory {
        /// Bytes requested by the allocation that failed.
        requested: usize,
        /// What the heap held when it failed, and the size that would work (barrierlab's
        /// own heap; `None` from an outside collector).
        sizing: Option<Sizing>,
    },
    /// An argument was out of range or inconsistent.
    InvalidArgument(String),
    /// An `ObjRef` does not name a live object of this heap (freed, or foreign).
    StaleRef(usize),
    /// The heap's collector thread panicked (a bug in barrierlab, with its message): the
    /// heap cannot collect any more; allocation that needs a collection fails with this.
    CollectorFailed(String),
    /// The heap was made by another process: this one is a child of `fork(2)`, which
    /// copied the heap's memory but not its collector thread, so nothing here could
    /// ever collect it (see [`crate::Heap`]).
    ForkedChild {
        /// The process that made the heap.
        heap_pid: u32,
        /// This process.
        pid: u32,
    },
}

/// Why a heap ran out of memory, and the heap size that would work: live data after the
/// full collection, plus what the mutators' allocation buffers can hold (up to one run
/// of cells per size class each, which a collection cannot take from them), with room
/// for the collector to run concurrently (twice that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// The heap's size.
    pub heap_bytes: usize,
    /// Live data after the full collection.
    pub live_bytes: u64,
    /// Mutators of the heap.
    pub mutators: usize,
    /// The most the mutators' allocation buffers can hold.
    pub buffer_bytes: usize,
    /// `2 × (live + buffers + request)`, rounded up to a MiB: the size to try; never the
    /// heap's own size or less (that size has just failed). When live data and buffers
    /// filled the heap, the true need is unknown, and this is at least twice the heap;
    /// when they fit in half the heap, the allocations in flight on the other mutators
    /// took the rest, and this is the next MiB above the heap at least.
    pub suggested_heap_bytes: usize,
}

impl Sizing {
    /// The sizing of a heap of `heap_bytes` with `live_bytes` live after a full
    /// collection, `mutators` mutators each holding up to `buffer_bytes_each`, that
    /// could not allocate `requested` bytes.
    pub fn new(
        heap_bytes: usize,
        live_bytes: u64,
        mutators: usize,
        buffer_bytes_each: usize,
        requested: usize,
    ) -> Sizing {
        let buffer_bytes = mutators * buffer_bytes_each;
        let need = live_bytes as usize + buffer_bytes + requested;
        let mut s = Sizing {
            heap_bytes,
            live_bytes,
            mutators,
            buffer_bytes,
            suggested_heap_bytes: (2 * need).next_multiple_of(1 << 20),
        };
        if s.filled() {
            s.suggested_heap_bytes = s.suggested_heap_bytes.max(2 * heap_bytes);
        }
        // A size that has just failed is no advice.
        s.suggested_heap_bytes = s
            .suggested_heap_bytes
            .max((heap_bytes + 1).next_multiple_of(1 << 20));
        s
    }

    /// Whether live data and buffers filled the heap (90% or more): the live data
    /// measured is then only what fitted.
    pub fn filled(&self) -> bool {
        (self.live_bytes as usize + self.buffer_bytes) * 10 >= self.heap_bytes * 9
    }
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

    /// Wraps an I/O failure while doing `what`.
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source: Arc::new(source),
        }
    }

    /// Adds an explanation to a [`Error::Sys`] (after the one it has, if any); other
    /// variants are returned unchanged.
    pub(crate) fn with_hint(mut self, text: impl Into<String>) -> Error {
        if let Error::Sys { hint, .. } = &mut self {
            let text = text.into();
            if hint.is_empty() {
                *hint = text;
            } else if !text.is_empty() {
                hint.push_str("; ");
                hint.push_str(&text);
            }
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

/// The symbolic name of an errno value (`EINVAL`), for messages; `errno 523` for a
/// value without a name here (never a placeholder that hides the number).
pub fn errno_name(errno: i32) -> std::borrow::Cow<'static, str> {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EPIPE => "EPIPE",
        libc::ERANGE => "ERANGE",
        libc::ENOSYS => "ENOSYS",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EHWPOISON => "EHWPOISON",
        _ => return std::borrow::Cow::Owned(format!("errno {errno}")),
    };
    std::borrow::Cow::Borrowed(name)
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
            Error::MissingFeatures { missing, names } => {
                write!(f, "the kernel does not offer the userfaultfd features ")?;
                if !names.is_empty() {
                    write!(f, "{} ", names.join(" | "))?;
                }
                write!(
                    f,
                    "(bits {missing:#x}); see ioctl_userfaultfd(2) and the kernel version \
                     each feature needs"
                )
            }
            Error::MissingIoctl { ioctl, range } => write!(
                f,
                "{ioctl} is not allowed on the registered range [{:#x}, +{:#x}) \
                 (not in the ioctls mask UFFDIO_REGISTER returned)",
                range.0, range.1
            ),
            Error::Unavailable { mechanism, causes } => {
                write!(f, "{mechanism} is unavailable: ")?;
                for (i, cause) in causes.iter().enumerate() {
                    if i > 0 {
                        write!(f, "; then ")?;
                    }
                    write!(f, "{cause}")?;
                }
                Ok(())
            }
            Error::Misbehaved { mechanism, seen } => {
                write!(f, "{mechanism} does not work as documented: {seen}")
            }
            Error::Io { what, source } => write!(f, "cannot {what}: {source}"),
            Error::OutOfMemory { requested, sizing } => {
                write!(
                    f,
                    "out of memory: {requested} bytes could not be allocated after a full collection"
                )?;
                if let Some(s) = sizing {
                    let mib = |b: f64| b / f64::from(1 << 20);
                    write!(
                        f,
                        " (heap {:.1} MiB: {:.1} MiB live, {} mutator(s) whose allocation \
                         buffers can hold {:.1} MiB); ",
                        mib(s.heap_bytes as f64),
                        mib(s.live_bytes as f64),
                        s.mutators,
                        mib(s.buffer_bytes as f64),
                    )?;
                    let size = mib(s.suggested_heap_bytes as f64);
                    if s.filled() {
                        write!(
                            f,
                            "live data filled the heap, so the size needed is not known: \
                             try {size:.0} MiB or more"
                        )?;
                    } else {
                        write!(f, "a heap of {size:.0} MiB or more should work")?;
                    }
                }
                Ok(())
            }
            Error::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            Error::StaleRef(addr) => write!(
                f,
                "stale or foreign ObjRef {addr:#x}: no live object of this heap starts there"
            ),
            Error::CollectorFailed(msg) => write!(
                f,
                "the heap's collector thread failed ({msg}); this heap cannot collect any more"
            ),
            Error::ForkedChild { heap_pid, pid } => write!(
                f,
                "this heap belongs to process {heap_pid}, and this is process {pid}, a child \
                 of fork: the child has a copy of the heap's memory but not its collector \
                 thread (fork copies only the calling thread), so a heap cannot be used in \
                 a child of fork; make a new heap in the child"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source.as_ref()),
            Error::Unavailable { causes, .. } => causes
                .first()
                .map(|c| c as &(dyn std::error::Error + 'static)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_never_suggests_the_size_that_failed() {
        // 4 mutators (80 KiB of buffers each) and nothing live in 1 MiB: twice the need
        // rounds to 1 MiB, the heap's own size.
        let s = Sizing::new(1 << 20, 0, 4, 80 << 10, 56);
        assert!(!s.filled());
        assert_eq!(s.suggested_heap_bytes, 2 << 20, "{s:?}");
        let e = Error::OutOfMemory {
            requested: 56,
            sizing: Some(s),
        };
        let msg = e.to_string();
        assert!(msg.contains("heap 1.0 MiB"), "{msg}");
        assert!(msg.contains("a heap of 2 MiB or more"), "{msg}");
        // A heap of 3.5 MiB: the next MiB above it at least.
        let s = Sizing::new(7 << 19, 0, 1, 80 << 10, 56);
        assert_eq!(s.suggested_heap_bytes, 4 << 20, "{s:?}");
        // A need larger than the heap is suggested as it is.
        let s = Sizing::new(1 << 20, 1 << 20, 1, 80 << 10, 56);
        assert!(s.suggested_heap_bytes > 2 << 20, "{s:?}");
    }

    #[test]
    fn an_errno_without_a_name_is_printed_as_its_number() {
        assert_eq!(errno_name(libc::EMFILE), "EMFILE");
        assert_eq!(errno_name(523), "errno 523");
        let e = Error::from_errno("ioctl", None, 523);
        assert!(!e.to_string().contains("E?"), "{e}");
        assert!(e.to_string().contains("errno 523"), "{e}");
    }
}
