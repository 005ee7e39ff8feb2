//! Linear layers as single graph nodes: `x Wᵀ`, the frozen layer plus its
//! LoRA adapter, and the SwiGLU gate of Llama-family MLPs.

use std::sync::Arc;

use candle_core::{CpuStorage, Layout, Shape, Tensor};

use crate::Result;
use crate::bf16::{Bf16Unit, Tiles};
use crate::blocks::Blocks;
use crate::skinny::Weights;

use super::gemm::{gemm, gemm_ld, gemm_new, op, op_t};
use super::host::*;

/// `silu(gate) ⊙ up` (the SwiGLU of Llama-family MLPs). Differentiable, fused
/// where it can be (one vectorised pass; keeps only its two inputs for backward).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if f32_cpu(gate) && f32_cpu(up) && gate.dims() == up.dims() {
        return Ok(gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)?);
    }
    Ok((candle_nn::ops::silu(gate)? * up)?)
}

/// `silu(gate) ⊙ up` over rows of `width`, in parallel.
fn swiglu_rows(gate: &[f32], up: &[f32], width: usize) -> Vec<f32> {
    let mut out = vec![0f32; gate.len()];
    par_rows(&mut out, width, |i, row| {
        let (g, u) = (&gate[i * width..][..width], &up[i * width..][..width]);
        crate::vmath::vectorized(
            #[inline(always)]
            || crate::vmath::swiglu_row(row, g, u),
        );
    });
    out
}

/// SwiGLU's backward over rows of `width`, in parallel: (d gate, d up).
fn swiglu_backward_rows(
    gate: &[f32],
    up: &[f32],
    dy: &[f32],
    width: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (mut d_gate, mut d_up) = (vec![0f32; gate.len()], vec![0f32; gate.len()]);
    par_rows2(&mut d_gate, &mut d_up, width, |i, dg, du| {
        let at = i * width;
        let (g, u, dy) = (&gate[at..][..width], &up[at..][..width], &dy[at..][..width]);
        crate::vmath::vectorized(
            #[inline(always)]
            || crate::vmath::swiglu_backward_row(dg, du, g, u, dy),
        )
    });
    (d_gate, d_up)
}

struct SwiGlu;

impl candle_core::CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if !l1.is_contiguous() || !l2.is_contiguous() || l1.shape() != l2.shape() {
            candle_core::bail!("swiglu: expected two contiguous inputs of one shape");
        }
        let n = l1.shape().elem_count();
        let gate = &s1.as_slice::<f32>()?[l1.start_offset()..][..n];
        let up = &s2.as_slice::<f32>()?[l2.start_offset()..][..n];
        let width = l1.shape().dims().last().copied().unwrap_or(1);
        let out = swiglu_rows(gate, up, width);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    /// `d gate = dy ⊙ up ⊙ σ(g) (1 + g (1 − σ(g)))`, `d up = dy ⊙ silu(g)`.
    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let width = gate.dims().last().copied().unwrap_or(1);
        let (d_gate, d_up) = with_values([gate, up, dy], |[g, u, dy]| {
            swiglu_backward_rows(g, u, dy, width)
        })?;
        Ok((
            Some(tensor_from(d_gate, gate)?),
            Some(tensor_from(d_up, up)?),
        ))
    }
}

/// `x Wᵀ` over the last dimension of `x` [..., in] (one matrix multiply over
/// all rows) as one node that takes `x` as it is (no reshape nodes, whose
/// backward passes would each allocate, zero and add a gradient). Its backward
/// computes `∂L/∂x` only when `x` needs it and `∂L/∂W` only when `W` trains
/// (not in LoRA training), straight in `W`'s layout (`dyᵀ x`; candle's matmul
/// goes through a transposed gradient and a strided add).
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    linear_with(x, w, None, None)
}

