//! Size classes: every small object is rounded up to one of these cell sizes, and a page
//! holds cells of one size only, so that the cell containing any address is found by
//! division (what the rescan of a dirty granule and the check of a root need), done as a
//! multiply by the class's reciprocal ([`cell_index`]).

use crate::sys::PAGE_SIZE;

/// The allocation granule (and alignment) in bytes: one bit of each side bitmap.
pub const GRANULE: usize = 16;
/// `log2(GRANULE)`.
pub const GRANULE_SHIFT: u32 = 4;

/// Cell sizes in bytes, multiples of [`GRANULE`], spaced at most ~25% apart.
pub const CLASS_SIZES: [usize; 20] = [
    16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 816, 1024, 2048,
];

/// Number of size classes.
pub const NUM_CLASSES: usize = CLASS_SIZES.len();

/// The largest small object; larger ones get a span of whole pages.
pub const MAX_SMALL: usize = CLASS_SIZES[NUM_CLASSES - 1];

/// The class of every small size, by size in granules (`CLASS_OF[bytes.div_ceil(16)]`):
/// the allocation fast path finds its class with one load instead of a search.
const CLASS_OF: [u8; MAX_SMALL / GRANULE + 1] = {
    let mut table = [0u8; MAX_SMALL / GRANULE + 1];
    let mut g = 0;
    let mut c = 0;
    while g < table.len() {
        while CLASS_SIZES[c] < g * GRANULE {
            c += 1;
        }
        table[g] = c as u8;
        g += 1;
    }
    table
};

/// The smallest class whose cells hold `bytes`, or `None` for a large object.
#[inline(always)]
pub fn class_for(bytes: usize) -> Option<usize> {
    if bytes > MAX_SMALL {
        return None;
    }
    Some(CLASS_OF[bytes.div_ceil(GRANULE)] as usize)
}

/// `ceil(2^32 / size)` of every class: the reciprocal that turns the division of an
/// offset within a page by a cell size into a multiply and a shift ([`cell_index`]).
const RECIPROCALS: [u64; NUM_CLASSES] = {
    let mut r = [0u64; NUM_CLASSES];
    let mut c = 0;
    while c < NUM_CLASSES {
        r[c] = (1u64 << 32).div_ceil(CLASS_SIZES[c] as u64);
        c += 1;
    }
    r
};

/// The index of the cell of class `c` that holds byte `offset` of its page
/// (`offset / CLASS_SIZES[c]`), without a division: `push_root`'s check that a root is a
/// cell's start spent a third of its time in the `div` (`perf annotate`, GCBench).
///
/// Exact for every offset within a page: with `M = ceil(2^32 / s) = (2^32 + e) / s`,
/// `0 <= e < s`, the product `offset * M / 2^32` exceeds `offset / s` by less than
/// `offset / 2^32 < 2^-20`, less than the `1/s >= 2^-11` that separates `offset / s`
/// from the next integer (a test checks every offset of every class).
#[inline(always)]
pub fn cell_index(c: usize, offset: usize) -> usize {
    debug_assert!(offset < PAGE_SIZE, "offset {offset} outside a page");
    ((offset as u64 * RECIPROCALS[c]) >> 32) as usize
}

/// Cells of class `c` in one page.
pub fn cells_per_page(c: usize) -> usize {
    PAGE_SIZE / CLASS_SIZES[c]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_granule_multiples_and_fit_a_page() {
        for (c, &s) in CLASS_SIZES.iter().enumerate() {
            assert_eq!(s % GRANULE, 0, "class {c}");
            assert!(cells_per_page(c) >= 2, "class {c} must fit twice in a page");
            if c > 0 {
                assert!(s > CLASS_SIZES[c - 1]);
            }
        }
    }

    #[test]
    fn cell_index_divides_every_offset_of_every_class_exactly() {
        for (c, &s) in CLASS_SIZES.iter().enumerate() {
            for offset in 0..PAGE_SIZE {
                assert_eq!(
                    cell_index(c, offset),
                    offset / s,
                    "class {c}, offset {offset}"
                );
            }
        }
    }

    #[test]
    fn class_for_picks_the_smallest_fitting_cell() {
        assert_eq!(class_for(1), Some(0));
        assert_eq!(class_for(16), Some(0));
        assert_eq!(class_for(17), Some(1));
        assert_eq!(class_for(1024), Some(18));
        assert_eq!(class_for(1025), Some(19));
        assert_eq!(class_for(MAX_SMALL), Some(NUM_CLASSES - 1));
        assert_eq!(class_for(MAX_SMALL + 1), None);
        for bytes in 1..=MAX_SMALL {
            let c = class_for(bytes).unwrap();
            assert!(CLASS_SIZES[c] >= bytes);
            assert!(c == 0 || CLASS_SIZES[c - 1] < bytes);
        }
    }
}
