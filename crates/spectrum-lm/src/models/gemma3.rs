//! Gemma 3 (text): scaled embeddings, RMSNorm as `1 + weight`, four norms per
//! layer (before and after attention and MLP), per-head q/k norms, GELU (tanh)
//! MLPs, and interleaved attention: most layers see a sliding window of keys
//! with local RoPE, every n-th layer sees all keys with global RoPE.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use super::common::{
    Activation, Attention, AttentionSpec, Layers, Masks, Mlp, Mode, Pass, RmsNorm, Rotary, TokenIo,
    attention_mask, sub_site,
};
use super::llama::layer_site;
use crate::Result;
use crate::config::{ModelConfig, RopeScaling};
use crate::lora::{AdapterSite, Linear};

#[derive(Debug, Clone)]
struct Block {
    attn: Attention,
    mlp: Mlp,
    input_norm: RmsNorm,
    post_attn_norm: RmsNorm,
    pre_ff_norm: RmsNorm,
    post_ff_norm: RmsNorm,
    /// Sliding-window layer (local RoPE) or full attention (global RoPE).
    sliding: bool,
}

#[derive(Debug, Clone)]
pub struct Gemma3 {
    tokens: TokenIo,
    embed_scale: f64,
    blocks: Vec<Block>,
    norm: RmsNorm,
    rotary_global: Rotary,
    rotary_local: Rotary,
    window: usize,
    final_softcap: Option<f64>,
}

impl Gemma3 {
    pub fn load(
        cfg: &ModelConfig,
        vb: VarBuilder,
        adapters: Option<&AdapterSite>,
    ) -> Result<Gemma3> {
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        let spec = AttentionSpec {
            hidden: h,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.kv_heads(),
            head_dim: cfg.head_dim(),
            qkv_bias: cfg.attention_bias,
            qk_norm: Some((eps, 1.0)),
            scale: 1.0
                / cfg
                    .query_pre_attn_scalar
                    .unwrap_or(cfg.head_dim() as f64)
                    .sqrt(),
        };
        let norm = |vb: VarBuilder, name: &str| RmsNorm::load(vb.pp(name), h, eps, 1.0);
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let lvb = vb.pp(format!("model.layers.{i}"));
            let site = layer_site(adapters, i);
            blocks.push(Block {
                attn: Attention::load(
                    lvb.pp("self_attn"),
                    spec.clone(),
                    sub_site(site.as_ref(), "self_attn").as_ref(),
                )?,
                mlp: Mlp::load(
                    lvb.pp("mlp"),
                    h,
                    cfg.intermediate_size,
                    Activation::GeluTanh,
                    sub_site(site.as_ref(), "mlp").as_ref(),
                )?,
                input_norm: norm(lvb.clone(), "input_layernorm")?,
                post_attn_norm: norm(lvb.clone(), "post_attention_layernorm")?,
                pre_ff_norm: norm(lvb.clone(), "pre_feedforward_layernorm")?,
                post_ff_norm: norm(lvb.clone(), "post_feedforward_layernorm")?,
                sliding: cfg.is_sliding_layer(i),
            });
        }
        let (dtype, device) = (vb.dtype(), vb.device().clone());
        Ok(Gemma3 {
            norm: RmsNorm::load(vb.pp("model.norm"), h, eps, 1.0)?,
            tokens: TokenIo::load(cfg, &vb, adapters)?,
            embed_scale: (h as f64).sqrt(),
            // RoPE scaling (linear on 4B and up) stretches the global layers only.
            rotary_global: Rotary::new(
                cfg.rope_theta,
                cfg.rope().map_err(candle_core::Error::wrap)?,
                cfg.head_dim(),
                cfg.max_position_embeddings,
                dtype,
                &device,
            )?,
            rotary_local: Rotary::new(
                cfg.rope_local_base_freq.unwrap_or(10_000.0),
                RopeScaling::Default,
                cfg.head_dim(),
                cfg.max_position_embeddings,
                dtype,
                &device,
            )?,
            window: cfg.sliding_window.unwrap_or(cfg.max_position_embeddings),
            final_softcap: cfg.final_logit_softcapping,
            blocks,
        })
    }

    pub(crate) fn attention_layers(&mut self) -> impl Iterator<Item = &mut Attention> {
        self.blocks.iter_mut().map(|b| &mut b.attn)
    }

    /// Every layer with a weight matrix.
    pub(crate) fn linears_mut(&mut self) -> impl Iterator<Item = &mut Linear> {
        let layers = self.blocks.iter_mut();
        let layers = layers.flat_map(|b| b.attn.linears_mut().chain(b.mlp.linears_mut()));
        layers.chain(self.tokens.linears_mut())
    }

    /// Logits from final hidden states (soft-capped if the model says so).
    pub(crate) fn head(&self, hidden: &Tensor, train: bool) -> Result<Tensor> {
        let logits = self.tokens.head(hidden, train)?;
        Ok(match self.final_softcap {
            Some(cap) => ((logits / cap)?.tanh()? * cap)?,
            None => logits,
        })
    }
}

impl Layers for Gemma3 {
    /// The embedded (and scaled) tokens and the full and sliding-window masks.
    fn begin(
        &self,
        ids: &Tensor,
        key_mask: Option<&Tensor>,
        pass: &Pass,
    ) -> Result<(Tensor, Masks)> {
        let Pass {
            offset,
            dtype,
            device,
            ..
        } = *pass;
        let (b, t) = ids.dims2()?;
        let full = attention_mask(b, t, offset, key_mask, None, dtype, device)?;
        let local = attention_mask(b, t, offset, key_mask, Some(self.window), dtype, device)?;
        // The scale is rounded to the model's dtype first, as in transformers.
        let scale = Tensor::new(self.embed_scale as f32, device)?
            .to_dtype(dtype)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        let x = (self.tokens.embed(ids)? * scale)?;
        Ok((
            x,
            Masks {
                full,
                local: Some(local),
            },
        ))
    }

    fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Decoder layer `i` on the residual stream `x`.
    fn block(&mut self, i: usize, x: &Tensor, masks: &Masks, pass: &Pass) -> Result<Tensor> {
        let (mode, offset) = (pass.mode, pass.offset);
        let block = &mut self.blocks[i];
        let (mask, rotary) = match (&masks.local, block.sliding) {
            (Some(local), true) => (local, &self.rotary_local),
            _ => (&masks.full, &self.rotary_global),
        };
        let h = block.input_norm.forward(x, mode)?;
        let h = block.attn.forward(&h, mask, rotary, offset, mode)?;
        let x = (x + block.post_attn_norm.forward(&h, mode)?)?;
        let h = block.pre_ff_norm.forward(&x, mode)?;
        let h = block.mlp.forward(&h, mode == Mode::Training)?;
        Ok((&x + block.post_ff_norm.forward(&h, mode)?)?)
    }

    /// The final norm.
    fn end(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.norm.forward(x, mode)
    }
}
