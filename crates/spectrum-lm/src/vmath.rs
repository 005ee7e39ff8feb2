//! Vectorised math over f32 rows: an `exp` made of arithmetic only (no libm
//! call, so loops over it compile to SIMD), and the row kernels built on it
//! (SwiGLU, a logits row's scores). Loops run inside [`vectorized`], which
//! compiles them for the CPU's widest vectors (AVX2/FMA, AVX-512, NEON),
//! chosen at run time ([`crate::isa`]).

/// Runs `f` with the CPU's SIMD features enabled; loops `f` inlines (through
/// `#[inline(always)]` helpers) vectorise for them.
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    crate::isa::Isa::best().dispatch(f)
}

/// `e^x` to about 2 ulp (relative error under 2.5e-7) for x in [-87, 88];
/// smaller inputs give e^-87 (~1.6e-38), larger ones e^88.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // x = n ln2 + r with |r| <= ln2 / 2; e^x = 2^n e^r.
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // ln 2 in two parts (the first exact in f32), so r keeps its precision.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // n sits in the low mantissa bits of `shifted`; 2^n from its exponent bits.
    // Wrapping integer ops: they cannot overflow for n in [-126, 127], and an
    // overflow check (on in the dev profile) would keep loops over `exp`
    // from vectorising.
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    p * f32::from_bits((n_int.wrapping_add(127) << 23) as u32)
}

/// `silu(g) u = g u / (1 + e^-g)`.
#[inline(always)]
pub fn swiglu(g: f32, u: f32) -> f32 {
    g * u / (1.0 + exp(-g))
}

/// `out[i] = silu(gate[i]) up[i]` over one row.
#[inline(always)]
pub fn swiglu_row(out: &mut [f32], gate: &[f32], up: &[f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = swiglu(g, u);
    }
}

/// The gradients of [`swiglu_row`] over one row: `d gate = dy ⊙ up ⊙ σ(g)
/// (1 + g (1 − σ(g)))`, `d up = dy ⊙ silu(g)`. Zipped slices, not indices:
/// no bounds or overflow checks in the loop, so it vectorises.
#[inline(always)]
pub fn swiglu_backward_row(
    d_gate: &mut [f32],
    d_up: &mut [f32],
    gate: &[f32],
    up: &[f32],
    dy: &[f32],
) {
    let inputs = gate.iter().zip(up).zip(dy);
    for ((dg, du), ((&g, &u), &dy)) in d_gate.iter_mut().zip(d_up.iter_mut()).zip(inputs) {
        let sig = 1.0 / (1.0 + exp(-g));
        *dg = dy * u * sig * (1.0 + g * (1.0 - sig));
        *du = dy * g * sig;
    }
}

/// The largest value of `row` (-inf for an empty one).
#[inline(always)]
fn max_of(row: &[f32]) -> f32 {
    let mut max = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            max[l] = max[l].max(c[l]);
        }
    }
    tail.iter()
        .chain(&max)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// `row` replaced by its softmax.
#[inline(always)]
pub fn softmax_row(row: &mut [f32]) {
    let max = max_of(row);
    let mut sum = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            c[l] = exp(c[l] - max);
            sum[l] += c[l];
        }
    }
    let mut total: f32 = sum.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp(*x - max);
        total += *x;
    }
    let inv = 1.0 / total;
    row.iter_mut().for_each(|x| *x *= inv);
}

/// `log Σ e^row` (stable: around the row's maximum), the sum in [`LANES`]
/// partial sums; -inf for an empty row.
#[inline(always)]
pub fn logsumexp_row(row: &[f32]) -> f32 {
    let max = max_of(row);
    if max == f32::NEG_INFINITY {
        return max;
    }
    let mut sum = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            sum[l] += exp(c[l] - max);
        }
    }
    let total = sum.iter().sum::<f32>() + tail.iter().map(|&x| exp(x - max)).sum::<f32>();
    max + total.ln()
}

