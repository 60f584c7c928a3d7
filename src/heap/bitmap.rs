//! Side bitmaps: one bit per 16-byte granule of the heap, outside the heap, so that the
//! collector can mark and sweep without writing heap memory while a tracker is armed.
//! They live on their own mappings ([`SideTable`]): untouched words cost no memory.

use std::sync::atomic::{AtomicU64, Ordering};

use super::side_table::SideTable;
use crate::error::Result;

/// A fixed-size atomic bitmap.
#[derive(Debug)]
pub struct Bitmap {
    words: SideTable<AtomicU64>,
}

impl Bitmap {
    /// A bitmap of `bits` clear bits; fails only if the mapping cannot be reserved.
    pub fn new(bits: usize) -> Result<Bitmap> {
        Ok(Bitmap {
            words: SideTable::new(bits.div_ceil(64))?,
        })
    }

    /// Whether bit `i` is set (`Acquire`: pairs with the `Release` of [`Bitmap::set`]).
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        self.words[i / 64].load(Ordering::Acquire) & (1 << (i % 64)) != 0
    }

    /// Sets bit `i`; returns whether it was already set.
    #[inline]
    pub fn set(&self, i: usize) -> bool {
        let bit = 1 << (i % 64);
        self.words[i / 64].fetch_or(bit, Ordering::AcqRel) & bit != 0
    }

    /// Clears bit `i`.
    #[inline]
    pub fn clear(&self, i: usize) {
        self.words[i / 64].fetch_and(!(1 << (i % 64)), Ordering::AcqRel);
    }

    /// The word holding bits `64 * w .. 64 * w + 64`.
    #[inline]
    pub fn word(&self, w: usize) -> &AtomicU64 {
        &self.words[w]
    }

    /// Number of words.
    pub fn words(&self) -> usize {
        self.words.len()
    }

    /// Sets the `count` bits `first, first + stride, …` with one atomic `fetch_or` per
    /// word touched (the allocator reserves a run of cells this way: one bit per cell).
    pub fn set_strided(&self, first: usize, count: usize, stride: usize) {
        self.update_strided(first, count, stride, |w, m| {
            w.fetch_or(m, Ordering::AcqRel);
        });
    }

    /// Clears the `count` bits `first, first + stride, …`, one `fetch_and` per word.
    pub fn clear_strided(&self, first: usize, count: usize, stride: usize) {
        self.update_strided(first, count, stride, |w, m| {
            w.fetch_and(!m, Ordering::AcqRel);
        });
    }

    fn update_strided(
        &self,
        first: usize,
        count: usize,
        stride: usize,
        apply: impl Fn(&AtomicU64, u64),
    ) {
        debug_assert!(stride > 0);
        let mut word = usize::MAX;
        let mut mask = 0u64;
        for k in 0..count {
            let i = first + k * stride;
            if i / 64 != word {
                if mask != 0 {
                    apply(&self.words[word], mask);
                }
                word = i / 64;
                mask = 0;
            }
            mask |= 1 << (i % 64);
        }
        if mask != 0 {
            apply(&self.words[word], mask);
        }
    }

    /// Clears bits `0..bits` (not atomic as a whole: callers make sure nobody sets them).
    pub fn clear_prefix(&self, bits: usize) {
        for w in &self.words[..bits.div_ceil(64).min(self.words.len())] {
            w.store(0, Ordering::Relaxed);
        }
    }

    /// Clears every bit (not atomic as a whole: callers make sure nobody sets bits).
    pub fn clear_all(&self) {
        self.clear_prefix(self.words.len() * 64);
    }

    /// Number of set bits.
    pub fn count(&self) -> usize {
        self.words
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_clear() {
        let b = Bitmap::new(130).unwrap();
        assert_eq!(b.words(), 3);
        assert!(!b.set(129));
        assert!(b.set(129), "second set reports the bit was set");
        assert!(b.get(129));
        assert!(!b.get(128));
        b.set(0);
        assert_eq!(b.count(), 2);
        b.clear(129);
        assert!(!b.get(129));
        b.clear_all();
        assert_eq!(b.count(), 0);
    }

    #[test]
    fn strided_ranges_touch_exactly_their_bits() {
        let b = Bitmap::new(256).unwrap();
        b.set(1);
        b.set_strided(62, 40, 3); // 62, 65, …, 179: crosses two word boundaries
        for i in 0..256 {
            let expect = i == 1 || (62..180).contains(&i) && (i - 62) % 3 == 0;
            assert_eq!(b.get(i), expect, "bit {i}");
        }
        b.clear_strided(62, 40, 3);
        assert_eq!(b.count(), 1);
        assert!(b.get(1));
    }
}
