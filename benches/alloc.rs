//! Question: what does one small allocation cost on barrierlab's fast path, in steady
//! state, with and without a collection cycle running?
//!
//! Target (issue 9): at most 4 ns per object on the fast path (one compare of the size
//! class's run, the safepoint poll, a bump, the header store; see `Mutator::alloc`).
//!
//! Objects of 16, 32, 48 and 64 bytes (header 8 + 8 per reference slot + payload:
//! `alloc(0, 8)`, `alloc(1, 16)`, `alloc(1, 32)`, `alloc(1, 48)`), each garbage at once
//! (never rooted), in batches of [`BATCH`] per iteration; throughput is per object, so
//! criterion's time per iteration divided by [`BATCH`] is the cost of one object. The
//! shape is a compile-time constant at the call site, as a compiler's allocation site
//! would have it, so the size class folds away. Everything the fast path does not do is
//! amortised in: a new run of free cells every page (256 cells at 16 bytes, 64 at 64).
//!
//! Two groups:
//! - `alloc_steady`: no cycle runs while the clock runs. A 256 MiB heap; whenever the
//!   bench has allocated a quarter of it since the last collection, it stops the clock
//!   and runs a full `collect()`, so the heap's own trigger (at 60%) never fires. Once
//!   the warm-up has been through the heap, every page is resident and zeroed by a
//!   sweep: the measurement times no first-touch page faults. Each row checks that no
//!   cycle overlapped a timed batch.
//! - `alloc_cycling`: the same allocations while collections run back to back: a
//!   background thread holds another mutator with a rooted list of [`LIVE_OBJECTS`]
//!   objects (so each cycle has something to mark) and calls `collect()` in a loop. What
//!   a cycle adds: the pauses (the whole mark for `none`), allocation black, the sweep
//!   competing for the lists of pages and for memory bandwidth. Each row reports the
//!   cycles that completed while it was timed and the share of batches that began inside
//!   a cycle, and fails if no cycle completed (a "with a cycle" figure measured without
//!   one is not a result).
//!
//! Barriers: `none` and `card-table`. Allocation does not depend on the barrier (the
//! header store has no store path); for the page trackers it does only in that the first
//! write to an armed page (here, a header store) faults — that cost is `dirty_page`'s
//! question, and it would swamp this one.
//!
//! Comparison, in the steady group: bdwgc's `GC_malloc` for the same byte counts, from
//! `libgc.so.1` through [`barrierlab::peer::bdwgc::Bdwgc`] (rows skipped, with the reason
//! printed, when the library does not load). What differs:
//! - `GC_malloc` is a call through a function pointer into the shared library (as a C
//!   program's call through the PLT), not inlined; its fast path pops a thread-local free
//!   list and clears the link word.
//! - bdwgc collects and sweeps on the allocating thread (stop-the-world, lazy sweep
//!   inside `GC_malloc`), so its rows include its collections, counted and printed per
//!   row. It gets the same 256 MiB up front (`GC_INITIAL_HEAP_SIZE`, unless already set),
//!   as `barrierlab gcbench --peer bdwgc` does with `GC_expand_hp`.
//! - With interior pointers on (distribution builds), bdwgc adds a byte to each request:
//!   16 bytes take a 32-byte cell, 32 a 48-byte one, and so on, one class up.
//!
//! bdwgc is started (`GC_init`) on the main thread before anything else, and criterion
//! runs every iteration on that thread, the only one bdwgc knows. It scans that thread's
//! stack and the process's static data conservatively; that is fine here because no
//! page tracker runs in this bench: nothing bdwgc reads is write-protected (no uffd-wp,
//! no mprotect), so its marker never faults on memory a tracker protects, and no tracker's
//! signal handler is installed beside bdwgc's.

use std::cell::Cell;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use barrierlab::barrier::StoreBarrier;
use barrierlab::peer::bdwgc::Bdwgc;
use barrierlab::{BarrierKind, Heap, HeapConfig, Mutator, MutatorTask, Phase};
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, measurement::WallTime};

/// Objects per iteration.
const BATCH: usize = 10_000;
/// The heap of every row.
const HEAP_BYTES: usize = 256 << 20;
/// `alloc_steady` collects (untimed) after this many bytes: far below the trigger.
const COLLECT_EVERY: usize = HEAP_BYTES / 4;
/// Objects the background mutator of `alloc_cycling` keeps alive.
const LIVE_OBJECTS: usize = 50_000;
/// Object sizes; the shapes are in [`batch_for`].
const SIZES: [usize; 4] = [16, 32, 48, 64];
/// The barriers measured (see the module docs for why not the page trackers).
const KINDS: [BarrierKind; 2] = [BarrierKind::None, BarrierKind::CardTable];

/// What a row saw besides its times.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Batches timed (warm-up included).
    batches: u64,
    /// Time in timed batches.
    timed: Duration,
    /// `alloc_steady`: bytes allocated since the last collection (carried across samples:
    /// the heap lives for the whole row).
    since_collect: usize,
    /// `alloc_steady`: collections run between timed batches, with the clock stopped.
    untimed_collections: u64,
    /// `alloc_steady`: chunks of timed batches that a cycle overlapped (must stay 0).
    overlapped: u64,
    /// `alloc_cycling`: cycles that completed while the row's samples ran.
    cycles: u64,
    /// `alloc_cycling`: batches that began while a cycle was running.
    in_cycle: u64,
    /// bdwgc: collections its allocator ran during timed batches.
    peer_collections: u64,
}

