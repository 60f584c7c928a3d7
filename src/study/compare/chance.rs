//! How often runs of the same size would give the same verdict by chance alone.
//!
//! Two runs of a study judge each (point, variant, metric) from a few blocks each, and a
//! cost near the size the blocks can resolve is stated in one run and not in the other
//! even when both intervals are honest. Whether the verdicts that differ between runs are
//! more than that is the question `compare` answers here: for every verdict judged in
//! every run, it takes the spread of the blocks' log-ratios the runs measured (pooled over
//! the runs, weighted by their degrees of freedom) and their mean ratio as the true one,
//! and simulates runs with as many blocks as each had ([`Spread`]), judging each as
//! `compare` judges a run alone (Student's *t* interval on the log-ratios, a difference
//! only beyond 1 by [`MARGIN`](super::MARGIN)). The sum over the verdicts of the chance
//! that every simulated run agrees is the agreement to expect; the same simulation with
//! more blocks says how many a run would need for 90% of its verdicts to repeat.
//!
//! The plug-in truth (the runs' mean) is an estimate: a verdict is a coin flip where the
//! true cost sits at the edge of what the blocks resolve (its interval's near end at the
//! margin), and a cost just beyond the margin needs many blocks to be stated every
//! time; the estimate cannot say exactly where a true cost lies. Runs formed without blocks (older studies) have no per-block spread,
//! and nothing is estimated for them.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Agreement, side};
use crate::study::stats::{Interval, seed_for, t_975};

/// One run's blocks of a (point, variant, metric): how many, and the standard deviation
/// of their log-ratios to `none`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Blocks (paired invocations).
    pub blocks: usize,
    /// Sample standard deviation of the blocks' `ln(variant / none)`.
    pub sd: f64,
}

impl Spread {
    /// The spread of paired ratios `ratios` (variant ÷ `none`, one per block); `None`
    /// with fewer than two or any not positive and finite.
    pub fn of(ratios: &[f64]) -> Option<Spread> {
        if ratios.len() < 2 || ratios.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
            return None;
        }
        let logs: Vec<f64> = ratios.iter().map(|r| r.ln()).collect();
        let n = logs.len() as f64;
        let mean = logs.iter().sum::<f64>() / n;
        let var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1.0);
        Some(Spread {
            blocks: logs.len(),
            sd: var.sqrt(),
        })
    }
}

/// What the simulation expects of runs like these.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chance {
    /// Verdicts simulated: those judged in every run.
    pub verdicts: usize,
    /// The expected number of them with the same verdict in every run, at the runs' own
    /// numbers of blocks.
    pub expected_same: f64,
    /// The fewest blocks per run (of [`TRIED_BLOCKS`]) at which 90% of the verdicts are
    /// expected to repeat; `None` if not even the largest reaches it.
    pub blocks_for_90: Option<usize>,
}

/// The block counts tried for [`Chance::blocks_for_90`].
pub const TRIED_BLOCKS: [usize; 13] = [3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64];

/// Simulated sets of runs per verdict and block count.
const DRAWS: usize = 400;

/// The expected agreement of the judged verdicts of `a` (see the module docs), or `None`
/// where a judged verdict lacks a run's spread (a run without blocks) or nothing was
/// judged.
pub fn expected(a: &[Agreement]) -> Option<Chance> {
    let judged: Vec<&Agreement> = a
        .iter()
        .filter(|x| !x.statement.starts_with("not "))
        .collect();
    if judged.is_empty() {
        return None;
    }
    let models = judged
        .iter()
        .map(|x| Model::of(x))
        .collect::<Option<Vec<Model>>>()?;
    let share =
        |blocks: Option<usize>| -> f64 { models.iter().map(|m| m.same_share(blocks)).sum::<f64>() };
    let expected_same = share(None);
    let blocks_for_90 = TRIED_BLOCKS
        .into_iter()
        .find(|&b| share(Some(b)) >= 0.9 * models.len() as f64);
    Some(Chance {
        verdicts: models.len(),
        expected_same,
        blocks_for_90,
    })
}

/// One verdict's model: the true log-ratio and spread, and each run's blocks.
struct Model {
    mean: f64,
    sd: f64,
    blocks: Vec<usize>,
    seed: u64,
}

