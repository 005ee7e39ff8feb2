//! Linear layers with optional LoRA adapters (Hu et al. 2021, as in PEFT):
//! `y = x Wᵀ + b + (alpha / r) · dropout(x) Aᵀ Bᵀ`, with A random and B zero at
//! the start, so an adapted model begins exactly where its base model is.

use std::sync::Arc;

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::Result;

/// Every projection a LoRA adapter can target, in checkpoint order.
pub const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// Which projections get adapters, and how big they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
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
    /// The weight's bf16 copies, packed when a frozen product first runs in
    /// bf16 ([`crate::ops::FrozenMatmul`]); shared by the layer's clones.
    tiles: Arc<crate::bf16::Tiles>,
    /// The checkpoint name of the weight (`model.layers.0.mlp.up_proj.weight`).
    name: String,
    /// The GGUF blocks the weight was dequantised from, which the decode
    /// products read instead ([`crate::blocks`]).
    blocks: Option<Arc<crate::blocks::Blocks>>,
}

/// Where adapters are created (a `VarMap`-backed builder) and with what settings.
#[derive(Clone)]
pub struct AdapterSite<'a> {
    pub config: &'a LoraConfig,
    pub vb: VarBuilder<'a>,
    /// Token ids whose embedding (and untied LM-head) rows train too: tokens
    /// added to the model (METHOD.md §2), PEFT's `trainable_token_indices`.
    pub token_rows: Option<std::ops::Range<usize>>,
}

/// PEFT's names for the trainable rows of the embeddings and the LM head.
pub const EMBED_ROWS: &str =
    "base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta";
pub const HEAD_ROWS: &str = "base_model.model.lm_head.token_adapter.trainable_tokens_delta";

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
        let weight_name = format!("{}.weight", vb.prefix());
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
            tiles: Arc::default(),
            name: weight_name,
            blocks: None,
        })
    }

    /// A plain linear layer from a weight named `name` in the checkpoint
    /// (used for tied embeddings).
    pub fn from_weight(weight: Tensor, name: &str) -> Linear {
        Linear {
            weight,
            bias: None,
            adapter: None,
            tiles: Arc::default(),
            name: name.to_string(),
            blocks: None,
        }
    }

    /// The checkpoint name of the weight.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Gives the decode products the GGUF blocks of the weight (used once
    /// checked to dequantise to it).
    pub fn set_blocks(&mut self, blocks: Option<Arc<crate::blocks::Blocks>>) {
        self.blocks = blocks;
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The same layer (bias, adapter) over another weight.
    pub fn with_weight(&self, weight: Tensor) -> Linear {
        Linear {
            weight,
            tiles: Arc::default(),
            blocks: None,
            ..self.clone()
        }
    }

    /// The layer as [`crate::ops::lora_swiglu`] takes it: a weight with an
    /// adapter that has no dropout, and no bias.
    pub(crate) fn lora_parts(&self) -> Option<crate::ops::LoraParts<'_>> {
        let ad = self.adapter.as_ref().filter(|ad| ad.dropout == 0.0)?;
        self.bias.is_none().then_some(crate::ops::LoraParts {
            weight: &self.weight,
            tiles: &self.tiles,
            a: &ad.a,
            b: &ad.b,
            scale: ad.scale,
        })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        // One large matrix multiply over all rows ([b, t, in] as [b * t, in])
        // beats a batch of small ones; the ops take `x` as it is.
        let y = match &self.adapter {
            Some(ad) if train && ad.dropout > 0.0 => {
                let dims = x.dims();
                let x2 =
                    x.reshape((x.elem_count() / dims[dims.len() - 1], dims[dims.len() - 1]))?;
                let xa = candle_nn::ops::dropout(&x2, ad.dropout)?;
                // Scaling B (out x r) instead of the product (rows x out) keeps one
                // activation-sized tensor less for backward.
                let low = xa.matmul(&ad.a.t()?)?.matmul(&(&ad.b * ad.scale)?.t()?)?;
                let base = crate::ops::linear_with(x, &self.weight, Some(&self.tiles), None)?;
                (&base + low.reshape(base.shape())?)?
            }
            Some(ad) => crate::ops::lora_matmul(
                x,
                &self.weight,
                (Some(&self.tiles), self.blocks.as_deref()),
                (&ad.a, &ad.b),
                ad.scale,
            )?,
            None => {
                crate::ops::linear_with(x, &self.weight, Some(&self.tiles), self.blocks.as_deref())?
            }
        };
        Ok(match &self.bias {
            Some(bias) => y.broadcast_add(bias)?,
            None => y,
        })
    }
}
