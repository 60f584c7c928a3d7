//! Question: what does the first write to an armed page cost under each page tracker,
//! and what does card marking cost for the same writes?
//!
//! One 8-byte store per page over 4096 populated pages of a bare region with the tracker
//! armed ([`barrierlab::workload::pages::PageLab`]); `iter_custom` times only the
//! stores, not arming or harvesting. One criterion iteration is one such round of
//! [`PAGES`] first writes, and the throughput is per page (criterion's time per
//! iteration divided by [`PAGES`] is the cost of one first write): a whole round is what
//! is timed, so nothing is scaled down to a fraction of a nanosecond. Flat sampling (the
//! same number of rounds in every sample), since a round of the synchronous trackers
//! takes tens of milliseconds. Baseline: `none`. Compare with the C reference in
//! `papers/reference/c-probe-2026-11-29.md` (async ≈ 0.77 µs sequential, mprotect ≈ 5.3 µs, sync
//! ≈ 15.5 µs busy-polling, ≈ 58 µs with a poll thread on another vCPU).

// criterion_group! generates a public function without documentation.
#![allow(missing_docs)]

use std::time::Duration;

use barrierlab::BarrierKind;
use barrierlab::barrier::{Breadth, Variant};
use barrierlab::workload::pages::{PageLab, PagePattern};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};

const PAGES: usize = 4096;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("dirty_page");
    g.throughput(Throughput::Elements(PAGES as u64));
    g.sampling_mode(SamplingMode::Flat);
    let variants = Variant::list(&BarrierKind::ALL, Breadth::Every);
    for random in [false, true] {
        let pattern = PagePattern {
            pages: PAGES,
            stores_per_page: 1,
            random,
            rounds: 1,
        };
        let order = PageLab::order(&pattern, 3);
        for v in &variants {
            let name = v.name();
            let lab = match PageLab::new(v.config, PAGES) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("dirty_page: {name} skipped: {e}");
                    continue;
                }
            };
            let id = BenchmarkId::new(if random { "rand" } else { "seq" }, &name);
            g.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| lab.round(&pattern, &order).expect("round").stores)
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
