//! `/proc/self/pagemap`: per-page entries, and the `PAGEMAP_SCAN` ioctl (Linux 6.7+).
//!
//! A pagemap entry is 64 bits per virtual page (`Documentation/admin-guide/mm/pagemap.rst`);
//! barrierlab reads bit 57 (`PM_UFFD_WP`, the page is userfaultfd write-protected) to
//! check write-protection through a second channel, and bit 55 (soft-dirty) to detect
//! whether soft-dirty tracking works.
//!
//! `PAGEMAP_SCAN` walks a range and reports runs of pages whose categories match,
//! optionally write-protecting the matched pages in the same walk. With
//! `PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC` and `category_mask = PAGE_IS_WRITTEN`
//! it is the harvest of the async write-protect tracker: every page written since it was
//! last protected is returned and re-protected atomically, per page, in the kernel.
//!
//! Completeness: the call stops early only when the output vector is full (the return
//! value equals `vec_len`) or `max_pages` is reached; then the walk continues from
//! `walk_end`. The kernel (6.18) can also leave `walk_end` short of `end` after an
//! internal buffer flush although it walked everything, so `walk_end` alone is not
//! trusted: only a call that filled the vector is treated as incomplete.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;

use bitflags::bitflags;

use crate::error::{Error, Result};
use crate::sys::PAGE_SIZE;

/// Raw UAPI definitions (`include/uapi/linux/fs.h`, Linux 6.18).
pub mod raw {
    use crate::sys::iowr;

    /// `struct page_region`: one run of pages `[start, end)` sharing `categories`.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub struct page_region {
        /// Start address.
        pub start: u64,
        /// End address (exclusive).
        pub end: u64,
        /// `PAGE_IS_*` bits (masked by `return_mask`).
        pub categories: u64,
    }

    /// `struct pm_scan_arg`.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy)]
    pub struct pm_scan_arg {
        /// `sizeof(struct pm_scan_arg)`.
        pub size: u64,
        /// `PM_SCAN_*`.
        pub flags: u64,
        /// Start of the walk.
        pub start: u64,
        /// End of the walk (exclusive).
        pub end: u64,
        /// Where the walk stopped (out).
        pub walk_end: u64,
        /// Address of the output `page_region` array.
        pub vec: u64,
        /// Entries in `vec`.
        pub vec_len: u64,
        /// Stop after this many matching pages (0: no limit).
        pub max_pages: u64,
        /// Categories to invert before matching.
        pub category_inverted: u64,
        /// All of these must be set.
        pub category_mask: u64,
        /// At least one of these must be set.
        pub category_anyof_mask: u64,
        /// Categories reported in `vec`.
        pub return_mask: u64,
    }

    /// Write-protect the matching pages.
    pub const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
    /// Fail unless the range is registered for async write-protect.
    pub const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;

    /// `ioctl(pagemap_fd, PAGEMAP_SCAN, &pm_scan_arg)`.
    pub const PAGEMAP_SCAN: u64 = iowr::<pm_scan_arg>(b'f', 16);

    const _: () = assert!(std::mem::size_of::<pm_scan_arg>() == 96);
    const _: () = assert!(std::mem::size_of::<page_region>() == 24);
}

bitflags! {
    /// `PAGE_IS_*` categories of `PAGEMAP_SCAN`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Categories: u64 {
        /// The page can be async write-protected (registered with WP_ASYNC).
        const WPALLOWED = 1 << 0;
        /// Written since it was last write-protected.
        const WRITTEN = 1 << 1;
        /// File-backed.
        const FILE = 1 << 2;
        /// Present in memory.
        const PRESENT = 1 << 3;
        /// Swapped out.
        const SWAPPED = 1 << 4;
        /// Maps the shared zero page.
        const PFNZERO = 1 << 5;
        /// Part of a huge page.
        const HUGE = 1 << 6;
        /// Soft-dirty.
        const SOFT_DIRTY = 1 << 7;
        /// A guard region (Linux 6.14+).
        const GUARD = 1 << 8;
    }
}

bitflags! {
    /// `PM_SCAN_*` flags.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct ScanFlags: u64 {
        /// Write-protect the matching pages in the same walk.
        const WP_MATCHING = raw::PM_SCAN_WP_MATCHING;
        /// Fail (`EPERM`) unless the whole range is registered for async write-protect.
        const CHECK_WPASYNC = raw::PM_SCAN_CHECK_WPASYNC;
    }
}

/// A pagemap entry: bit 63 present, 62 swapped, 61 file/shared, 57 uffd-wp,
/// 56 exclusively mapped, 55 soft-dirty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagemapEntry(pub u64);

impl PagemapEntry {
    /// The page is present in RAM.
    pub fn present(self) -> bool {
        self.0 >> 63 & 1 == 1
    }
    /// The page is swapped out.
    pub fn swapped(self) -> bool {
        self.0 >> 62 & 1 == 1
    }
    /// The PTE is userfaultfd write-protected (`PM_UFFD_WP`).
    pub fn uffd_wp(self) -> bool {
        self.0 >> 57 & 1 == 1
    }
    /// The PTE is soft-dirty.
    pub fn soft_dirty(self) -> bool {
        self.0 >> 55 & 1 == 1
    }
}

