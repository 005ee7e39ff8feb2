//! AdamW (Loshchilov & Hutter, as PyTorch implements it) with its state in the
//! open, so checkpoints can save and restore it, and global-norm clipping.

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var};

use spectrum_lm::LmError;

use crate::Result;

#[derive(Debug)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Updates made so far.
    pub t: u64,
    /// First and second moments, one pair per parameter.
    moments: Vec<Moments>,
}

/// A parameter's moments: plain vectors updated in place, in one pass with the
/// parameter itself, for f32 parameters on the CPU (the update is memory-bound:
/// the composed tensor version made a dozen passes and allocations per
/// parameter); f32 tensors on other devices.
#[derive(Debug)]
enum Moments {
    Host(Vec<f32>, Vec<f32>),
    Device {
        m: Tensor,
        v: Tensor,
        /// An f32 master copy of a bf16/f16 parameter, which the updates go to:
        /// an update below half a unit in the last place of the parameter
        /// (AdamW's ~lr: 3e-6 against bf16's 1.2e-4 spacing at 0.02) would
        /// otherwise round away, and the weights would never move.
        master: Option<Tensor>,
    },
}

fn half(dtype: DType) -> bool {
    matches!(dtype, DType::BF16 | DType::F16)
}

/// The CPU's fused update, unless this thread runs the composed path a GPU
/// takes (`spectrum_lm::ops::Kernels::Composed`): then the tensor update.
fn host(t: &Tensor) -> bool {
    spectrum_lm::ops::kernels().is_fused() && t.device().is_cpu() && t.dtype() == DType::F32
}

