//! Question: what does one reference store cost under each barrier?
//!
//! Stores of a reference into the slots of a large array object, through the
//! monomorphised store path ([`barrierlab::Heap::run_typed`] and
//! `write_ref_unchecked`), in cache (256 KiB of slots) and out of cache (64 MiB),
//! sequential and random. The heap is idle (not armed, and nothing is allocated while
//! the clock runs, so no cycle starts): this is the steady-state cost that every store
//! pays; first writes to armed pages are `dirty_page`'s question. Baseline in every group:
//! `none` (the plain store). The page trackers' store path is empty, so they must measure
//! as `none` does.
//!
//! One criterion iteration is a batch of [`BATCH`] stores, the next [`BATCH`] slots of
//! the pattern (wrapping around the array, so that the out-of-cache rows keep missing the
//! cache), and the throughput is per store: a single store (a quarter of a nanosecond)
//! is below the timer's resolution, and a sample of a few of them measured as exactly the
//! same time every time, which criterion's statistics cannot take. The array is allocated
//! and touched once per row, before criterion's first iteration, on the mutator that then
//! runs every iteration.

// criterion_group! generates a public function without documentation.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use barrierlab::barrier::StoreBarrier;
use barrierlab::{BarrierKind, Heap, HeapConfig, Mutator, MutatorTask, ObjRef};
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

/// Stores per criterion iteration (64 KiB of slots): about 2 µs in cache.
const BATCH: usize = 8192;

/// One row: allocates the array on the heap's typed mutator, then lets criterion time
/// batches of stores on it.
struct Row<'a, 'g> {
    group: &'a mut BenchmarkGroup<'g, WallTime>,
    id: BenchmarkId,
    slots: usize,
    /// The slots in store order for the random rows (a permutation of `0..slots`, read
    /// sequentially, as the C probe's `rand` loop); empty for the sequential rows, whose
    /// loop is over the slot index itself (the probe's `seq` loop).
    order: &'a [u32],
}

impl MutatorTask for Row<'_, '_> {
    type Output = ();
    fn run<B: StoreBarrier>(self, m: &mut Mutator<B>) {
        let array = m.alloc(self.slots, 0).expect("array fits");
        m.push_root(array).expect("root");
        let target = m.alloc(0, 8).expect("target fits");
        m.push_root(target).expect("root");
        // Touch every slot once so first-touch page faults are not timed.
        for start in (0..self.slots).step_by(BATCH) {
            stores(m, array, target, start, self.order);
        }
        let mut next = 0;
        self.group.bench_function(self.id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += stores(m, array, target, next, self.order);
                    next = (next + BATCH) % self.slots;
                }
                total
            })
        });
        m.truncate_roots(0);
    }
}

/// One batch of stores, timed: slots `start..start + BATCH` when `order` is empty
/// (sequential), else the slots `order[start..start + BATCH]` names (random). No
/// `black_box` inside the loop: the slot store is atomic, so the compiler can neither
/// drop nor merge nor vectorise it, and the loop is then exactly one store (plus the
/// barrier) per element.
#[inline(never)]
fn stores<B: StoreBarrier>(
    m: &mut Mutator<B>,
    array: ObjRef,
    target: ObjRef,
    start: usize,
    order: &[u32],
) -> Duration {
    let (array, target) = (black_box(array), black_box(target));
    let t = Instant::now();
    if order.is_empty() {
        for i in start..start + BATCH {
            // SAFETY: `array` is a live, rooted object whose slot count is a multiple of
            // `BATCH` above `start`, and `target` a live, rooted object of the same heap.
            unsafe { m.write_ref_unchecked(array, i, Some(target)) };
        }
    } else {
        for &i in &order[start..start + BATCH] {
            // SAFETY: as above; every index in `order` is a slot of `array`.
            unsafe { m.write_ref_unchecked(array, i as usize, Some(target)) };
        }
    }
    t.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("barrier_store");
    g.throughput(Throughput::Elements(BATCH as u64));
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
                heap.run_typed(Row {
                    group: &mut g,
                    id: BenchmarkId::new(format!("{label}-{pattern}"), kind),
                    slots,
                    order,
                });
                assert_eq!(heap.stats().cycles, 0, "{kind}: a cycle ran during the row");
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
