//! Cross-entropy over the vocabulary, one pass each way.

use candle_core::{CpuStorage, D, DType, Layout, Shape, Tensor};

use crate::Result;

use super::host::*;

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

pub(super) struct CrossEntropy {
    targets: Vec<u32>,
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
            let lse = crate::vmath::vectorized(
                #[inline(always)]
                || crate::vmath::logsumexp_row(row),
            );
            o[0] = lse - row[self.targets[i] as usize];
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
                crate::vmath::vectorized(
                    #[inline(always)]
                    || crate::vmath::scaled_softmax_row(out, row, lse, g[i]),
                );
                out[t] -= g[i];
            });
            d
        })
        .ok_or_else(|| candle_core::Error::Msg("expected CPU f32 logits".into()))?;
        Ok(Some(Tensor::from_vec(d, (n, vocab), grad.device())?))
    }
}