impl AdamW {
    pub fn new(params: &[Var], weight_decay: f64) -> Result<AdamW> {
        let moments = params
            .iter()
            .map(|p| {
                let p = p.as_tensor();
                Ok(if host(p) {
                    Moments::Host(vec![0.0; p.elem_count()], vec![0.0; p.elem_count()])
                } else {
                    let zeros = p.zeros_like()?.to_dtype(DType::F32)?;
                    let master = if half(p.dtype()) {
                        Some(p.to_dtype(DType::F32)?)
                    } else {
                        None
                    };
                    Moments::Device {
                        m: zeros.clone(),
                        v: zeros,
                        master,
                    }
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            t: 0,
            moments,
        })
    }

    /// One update of every parameter with its gradient at learning rate `lr`.
    pub fn step(&mut self, params: &[Var], grads: &[Tensor], lr: f64) -> Result<()> {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        let decay = 1.0 - lr * self.weight_decay;
        for ((p, g), moments) in params.iter().zip(grads).zip(&mut self.moments) {
            match moments {
                Moments::Host(m, v) => {
                    let g = g.to_dtype(DType::F32)?.contiguous()?;
                    let hyper = [b1, b2, c1, c2, self.eps, lr, decay].map(|x| x as f32);
                    spectrum_lm::ops::host_slice(&g, |g| {
                        p.as_tensor().inplace_op1(&HostStep {
                            g,
                            m: std::cell::RefCell::new(m),
                            v: std::cell::RefCell::new(v),
                            hyper,
                        })
                    })
                    .ok_or_else(|| {
                        candle_core::Error::Msg("expected a CPU f32 gradient".into())
                    })??;
                }
                Moments::Device { m, v, master } => {
                    let g = g.to_dtype(DType::F32)?;
                    *m = ((&*m * b1)? + (&g * (1.0 - b1))?)?;
                    *v = ((&*v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
                    let update = ((&*m / c1)? / ((&*v / c2)?.sqrt()? + self.eps)?)?;
                    let w = match master {
                        Some(w) => w.clone(),
                        None => p.as_tensor().to_dtype(DType::F32)?,
                    };
                    let w = if self.weight_decay > 0.0 {
                        (w * decay)?
                    } else {
                        w
                    };
                    let w = (w - (update * lr)?)?;
                    p.set(&w.to_dtype(p.dtype())?)?;
                    if let Some(master) = master {
                        *master = w;
                    }
                }
            }
        }
        Ok(())
    }

    /// The state as named tensors (`m.{name}`, `v.{name}`), for a checkpoint.
    pub fn state(&self, names: &[String], params: &[Var]) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for ((name, moments), p) in names.iter().zip(&self.moments).zip(params) {
            let (m, v) = match moments {
                Moments::Host(m, v) => {
                    let shape = p.as_tensor().shape();
                    (
                        Tensor::from_slice(m, shape, p.device())?,
                        Tensor::from_slice(v, shape, p.device())?,
                    )
                }
                Moments::Device { m, v, master } => {
                    if let Some(w) = master {
                        out.insert(format!("w.{name}"), w.clone());
                    }
                    (m.clone(), v.clone())
                }
            };
            out.insert(format!("m.{name}"), m);
            out.insert(format!("v.{name}"), v);
        }
        Ok(out)
    }

    /// Restores the state saved by [`AdamW::state`]; `params` already hold
    /// the checkpoint's weights (the master copy of a half-precision one comes
    /// from the state, or from the weights for a state saved without it).
    pub fn load_state(
        &mut self,
        names: &[String],
        params: &[Var],
        state: &HashMap<String, Tensor>,
        t: u64,
    ) -> std::result::Result<(), LmError> {
        for ((name, moments), p) in names.iter().zip(&mut self.moments).zip(params) {
            let saved = |key: &str| {
                state
                    .get(&format!("{key}.{name}"))
                    .ok_or_else(|| LmError::tensor(name, "has no saved optimizer state"))
            };
            let (sm, sv) = (saved("m")?, saved("v")?);
            match moments {
                Moments::Host(m, v) => {
                    for (slot, saved) in [(m, sm), (v, sv)] {
                        let values = saved
                            .to_dtype(DType::F32)
                            .and_then(|t| t.flatten_all())
                            .and_then(|t| t.to_vec1::<f32>())
                            .map_err(|e| LmError::tensor(name, e))?;
                        if values.len() != slot.len() {
                            return Err(LmError::tensor(
                                name,
                                "optimizer state of the wrong shape",
                            ));
                        }
                        *slot = values;
                    }
                }
                Moments::Device { m, v, master } => {
                    for (slot, saved) in [(m, sm), (v, sv)] {
                        if saved.dims() != slot.dims() {
                            return Err(LmError::tensor(
                                name,
                                "optimizer state of the wrong shape",
                            ));
                        }
                        *slot = saved
                            .to_device(slot.device())
                            .map_err(|e| LmError::tensor(name, e))?;
                    }
                    if let Some(master) = master {
                        let w = match state.get(&format!("w.{name}")) {
                            Some(w) if w.dims() == p.dims() => w.to_device(p.device()),
                            Some(_) => {
                                return Err(LmError::tensor(
                                    name,
                                    "master weights of the wrong shape",
                                ));
                            }
                            None => p.as_tensor().to_dtype(DType::F32),
                        };
                        *master = w.map_err(|e| LmError::tensor(name, e))?;
                    }
                }
            }
        }
        self.t = t;
        Ok(())
    }
}

/// One AdamW update of a CPU f32 parameter, in place, with its moments.
struct HostStep<'a> {
    g: &'a [f32],
    m: std::cell::RefCell<&'a mut Vec<f32>>,
    v: std::cell::RefCell<&'a mut Vec<f32>>,
    /// beta1, beta2, bias corrections 1 and 2, eps, lr, decay factor.
    hyper: [f32; 7],
}

impl candle_core::InplaceOp1 for HostStep<'_> {
    fn name(&self) -> &'static str {
        "adamw"
    }

    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        let candle_core::CpuStorage::F32(all) = storage else {
            candle_core::bail!("expected an f32 parameter")
        };
        if !layout.is_contiguous() {
            candle_core::bail!("expected a contiguous parameter");
        }
        let p = &mut all[layout.start_offset()..][..self.g.len()];
        let (mut m, mut v) = (self.m.borrow_mut(), self.v.borrow_mut());
        let [b1, b2, c1, c2, eps, lr, decay] = self.hyper;
        let update = |p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p = *p * decay - lr * (*m / c1) / ((*v / c2).sqrt() + eps);
            }
        };
        // Memory-bound: big parameters are split over the cores.
        use rayon::prelude::*;
        const PIECE: usize = 1 << 16;
        p.par_chunks_mut(PIECE)
            .zip(self.g.par_chunks(PIECE))
            .zip(m.par_chunks_mut(PIECE))
            .zip(v.par_chunks_mut(PIECE))
            .for_each(|(((p, g), m), v)| update(p, g, m, v));
        Ok(())
    }
}

