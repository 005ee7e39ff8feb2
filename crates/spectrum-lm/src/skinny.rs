//! `x Wᵀ` for a few rows of `x`: the products of token-by-token generation
//! (one row per sample) with the weights, `W` [n, k] as checkpoints store it.
//!
//! These products are bound by reading `W` (every weight is used a handful of
//! times per pass). A general GEMM packs `W` into panels first, which reads and
//! writes it once more; here each thread streams its own rows of `W` once,
//! straight from the checkpoint layout, and takes dot products with the rows
//! of `x` (kept in L1), vectorised for the CPU it runs on (AVX2/FMA,
//! AVX-512, NEON), chosen at run time ([`crate::isa`]).
//!
//! `W` may also be a GGUF model's quantised blocks ([`crate::blocks`]): each
//! pair of rows is dequantised into L1 and goes through the same dot products,
//! so the results are those of the f32 weights the blocks dequantise to, bit
//! for bit, for a fifth of the bytes read (Q4_1).

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use crate::blocks::{BlockKind, Blocks, Dequantiser, VALUES};
use crate::isa::Isa;

/// Above this many rows of `x` the general GEMM is faster.
pub const MAX_ROWS: usize = 16;

/// Rows of `W` per parallel task: enough to amortise scheduling, few enough to
/// balance the LM head and the small projections over the cores.
const ROWS_PER_TASK: usize = 32;

/// How many rows of W ahead of the ones in use are asked into the cache:
/// the hardware prefetcher alone left the LM head (113 MB, far beyond the
/// caches) at 8 GB/s with 8 rows of x; with this, 15 GB/s.
const PREFETCH_ROWS: usize = 4;

/// Bytes per cache line, and the f32 values it holds.
const LINE_BYTES: usize = 64;
const FLOATS_PER_LINE: usize = LINE_BYTES / 4;

/// `W` [n, k], row-major: f32 values or quantised blocks.
#[derive(Clone, Copy)]
pub enum Weights<'a> {
    F32(&'a [f32]),
    Blocks(&'a Blocks),
}

/// Some rows of `W`, as one task reads them.
#[derive(Clone, Copy)]
enum Rows<'a> {
    F32(&'a [f32]),
    Blocks(BlockKind, (&'a [u8], &'a [f32]), Dequantiser),
}

/// `out` [m, n] = `x` [m, k] `w`ᵀ for `w` [n, k], all row-major.
pub fn matmul_t(x: &[f32], w: Weights, m: usize, k: usize, out: &mut [f32]) {
    matmul_t_on(Isa::best(), x, w, m, k, out)
}

/// [`matmul_t`] compiled for `isa` (which the CPU must run).
pub fn matmul_t_on(isa: Isa, x: &[f32], w: Weights, m: usize, k: usize, out: &mut [f32]) {
    let (n, fits) = match w {
        Weights::F32(w) => (w.len() / k.max(1), w.len().is_multiple_of(k.max(1))),
        Weights::Blocks(b) => (b.rows, b.k == k),
    };
    assert!(
        fits && x.len() == m * k && out.len() == m * n,
        "skinny matmul: [{m}, {k}] x [{n}, {k}]ᵀ into {} values",
        out.len()
    );
    let dequantiser = Dequantiser::new(isa);
    // Tasks write `outᵀ` [n, m] (their rows of `W` are its rows), then it is
    // transposed: m · n values, against n · k read.
    let mut out_t = vec![0f32; n * m];
    out_t
        .par_chunks_mut(ROWS_PER_TASK * m.max(1))
        .enumerate()
        .for_each(|(task, out_t)| {
            let first = task * ROWS_PER_TASK;
            let rows = out_t.len() / m.max(1);
            let w = match w {
                Weights::F32(w) => Rows::F32(&w[first * k..][..rows * k]),
                Weights::Blocks(b) => Rows::Blocks(b.kind, b.rows(first, rows), dequantiser),
            };
            isa.dispatch(Dots { x, w, m, k, out_t });
        });
    for (i, row) in out.chunks_exact_mut(n.max(1)).enumerate() {
        for (o, &v) in row.iter_mut().zip(out_t[i..].iter().step_by(m)) {
            *o = v;
        }
    }
}

/// `out_t[j, i] = x_i · w_j` for the rows of one task.
struct Dots<'a> {
    x: &'a [f32],
    w: Rows<'a>,
    m: usize,
    k: usize,
    out_t: &'a mut [f32],
}

