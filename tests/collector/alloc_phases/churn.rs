//! The churn thread: short-lived mutators, their lists checked and then freed.

use std::sync::atomic::Ordering;

use barrierlab::{Heap, Mutator, ObjRef};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::phases::Shared;
use super::{CHURN_PAUSE, PHASES, payload_of};
use crate::support::shadow::collect_and_check_dead;

/// What the churn thread did.
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct Churn {
    /// Mutators made and dropped.
    pub(crate) mutators: u64,
    pub(crate) allocs: u64,
    /// Mutators dropped (their runs given back) by the phase seen just before.
    pub(crate) retired: [u64; PHASES],
    pub(crate) dead_checked: u64,
    pub(crate) dead_reused: u64,
}

/// Short-lived mutators, one after another on one thread: each allocates a rooted list,
/// checks it after a safepoint, and is dropped — its runs of free cells given back in
/// whatever phase the collector is in. Every few mutators, a collection; after it, the
/// lists of the mutators dropped before it must be gone.
pub(crate) fn churn(heap: &Heap, shared: &Shared, seed: u64, ctx: &str) -> Churn {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = Churn::default();
    let mut dead: Vec<(ObjRef, u64)> = Vec::new();
    // Above every worker's ids, which start at (thread + 1) << 48.
    let mut next_id = 0x80u64 << 48;
    let check_dead = |m: &mut Mutator, dead: &mut Vec<(ObjRef, u64)>, c: &mut Churn| {
        let d = collect_and_check_dead(m, std::mem::take(dead), &|| {
            format!("{ctx} churn (the lists of dropped mutators)")
        });
        c.dead_checked += d.checked;
        c.dead_reused += d.reused;
    };
    loop {
        let done = shared.running.load(Ordering::Acquire) == 0;
        if shared.abort.load(Ordering::Acquire) {
            return c;
        }
        let mut m = heap.mutator();
        if done || c.mutators % 8 == 7 {
            check_dead(&mut m, &mut dead, &mut c);
            if done {
                return c;
            }
        }
        c.mutators += 1;
        let len = rng.random_range(16..128);
        let mut list = Vec::with_capacity(len);
        let mut prev = None;
        for _ in 0..len {
            let payload = rng.random_range(8..=96);
            let obj = m
                .alloc(1, payload)
                .unwrap_or_else(|e| panic!("{ctx} churn: alloc(1, {payload}): {e}"));
            let id = next_id;
            next_id += 1;
            m.write_bytes(obj, 0, &payload_of(id, payload))
                .expect("write into a new object");
            match prev {
                None => {
                    m.push_root(obj).expect("root");
                }
                Some(p) => m.write_ref(p, 0, Some(obj)).expect("link the list"),
            }
            prev = Some(obj);
            list.push((obj, id, payload));
        }
        m.safepoint();
        let mut cur = m.root(0);
        let mut buf = Vec::new();
        for &(obj, id, payload) in &list {
            assert_eq!(
                cur,
                Some(obj),
                "{ctx} churn: list of mutator {}",
                c.mutators
            );
            buf.resize(payload, 0);
            m.read_bytes(obj, 0, &mut buf)
                .unwrap_or_else(|e| panic!("{ctx} churn: read_bytes of {id:#x}: {e}"));
            assert!(
                buf == payload_of(id, payload),
                "{ctx} churn: object {id:#x} at {obj:?} changed"
            );
            cur = m.read_ref(obj, 0).expect("a list node");
        }
        assert_eq!(cur, None, "{ctx} churn: list end");
        c.allocs += len as u64;
        c.retired[heap.phase() as usize] += 1;
        drop(m);
        dead.extend(list.iter().map(|&(obj, id, _)| (obj, id)));
        // Leave the CPUs to the mutators and the collector most of the time.
        std::thread::sleep(CHURN_PAUSE);
    }
}
