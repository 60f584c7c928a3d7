//! The crate's one bitmap: a fixed number of bits in atomic words, kept *outside* the
//! memory it describes, on a mapping of its own ([`SideTable`]: untouched words cost no
//! memory).
//!
//! Two layers use it, which is why it sits below both: a page tracker records dirty pages
//! in one (set by a fault handler or the fault service, taken by a harvest) instead of in
//! the heap, which it must not write while armed; the heap's side tables (one bit per
//! 16-byte granule: allocation and the two mark epochs) let the collector mark and sweep
//! without writing heap memory.
//!
//! Every operation is a plain atomic access, and [`Bitmap::try_set`] cannot panic, so it
//! may run inside a signal handler. Never: lock, allocate after construction, or read a
//! word non-atomically (another thread may be setting bits in it).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Result;
use crate::side_table::SideTable;

/// A fixed-size atomic bitmap.
#[derive(Debug)]
pub(crate) struct Bitmap {
    words: SideTable<AtomicU64>,
}

/// For each stride `s` below 64: the bits `0, s, 2s, …` of a word.
const STRIDE_PATTERNS: [u64; 64] = {
    let mut p = [0u64; 64];
    let mut s = 1;
    while s < 64 {
        let mut b = 0;
        while b < 64 {
            p[s] |= 1 << b;
            b += s;
        }
        s += 1;
    }
    p
};

impl Bitmap {
    /// A bitmap of `bits` clear bits; fails only if the mapping cannot be reserved.
    pub(crate) fn new(bits: usize) -> Result<Bitmap> {
        Ok(Bitmap {
            words: SideTable::new(bits.div_ceil(64))?,
        })
    }

