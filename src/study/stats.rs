//! The study's statistics: medians, percentile-bootstrap confidence intervals on ratios
//! of medians, the verdict a report may draw from one, and minimum mutator utilisation
//! over pauses *and* per-thread fault stalls.
//!
//! Every ratio the report states is a ratio of **medians** over invocations, with a 95%
//! percentile-bootstrap interval: each resample draws every group's invocations with
//! replacement (groups independently), takes the medians, and forms the ratio again;
//! the interval is the 2.5th and 97.5th percentiles of [`RESAMPLES`] such ratios. The
//! resampling is seeded, so the same rows always give the same interval. A report says
//! "faster" or "slower" only when the interval excludes 1.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 2000;

/// The median of some values (mean of the two middle ones for an even count); NaN when
/// empty.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// An estimate with its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The statistic on the data as measured.
    pub estimate: f64,
    /// 2.5th percentile of the bootstrap distribution.
    pub lo: f64,
    /// 97.5th percentile.
    pub hi: f64,
}

impl Interval {
    /// Whether the interval lies wholly above (`Greater`) or below (`Less`) `x`, or
    /// contains it (`None`).
    pub fn beside(&self, x: f64) -> Option<std::cmp::Ordering> {
        if self.lo > x {
            Some(std::cmp::Ordering::Greater)
        } else if self.hi < x {
            Some(std::cmp::Ordering::Less)
        } else {
            None
        }
    }

    /// The verdict on a time ratio (variant / baseline): "slower" when the interval lies
    /// above 1, "faster" below, "no difference measured" when it contains 1.
    pub fn time_verdict(&self) -> &'static str {
        match self.beside(1.0) {
            Some(std::cmp::Ordering::Greater) => "slower",
            Some(std::cmp::Ordering::Less) => "faster",
            _ => "no difference measured",
        }
    }
}

/// A seed from a key, so that every interval has its own stream (FNV-1a).
pub fn seed_for(seed: u64, key: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn resample(rng: &mut SmallRng, values: &[f64], buf: &mut Vec<f64>) {
    buf.clear();
    buf.extend((0..values.len()).map(|_| values[rng.random_range(0..values.len())]));
}

/// The 95% percentile-bootstrap interval of `stat` over `groups` (each group's values
/// resampled with replacement, independently); `None` when a group is empty or the
/// statistic is not finite on the data.
pub fn bootstrap(groups: &[&[f64]], seed: u64, stat: impl Fn(&[f64]) -> f64) -> Option<Interval> {
    bootstrap_groups(groups, seed, |medians: &[Vec<f64>]| {
        stat(&medians.iter().map(|g| median(g)).collect::<Vec<_>>())
    })
}

/// Like [`bootstrap`], with a statistic of the resampled groups themselves.
pub fn bootstrap_groups(
    groups: &[&[f64]],
    seed: u64,
    stat: impl Fn(&[Vec<f64>]) -> f64,
) -> Option<Interval> {
    if groups.is_empty() || groups.iter().any(|g| g.is_empty()) {
        return None;
    }
    let data: Vec<Vec<f64>> = groups.iter().map(|g| g.to_vec()).collect();
    let estimate = stat(&data);
    if !estimate.is_finite() {
        return None;
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut bufs: Vec<Vec<f64>> = vec![Vec::new(); groups.len()];
    let mut stats: Vec<f64> = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        for (g, buf) in groups.iter().zip(bufs.iter_mut()) {
            resample(&mut rng, g, buf);
        }
        let s = stat(&bufs);
        if s.is_finite() {
            stats.push(s);
        }
    }
    if stats.len() < RESAMPLES / 2 {
        return None;
    }
    stats.sort_by(f64::total_cmp);
    let at = |q: f64| stats[((q * (stats.len() - 1) as f64).round() as usize).min(stats.len() - 1)];
    Some(Interval {
        estimate,
        lo: at(0.025),
        hi: at(0.975),
    })
}

/// The share of `n` bootstrap resamples of `groups` on which `stat` is finite (how often
/// a statistic that may not exist, such as a crossing point, exists).
pub fn finite_share(
    groups: &[&[f64]],
    seed: u64,
    n: usize,
    stat: impl Fn(&[Vec<f64>]) -> f64,
) -> f64 {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut bufs: Vec<Vec<f64>> = vec![Vec::new(); groups.len()];
    let mut finite = 0;
    for _ in 0..n {
        for (g, buf) in groups.iter().zip(bufs.iter_mut()) {
            resample(&mut rng, g, buf);
        }
        if stat(&bufs).is_finite() {
            finite += 1;
        }
    }
    finite as f64 / n.max(1) as f64
}

/// median(num) / median(den) with its interval.
pub fn ratio_of_medians(num: &[f64], den: &[f64], seed: u64) -> Option<Interval> {
    bootstrap(&[num, den], seed, |m| m[0] / m[1])
}

/// The median of `values` with its interval.
pub fn median_ci(values: &[f64], seed: u64) -> Option<Interval> {
    bootstrap(&[values], seed, |m| m[0])
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
    fn medians_and_intervals() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        // Constant data: the interval collapses on the estimate.
        let i = ratio_of_medians(&[2.0; 10], &[1.0; 10], 7).unwrap();
        assert_eq!((i.estimate, i.lo, i.hi), (2.0, 2.0, 2.0));
        assert_eq!(i.time_verdict(), "slower");
        // Overlapping samples: no difference.
        let a = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.02, 0.98, 1.01, 0.99];
        let b = [1.0, 1.08, 0.92, 1.04, 0.96, 1.01, 1.0, 0.97, 1.03, 0.99];
        let i = ratio_of_medians(&a, &b, 7).unwrap();
        assert!(i.lo < 1.0 && i.hi > 1.0, "{i:?}");
        assert_eq!(i.time_verdict(), "no difference measured");
        // Clearly separated: faster, and the estimate lies inside its interval.
        let c: Vec<f64> = a.iter().map(|x| x * 0.5).collect();
        let i = ratio_of_medians(&c, &b, 7).unwrap();
        assert!(
            i.lo <= i.estimate && i.estimate <= i.hi && i.hi < 1.0,
            "{i:?}"
        );
        assert_eq!(i.time_verdict(), "faster");
        // Seeded: the same data give the same interval; an empty group gives none.
        assert_eq!(ratio_of_medians(&a, &b, 7), ratio_of_medians(&a, &b, 7));
        assert!(ratio_of_medians(&a, &[], 7).is_none());
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
            let theirs = crate::workload::mmu(&stats, ms(0), ms(50), ms(w));
            assert!(
                (ours - theirs).abs() < 1e-9,
                "window {w} ms: {ours} vs {theirs}"
            );
        }
    }
}
