//! How much of a range is backed by transparent huge pages, from `/proc/self/smaps`.
//!
//! A heap advised `MADV_HUGEPAGE` gets 2 MiB pages only where the kernel could find them
//! (at fault time, or later from `khugepaged`), and a write-protect tracker splits them
//! (a protection change on part of a huge page, or a fault that must be served per
//! 4 KiB page, breaks it into 4 KiB pages): what a run actually ran on is measured here,
//! not assumed.

use crate::error::{Error, Result};

/// The bytes of `[lo, hi)` that `/proc/self/smaps` reports as `AnonHugePages`: the sum
/// over every mapping that lies inside the range (a range that `mprotect` has split is
/// several mappings). A mapping that straddles an end counts whole: smaps reports per
/// mapping, so a caller should pass the bounds of what it mapped.
pub fn anon_huge_bytes(lo: usize, hi: usize) -> Result<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps")
        .map_err(|e| Error::io("read /proc/self/smaps", e))?;
    Ok(sum_in_range(&text, lo, hi))
}

/// [`anon_huge_bytes`] over the text of an smaps file.
fn sum_in_range(smaps: &str, lo: usize, hi: usize) -> u64 {
    let mut total = 0;
    let mut inside = false;
    for line in smaps.lines() {
        // A mapping's first line: `start-end perms offset dev inode [path]`.
        if let Some((start, end)) = mapping_bounds(line) {
            inside = start < hi && end > lo;
            continue;
        }
        if inside && let Some(kib) = line.strip_prefix("AnonHugePages:") {
            let kib = kib.trim().trim_end_matches("kB").trim();
            total += kib.parse::<u64>().unwrap_or(0) * 1024;
        }
    }
    total
}

/// The bounds of a mapping's header line, `None` for a field line (`Name:  value`).
fn mapping_bounds(line: &str) -> Option<(usize, usize)> {
    let range = line.split_whitespace().next()?;
    let (a, b) = range.split_once('-')?;
    Some((
        usize::from_str_radix(a, 16).ok()?,
        usize::from_str_radix(b, 16).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
7f0000000000-7f0000400000 rw-p 00000000 00:00 0
Size:               4096 kB
AnonHugePages:      2048 kB
7f0000400000-7f0000600000 r--p 00000000 00:00 0
Size:               2048 kB
AnonHugePages:      2048 kB
7f0000600000-7f0000800000 rw-p 00000000 00:00 0
AnonHugePages:         0 kB
7f1000000000-7f1000200000 rw-p 00000000 00:00 0
AnonHugePages:      2048 kB
";

    #[test]
    fn sums_the_mappings_inside_the_range_only() {
        let (lo, hi) = (0x7f00_0000_0000, 0x7f00_0080_0000);
        assert_eq!(sum_in_range(SMAPS, lo, hi), 4096 * 1024);
        assert_eq!(
            sum_in_range(SMAPS, 0x7f10_0000_0000, 0x7f10_0020_0000),
            2 << 20
        );
        assert_eq!(sum_in_range(SMAPS, 0x1000, 0x2000), 0);
    }

    #[test]
    fn field_lines_are_not_mappings() {
        assert_eq!(mapping_bounds("AnonHugePages:      2048 kB"), None);
        assert_eq!(mapping_bounds("VmFlags: rd wr mr mw me ac"), None);
        assert_eq!(
            mapping_bounds("7f0000000000-7f0000400000 rw-p 00000000 00:00 0"),
            Some((0x7f00_0000_0000, 0x7f00_0040_0000))
        );
    }

    #[test]
    fn reads_this_process() {
        // A mapping of this process that exists: the range of a local's page.
        let x = 0u8;
        let a = &x as *const u8 as usize;
        assert!(anon_huge_bytes(a & !4095, (a & !4095) + 4096).is_ok());
    }
}
