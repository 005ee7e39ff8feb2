//! Attention: the masked softmax, rotary embeddings, and RoPE + scores +
//! mask + softmax + values of one layer as one node with its own backward.

use std::ops::Range;

use candle_core::{CpuStorage, D, DType, Layout, Shape, Tensor};

use crate::Result;

use super::gemm::{gemm, gemm_ld, op, op_t, share};
use super::host::*;

/// `softmax(scores + mask)` over the last dimension; `mask` broadcasts to
/// `scores` and is constant. Differentiable, fused where it can be.
pub fn masked_softmax(scores: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if !scores.track_op() {
        return Ok(candle_nn::ops::softmax_last_dim(
            &scores.broadcast_add(mask)?,
        )?);
    }
    if f32_cpu(scores) && !mask.track_op() {
        return Ok(scores
            .contiguous()?
            .apply_op1(MaskedSoftmax { mask: mask.clone() })?);
    }
    // Half precision (GPU training): the composed softmax sums in the input's
    // dtype, so work in f32 as PyTorch's eager attention does.
    let dtype = scores.dtype();
    let work = match dtype {
        DType::BF16 | DType::F16 => DType::F32,
        d => d,
    };
    let x = scores
        .to_dtype(work)?
        .broadcast_add(&mask.to_dtype(work)?)?;
    Ok(candle_nn::ops::softmax(&x, D::Minus1)?.to_dtype(dtype)?)
}

struct MaskedSoftmax {
    mask: Tensor,
}

impl candle_core::CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        on_storage(storage, layout, |x| {
            candle_nn::ops::softmax_last_dim(&x.broadcast_add(&self.mask)?)
        })
    }

    fn bwd(&self, _arg: &Tensor, y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(softmax_backward(y, dy)?))
    }
}

/// The gradient of a softmax over the last dimension with output `y`:
/// `y ⊙ (dy − Σ dy ⊙ y)`, one pass per row.
fn softmax_backward(y: &Tensor, dy: &Tensor) -> candle_core::Result<Tensor> {
    let width = y.dims().last().copied().unwrap_or(1);
    let mut dx = vec![0f32; y.elem_count()];
    with_values([y, dy], |[y, dy]| {
        par_rows(&mut dx, width, |i, out| {
            let (y, dy) = (&y[i * width..][..width], &dy[i * width..][..width]);
            let dot: f32 = y.iter().zip(dy).map(|(y, d)| y * d).sum();
            for ((o, &y), &d) in out.iter_mut().zip(y).zip(dy) {
                *o = y * (d - dot);
            }
        })
    })?;
    tensor_from(dx, y)
}

/// The sizes of one self-attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Scores are multiplied by this.
    pub scale: f64,
}

/// Self-attention over a whole sequence (no cache) for training, as one node:
/// `q` [batch, seq, heads·head_dim] and `k`, `v` [batch, seq, kv_heads·head_dim]
/// as the projections give them (any shape with that layout, such as
/// [batch, seq, heads, head_dim] after a q/k norm) in, the attention output
/// [batch, seq, heads·head_dim] out. Inside: RoPE (`cos`/`sin` [seq, head_dim/2]),
/// scaling, the additive `mask` [batch or 1, 1, seq, seq], softmax and the
/// weighted values, for grouped-query heads. The composed version is some
/// twenty nodes per layer (views, copies, products), each of which candle's
/// backward gives a freshly zeroed, added gradient and some of which it keeps
/// until the end; this op keeps its rotated queries and keys, values and
/// probabilities until its own backward pass, which drops them. Both passes
/// work per (sequence, key/value head), those units in parallel, each with
/// its [groups·seq, seq] scores in cache and single-threaded matrix multiplies.
///
/// `None` where it does not apply (not f32 on the CPU, or nothing to
/// differentiate): the caller uses the composed path.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    mask: &Tensor,
    shape: AttentionShape,
) -> Result<Option<Tensor>> {
    let tracked = q.track_op() || k.track_op() || v.track_op();
    let constant = !cos.track_op() && !sin.track_op() && !mask.track_op();
    if !(f32_cpu(q) && tracked && constant && shape.heads.is_multiple_of(shape.kv_heads)) {
        return Ok(None);
    }
    let op = FusedAttention::new(cos, sin, mask, shape)?;
    Ok(Some(q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        op,
    )?))
}

