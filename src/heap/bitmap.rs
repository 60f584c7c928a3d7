//! Side bitmaps: one bit per 16-byte granule of the heap, outside the heap, so that the
//! collector can mark and sweep without writing heap memory while a tracker is armed.

use std::sync::atomic::{AtomicU64, Ordering};

/// A fixed-size atomic bitmap.
#[derive(Debug)]
pub struct Bitmap {
    words: Box<[AtomicU64]>,
}

impl Bitmap {
    /// A bitmap of `bits` clear bits.
    pub fn new(bits: usize) -> Bitmap {
        Bitmap {
            words: (0..bits.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        }
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

    /// Clears every bit (not atomic as a whole: callers make sure nobody sets bits).
    pub fn clear_all(&self) {
        for w in self.words.iter() {
            w.store(0, Ordering::Relaxed);
        }
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
        let b = Bitmap::new(130);
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
}
