//! Linear layers with optional LoRA adapters (Hu et al. 2021, as in PEFT):
//! `y = x Wᵀ + b + (alpha / r) · dropout(x) Aᵀ Bᵀ`, with A random and B zero at
//! the start, so an adapted model begins exactly where its base model is.

use candle_core::{CpuStorage, Layout, Shape, Storage, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::Result;

/// Which projections get adapters, and how big they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f32,
    /// Projection names: `q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`, `down_proj`.
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    /// The reference's LoRA setting (METHOD.md §3): r = 16, alpha = 80 on q and v.
    fn default() -> Self {
        LoraConfig {
            rank: 16,
            alpha: 80.0,
            dropout: 0.0,
            targets: vec!["q_proj".into(), "v_proj".into()],
        }
    }
}

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

#[derive(Debug, Clone)]
struct Adapter {
    a: Tensor,
    b: Tensor,
    scale: f64,
    dropout: f32,
}

/// A linear layer; base weights come from the checkpoint, adapters (if any)
/// from a separate, trainable variable store.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    adapter: Option<Adapter>,
}

/// Where adapters are created (a `VarMap`-backed builder) and with what settings.
#[derive(Clone)]
pub struct AdapterSite<'a> {
    pub config: &'a LoraConfig,
    pub vb: VarBuilder<'a>,
}

impl std::fmt::Debug for AdapterSite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterSite")
            .field("config", self.config)
            .finish_non_exhaustive()
    }
}

impl Linear {
    /// Loads `{vb}.weight` (and `.bias`); adds an adapter named like PEFT's
    /// (`{site}.lora_A.weight`, `{site}.lora_B.weight`) when `name` is a target.
    pub fn load(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        name: &str,
        site: Option<&AdapterSite>,
    ) -> Result<Linear> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        let adapter = match site {
            Some(site) if site.config.targets.iter().any(|t| t == name) => {
                let r = site.config.rank;
                // PEFT initialises A with kaiming-uniform(a = sqrt(5)): U(-1/sqrt(in), 1/sqrt(in)).
                let bound = 1.0 / (in_dim as f64).sqrt();
                let a = site.vb.get_with_hints(
                    (r, in_dim),
                    "lora_A.weight",
                    Init::Uniform {
                        lo: -bound,
                        up: bound,
                    },
                )?;
                let b = site
                    .vb
                    .get_with_hints((out_dim, r), "lora_B.weight", Init::Const(0.0))?;
                Some(Adapter {
                    a,
                    b,
                    scale: site.config.scale(),
                    dropout: site.config.dropout,
                })
            }
            _ => None,
        };
        Ok(Linear {
            weight,
            bias,
            adapter,
        })
    }

    /// A plain linear layer from a weight (used for tied embeddings).
    pub fn from_weight(weight: Tensor) -> Linear {
        Linear {
            weight,
            bias: None,
            adapter: None,
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        // One large matrix multiply over all rows beats a batch of small ones:
        // [b, t, in] -> [b * t, in] x [in, out] -> [b, t, out].
        let dims = x.dims().to_vec();
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let x2 = x.reshape((rows, dims[dims.len() - 1]))?;
        let mut y = frozen_aware_matmul(&x2, &self.weight)?;
        if let Some(bias) = &self.bias {
            y = y.broadcast_add(bias)?;
        }
        if let Some(ad) = &self.adapter {
            let xa = if train && ad.dropout > 0.0 {
                candle_nn::ops::dropout(&x2, ad.dropout)?
            } else {
                x2.clone()
            };
            y = (y + (xa.matmul(&ad.a.t()?)?.matmul(&ad.b.t()?)? * ad.scale)?)?;
        }
        let mut out_dims = dims;
        let last = out_dims.len() - 1;
        out_dims[last] = y.dim(1)?;
        Ok(y.reshape(out_dims)?)
    }
}

/// `x Wᵀ`. When `x` needs a gradient but `W` is frozen (not a variable: LoRA
/// training), candle's matmul backward would still compute `∂L/∂W` (as many
/// FLOPs as the forward pass, and the result kept in memory until the end of
/// backward). On the CPU a custom op whose backward returns only `∂L/∂x`
/// avoids that; other devices use the plain matmul.
pub fn frozen_aware_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let f32_cpu = x.device().is_cpu() && x.dtype() == candle_core::DType::F32;
    if f32_cpu && x.track_op() && !w.is_variable() && !w.track_op() {
        return Ok(x
            .contiguous()?
            .apply_op1(FrozenLinear { weight: w.clone() })?);
    }
    Ok(x.matmul(&w.t()?)?)
}

/// `y = x Wᵀ` with a gradient for `x` only.
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
        if !layout.is_contiguous() {
            candle_core::bail!("frozen-linear expects a contiguous input");
        }
        let (offset, n) = (layout.start_offset(), layout.shape().elem_count());
        let all = storage.as_slice::<f32>()?.len();
        let x = Tensor::from_storage(
            Storage::Cpu(storage.clone()),
            all,
            candle_core::op::BackpropOp::none(),
            false,
        )
        .narrow(0, offset, n)?
        .reshape(layout.shape())?;
        let y = x.matmul(&self.weight.t()?)?.contiguous()?;
        let (guard, y_layout) = y.storage_and_layout();
        match &*guard {
            Storage::Cpu(out) if y_layout.start_offset() == 0 => {
                Ok((out.clone(), y.shape().clone()))
            }
            _ => candle_core::bail!("frozen-linear: unexpected output storage"),
        }
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