impl Model {
    fn of(x: &Agreement) -> Option<Model> {
        let ratios: Vec<&Interval> = x
            .ratios
            .iter()
            .map(Option::as_ref)
            .collect::<Option<Vec<_>>>()?;
        let spreads: Vec<Spread> = x.spreads.iter().copied().collect::<Option<Vec<_>>>()?;
        if ratios
            .iter()
            .any(|r| !(r.estimate.is_finite() && r.estimate > 0.0))
        {
            return None;
        }
        let mean = ratios.iter().map(|r| r.estimate.ln()).sum::<f64>() / ratios.len() as f64;
        let df: f64 = spreads.iter().map(|s| (s.blocks - 1) as f64).sum();
        let var = spreads
            .iter()
            .map(|s| (s.blocks - 1) as f64 * s.sd * s.sd)
            .sum::<f64>()
            / df;
        Some(Model {
            mean,
            sd: var.sqrt(),
            blocks: spreads.iter().map(|s| s.blocks).collect(),
            seed: seed_for(0, &format!("{}/{}/{}", x.point, x.tracker, x.metric)),
        })
    }

    /// The share of [`DRAWS`] simulated sets of runs (each with its own blocks, or
    /// `blocks` each) whose verdicts all agree.
    fn same_share(&self, blocks: Option<usize>) -> f64 {
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let same = (0..DRAWS)
            .filter(|_| {
                let mut verdicts = self
                    .blocks
                    .iter()
                    .map(|&own| self.verdict(blocks.unwrap_or(own), &mut rng));
                let first = verdicts.next();
                verdicts.all(|v| Some(v) == first)
            })
            .count();
        same as f64 / DRAWS as f64
    }

