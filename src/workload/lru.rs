//! An LRU cache built of heap objects: a hash map with separate chaining and a doubly
//! linked recency list, the shape of a memcached-style cache or of `LinkedHashMap`.
//!
//! The objects:
//! - the bucket array, allocated at the start and live for the whole run: chunks of
//!   [`BUCKET_CHUNK`] slots under a spine (one root), `capacity.next_power_of_two()`
//!   buckets in all (a load factor of at most 1);
//! - a sentinel entry, the head and tail of the recency list (a circular list: the
//!   sentinel's `NEXT` is the most recently used entry, its `PREV` the least);
//! - an entry per key: slots `VALUE`, `CHAIN` (next in its bucket), `PREV`, `NEXT`, and the
//!   key in 8 payload bytes;
//! - a value per entry: `value_bytes` payload bytes (at least 16) starting with the key
//!   and a version (the operation that put it).
//!
//! The operations: `get(key)` walks the key's bucket; a hit moves the entry to the front
//! of the recency list (six stores into old objects: the entry, its two neighbours, the
//! sentinel and the old front); a miss is followed by `put(key)`, which evicts the least
//! recently used entry when the cache holds `capacity` entries (three stores into old
//! objects unlink it; the entry and its value become garbage) and then allocates a value
//! and an entry and links them in (old-to-young stores into the long-lived bucket array,
//! the sentinel and the old front). So the live set stays at `capacity` entries and
//! values while the cache turns its garbage over at the miss rate.
//!
//! Keys are drawn from `0..key_space` ([`KeyDistribution`]): uniform, or Zipf-like with
//! `P(k) = ln((k + 2) / (k + 1)) / ln(key_space + 1)`, about
//! `1 / ((k + 1.5) ln(key_space + 1))` (Zipf with exponent 1). The hit ratio is, by
//! Che's approximation for LRU under independent requests
//! ([`LruParams::expected_hit_ratio`]): uniform, `capacity / key_space`; with the
//! defaults (capacity 20,000, key space 100,000, Zipf) 0.80; a run of 300,000 gets
//! measures 0.78, its warm-up (the misses that fill the empty cache) included.
//!
//! Allocation: an entry (48-byte cell) and a value (80-byte cell for 64 value bytes) per
//! miss. The defaults measure 27 bytes per get (the bucket array included) and run in a
//! heap of 3 MiB per thread (with `none`); uniform keys, 104 bytes per get.
//!
//! Every thread runs its own cache. Loads and stores of slots are the unchecked ones, as
//! in the other workloads: every entry has its four slots and every object touched is
//! reachable from the rooted spine, or rooted, when it is touched. The hot path must
//! never allocate on the Rust side (the cache is heap objects only; `std` collections
//! belong in the tests' shadows) nor hold an unrooted object across an allocation.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::barrier::StoreBarrier;
use crate::error::Result;
use crate::heap::ObjRef;
use crate::mutator::Mutator;
use crate::workload::cell_bytes;

/// How keys are drawn from `0..key_space`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDistribution {
    /// Every key equally likely.
    Uniform,
    /// `P(k) = ln((k + 2) / (k + 1)) / ln(key_space + 1)`: Zipf-like with exponent 1,
    /// key 0 the most popular.
    Zipf,
}

impl KeyDistribution {
    /// A key in `0..key_space`.
    #[inline]
    pub fn sample(self, rng: &mut SmallRng, key_space: u64) -> u64 {
        let n = key_space.max(1);
        match self {
            KeyDistribution::Uniform => rng.random_range(0..n),
            KeyDistribution::Zipf => {
                // (n + 1)^u - 1 for u uniform in [0, 1), rounded down.
                let u: f64 = rng.random();
                let k = ((u * ((n + 1) as f64).ln()).exp() - 1.0) as u64;
                k.min(n - 1)
            }
        }
    }

    /// The probability of key `k` (a real `k`, for bins of keys).
    fn probability(self, k: f64, key_space: u64) -> f64 {
        let n = key_space.max(1) as f64;
        match self {
            KeyDistribution::Uniform => 1.0 / n,
            KeyDistribution::Zipf => ((k + 2.0) / (k + 1.0)).ln() / (n + 1.0).ln(),
        }
    }
}

/// The LRU cache's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LruParams {
    /// Entries the cache holds when full: the live set.
    pub capacity: usize,
    /// Payload bytes of a value (at least 16 are used: the key and a version).
    pub value_bytes: usize,
    /// Gets per thread (each miss is followed by a put).
    pub operations: u64,
    /// Keys are drawn from `0..key_space`.
    pub key_space: u64,
    /// How keys are drawn.
    pub keys: KeyDistribution,
    /// Seed of the key stream.
    pub seed: u64,
}