impl WithSimd for Dots<'_> {
    type Output = ();

    /// Two rows of W at a time (read from memory once) against groups of up
    /// to 4 rows of x: 8 accumulators, 6 loads per 8 FMAs.
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Self::Output {
        let Dots { x, w, m, k, out_t } = self;
        let w_rows = out_t.len() / m.max(1);
        // The pair of rows in use, dequantised (in L1).
        let mut scratch = match w {
            Rows::F32(_) => Vec::new(),
            Rows::Blocks(..) => vec![0f32; 2 * k],
        };
        let mut j = 0;
        while j < w_rows {
            let pair = (w_rows - j).min(2);
            // The last row of an odd count pairs with itself (its second
            // result is dropped).
            let rows = [j, j + pair - 1];
            let ws = match w {
                Rows::F32(w) => rows.map(|r| &w[r * k..][..k]),
                Rows::Blocks(kind, (qs, scales), dequantiser) => {
                    let (qb, sb) = (k / VALUES * kind.q_bytes(), k / VALUES * kind.scales());
                    let ahead = qs.as_ptr().wrapping_add((j + PREFETCH_ROWS) * qb);
                    for line in (0..2 * qb).step_by(LINE_BYTES) {
                        prefetch(ahead.wrapping_add(line));
                    }
                    let (s0, s1) = scratch.split_at_mut(k);
                    for (r, s) in rows.into_iter().zip([&mut *s0, &mut *s1]) {
                        dequantiser.row(kind, &qs[r * qb..][..qb], &scales[r * sb..][..sb], s);
                    }
                    [&*s0, &*s1]
                }
            };
            let out = &mut out_t[j * m..][..pair * m];
            let mut i = 0;
            while i < m {
                let group = (m - i).min(4);
                // Prefetching the rows that follow in memory: f32 weights.
                match (group, matches!(w, Rows::F32(_))) {
                    (1, true) => group_dots::<S, 1, true>(simd, x, i, ws, out, m),
                    (2, true) => group_dots::<S, 2, true>(simd, x, i, ws, out, m),
                    (3, true) => group_dots::<S, 3, true>(simd, x, i, ws, out, m),
                    (_, true) => group_dots::<S, 4, true>(simd, x, i, ws, out, m),
                    (1, false) => group_dots::<S, 1, false>(simd, x, i, ws, out, m),
                    (2, false) => group_dots::<S, 2, false>(simd, x, i, ws, out, m),
                    (3, false) => group_dots::<S, 3, false>(simd, x, i, ws, out, m),
                    (_, false) => group_dots::<S, 4, false>(simd, x, i, ws, out, m),
                }
                i += group;
            }
            j += pair;
        }
    }
}

/// Rows `first..first + R` of `x` against the two rows `ws`, into `out`
/// (the pair's rows of `outᵀ`, one or two of `m` values); `AHEAD`: whether
/// the rows that follow `ws` in memory are the next pairs' (to prefetch).
#[inline(always)]
fn group_dots<S: Simd, const R: usize, const AHEAD: bool>(
    simd: S,
    x: &[f32],
    first: usize,
    ws: [&[f32]; 2],
    out: &mut [f32],
    m: usize,
) {
    let k = ws[0].len();
    let xs: [&[f32]; R] = std::array::from_fn(|r| &x[(first + r) * k..][..k]);
    let sums = block::<S, R, AHEAD>(simd, xs, ws);
    for (d, sums) in sums.iter().enumerate().take(out.len() / m) {
        out[d * m + first..][..R].copy_from_slice(sums);
    }
}

