//! The heap and collector through the public API, one property per test: size classes,
//! large objects, memory reuse after a sweep, every error a caller can provoke, barrier
//! names, and freedom from deadlock (a pause while mutators hammer armed pages; a mutator
//! blocked outside the managed state). Tests that build a heap run over every barrier
//! (skipping, with a reason, one this kernel or tree does not offer) and under a timeout.

use crate::support;

mod barrier_names;
mod deadlock;
mod errors;
mod fault_stalls;
mod helped_mark;
mod objects;
mod pacing;

use std::time::Duration;

use barrierlab::{BarrierKind, Error, Heap, HeapConfig, Mutator, ObjRef};

use support::{heap_or_skip, with_timeout};

const PAGE: usize = 4096;
const LIMIT: Duration = Duration::from_secs(60);

/// Runs `body` over a fresh heap of every barrier (built from `config`), each under a
/// timeout; a barrier that cannot be built is skipped with its reason.
fn for_every_barrier(test: &str, config: impl Fn(BarrierKind) -> HeapConfig, body: fn(Heap)) {
    for kind in BarrierKind::ALL {
        let what = format!("{test} [{kind}]");
        if let Some(heap) = heap_or_skip(config(kind), &what) {
            with_timeout(LIMIT.as_secs(), &what, move || body(heap));
        }
    }
}

fn small_heap(kind: BarrierKind, bytes: usize) -> HeapConfig {
    HeapConfig::new()
        .heap_bytes(bytes)
        .barrier(kind)
        .verify(true)
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, Error>, what: &str) {
    match r {
        Err(Error::InvalidArgument(msg)) => assert!(!msg.is_empty(), "{what}: empty message"),
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    }
}

fn assert_stale<T: std::fmt::Debug>(r: Result<T, Error>, obj: ObjRef, what: &str) {
    match r {
        Err(Error::StaleRef(a)) => assert_eq!(a, obj.addr(), "{what}: StaleRef names the address"),
        other => panic!("{what}: expected StaleRef({obj:?}), got {other:?}"),
    }
}

/// Fills every slot and payload byte of `obj`: slots with `target`, bytes with `tag`.
fn fill(m: &mut Mutator, obj: ObjRef, target: ObjRef, tag: u8) {
    let (n, p) = m.shape(obj).expect("live");
    for i in 0..n {
        m.write_ref(obj, i, Some(target)).expect("slot in range");
    }
    m.write_bytes(obj, 0, &vec![tag; p])
        .expect("payload in range");
}

/// Checks what [`fill`] wrote.
fn check_filled(m: &Mutator, obj: ObjRef, target: ObjRef, tag: u8, what: &str) {
    let (n, p) = m.shape(obj).expect("live");
    for i in 0..n {
        assert_eq!(
            m.read_ref(obj, i).expect("slot"),
            Some(target),
            "{what}: slot {i}"
        );
    }
    let mut buf = vec![0; p];
    m.read_bytes(obj, 0, &mut buf).expect("payload");
    assert!(
        buf.iter().all(|&b| b == tag),
        "{what}: payload overwritten (a neighbour spilled into this cell, or it into one)"
    );
}