impl Default for LruParams {
    fn default() -> Self {
        LruParams {
            capacity: 20_000,
            value_bytes: 64,
            operations: 500_000,
            key_space: 100_000,
            keys: KeyDistribution::Zipf,
            seed: 42,
        }
    }
}

/// Slots of a bucket chunk.
pub const BUCKET_CHUNK: usize = 4096;

/// An entry's slots.
const VALUE: usize = 0;
const CHAIN: usize = 1;
const PREV: usize = 2;
const NEXT: usize = 3;
const ENTRY_SLOTS: usize = 4;
const KEY_BYTES: usize = 8;

/// Reference stores of a hit that moves an entry to the front.
const HIT_STORES: u64 = 6;
/// Reference stores and payload writes of a miss in a full cache: the eviction (three),
/// the new entry's links (seven), the key and the value (two writes).
const MISS_STORES: u64 = 12;

impl LruParams {
    /// These parameters with the capacity whose entries and values take about
    /// `live_bytes` when the cache is full (the key space scaled with it, the same ratio
    /// as before); the other knobs unchanged.
    pub fn with_live(self, live_bytes: u64) -> LruParams {
        let per_entry =
            cell_bytes(ENTRY_SLOTS, KEY_BYTES) + cell_bytes(0, self.value_payload()) + 8;
        let capacity = (live_bytes / per_entry).max(16) as usize;
        let ratio = self.key_space as f64 / self.capacity.max(1) as f64;
        LruParams {
            capacity,
            key_space: (capacity as f64 * ratio).ceil() as u64,
            ..self
        }
    }

    /// Bytes of a value's payload.
    fn value_payload(&self) -> usize {
        self.value_bytes.max(16)
    }

    /// Buckets: a power of two, at least the capacity.
    fn buckets(&self) -> usize {
        self.capacity.next_power_of_two().max(2)
    }

