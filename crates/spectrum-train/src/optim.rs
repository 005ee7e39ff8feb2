//! AdamW (Loshchilov & Hutter, as PyTorch implements it) with its state in the
//! open, so checkpoints can save and restore it, and global-norm clipping.

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var};

use crate::Result;

#[derive(Debug)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Updates made so far.
    pub t: u64,
    /// First and second moments (f32), one per parameter.
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl AdamW {
    pub fn new(params: &[Var], weight_decay: f64) -> Result<AdamW> {
        let zeros = |p: &Var| p.as_tensor().zeros_like()?.to_dtype(DType::F32);
        Ok(AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            t: 0,
            m: params
                .iter()
                .map(zeros)
                .collect::<candle_core::Result<_>>()?,
            v: params
                .iter()
                .map(zeros)
                .collect::<candle_core::Result<_>>()?,
        })
    }

    /// One update of every parameter with its gradient at learning rate `lr`.
    pub fn step(&mut self, params: &[Var], grads: &[Tensor], lr: f64) -> Result<()> {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            let g = g.to_dtype(DType::F32)?;
            let m = ((&self.m[i] * b1)? + (&g * (1.0 - b1))?)?;
            let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let update = ((&m / c1)? / ((&v / c2)?.sqrt()? + self.eps)?)?;
            let w = p.as_tensor().to_dtype(DType::F32)?;
            let w = if self.weight_decay > 0.0 {
                (w * (1.0 - lr * self.weight_decay))?
            } else {
                w
            };
            p.set(&(w - (update * lr)?)?.to_dtype(p.dtype())?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The state as named tensors (`m.{name}`, `v.{name}`), for a checkpoint.
    pub fn state(&self, names: &[String]) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            out.insert(format!("m.{name}"), self.m[i].clone());
            out.insert(format!("v.{name}"), self.v[i].clone());
        }
        out
    }

    /// Restores the state saved by [`AdamW::state`].
    pub fn load_state(
        &mut self,
        names: &[String],
        state: &HashMap<String, Tensor>,
        t: u64,
    ) -> std::result::Result<(), String> {
        for (i, name) in names.iter().enumerate() {
            for (slot, key) in [(&mut self.m[i], "m"), (&mut self.v[i], "v")] {
                let saved = state
                    .get(&format!("{key}.{name}"))
                    .ok_or_else(|| format!("no optimizer state for {name}"))?;
                if saved.dims() != slot.dims() {
                    return Err(format!("optimizer state of {name} has the wrong shape"));
                }
                *slot = saved.to_device(slot.device()).map_err(|e| e.to_string())?;
            }
        }
        self.t = t;
        Ok(())
    }
}

/// Scales `grads` so their global L2 norm is at most `max_norm` (as PyTorch's
/// `clip_grad_norm_`: coefficient `max_norm / (norm + 1e-6)`, capped at 1).
/// Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let mut total = 0f64;
    for g in grads.iter() {
        total += g
            .to_dtype(DType::F32)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f32>()? as f64;
    }
    let norm = total.sqrt();
    if max_norm > 0.0 {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            for g in grads.iter_mut() {
                *g = (&*g * coef)?;
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Values from torch.optim.AdamW(lr=0.1, weight_decay=0.01) on p = [1, -2],
    /// gradient 2p, three steps.
    #[test]
    fn adamw_matches_pytorch() {
        let p = Var::new(&[1.0f32, -2.0], &Device::Cpu).expect("var");
        let mut opt = AdamW::new(std::slice::from_ref(&p), 0.01).expect("opt");
        for _ in 0..3 {
            let g = (p.as_tensor() * 2.0).expect("grad");
            opt.step(std::slice::from_ref(&p), &[g], 0.1).expect("step");
        }
        let got: Vec<f32> = p.as_tensor().to_vec1().expect("vec");
        // torch 2.15: [0.6989112496376038, -1.6949446201324463]
        let want = [0.698_911_2, -1.694_944_6];
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-4, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let mut grads = vec![
            Tensor::new(&[3.0f32], &Device::Cpu).expect("t"),
            Tensor::new(&[4.0f32], &Device::Cpu).expect("t"),
        ];
        let norm = clip_grad_norm(&mut grads, 1.0).expect("clip");
        assert!((norm - 5.0).abs() < 1e-9);
        let a: Vec<f32> = grads[0].to_vec1().expect("v");
        assert!((a[0] - 0.6).abs() < 1e-5, "{a:?}");
        let norm = clip_grad_norm(&mut grads, 10.0).expect("clip");
        assert!((norm - 1.0).abs() < 1e-5, "no clipping below the max");
    }
}