/// `out[i] = scale · e^(row[i] - lse)`: a row's softmax scaled, given its
/// [`logsumexp_row`] `lse` (the cross-entropy's gradient before the target's
/// `- scale`).
#[inline(always)]
pub fn scaled_softmax_row(out: &mut [f32], row: &[f32], lse: f32, scale: f32) {
    for (o, &x) in out.iter_mut().zip(row) {
        *o = scale * exp(x - lse);
    }
}

/// What scoring needs of one row of logits: the maximum and its first index,
/// how many entries exceed the target's, `Σ e^(x - max)` (in f64), and the
/// entries near the maximum.
#[derive(Debug, Clone, PartialEq)]
pub struct RowStats {
    pub max: f32,
    pub argmax: usize,
    pub above_target: u32,
    pub sum_exp: f64,
    /// The indices of the entries with `x - max > floor`, ascending.
    pub near: Vec<usize>,
}

/// Lanes of the row kernels' accumulators (two AVX2 vectors, one AVX-512).
const LANES: usize = 16;

/// [`RowStats`] of `row` for the entry `target`, keeping the entries within
/// `floor` (< 0) of the maximum, in two vectorised passes: the maximum with
/// the count above the target, then the sum of exponentials with the near
/// entries (a block of [`LANES`] without one costs a vector compare). The
/// arg-max is the first near entry equal to the maximum.
#[inline(always)]
pub fn row_stats(row: &[f32], target: usize, floor: f32) -> RowStats {
    debug_assert!(floor < 0.0, "the maximum itself must be near");
    let own = row[target];
    let (chunks, tail) = (row.chunks_exact(LANES), row.chunks_exact(LANES).remainder());
    let mut max = [f32::NEG_INFINITY; LANES];
    let mut above = [0u32; LANES];
    for c in chunks.clone() {
        for l in 0..LANES {
            max[l] = max[l].max(c[l]);
            above[l] = above[l].wrapping_add((c[l] > own) as u32);
        }
    }
    let best = tail
        .iter()
        .chain(&max)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let above_target = above.iter().sum::<u32>() + tail.iter().filter(|&&x| x > own).count() as u32;
    let cut = best + floor;
    let mut sum = [0f64; LANES];
    let mut near = Vec::new();
    for (b, c) in chunks.enumerate() {
        let mut any = false;
        for l in 0..LANES {
            sum[l] += exp(c[l] - best) as f64;
            any |= c[l] > cut;
        }
        if any {
            near.extend((0..LANES).filter(|&l| c[l] > cut).map(|l| b * LANES + l));
        }
    }
    let start = row.len() - tail.len();
    near.extend(
        (0..tail.len())
            .filter(|&i| tail[i] > cut)
            .map(|i| start + i),
    );
    let sum_exp = sum.iter().sum::<f64>() + tail.iter().map(|&x| exp(x - best) as f64).sum::<f64>();
    let argmax = near
        .iter()
        .copied()
        .find(|&i| row[i] == best)
        .or_else(|| row.iter().position(|&x| x == best))
        .unwrap_or(0);
    RowStats {
        max: best,
        argmax,
        above_target,
        sum_exp,
        near,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::Isa;

    /// On every instruction set this CPU runs, against f64 sums of libm's
    /// exponentials, for rows around and off the lane width, a row holding
    /// -inf and one that is all -inf.
    #[test]
    fn logsumexp_and_the_scaled_softmax_equal_f64_sums() {
        for isa in Isa::available() {
            for n in [1, 15, 16, 17, 100, 49_152] {
                let mut row: Vec<f32> = (0..n)
                    .map(|i| ((i * 37) % 101) as f32 * 0.17 - 8.0)
                    .collect();
                if n > 1 {
                    row[n / 2] = f32::NEG_INFINITY;
                }
                let max = row
                    .iter()
                    .copied()
                    .fold(f64::NEG_INFINITY, |m, x| m.max(x as f64));
                let want = max
                    + row
                        .iter()
                        .map(|&x| (x as f64 - max).exp())
                        .sum::<f64>()
                        .ln();
                let got = isa.dispatch(|| logsumexp_row(&row));
                // f32 sums of up to 49,152 terms: a few units in the last place.
                assert!(
                    (got as f64 - want).abs() < 1e-5,
                    "{isa} {n}: {got} vs {want}"
                );
                let mut out = vec![0f32; n];
                isa.dispatch(|| scaled_softmax_row(&mut out, &row, got, 0.5));
                for (&o, &x) in out.iter().zip(&row) {
                    let p = 0.5 * (x as f64 - got as f64).exp();
                    assert!(
                        (o as f64 - p).abs() <= 1e-6 * p + 1e-12,
                        "{isa} {n}: {o} vs {p}"
                    );
                }
            }
            let empty = [f32::NEG_INFINITY; 20];
            assert_eq!(isa.dispatch(|| logsumexp_row(&empty)), f32::NEG_INFINITY);
        }
    }

    /// On every instruction set this CPU runs.
    #[test]
    fn exp_is_within_3e_7_of_libm_over_its_range() {
        for isa in Isa::available() {
            let mut worst = 0f64;
            let mut x = -87.0f32;
            while x <= 88.0 {
                let want = (x as f64).exp();
                let got = isa.dispatch(|| exp(x)) as f64;
                worst = worst.max(((got - want) / want).abs());
                x += 0.001_37;
            }
            assert!(worst < 3e-7, "{isa}: worst relative error {worst}");
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1e-37 && exp(-1000.0) >= 0.0);
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn row_stats_match_the_plain_loops() {
        for len in [1, 15, 16, 17, 1000, 49_152] {
            let row: Vec<f32> = (0..len)
                .map(|i| ((i as u32).wrapping_mul(2_654_435_761) % 2000) as f32 / 100.0 - 10.0)
                .collect();
            let targets = [0, len / 3, len - 1];
            for (target, isa) in targets
                .into_iter()
                .flat_map(|t| Isa::available().into_iter().map(move |i| (t, i)))
            {
                let s = isa.dispatch(|| row_stats(&row, target, -4.0));
                let best = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                assert_eq!(s.max, best);
                assert_eq!(s.argmax, row.iter().position(|&x| x == best).unwrap_or(0));
                let above = row.iter().filter(|&&x| x > row[target]).count() as u32;
                assert_eq!(s.above_target, above);
                let near: Vec<usize> = (0..len).filter(|&i| row[i] - best > -4.0).collect();
                assert_eq!(s.near, near);
                let sum: f64 = row.iter().map(|&x| ((x - best) as f64).exp()).sum();
                assert!(
                    ((s.sum_exp - sum) / sum).abs() < 1e-6,
                    "{len}: {}",
                    s.sum_exp
                );
            }
        }
    }

    #[test]
    fn softmax_rows_match_the_plain_loops() {
        for len in [1, 7, 16, 33, 300] {
            let mut row: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin() * 8.0).collect();
            row[len / 2] = -1e9; // a masked entry
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
            let want: Vec<f64> = row.iter().map(|&x| (x as f64 - max).exp() / sum).collect();
            for isa in Isa::available() {
                let mut row = row.clone();
                isa.dispatch(|| softmax_row(&mut row));
                for (g, w) in row.iter().zip(&want) {
                    assert!((*g as f64 - w).abs() < 1e-6, "{isa} {len}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn swiglu_matches_its_definition() {
        for g in [-100.0f32, -9.5, -1.0, 0.0, 0.3, 4.0, 20.0, 100.0] {
            let want = g as f64 / (1.0 + (-g as f64).exp()) * 1.5;
            let got = swiglu(g, 1.5) as f64;
            assert!(
                (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{g}: {got} vs {want}"
            );
        }
    }
}