    /// One simulated run's verdict from `n` blocks.
    fn verdict(&self, n: usize, rng: &mut SmallRng) -> Option<std::cmp::Ordering> {
        let logs: Vec<f64> = (0..n).map(|_| self.mean + self.sd * normal(rng)).collect();
        let m = logs.iter().sum::<f64>() / n as f64;
        let var = logs.iter().map(|l| (l - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = t_975(n - 1) * (var / n as f64).sqrt();
        side(&Interval {
            estimate: m.exp(),
            lo: (m - half).exp(),
            hi: (m + half).exp(),
        })
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut SmallRng) -> f64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// The share of estimates expected outside another run's interval, over the checks
/// `compare` counts (every (point, variant, metric) with an interval in every run, every
/// ordered pair of runs), if every interval were honest and every run measured the same
/// true ratio: run *i*'s log-estimate lies outside run *j*'s *t* interval when
/// `|Z| · σ · √(1/nᵢ + 1/nⱼ) > t(nⱼ − 1) · sⱼ / √nⱼ`, with `sⱼ / σ` distributed as
/// `√(χ²(nⱼ − 1) / (nⱼ − 1))`; σ cancels, so it depends on the blocks alone, and is
/// simulated per pair of block counts (about 9% at three blocks each, 12% at five, 17%
/// at many). `None` where a check lacks a run's blocks, or there is no check.
pub fn expected_outside(a: &[Agreement]) -> Option<f64> {
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for x in a.iter().filter(|x| x.ratios.iter().all(Option::is_some)) {
        let blocks: Vec<usize> = (x.spreads.iter())
            .map(|s| s.map(|s| s.blocks))
            .collect::<Option<Vec<_>>>()?;
        for (i, &own) in blocks.iter().enumerate() {
            for (j, &other) in blocks.iter().enumerate() {
                if i != j {
                    pairs.push((own, other));
                }
            }
        }
    }
    if pairs.is_empty() {
        return None;
    }
    let mut shares: Vec<((usize, usize), f64)> = Vec::new();
    let mut sum = 0.0;
    for &pair in &pairs {
        let share = match shares.iter().find(|(p, _)| *p == pair) {
            Some(&(_, share)) => share,
            None => {
                let share = outside_share(pair.0, pair.1);
                shares.push((pair, share));
                share
            }
        };
        sum += share;
    }
    Some(sum / pairs.len() as f64)
}

/// Simulated draws per pair of block counts in [`expected_outside`].
const OUTSIDE_DRAWS: usize = 20_000;

/// The chance that an estimate from `own` blocks lies outside the *t* interval of a run
/// of `other` blocks with the same truth and spread (see [`expected_outside`]).
fn outside_share(own: usize, other: usize) -> f64 {
    let mut rng = SmallRng::seed_from_u64(seed_for(0, &format!("outside/{own}/{other}")));
    let df = other - 1;
    let spread = (1.0 / own as f64 + 1.0 / other as f64).sqrt();
    let t = t_975(df) / (other as f64).sqrt();
    let outside = (0..OUTSIDE_DRAWS)
        .filter(|_| {
            let chi2: f64 = (0..df).map(|_| normal(&mut rng).powi(2)).sum();
            normal(&mut rng).abs() * spread > t * (chi2 / df as f64).sqrt()
        })
        .count();
    outside as f64 / OUTSIDE_DRAWS as f64
}

/// The sentence `compare` prints after its counts.
pub fn sentence(c: Option<Chance>) -> String {
    let Some(c) = c else {
        return "By chance alone: not estimated (a run formed its ratios without blocks, \
                so its spread between blocks is unknown).\n"
            .to_string();
    };
    let need = match c.blocks_for_90 {
        Some(b) => format!("about {b} blocks per point"),
        None => format!("more than {} blocks per point", TRIED_BLOCKS[12]),
    };
    format!(
        "By chance alone: with the spread between blocks these runs measured (pooled per \
         verdict, their mean ratio taken as the true one), runs with as many blocks would \
         give the same verdict for about {:.0} of {} ({:.0}%); 90% would need {need}.\n",
        c.expected_same,
        c.verdicts,
        100.0 * c.expected_same / c.verdicts.max(1) as f64
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::data::Metric;

    fn agreement(estimate: f64, sd: f64, blocks: usize) -> Agreement {
        let r = Interval {
            estimate,
            lo: estimate,
            hi: estimate,
        };
        Agreement {
            point: format!("w x1 heap #{estimate}"),
            tracker: "mprotect".into(),
            metric: Metric::WallMs,
            ratios: vec![Some(r), Some(r)],
            spreads: vec![Some(Spread { blocks, sd }); 2],
            statement: "no difference stated".into(),
            same_in_every_run: true,
        }
    }

    #[test]
    fn a_large_cost_with_little_spread_repeats_and_one_at_the_edge_does_not() {
        let clear = expected(&[agreement(1.5, 0.02, 3)]).unwrap();
        assert!(clear.expected_same > 0.99, "{clear:?}");
        assert_eq!(clear.blocks_for_90, Some(3));
        // Five blocks of spread 0.05: the interval's half-width is about 0.062 in log, so
        // a true ratio of 1.05 × e^0.062 has its interval's lower end at the margin, and
        // each run states it about half the time.
        let edge = expected(&[agreement(1.05 * 0.062f64.exp(), 0.05, 5)]).unwrap();
        assert!((0.35..0.75).contains(&edge.expected_same), "{edge:?}");
        assert!(edge.blocks_for_90.unwrap() > 5, "{edge:?}");
        // At the margin itself a run states a difference only when its interval errs
        // (about 2.5%): "no difference" repeats.
        let at = expected(&[agreement(1.05, 0.05, 5)]).unwrap();
        assert!(at.expected_same > 0.9, "{at:?}");
    }

    #[test]
    fn more_spread_needs_more_blocks() {
        let tight = expected(&[agreement(1.25, 0.05, 3)]).unwrap();
        let loose = expected(&[agreement(1.25, 0.20, 3)]).unwrap();
        let (t, l) = (tight.blocks_for_90.unwrap(), loose.blocks_for_90.unwrap());
        assert!(t < l, "{tight:?} {loose:?}");
    }

    #[test]
    fn runs_without_blocks_or_unjudged_verdicts_are_not_estimated() {
        let mut x = agreement(1.3, 0.1, 3);
        x.spreads[1] = None;
        assert_eq!(expected(&[x]), None);
        assert!(sentence(None).contains("not estimated"));
        let mut y = agreement(1.3, 0.1, 3);
        y.statement = "not judged (stalls)".into();
        assert_eq!(expected(&[y]), None);
    }

    #[test]
    fn estimates_fall_outside_honest_intervals_less_often_with_fewer_blocks() {
        // Analytic limits: with many blocks each, |Z|·√2 > 1.96, 16.5%; with three, the
        // t interval's width brings it near 9%.
        let share = |n| expected_outside(&[agreement(1.2, 0.1, n)]).unwrap();
        let (three, five, many) = (share(3), share(5), share(200));
        assert!((0.07..0.11).contains(&three), "{three}");
        assert!((0.10..0.14).contains(&five), "{five}");
        assert!((0.15..0.18).contains(&many), "{many}");
        // A run without blocks: not estimated.
        let mut x = agreement(1.2, 0.1, 3);
        x.spreads[1] = None;
        assert_eq!(expected_outside(&[x]), None);
        assert_eq!(expected_outside(&[]), None);
    }

    #[test]
    fn a_spread_needs_two_positive_ratios() {
        assert_eq!(Spread::of(&[1.2]), None);
        assert_eq!(Spread::of(&[1.2, 0.0]), None);
        let s = Spread::of(&[1.0, std::f64::consts::E]).unwrap();
        assert_eq!(s.blocks, 2);
        assert!(
            (s.sd - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12,
            "{s:?}"
        );
    }
}
