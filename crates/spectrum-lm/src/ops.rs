//! Custom operations for training on the CPU, where candle's generic ones
//! cost time or memory the method does not need:
//!
//! - [`frozen_aware_matmul`]: `x Wᵀ` with a gradient for `x` only when `W` is
//!   frozen (LoRA training). candle's matmul backward always computes `∂L/∂W`
//!   too: as many FLOPs as the forward pass, kept in memory until the end.
//! - [`softmax_last_dim`]: the fused softmax kernel with a backward pass
//!   (`dx = y ⊙ (dy − Σ dy ⊙ y)`), so attention keeps one tensor per layer for
//!   backward instead of the five intermediates of the composed softmax.
//!
//! Both run their forward pass through candle's own kernels on the input's
//! storage; other devices and dtypes use the plain operations.

use candle_core::{CpuStorage, D, DType, Layout, Shape, Storage, Tensor};

use crate::Result;

fn f32_cpu(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// Runs `f` on the tensor a custom op's CPU input describes and returns its
/// (contiguous) result as storage.
fn on_storage(
    storage: &CpuStorage,
    layout: &Layout,
    f: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<(CpuStorage, Shape)> {
    if !layout.is_contiguous() {
        candle_core::bail!("expected a contiguous input");
    }
    let all = storage.as_slice::<f32>()?.len();
    let x = Tensor::from_storage(
        Storage::Cpu(storage.clone()),
        all,
        candle_core::op::BackpropOp::none(),
        false,
    )
    .narrow(0, layout.start_offset(), layout.shape().elem_count())?
    .reshape(layout.shape())?;
    let y = f(&x)?.contiguous()?;
    let (guard, y_layout) = y.storage_and_layout();
    match &*guard {
        Storage::Cpu(out) if y_layout.start_offset() == 0 => Ok((out.clone(), y.shape().clone())),
        _ => candle_core::bail!("unexpected output storage"),
    }
}

/// `x Wᵀ`; when `x` needs a gradient and `W` does not, only `∂L/∂x` is computed.
pub fn frozen_aware_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if f32_cpu(x) && x.track_op() && !w.is_variable() && !w.track_op() {
        return Ok(x
            .contiguous()?
            .apply_op1(FrozenLinear { weight: w.clone() })?);
    }
    Ok(x.matmul(&w.t()?)?)
}

struct FrozenLinear {
    weight: Tensor,
}

impl candle_core::CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        on_storage(storage, layout, |x| x.matmul(&self.weight.t()?))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.weight)?))
    }
}

/// Softmax over the last dimension, differentiable, fused where it can be.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if !x.track_op() {
        return Ok(candle_nn::ops::softmax_last_dim(&x.contiguous()?)?);
    }
    if f32_cpu(x) {
        return Ok(x.contiguous()?.apply_op1(Softmax)?);
    }
    Ok(candle_nn::ops::softmax(x, D::Minus1)?)
}

struct Softmax;

impl candle_core::CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax-last-dim"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        on_storage(storage, layout, candle_nn::ops::softmax_last_dim)
    }

    fn bwd(&self, _arg: &Tensor, y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dot = (dy * y)?.sum_keepdim(D::Minus1)?;
        Ok(Some((y * dy.broadcast_sub(&dot)?)?))
    }
}