/// [`linear`] with the bf16 copies of `w`, which its products use while the
/// thread runs frozen products in bf16 ([`super::FrozenMatmul`]) and `w`
/// does not train, and the GGUF blocks `w` was dequantised from, which the
/// products of a few rows (token-by-token generation) read instead of `w`
/// once checked to dequantise to it.
pub fn linear_with(
    x: &Tensor,
    w: &Tensor,
    tiles: Option<&Arc<Tiles>>,
    blocks: Option<&Blocks>,
) -> Result<Tensor> {
    if f32_cpu(x) && f32_cpu(w) && (x.track_op() || w.track_op()) {
        let frozen = !w.is_variable() && !w.track_op();
        let bf16 = super::bf16_for(tiles.filter(|_| frozen));
        return Ok(x
            .contiguous()?
            .apply_op2(&w.contiguous()?, LinearOp { bf16 })?);
    }
    let (n, k) = w.dims2()?;
    let m = x.elem_count() / k.max(1);
    if f32_cpu(x) && f32_cpu(w) && m <= crate::skinny::MAX_ROWS {
        // Token-by-token generation: stream W once instead of packing it
        // (its blocks, if it has them: a weight that trains never does).
        let blocks = blocks.filter(|_| !w.is_variable());
        let y = with_values([x, w], |[x, w]| {
            let mut y = vec![0f32; m * n];
            let weights = match blocks {
                Some(b) if b.dequantise_to(w) => Weights::Blocks(b),
                _ => Weights::F32(w),
            };
            crate::skinny::matmul_t(x, weights, m, k, &mut y);
            y
        })?;
        return Ok(Tensor::from_vec(y, with_last(x.dims(), n), x.device())?);
    }
    let (rows, out) = as_rows(x, n)?;
    Ok(rows.matmul(&w.t()?)?.reshape(out)?)
}

/// The bf16 unit and the frozen weight's packed copies, when its products run there.
type OnBf16 = Option<(Bf16Unit, Arc<Tiles>)>;

struct LinearOp {
    bf16: OnBf16,
}

/// `x Wᵀ` in bf16: `x` [..., k] and `w` [n, k] contiguous CPU f32.
fn bf16_forward(
    (unit, tiles): &(Bf16Unit, Arc<Tiles>),
    x: &[f32],
    x_dims: &[usize],
    w: &[f32],
    (n, k): (usize, usize),
) -> (Vec<f32>, Shape) {
    let rows = x.len() / k.max(1);
    let mut y = vec![0f32; rows * n];
    crate::bf16::matmul(*unit, &mut y, x, rows, tiles.forward(w, n, k), false);
    (y, Shape::from(with_last(x_dims, n)))
}

/// `dx (+)= dy W` in bf16, for `dy` [rows, n] and `w` [n, k].
fn bf16_backward(
    (unit, tiles): &(Bf16Unit, Arc<Tiles>),
    dx: &mut [f32],
    dy: &[f32],
    w: &[f32],
    (n, k): (usize, usize),
    add: bool,
) {
    let rows = dy.len() / n.max(1);
    crate::bf16::matmul(*unit, dx, dy, rows, tiles.backward(w, n, k), add);
}

