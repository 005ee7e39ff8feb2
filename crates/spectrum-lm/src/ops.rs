//! Custom operations for training on the CPU, where candle's generic ones
//! cost time or memory the method does not need:
//!
//! - [`linear`]: `x Wᵀ` as one node, with a gradient for `x` only when it needs
//!   one and for `W` only when it trains (candle's matmul backward always
//!   computes both: as many FLOPs as the forward pass each), `∂L/∂W` in `W`'s
//!   layout.
//! - [`masked_softmax`]: `softmax(scores + mask)` with the fused kernel and a
//!   backward pass (`dx = y ⊙ (dy − Σ dy ⊙ y)`). The composed version keeps five
//!   score-sized intermediates per layer, and candle also stores a score-sized
//!   gradient for the constant mask until backward ends (gigabytes at 1,024 tokens).
//! - [`rope`]: the fused rotary kernel; its backward is the inverse rotation
//!   (sine negated). The composed one stores gradients for the constant cos/sin.
//! - [`rms_norm`]: the fused RMSNorm kernel and a hand-written backward
//!   (the scale's gradient only when it trains); the composed one keeps four
//!   activation-sized tensors per norm and a gradient for a frozen scale.
//! - [`lora_matmul`]: a frozen linear layer plus its LoRA adapter as one node,
//!   with the adapter's gradients and `∂L/∂x` written out, products
//!   accumulated into one output by direct calls to the matrix multiply.
//! - [`attention`]: RoPE, scores, mask, softmax and values of one layer as a
//!   single node with a hand-written backward, computed per (sequence,
//!   key/value head) in parallel so that each one's scores stay in cache.
//! - [`cross_entropy_rows`]: the loss over the vocabulary in one pass each way
//!   (`softmax - onehot` backward) instead of log-softmax's composed passes.
//!
//! Each applies to f32 tensors on the CPU (forward passes through candle's own
//! kernels or single loops, writing into the op's output); other devices and
//! dtypes (bf16 on GPUs) use the plain, composed operations.

use candle_core::{CpuStorage, D, DType, Layout, Shape, Storage, Tensor};

use crate::Result;

/// Which implementation the ops of a thread run: the custom CPU f32 kernels
/// (`Fused`, the default) or the composed candle operations every other
/// device and dtype runs (`Composed`: on the CPU, the exact path a GPU takes,
/// so that tests on a CPU machine cover it).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS,
)]
#[serde(rename_all = "snake_case")]
pub enum Kernels {
    #[default]
    Fused,
    Composed,
}

impl Kernels {
    pub fn is_fused(&self) -> bool {
        *self == Kernels::Fused
    }
}

thread_local! {
    static KERNELS: std::cell::Cell<Kernels> = const { std::cell::Cell::new(Kernels::Fused) };
}

/// Sets the kernels of the calling thread (every op decides on the thread
/// that calls it, forward and backward); returns the previous setting.
pub fn set_kernels(k: Kernels) -> Kernels {
    KERNELS.with(|c| c.replace(k))
}

/// The kernels of the calling thread.
pub fn kernels() -> Kernels {
    KERNELS.with(std::cell::Cell::get)
}

fn f32_cpu(t: &Tensor) -> bool {
    kernels().is_fused() && t.device().is_cpu() && t.dtype() == DType::F32
}

/// `f` over the values of a contiguous CPU f32 tensor, read in place; `None`
/// for other tensors. (An accessor, not a kernel: the same on either
/// [`Kernels`] setting.)
pub fn host_slice<T>(t: &Tensor, f: impl FnOnce(&[f32]) -> T) -> Option<T> {
    if !(t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous()) {
        return None;
    }
    let (guard, layout) = t.storage_and_layout();
    match &*guard {
        Storage::Cpu(cpu) => {
            let all = cpu.as_slice::<f32>().ok()?;
            Some(f(&all[layout.start_offset()..][..t.elem_count()]))
        }
        _ => None,
    }
}

/// `f` over the values of CPU f32 tensors (made contiguous first), for the
/// hand-written backward passes: one pass over the data instead of a chain of
/// allocating element-wise ops.
fn with_values<const N: usize, T>(
    ts: [&Tensor; N],
    f: impl FnOnce([&[f32]; N]) -> T,
) -> candle_core::Result<T> {
    let ts = ts
        .iter()
        .map(|t| t.contiguous())
        .collect::<candle_core::Result<Vec<_>>>()?;
    let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut views = Vec::with_capacity(N);
    for (t, (guard, layout)) in ts.iter().zip(&guards) {
        let Storage::Cpu(cpu) = &**guard else {
            candle_core::bail!("expected CPU tensors");
        };
        views.push(&cpu.as_slice::<f32>()?[layout.start_offset()..][..t.elem_count()]);
    }
    let views: [&[f32]; N] = views
        .try_into()
        .map_err(|_| candle_core::Error::Msg("tensor count".into()))?;
    Ok(f(views))
}

