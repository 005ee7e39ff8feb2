//! Pure metric functions of METHOD.md §4, exactly as defined there. Natural
//! logarithms throughout. Tested against hand-computed values here and against
//! SciPy on random inputs (`tests/scipy.rs`, recorded by
//! `scripts/record_metric_reference.py`).

use serde::{Deserialize, Serialize};

/// The smoothing added to both distributions before comparing them.
pub const SMOOTHING: f64 = 1e-6;

/// `p` normalised to sum to one after adding [`SMOOTHING`] to every entry.
pub fn smooth(p: &[f64]) -> Vec<f64> {
    let total: f64 = p.iter().map(|&x| x + SMOOTHING).sum();
    p.iter().map(|&x| (x + SMOOTHING) / total).collect()
}

/// Kullback-Leibler divergence KL(p || q) = sum p ln(p / q); terms with p = 0 count 0.
pub fn kl(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .filter(|(pi, _)| **pi > 0.0)
        .map(|(&pi, &qi)| pi * (pi / qi).ln())
        .sum()
}

/// Jensen-Shannon divergence (natural log; in [0, ln 2]). Note: SciPy's
/// `jensenshannon` returns its square root, the JS *distance*.
pub fn js(p: &[f64], q: &[f64]) -> f64 {
    let m: Vec<f64> = p.iter().zip(q).map(|(a, b)| 0.5 * (a + b)).collect();
    0.5 * kl(p, &m) + 0.5 * kl(q, &m)
}

/// Total variation distance: half the L1 distance.
pub fn total_variation(p: &[f64], q: &[f64]) -> f64 {
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

/// Cross-entropy H(p, q) = -sum p ln q.
pub fn cross_entropy(p: &[f64], q: &[f64]) -> f64 {
    -p.iter()
        .zip(q)
        .filter(|(pi, _)| **pi > 0.0)
        .map(|(&pi, &qi)| pi * qi.ln())
        .sum::<f64>()
}

/// Wasserstein-1 distance between two distributions over ordered options at
/// unit spacing (positions 0, 1, 2...): the L1 distance of the CDFs.
pub fn wasserstein1(p: &[f64], q: &[f64]) -> f64 {
    let (mut cp, mut cq, mut total) = (0.0, 0.0, 0.0);
    for (a, b) in p.iter().zip(q).take(p.len().saturating_sub(1)) {
        cp += a;
        cq += b;
        total += (cp - cq).abs();
    }
    total
}

/// Index of the largest entry (the first one on ties).
pub fn argmax(p: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in p.iter().enumerate() {
        if x > p[best] {
            best = i;
        }
    }
    best
}

/// Everything METHOD.md §4.2 reports for one distributional item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Alignment {
    /// Option probabilities before normalising: p(o) = exp(sum of token log-probs).
    pub p: Vec<f64>,
    /// Mass on the valid options: sum of `p`.
    pub coverage: f64,
    /// The model distribution p / coverage.
    pub q: Vec<f64>,
    /// JS(target, q) after smoothing, natural log.
    pub js: f64,
    /// KL(target || q) after smoothing.
    pub kl: f64,
    /// KL(q || target) after smoothing.
    pub reverse_kl: f64,
    pub tv: f64,
    /// H(target, q) after smoothing.
    pub cross_entropy: f64,
    /// Whether the most likely option of the model is the target's.
    pub mode_match: bool,
    /// Wasserstein-1 over option positions, for ordinal options only.
    pub wasserstein: Option<f64>,
}

/// Compares the model's option log-probabilities with a target distribution.
/// `q` is computed in log space, so options whose probabilities underflow
/// still get a distribution.
pub fn alignment(option_logprobs: &[f64], target: &[f64], ordinal: bool) -> Alignment {
    let p: Vec<f64> = option_logprobs.iter().map(|l| l.exp()).collect();
    let max = option_logprobs
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let scaled: Vec<f64> = option_logprobs.iter().map(|l| (l - max).exp()).collect();
    let z: f64 = scaled.iter().sum();
    let q: Vec<f64> = scaled.iter().map(|x| x / z).collect();
    let (qs, ts) = (smooth(&q), smooth(target));
    Alignment {
        coverage: p.iter().sum(),
        js: js(&ts, &qs),
        kl: kl(&ts, &qs),
        reverse_kl: kl(&qs, &ts),
        tv: total_variation(&ts, &qs),
        cross_entropy: cross_entropy(&ts, &qs),
        mode_match: argmax(&q) == argmax(target),
        wasserstein: ordinal.then(|| wasserstein1(&ts, &qs)),
        p,
        q,
    }
}