impl candle_core::CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some(bf16) = &self.bf16 else {
            return matmul_t(s1, l1, s2, l2);
        };
        let (n, k) = l2.shape().dims2()?;
        let rows = l1.shape().elem_count() / k.max(1);
        if !l1.is_contiguous() || !l2.is_contiguous() || l1.shape().dims().last() != Some(&k) {
            candle_core::bail!("linear: expected contiguous [..., {k}] x [{n}, {k}]ᵀ");
        }
        let x = &s1.as_slice::<f32>()?[l1.start_offset()..][..rows * k];
        let w = &s2.as_slice::<f32>()?[l2.start_offset()..][..n * k];
        let (y, shape) = bf16_forward(bf16, x, l1.shape().dims(), w, (n, k));
        Ok((CpuStorage::F32(y), shape))
    }

    /// `∂x = dy W`, `∂W = dyᵀ x` (rows of `x` and `dy` as one matrix each).
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // Gradients computed from graph tensors would keep the graph's
        // tensors alive as long as they live (a weight's, to the end).
        let (need_dx, need_dw) = (x.track_op(), w.track_op());
        let (x, w) = (x.detach(), w.detach());
        let (dy_rows, _) = as_rows(dy, 0)?;
        let dx = match (&self.bf16, need_dx) {
            (Some(bf16), true) => {
                let dims = w.dims2()?;
                let dx = with_values([dy, &w], |[dy, w]| {
                    let mut dx = vec![0f32; x.elem_count()];
                    bf16_backward(bf16, &mut dx, dy, w, dims, false);
                    dx
                })?;
                Some(tensor_from(dx, &x)?)
            }
            (None, true) => Some(dy_rows.matmul(&w)?.reshape(x.shape())?),
            (_, false) => None,
        };
        let dw = if need_dw {
            let (x_rows, _) = as_rows(&x, 0)?;
            Some(dy_rows.t()?.matmul(&x_rows)?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// `x Wᵀ + s · (x Aᵀ) Bᵀ`: a linear layer with a frozen weight `W` [out, in]
/// and a LoRA adapter `A` [r, in], `B` [out, r], as one node of the graph.
/// The composed version has four (two products, a scale, a sum), and candle's
/// backward allocates and adds an activation-sized gradient for each; this one
/// keeps its inputs and the small `x Aᵀ` [rows, r], adds the adapter's product
/// into the output as the matrix multiply writes it, and computes `∂L/∂x` only
/// when `x` needs it.
pub fn lora_matmul(
    x: &Tensor,
    w: &Tensor,
    (tiles, blocks): (Option<&Arc<Tiles>>, Option<&Blocks>),
    (a, b): (&Tensor, &Tensor),
    scale: f64,
) -> Result<Tensor> {
    let frozen = !w.is_variable() && !w.track_op();
    if f32_cpu(x) && frozen && f32_cpu(w) && (a.track_op() || b.track_op()) {
        let op = LoraMatmul {
            weight: w.contiguous()?,
            bf16: super::bf16_for(tiles),
            scale: scale as f32,
            need_dx: x.track_op(),
            saved_h: Saved::default(),
        };
        return Ok(x
            .contiguous()?
            .apply_op3(&a.contiguous()?, &b.contiguous()?, op)?);
    }
    let base = linear_with(x, w, tiles, blocks)?;
    let (rows, out) = as_rows(x, w.dim(0)?)?;
    let low = rows.matmul(&a.t()?)?.matmul(&(b * scale)?.t()?)?;
    Ok((base + low.reshape(out)?)?)
}

struct LoraMatmul {
    weight: Tensor,
    bf16: OnBf16,
    scale: f32,
    need_dx: bool,
    /// `x Aᵀ` from the forward pass, taken by the backward pass (which
    /// recomputes it if it runs a second time).
    saved_h: Saved<Vec<f32>>,
}

impl LoraMatmul {
    /// (rows, in, out) for an input `x` with `n` elements.
    fn sizes(&self, n: usize) -> candle_core::Result<(usize, usize, usize)> {
        let (out, inp) = self.weight.dims2()?;
        Ok((n / inp.max(1), inp, out))
    }
}

impl candle_core::CustomOp3 for LoraMatmul {
    fn name(&self) -> &'static str {
        "lora-matmul"
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
        let (rows, inp, out) = self.sizes(l1.shape().elem_count())?;
        let r = l2.shape().dims2()?.0;
        if !(l1.is_contiguous() && l2.is_contiguous() && l3.is_contiguous()) {
            candle_core::bail!("lora-matmul: expected contiguous inputs");
        }
        let x = &s1.as_slice::<f32>()?[l1.start_offset()..][..rows * inp];
        let a = &s2.as_slice::<f32>()?[l2.start_offset()..][..r * inp];
        let b = &s3.as_slice::<f32>()?[l3.start_offset()..][..out * r];
        let mut y = host_slice(&self.weight, |w| match &self.bf16 {
            Some(bf16) => {
                let mut y = vec![0f32; rows * out];
                crate::bf16::matmul(bf16.0, &mut y, x, rows, bf16.1.forward(w, out, inp), false);
                y
            }
            None => gemm_new((rows, out, inp), op(x), op_t(w), 1.0),
        })
        .ok_or_else(|| candle_core::Error::Msg("expected a contiguous CPU f32 weight".into()))?;
        let h = gemm_new((rows, r, inp), op(x), op_t(a), 1.0);
        gemm(&mut y, (rows, out, r), op(&h), op_t(b), self.scale, true);
        self.saved_h.put(h)?;
        let shape = Shape::from(with_last(l1.shape().dims(), out));
        Ok((CpuStorage::F32(y), shape))
    }

    /// With `h = x Aᵀ` and `dh = s · dy B`: `∂A = dhᵀ x`, `∂B = s · dyᵀ h`,
    /// `∂x = dy W + dh A`.
    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (rows, inp, out) = self.sizes(x.elem_count())?;
        let r = a.dim(0)?;
        let saved = self.saved_h.take()?;
        let (dx, da, db) = with_values([x, a, b, dy, &self.weight], |[x, a, b, dy, w]| {
            let h = saved.unwrap_or_else(|| gemm_new((rows, r, inp), op(x), op_t(a), 1.0));
            let dh = gemm_new((rows, r, out), op(dy), op(b), self.scale);
            let db = gemm_new((out, r, rows), op_t(dy), op(&h), self.scale);
            let da = gemm_new((r, inp, rows), op_t(&dh), op(x), 1.0);
            let dx = self.need_dx.then(|| {
                let mut dx = match &self.bf16 {
                    Some(bf16) => {
                        let mut dx = vec![0f32; rows * inp];
                        bf16_backward(bf16, &mut dx, dy, w, (out, inp), false);
                        dx
                    }
                    None => gemm_new((rows, inp, out), op(dy), op(w), 1.0),
                };
                gemm(&mut dx, (rows, inp, r), op(&dh), op(a), 1.0, true);
                dx
            });
            (dx, da, db)
        })?;
        let dx = dx.map(|dx| tensor_from(dx, x)).transpose()?;
        Ok((dx, Some(tensor_from(da, a)?), Some(tensor_from(db, b)?)))
    }
}

