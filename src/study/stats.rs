//! The study's statistics: medians, confidence intervals on ratios to a baseline (Student's
//! *t* over blocks, or a percentile bootstrap of a ratio of medians), the verdict a report
//! may draw from one, and minimum mutator utilisation over pauses *and* per-thread fault
//! stalls.
//!
//! A ratio of a variant to the baseline it ran beside depends on how the study ordered
//! its invocations ([`Design`]). A study that ran them in **blocks** (invocation `k` of
//! every variant of a point back to back) forms the ratio **pair by pair**: the
//! geometric mean over blocks of variant ÷ baseline in the same block, with Student's
//! *t* interval on the logarithms of those ratios ([`paired_t`]). The host's speed
//! moves by tens of percent over minutes on a shared machine, and a pair measured
//! seconds apart shares it: on 2026-12-07, six blocks of the LRU cache at 210 MiB gave
//! `none` 2,007–2,948 ms (1.47× from fastest to slowest) and the card table over `none`
//! 1.04–1.06 in five of the six pairs (1.20 in the sixth).
//!
//! Why *t* and not a bootstrap over blocks: a study has three to six blocks per point,
//! and a percentile bootstrap of a median over three values is close to their range,
//! which holds the true median only 75% of the time (1 − 2 × 2⁻³), not 95%. The *t*
//! interval keeps its 95% at any number of blocks when the log-ratios scatter normally,
//! and widens with their spread and with few blocks (×4.3 the standard error at three,
//! ×2.8 at five) rather than claiming a precision three values cannot give
//! (`the_t_interval_covers_95_percent_where_a_bootstrap_of_three_covers_less`). A
//! difference (the barrier-only *extra ms*) is the mean of the per-block differences
//! with the same interval on the differences themselves.
//!
//! Studies from before blocks, whose invocations ran in one random order, keep the
//! ratio of **medians**: each resample draws every group's invocations with replacement
//! (groups independently), takes the medians and forms the ratio again; that interval,
//! and a single group's median ([`median_ci`]), are the 2.5th and 97.5th percentiles of
//! [`RESAMPLES`] resampled statistics, seeded, so the same rows always give the same
//! interval. A report says "faster" or "slower" only when the interval excludes 1.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Minimum mutator utilisation over pauses and per-thread stalls: one implementation,
/// in the workload driver, shared with [`crate::workload::RunResult::mmu`].
pub use crate::workload::mmu_with_stalls;

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

/// How a study ordered its invocations, which decides how a ratio to a baseline is
/// formed (the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// Invocation `k` of every variant of a point ran in one block, back to back (in a
    /// random order inside it): variant and baseline are paired by `k`.
    Blocks,
    /// All invocations in one random order: no pairs, ratios of medians.
    Shuffled,
}

/// `f(num, den)` for every invocation number present in both (`(invocation, value)`
/// pairs), in `num`'s order; non-finite results (a zero baseline) are left out.
pub fn paired(num: &[(usize, f64)], den: &[(usize, f64)], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    num.iter()
        .filter_map(|&(k, a)| {
            let &(_, b) = den.iter().find(|&&(j, _)| j == k)?;
            Some(f(a, b)).filter(|v| v.is_finite())
        })
        .collect()
}

fn values(v: &[(usize, f64)]) -> Vec<f64> {
    v.iter().map(|&(_, x)| x).collect()
}

/// The two-sided 95% quantile of Student's *t* with `df` degrees of freedom (a table
/// to 30; beyond, the normal quantile plus its first correction, within 0.003 of the
/// exact value).
pub(crate) fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => 1.96 + 2.372 / df as f64,
    }
}

/// The mean of `values` with Student's *t* 95% interval (mean ± t × s / √n); `None`
/// with fewer than two values (one value says nothing about its spread) or a
/// non-finite one.
pub fn mean_t(values: &[f64]) -> Option<Interval> {
    let n = values.len();
    if n < 2 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t_975(n - 1) * (var / n as f64).sqrt();
    Some(Interval {
        estimate: mean,
        lo: mean - half,
        hi: mean + half,
    })
}

/// The geometric mean of positive `ratios` with the *t* interval of their logarithms,
/// mapped back: the paired ratio of [`Design::Blocks`]. `None` as [`mean_t`], or when a
/// ratio is not positive.
pub fn paired_t(ratios: &[f64]) -> Option<Interval> {
    if ratios.iter().any(|&r| r.is_nan() || r <= 0.0) {
        return None;
    }
    let logs: Vec<f64> = ratios.iter().map(|r| r.ln()).collect();
    let i = mean_t(&logs)?;
    Some(Interval {
        estimate: i.estimate.exp(),
        lo: i.lo.exp(),
        hi: i.hi.exp(),
    })
}

/// `num` over `den` with its interval: under [`Design::Blocks`] [`paired_t`] of the
/// per-block ratios; under [`Design::Shuffled`] [`ratio_of_medians`].
pub fn ratio_to(
    design: Design,
    num: &[(usize, f64)],
    den: &[(usize, f64)],
    seed: u64,
) -> Option<Interval> {
    match design {
        Design::Blocks => paired_t(&paired(num, den, |a, b| a / b)),
        Design::Shuffled => ratio_of_medians(&values(num), &values(den), seed),
    }
}

/// `num` less `den` with its interval: under [`Design::Blocks`] [`mean_t`] of the
/// per-block differences; under [`Design::Shuffled`] the difference of the medians,
/// each group resampled alone.
pub fn difference_to(
    design: Design,
    num: &[(usize, f64)],
    den: &[(usize, f64)],
    seed: u64,
) -> Option<Interval> {
    match design {
        Design::Blocks => mean_t(&paired(num, den, |a, b| a - b)),
        Design::Shuffled => bootstrap(&[&values(num), &values(den)], seed, |m| m[0] - m[1]),
    }
}

