//! One owning anonymous mapping, with `mprotect` and `madvise` on page ranges.
//!
//! The heap is one [`Region`]: `mmap(PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|
//! MAP_NORESERVE)`, unmapped on drop. Nothing here touches the memory itself.

use super::RawResult;
use crate::error::{Error, Result};
use crate::sys::PAGE_SIZE;

/// Memory protection for [`Region::protect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// `PROT_NONE`.
    None,
    /// `PROT_READ`.
    Read,
    /// `PROT_READ | PROT_WRITE`.
    ReadWrite,
}

impl Protection {
    fn bits(self) -> i32 {
        match self {
            Protection::None => libc::PROT_NONE,
            Protection::Read => libc::PROT_READ,
            Protection::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        }
    }
}

/// `madvise(2)` advice this crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    /// `MADV_NOHUGEPAGE`: keep transparent huge pages off the range.
    NoHugePage,
    /// `MADV_HUGEPAGE`: ask for transparent huge pages.
    HugePage,
    /// `MADV_DONTNEED`: drop the pages; the next access sees zeroes.
    DontNeed,
    /// `MADV_POPULATE_WRITE` (5.14+): fault the pages in writable now.
    PopulateWrite,
}

impl Advice {
    fn bits(self) -> i32 {
        match self {
            Advice::NoHugePage => libc::MADV_NOHUGEPAGE,
            Advice::HugePage => libc::MADV_HUGEPAGE,
            Advice::DontNeed => libc::MADV_DONTNEED,
            Advice::PopulateWrite => 23, // MADV_POPULATE_WRITE, absent from older libc
        }
    }
}

/// An owning anonymous private mapping.
#[derive(Debug)]
pub struct Region {
    base: usize,
    len: usize,
}

// SAFETY: the region is an address range; access to its memory is governed by its users
// (the heap uses atomics for everything another thread may read concurrently).
unsafe impl Send for Region {}
// SAFETY: as above; `&Region` only exposes address arithmetic and syscalls on the range.
unsafe impl Sync for Region {}

impl Region {
    /// Maps `len` bytes (rounded up to whole pages), readable and writable, zero-filled.
    pub fn new(len: usize) -> Result<Region> {
        Region::with_alignment(len, PAGE_SIZE)
    }

    /// Like [`Region::new`] but the base is aligned to `align` (a power of two that is a
    /// multiple of the page size): huge-page experiments want 2 MiB alignment.
    pub fn with_alignment(len: usize, align: usize) -> Result<Region> {
        if len == 0 || !align.is_power_of_two() || align < PAGE_SIZE {
            return Err(Error::InvalidArgument(format!(
                "region of {len} bytes aligned to {align}: length must be non-zero and \
                 alignment a power of two >= the page size"
            )));
        }
        let len = len.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let over = len + align - PAGE_SIZE;
        // SAFETY: an anonymous mapping at a kernel-chosen address has no preconditions.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                over,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::last_os("mmap", Some((0, over))));
        }
        let raw = p as usize;
        let base = raw.next_multiple_of(align);
        // Trim the slack on both sides so that exactly [base, base + len) stays mapped.
        let head = base - raw;
        let tail = over - head - len;
        // SAFETY: both trims lie inside the mapping just created and nothing uses them.
        unsafe {
            if head > 0 {
                libc::munmap(raw as *mut _, head);
            }
            if tail > 0 {
                libc::munmap((base + len) as *mut _, tail);
            }
        }
        Ok(Region { base, len })
    }

    /// First address.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Length in bytes (a page multiple).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a region has at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// One past the last address.
    pub fn end(&self) -> usize {
        self.base + self.len
    }

    /// Whether `addr` lies in the region.
    pub fn contains(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.base) < self.len
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.len / PAGE_SIZE
    }

    fn check(&self, op: &'static str, start: usize, len: usize) -> Result<()> {
        if start % PAGE_SIZE != 0
            || len % PAGE_SIZE != 0
            || start < self.base
            || start + len > self.end()
        {
            return Err(Error::InvalidArgument(format!(
                "{op} on [{start:#x}, +{len:#x}) is not a page-aligned subrange of the region \
                 [{:#x}, +{:#x})",
                self.base, self.len
            )));
        }
        Ok(())
    }

    /// `mprotect(2)` on a page-aligned subrange.
    pub fn protect(&self, start: usize, len: usize, prot: Protection) -> Result<()> {
        self.check("mprotect", start, len)?;
        protect_raw(start, len, prot)
    }

    /// `madvise(2)` on a page-aligned subrange.
    pub fn advise(&self, start: usize, len: usize, advice: Advice) -> Result<()> {
        self.check("madvise", start, len)?;
        // SAFETY: the range lies inside this mapping (checked above); the advice values
        // used here do not invalidate Rust references (DONTNEED re-zeroes memory only the
        // heap's users access, through raw pointers and atomics).
        let rc = unsafe { libc::madvise(start as *mut _, len, advice.bits()) };
        if rc != 0 {
            return Err(Error::last_os("madvise", Some((start, len))));
        }
        Ok(())
    }
}

/// `mprotect(2)` without the region bounds check, for the SIGSEGV handler (it is
/// async-signal-safe: one system call, no allocation). Returns the errno on failure.
pub fn mprotect_errno(start: usize, len: usize, prot: Protection) -> RawResult {
    // SAFETY: changing protection of an address range is memory-safe for this process
    // as long as callers only pass ranges they own; the heap passes its own pages.
    let rc = unsafe { libc::mprotect(start as *mut _, len, prot.bits()) };
    if rc != 0 { Err(super::errno()) } else { Ok(()) }
}

fn protect_raw(start: usize, len: usize, prot: Protection) -> Result<()> {
    mprotect_errno(start, len, prot).map_err(|errno| {
        let e = Error::from_errno("mprotect", Some((start, len)), errno);
        if errno == libc::ENOMEM {
            e.with_hint("too many mappings: vm.max_map_count reached by split VMAs")
        } else {
            e
        }
    })
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the region owns [base, base + len); after drop nothing refers to it.
        unsafe {
            libc::munmap(self.base as *mut _, self.len);
        }
    }
}

/// Counts the lines of `/proc/self/maps` (one per VMA).
pub fn count_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|s| s.lines().count())
        .unwrap_or(0)
}