/// `Σ x²` in f64, in pieces over the cores (a full fine-tune's
/// embedding gradient has 28M entries).
fn sum_of_squares(x: &[f32]) -> f64 {
    use rayon::prelude::*;
    // Fixed pieces summed in order: the same total however many cores there are.
    let pieces: Vec<f64> = x
        .par_chunks(1 << 16)
        .map(|c| c.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>())
        .collect();
    pieces.iter().sum()
}

/// Scales `grads` so their global L2 norm is at most `max_norm` (as PyTorch's
/// `clip_grad_norm_`: coefficient `max_norm / (norm + 1e-6)`, capped at 1).
/// Returns the norm before clipping. CPU f32 gradients are read and scaled in
/// place.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let mut total = 0f64;
    for g in grads.iter() {
        total += match spectrum_lm::ops::host_slice(g, sum_of_squares) {
            Some(sum) => sum,
            None => g
                .to_dtype(DType::F32)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f32>()? as f64,
        };
    }
    let norm = total.sqrt();
    if max_norm > 0.0 {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            for g in grads.iter_mut() {
                if host(g) && g.is_contiguous() {
                    g.inplace_op1(&Scale(coef as f32))?;
                } else {
                    *g = (&*g * coef)?;
                }
            }
        }
    }
    Ok(norm)
}

/// `acc += g`, in place for contiguous CPU f32 tensors; else a new sum.
pub fn accumulate(acc: Tensor, g: &Tensor) -> Result<Tensor> {
    if host(&acc) && host(g) && acc.is_contiguous() && g.is_contiguous() && acc.dims() == g.dims() {
        acc.inplace_op2(g, &AddInPlace)?;
        Ok(acc)
    } else {
        Ok((acc + g)?)
    }
}

fn f32_mut<'a>(
    storage: &'a mut candle_core::CpuStorage,
    layout: &candle_core::Layout,
) -> candle_core::Result<&'a mut [f32]> {
    match storage {
        candle_core::CpuStorage::F32(all) if layout.is_contiguous() => {
            Ok(&mut all[layout.start_offset()..][..layout.shape().elem_count()])
        }
        _ => candle_core::bail!("expected a contiguous f32 tensor"),
    }
}

struct Scale(f32);

impl candle_core::InplaceOp1 for Scale {
    fn name(&self) -> &'static str {
        "scale"
    }
    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        f32_mut(storage, layout)?
            .iter_mut()
            .for_each(|x| *x *= self.0);
        Ok(())
    }
}

struct AddInPlace;