/// What a scan asks for.
#[derive(Debug, Clone, Copy)]
pub struct ScanRequest {
    /// Start of the range (page aligned).
    pub start: usize,
    /// End of the range (exclusive, page aligned).
    pub end: usize,
    /// `PM_SCAN_*` flags.
    pub flags: ScanFlags,
    /// All of these categories must be set for a page to match.
    pub category_mask: Categories,
    /// Categories to report.
    pub return_mask: Categories,
}

impl ScanRequest {
    /// The async write-protect harvest: pages written since last protected, re-protected
    /// in the same walk.
    pub fn harvest_written(start: usize, end: usize) -> Self {
        ScanRequest {
            start,
            end,
            flags: ScanFlags::WP_MATCHING | ScanFlags::CHECK_WPASYNC,
            category_mask: Categories::WRITTEN,
            return_mask: Categories::WRITTEN,
        }
    }

    /// Pages written since last protected, left as they are.
    pub fn peek_written(start: usize, end: usize) -> Self {
        ScanRequest {
            flags: ScanFlags::empty(),
            ..ScanRequest::harvest_written(start, end)
        }
    }
}

/// Statistics of one complete scan.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    /// `ioctl` calls made (more than one when the output vector filled).
    pub calls: u32,
    /// Calls that returned `walk_end < end` without filling the vector (the kernel quirk
    /// described in the module docs).
    pub short_walk_ends: u32,
    /// `EAGAIN` retries.
    pub eagain_retries: u32,
}

/// An open `/proc/self/pagemap`, with a reusable output vector for `PAGEMAP_SCAN`.
#[derive(Debug)]
pub struct Pagemap {
    file: File,
    vec: Vec<raw::page_region>,
}

impl Pagemap {
    /// Opens `/proc/self/pagemap` with an output vector of `vec_len` regions.
    pub fn open(vec_len: usize) -> Result<Pagemap> {
        let file = File::open("/proc/self/pagemap").map_err(|e| {
            Error::from_errno(
                "open(/proc/self/pagemap)",
                None,
                e.raw_os_error().unwrap_or(0),
            )
        })?;
        Ok(Pagemap {
            file,
            vec: vec![raw::page_region::default(); vec_len.max(1)],
        })
    }

    /// Reads the pagemap entry of the page containing `addr`.
    pub fn entry(&mut self, addr: usize) -> Result<PagemapEntry> {
        let mut word = [0u8; 8];
        let offset = (addr / PAGE_SIZE * 8) as u64;
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.read_exact(&mut word))
            .map_err(|e| {
                Error::from_errno(
                    "read(/proc/self/pagemap)",
                    Some((addr, PAGE_SIZE)),
                    e.raw_os_error().unwrap_or(libc::EIO),
                )
            })?;
        Ok(PagemapEntry(u64::from_ne_bytes(word)))
    }

    /// Runs `PAGEMAP_SCAN` over the whole request, continuing after a full output vector
    /// until the range is walked, and calls `on_region(start, end)` for every matching
    /// run of pages, in address order.
    pub fn scan(
        &mut self,
        req: &ScanRequest,
        mut on_region: impl FnMut(usize, usize),
    ) -> Result<ScanStats> {
        let mut stats = ScanStats::default();
        let mut start = req.start;
        while start < req.end {
            let mut arg = raw::pm_scan_arg {
                size: std::mem::size_of::<raw::pm_scan_arg>() as u64,
                flags: req.flags.bits(),
                start: start as u64,
                end: req.end as u64,
                walk_end: 0,
                vec: self.vec.as_mut_ptr() as u64,
                vec_len: self.vec.len() as u64,
                max_pages: 0,
                category_inverted: 0,
                category_mask: req.category_mask.bits(),
                category_anyof_mask: 0,
                return_mask: req.return_mask.bits(),
            };
            // SAFETY: `arg` is a valid pm_scan_arg whose `vec` points to `vec_len`
            // writable page_region entries owned by `self` for the duration of the call.
            let rc =
                unsafe { libc::ioctl(self.file.as_raw_fd(), raw::PAGEMAP_SCAN as _, &mut arg) };
            stats.calls += 1;
            if rc < 0 {
                let errno = super::errno();
                if errno == libc::EAGAIN && stats.eagain_retries < super::uffd::EAGAIN_RETRY_LIMIT {
                    stats.eagain_retries += 1;
                    continue;
                }
                let hint = match errno {
                    libc::EPERM => {
                        "PM_SCAN_CHECK_WPASYNC: the range is not registered with UFFD_FEATURE_WP_ASYNC"
                    }
                    libc::EINVAL => "bad range, flags or masks (PAGEMAP_SCAN needs Linux 6.7+)",
                    libc::ENOTTY => "this kernel has no PAGEMAP_SCAN (Linux 6.7+)",
                    _ => "",
                };
                return Err(Error::from_errno(
                    "PAGEMAP_SCAN",
                    Some((start, req.end - start)),
                    errno,
                )
                .with_hint(hint));
            }
            let n = rc as usize;
            for r in &self.vec[..n] {
                on_region(r.start as usize, r.end as usize);
            }
            if n < self.vec.len() {
                if (arg.walk_end as usize) < req.end {
                    stats.short_walk_ends += 1;
                }
                break;
            }
            // The vector filled: continue where the walk stopped.
            let next = arg.walk_end as usize;
            assert!(next > start, "PAGEMAP_SCAN made no progress at {start:#x}");
            start = next;
        }
        Ok(stats)
    }

    /// The length of the output vector.
    pub fn vec_len(&self) -> usize {
        self.vec.len()
    }
}
