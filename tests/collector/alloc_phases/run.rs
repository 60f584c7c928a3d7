//! One configuration: the mutators, the churn and the collecting thread, its report.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use barrierlab::{BarrierKind, HeapConfig, Phase};

use super::churn::churn;
use super::phases::{Shared, is_pause, show};
use super::program::Program;
use super::{BUDGET_OBJECTS, DEADLINE, HEAP_BYTES, MIN_OPS, PHASES, SCHEDULE};
use crate::support::shadow::{self, AbortOnPanic};
use crate::support::{debug_divisor, heap_or_skip, splitmix};

/// One configuration: `threads` mutators over `kind`, collections back to back.
/// Returns the phase histogram, or `None` when the barrier is unavailable.
pub(crate) fn run_config(kind: BarrierKind, threads: usize, base: u64) -> Option<[u64; PHASES]> {
    let seed = splitmix(base ^ splitmix((kind as u64) << 32 | (threads as u64) << 16));
    let what = format!("alloc phases [{kind}, {threads} threads]");
    let heap = heap_or_skip(
        HeapConfig::new()
            .heap_bytes(HEAP_BYTES)
            .barrier(kind)
            .trigger(0.4)
            .max_preclean_rounds(8)
            .preclean_threshold(0)
            .verify(true),
        &what,
    )?;
    let ctx = format!("[{kind}, {threads} threads, BARRIERLAB_SEED={base}]");
    let shared = Shared {
        phases: std::array::from_fn(|_| AtomicU64::new(0)),
        large_phases: std::array::from_fn(|_| AtomicU64::new(0)),
        abort: AtomicBool::new(false),
        running: AtomicUsize::new(threads),
    };
    let min_ops = MIN_OPS / debug_divisor() / threads as u64;
    let budget = BUDGET_OBJECTS / threads;
    let started = Instant::now();
    let (totals, background, churned) = std::thread::scope(|s| {
        let (heap, shared) = (&heap, &shared);
        let churning = {
            let ctx = ctx.clone();
            s.spawn(move || {
                let _guard = AbortOnPanic(&shared.abort);
                churn(heap, shared, splitmix(seed ^ 0x6368_7572), &ctx)
            })
        };
        let collecting = s.spawn(move || {
            let _guard = AbortOnPanic(&shared.abort);
            let mut n = 0u64;
            while shared.running.load(Ordering::Acquire) > 0
                && !shared.abort.load(Ordering::Acquire)
            {
                heap.collect().expect("collect");
                n += 1;
            }
            n
        });
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let ctx = format!("{ctx} thread {t}");
                s.spawn(move || {
                    let _guard = AbortOnPanic(&shared.abort);
                    let mut p =
                        Program::new(heap, shared, splitmix(seed + t as u64), t, budget, ctx);
                    let mut i = 0u64;
                    while !shared.abort.load(Ordering::Relaxed) {
                        i += 1;
                        p.step();
                        // Past its minimum, a worker stops once every phase has been seen (or at
                        // the deadline).
                        if SCHEDULE.after_op(&mut p, i)
                            && i >= min_ops
                            && (shared.missing(kind).is_empty() || started.elapsed() > DEADLINE)
                        {
                            break;
                        }
                    }
                    shadow::finish(&mut p, &shared.abort, &shared.running)
                })
            })
            .collect();
        let totals = shadow::join_counts(workers);
        let background = collecting
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let churned = churning
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (totals, background, churned)
    });
    let st = heap.stats();
    let h = shared.histogram();
    let raced: [u64; PHASES] =
        std::array::from_fn(|i| if is_pause(Phase::ALL[i]) { h[i] } else { 0 });
    let running: [u64; PHASES] = std::array::from_fn(|i| h[i] - raced[i]);
    eprintln!(
        "{kind:>14} x{threads}: {} cycles ({background} from the collecting thread, {} \
         degraded), {} ops, {} allocs ({} large, {} garbage at once); by phase: {}; raced \
         pauses: [{}]; {} dead checked ({} reused), {} verifies; churn: {} \
         mutators ({} allocs) dropped in [{}], {} of their objects checked freed ({} \
         reused); {:.2?}",
        st.cycles,
        st.degraded_cycles(),
        totals.ops,
        totals.allocs,
        totals.large,
        totals.extra.garbage_at_once,
        show(&running),
        show(&raced),
        totals.dead_checked,
        totals.dead_reused,
        totals.verifies,
        churned.mutators,
        churned.allocs,
        show(&churned.retired),
        churned.dead_checked,
        churned.dead_reused,
        started.elapsed()
    );
    shadow::assert_sound(&ctx, &st, &totals);
    let missing = shared.missing(kind);
    assert!(
        missing.is_empty(),
        "{ctx}: no allocation observed in {missing:?} (by phase: {}) within {:?} and {} ops",
        show(&h),
        DEADLINE,
        totals.ops
    );
    Some(h)
}