/// A frozen linear layer with its LoRA adapter, as [`lora_swiglu`] takes it:
/// `W` [out, in] (and its bf16 copies), `A` [r, in], `B` [out, r], the scale.
#[derive(Debug, Clone, Copy)]
pub struct LoraParts<'a> {
    pub weight: &'a Tensor,
    pub tiles: &'a Arc<Tiles>,
    pub a: &'a Tensor,
    pub b: &'a Tensor,
    pub scale: f64,
}

/// `silu(gate(x)) ⊙ up(x)` for two frozen layers with LoRA adapters of one
/// rank (a Llama-family MLP's gate and up in LoRA training) as one graph node:
/// where [`lora_matmul`] twice and [`swiglu`] make three, whose backward
/// passes each have candle allocate, zero and add an activation-sized
/// gradient (two of `[rows, inner]`, and one more for `x`), and whose
/// adapters multiply `x` by `A` twice. The frozen products run in bf16 where
/// the thread asks for it, as [`lora_matmul`]'s do. `None` where it does not
/// apply (not f32 on the CPU, a weight that trains, ranks that differ): the
/// caller composes the three.
pub fn lora_swiglu(x: &Tensor, gate: LoraParts, up: LoraParts) -> Result<Option<Tensor>> {
    let frozen = |p: &LoraParts| !p.weight.is_variable() && !p.weight.track_op();
    let fits = [gate, up].iter().all(|p| {
        frozen(p)
            && f32_cpu(p.weight)
            && f32_cpu(p.a)
            && f32_cpu(p.b)
            && (p.a.track_op() || p.b.track_op())
    });
    let (Ok((rank, inp)), Ok((out, rank_u))) = (gate.a.dims2(), up.b.dims2()) else {
        return Ok(None);
    };
    let same = gate.weight.dims() == up.weight.dims()
        && gate.a.dims() == up.a.dims()
        && gate.b.dims() == up.b.dims()
        && gate.weight.dims() == [out, inp]
        && rank == rank_u;
    if !(fits && same && f32_cpu(x) && x.dims().last() == Some(&inp)) {
        return Ok(None);
    }
    let op = LoraSwiGlu {
        weights: [gate.weight.contiguous()?, up.weight.contiguous()?],
        bf16: [gate, up].map(|p| super::bf16_for(Some(p.tiles))),
        scales: [gate.scale as f32, up.scale as f32],
        need_dx: x.track_op(),
        saved: Saved::default(),
    };
    // The adapters side by side: A [2r, in], B [2·out, r] (candle takes the
    // gradients of the two back through the concatenations).
    let a = Tensor::cat(&[gate.a, up.a], 0)?;
    let b = Tensor::cat(&[gate.b, up.b], 0)?;
    Ok(Some(x.contiguous()?.apply_op3(&a, &b, op)?))
}