    /// The steady-state hit ratio of an LRU cache of `capacity` entries under this key
    /// distribution, by Che's approximation: the characteristic time `T` solves
    /// `sum_k (1 - exp(-p_k T)) = capacity`, and the hit ratio is
    /// `sum_k p_k (1 - exp(-p_k T))`. Keys are summed in bins of about 1% of their index
    /// (exact below 256), so it costs a few thousand terms per step whatever the key space.
    pub fn expected_hit_ratio(&self) -> f64 {
        let n = self.key_space.max(1);
        let c = self.capacity as f64;
        if self.capacity as u64 >= n {
            return 1.0;
        }
        if self.keys == KeyDistribution::Uniform {
            return c / n as f64;
        }
        // Bins: (keys in the bin, probability of each).
        let mut bins = Vec::new();
        let mut k = 0u64;
        while k < n {
            let width = (k / 100).max(1).min(n - k);
            let mid = k as f64 + (width as f64 - 1.0) / 2.0;
            bins.push((width as f64, self.keys.probability(mid, n)));
            k += width;
        }
        let occupancy =
            |t: f64| -> f64 { bins.iter().map(|&(w, p)| w * (1.0 - (-p * t).exp())).sum() };
        // Bisect ln T: occupancy grows with T from 0 to the key space.
        let (mut lo, mut hi) = (0.0f64, 60.0f64);
        for _ in 0..100 {
            let mid = (lo + hi) / 2.0;
            if occupancy(mid.exp()) < c {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let t = lo.exp();
        bins.iter()
            .map(|&(w, p)| w * p * (1.0 - (-p * t).exp()))
            .sum::<f64>()
            .min(1.0)
    }

    /// Bytes allocated before the first operation: the bucket spine and chunks, the
    /// sentinel.
    pub fn setup_bytes(&self) -> u64 {
        let buckets = self.buckets();
        let chunk = buckets.min(BUCKET_CHUNK);
        let nchunks = buckets / chunk;
        cell_bytes(nchunks + 1, 0)
            + nchunks as u64 * cell_bytes(chunk, 0)
            + cell_bytes(ENTRY_SLOTS, KEY_BYTES)
    }

    /// Bytes allocated per operation: an entry and a value per miss, at the expected
    /// miss ratio.
    pub fn bytes_per_operation(&self) -> f64 {
        let per_miss = cell_bytes(ENTRY_SLOTS, KEY_BYTES) + cell_bytes(0, self.value_payload());
        (1.0 - self.expected_hit_ratio()) * per_miss as f64
    }

    /// Reference stores and payload writes per thread, at the expected hit ratio: six
    /// per hit, twelve per miss (a hit on the entry already in front stores nothing,
    /// and a miss before the cache is full evicts nothing; both are rare in a run much
    /// longer than the capacity).
    pub fn stores_estimate(&self) -> u64 {
        let h = self.expected_hit_ratio();
        let per_op = h * HIT_STORES as f64 + (1.0 - h) * MISS_STORES as f64;
        (per_op * self.operations as f64) as u64
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LruOutcome {
    /// Gets.
    pub operations: u64,
    /// Gets that found their key.
    pub hits: u64,
    /// Entries evicted.
    pub evictions: u64,
    /// Reference stores.
    pub ref_stores: u64,
    /// Payload writes.
    pub payload_writes: u64,
}

/// One cache, rooted on its mutator's root stack by one root (the spine, whose last slot
/// holds the sentinel).
pub struct LruCache {
    /// The bucket chunks (reachable from the spine; the heap does not move objects).
    chunks: Vec<ObjRef>,
    chunk_mask: usize,
    chunk_shift: u32,
    sentinel: ObjRef,
    /// `64 - log2(buckets)`: the hash's shift.
    hash_shift: u32,
    len: usize,
    capacity: usize,
    value_payload: usize,
    root: usize,
    /// Stores and evictions so far.
    pub counts: LruOutcome,
}

impl LruCache {
    /// An empty cache for `p.capacity` entries, rooted on `m`'s root stack (one root,
    /// popped by [`LruCache::release`]).
    pub fn new<B: StoreBarrier>(m: &mut Mutator<B>, p: &LruParams) -> Result<LruCache> {
        let buckets = p.buckets();
        let chunk = buckets.min(BUCKET_CHUNK);
        let nchunks = buckets / chunk;
        let spine = m.alloc(nchunks + 1, 0)?;
        let root = m.push_root(spine)?;
        let mut chunks = Vec::with_capacity(nchunks);
        for c in 0..nchunks {
            let ch = m.alloc(chunk, 0)?;
            m.write_ref(spine, c, Some(ch))?;
            chunks.push(ch);
        }
        let sentinel = m.alloc(ENTRY_SLOTS, KEY_BYTES)?;
        m.write_ref(spine, nchunks, Some(sentinel))?;
        m.write_ref(sentinel, PREV, Some(sentinel))?;
        m.write_ref(sentinel, NEXT, Some(sentinel))?;
        Ok(LruCache {
            chunks,
            chunk_mask: chunk - 1,
            chunk_shift: chunk.trailing_zeros(),
            sentinel,
            hash_shift: 64 - buckets.trailing_zeros(),
            len: 0,
            capacity: p.capacity.max(1),
            value_payload: p.value_payload(),
            root,
            counts: LruOutcome::default(),
        })
    }

    /// Entries in the cache.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pops the cache's root (and any root above it): its objects become garbage.
    pub fn release<B: StoreBarrier>(self, m: &mut Mutator<B>) {
        m.truncate_roots(self.root);
    }

    /// The chunk and slot of `key`'s bucket.
    #[inline]
    fn bucket(&self, key: u64) -> (ObjRef, usize) {
        let b = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.hash_shift) as usize;
        (self.chunks[b >> self.chunk_shift], b & self.chunk_mask)
    }

    #[inline(always)]
    fn load<B: StoreBarrier>(m: &Mutator<B>, obj: ObjRef, slot: usize) -> Option<ObjRef> {
        // SAFETY: every object this cache loads from is a live chunk (`slot` below its
        // length, from `bucket`) or a live entry (`slot` below `ENTRY_SLOTS`): reachable
        // from the rooted spine.
        unsafe { m.read_ref_unchecked(obj, slot) }
    }

    #[inline(always)]
    fn store<B: StoreBarrier>(
        &mut self,
        m: &mut Mutator<B>,
        obj: ObjRef,
        slot: usize,
        value: Option<ObjRef>,
    ) {
        self.counts.ref_stores += 1;
        // SAFETY: as in `load`; `value` is a live entry or value: reachable, or just
        // allocated and rooted or about to be linked before the next allocation.
        unsafe { m.write_ref_unchecked(obj, slot, value) }
    }

    /// The key of a live entry.
    #[inline]
    fn key_of<B: StoreBarrier>(m: &Mutator<B>, entry: ObjRef) -> Result<u64> {
        let mut b = [0u8; KEY_BYTES];
        m.read_bytes(entry, 0, &mut b)?;
        Ok(u64::from_ne_bytes(b))
    }

    /// The key and version a value holds.
    pub fn value_of<B: StoreBarrier>(m: &Mutator<B>, value: ObjRef) -> Result<(u64, u64)> {
        let mut b = [0u8; 16];
        m.read_bytes(value, 0, &mut b)?;
        let (k, v) = b.split_at(8);
        Ok((
            u64::from_ne_bytes(k.try_into().expect("8 bytes")),
            u64::from_ne_bytes(v.try_into().expect("8 bytes")),
        ))
    }

    /// The entry of `key`, if cached.
    fn find<B: StoreBarrier>(&self, m: &Mutator<B>, key: u64) -> Result<Option<ObjRef>> {
        let (chunk, slot) = self.bucket(key);
        let mut e = Self::load(m, chunk, slot);
        while let Some(x) = e {
            if Self::key_of(m, x)? == key {
                return Ok(Some(x));
            }
            e = Self::load(m, x, CHAIN);
        }
        Ok(None)
    }

    /// Unlinks `entry` from the recency list.
    #[inline]
    fn unlink<B: StoreBarrier>(&mut self, m: &mut Mutator<B>, entry: ObjRef) {
        let prev = Self::load(m, entry, PREV).expect("a listed entry has a PREV");
        let next = Self::load(m, entry, NEXT).expect("a listed entry has a NEXT");
        self.store(m, prev, NEXT, Some(next));
        self.store(m, next, PREV, Some(prev));
    }

    /// Links `entry` in at the front of the recency list.
    #[inline]
    fn push_front<B: StoreBarrier>(&mut self, m: &mut Mutator<B>, entry: ObjRef) {
        let s = self.sentinel;
        let front = Self::load(m, s, NEXT).expect("the sentinel has a NEXT");
        self.store(m, entry, PREV, Some(s));
        self.store(m, entry, NEXT, Some(front));
        self.store(m, front, PREV, Some(entry));
        self.store(m, s, NEXT, Some(entry));
    }

    /// The value of `key`, if cached; a hit makes the entry the most recently used.
    pub fn get<B: StoreBarrier>(&mut self, m: &mut Mutator<B>, key: u64) -> Result<Option<ObjRef>> {
        let Some(entry) = self.find(m, key)? else {
            return Ok(None);
        };
        if Self::load(m, self.sentinel, NEXT) != Some(entry) {
            self.unlink(m, entry);
            self.push_front(m, entry);
        }
        Ok(Self::load(m, entry, VALUE))
    }

    /// Caches a new value for `key`, which must not be cached, with `version` in it;
    /// evicts the least recently used entry first when the cache is full.
    pub fn put<B: StoreBarrier>(
        &mut self,
        m: &mut Mutator<B>,
        key: u64,
        version: u64,
    ) -> Result<()> {
        debug_assert!(self.find(m, key)?.is_none(), "put of a cached key {key}");
        if self.len == self.capacity {
            self.evict(m)?;
        }
        let value = m.alloc(0, self.value_payload)?;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&key.to_ne_bytes());
        bytes[8..].copy_from_slice(&version.to_ne_bytes());
        m.write_bytes(value, 0, &bytes)?;
        m.push_root(value)?;
        let entry = m.alloc(ENTRY_SLOTS, KEY_BYTES);
        m.pop_root();
        let entry = entry?;
        // From here to the links below there is no allocation or safepoint, so `entry`
        // and `value` need no root.
        m.write_bytes(entry, 0, &key.to_ne_bytes())?;
        self.counts.payload_writes += 2;
        self.store(m, entry, VALUE, Some(value));
        let (chunk, slot) = self.bucket(key);
        let head = Self::load(m, chunk, slot);
        self.store(m, entry, CHAIN, head);
        self.store(m, chunk, slot, Some(entry));
        self.push_front(m, entry);
        self.len += 1;
        Ok(())
    }

    /// Removes the least recently used entry from the list and from its bucket.
    fn evict<B: StoreBarrier>(&mut self, m: &mut Mutator<B>) -> Result<()> {
        let victim = Self::load(m, self.sentinel, PREV).expect("the sentinel has a PREV");
        assert_ne!(victim, self.sentinel, "LRU: evicting from an empty cache");
        self.unlink(m, victim);
        let key = Self::key_of(m, victim)?;
        let (chunk, slot) = self.bucket(key);
        let after = Self::load(m, victim, CHAIN);
        let mut e = Self::load(m, chunk, slot).expect("LRU: the victim's bucket is empty");
        if e == victim {
            self.store(m, chunk, slot, after);
        } else {
            loop {
                let next = Self::load(m, e, CHAIN).expect("LRU: the victim is not in its bucket");
                if next == victim {
                    self.store(m, e, CHAIN, after);
                    break;
                }
                e = next;
            }
        }
        self.len -= 1;
        self.counts.evictions += 1;
        Ok(())
    }

    /// Walks the recency list (checked loads) and returns its length, checking that each
    /// entry is in its bucket and its value holds its key. It polls a safepoint every
    /// [`super::CHECK_POLL`] entries (the entries are reachable from the rooted cache, so
    /// they stay live across a pause).
    pub fn check<B: StoreBarrier>(&self, m: &mut Mutator<B>) -> Result<usize> {
        let mut n = 0;
        let mut e = m
            .read_ref(self.sentinel, NEXT)?
            .expect("the sentinel has a NEXT");
        while e != self.sentinel {
            let key = Self::key_of(m, e)?;
            assert_eq!(
                self.find(m, key)?,
                Some(e),
                "LRU: key {key} not in its bucket"
            );
            let value = m.read_ref(e, VALUE)?.expect("an entry has a value");
            assert_eq!(
                Self::value_of(m, value)?.0,
                key,
                "LRU: key {key}'s value changed"
            );
            n += 1;
            if n as u64 % super::CHECK_POLL == 0 {
                m.safepoint();
            }
            e = m.read_ref(e, NEXT)?.expect("a listed entry has a NEXT");
        }
        Ok(n)
    }
}

/// Runs the LRU cache on `m`: `p.operations` gets of seeded keys, a put after each miss.
pub fn run<B: StoreBarrier>(
    m: &mut Mutator<B>,
    p: &LruParams,
    thread: usize,
) -> Result<LruOutcome> {
    let mut rng =
        SmallRng::seed_from_u64(p.seed ^ (thread as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut cache = LruCache::new(m, p)?;
    let mut hits = 0;
    for i in 0..p.operations {
        // A poll per get (one load): hits do not allocate, and a get that moves an old
        // entry may wait in a write fault; a pause must not wait for hundreds of them.
        m.safepoint();
        let key = p.keys.sample(&mut rng, p.key_space);
        match cache.get(m, key)? {
            Some(value) => {
                let (k, _) = LruCache::value_of(m, value)?;
                assert_eq!(k, key, "LRU: the value of key {key} holds key {k}");
                hits += 1;
            }
            None => cache.put(m, key, i)?,
        }
    }
    let listed = cache.check(m)?;
    assert_eq!(listed, cache.len(), "LRU: the recency list lost entries");
    let out = LruOutcome {
        operations: p.operations,
        hits,
        ..cache.counts
    };
    cache.release(m);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_keys_follow_their_probabilities() {
        let n = 1000;
        let samples = 1_000_000;
        let mut rng = SmallRng::seed_from_u64(3);
        let mut counts = vec![0u64; n as usize];
        for _ in 0..samples {
            counts[KeyDistribution::Zipf.sample(&mut rng, n) as usize] += 1;
        }
        for k in [0usize, 1, 9, 99, 999] {
            let p = KeyDistribution::Zipf.probability(k as f64, n);
            let expected = p * samples as f64;
            // Five standard deviations of a binomial count.
            let slack = 5.0 * expected.sqrt();
            assert!(
                (counts[k] as f64 - expected).abs() < slack,
                "key {k}: {} samples, expected {expected:.0}",
                counts[k]
            );
        }
        let total: f64 = (0..n)
            .map(|k| KeyDistribution::Zipf.probability(k as f64, n))
            .sum();
        assert!((total - 1.0).abs() < 1e-9, "probabilities sum to {total}");
    }

    #[test]
    fn expected_hit_ratio_grows_with_the_capacity() {
        let at = |capacity, keys| {
            LruParams {
                capacity,
                keys,
                ..LruParams::default()
            }
            .expected_hit_ratio()
        };
        assert_eq!(at(25_000, KeyDistribution::Uniform), 0.25);
        assert_eq!(at(100_000, KeyDistribution::Zipf), 1.0);
        let ratios: Vec<f64> = [100, 1_000, 10_000, 50_000]
            .into_iter()
            .map(|c| at(c, KeyDistribution::Zipf))
            .collect();
        assert!(ratios.windows(2).all(|w| w[0] < w[1]), "{ratios:?}");
        // Zipf's head is hot: a cache of 1% of the keys hits far more than 1%.
        assert!(ratios[1] > 0.3, "{ratios:?}");
    }
}