impl Tally {
    fn ns_per_object(&self) -> f64 {
        self.timed.as_nanos() as f64 / (self.batches as f64 * BATCH as f64)
    }
}

/// `n` allocations of `NREFS` slots and `PAYLOAD` bytes, dropped at once.
#[inline(never)]
fn batch<B: StoreBarrier, const NREFS: usize, const PAYLOAD: usize>(m: &mut Mutator<B>, n: usize) {
    for _ in 0..n {
        match m.alloc(NREFS, PAYLOAD) {
            Ok(o) => {
                black_box(o);
            }
            Err(e) => panic!("alloc({NREFS}, {PAYLOAD}) failed: {e}"),
        }
    }
}

/// The batch for objects of `size` bytes (header + slots + payload).
fn batch_for<B: StoreBarrier>(size: usize) -> fn(&mut Mutator<B>, usize) {
    match size {
        16 => batch::<B, 0, 8>,
        32 => batch::<B, 1, 16>,
        48 => batch::<B, 1, 32>,
        64 => batch::<B, 1, 48>,
        _ => unreachable!("no shape for {size} bytes"),
    }
}

/// One sample: `iters` timed batches on a fresh mutator of the heap.
struct Sample<'a> {
    size: usize,
    iters: u64,
    cycling: bool,
    tally: &'a Cell<Tally>,
}

impl MutatorTask for Sample<'_> {
    type Output = Duration;
    fn run<B: StoreBarrier>(self, m: &mut Mutator<B>) -> Duration {
        let f = batch_for::<B>(self.size);
        let heap = m.heap().clone();
        let mut t = self.tally.get();
        let mut total = Duration::ZERO;
        let cycles_before = heap.stats().cycles;
        // `alloc_steady`: the cycle count when the current chunk of batches began.
        let mut chunk_start = cycles_before;
        for _ in 0..self.iters {
            if self.cycling {
                t.in_cycle += u64::from(heap.phase() != Phase::Idle);
            } else if t.since_collect + BATCH * self.size > COLLECT_EVERY {
                t.overlapped += u64::from(overlapped(&heap, chunk_start));
                m.collect().expect("collect");
                t.untimed_collections += 1;
                t.since_collect = 0;
                chunk_start = heap.stats().cycles;
            }
            let start = Instant::now();
            f(m, BATCH);
            total += start.elapsed();
            t.since_collect += BATCH * self.size;
        }
        if self.cycling {
            t.cycles += heap.stats().cycles - cycles_before;
        } else {
            t.overlapped += u64::from(overlapped(&heap, chunk_start));
        }
        t.batches += self.iters;
        t.timed += total;
        self.tally.set(t);
        total
    }
}

/// Whether a cycle ran since the cycle count was `chunk_start` (one completed, or one is
/// running now).
fn overlapped(heap: &Heap, chunk_start: u64) -> bool {
    heap.stats().cycles != chunk_start || heap.phase() != Phase::Idle
}

/// `n` calls of `GC_malloc(SIZE)`, dropped at once.
#[inline(never)]
fn peer_batch<const SIZE: usize>(gc: &Bdwgc, n: usize) {
    for _ in 0..n {
        // SAFETY: on the thread that called `GC_init` (criterion's main thread); the
        // object is garbage at once, and nothing reads it.
        let p = unsafe { gc.malloc(SIZE) };
        assert!(!p.is_null(), "GC_malloc({SIZE}) returned null");
        black_box(p);
    }
}

fn peer_batch_for(size: usize) -> fn(&Bdwgc, usize) {
    match size {
        16 => peer_batch::<16>,
        32 => peer_batch::<32>,
        48 => peer_batch::<48>,
        64 => peer_batch::<64>,
        _ => unreachable!("no batch for {size} bytes"),
    }
}

/// Loads and starts bdwgc, before any other thread exists; `None` (and why, printed)
/// when the library does not load.
fn start_bdwgc() -> Option<Bdwgc> {
    let gc = match Bdwgc::load() {
        Ok(gc) => gc,
        Err(e) => {
            eprintln!("alloc: bdwgc rows skipped: {e}");
            return None;
        }
    };
    if std::env::var_os("GC_INITIAL_HEAP_SIZE").is_none() {
        // SAFETY: called first in `main`, before criterion, any heap or bdwgc starts a
        // thread: no other thread can read the environment concurrently.
        unsafe { std::env::set_var("GC_INITIAL_HEAP_SIZE", HEAP_BYTES.to_string()) };
    }
    gc.init();
    eprintln!(
        "alloc: bdwgc {} from {}, heap {} MiB",
        gc.version().unwrap_or_else(|| "(version unknown)".into()),
        gc.file(),
        gc.heap_size() >> 20
    );
    Some(gc)
}