/// The same attention without a graph, for a whole prompt in inference (an
/// empty KV cache): the output [batch, seq, heads·head_dim] and the rotated
/// keys and values [batch, kv_heads, seq, head_dim] for the cache. `None`
/// where it does not apply (not f32 on the CPU): the caller uses the composed path.
pub fn attention_prompt(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    mask: &Tensor,
    shape: AttentionShape,
) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    if !(f32_cpu(q) && shape.heads.is_multiple_of(shape.kv_heads)) {
        return Ok(None);
    }
    let op = FusedAttention::new(cos, sin, mask, shape)?;
    let (out, parts) = with_values([q, k, v], |[q, k, v]| op.forward(q, k, v))??;
    let AttentionShape {
        batch: b,
        seq: t,
        heads,
        kv_heads: kv,
        head_dim: hd,
        ..
    } = shape;
    // Units are ordered (sequence, key/value head): their rows stack into
    // [b, kv, t, hd] as they are.
    let keys: Vec<f32> = parts.iter().flat_map(|p| p.k.iter().copied()).collect();
    let values: Vec<f32> = parts.iter().flat_map(|p| p.v.iter().copied()).collect();
    let device = q.device();
    Ok(Some((
        Tensor::from_vec(out, (b, t, heads * hd), device)?,
        Tensor::from_vec(keys, (b, kv, t, hd), device)?,
        Tensor::from_vec(values, (b, kv, t, hd), device)?,
    )))
}

/// Attention of new positions over a KV cache in inference (token-by-token
/// decoding, options scored after a shared prompt), as one op: `q` [b, heads,
/// t, hd] rotated; `k`, `v` [b, kv_heads, total, hd] with every position so
/// far (views of the cache's buffers: each head's rows contiguous); `mask`
/// [b or 1, 1, t, total] additive. The output [b, t, heads·hd]. Per (sequence,
/// key/value head), in parallel: the scaled queries of its `groups` heads
/// times the keys, mask, softmax, times the values, as the prompt's
/// attention computes them. The composed path was some fifteen candle ops a
/// layer, each a parallel call and a fresh tensor, and a matrix multiply per
/// head through candle: most of a decoding step's attention time. `None`
/// where it does not apply (not f32 on the CPU, or another layout).
pub fn attention_cached(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
) -> Result<Option<Tensor>> {
    use rayon::prelude::*;
    let (b, heads, t, hd) = q.dims4()?;
    let (kb, kv, total, khd) = k.dims4()?;
    let fits = f32_cpu(q)
        && f32_cpu(k)
        && f32_cpu(v)
        && f32_cpu(mask)
        && kb == b
        && khd == hd
        && kv > 0
        && heads.is_multiple_of(kv)
        && v.dims() == k.dims()
        && k.stride() == v.stride()
        && k.stride()[2..] == [hd, 1]
        && mask.dims4().is_ok_and(|(mb, one, mt, mtotal)| {
            (mb == b || mb == 1) && one == 1 && mt == t && mtotal == total
        });
    if !fits {
        return Ok(None);
    }
    let groups = heads / kv;
    let rows = groups * t;
    let (q, mask) = (q.contiguous()?, mask.contiguous()?);
    let units: Vec<Vec<f32>> = with_values([&q, &mask], |[q, mask]| {
        with_heads([k, v], |[ks, vs]| {
            let masks = mask.len() / (t * total);
            (0..b * kv)
                .into_par_iter()
                .map(|u| {
                    share(|| {
                        let (bi, g) = (u / kv, u % kv);
                        let qs: Vec<f32> = q[(bi * heads + g * groups) * t * hd..][..rows * hd]
                            .iter()
                            .map(|x| x * scale as f32)
                            .collect();
                        let (keys, values) = (ks.head(bi, g), vs.head(bi, g));
                        let mask = &mask[(bi % masks) * t * total..][..t * total];
                        let (mut probs, mut o) = (vec![0f32; rows * total], vec![0f32; rows * hd]);
                        let scores = (rows, total, hd);
                        gemm(&mut probs, scores, op(&qs), op_t(keys), 1.0, false);
                        crate::vmath::vectorized(
                            #[inline(always)]
                            || mask_and_softmax(&mut probs, mask, t),
                        );
                        gemm(
                            &mut o,
                            (rows, hd, total),
                            op(&probs),
                            op(values),
                            1.0,
                            false,
                        );
                        o
                    })
                })
                .collect()
        })
    })??;
    let units: Vec<&[f32]> = units.iter().map(Vec::as_slice).collect();
    let out = merge(&units, (b, t, kv, hd), groups, false);
    Ok(Some(Tensor::from_vec(out, (b, t, heads * hd), q.device())?))
}

