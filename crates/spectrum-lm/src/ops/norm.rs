//! RMSNorm with a hand-written backward.

use candle_core::{CpuStorage, Layout, Shape, Tensor};

use crate::Result;

use super::host::*;

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
        // candle_nn's RMSNorm, value for value, on the inputs in place (through
        // tensors, the input and the output were each copied once more).
        let (x, alpha) = (values_of(s1, l1)?, values_of(s2, l2)?);
        let width = alpha.len();
        if width == 0 || x.len() % width != 0 {
            candle_core::bail!("rms-norm: {} values over rows of {width}", x.len());
        }
        let mut y = vec![0f32; x.len()];
        par_rows(&mut y, width, |i, out| {
            let x = &x[i * width..][..width];
            let m = (x.iter().map(|v| v * v).sum::<f32>() / width as f32 + self.eps).sqrt();
            for ((y, x), a) in out.iter_mut().zip(x).zip(alpha) {
                *y = x / m * a;
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
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

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    /// The training op's forward equals candle_nn's RMSNorm value for value,
    /// over a few rows and over more than candle runs serially.
    #[test]
    fn forward_equals_candle_nn() -> crate::Result<()> {
        for rows in [3, 70] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 2.0, (rows, 40), &Device::Cpu)?)?;
            let alpha = Tensor::randn(1f32, 0.3, 40, &Device::Cpu)?;
            let ours = super::rms_norm(x.as_tensor(), &alpha, 1e-5)?;
            let theirs = candle_nn::ops::rms_norm(x.as_tensor(), &alpha, 1e-5)?;
            let (ours, theirs) = (ours.to_vec2::<f32>()?, theirs.to_vec2::<f32>()?);
            assert_eq!(ours, theirs, "{rows} rows");
        }
        Ok(())
    }
}