/// Whether criterion measures (rather than running each bench once as a test, which it
/// does unless `--bench` is given without `--test`; mirrors `Criterion::configure_from_args`).
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

fn heap(kind: BarrierKind) -> Heap {
    Heap::new(HeapConfig::new().heap_bytes(HEAP_BYTES).barrier(kind))
        .unwrap_or_else(|e| panic!("a {kind} heap of {HEAP_BYTES} bytes: {e}"))
}

/// Times one barrierlab row.
fn bench_heap(
    g: &mut BenchmarkGroup<'_, WallTime>,
    heap: &Heap,
    kind: BarrierKind,
    size: usize,
    cycling: bool,
) -> Tally {
    let tally = Cell::new(Tally::default());
    g.bench_function(BenchmarkId::new(kind.name(), format!("{size}B")), |b| {
        b.iter_custom(|iters| {
            heap.run_typed(Sample {
                size,
                iters,
                cycling,
                tally: &tally,
            })
        })
    });
    tally.get()
}

fn steady(c: &mut Criterion, peer: Option<&Bdwgc>) {
    let mut g = c.benchmark_group("alloc_steady");
    g.throughput(Throughput::Elements(BATCH as u64));
    for size in SIZES {
        for kind in KINDS {
            let heap = heap(kind);
            let t = bench_heap(&mut g, &heap, kind, size, false);
            eprintln!(
                "  alloc_steady/{kind}/{size}B: {:.2} ns/object over all timed batches \
                 (warm-up included), {} collections with the clock stopped, {} timed \
                 chunks overlapped by a cycle",
                t.ns_per_object(),
                t.untimed_collections,
                t.overlapped
            );
            assert_eq!(
                t.overlapped, 0,
                "alloc_steady/{kind}/{size}B: a cycle ran while the clock ran"
            );
        }
        let Some(gc) = peer else { continue };
        let f = peer_batch_for(size);
        let tally = Cell::new(Tally::default());
        g.bench_function(BenchmarkId::new("bdwgc", format!("{size}B")), |b| {
            b.iter_custom(|iters| {
                let mut t = tally.get();
                let before = gc.gc_no();
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    f(gc, BATCH);
                    total += start.elapsed();
                }
                t.peer_collections += gc.gc_no() - before;
                t.batches += iters;
                t.timed += total;
                tally.set(t);
                total
            })
        });
        let t = tally.get();
        eprintln!(
            "  alloc_steady/bdwgc/{size}B: {:.2} ns/object over all timed batches (warm-up \
             included), {} bdwgc collections inside them, heap {} MiB",
            t.ns_per_object(),
            t.peer_collections,
            gc.heap_size() >> 20
        );
    }
    g.finish();
}

/// The background mutator of `alloc_cycling`: a rooted list of [`LIVE_OBJECTS`] objects,
/// and `collect()` back to back until told to stop. Returns the cycles it asked for.
fn start_collecting(heap: &Heap, stop: &Arc<AtomicBool>) -> JoinHandle<u64> {
    let (heap, stop) = (heap.clone(), stop.clone());
    std::thread::Builder::new()
        .name("alloc-bench-collect".into())
        .spawn(move || {
            let mut m = heap.mutator();
            let head = m.alloc(1, 8).expect("list head");
            m.push_root(head).expect("root");
            let mut tail = head;
            for _ in 1..LIVE_OBJECTS {
                let o = m.alloc(1, 8).expect("list node");
                m.write_ref(tail, 0, Some(o)).expect("link the list");
                tail = o;
            }
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                // At a safepoint while it waits: it never holds up a pause.
                m.collect().expect("collect");
                n += 1;
            }
            n
        })
        .expect("spawn the collecting thread")
}

fn cycling(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc_cycling");
    g.throughput(Throughput::Elements(BATCH as u64));
    for size in SIZES {
        for kind in KINDS {
            let heap = heap(kind);
            let stop = Arc::new(AtomicBool::new(false));
            let collector = start_collecting(&heap, &stop);
            let t = bench_heap(&mut g, &heap, kind, size, true);
            stop.store(true, Ordering::Relaxed);
            // This thread has no mutator now (each sample's is dropped), so the join
            // cannot hold up the cycle the background thread waits for.
            let asked = collector.join().expect("the collecting thread panicked");
            let st = heap.stats();
            eprintln!(
                "  alloc_cycling/{kind}/{size}B: {:.2} ns/object over all timed batches \
                 (warm-up included), {} cycles completed while timed ({} in all, {asked} \
                 asked for), {:.0}% of batches began inside a cycle, max pause {:?}",
                t.ns_per_object(),
                t.cycles,
                st.cycles,
                100.0 * t.in_cycle as f64 / t.batches.max(1) as f64,
                st.max_pause()
            );
            if measuring() {
                assert!(
                    t.cycles > 0,
                    "alloc_cycling/{kind}/{size}B: no cycle completed during the measurement"
                );
            }
        }
    }
    g.finish();
}

fn main() {
    // First: bdwgc's environment and `GC_init` before any thread starts.
    let peer = start_bdwgc();
    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    steady(&mut c, peer.as_ref());
    cycling(&mut c);
    c.final_summary();
}