/// Rows [n·t, hd] per unit (n heads of one kv group, units ordered
/// (sequence, kv head)) back into [b, t, kv·n·hd]. A unit's rows are ordered
/// (position, head) when `position_major`, (head, position) otherwise.
fn merge(
    units: &[&[f32]],
    (b, t, kv, hd): (usize, usize, usize, usize),
    n: usize,
    position_major: bool,
) -> Vec<f32> {
    let width = kv * n * hd;
    let mut out = vec![0f32; b * t * width];
    for (u, rows) in units.iter().enumerate() {
        let (bi, g) = (u / kv, u % kv);
        for i in 0..t {
            let dst = &mut out[(bi * t + i) * width + g * n * hd..][..n * hd];
            if position_major {
                dst.copy_from_slice(&rows[i * n * hd..][..n * hd]);
            } else {
                for (gi, head) in dst.chunks_exact_mut(hd).enumerate() {
                    head.copy_from_slice(&rows[(gi * t + i) * hd..][..hd]);
                }
            }
        }
    }
    out
}

/// Query positions per block of [`FusedAttention`]: each block multiplies
/// only the keys some position in it may see (a causal mask's lower
/// triangle, a sliding window's band, in steps of this many positions).
const BLOCK: usize = 32;

/// For each mask [t, t] of `masks` and each block of [`BLOCK`] positions, the
/// keys its rows need: from the first to one past the last key any of them
/// does not mask with −∞ (keys outside have probability exactly 0). A row that
/// masks every key with −∞ needs them all (its softmax stays what it was).
fn key_ranges(masks: &[f32], t: usize) -> Vec<Range<usize>> {
    masks
        .chunks_exact(t * t)
        .flat_map(|mask| {
            (0..t).step_by(BLOCK).map(move |i0| {
                (i0..(i0 + BLOCK).min(t))
                    .map(|i| {
                        let row = &mask[i * t..][..t];
                        let seen = |m: &f32| *m != f32::NEG_INFINITY;
                        match (row.iter().position(seen), row.iter().rposition(seen)) {
                            (Some(first), Some(last)) => first..last + 1,
                            _ => 0..t,
                        }
                    })
                    .reduce(|a, b| a.start.min(b.start)..a.end.max(b.end))
                    .unwrap_or(0..t)
            })
        })
        .collect()
}

/// Scores [rows, width] plus the additive `mask` [t, width] (row `r` takes
/// the mask's row `r % t`: the rows are `t` positions of stacked heads), then
/// a softmax per row.
#[inline(always)]
fn mask_and_softmax(probs: &mut [f32], mask: &[f32], t: usize) {
    let width = mask.len() / t;
    for (r, row) in probs.chunks_mut(width).enumerate() {
        let m = &mask[(r % t) * width..][..width];
        row.iter_mut().zip(m).for_each(|(x, m)| *x += m);
        crate::vmath::softmax_row(row);
    }
}

/// The values of a CPU f32 tensor [b, heads, total, hd] whose heads each lie
/// contiguous (a view of a KV cache's buffer).
struct Heads<'a> {
    all: &'a [f32],
    /// Values from one sequence to the next, and from one head to the next.
    strides: (usize, usize),
    /// Values of one head: total · hd.
    len: usize,
}

impl Heads<'_> {
    /// Head `h` of sequence `bi`: its rows [total, hd].
    fn head(&self, bi: usize, h: usize) -> &[f32] {
        &self.all[bi * self.strides.0 + h * self.strides.1..][..self.len]
    }
}

