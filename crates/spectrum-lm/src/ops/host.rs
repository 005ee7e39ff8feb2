//! Host-side helpers of the custom ops: f32 values of CPU tensors, tensors
//! built from values, candle storage and layouts, row views.

use candle_core::{CpuStorage, DType, Layout, Shape, Storage, Tensor};

use super::kernels;

pub(super) fn f32_cpu(t: &Tensor) -> bool {
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
pub(super) fn with_values<const N: usize, T>(
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
pub(super) fn tensor_from(values: Vec<f32>, like: &Tensor) -> candle_core::Result<Tensor> {
    Tensor::from_vec(values, like.shape(), like.device())
}

/// Runs `f` on the tensor a custom op's CPU input describes and returns its
/// (contiguous) result as storage.
pub(super) fn on_storage(
    storage: &CpuStorage,
    layout: &Layout,
    f: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<(CpuStorage, Shape)> {
    storage_of(f(&tensor_of(storage, layout)?)?)
}

/// `x Wᵀ` for a custom op's CPU inputs `x` [..., in] and `W` [out, in], both
/// contiguous, computed straight into the op's output storage (going through a
/// tensor would copy the result once more).
pub(super) fn matmul_t(
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
pub(super) fn with_last(dims: &[usize], m: usize) -> Vec<usize> {
    let mut out = dims.to_vec();
    if let Some(last) = out.last_mut() {
        *last = m;
    }
    out
}

/// `x` [..., n] as rows [r, n], and the shape [..., m] of a result with `m` columns.
pub(super) fn as_rows(x: &Tensor, m: usize) -> candle_core::Result<(Tensor, Vec<usize>)> {
    let n = x.dims().last().copied().unwrap_or(1);
    Ok((
        x.reshape((x.elem_count() / n.max(1), n))?,
        with_last(x.dims(), m),
    ))
}

/// A tensor over a custom op's CPU input (sharing nothing with the graph).
pub(super) fn tensor_of(storage: &CpuStorage, layout: &Layout) -> candle_core::Result<Tensor> {
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

/// The values a custom op's contiguous f32 CPU input describes, read in place
/// (a tensor made of them, [`tensor_of`], copies the whole storage).
pub(super) fn values_of<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&storage.as_slice::<f32>()?[start..end]),
        None => candle_core::bail!("expected a contiguous input"),
    }
}

/// The values a custom op keeps from its forward pass for its backward pass.
pub(super) struct Saved<T>(std::sync::Mutex<Option<T>>);

impl<T> Default for Saved<T> {
    fn default() -> Self {
        Saved(std::sync::Mutex::new(None))
    }
}

impl<T> Saved<T> {
    pub(super) fn put(&self, values: T) -> candle_core::Result<()> {
        *self.0.lock().map_err(|_| Self::poisoned())? = Some(values);
        Ok(())
    }

    /// The values, once (`None` if the forward pass kept none or a backward
    /// pass took them already: the caller recomputes them).
    pub(super) fn take(&self) -> candle_core::Result<Option<T>> {
        Ok(self.0.lock().map_err(|_| Self::poisoned())?.take())
    }

    fn poisoned() -> candle_core::Error {
        candle_core::Error::Msg("a custom op's saved values: a thread panicked holding them".into())
    }
}

/// The storage of a contiguous result, for a custom op to return.
pub(super) fn storage_of(y: Tensor) -> candle_core::Result<(CpuStorage, Shape)> {
    let y = y.contiguous()?;
    let (guard, y_layout) = y.storage_and_layout();
    match &*guard {
        Storage::Cpu(out) if y_layout.start_offset() == 0 => Ok((out.clone(), y.shape().clone())),
        _ => candle_core::bail!("unexpected output storage"),
    }
}

/// Runs `f(row index, row)` over the rows of `width` of `out`, in parallel.
pub(super) fn par_rows<T: Send>(out: &mut [T], width: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    use rayon::prelude::*;
    out.par_chunks_mut(width.max(1))
        .enumerate()
        .for_each(|(i, row)| f(i, row));
}

/// [`par_rows`] over two outputs of the same shape at once.
pub(super) fn par_rows2(
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
