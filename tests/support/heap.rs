//! The collector tests' part of the support module (`tests/collector`): building a heap or skipping a barrier
//! the kernel does not offer, the seed and soak knobs, and object ids.
//!
//! Environment:
//! - `BARRIERLAB_REQUIRE_ALL=1`: a barrier that cannot be built fails the test instead of
//!   being skipped (CI sets it).
//! - `BARRIERLAB_SEED=<u64>`: the base seed (default: a fresh one, printed).
//! - `BARRIERLAB_SOAK=<n>` runs `n` rounds of each stress configuration, each with its own
//!   seed derived from the base one; `BARRIERLAB_SOAK=<n>s` repeats rounds until `n`
//!   seconds have passed for each configuration.

use std::time::{Duration, Instant};

use barrierlab::barrier::{CardOptions, MechanismOptions, UffdWpOptions};
use barrierlab::{BarrierConfig, BarrierKind, Heap, HeapConfig, Mutator, ObjRef, ServiceLayout};

use super::{is_missing_feature, skip_or_fail};

/// `kind` with its defaults, but served by `layout` if it is `uffd-wp` and with
/// conditional cards if `conditional` and it marks cards (the tests that run every kind
/// in every layout).
pub fn barrier_config(
    kind: BarrierKind,
    layout: ServiceLayout,
    conditional: bool,
) -> BarrierConfig {
    match kind {
        BarrierKind::UffdWp => BarrierConfig::UffdWp(UffdWpOptions {
            service: layout,
            ..UffdWpOptions::DEFAULT
        }),
        BarrierKind::CardTable => BarrierConfig::CardTable(CardOptions { conditional }),
        BarrierKind::WriteWatch => BarrierConfig::WriteWatch(CardOptions { conditional }),
        _ => BarrierConfig::of(kind),
    }
}

/// Builds a heap, or returns `None` when its barrier cannot run on this kernel (or is not
/// built yet), after [`skip_or_fail`] has printed the reason; under
/// `BARRIERLAB_REQUIRE_ALL=1` that fails the test instead. Any other error panics.
pub fn heap_or_skip(config: HeapConfig, what: &str) -> Option<Heap> {
    let kind = config.barrier.kind();
    match Heap::new(config) {
        Ok(h) => Some(h),
        Err(e) if is_missing_feature(&e) => {
            skip_or_fail(what, &format!("barrier {kind}: {e}"));
            None
        }
        Err(e) => panic!("{what}: Heap::new for {kind} failed: {e}"),
    }
}

/// Two heaps of `kind` of `bytes` each (for the tests of several heaps on several
/// threads), or `None` after [`heap_or_skip`]'s skip.
pub fn two_heaps_or_skip(kind: BarrierKind, bytes: usize, what: &str) -> Option<(Heap, Heap)> {
    let mk = || heap_or_skip(HeapConfig::new().heap_bytes(bytes).barrier(kind), what);
    Some((mk()?, mk()?))
}

/// A rooted list of `len` nodes (one slot, 8 payload bytes holding the node's index);
/// returns its root index. [`check_index_list`] walks it.
pub fn build_index_list(m: &mut Mutator, len: usize) -> usize {
    let head = m.alloc(1, 8).expect("alloc");
    m.write_bytes(head, 0, &0u64.to_ne_bytes())
        .expect("payload");
    let root = m.push_root(head).expect("root");
    let mut tail = head;
    for i in 1..len as u64 {
        let n = m.alloc(1, 8).expect("alloc");
        m.write_bytes(n, 0, &i.to_ne_bytes()).expect("payload");
        m.write_ref(tail, 0, Some(n)).expect("store");
        tail = n;
    }
    root
}

/// Walks the list of [`build_index_list`] from `head` with the checked API: `len` nodes,
/// every one live and in order.
pub fn check_index_list(m: &Mutator, head: ObjRef, len: usize, what: &str) {
    let (mut node, mut i) = (Some(head), 0u64);
    while let Some(n) = node {
        let mut id = [0u8; 8];
        m.read_bytes(n, 0, &mut id)
            .unwrap_or_else(|e| panic!("{what}: node {i}: {e}"));
        assert_eq!(u64::from_ne_bytes(id), i, "{what}: node {i} changed");
        node = m
            .read_ref(n, 0)
            .unwrap_or_else(|e| panic!("{what}: node {i}: {e}"));
        i += 1;
    }
    assert_eq!(i, len as u64, "{what}: the list lost nodes");
}

/// The base seed: `BARRIERLAB_SEED`, or a fresh one. Printed either way, so that a
/// failing run can be reproduced.
pub fn base_seed(test: &str) -> u64 {
    let seed = match std::env::var("BARRIERLAB_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("BARRIERLAB_SEED={s:?} is not a u64")),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            splitmix(t.as_nanos() as u64 ^ (std::process::id() as u64) << 32)
        }
    };
    eprintln!("{test}: seed {seed} (reproduce with BARRIERLAB_SEED={seed})");
    seed
}

/// A well-mixed function of `x` (splitmix64), for deriving per-thread seeds.
pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How long a stress configuration runs (`BARRIERLAB_SOAK`).
#[derive(Debug, Clone, Copy)]
pub enum Soak {
    /// This many rounds.
    Rounds(u64),
    /// Rounds until this much time has passed.
    For(Duration),
}

impl Soak {
    /// From `BARRIERLAB_SOAK` (`<n>` rounds or `<n>s` seconds); one round by default.
    pub fn from_env() -> Soak {
        match std::env::var("BARRIERLAB_SOAK") {
            Err(_) => Soak::Rounds(1),
            Ok(s) => {
                let s = s.trim();
                let bad = || panic!("BARRIERLAB_SOAK={s:?}: expected <rounds> or <seconds>s");
                match s.strip_suffix('s') {
                    Some(secs) => {
                        Soak::For(Duration::from_secs(secs.parse().unwrap_or_else(|_| bad())))
                    }
                    None => Soak::Rounds(s.parse::<u64>().unwrap_or_else(|_| bad()).max(1)),
                }
            }
        }
    }

    /// Whether round `round` (from 0) should run, given when the configuration started.
    pub fn another(self, round: u64, started: Instant) -> bool {
        match self {
            Soak::Rounds(n) => round < n,
            Soak::For(d) => round == 0 || started.elapsed() < d,
        }
    }

    /// Whether a soak was asked for (longer timeouts then).
    pub fn is_soak(self) -> bool {
        !matches!(self, Soak::Rounds(1))
    }
}

/// A debug build runs everything several times slower: scale work down by this.
pub fn debug_divisor() -> u64 {
    if cfg!(debug_assertions) { 4 } else { 1 }
}

/// Reads the id stored in the first 8 payload bytes of `obj`; `None` if the read fails
/// (the cell is free, or not yet initialised by its new owner).
pub fn read_id<B: barrierlab::barrier::StoreBarrier>(
    m: &barrierlab::Mutator<B>,
    obj: ObjRef,
) -> Option<u64> {
    let mut b = [0u8; 8];
    m.read_bytes(obj, 0, &mut b).ok()?;
    Some(u64::from_le_bytes(b))
}