    /// Whether bit `i` is set (`Acquire`: pairs with the `Release` of [`Bitmap::set`]).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> bool {
        self.words[i / 64].load(Ordering::Acquire) & (1 << (i % 64)) != 0
    }

    /// Sets bit `i`; returns whether it was already set.
    #[inline]
    pub(crate) fn set(&self, i: usize) -> bool {
        let bit = 1 << (i % 64);
        self.words[i / 64].fetch_or(bit, Ordering::AcqRel) & bit != 0
    }

    /// Sets bit `i` unless it is set already; returns whether this call set it. A plain
    /// load comes first, so that a bit already set costs no locked read-modify-write:
    /// tracing finds most children marked (those of a rescanned object nearly all), and
    /// the `lock bts` of each such test was over half of the collector's rescanning time
    /// on the LRU cache. A load that sees the bit clear may be stale; the `fetch_or` after
    /// it decides.
    #[inline]
    pub(crate) fn set_new(&self, i: usize) -> bool {
        !self.get(i) && !self.set(i)
    }

    /// Clears bit `i`.
    #[inline]
    pub(crate) fn clear(&self, i: usize) {
        self.words[i / 64].fetch_and(!(1 << (i % 64)), Ordering::AcqRel);
    }

    /// The word holding bits `64 * w .. 64 * w + 64`.
    #[inline]
    pub(crate) fn word(&self, w: usize) -> &AtomicU64 {
        &self.words[w]
    }

    /// Sets the `count` bits `first, first + stride, …` with one atomic `fetch_or` per
    /// word touched (the allocator reserves a run of cells this way: one bit per cell).
    pub(crate) fn set_strided(&self, first: usize, count: usize, stride: usize) {
        self.update_strided(first, count, stride, |w, m| {
            w.fetch_or(m, Ordering::AcqRel);
        });
    }

    /// Clears the `count` bits `first, first + stride, …`, one `fetch_and` per word.
    pub(crate) fn clear_strided(&self, first: usize, count: usize, stride: usize) {
        self.update_strided(first, count, stride, |w, m| {
            w.fetch_and(!m, Ordering::AcqRel);
        });
    }

    /// Calls `apply` once per word touched by the bits `first, first + stride, …`
    /// (`count` of them), with the mask of those bits in it: a word's mask is built with
    /// one shift of a precomputed pattern, not bit by bit (a page's run of 16-byte cells
    /// is 256 bits; the loop per bit was most of `Space::refill`'s time on GCBench).
    fn update_strided(
        &self,
        first: usize,
        count: usize,
        stride: usize,
        apply: impl Fn(&AtomicU64, u64),
    ) {
        debug_assert!(stride > 0);
        if count == 0 {
            return;
        }
        let last = first + (count - 1) * stride;
        let mut i = first;
        while i <= last {
            let word = i / 64;
            // One past the last bit of this word to touch.
            let end = (64 * word + 64).min(last + 1);
            let mask = if stride < 64 {
                let top = end - 64 * word;
                let below_end = if top == 64 { u64::MAX } else { (1 << top) - 1 };
                (STRIDE_PATTERNS[stride] << (i % 64)) & below_end
            } else {
                1 << (i % 64)
            };
            apply(&self.words[word], mask);
            i += (end - i).div_ceil(stride) * stride;
        }
    }

    /// Clears bits `0..bits` (not atomic as a whole: callers make sure nobody sets them).
    pub(crate) fn clear_prefix(&self, bits: usize) {
        for w in &self.words[..bits.div_ceil(64).min(self.words.len())] {
            w.store(0, Ordering::Relaxed);
        }
    }

    /// Clears every bit (not atomic as a whole: callers make sure nobody sets bits).
    pub(crate) fn clear_all(&self) {
        self.clear_prefix(self.words.len() * 64);
    }

    /// Number of set bits.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.words
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }

    /// Whether bit `i` is set; `false` if it is out of range. Never panics, so a signal
    /// handler may call it.
    #[inline]
    pub(crate) fn get_checked(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (i % 64)) != 0)
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

    /// [`Bitmap::take`] of the bits that are not set in `keep` (as long as this one, and
    /// changed by no other thread meanwhile): those stay set.
    pub(crate) fn take_except(&self, keep: &Bitmap, out: &mut Vec<usize>) {
        for (i, (w, k)) in self.words.iter().zip(keep.words.iter()).enumerate() {
            let k = k.load(Ordering::Relaxed);
            if w.load(Ordering::Relaxed) & !k == 0 {
                continue;
            }
            let mut bits = w.fetch_and(k, Ordering::AcqRel) & !k;
            while bits != 0 {
                out.push(i * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
    }

    /// Calls `f` with the index of every bit set, ascending, from a relaxed look at each
    /// word.
    pub(crate) fn for_each_set(&self, mut f: impl FnMut(usize)) {
        for (i, w) in self.words.iter().enumerate() {
            let mut bits = w.load(Ordering::Relaxed);
            while bits != 0 {
                f(i * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time masks against setting each bit on its own, over strides,
    /// starts and counts that cross words.
    #[test]
    fn strided_updates_touch_exactly_the_strided_bits() {
        for stride in [1, 2, 3, 5, 7, 8, 13, 51, 63, 64, 65, 128] {
            for first in [0, 1, 17, 63, 64, 100] {
                for count in [0, 1, 2, 5, 63, 64, 65, 200] {
                    let bits = first + count * stride + 64;
                    let b = Bitmap::new(bits).unwrap();
                    b.set_strided(first, count, stride);
                    let expected: Vec<usize> = (0..count).map(|k| first + k * stride).collect();
                    let set: Vec<usize> = (0..bits).filter(|&i| b.get(i)).collect();
                    assert_eq!(set, expected, "stride {stride} first {first} count {count}");
                    b.clear_strided(first, count, stride);
                    assert_eq!(b.count(), 0, "stride {stride} first {first} count {count}");
                }
            }
        }
    }

    #[test]
    fn set_get_clear() {
        let b = Bitmap::new(130).unwrap();
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

    #[test]
    fn take_returns_ascending_and_clears() {
        let b = Bitmap::new(200).unwrap();
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
        let b = Bitmap::new(64).unwrap();
        assert!(b.try_set(63));
        assert!(!b.try_set(64));
        let mut out = Vec::new();
        b.take(&mut out);
        assert_eq!(out, vec![63]);
    }
}