/// median(num) / median(den) with its interval.
pub fn ratio_of_medians(num: &[f64], den: &[f64], seed: u64) -> Option<Interval> {
    bootstrap(&[num, den], seed, |m| m[0] / m[1])
}

/// The median of `values` with its interval.
pub fn median_ci(values: &[f64], seed: u64) -> Option<Interval> {
    bootstrap(&[values], seed, |m| m[0])
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Numbered values: invocation `k` is the `k`th.
    fn numbered(v: &[f64]) -> Vec<(usize, f64)> {
        v.iter().copied().enumerate().collect()
    }

    #[test]
    fn blocks_cancel_the_hosts_drift_that_a_ratio_of_medians_keeps() {
        // The host slows down block by block; the variant is 5% slower in every block.
        let none = [2000.0, 2400.0, 2900.0, 2100.0, 2600.0];
        let variant: Vec<f64> = none.iter().map(|x| x * 1.05).collect();
        let (v, n) = (numbered(&variant), numbered(&none));
        let paired = ratio_to(Design::Blocks, &v, &n, 7).unwrap();
        assert!((paired.estimate - 1.05).abs() < 1e-9, "{paired:?}");
        assert!((paired.lo - 1.05).abs() < 1e-9 && (paired.hi - 1.05).abs() < 1e-9);
        assert_eq!(paired.time_verdict(), "slower");
        // The same values unpaired: the drift hides the difference.
        let shuffled = ratio_to(Design::Shuffled, &v, &n, 7).unwrap();
        assert!(shuffled.lo < 1.0 && shuffled.hi > 1.1, "{shuffled:?}");
        assert_eq!(shuffled.time_verdict(), "no difference measured");
        // Differences 100, 120, 145, 105, 130 ms: mean 120, s = √337.5, t₄ = 2.776.
        let d = difference_to(Design::Blocks, &v, &n, 7).unwrap();
        let half = 2.776 * (337.5f64 / 5.0).sqrt();
        assert!((d.estimate - 120.0).abs() < 1e-9, "{d:?}");
        assert!(
            (d.lo - (120.0 - half)).abs() < 1e-9 && (d.hi - (120.0 + half)).abs() < 1e-9,
            "{d:?}"
        );
    }

    /// Normal deviates (Box–Muller), for the coverage test.
    fn normal(rng: &mut SmallRng) -> f64 {
        let u: f64 = 1.0 - rng.random::<f64>();
        let v: f64 = rng.random();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    #[test]
    fn the_t_interval_covers_95_percent_where_a_bootstrap_of_three_covers_less() {
        // A barrier 8% slower, each block's log-ratio scattered by 10%: how often does
        // each interval hold the true ratio, over many simulated studies?
        let truth = 1.08f64;
        let mut rng = SmallRng::seed_from_u64(11);
        let trials = 4000;
        for blocks in [3, 5] {
            let mut held = 0;
            for _ in 0..trials {
                let r: Vec<f64> = (0..blocks)
                    .map(|_| (truth.ln() + 0.1 * normal(&mut rng)).exp())
                    .collect();
                let i = paired_t(&r).unwrap();
                held += usize::from(i.lo <= truth && truth <= i.hi);
            }
            let share = held as f64 / trials as f64;
            assert!((0.93..=0.97).contains(&share), "{blocks} blocks: {share}");
        }
        // The percentile bootstrap of the median of three: about 1 − 2 × 2⁻³ = 75%.
        let mut held = 0;
        let trials = 1000;
        for t in 0..trials {
            let r: Vec<f64> = (0..3)
                .map(|_| (truth.ln() + 0.1 * normal(&mut rng)).exp())
                .collect();
            let i = median_ci(&r, t).unwrap();
            held += usize::from(i.lo <= truth && truth <= i.hi);
        }
        let share = held as f64 / trials as f64;
        assert!(
            (0.70..=0.80).contains(&share),
            "bootstrap of three: {share}"
        );
    }

    #[test]
    fn t_intervals_need_two_values_and_positive_ratios() {
        assert!(mean_t(&[1.0]).is_none());
        assert!(paired_t(&[1.1, 0.0]).is_none());
        assert!(paired_t(&[1.1, f64::NAN]).is_none());
        // Two values: t₁ = 12.706 times the standard error.
        let i = mean_t(&[1.0, 3.0]).unwrap();
        assert_eq!(i.estimate, 2.0);
        assert!((i.hi - (2.0 + 12.706)).abs() < 1e-9, "{i:?}");
        // The quantile falls toward 1.96 with many values, and stays above it.
        assert!(t_975(31) < t_975(30) && t_975(1000) > 1.96 && t_975(1000) < 1.963);
    }

    #[test]
    fn pairs_are_matched_by_invocation_and_an_unmatched_value_is_left_out() {
        // Invocation 1 of the baseline failed (no value), invocation 3 of the variant.
        let variant = [(0, 110.0), (1, 500.0), (2, 220.0)];
        let none = [(0, 100.0), (2, 200.0), (3, 50.0)];
        assert_eq!(paired(&variant, &none, |a, b| a / b), vec![1.1, 1.1]);
        // A zero baseline gives no ratio rather than an infinite one.
        assert!(paired(&[(0, 1.0)], &[(0, 0.0)], |a, b| a / b).is_empty());
        assert!(ratio_to(Design::Blocks, &[(0, 1.0)], &[(1, 1.0)], 7).is_none());
    }
}
