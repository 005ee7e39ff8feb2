//! Attention: the masked softmax, rotary embeddings, and RoPE + scores +
//! mask + softmax + values of one layer as one node with its own backward.

use candle_core::{CpuStorage, D, DType, Layout, Shape, Tensor};

use crate::Result;

use super::gemm::{gemm, op, op_t};
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

struct FusedAttention {
    cos: Tensor,
    sin: Tensor,
    /// [batch or 1, 1, seq, seq], contiguous.
    mask: Tensor,
    shape: AttentionShape,
    /// The forward pass's parts, taken by the backward pass (which recomputes
    /// them if it runs a second time).
    saved: std::sync::Mutex<Option<Vec<HeadParts>>>,
}

/// One key/value head of one sequence, with the `groups` query heads that
/// share it stacked along the rows: rotated, scaled queries [groups·t, hd],
/// rotated keys and values [t, hd], probabilities [groups·t, t].
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
        Ok(FusedAttention {
            cos: cos.contiguous()?,
            sin: sin.contiguous()?,
            mask: mask.contiguous()?,
            shape,
            saved: std::sync::Mutex::new(None),
        })
    }

    /// For every (sequence, key/value head) — in parallel, each one's working
    /// set in cache — RoPE, scores, mask, softmax and the weighted values; the
    /// output rows [groups·t, hd] of each unit come back beside its parts.
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
                    let (bi, g) = (u / kv, u % kv);
                    let mut p = HeadParts {
                        qs: vec![0f32; groups * t * hd],
                        k: vec![0f32; t * hd],
                        v: vec![0f32; t * hd],
                        probs: vec![0f32; groups * t * t],
                    };
                    for i in 0..t {
                        let (c, s) = (&cos[i * half..][..half], &sin[i * half..][..half]);
                        for gi in 0..groups {
                            let src = &q[((bi * t + i) * heads + g * groups + gi) * hd..][..hd];
                            let dst = &mut p.qs[(gi * t + i) * hd..][..hd];
                            rotate(src, c, s, 1.0, scale as f32, dst);
                        }
                        let at = ((bi * t + i) * kv + g) * hd;
                        rotate(&k[at..][..hd], c, s, 1.0, 1.0, &mut p.k[i * hd..][..hd]);
                        p.v[i * hd..][..hd].copy_from_slice(&v[at..][..hd]);
                    }
                    let rows = groups * t;
                    gemm(
                        &mut p.probs,
                        (rows, t, hd),
                        op(&p.qs),
                        op_t(&p.k),
                        1.0,
                        false,
                    );
                    let mask = &mask[(bi % masks) * t * t..][..t * t];
                    crate::vmath::vectorized(
                        #[inline(always)]
                        || {
                            for (r, row) in p.probs.chunks_mut(t).enumerate() {
                                let m = &mask[(r % t) * t..][..t];
                                row.iter_mut().zip(m).for_each(|(x, m)| *x += m);
                                crate::vmath::softmax_row(row);
                            }
                        },
                    );
                    let mut o = vec![0f32; rows * hd];
                    gemm(&mut o, (rows, hd, t), op(&p.probs), op(&p.v), 1.0, false);
                    (p, o)
                })
                .collect()
        })
    }

    /// Rows [n·t, hd] per unit (n heads of one kv group) back into [b, t, n_all·hd].
    fn merge(&self, units: &[&[f32]], n: usize) -> Vec<f32> {
        let AttentionShape {
            batch: b,
            seq: t,
            kv_heads: kv,
            head_dim: hd,
            ..
        } = self.shape;
        let width = kv * n * hd;
        let mut out = vec![0f32; b * t * width];
        for (u, rows) in units.iter().enumerate() {
            let (bi, g) = (u / kv, u % kv);
            for gi in 0..n {
                for i in 0..t {
                    let dst = (bi * t + i) * width + (g * n + gi) * hd;
                    out[dst..][..hd].copy_from_slice(&rows[(gi * t + i) * hd..][..hd]);
                }
            }
        }
        out
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
        let (q, k, v) = (tensor_of(s1, l1)?, tensor_of(s2, l2)?, tensor_of(s3, l3)?);
        let (out, parts) = with_values([&q, &k, &v], |[q, k, v]| self.forward(q, k, v))??;
        *self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg("lock".into()))? = Some(parts);
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
    /// `dK = dSᵀ Qs`, then the scale and the inverse rotation.
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
        let saved = self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg("lock".into()))?
            .take();
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
                        let (bi, g) = (u / kv, u % kv);
                        let rows = groups * t;
                        let mut d_out = vec![0f32; rows * hd];
                        for gi in 0..groups {
                            for i in 0..t {
                                let src =
                                    &dy[((bi * t + i) * heads + g * groups + gi) * hd..][..hd];
                                d_out[(gi * t + i) * hd..][..hd].copy_from_slice(src);
                            }
                        }
                        let mut dv = vec![0f32; t * hd];
                        gemm(
                            &mut dv,
                            (t, hd, rows),
                            op_t(&p.probs),
                            op(&d_out),
                            1.0,
                            false,
                        );
                        let mut ds = vec![0f32; rows * t];
                        gemm(&mut ds, (rows, t, hd), op(&d_out), op_t(&p.v), 1.0, false);
                        for (row, pr) in ds.chunks_mut(t).zip(p.probs.chunks(t)) {
                            let dot: f32 = row.iter().zip(pr).map(|(d, p)| d * p).sum();
                            row.iter_mut()
                                .zip(pr)
                                .for_each(|(d, p)| *d = p * (*d - dot));
                        }
                        let (mut dqs, mut dk) = (vec![0f32; rows * hd], vec![0f32; t * hd]);
                        gemm(
                            &mut dqs,
                            (rows, hd, t),
                            op(&ds),
                            op(&p.k),
                            scale as f32,
                            false,
                        );
                        gemm(&mut dk, (t, hd, rows), op_t(&ds), op(&p.qs), 1.0, false);
                        // Back through the rotations, row by row (in place via a copy).
                        let mut tmp = vec![0f32; hd];
                        for (r, row) in dqs.chunks_mut(hd).chain(dk.chunks_mut(hd)).enumerate() {
                            let i = r % t;
                            tmp.copy_from_slice(row);
                            let (c, s) = (&cos[i * half..][..half], &sin[i * half..][..half]);
                            rotate(&tmp, c, s, -1.0, 1.0, row);
                        }
                        [dqs, dk, dv]
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