/// The reference's calibration error (`get_ece_stats`, METHOD.md §6).
#[derive(Debug, Clone, PartialEq)]
pub struct Ece {
    pub ece: f64,
    /// Mean probability and fraction correct of each non-empty bin.
    pub bin_means: Vec<f64>,
    pub bin_p_correct: Vec<f64>,
    pub n_bins: usize,
    /// Predictions above the threshold, and the correct ones among them.
    pub n_all: usize,
    pub n_correct: usize,
}

/// Calibration as the reference computes it: every prediction with
/// probability above 1% (`correct`: log p of each target token;
/// `incorrect`: log p of every other vocabulary entry at those positions)
/// goes into one pool; `min(10, n)` bins cut at NumPy's linear percentiles of
/// the pooled log-probabilities, both ends inclusive (a value on a cut
/// counts in both bins); per non-empty bin the mean probability against the
/// fraction of its predictions that are correct; the ECE is the unweighted
/// mean of the gaps. `None` when nothing is above 1%.
pub fn reference_ece(correct: &[f64], incorrect: &[f64]) -> Option<Ece> {
    let min = 0.01f64.ln();
    let right: Vec<f64> = correct.iter().copied().filter(|&c| c > min).collect();
    let mut pool: Vec<f64> = right
        .iter()
        .copied()
        .chain(incorrect.iter().copied().filter(|&c| c > min))
        .collect();
    if pool.is_empty() {
        return None;
    }
    let all = pool.clone();
    pool.sort_by(f64::total_cmp);
    let n_bins = 10.min(pool.len());
    let cut = |q: f64| {
        // np.percentile, method "linear": position q (n - 1), lerped.
        let pos = q * (pool.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(pool.len() - 1);
        let t = pos - lo as f64;
        let (a, b) = (pool[lo], pool[hi]);
        // NumPy's lerp: exact at both ends.
        if t >= 0.5 {
            b - (b - a) * (1.0 - t)
        } else {
            a + (b - a) * t
        }
    };
    let cuts: Vec<f64> = (0..=n_bins)
        .map(|i| cut(i as f64 / n_bins as f64))
        .collect();
    let (mut bin_means, mut bin_p_correct) = (Vec::new(), Vec::new());
    for w in cuts.windows(2) {
        let inside = |x: &&f64| **x >= w[0] && **x <= w[1];
        let members: Vec<f64> = all.iter().filter(inside).copied().collect();
        if members.is_empty() {
            continue;
        }
        bin_means.push(members.iter().map(|x| x.exp()).sum::<f64>() / members.len() as f64);
        bin_p_correct.push(correct.iter().filter(inside).count() as f64 / members.len() as f64);
    }
    let ece = bin_means
        .iter()
        .zip(&bin_p_correct)
        .map(|(m, p)| (m - p).abs())
        .sum::<f64>()
        / bin_means.len() as f64;
    Some(Ece {
        ece,
        bin_means,
        bin_p_correct,
        n_bins,
        n_all: all.len(),
        n_correct: right.len(),
    })
}

/// Mean and standard error (sample standard deviation / sqrt n) of `xs`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct MeanSe {
    pub mean: f64,
    /// `None` with fewer than two values.
    pub se: Option<f64>,
    pub n: usize,
}

impl MeanSe {
    /// `1.234 ± 0.056`, `1.234` without a standard error, `-` for no value:
    /// how every table (CLI, PDF) writes it.
    pub fn text(&self, digits: usize) -> String {
        if !self.mean.is_finite() {
            return "-".into();
        }
        match self.se.filter(|se| se.is_finite()) {
            Some(se) => format!("{:.digits$} ± {se:.digits$}", self.mean),
            None => format!("{:.digits$}", self.mean),
        }
    }
}