/// A CPU f32 tensor of `shape` over `values`.
fn tensor_from(values: Vec<f32>, like: &Tensor) -> candle_core::Result<Tensor> {
    Tensor::from_vec(values, like.shape(), like.device())
}

/// Runs `f` on the tensor a custom op's CPU input describes and returns its
/// (contiguous) result as storage.
fn on_storage(
    storage: &CpuStorage,
    layout: &Layout,
    f: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<(CpuStorage, Shape)> {
    storage_of(f(&tensor_of(storage, layout)?)?)
}

/// `x Wᵀ` for a custom op's CPU inputs `x` [..., in] and `W` [out, in], both
/// contiguous, computed straight into the op's output storage (going through a
/// tensor would copy the result once more).
fn matmul_t(
    x: &CpuStorage,
    x_layout: &Layout,
    w: &CpuStorage,
    w_layout: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    use candle_core::backend::BackendStorage;
    let dims = x_layout.shape().dims();
    let k = dims.last().copied().unwrap_or(1);
    let rows = x_layout.shape().elem_count() / k.max(1);
    let (out, k2) = w_layout.shape().dims2()?;
    if k != k2 || !x_layout.is_contiguous() || !w_layout.is_contiguous() {
        candle_core::bail!("matmul_t: expected contiguous {dims:?} x [{out}, {k2}]ᵀ");
    }
    let x2 = Layout::contiguous_with_offset((rows, k), x_layout.start_offset());
    let y = x.matmul(w, (1, rows, out, k), &x2, &w_layout.transpose(0, 1)?)?;
    Ok((y, Shape::from(with_last(dims, out))))
}

/// `dims` with the last one replaced by `m`: the shape of a product over the
/// last dimension.
fn with_last(dims: &[usize], m: usize) -> Vec<usize> {
    let mut out = dims.to_vec();
    if let Some(last) = out.last_mut() {
        *last = m;
    }
    out
}

/// `x` [..., n] as rows [r, n], and the shape [..., m] of a result with `m` columns.
fn as_rows(x: &Tensor, m: usize) -> candle_core::Result<(Tensor, Vec<usize>)> {
    let n = x.dims().last().copied().unwrap_or(1);
    Ok((
        x.reshape((x.elem_count() / n.max(1), n))?,
        with_last(x.dims(), m),
    ))
}

/// A tensor over a custom op's CPU input (sharing nothing with the graph).
fn tensor_of(storage: &CpuStorage, layout: &Layout) -> candle_core::Result<Tensor> {
    if !layout.is_contiguous() {
        candle_core::bail!("expected a contiguous input");
    }
    let all = storage.as_slice::<f32>()?.len();
    Tensor::from_storage(
        Storage::Cpu(storage.clone()),
        all,
        candle_core::op::BackpropOp::none(),
        false,
    )
    .narrow(0, layout.start_offset(), layout.shape().elem_count())?
    .reshape(layout.shape())
}

/// The storage of a contiguous result, for a custom op to return.
fn storage_of(y: Tensor) -> candle_core::Result<(CpuStorage, Shape)> {
    let y = y.contiguous()?;
    let (guard, y_layout) = y.storage_and_layout();
    match &*guard {
        Storage::Cpu(out) if y_layout.start_offset() == 0 => Ok((out.clone(), y.shape().clone())),
        _ => candle_core::bail!("unexpected output storage"),
    }
}

/// `silu(gate) ⊙ up` (the SwiGLU of Llama-family MLPs). Differentiable, fused
/// where it can be (one vectorised pass; keeps only its two inputs for backward).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if f32_cpu(gate) && f32_cpu(up) && gate.dims() == up.dims() {
        return Ok(gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)?);
    }
    Ok((candle_nn::ops::silu(gate)? * up)?)
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
        let mut out = vec![0f32; n];
        par_rows(&mut out, width, |i, row| {
            let (g, u) = (&gate[i * width..][..width], &up[i * width..][..width]);
            crate::vmath::vectorized(
                #[inline(always)]
                || crate::vmath::swiglu_row(row, g, u),
            );
        });
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
        let n = gate.elem_count();
        let width = gate.dims().last().copied().unwrap_or(1);
        let (mut d_gate, mut d_up) = (vec![0f32; n], vec![0f32; n]);
        with_values([gate, up, dy], |[g, u, dy]| {
            par_rows2(&mut d_gate, &mut d_up, width, |i, dg, du| {
                let at = i * width;
                crate::vmath::vectorized(
                    #[inline(always)]
                    || {
                        for j in 0..width {
                            let (g, u, dy) = (g[at + j], u[at + j], dy[at + j]);
                            let sig = 1.0 / (1.0 + crate::vmath::exp(-g));
                            dg[j] = dy * u * sig * (1.0 + g * (1.0 - sig));
                            du[j] = dy * g * sig;
                        }
                    },
                )
            })
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
    if f32_cpu(x) && f32_cpu(w) && (x.track_op() || w.track_op()) {
        return Ok(x.contiguous()?.apply_op2(&w.contiguous()?, LinearOp)?);
    }
    let (n, k) = w.dims2()?;
    let m = x.elem_count() / k.max(1);
    if f32_cpu(x) && f32_cpu(w) && m <= crate::skinny::MAX_ROWS {
        // Token-by-token generation: stream W once instead of packing it.
        let y = with_values([x, w], |[x, w]| {
            let mut y = vec![0f32; m * n];
            crate::skinny::matmul_t(x, w, m, k, &mut y);
            y
        })?;
        return Ok(Tensor::from_vec(y, with_last(x.dims(), n), x.device())?);
    }
    let (rows, out) = as_rows(x, n)?;
    Ok(rows.matmul(&w.t()?)?.reshape(out)?)
}

struct LinearOp;

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
        matmul_t(s1, l1, s2, l2)
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
        let dx = if need_dx {
            Some(dy_rows.matmul(&w)?.reshape(x.shape())?)
        } else {
            None
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
pub fn lora_matmul(x: &Tensor, w: &Tensor, a: &Tensor, b: &Tensor, scale: f64) -> Result<Tensor> {
    let frozen = !w.is_variable() && !w.track_op();
    if f32_cpu(x) && frozen && f32_cpu(w) && (a.track_op() || b.track_op()) {
        let op = LoraMatmul {
            weight: w.contiguous()?,
            scale: scale as f32,
            need_dx: x.track_op(),
            saved_h: std::sync::Mutex::new(None),
        };
        return Ok(x
            .contiguous()?
            .apply_op3(&a.contiguous()?, &b.contiguous()?, op)?);
    }
    let base = linear(x, w)?;
    let (rows, out) = as_rows(x, w.dim(0)?)?;
    let low = rows.matmul(&a.t()?)?.matmul(&(b * scale)?.t()?)?;
    Ok((base + low.reshape(out)?)?)
}

struct LoraMatmul {
    weight: Tensor,
    scale: f32,
    need_dx: bool,
    /// `x Aᵀ` from the forward pass, taken by the backward pass (which
    /// recomputes it if it runs a second time).
    saved_h: std::sync::Mutex<Option<Vec<f32>>>,
}

/// A row-major f32 matrix operand of [`gemm`]: `values` [rows, cols], or its
/// transpose when `t`.
#[derive(Clone, Copy)]
struct Operand<'a> {
    values: &'a [f32],
    t: bool,
}

fn op(values: &[f32]) -> Operand<'_> {
    Operand { values, t: false }
}

