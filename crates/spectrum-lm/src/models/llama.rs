//! The Llama decoder family: Llama 2/3.x, SmolLM/SmolLM2 and Mistral, plus
//! Qwen2 (q/k/v biases) and Qwen3 (per-head RMSNorm on queries and keys), which
//! differ from it only in those switches of [`ModelConfig`].
//!
//! Weights are addressed by their Hugging Face checkpoint names
//! (`model.layers.0.self_attn.q_proj.weight`...).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::common::{
    Activation, Attention, AttentionSpec, Layers, Masks, Mlp, Mode, Pass, RmsNorm, Rotary, TokenIo,
    attention_mask, sub_site,
};
use crate::Result;
use crate::config::ModelConfig;
use crate::lora::{AdapterSite, Linear};

#[derive(Debug, Clone)]
struct Block {
    attn: Attention,
    mlp: Mlp,
    input_norm: RmsNorm,
    post_norm: RmsNorm,
}

#[derive(Debug, Clone)]
pub struct Llama {
    tokens: TokenIo,
    blocks: Vec<Block>,
    norm: RmsNorm,
    rotary: Rotary,
}

/// LoRA sites of layer `i`, named as PEFT names them.
pub(crate) fn layer_site<'a>(site: Option<&AdapterSite<'a>>, i: usize) -> Option<AdapterSite<'a>> {
    sub_site(site, &format!("base_model.model.model.layers.{i}"))
}

impl Llama {
    pub fn load(
        cfg: &ModelConfig,
        vb: VarBuilder,
        adapters: Option<&AdapterSite>,
    ) -> Result<Llama> {
        let spec = AttentionSpec {
            hidden: cfg.hidden_size,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.kv_heads(),
            head_dim: cfg.head_dim(),
            qkv_bias: cfg.qkv_bias(),
            qk_norm: cfg.qk_norm().then_some((cfg.rms_norm_eps, 0.0)),
            scale: 1.0 / (cfg.head_dim() as f64).sqrt(),
        };
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
                    cfg.hidden_size,
                    cfg.intermediate_size,
                    Activation::Silu,
                    sub_site(site.as_ref(), "mlp").as_ref(),
                )?,
                input_norm: RmsNorm::load(
                    lvb.pp("input_layernorm"),
                    cfg.hidden_size,
                    cfg.rms_norm_eps,
                    0.0,
                )?,
                post_norm: RmsNorm::load(
                    lvb.pp("post_attention_layernorm"),
                    cfg.hidden_size,
                    cfg.rms_norm_eps,
                    0.0,
                )?,
            });
        }
        Ok(Llama {
            norm: RmsNorm::load(vb.pp("model.norm"), cfg.hidden_size, cfg.rms_norm_eps, 0.0)?,
            tokens: TokenIo::load(cfg, &vb, adapters)?,
            rotary: Rotary::new(
                cfg.rope_theta,
                cfg.rope().map_err(candle_core::Error::wrap)?,
                cfg.head_dim(),
                cfg.max_position_embeddings,
                vb.dtype(),
                vb.device(),
            )?,
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

    /// Logits from final hidden states.
    pub(crate) fn head(&self, hidden: &Tensor, train: bool) -> Result<Tensor> {
        self.tokens.head(hidden, train)
    }
}

impl Layers for Llama {
    /// The embedded tokens and the attention mask of a pass.
    fn begin(
        &self,
        ids: &Tensor,
        key_mask: Option<&Tensor>,
        pass: &Pass,
    ) -> Result<(Tensor, Masks)> {
        let (b, t) = ids.dims2()?;
        let full = attention_mask(b, t, pass.offset, key_mask, None, pass.dtype, pass.device)?;
        Ok((self.tokens.embed(ids)?, Masks { full, local: None }))
    }

    fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Decoder layer `i` on the residual stream `x`.
    fn block(&mut self, i: usize, x: &Tensor, masks: &Masks, pass: &Pass) -> Result<Tensor> {
        let (mode, offset) = (pass.mode, pass.offset);
        let block = &mut self.blocks[i];
        let h = block.input_norm.forward(x, mode)?;
        let x = (x + block
            .attn
            .forward(&h, &masks.full, &self.rotary, offset, mode)?)?;
        let h = block.post_norm.forward(&x, mode)?;
        Ok((&x + block.mlp.forward(&h, mode == Mode::Training)?)?)
    }

    /// The final norm.
    fn end(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.norm.forward(x, mode)
    }
}