pub fn mean_se(xs: &[f64]) -> MeanSe {
    let n = xs.len();
    let mean = if n == 0 {
        f64::NAN
    } else {
        xs.iter().sum::<f64>() / n as f64
    };
    let se = (n >= 2).then(|| {
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (var / n as f64).sqrt()
    });
    MeanSe { mean, se, n }
}

/// Validity and diversity of one batch of samples (METHOD.md §4.3); fractions in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Yield {
    pub n: usize,
    pub valid: usize,
    /// valid / n.
    pub percent_valid: f64,
    /// Distinct valid strings / valid (0 when nothing is valid).
    pub unique_pct: f64,
    /// Number of distinct valid strings among the n.
    #[serde(rename = "yield")]
    pub yield_: usize,
    /// Distinct valid / size of the valid set, for closed-set tasks.
    pub coverage_pct: Option<f64>,
    /// Distinct valid / n (`usable_unique_pct`).
    #[serde(default)]
    pub usable_unique_pct: f64,
    /// Distinct samples, valid or not, and that / n.
    #[serde(default)]
    pub raw_unique_count: usize,
    #[serde(default)]
    pub raw_unique_pct: f64,
    /// Pairs of valid samples, and those that are the same string; their
    /// ratio; 1 - it; its binomial standard error sqrt(p (1 - p) / pairs).
    /// With fewer than two valid samples: 0 pairs, collision 0, uniqueness 1.
    #[serde(default)]
    pub possible_collisions: u64,
    #[serde(default)]
    pub actual_collisions: u64,
    #[serde(default)]
    pub pairwise_collision: f64,
    #[serde(default)]
    pub pairwise_uniqueness: f64,
    #[serde(default)]
    pub pairwise_collision_sem: f64,
}

