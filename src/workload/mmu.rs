//! Minimum mutator utilisation (MMU): the least share of any window of a given length,
//! inside a run, that the mutators had for themselves. One implementation, for the
//! workload driver ([`RunResult::mmu`](super::RunResult::mmu), pauses only) and the study
//! (pauses and the writers' per-thread stalls).

use std::time::Duration;

use crate::collector::Stats;

/// MMU over `[start, end)` (times from the heap's creation) for `window`, from the
/// pauses alone: [`mmu_with_stalls`] with no stall.
pub fn mmu(stats: &Stats, start: Duration, end: Duration, window: Duration) -> f64 {
    let pauses: Vec<(f64, f64)> = stats
        .pauses
        .iter()
        .map(|p| (p.start.as_secs_f64(), (p.start + p.duration).as_secs_f64()))
        .collect();
    mmu_with_stalls(
        &pauses,
        &[],
        1,
        start.as_secs_f64(),
        end.as_secs_f64(),
        window.as_secs_f64(),
    )
}

/// Minimum mutator utilisation for windows of `window` seconds over `[start, end)`,
/// counting both stop-the-world pauses and per-thread stalls.
///
/// Utilisation lost at time t: 1 inside any pause; otherwise `k / threads` when `k`
/// mutator stalls are in progress (a stall of one of T mutators takes 1/T of the
/// process's utilisation for its duration), at most 1. MMU(w) is 1 minus the most loss
/// any window of length w inside the run accumulates, divided by w. Intervals are
/// `(start, end)` in seconds. A run shorter than the window gives the utilisation of
/// the whole run.
pub fn mmu_with_stalls(
    pauses: &[(f64, f64)],
    stalls: &[(f64, f64)],
    threads: usize,
    start: f64,
    end: f64,
    window: f64,
) -> f64 {
    let threads = threads.max(1) as f64;
    // The loss rate is piecewise constant between breakpoints: sweep them in order.
    let mut events: Vec<(f64, i32, i32)> = Vec::new(); // (time, Δpauses, Δstalls)
    for &(a, b) in pauses {
        events.push((a.max(start), 1, 0));
        events.push((b.min(end).max(a.max(start)), -1, 0));
    }
    for &(a, b) in stalls {
        events.push((a.max(start), 0, 1));
        events.push((b.min(end).max(a.max(start)), 0, -1));
    }
    events.sort_by(|x, y| x.0.total_cmp(&y.0));
    // Breakpoints and the cumulative loss at each: loss(t) = cum[i] + rate[i] (t - x[i]).
    let mut xs = vec![start];
    let mut cum = vec![0.0];
    let mut rates = Vec::new();
    let (mut p, mut s) = (0i32, 0i32);
    let rate = |p: i32, s: i32| {
        if p > 0 {
            1.0
        } else {
            (s as f64 / threads).min(1.0)
        }
    };
    for &(t, dp, ds) in &events {
        let t = t.clamp(start, end);
        let last = *xs.last().expect("non-empty");
        if t > last {
            let r = rate(p, s);
            rates.push(r);
            cum.push(cum.last().expect("non-empty") + r * (t - last));
            xs.push(t);
        }
        p += dp;
        s += ds;
    }
    let last = *xs.last().expect("non-empty");
    if end > last {
        rates.push(rate(p, s));
        cum.push(cum.last().expect("non-empty") + rate(p, s) * (end - last));
        xs.push(end);
    }
    rates.push(0.0); // beyond the end
    let loss_at = |t: f64| -> f64 {
        let i = xs.partition_point(|&x| x <= t).saturating_sub(1);
        cum[i] + rates[i] * (t - xs[i])
    };
    let span = end - start;
    if span <= window || window <= 0.0 {
        return 1.0 - (loss_at(end) / span.max(1e-12)).min(1.0);
    }
    // The worst window starts or ends at a breakpoint (the loss is piecewise linear).
    let mut worst: f64 = 0.0;
    for &x in &xs {
        for lo in [x, x - window] {
            let lo = lo.clamp(start, end - window);
            worst = worst.max(loss_at(lo + window) - loss_at(lo));
        }
    }
    (1.0 - worst / window).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn mmu_of_pauses_alone() {
        // 10 s run, one 1 s pause at [2, 3): MMU(1) = 0, MMU(2) = 0.5, MMU(10) = 0.9.
        let p = [(2.0, 3.0)];
        assert!(close(mmu_with_stalls(&p, &[], 1, 0.0, 10.0, 1.0), 0.0));
        assert!(close(mmu_with_stalls(&p, &[], 1, 0.0, 10.0, 2.0), 0.5));
        assert!(close(mmu_with_stalls(&p, &[], 1, 0.0, 10.0, 10.0), 0.9));
        // Two pauses 1 s apart: a 3 s window holds both (2 s lost).
        let p = [(2.0, 3.0), (4.0, 5.0)];
        assert!(close(
            mmu_with_stalls(&p, &[], 4, 0.0, 10.0, 3.0),
            1.0 / 3.0
        ));
        // No pause, no stall: full utilisation.
        assert!(close(mmu_with_stalls(&[], &[], 1, 0.0, 10.0, 1.0), 1.0));
    }

    #[test]
    fn mmu_counts_a_stall_as_one_thread_share() {
        // Two mutators; one stalls for [1, 3): half the process is lost there.
        let s = [(1.0, 3.0)];
        assert!(close(mmu_with_stalls(&[], &s, 2, 0.0, 10.0, 1.0), 0.5));
        assert!(close(mmu_with_stalls(&[], &s, 2, 0.0, 10.0, 4.0), 0.75));
        // Both stall over [2, 3): all lost there; a 1 s window there is 0.
        let s2 = [(1.0, 3.0), (2.0, 3.5)];
        assert!(close(mmu_with_stalls(&[], &s2, 2, 0.0, 10.0, 1.0), 0.0));
        // Window 2 s: best placement [1.5, 3.5)? loss = 0.25 + 1 + 0.25 = 1.5; [2, 4)
        // loss = 1 + 0.25 = 1.25; [1, 3) = 0.5 + 1 = 1.5: worst 1.5, MMU 0.25.
        assert!(close(mmu_with_stalls(&[], &s2, 2, 0.0, 10.0, 2.0), 0.25));
        // A stall inside a pause adds nothing: the pause already took everything.
        let p = [(1.0, 3.0)];
        assert!(close(
            mmu_with_stalls(&p, &[(1.5, 2.5)], 2, 0.0, 10.0, 2.0),
            0.0
        ));
        assert!(close(
            mmu_with_stalls(&p, &[(1.5, 2.5)], 2, 0.0, 10.0, 4.0),
            0.5
        ));
        // One mutator: a stall is a whole pause.
        assert!(close(
            mmu_with_stalls(&[], &[(1.0, 2.0)], 1, 0.0, 10.0, 1.0),
            0.0
        ));
        // Stalls outside the run are clipped; a window longer than the run gives the
        // whole-run utilisation.
        assert!(close(
            mmu_with_stalls(&[], &[(-5.0, 1.0)], 1, 0.0, 4.0, 8.0),
            0.75
        ));
    }

    #[test]
    fn mmu_matches_the_pause_only_mmu_of_the_driver() {
        use crate::collector::{Pause, PauseKind, Stats};
        use std::time::Duration;
        let ms = Duration::from_millis;
        let mut stats = Stats::default();
        for (start, len) in [(3, 2), (9, 1), (11, 4), (30, 6)] {
            stats.pauses.push(Pause {
                kind: PauseKind::Remark,
                cycle: 1,
                start: ms(start),
                duration: ms(len),
                time_to_safepoint: Duration::ZERO,
                collector_cpu: Duration::ZERO,
                marker_threads: 1,
            });
        }
        let pauses: Vec<(f64, f64)> = stats
            .pauses
            .iter()
            .map(|p| (p.start.as_secs_f64(), (p.start + p.duration).as_secs_f64()))
            .collect();
        for w in [1, 2, 5, 10, 20] {
            let ours = mmu_with_stalls(&pauses, &[], 1, 0.0, 0.05, w as f64 / 1e3);
            let theirs = mmu(&stats, ms(0), ms(50), ms(w));
            assert!(
                (ours - theirs).abs() < 1e-9,
                "window {w} ms: {ours} vs {theirs}"
            );
        }
    }
}