fn op_t(values: &[f32]) -> Operand<'_> {
    Operand { values, t: true }
}

/// `out [m, n] = scale · a b` (or `+=` with `add`), for `a` [m, k] and `b`
/// [k, n] as [`Operand`]s: candle's matrix multiply (the `gemm` crate) called
/// directly, so that products accumulate into one output without a zeroed
/// temporary and a separate sum. Threaded, unless called from work that is
/// already split across the thread pool.
#[allow(unsafe_code)]
fn gemm(
    out: &mut [f32],
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: Operand,
    scale: f32,
    add: bool,
) {
    let threads = candle_core::utils::get_num_threads();
    let parallelism = if threads > 1 && rayon::current_thread_index().is_none() {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    assert!(
        out.len() >= m * n && a.values.len() >= m * k && b.values.len() >= k * n,
        "gemm: operands smaller than [{m}, {k}] x [{k}, {n}]"
    );
    // Strides (row, column) of the logical [m, k] and [k, n] operands.
    let (a_rs, a_cs) = if a.t { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if b.t { (1, k) } else { (n, 1) };
    // SAFETY: the slices hold at least the elements the strides reach (checked
    // above), `out` is exclusively borrowed and does not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            add,
            a.values.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.values.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        )
    }
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
        let mut y = vec![0f32; rows * out];
        let mut h = vec![0f32; rows * r];
        host_slice(&self.weight, |w| {
            gemm(&mut y, (rows, out, inp), op(x), op_t(w), 1.0, false)
        })
        .ok_or_else(|| candle_core::Error::Msg("expected a contiguous CPU f32 weight".into()))?;
        gemm(&mut h, (rows, r, inp), op(x), op_t(a), 1.0, false);
        gemm(&mut y, (rows, out, r), op(&h), op_t(b), self.scale, true);
        *self
            .saved_h
            .lock()
            .map_err(|_| candle_core::Error::Msg("lock".into()))? = Some(h);
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
        let saved = self
            .saved_h
            .lock()
            .map_err(|_| candle_core::Error::Msg("lock".into()))?
            .take();
        let (mut dh, mut da, mut db) = (
            vec![0f32; rows * r],
            vec![0f32; r * inp],
            vec![0f32; out * r],
        );
        let mut dx = vec![0f32; if self.need_dx { rows * inp } else { 0 }];
        with_values([x, a, b, dy, &self.weight], |[x, a, b, dy, w]| {
            let h = saved.unwrap_or_else(|| {
                let mut h = vec![0f32; rows * r];
                gemm(&mut h, (rows, r, inp), op(x), op_t(a), 1.0, false);
                h
            });
            gemm(&mut dh, (rows, r, out), op(dy), op(b), self.scale, false);
            gemm(&mut db, (out, r, rows), op_t(dy), op(&h), self.scale, false);
            gemm(&mut da, (r, inp, rows), op_t(&dh), op(x), 1.0, false);
            if self.need_dx {
                gemm(&mut dx, (rows, inp, out), op(dy), op(w), 1.0, false);
                gemm(&mut dx, (rows, inp, r), op(&dh), op(a), 1.0, true);
            }
        })?;
        let dx = if self.need_dx {
            Some(tensor_from(dx, x)?)
        } else {
            None
        };
        Ok((dx, Some(tensor_from(da, a)?), Some(tensor_from(db, b)?)))
    }
}

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

