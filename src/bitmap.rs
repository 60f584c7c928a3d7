//! The crate's one bitmap: a fixed number of bits in atomic words, kept *outside* the
//! memory it describes.
//!
//! Why it exists: a page tracker records dirty pages in one (set by a fault handler or
//! the fault service, taken by a harvest) instead of in the heap, which it must not write
//! while armed. The heap's side tables have the same shape, so the type sits below both
//! layers: either may use it without importing the other.
//!
//! Every operation is a plain atomic access, and [`Bitmap::try_set`] cannot panic, so it
//! may run inside a signal handler. Never: lock, allocate after construction, or read a
//! word non-atomically (another thread may be setting bits in it).

use std::sync::atomic::{AtomicU64, Ordering};

/// A fixed-size atomic bitmap.
#[derive(Debug)]
pub(crate) struct Bitmap {
    words: Box<[AtomicU64]>,
}

impl Bitmap {
    /// A bitmap of `bits` clear bits.
    pub(crate) fn new(bits: usize) -> Bitmap {
        Bitmap {
            words: (0..bits.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Sets bit `i` if it is in range (returns `false` if not). Never panics, so a signal
    /// handler may call it.
    #[inline]
    pub(crate) fn try_set(&self, i: usize) -> bool {
        match self.words.get(i / 64) {
            Some(w) => {
                w.fetch_or(1 << (i % 64), Ordering::AcqRel);
                true
            }
            None => false,
        }
    }

    /// Clears every bit (not atomic as a whole: callers make sure nobody sets bits, or
    /// that a bit set meanwhile may be lost).
    pub(crate) fn clear_all(&self) {
        for w in self.words.iter() {
            w.store(0, Ordering::Relaxed);
        }
    }

    /// Clears the bitmap word by word, appending the indices that were set (ascending) to
    /// `out`. Each word is swapped with zero, so a bit set concurrently is either taken
    /// now or left for the next call, never lost.
    pub(crate) fn take(&self, out: &mut Vec<usize>) {
        for (i, w) in self.words.iter().enumerate() {
            // A relaxed look first: most words of a dirty bitmap are clean, and a load
            // does not take the cache line exclusively as a swap would.
            if w.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut bits = w.swap(0, Ordering::AcqRel);
            while bits != 0 {
                out.push(i * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_returns_ascending_and_clears() {
        let b = Bitmap::new(200);
        for p in [130, 3, 64, 3, 199] {
            assert!(b.try_set(p));
        }
        let mut out = Vec::new();
        b.take(&mut out);
        assert_eq!(out, vec![3, 64, 130, 199]);
        out.clear();
        b.take(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn try_set_refuses_out_of_range_instead_of_panicking() {
        let b = Bitmap::new(64);
        assert!(b.try_set(63));
        assert!(!b.try_set(64));
        let mut out = Vec::new();
        b.take(&mut out);
        assert_eq!(out, vec![63]);
    }
}
