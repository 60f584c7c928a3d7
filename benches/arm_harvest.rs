//! Question: what do arming and harvesting cost per cycle, against heap size and the
//! fraction of pages dirtied?
//!
//! A bare region of 16 MiB to 1 GiB ([`barrierlab::workload::pages::PageLab`]); each
//! iteration arms, dirties a fraction of the pages (one store each, untimed), and
//! harvests + disarms; only arm and harvest are timed, reported per heap page. Baseline:
//! `none` (nothing to arm). Target from the study issue: async arm + harvest of a clean
//! heap ≤ 5 ns per heap page.

// criterion_group! generates a public function without documentation.
#![allow(missing_docs)]

use std::time::Duration;

use barrierlab::BarrierKind;
use barrierlab::workload::pages::{PageLab, PagePattern};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("arm_harvest");
    let sizes: &[usize] = if std::env::var("BARRIERLAB_BENCH_FULL").is_ok() {
        &[16, 64, 256, 1024]
    } else {
        &[16, 256]
    };
    for &mib in sizes {
        let pages = mib << 8;
        g.throughput(Throughput::Elements(pages as u64));
        for kind in BarrierKind::ALL {
            let lab = match PageLab::new(kind, pages) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("arm_harvest: {kind} skipped: {e}");
                    continue;
                }
            };
            for dirty_pct in [0usize, 1, 100] {
                let pattern = PagePattern {
                    pages,
                    stores_per_page: 1,
                    random: false,
                    rounds: 1,
                };
                let order: Vec<usize> = (0..pages)
                    .filter(|p| {
                        p * 100 < pages * dirty_pct || (dirty_pct > 0 && p % (100 / dirty_pct) == 0)
                    })
                    .collect();
                let id = BenchmarkId::new(format!("{mib}MiB-dirty{dirty_pct}%"), kind);
                g.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let cost = lab.round(&pattern, &order).expect("round");
                            total += cost.arm + cost.harvest;
                        }
                        total
                    })
                });
            }
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(300));
    targets = bench
}
criterion_main!(benches);