/// RMSNorm `x / sqrt(mean(x²) + eps) * alpha` over the last dimension.
/// Differentiable, fused where it can be: one node, whose backward computes
/// `∂L/∂alpha` only when `alpha` trains (full fine-tuning).
pub fn rms_norm(x: &Tensor, alpha: &Tensor, eps: f32) -> Result<Tensor> {
    if !x.track_op() && !alpha.track_op() {
        return Ok(candle_nn::ops::rms_norm(&x.contiguous()?, alpha, eps)?);
    }
    if f32_cpu(x) && f32_cpu(alpha) {
        return Ok(x
            .contiguous()?
            .apply_op2(&alpha.contiguous()?, RmsNorm { eps })?);
    }
    Ok(candle_nn::ops::rms_norm_slow(x, alpha, eps)?)
}

struct RmsNorm {
    eps: f32,
}

impl candle_core::CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let alpha = tensor_of(s2, l2)?;
        on_storage(s1, l1, |x| candle_nn::ops::rms_norm(x, &alpha, self.eps))
    }

    /// With `r = sqrt(mean(x²) + eps)` and `g = alpha ⊙ dy`:
    /// `dx = g / r − x · Σ(g ⊙ x) / (n r³)`, `∂alpha = Σ_rows dy ⊙ x / r`.
    fn bwd(
        &self,
        x: &Tensor,
        alpha: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let width = x.dims().last().copied().unwrap_or(1);
        let need_alpha = alpha.track_op();
        let mut dx = vec![0f32; x.elem_count()];
        // Per-row `dx`; `∂alpha` summed per piece of `PIECE` rows, then over the
        // pieces in order: fixed pieces, so the sum does not depend on how the
        // threads split the work (a resumed run retraces the losses bit for bit).
        const PIECE: usize = 16;
        let n_alpha = if need_alpha { width } else { 0 };
        let d_alpha = with_values([x, dy, alpha], |[x, dy, alpha]| {
            use rayon::prelude::*;
            let pieces: Vec<Vec<f32>> = dx
                .par_chunks_mut(width * PIECE)
                .enumerate()
                .map(|(p, out)| {
                    let mut part = vec![0f32; n_alpha];
                    for (r, out) in out.chunks_mut(width).enumerate() {
                        let i = p * PIECE + r;
                        let (x, dy) = (&x[i * width..][..width], &dy[i * width..][..width]);
                        let mean_sq = x.iter().map(|v| v * v).sum::<f32>() / width as f32;
                        let inv = 1.0 / (mean_sq + self.eps).sqrt();
                        let dot: f32 = (0..width).map(|j| alpha[j] * dy[j] * x[j]).sum();
                        let coef = dot * inv * inv * inv / width as f32;
                        for j in 0..width {
                            out[j] = alpha[j] * dy[j] * inv - x[j] * coef;
                        }
                        for (p, (&dy, &x)) in part.iter_mut().zip(dy.iter().zip(x)) {
                            *p += dy * x * inv;
                        }
                    }
                    part
                })
                .collect();
            pieces.into_iter().fold(vec![0f32; n_alpha], |mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                a
            })
        })?;
        let d_alpha = if need_alpha {
            Some(tensor_from(d_alpha, alpha)?)
        } else {
            None
        };
        Ok((Some(tensor_from(dx, x)?), d_alpha))
    }
}