/// `f` over the heads of `ts` (read in place).
fn with_heads<T>(ts: [&Tensor; 2], f: impl FnOnce([Heads; 2]) -> T) -> candle_core::Result<T> {
    let guards = ts.map(|t| t.storage_and_layout());
    let mut heads = Vec::with_capacity(2);
    for (t, (guard, layout)) in ts.iter().zip(&guards) {
        let candle_core::Storage::Cpu(cpu) = &**guard else {
            candle_core::bail!("expected CPU tensors");
        };
        let (_, _, total, hd) = t.dims4()?;
        heads.push(Heads {
            all: &cpu.as_slice::<f32>()?[layout.start_offset()..],
            strides: (layout.stride()[0], layout.stride()[1]),
            len: total * hd,
        });
    }
    let heads: [Heads; 2] = heads
        .try_into()
        .map_err(|_| candle_core::Error::Msg("tensor count".into()))?;
    Ok(f(heads))
}

struct FusedAttention {
    cos: Tensor,
    sin: Tensor,
    /// [batch or 1, 1, seq, seq], contiguous.
    mask: Tensor,
    shape: AttentionShape,
    /// Per mask and block of [`BLOCK`] query positions, the keys it needs
    /// ([`key_ranges`]).
    keys: Vec<Range<usize>>,
    /// The forward pass's parts, taken by the backward pass (which recomputes
    /// them if it runs a second time).
    saved: Saved<Vec<HeadParts>>,
}

/// One key/value head of one sequence, with the `groups` query heads that
/// share it interleaved along the rows (row `i·groups + gi` is position `i`
/// of head `gi`, so a block of positions is a block of rows): rotated, scaled
/// queries [t·groups, hd], rotated keys and values [t, hd], probabilities
/// [t·groups, t] (zero outside each block's keys).
struct HeadParts {
    qs: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    probs: Vec<f32>,
}

/// `dst = rotate(src)` for one head's row ("rotate half" layout), by the
/// position's `cos`/`sin` [hd/2]; `sign` -1 rotates back (the backward pass).
fn rotate(src: &[f32], cos: &[f32], sin: &[f32], sign: f32, scale: f32, dst: &mut [f32]) {
    let half = cos.len();
    for d in 0..half {
        let (a, b) = (src[d], src[d + half]);
        let (c, s) = (cos[d], sign * sin[d]);
        dst[d] = (a * c - b * s) * scale;
        dst[d + half] = (b * c + a * s) * scale;
    }
}

impl FusedAttention {
    fn new(cos: &Tensor, sin: &Tensor, mask: &Tensor, shape: AttentionShape) -> Result<Self> {
        let mask = mask.contiguous()?;
        let keys = with_values([&mask], |[m]| key_ranges(m, shape.seq))?;
        Ok(FusedAttention {
            cos: cos.contiguous()?,
            sin: sin.contiguous()?,
            mask,
            shape,
            keys,
            saved: Saved::default(),
        })
    }

    /// The blocks of sequence `bi`: (first row, rows, first key, keys).
    fn blocks(&self, bi: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        let (t, groups) = (self.shape.seq, self.shape.heads / self.shape.kv_heads);
        let per_mask = t.div_ceil(BLOCK);
        let masks = self.keys.len() / per_mask;
        let keys = &self.keys[(bi % masks) * per_mask..][..per_mask];
        keys.iter().enumerate().map(move |(blk, keys)| {
            let i0 = blk * BLOCK;
            let rows = ((i0 + BLOCK).min(t) - i0) * groups;
            (i0 * groups, rows, keys.start, keys.len())
        })
    }

