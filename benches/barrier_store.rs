//! Question: what does one reference store cost under each barrier?
//!
//! Stores of a reference into the slots of a large array object, through the
//! monomorphised store path ([`barrierlab::Heap::run_typed`] and
//! `write_ref_unchecked`), in cache (256 KiB of slots) and out of cache (64 MiB),
//! sequential and random. The heap is idle (not armed): this is the steady-state cost
//! that every store pays; first writes to armed pages are `dirty_page`'s question.
//! Baseline in every group: `none` (the plain store). The page trackers' store path is
//! empty, so they must measure as `none` does.

// criterion_group! generates a public function without documentation.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use barrierlab::barrier::StoreBarrier;
use barrierlab::{BarrierKind, Heap, HeapConfig, Mutator, MutatorTask, ObjRef};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

struct Stores<'a> {
    slots: usize,
    order: &'a [u32],
    iters: u64,
}

impl MutatorTask for Stores<'_> {
    type Output = Duration;
    fn run<B: StoreBarrier>(self, m: &mut Mutator<B>) -> Duration {
        let array = m.alloc(self.slots, 0).expect("array fits");
        m.push_root(array);
        let target = m.alloc(0, 8).expect("target fits");
        m.push_root(target);
        // Touch every slot once so first-touch page faults are not timed.
        timed(m, array, target, self.slots, self.order);
        let per_pass = if self.order.is_empty() {
            self.slots
        } else {
            self.order.len()
        } as u64;
        let mut total = Duration::ZERO;
        let mut done = 0u64;
        while done < self.iters {
            total += timed(m, array, target, self.slots, self.order);
            done += per_pass;
        }
        m.truncate_roots(0);
        // Scale to exactly `iters` stores.
        total.mul_f64(self.iters as f64 / done as f64)
    }
}

/// One pass of stores: every slot in order when `order` is empty (sequential, as the C
/// probe's `seq` loop), else the slots `order` names (random, the index array read
/// sequentially, as the probe's `rand` loop). No `black_box` inside the loop: the slot
/// store is atomic, so the compiler can neither drop nor merge nor vectorise it, and the
/// loop is then exactly one store (plus the barrier) per element.
#[inline(never)]
fn timed<B: StoreBarrier>(
    m: &mut Mutator<B>,
    array: ObjRef,
    target: ObjRef,
    slots: usize,
    order: &[u32],
) -> Duration {
    let (array, target) = (black_box(array), black_box(target));
    let t = Instant::now();
    if order.is_empty() {
        for i in 0..slots {
            // SAFETY: `array` is a live, rooted object with `slots` slots and `target` a
            // live, rooted object of the same heap.
            unsafe { m.write_ref_unchecked(array, i, Some(target)) };
        }
    } else {
        for &i in order {
            // SAFETY: as above; every index in `order` is below `slots`.
            unsafe { m.write_ref_unchecked(array, i as usize, Some(target)) };
        }
    }
    t.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("barrier_store");
    // One criterion iteration is one store (`Stores` scales its passes to `iters`).
    g.throughput(Throughput::Elements(1));
    for (label, bytes) in [("l2", 256usize << 10), ("dram", 64 << 20)] {
        let slots = bytes / 8;
        let mut rnd: Vec<u32> = (0..slots as u32).collect();
        rnd.shuffle(&mut SmallRng::seed_from_u64(7));
        let seq: Vec<u32> = Vec::new(); // empty: the sequential loop
        for (pattern, order) in [("seq", &seq), ("rand", &rnd)] {
            for kind in BarrierKind::ALL {
                let heap = match Heap::new(
                    HeapConfig::new()
                        .heap_bytes(bytes * 2 + (16 << 20))
                        .barrier(kind),
                ) {
                    Ok(h) => h,
                    Err(e) => {
                        eprintln!("barrier_store: {kind} skipped: {e}");
                        continue;
                    }
                };
                g.bench_with_input(
                    BenchmarkId::new(format!("{label}-{pattern}"), kind),
                    order,
                    |b, order| {
                        b.iter_custom(|iters| {
                            heap.run_typed(Stores {
                                slots,
                                order,
                                iters,
                            })
                        })
                    },
                );
            }
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
