//! One configuration: its heap and knobs drawn from the seed, its threads, its report.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use barrierlab::internals::Testing;
use barrierlab::{BarrierKind, HeapConfig, ServiceLayout};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Sizing;
use super::program::Program;
use crate::support::shadow::{self, AbortOnPanic};
use crate::support::{Soak, barrier_config, debug_divisor, heap_or_skip, splitmix, with_timeout};

/// What one configuration ran.
pub(crate) struct Ran {
    pub(crate) cycles: u64,
    pub(crate) fallbacks: usize,
}

/// One configuration: `threads` mutators over `kind`, plus a thread collecting in a
/// loop, in a heap sized by `sizing`. Returns what it ran, or `None` if the barrier is
/// unavailable.
pub(crate) fn run_config(
    kind: BarrierKind,
    threads: usize,
    sizing: Sizing,
    base: u64,
    round: u64,
    soak: Soak,
) -> Option<Ran> {
    let tight = (sizing == Sizing::Tight) as u64;
    let seed = splitmix(
        base ^ splitmix((kind as u64) << 32 | (threads as u64) << 16 | tight << 15 | round),
    );
    // The collector's knobs vary with the seed: no pre-cleaning at all, or many rounds
    // that run to the end (wider windows between harvest and remark); card marking
    // plain or conditional; every fault-service layout; mutators never paced by the
    // pre-clean, paced when it does not converge (the default), or paced from its first
    // round (the pacing path forced: waits at allocations while cycles pre-clean).
    let mut knobs = StdRng::seed_from_u64(seed ^ 0x6b6e_6f62);
    let rounds = [0, 1, 3, 8][knobs.random_range(0..4)];
    let threshold = [0, 32][knobs.random_range(0..2)];
    let conditional = knobs.random_bool(0.5);
    let layouts = uffd_wp_layouts();
    let layout = layouts[knobs.random_range(0..layouts.len())];
    let (pacing, pace_always) =
        [(None, false), (Some(0.5), false), (Some(0.3), true)][knobs.random_range(0..3)];
    let trigger = match sizing {
        Sizing::Roomy => [0.3, 0.5, 0.7][knobs.random_range(0..3)],
        // Late, and without the pacer: a cycle starts when the heap is nearly full (the
        // mutators that find it full wait for that cycle), or never by itself, so that
        // every collection but the checkpoints is a fallback; the one-thread
        // configuration of each round takes the second, so that every barrier falls
        // back in every run of the test.
        Sizing::Tight if (threads as u64 + round) % 2 == 1 => 1.0,
        Sizing::Tight => 0.95,
    };
    let heap_bytes = sizing.heap_bytes();
    let what = format!(
        "shadow graph [{kind}, {threads} threads, {} KiB heap]",
        heap_bytes >> 10
    );
    let heap = heap_or_skip(
        HeapConfig::new()
            .heap_bytes(heap_bytes)
            .barrier(barrier_config(kind, layout, conditional))
            .trigger(trigger)
            .pacing(sizing == Sizing::Roomy)
            .max_preclean_rounds(rounds)
            .preclean_threshold(threshold)
            .preclean_pacing(pacing)
            .testing(Testing {
                pace_from_first_round: pace_always,
                ..Testing::default()
            })
            .verify(true),
        &what,
    )?;
    let knobs = format!(
        "pre-clean {rounds} rounds to {threshold}, {}, trigger {trigger}{}{}",
        match (pacing, pace_always) {
            (None, _) => "never paced".to_string(),
            (Some(share), false) => format!("paced at {share} if not converging"),
            (Some(share), true) => format!("paced at {share} from round 1"),
        },
        if kind == BarrierKind::CardTable && conditional {
            ", conditional cards"
        } else {
            ""
        },
        if kind == BarrierKind::UffdWp {
            format!(", {} layout", layout.name())
        } else {
            String::new()
        },
    );
    let ops_per_thread = sizing.ops_per_config() / debug_divisor() / threads as u64;
    let budget = (sizing.budget(threads), sizing.large_max());
    let schedule = sizing.schedule();
    let started = Instant::now();
    let limit = if soak.is_soak() {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(180)
    };
    let h = heap.clone();
    let ctx = format!(
        "[{kind}, {threads} threads, {} KiB heap, {knobs}, round {round}, \
         BARRIERLAB_SEED={base}]",
        heap_bytes >> 10
    );
    let ctx_base = ctx.clone();
    let totals = with_timeout(limit.as_secs(), &what, move || {
        let abort = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicUsize::new(threads));
        let background_cycles = AtomicU64::new(0);
        let totals = std::thread::scope(|s| {
            // Collections back to back, from a thread that is not a mutator (in a roomy
            // heap: in a tight one they would leave the allocations no room to fail).
            s.spawn(|| {
                let _guard = AbortOnPanic(&abort);
                while sizing.back_to_back()
                    && running.load(Ordering::Acquire) > 0
                    && !abort.load(Ordering::Acquire)
                {
                    h.collect().expect("collect");
                    background_cycles.fetch_add(1, Ordering::Relaxed);
                }
            });
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let (h, abort, running) = (&h, &abort, &running);
                    let ctx = format!("{ctx_base} thread {t}");
                    s.spawn(move || {
                        let _guard = AbortOnPanic(abort);
                        let mut p = Program::new(h, splitmix(seed + t as u64), t, budget, ctx);
                        for i in 1..=ops_per_thread {
                            if abort.load(Ordering::Relaxed) {
                                break;
                            }
                            p.step();
                            schedule.after_op(&mut p, i);
                        }
                        shadow::finish(&mut p, abort, running)
                    })
                })
                .collect();
            shadow::join_counts(workers)
        });
        (totals, background_cycles.into_inner())
    });
    let (totals, background) = totals;
    let st = heap.stats();
    eprintln!(
        "{kind:>14} x{threads} {} KiB ({knobs}): {} cycles ({} from the collecting thread, {} \
         checkpoints, {} degraded, {} fallbacks), {} ops, {} allocs ({} large), {} verifies, {} \
         dead checked ({} reused), max {} reachable, at most {} KiB live, {} faults, max pause \
         {:?}, {:.2?}",
        heap_bytes >> 10,
        st.cycles,
        background,
        totals.checkpoints,
        st.degraded_cycles(),
        st.fallbacks(),
        totals.ops,
        totals.allocs,
        totals.large,
        totals.verifies,
        totals.dead_checked,
        totals.dead_reused,
        totals.extra.max_objects,
        totals.extra.max_bytes >> 10,
        st.tracker.faults,
        st.max_pause(),
        started.elapsed()
    );
    shadow::assert_sound(&ctx, &st, &totals);
    Some(Ran {
        cycles: st.cycles,
        fallbacks: st.fallbacks(),
    })
}

/// The `uffd-wp` fault-service layouts to draw from: all of them. (`Thread` and
/// `SpinThread` once exposed a race between `arm` and an in-flight fault service, now
/// closed by `arm` taking the service lock; see `tests/collector/verifier.rs`.)
fn uffd_wp_layouts() -> Vec<ServiceLayout> {
    ServiceLayout::ALL.to_vec()
}

/// The barriers to run: all, or those named in `BARRIERLAB_STRESS_KINDS` (comma
/// separated; for reproducing a failure quickly).
pub(crate) fn stress_kinds() -> Vec<BarrierKind> {
    match std::env::var("BARRIERLAB_STRESS_KINDS") {
        Err(_) => BarrierKind::ALL.to_vec(),
        Ok(list) => list
            .split(',')
            .map(|k| {
                k.trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("BARRIERLAB_STRESS_KINDS: {e}"))
            })
            .collect(),
    }
}