    /// For every (sequence, key/value head) — in parallel, each one's working
    /// set in cache — RoPE, scores, mask, softmax and the weighted values, per
    /// block of positions over the keys it may see; the output rows
    /// [t·groups, hd] of each unit come back beside its parts.
    fn forward_units(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
    ) -> candle_core::Result<Vec<(HeadParts, Vec<f32>)>> {
        use rayon::prelude::*;
        let AttentionShape {
            batch: b,
            seq: t,
            heads,
            kv_heads: kv,
            head_dim: hd,
            scale,
        } = self.shape;
        let groups = heads / kv;
        let half = hd / 2;
        with_values([&self.cos, &self.sin, &self.mask], |[cos, sin, mask]| {
            let masks = mask.len() / (t * t);
            (0..b * kv)
                .into_par_iter()
                .map(|u| {
                    share(|| {
                        let (bi, g) = (u / kv, u % kv);
                        let mut p = HeadParts {
                            qs: vec![0f32; groups * t * hd],
                            k: vec![0f32; t * hd],
                            v: vec![0f32; t * hd],
                            probs: vec![0f32; groups * t * t],
                        };
                        for i in 0..t {
                            let (c, s) = (&cos[i * half..][..half], &sin[i * half..][..half]);
                            let src = &q[((bi * t + i) * heads + g * groups) * hd..][..groups * hd];
                            let dst = &mut p.qs[i * groups * hd..][..groups * hd];
                            for (src, dst) in src.chunks_exact(hd).zip(dst.chunks_exact_mut(hd)) {
                                rotate(src, c, s, 1.0, scale as f32, dst);
                            }
                            let at = ((bi * t + i) * kv + g) * hd;
                            rotate(&k[at..][..hd], c, s, 1.0, 1.0, &mut p.k[i * hd..][..hd]);
                            p.v[i * hd..][..hd].copy_from_slice(&v[at..][..hd]);
                        }
                        let mask = &mask[(bi % masks) * t * t..][..t * t];
                        let mut o = vec![0f32; groups * t * hd];
                        for (r0, rows, k0, keys) in self.blocks(bi) {
                            let probs = &mut p.probs[r0 * t + k0..];
                            let (qs, ks) = (op(&p.qs[r0 * hd..]), op_t(&p.k[k0 * hd..]));
                            gemm_ld(probs, t, (rows, keys, hd), qs, ks, 1.0, false);
                            crate::vmath::vectorized(
                                #[inline(always)]
                                || {
                                    for (r, row) in probs.chunks_mut(t).take(rows).enumerate() {
                                        let m = &mask[(r0 + r) / groups * t + k0..][..keys];
                                        let row = &mut row[..keys];
                                        row.iter_mut().zip(m).for_each(|(x, m)| *x += m);
                                        crate::vmath::softmax_row(row);
                                    }
                                },
                            );
                            let probs = op(&p.probs[r0 * t + k0..]).ld(t);
                            let (o, vs) = (&mut o[r0 * hd..], op(&p.v[k0 * hd..]));
                            gemm(o, (rows, hd, keys), probs, vs, 1.0, false);
                        }
                        (p, o)
                    })
                })
                .collect()
        })
    }

    /// [`merge`] in this op's shape.
    fn merge(&self, units: &[&[f32]], n: usize) -> Vec<f32> {
        let AttentionShape {
            batch: b,
            seq: t,
            kv_heads: kv,
            head_dim: hd,
            ..
        } = self.shape;
        merge(units, (b, t, kv, hd), n, true)
    }
    /// The attention output [b, t, heads·hd] and every unit's parts.
    fn forward(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
    ) -> candle_core::Result<(Vec<f32>, Vec<HeadParts>)> {
        let units = self.forward_units(q, k, v)?;
        let out = self.merge(
            &units.iter().map(|(_, o)| &o[..]).collect::<Vec<_>>(),
            self.shape.heads / self.shape.kv_heads,
        );
        Ok((out, units.into_iter().map(|(p, _)| p).collect()))
    }
}