impl candle_core::InplaceOp2 for AddInPlace {
    fn name(&self) -> &'static str {
        "add-in-place"
    }
    fn cpu_fwd(
        &self,
        s1: &mut candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        let acc = f32_mut(s1, l1)?;
        let g = &s2.as_slice::<f32>()?[l2.start_offset()..][..acc.len()];
        acc.iter_mut().zip(g).for_each(|(a, b)| *a += b);
        Ok(())
    }
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

    /// The in-place update of CPU f32 parameters equals the tensor version
    /// (which f64 parameters, like GPU ones, take), with weight decay.
    #[test]
    fn in_place_and_tensor_updates_agree() {
        let values: Vec<f64> = (0..1000).map(|k| (k as f64 * 0.3).sin()).collect();
        let p32 = Var::new(
            values.iter().map(|&x| x as f32).collect::<Vec<_>>(),
            &Device::Cpu,
        )
        .expect("var");
        let p64 = Var::new(values.clone(), &Device::Cpu).expect("var");
        let mut o32 = AdamW::new(std::slice::from_ref(&p32), 0.1).expect("opt");
        let mut o64 = AdamW::new(std::slice::from_ref(&p64), 0.1).expect("opt");
        assert!(matches!(o32.moments[0], Moments::Host(..)));
        assert!(matches!(o64.moments[0], Moments::Device { .. }));
        for step in 0..4 {
            let g = (p32.as_tensor().cos().expect("g") * (step as f64 + 1.0)).expect("g");
            o32.step(std::slice::from_ref(&p32), std::slice::from_ref(&g), 0.01)
                .expect("step");
            let g = g.to_dtype(DType::F64).expect("g");
            o64.step(std::slice::from_ref(&p64), &[g], 0.01)
                .expect("step");
        }
        let a: Vec<f32> = p32.as_tensor().to_vec1().expect("a");
        let b: Vec<f64> = p64.as_tensor().to_vec1().expect("b");
        for (x, y) in a.iter().zip(&b) {
            assert!((*x as f64 - y).abs() < 1e-5, "{x} vs {y}");
        }
    }

    /// bf16 parameters train through f32 master weights: with AdamW's small
    /// steps they follow the f32 run (rounded), where updating the bf16 values
    /// directly would round every step away. The master copy survives a
    /// save and restore.
    #[test]
    fn half_precision_parameters_keep_f32_master_weights() {
        let values: Vec<f32> = (0..64).map(|k| 0.02 + 0.001 * (k as f32).sin()).collect();
        let run = |dtype: DType, steps: std::ops::Range<usize>, opt: Option<(AdamW, Var)>| {
            let (mut opt, p) = opt.unwrap_or_else(|| {
                let t = Tensor::new(values.as_slice(), &Device::Cpu)
                    .and_then(|t| t.to_dtype(dtype))
                    .expect("t");
                let p = Var::from_tensor(&t).expect("var");
                (AdamW::new(std::slice::from_ref(&p), 0.0).expect("opt"), p)
            });
            for step in steps {
                let g = Tensor::full(1.0 + step as f32 * 0.1, 64, &Device::Cpu)
                    .and_then(|g| g.to_dtype(dtype))
                    .expect("g");
                opt.step(std::slice::from_ref(&p), &[g], 1e-5)
                    .expect("step");
            }
            (opt, p)
        };
        let as_f32 = |p: &Var| -> Vec<f32> {
            p.as_tensor()
                .to_dtype(DType::F32)
                .and_then(|t| t.to_vec1())
                .expect("values")
        };
        let (_, reference) = run(DType::F32, 0..20, None);
        let (_, bf16) = run(DType::BF16, 0..20, None);
        let start = Tensor::new(values.as_slice(), &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::BF16))
            .expect("start");
        let start = as_f32(&Var::from_tensor(&start).expect("var"));
        let rounded: Vec<f32> = Tensor::new(as_f32(&reference).as_slice(), &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::BF16))
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec1())
            .expect("rounded");
        let got = as_f32(&bf16);
        assert_ne!(
            got, start,
            "20 steps of 1e-5 must move bf16 weights of 0.02"
        );
        // The bf16 run starts from rounded values, so allow one bf16 step.
        for (g, r) in got.iter().zip(&rounded) {
            assert!((g - r).abs() <= 1.3e-4, "{g} vs {r}");
        }

        // Save after 10 steps, restore into a fresh optimizer, run 10 more.
        let (opt, p) = run(DType::BF16, 0..10, None);
        let names = vec!["p".to_string()];
        let state = opt.state(&names, std::slice::from_ref(&p)).expect("state");
        assert!(state.contains_key("w.p"), "the master copy is saved");
        let fresh = Var::from_tensor(p.as_tensor()).expect("var");
        let mut restored = AdamW::new(std::slice::from_ref(&fresh), 0.0).expect("opt");
        restored
            .load_state(&names, std::slice::from_ref(&fresh), &state, opt.t)
            .expect("load");
        let (_, resumed) = run(DType::BF16, 10..20, Some((restored, fresh)));
        assert_eq!(
            as_f32(&resumed),
            got,
            "resuming gives the uninterrupted run"
        );
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

    /// Large gradients are summed in parallel pieces: the norm must not change.
    #[test]
    fn the_norm_of_a_large_gradient_is_exact() {
        let n = 3_000_001; // many parallel pieces, the last one partial
        let values: Vec<f32> = (0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.5).collect();
        let expected = values
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        let mut grads = vec![Tensor::from_vec(values, n, &Device::Cpu).expect("t")];
        let norm = clip_grad_norm(&mut grads, 0.0).expect("norm");
        assert!(
            (norm - expected).abs() <= 1e-9 * expected,
            "{norm} vs {expected}"
        );
    }
}