/// The forward pass's values that the backward pass takes: the gate's and
/// up's pre-activations [rows, out] and `h = x [A_gate; A_up]ᵀ` [rows, 2r].
struct SwiGluParts {
    gate: Vec<f32>,
    up: Vec<f32>,
    h: Vec<f32>,
}

struct LoraSwiGlu {
    /// The frozen `W_gate`, `W_up` [out, in].
    weights: [Tensor; 2],
    /// Each weight's bf16 unit and packed copies, when its products run in bf16.
    bf16: [OnBf16; 2],
    scales: [f32; 2],
    need_dx: bool,
    saved: Saved<SwiGluParts>,
}

impl LoraSwiGlu {
    /// (rows, in, out, r) from `x`'s and the concatenated `A`'s sizes.
    fn sizes(
        &self,
        x_len: usize,
        a_len: usize,
    ) -> candle_core::Result<(usize, usize, usize, usize)> {
        let (out, inp) = self.weights[0].dims2()?;
        if inp == 0 || !x_len.is_multiple_of(inp) || !a_len.is_multiple_of(2 * inp) {
            candle_core::bail!("lora-swiglu: {x_len} values over rows of {inp}");
        }
        Ok((x_len / inp, inp, out, a_len / (2 * inp)))
    }

    /// The pre-activations of both layers and `h`, for `x` [rows, in].
    fn parts(&self, x: &[f32], a: &[f32], b: &[f32], r: usize) -> candle_core::Result<SwiGluParts> {
        let (out, inp) = self.weights[0].dims2()?;
        let rows = x.len() / inp;
        let h = gemm_new((rows, 2 * r, inp), op(x), op_t(a), 1.0);
        let mut pre = [(); 2].map(|_| Vec::new());
        for (i, w) in self.weights.iter().enumerate() {
            let mut y = host_slice(w, |w| match &self.bf16[i] {
                Some((unit, tiles)) => {
                    let mut y = vec![0f32; rows * out];
                    crate::bf16::matmul(*unit, &mut y, x, rows, tiles.forward(w, out, inp), false);
                    y
                }
                None => gemm_new((rows, out, inp), op(x), op_t(w), 1.0),
            })
            .ok_or_else(|| {
                candle_core::Error::Msg("expected a contiguous CPU f32 weight".into())
            })?;
            let (hi, bi) = (
                op(&h[i * r..]).ld(2 * r),
                op_t(&b[i * out * r..][..out * r]),
            );
            gemm(&mut y, (rows, out, r), hi, bi, self.scales[i], true);
            pre[i] = y;
        }
        let [gate, up] = pre;
        Ok(SwiGluParts { gate, up, h })
    }
}

