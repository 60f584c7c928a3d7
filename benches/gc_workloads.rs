//! Question: what does each barrier cost end to end?
//!
//! GCBench (the scaled-down parameters, so that a sample takes well under a second) and
//! graph mutation at 4 and 1024 stores per dirtied page, one mutator thread, a heap of
//! three times the workload's minimum, per barrier. Baseline: `none` (stop-the-world).
//! Pauses and MMU are the study's (`barrierlab study`); this measures total time.

// criterion_group! generates a public function without documentation.
#![allow(missing_docs)]

use std::time::Duration;

use barrierlab::workload::{self, GcBenchParams, GraphParams, Workload};
use barrierlab::{BarrierKind, HeapConfig};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("gc_workloads");
    let graph = |spp| GraphParams {
        objects: 20_000,
        stores: 400_000,
        alloc_every: 4,
        stores_per_page: spp,
        ..GraphParams::default()
    };
    let workloads = [
        Workload::GcBench(GcBenchParams::QUICK),
        Workload::Graph(graph(4)),
        Workload::Graph(graph(1024)),
    ];
    for w in &workloads {
        let min = barrierlab::study::min_heap_bytes(w, 1).expect("minimum heap");
        let heap_bytes = (min * 3).next_multiple_of(1 << 20);
        for kind in BarrierKind::ALL {
            let cfg = HeapConfig::new().heap_bytes(heap_bytes).barrier(kind);
            if let Err(e) = barrierlab::Heap::new(cfg.clone()) {
                eprintln!("gc_workloads: {kind} skipped: {e}");
                continue;
            }
            g.bench_function(BenchmarkId::new(w.name(), kind), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| workload::run(&cfg, w, 1).expect("workload runs").wall)
                        .sum()
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(300));
    targets = bench
}
criterion_main!(benches);