/// Per-row cross-entropy of `logits` [n, vocab] against `targets` (n ids):
/// `logsumexp(row) - row[target]`, shape [n]. Differentiable; on the CPU in f32
/// one pass forward and one backward (`softmax - onehot`), instead of the
/// composed log-softmax's five vocabulary-sized passes and intermediates.
pub fn cross_entropy_rows(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
    let (n, vocab) = logits.dims2()?;
    if targets.len() != n || targets.iter().any(|&t| t as usize >= vocab) {
        return Err(candle_core::Error::Msg(format!(
            "{} targets (< {vocab}) for {n} rows of logits",
            targets.len()
        ))
        .into());
    }
    if f32_cpu(logits) {
        return Ok(logits.contiguous()?.apply_op1(CrossEntropy {
            targets: targets.to_vec(),
        })?);
    }
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let ids = Tensor::from_vec(targets.to_vec(), (n, 1), logits.device())?;
    Ok(logp.gather(&ids, 1)?.squeeze(1)?.neg()?)
}

struct CrossEntropy {
    targets: Vec<u32>,
}

/// Runs `f(row index, row)` over the rows of `width` of `out`, in parallel.
fn par_rows<T: Send>(out: &mut [T], width: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    use rayon::prelude::*;
    out.par_chunks_mut(width.max(1))
        .enumerate()
        .for_each(|(i, row)| f(i, row));
}

/// [`par_rows`] over two outputs of the same shape at once.
fn par_rows2(
    a: &mut [f32],
    b: &mut [f32],
    width: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) {
    use rayon::prelude::*;
    a.par_chunks_mut(width.max(1))
        .zip(b.par_chunks_mut(width.max(1)))
        .enumerate()
        .for_each(|(i, (ra, rb))| f(i, ra, rb));
}

/// `log Σ exp(row)`, stable.
fn logsumexp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    max + row.iter().map(|&x| (x - max).exp()).sum::<f32>().ln()
}

impl candle_core::CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, vocab) = layout.shape().dims2()?;
        if !layout.is_contiguous() {
            candle_core::bail!("expected contiguous logits");
        }
        let all = &storage.as_slice::<f32>()?[layout.start_offset()..][..n * vocab];
        let mut out = vec![0f32; n];
        par_rows(&mut out, 1, |i, o| {
            let row = &all[i * vocab..(i + 1) * vocab];
            o[0] = logsumexp(row) - row[self.targets[i] as usize];
        });
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(&self, x: &Tensor, nll: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (n, vocab) = x.dims2()?;
        let g = grad.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let nll = nll.to_vec1::<f32>()?;
        let d = host_slice(&x.contiguous()?, |all| {
            let mut d = vec![0f32; n * vocab];
            par_rows(&mut d, vocab, |i, out| {
                let row = &all[i * vocab..(i + 1) * vocab];
                let t = self.targets[i] as usize;
                // nll = lse - x[t], so the forward pass's logsumexp comes back for free.
                let lse = nll[i] + row[t];
                for (o, &v) in out.iter_mut().zip(row) {
                    *o = g[i] * (v - lse).exp();
                }
                out[t] -= g[i];
            });
            d
        })
        .ok_or_else(|| candle_core::Error::Msg("expected CPU f32 logits".into()))?;
        Ok(Some(Tensor::from_vec(d, (n, vocab), grad.device())?))
    }
}
