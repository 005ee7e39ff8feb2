//! Bootstrap confidence intervals for comparing runs.

use serde::{Deserialize, Serialize};
use spectrum_suite::Rng;

/// Resamples per interval.
pub const RESAMPLES: usize = 2000;

/// A difference (candidate minus baseline) with its 95% percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Interval {
    pub diff: f64,
    pub lo: f64,
    pub hi: f64,
    /// Units (paired sequences or items; samples per run when unpaired).
    pub n: usize,
}

/// Whether the candidate is better than the baseline, by the interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Win,
    Tie,
    Loss,
}

impl Verdict {
    /// The serde spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Win => "win",
            Verdict::Tie => "tie",
            Verdict::Loss => "loss",
        }
    }
}

impl Interval {
    /// Win when the whole interval lies on the better side of 0, loss when it
    /// lies on the worse side, tie otherwise.
    pub fn verdict(&self, lower_is_better: bool) -> Verdict {
        let (better, worse) = if lower_is_better {
            (self.hi < 0.0, self.lo > 0.0)
        } else {
            (self.lo > 0.0, self.hi < 0.0)
        };
        match (better, worse) {
            (true, _) => Verdict::Win,
            (_, true) => Verdict::Loss,
            _ => Verdict::Tie,
        }
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn interval(diff: f64, mut draws: Vec<f64>, n: usize) -> Interval {
    draws.sort_by(f64::total_cmp);
    Interval {
        diff,
        lo: percentile(&draws, 0.025),
        hi: percentile(&draws, 0.975),
        n,
    }
}

/// Paired bootstrap of the mean of per-unit differences `diffs`
/// (candidate - baseline on the same sequence or item).
pub fn paired(diffs: &[f64], seed: u64) -> Option<Interval> {
    let n = diffs.len();
    if n == 0 {
        return None;
    }
    let mut rng = Rng::new(seed);
    let draws = (0..RESAMPLES)
        .map(|_| {
            (0..n)
                .map(|_| diffs[rng.below(n as u64) as usize])
                .sum::<f64>()
                / n as f64
        })
        .collect();
    Some(interval(diffs.iter().sum::<f64>() / n as f64, draws, n))
}

/// Unpaired bootstrap of `stat(candidate) - stat(baseline)`, each resampled on
/// its own (samples of two runs are independent draws). A count of distinct
/// strings (yield) shrinks when samples are drawn with replacement, which
/// would put the whole interval below the observed difference; so the draws
/// are scaled by observed / mean of the draws. Scaling never changes a draw's
/// sign, so the verdict is that of the plain percentile interval (for a yield
/// difference, a conservative one), and means are left as they are.
pub fn unpaired<T>(
    baseline: &[T],
    candidate: &[T],
    stat: impl Fn(&[&T]) -> f64,
    seed: u64,
) -> Option<Interval> {
    if baseline.is_empty() || candidate.is_empty() {
        return None;
    }
    let mut rng = Rng::new(seed);
    let draw = |xs: &[T], rng: &mut Rng| -> f64 {
        let pick: Vec<&T> = (0..xs.len())
            .map(|_| &xs[rng.below(xs.len() as u64) as usize])
            .collect();
        stat(&pick)
    };
    let mut draws: Vec<f64> = (0..RESAMPLES)
        .map(|_| draw(candidate, &mut rng) - draw(baseline, &mut rng))
        .collect();
    let all = |xs: &[T]| stat(&xs.iter().collect::<Vec<_>>());
    let observed = all(candidate) - all(baseline);
    let mean = draws.iter().sum::<f64>() / RESAMPLES as f64;
    let scale = observed / mean;
    if scale.is_finite() && scale > 0.0 {
        for d in &mut draws {
            *d *= scale;
        }
    }
    Some(interval(observed, draws, candidate.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_difference_is_a_win_noise_is_a_tie() {
        let better: Vec<f64> = (0..50).map(|i| -1.0 + 0.01 * (i % 5) as f64).collect();
        let i = paired(&better, 1).expect("interval");
        assert!(i.hi < 0.0 && (i.diff + 0.98).abs() < 1e-9);
        assert_eq!(i.verdict(true), Verdict::Win);
        assert_eq!(i.verdict(false), Verdict::Loss);
        let noise: Vec<f64> = (0..50)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert_eq!(
            paired(&noise, 1).expect("interval").verdict(true),
            Verdict::Tie
        );
        assert_eq!(paired(&[], 1), None);
    }

    #[test]
    fn unpaired_bootstrap_of_a_statistic() {
        let a = vec![0.0; 40];
        let b: Vec<f64> = (0..40).map(|i| (i % 2) as f64).collect();
        let mean = |xs: &[&f64]| xs.iter().copied().sum::<f64>() / xs.len() as f64;
        let i = unpaired(&a, &b, mean, 3).expect("interval");
        assert!((i.diff - 0.5).abs() < 1e-12);
        assert!(i.lo > 0.2 && i.hi < 0.8, "{i:?}");
        assert_eq!(i.verdict(false), Verdict::Win);
    }

    #[test]
    fn a_count_of_distinct_values_stays_inside_its_interval() {
        // 32 distinct strings against 16 repeated twice: resampling shrinks both
        // counts, the shifted interval still holds the observed difference.
        let a: Vec<u32> = (0..32).map(|i| i / 2).collect();
        let b: Vec<u32> = (0..32).collect();
        let distinct =
            |xs: &[&u32]| xs.iter().collect::<std::collections::HashSet<_>>().len() as f64;
        let i = unpaired(&a, &b, distinct, 5).expect("interval");
        assert_eq!(i.diff, 16.0);
        assert!(i.lo < 16.0 && 16.0 < i.hi, "{i:?}");
        // One valid sample against none is not a win.
        let none = vec![false; 32];
        let one: Vec<bool> = (0..32).map(|i| i == 0).collect();
        let valid = |xs: &[&bool]| xs.iter().filter(|v| ***v).count().min(1) as f64;
        let i = unpaired(&none, &one, valid, 5).expect("interval");
        assert_eq!(i.verdict(false), Verdict::Tie, "{i:?}");
    }
}