impl candle_core::CustomOp3 for FusedAttention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (q, k, v) = (values_of(s1, l1)?, values_of(s2, l2)?, values_of(s3, l3)?);
        let (out, parts) = self.forward(q, k, v)?;
        self.saved.put(parts)?;
        let AttentionShape {
            batch: b,
            seq: t,
            heads,
            head_dim: hd,
            ..
        } = self.shape;
        Ok((CpuStorage::F32(out), Shape::from((b, t, heads * hd))))
    }

    /// Per unit, with `S = Qs Kᵀ`, `P = softmax(S + mask)`, `O = P V`:
    /// `dV = Pᵀ dO`, `dS = P ⊙ (dO Vᵀ − rowsum(P ⊙ dO Vᵀ))`, `dQs = dS K`,
    /// `dK = dSᵀ Qs`, block by block of positions over the keys each sees;
    /// then the scale and the inverse rotation.
    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        use rayon::prelude::*;
        let AttentionShape {
            seq: t,
            heads,
            kv_heads: kv,
            head_dim: hd,
            scale,
            ..
        } = self.shape;
        let groups = heads / kv;
        let half = hd / 2;
        let saved = self.saved.take()?;
        let parts = match saved {
            Some(p) => p,
            None => with_values([q, k, v], |[q, k, v]| self.forward(q, k, v))??.1,
        };
        let grads: Vec<[Vec<f32>; 3]> =
            with_values([dy, &self.cos, &self.sin], |[dy, cos, sin]| {
                parts
                    .par_iter()
                    .enumerate()
                    .map(|(u, p)| {
                        share(|| {
                            let (bi, g) = (u / kv, u % kv);
                            let width = groups * hd;
                            let mut d_out = vec![0f32; t * width];
                            for (i, row) in d_out.chunks_exact_mut(width).enumerate() {
                                row.copy_from_slice(
                                    &dy[((bi * t + i) * heads + g * groups) * hd..][..width],
                                );
                            }
                            let (mut dqs, mut dk) = (vec![0f32; t * width], vec![0f32; t * hd]);
                            let mut dv = vec![0f32; t * hd];
                            let mut ds = vec![0f32; BLOCK * groups * t];
                            for (r0, rows, k0, keys) in self.blocks(bi) {
                                let d_o = op(&d_out[r0 * hd..]);
                                let probs_t = op_t(&p.probs[r0 * t + k0..]).ld(t);
                                let dv = &mut dv[k0 * hd..];
                                gemm(dv, (keys, hd, rows), probs_t, d_o, 1.0, true);
                                let ds = &mut ds[..rows * keys];
                                gemm(ds, (rows, keys, hd), d_o, op_t(&p.v[k0 * hd..]), 1.0, false);
                                let probs_rows = p.probs[r0 * t..].chunks(t);
                                for (row, pr) in ds.chunks_mut(keys).zip(probs_rows) {
                                    let pr = &pr[k0..][..keys];
                                    let dot: f32 = row.iter().zip(pr).map(|(d, p)| d * p).sum();
                                    row.iter_mut()
                                        .zip(pr)
                                        .for_each(|(d, p)| *d = p * (*d - dot));
                                }
                                let dq = &mut dqs[r0 * hd..];
                                let ks = op(&p.k[k0 * hd..]);
                                gemm(dq, (rows, hd, keys), op(ds), ks, scale as f32, false);
                                let (qs, dk) = (op(&p.qs[r0 * hd..]), &mut dk[k0 * hd..]);
                                gemm(dk, (keys, hd, rows), op_t(ds), qs, 1.0, true);
                            }
                            // Back through the rotations, row by row (in place via a copy).
                            let mut tmp = vec![0f32; hd];
                            let rows = dqs
                                .chunks_mut(hd)
                                .enumerate()
                                .map(|(r, row)| (r / groups, row));
                            for (i, row) in rows.chain(dk.chunks_mut(hd).enumerate()) {
                                tmp.copy_from_slice(row);
                                let (c, s) = (&cos[i * half..][..half], &sin[i * half..][..half]);
                                rotate(&tmp, c, s, -1.0, 1.0, row);
                            }
                            [dqs, dk, dv]
                        })
                    })
                    .collect()
            })?;
        let pick = |j: usize| grads.iter().map(|g| &g[j][..]).collect::<Vec<_>>();
        let dq = self.merge(&pick(0), groups);
        let dk = self.merge(&pick(1), 1);
        let dv = self.merge(&pick(2), 1);
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), q.device())?),
            Some(Tensor::from_vec(dk, k.shape(), k.device())?),
            Some(Tensor::from_vec(dv, v.shape(), v.device())?),
        ))
    }
}

/// Rotary embeddings ("rotate half" layout) of `x` [batch, heads, seq, head_dim]
/// with `cos`/`sin` [seq, head_dim / 2]. Differentiable, fused where it can be.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if !x.track_op() {
        return Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?);
    }
    if f32_cpu(x) && !cos.track_op() && !sin.track_op() {
        return Ok(x.contiguous()?.apply_op1(Rope {
            cos: cos.contiguous()?,
            sin: sin.contiguous()?,
        })?);
    }
    Ok(candle_nn::rotary_emb::rope_slow(x, cos, sin)?)
}

struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl candle_core::CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        on_storage(storage, layout, |x| {
            candle_nn::rotary_emb::rope(x, &self.cos, &self.sin)
        })
    }

    fn bwd(&self, _arg: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        // A rotation's transpose is the rotation by the opposite angle.
        let dx = candle_nn::rotary_emb::rope(&dy.contiguous()?, &self.cos, &self.sin.neg()?)?;
        Ok(Some(dx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = spectrum_core::Rng::new(seed);
        (0..n).map(|_| rng.f64() as f32 - 0.5).collect()
    }

    /// The training op, several blocks of positions long, against candle's
    /// composed ops in f64 (RoPE, grouped heads repeated, scores, mask,
    /// softmax, values), forward and gradients: a causal mask with a padded
    /// sequence (its last keys masked with −1e9) and with a sliding window, so
    /// that blocks need different numbers of keys. The prompt's (inference)
    /// attention gives the same output.
    #[test]
    fn blocked_attention_equals_the_composed_f64_computation() -> Result<()> {
        for window in [None, Some(BLOCK / 2 + 3)] {
            blocked_attention_case(window)?;
        }
        Ok(())
    }

    fn blocked_attention_case(window: Option<usize>) -> Result<()> {
        use candle_core::Var;
        let (b, t, heads, kv, hd) = (2, 2 * BLOCK + 7, 6, 2, 8);
        let (groups, half, pad) = (heads / kv, hd / 2, 5);
        let dev = Device::Cpu;
        let mut mask = vec![0f32; b * t * t];
        for (r, m) in mask.iter_mut().enumerate() {
            let (bi, i, j) = (r / (t * t), r / t % t, r % t);
            if j > i || window.is_some_and(|w| i - j >= w) {
                *m = f32::NEG_INFINITY;
            } else if bi == 1 && j >= t - pad {
                *m = -1e9;
            }
        }
        let angles: Vec<f32> = (0..t * half)
            .map(|n| (n / half) as f32 * 0.1f32.powf((n % half) as f32 / half as f32))
            .collect();
        let cos = Tensor::from_vec(angles.iter().map(|a| a.cos()).collect(), (t, half), &dev)?;
        let sin = Tensor::from_vec(angles.iter().map(|a| a.sin()).collect(), (t, half), &dev)?;
        let mask = Tensor::from_vec(mask, (b, 1, t, t), &dev)?;
        let (nq, nkv) = (b * t * heads * hd, b * t * kv * hd);
        let inputs = [
            (values(nq, 4), heads),
            (values(nkv, 5), kv),
            (values(nkv, 6), kv),
        ];
        let weights = Tensor::from_vec(values(nq, 7), (b, t, heads * hd), &dev)?;
        let scale = 0.35;
        let shape = AttentionShape {
            batch: b,
            seq: t,
            heads,
            kv_heads: kv,
            head_dim: hd,
            scale,
        };
        let vars = |dtype: DType| -> Result<Vec<Var>> {
            inputs
                .iter()
                .map(|(x, n)| {
                    let x = Tensor::from_vec(x.clone(), (b, t, n * hd), &dev)?;
                    Ok(Var::from_tensor(&x.to_dtype(dtype)?)?)
                })
                .collect()
        };
        let fused = vars(DType::F32)?;
        let out = attention(&fused[0], &fused[1], &fused[2], &cos, &sin, &mask, shape)?
            .expect("f32 on the CPU");
        let grads = (&out * &weights)?.sum_all()?.backward()?;

        let plain = vars(DType::F64)?;
        let (cos32, sin32) = (cos.clone(), sin.clone());
        let (cos, sin) = (cos.to_dtype(DType::F64)?, sin.to_dtype(DType::F64)?);
        let split = |x: &Tensor, n: usize| -> Result<Tensor> {
            let x = x.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()?;
            Ok(candle_nn::rotary_emb::rope_slow(&x, &cos, &sin)?)
        };
        let repeat = |x: Tensor| -> Result<Tensor> {
            Ok(x.unsqueeze(2)?
                .broadcast_as((b, kv, groups, t, hd))?
                .reshape((b, heads, t, hd))?)
        };
        let q = split(&plain[0], heads)?;
        let k = repeat(split(&plain[1], kv)?)?;
        let v = plain[2]
            .reshape((b, t, kv, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let v = repeat(v)?;
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask.to_dtype(DType::F64)?)?;
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let want = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, t, heads * hd))?;
        let plain_grads = (&want * weights.to_dtype(DType::F64)?)?
            .sum_all()?
            .backward()?;

        let close = |what: &str, got: &Tensor, want: &Tensor| -> Result<()> {
            let got: Vec<f64> = got.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
            let want: Vec<f64> = want.flatten_all()?.to_vec1()?;
            let scale = want.iter().fold(0f64, |m, x| m.max(x.abs()));
            let diff = got
                .iter()
                .zip(&want)
                .fold(0f64, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                scale > 0.0 && diff <= 1e-5 * scale,
                "{what} ({window:?}): {diff} vs {scale}"
            );
            Ok(())
        };
        close("output", &out, &want)?;
        let inputs: Vec<Tensor> = fused.iter().map(|v| v.as_tensor().detach()).collect();
        let prompt = attention_prompt(
            &inputs[0], &inputs[1], &inputs[2], &cos32, &sin32, &mask, shape,
        )?
        .expect("f32 on the CPU");
        close("prompt output", &prompt.0, &want)?;
        for (name, (f, p)) in ["dq", "dk", "dv"].iter().zip(fused.iter().zip(&plain)) {
            let got = grads.get(f.as_tensor()).expect("fused gradient");
            close(
                name,
                got,
                plain_grads.get(p.as_tensor()).expect("plain gradient"),
            )?;
        }
        Ok(())
    }

    /// Against a plain f64 computation: grouped query heads, keys and values
    /// as views of longer buffers (a cache with room), one and several new
    /// positions with a causal mask shared by the batch, and a head size
    /// that is not a multiple of the vector width.
    #[test]
    fn cached_attention_equals_the_plain_computation() -> Result<()> {
        for t in [1, 2, 7] {
            cached_attention_case(t)?;
        }
        Ok(())
    }

    fn cached_attention_case(t: usize) -> Result<()> {
        let (b, heads, kv, total, hd, room) = (2, 6, 2, 9, 40, 12);
        let groups = heads / kv;
        let dev = Device::Cpu;
        let (q, k, v) = (
            values(b * heads * t * hd, 1),
            values(b * kv * room * hd, 2),
            values(b * kv * room * hd, 3),
        );
        let mut mask = vec![0f32; t * total];
        for i in 0..t {
            for j in total - t + i + 1..total {
                mask[i * total + j] = -1e9;
            }
        }
        let buffer = |x: &[f32]| Tensor::from_vec(x.to_vec(), (b, kv, room, hd), &dev);
        let scale = 0.3;
        let out = attention_cached(
            &Tensor::from_vec(q.clone(), (b, heads, t, hd), &dev)?,
            &buffer(&k)?.narrow(2, 0, total)?,
            &buffer(&v)?.narrow(2, 0, total)?,
            &Tensor::from_vec(mask.clone(), (1, 1, t, total), &dev)?,
            scale,
        )?
        .expect("f32 on the CPU");
        assert_eq!(out.dims(), &[b, t, heads * hd]);
        let out: Vec<f32> = out.flatten_all()?.to_vec1()?;
        for bi in 0..b {
            for h in 0..heads {
                let g = h / groups;
                let key = |j: usize, d: usize| k[((bi * kv + g) * room + j) * hd + d] as f64;
                let value = |j: usize, d: usize| v[((bi * kv + g) * room + j) * hd + d] as f64;
                for i in 0..t {
                    let qr = &q[((bi * heads + h) * t + i) * hd..][..hd];
                    let scores: Vec<f64> = (0..total)
                        .map(|j| {
                            let dot: f64 = (0..hd).map(|d| qr[d] as f64 * key(j, d)).sum();
                            dot * scale + mask[i * total + j] as f64
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for d in 0..hd {
                        let want: f64 = (0..total).map(|j| e[j] / sum * value(j, d)).sum();
                        let got = out[(bi * t + i) * heads * hd + h * hd + d] as f64;
                        assert!(
                            (got - want).abs() < 1e-5,
                            "({bi}, {h}, {i}, {d}): {got} vs {want}"
                        );
                    }
                }
            }
        }
        Ok(())
    }
}