/// Dot products of `R` rows of x with 2 rows of W, asking for the rows
/// [`PREFETCH_ROWS`] further on as it goes (every group does: the requests
/// spread out over the pass measured faster than the first group's alone),
/// when `AHEAD`.
#[inline(always)]
fn block<S: Simd, const R: usize, const AHEAD: bool>(
    simd: S,
    xs: [&[f32]; R],
    ws: [&[f32]; 2],
) -> [[f32; R]; 2] {
    let (w0, w1) = (S::as_simd_f32s(ws[0]).0, S::as_simd_f32s(ws[1]).0);
    let mut xv = [w0; R];
    for r in 0..R {
        xv[r] = S::as_simd_f32s(xs[r]).0;
    }
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; R]; 2];
    // This pair's rows are followed in memory by the rows the next pairs use.
    let ahead = ws[0].as_ptr().wrapping_add(PREFETCH_ROWS * ws[0].len());
    for c in 0..w0.len() {
        let offset = c * S::F32_LANES;
        if AHEAD && offset % FLOATS_PER_LINE == 0 {
            prefetch(ahead.wrapping_add(offset).cast());
            prefetch(ahead.wrapping_add(ws[0].len() + offset).cast());
        }
        let (a, b) = (w0[c], w1[c]);
        for r in 0..R {
            // Each x vector is loaded once for both products.
            let x = xv[r][c];
            acc[0][r] = simd.mul_add_f32s(x, a, acc[0][r]);
            acc[1][r] = simd.mul_add_f32s(x, b, acc[1][r]);
        }
    }
    let done = w0.len() * S::F32_LANES;
    let mut sums = [[0f32; R]; 2];
    for d in 0..2 {
        for r in 0..R {
            let tail: f32 = (xs[r][done..].iter().zip(&ws[d][done..]))
                .map(|(a, b)| a * b)
                .sum();
            sums[d][r] = simd.reduce_sum_f32s(acc[d][r]) + tail;
        }
    }
    sums
}

/// Asks the CPU to bring the cache line holding `p` into L1.
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: a prefetch is a hint that never faults and reads nothing the
    // program sees; `p` may be any address (past the end of W here).
    unsafe {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    /// Every shape class: rows 1..=MAX_ROWS (quads and remainders), odd and
    /// even weight rows, task boundaries, and k with and without a vector tail.
    /// Every instruction set this CPU runs gives the plain product, and the
    /// sets agree with each other to rounding.
    #[test]
    fn every_instruction_set_agrees() {
        let (m, n, k) = (5, 67, 203);
        let (x, w) = (values(m * k, 3), values(n * k, 4));
        let results: Vec<(Isa, Vec<f32>)> = Isa::available()
            .into_iter()
            .map(|isa| {
                let mut out = vec![f32::NAN; m * n];
                matmul_t_on(isa, &x, Weights::F32(&w), m, k, &mut out);
                (isa, out)
            })
            .collect();
        let (first, reference) = &results[0];
        for (isa, out) in &results[1..] {
            for (a, b) in reference.iter().zip(out) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
                    "{first} {a} vs {isa} {b}"
                );
            }
        }
    }

    #[test]
    fn matches_the_plain_product() {
        for m in 1..=MAX_ROWS {
            for (n, k) in [(1, 8), (7, 13), (64, 576), (65, 100), (97, 35)] {
                let (x, w) = (values(m * k, 1), values(n * k, 2));
                let mut out = vec![f32::NAN; m * n];
                matmul_t(&x, Weights::F32(&w), m, k, &mut out);
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k)
                            .map(|c| x[i * k + c] as f64 * w[j * k + c] as f64)
                            .sum();
                        let got = out[i * n + j] as f64;
                        assert!(
                            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "m {m} n {n} k {k} [{i}, {j}]: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// Blocks give the results of the f32 weights they dequantise to, bit for
    /// bit, with every instruction set, row count and task boundary.
    #[test]
    fn blocks_give_the_f32_results_bit_for_bit() {
        use crate::blocks::{BlockKind, Blocks, VALUES};
        let k = 96;
        for kind in BlockKind::ALL {
            for n in [1, 2, 33, 70] {
                let blocks = n * k / VALUES;
                let qs: Vec<u8> = (0..blocks * kind.q_bytes())
                    .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
                    .collect();
                let scales: Vec<f32> = (0..blocks * kind.scales())
                    .map(|i| (i % 7) as f32 * 0.01 - 0.03)
                    .collect();
                let blocks = Blocks::new(kind, (n, k), qs, scales).expect("whole blocks");
                let mut w = vec![0f32; n * k];
                for (j, row) in w.chunks_mut(k).enumerate() {
                    blocks.dequantize_row(j, row);
                }
                for isa in Isa::available() {
                    for m in [1, 3, 4, 8, MAX_ROWS] {
                        let x = values(m * k, 5);
                        let (mut a, mut b) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
                        matmul_t_on(isa, &x, Weights::F32(&w), m, k, &mut a);
                        matmul_t_on(isa, &x, Weights::Blocks(&blocks), m, k, &mut b);
                        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&a), bits(&b), "{kind:?} {isa} n {n} m {m}");
                        assert!(a.iter().all(|v| v.is_finite()));
                    }
                }
            }
        }
    }
}