/// Percent valid, unique percent, yield and coverage of `samples` with their verdicts.
pub fn yield_stats<S: AsRef<str>>(
    samples: &[S],
    valid: &[bool],
    valid_set_size: Option<u64>,
) -> Yield {
    use std::collections::{HashMap, HashSet};
    let n = samples.len();
    let mut counts: HashMap<&str, u64> = HashMap::new();
    let mut count = 0;
    for (s, &ok) in samples.iter().zip(valid) {
        if ok {
            count += 1;
            *counts.entry(s.as_ref()).or_default() += 1;
        }
    }
    let d = counts.len();
    let raw: HashSet<&str> = samples.iter().map(AsRef::as_ref).collect();
    let frac = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let possible = (count as u64 * (count as u64).saturating_sub(1)) / 2;
    let actual: u64 = counts.values().map(|&c| c * (c - 1) / 2).sum();
    let collision = if possible == 0 {
        0.0
    } else {
        actual as f64 / possible as f64
    };
    Yield {
        n,
        valid: count,
        percent_valid: frac(count, n),
        unique_pct: frac(d, count),
        yield_: d,
        coverage_pct: valid_set_size
            .filter(|&size| size > 0)
            .map(|size| d as f64 / size as f64),
        usable_unique_pct: frac(d, n),
        raw_unique_count: raw.len(),
        raw_unique_pct: frac(raw.len(), n),
        possible_collisions: possible,
        actual_collisions: actual,
        pairwise_collision: collision,
        pairwise_uniqueness: 1.0 - collision,
        pairwise_collision_sem: if possible == 0 {
            0.0
        } else {
            (collision * (1.0 - collision) / possible as f64).sqrt()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn divergences_by_hand() {
        let (p, q) = ([0.5, 0.5], [0.25, 0.75]);
        // KL = 0.5 ln 2 + 0.5 ln(2/3)
        close(kl(&p, &q), 0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln());
        close(kl(&q, &p), 0.25 * 0.5f64.ln() + 0.75 * 1.5f64.ln());
        // m = (0.375, 0.625)
        let m = [0.375, 0.625];
        close(js(&p, &q), 0.5 * kl(&p, &m) + 0.5 * kl(&q, &m));
        close(total_variation(&p, &q), 0.25);
        close(
            cross_entropy(&p, &q),
            -(0.5 * 0.25f64.ln() + 0.5 * 0.75f64.ln()),
        );
        // Disjoint supports: JS = ln 2, TV = 1.
        close(js(&[1.0, 0.0], &[0.0, 1.0]), 2f64.ln());
        close(total_variation(&[1.0, 0.0], &[0.0, 1.0]), 1.0);
        close(js(&p, &p), 0.0);
    }

    #[test]
    fn wasserstein_moves_mass_along_the_scale() {
        // All mass moves from position 0 to position 2: distance 2.
        close(wasserstein1(&[1.0, 0.0, 0.0], &[0.0, 0.0, 1.0]), 2.0);
        // Half the mass moves one step.
        close(wasserstein1(&[0.5, 0.5, 0.0], &[0.0, 1.0, 0.0]), 0.5);
        close(wasserstein1(&[0.2, 0.3, 0.5], &[0.2, 0.3, 0.5]), 0.0);
    }

    #[test]
    fn alignment_by_hand() {
        // p = (0.5, 0.25): coverage 0.75, q = (2/3, 1/3).
        let a = alignment(&[0.5f64.ln(), 0.25f64.ln()], &[0.75, 0.25], true);
        close(a.coverage, 0.75);
        close(a.q[0], 2.0 / 3.0);
        let (ts, qs) = (smooth(&[0.75, 0.25]), smooth(&[2.0 / 3.0, 1.0 / 3.0]));
        close(ts[0], 0.750001 / 1.000002);
        close(a.js, js(&ts, &qs));
        close(a.kl, kl(&ts, &qs));
        close(a.tv, (0.75 - 2.0 / 3.0) / 1.000002);
        assert!(a.mode_match);
        close(a.wasserstein.expect("ordinal"), a.tv);
        // Probabilities that underflow still give a distribution.
        let b = alignment(&[-2000.0, -2000.0 - 2f64.ln()], &[0.5, 0.5], false);
        assert_eq!(b.coverage, 0.0);
        close(b.q[0], 2.0 / 3.0);
        assert_eq!(b.wasserstein, None);
    }

    #[test]
    fn reference_ece_by_hand() {
        let ln = |xs: &[f64]| xs.iter().map(|x| x.ln()).collect::<Vec<_>>();
        // Pool above 1%: 0.9, 0.5 (correct), 0.3, 0.05 (not); 0.001 is left out.
        // Four bins of one: gaps 0.05, 0.3, |0.5 - 1|, |0.9 - 1|, unweighted.
        let e = reference_ece(&ln(&[0.9, 0.5, 0.001]), &ln(&[0.3, 0.05])).expect("ece");
        close(e.ece, (0.05 + 0.3 + 0.5 + 0.1) / 4.0);
        assert_eq!((e.n_bins, e.n_all, e.n_correct), (4, 4, 2));
        // Both ends inclusive: equal values fall into every bin they bound.
        let e = reference_ece(&ln(&[0.5, 0.5]), &[]).expect("ece");
        assert_eq!(e.bin_means.len(), 2);
        close(e.ece, 0.5);
        assert_eq!(reference_ece(&ln(&[0.001]), &[]), None);
    }

    #[test]
    fn mean_and_standard_error() {
        let m = mean_se(&[1.0, 2.0, 3.0, 4.0]);
        close(m.mean, 2.5);
        // sample variance 5/3, se = sqrt(5/3 / 4)
        close(m.se.expect("se"), (5.0f64 / 12.0).sqrt());
        assert_eq!(mean_se(&[1.0]).se, None);
    }

    #[test]
    fn yield_by_hand() {
        let samples = ["Ohio", "Ohio", "Texas", "Narnia", ""];
        let valid = [true, true, true, false, false];
        let y = yield_stats(&samples, &valid, Some(50));
        assert_eq!((y.n, y.valid, y.yield_), (5, 3, 2));
        close(y.percent_valid, 0.6);
        close(y.unique_pct, 2.0 / 3.0);
        close(y.coverage_pct.expect("closed set"), 0.04);
        let none = yield_stats(&["x"], &[false], None);
        assert_eq!((none.unique_pct, none.coverage_pct), (0.0, None));
    }
}
