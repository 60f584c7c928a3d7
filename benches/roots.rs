//! Question: what does rooting an object cost? `Mutator::push_root` checks that the
//! reference is the start of a live cell of the heap (`Space::check_obj`: in the region,
//! aligned, its allocation bit set, and a whole number of cells into its page) before it
//! pushes it; `pop_root` only pops. GCBench roots every node it builds, and `perf` put
//! `push_root` at 18% of a GCBench run's samples under `none` (210 MiB heap), 28% of
//! those on the `div` that tested the cell's offset. The offset is now tested with a
//! multiply (`size_class::cell_index`); the samples then moved to the loads before it
//! (the page table's entry and the allocation bit, out of cache in a heap that size):
//! the check's cost is its memory accesses, which this bench, with its objects in a few
//! pages, does not show.
//!
//! Rows: a push and a pop of objects of one size class, cycling through [`OBJECTS`]
//! objects allocated up front in a heap no collection runs in (the heap is large and
//! nothing triggers a cycle); the time per iteration divided by [`OBJECTS`] is one
//! push and one pop. Classes: 48 and 816 bytes (cells a whole page is not a multiple
//! of) and 64 bytes.
//!
//! Run: `cargo bench --bench roots`.

use std::hint::black_box;
use std::time::Duration;

use barrierlab::{BarrierKind, Heap, HeapConfig, ObjRef};
use criterion::{BenchmarkId, Criterion, Throughput};

/// Objects each iteration roots and unroots, one at a time.
const OBJECTS: usize = 1024;
/// The heap: far more than the objects need, so that no cycle starts.
const HEAP_BYTES: usize = 64 << 20;

/// `(reference slots, payload bytes)` of an object filling each measured cell size
/// (an 8-byte header, 8 bytes per slot).
const SHAPES: [(usize, usize, usize); 3] = [(48, 1, 32), (64, 1, 48), (816, 1, 800)];

fn roots(c: &mut Criterion) {
    let mut g = c.benchmark_group("roots");
    g.throughput(Throughput::Elements(OBJECTS as u64));
    for (cell, slots, payload) in SHAPES {
        let heap = Heap::new(
            HeapConfig::new()
                .heap_bytes(HEAP_BYTES)
                .barrier(BarrierKind::None),
        )
        .expect("a heap with no barrier");
        let mut m = heap.mutator();
        let objects: Vec<ObjRef> = (0..OBJECTS)
            .map(|_| m.alloc(slots, payload).expect("room for the objects"))
            .collect();
        g.bench_function(BenchmarkId::new("push_pop", format!("{cell}B")), |b| {
            b.iter(|| {
                for &o in &objects {
                    m.push_root(black_box(o)).expect("a live object");
                    black_box(m.pop_root());
                }
            })
        });
        assert_eq!(
            heap.stats().cycles,
            0,
            "a cycle ran: the objects may be gone"
        );
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    roots(&mut c);
    c.final_summary();
}