impl candle_core::CustomOp3 for LoraSwiGlu {
    fn name(&self) -> &'static str {
        "lora-swiglu"
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
        let (x, a, b) = (values_of(s1, l1)?, values_of(s2, l2)?, values_of(s3, l3)?);
        let (_, _, out, r) = self.sizes(x.len(), a.len())?;
        let parts = self.parts(x, a, b, r)?;
        let hidden = swiglu_rows(&parts.gate, &parts.up, out);
        self.saved.put(parts)?;
        Ok((
            CpuStorage::F32(hidden),
            Shape::from(with_last(l1.shape().dims(), out)),
        ))
    }

    /// Through SwiGLU to `d gate`, `d up`; then per layer as [`lora_matmul`]
    /// (`∂h = s · dy B`, `∂B = s · dyᵀ h`), with the adapters' `∂A = ∂hᵀ x` and
    /// `∂x = dy_gate W_gate + dy_up W_up + ∂h [A_gate; A_up]` over both at once.
    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (rows, inp, out, r) = self.sizes(x.elem_count(), a.elem_count())?;
        let saved = self.saved.take()?;
        let [wg, wu] = &self.weights;
        let (dx, da, db) = with_values([x, a, b, dy, wg, wu], |[x, a, b, dy, wg, wu]| {
            let parts = match saved {
                Some(parts) => parts,
                None => self.parts(x, a, b, r)?,
            };
            let (d_gate, d_up) = swiglu_backward_rows(&parts.gate, &parts.up, dy, out);
            let mut dh = vec![0f32; rows * 2 * r];
            let mut db = vec![0f32; 2 * out * r];
            for (i, d) in [&d_gate, &d_up].into_iter().enumerate() {
                let bi = op(&b[i * out * r..][..out * r]);
                gemm_ld(
                    &mut dh[i * r..],
                    2 * r,
                    (rows, r, out),
                    op(d),
                    bi,
                    self.scales[i],
                    false,
                );
                let hi = op(&parts.h[i * r..]).ld(2 * r);
                let dbi = &mut db[i * out * r..][..out * r];
                gemm(dbi, (out, r, rows), op_t(d), hi, self.scales[i], false);
            }
            let da = gemm_new((2 * r, inp, rows), op_t(&dh), op(x), 1.0);
            let dx = self.need_dx.then(|| {
                let mut dx = match &self.bf16[0] {
                    Some(on) => {
                        let mut dx = vec![0f32; rows * inp];
                        bf16_backward(on, &mut dx, &d_gate, wg, (out, inp), false);
                        dx
                    }
                    None => gemm_new((rows, inp, out), op(&d_gate), op(wg), 1.0),
                };
                match &self.bf16[1] {
                    Some(on) => bf16_backward(on, &mut dx, &d_up, wu, (out, inp), true),
                    None => gemm(&mut dx, (rows, inp, out), op(&d_up), op(wu), 1.0, true),
                }
                gemm(&mut dx, (rows, inp, 2 * r), op(&dh), op(a), 1.0, true);
                dx
            });
            Ok::<_, candle_core::Error>((dx, da, db))
        })??;
        let dx = dx.map(|dx| tensor_from(dx, x)).transpose()?;
        Ok((dx, Some(tensor_from(da, a)?), Some(tensor_from(db, b)?)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor, Var};

    use super::*;

    /// The fused gate/up/SwiGLU node gives the composed computation's output
    /// and gradients (x, both adapters' A and B), computed in f64.
    #[test]
    fn lora_swiglu_equals_the_composed_f64_computation() -> Result<()> {
        let dev = &Device::Cpu;
        let (inp, out, r) = (24, 40, 4);
        let values = |shape: &[usize], std: f32| Tensor::randn(0f32, std, shape, dev);
        let weights = [values(&[out, inp], 0.2)?, values(&[out, inp], 0.2)?];
        let x = Var::from_tensor(&values(&[2, 37, inp], 1.0)?)?;
        let a = [values(&[r, inp], 0.3)?, values(&[r, inp], 0.3)?].map(|t| Var::from_tensor(&t));
        let b = [values(&[out, r], 0.3)?, values(&[out, r], 0.3)?].map(|t| Var::from_tensor(&t));
        let ([ag, au], [bg, bu]) = (a, b);
        let (ag, au, bg, bu) = (ag?, au?, bg?, bu?);
        let scales = [2.0, 0.5];
        let tiles = Arc::<Tiles>::default();
        let dy = values(&[2, 37, out], 1.0)?;
        let fused = lora_swiglu(
            x.as_tensor(),
            LoraParts {
                weight: &weights[0],
                tiles: &tiles,
                a: ag.as_tensor(),
                b: bg.as_tensor(),
                scale: scales[0],
            },
            LoraParts {
                weight: &weights[1],
                tiles: &tiles,
                a: au.as_tensor(),
                b: bu.as_tensor(),
                scale: scales[1],
            },
        )?
        .expect("the fused op applies");
        let fused_grads = (fused.clone() * &dy)?.sum_all()?.backward()?;
        // The composed computation in f64.
        let f64_of = |t: &Tensor| t.to_dtype(DType::F64);
        let x64 = Var::from_tensor(&f64_of(x.as_tensor())?)?;
        let vars64: Vec<Var> = [&ag, &bg, &au, &bu]
            .iter()
            .map(|v| Var::from_tensor(&f64_of(v.as_tensor())?))
            .collect::<candle_core::Result<_>>()?;
        let rows = x64.as_tensor().reshape((2 * 37, inp))?;
        let layer = |w: &Tensor, a: &Var, b: &Var, s: f64| -> candle_core::Result<Tensor> {
            let base = rows.matmul(&f64_of(w)?.t()?)?;
            let low = rows
                .matmul(&a.as_tensor().t()?)?
                .matmul(&b.as_tensor().t()?)?;
            base + (low * s)?
        };
        let gate = layer(&weights[0], &vars64[0], &vars64[1], scales[0])?;
        let up = layer(&weights[1], &vars64[2], &vars64[3], scales[1])?;
        let composed = (candle_nn::ops::silu(&gate)? * up)?.reshape((2, 37, out))?;
        let grads64 = (composed.clone() * f64_of(&dy)?)?.sum_all()?.backward()?;
        let close = |what: &str, ours: &Tensor, theirs: &Tensor| -> Result<()> {
            let (ours, theirs) = (
                ours.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?,
                theirs.flatten_all()?.to_vec1::<f64>()?,
            );
            let scale = theirs.iter().fold(0f64, |m, v| m.max(v.abs()));
            let diff = ours
                .iter()
                .zip(&theirs)
                .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff <= 1e-5 * scale, "{what}: {diff} vs {scale}");
            Ok(())
        };
        close("output", &fused, &composed)?;
        let grad = |g: &candle_core::backprop::GradStore, t: &Tensor| {
            g.get(t).cloned().expect("a gradient")
        };
        close("x", &grad(&fused_grads, &x), &grad(&grads64, &x64))?;
        for (name, ours, theirs) in [
            ("A gate", &ag, &vars64[0]),
            ("B gate", &bg, &vars64[1]),
            ("A up", &au, &vars64[2]),
            ("B up", &bu, &vars64[3]),
        ] {
            close(name, &grad(&fused_grads, ours), &grad(&grads64, theirs))?;
        }
        Ok(())
    }

    /// With frozen products in bf16, the fused node runs them in bf16 too: its
    /// output and gradients equal the composed bf16 computation's (two
    /// `lora_matmul`s and `swiglu`, whose products round the same operands)
    /// up to f32 summation, and differ from the f32 node's by bf16 rounding.
    #[test]
    fn lora_swiglu_in_bf16_equals_the_composed_bf16_computation() -> Result<()> {
        use crate::ops::{FrozenMatmul, set_frozen_matmul};
        if crate::bf16::Bf16Unit::get().is_none() {
            eprintln!("skipped: this CPU or OS runs no bf16 unit (AMX, AVX512-BF16)");
            return Ok(());
        }
        let dev = &Device::Cpu;
        let (inp, out, r) = (64, 96, 4);
        let values = |shape: &[usize], std: f32| Tensor::randn(0f32, std, shape, dev);
        let weights = [values(&[out, inp], 0.2)?, values(&[out, inp], 0.2)?];
        let tiles = [Arc::<Tiles>::default(), Arc::<Tiles>::default()];
        let x = Var::from_tensor(&values(&[2, 40, inp], 1.0)?)?;
        let vars = [[r, inp], [out, r], [r, inp], [out, r]]
            .map(|shape| values(&shape, 0.3).and_then(|t| Var::from_tensor(&t)));
        let [ag, bg, au, bu] = vars;
        let (ag, bg, au, bu) = (ag?, bg?, au?, bu?);
        let scales = [2.0, 0.5];
        let dy = values(&[2, 40, out], 1.0)?;
        let parts = |i: usize| LoraParts {
            weight: &weights[i],
            tiles: &tiles[i],
            a: [&ag, &au][i].as_tensor(),
            b: [&bg, &bu][i].as_tensor(),
            scale: scales[i],
        };
        let fused = || -> Result<_> {
            let y = lora_swiglu(x.as_tensor(), parts(0), parts(1))?.expect("the fused op applies");
            let grads = (y.clone() * &dy)?.sum_all()?.backward()?;
            Ok((y, grads))
        };
        let (f32_y, _) = fused()?;
        let previous = set_frozen_matmul(FrozenMatmul::Bf16);
        let (bf16_y, bf16_grads) = fused()?;
        let layer = |i: usize| {
            let p = parts(i);
            lora_matmul(
                x.as_tensor(),
                p.weight,
                (Some(p.tiles), None),
                (p.a, p.b),
                p.scale,
            )
        };
        let composed = swiglu(&layer(0)?, &layer(1)?)?;
        set_frozen_matmul(previous);
        let composed_grads = (composed.clone() * &dy)?.sum_all()?.backward()?;
        let largest = |a: &Tensor, b: &Tensor| -> Result<(f32, f32)> {
            let (a, b) = (
                a.flatten_all()?.to_vec1::<f32>()?,
                b.flatten_all()?.to_vec1::<f32>()?,
            );
            let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = a
                .iter()
                .zip(&b)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            Ok((diff, scale))
        };
        let (diff, scale) = largest(&bf16_y, &composed)?;
        assert!(diff <= 1e-5 * scale, "output: {diff} vs {scale}");
        let (rounding, scale) = largest(&bf16_y, &f32_y)?;
        assert!(
            rounding > 1e-4 * scale,
            "the bf16 node equals the f32 one: no bf16 unit ran"
        );
        for (name, t) in [
            ("x", x.as_tensor()),
            ("A gate", ag.as_tensor()),
            ("B gate", bg.as_tensor()),
            ("A up", au.as_tensor()),
            ("B up", bu.as_tensor()),
        ] {
            let grad =
                |g: &candle_core::backprop::GradStore| g.get(t).cloned().expect("a gradient");
            let (diff, scale) = largest(&grad(&bf16_grads), &grad(&composed_grads))?;
            assert!(diff <= 1e-5 * scale, "{name}: {diff} vs {scale}");
        }
        Ok(())
    }
}
