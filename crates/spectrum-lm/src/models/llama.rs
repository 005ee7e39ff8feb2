//! The Llama decoder family: Llama 2/3.x, SmolLM/SmolLM2 and Mistral, plus
//! Qwen2 (q/k/v biases) and Qwen3 (per-head RMSNorm on queries and keys), which
//! differ from it only in those switches of [`ModelConfig`].
//!
//! Weights are addressed by their Hugging Face checkpoint names
//! (`model.layers.0.self_attn.q_proj.weight`...). The KV cache lives inside the
//! model; batches are right-padded and carry a key mask.

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Embedding, VarBuilder};

use crate::Result;
use crate::config::ModelConfig;
use crate::lora::{AdapterSite, Linear};

/// Whether gradients must flow (differentiable ops) or not (fused kernels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Inference,
    Training,
}

#[derive(Debug, Clone)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm {
            weight: vb.get(size, "weight")?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        Ok(match mode {
            Mode::Inference => {
                candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps as f32)?
            }
            Mode::Training => candle_nn::ops::rms_norm_slow(x, &self.weight, self.eps as f32)?,
        })
    }
}

#[derive(Debug, Clone)]
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    fn new(cfg: &ModelConfig, dtype: DType, device: &Device) -> Result<Rotary> {
        let dim = cfg.head_dim();
        let inv_freq: Vec<f32> = (0..dim)
            .step_by(2)
            .map(|i| 1.0 / cfg.rope_theta.powf(i as f64 / dim as f64) as f32)
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, dim / 2), device)?;
        let positions = Tensor::arange(0u32, cfg.max_position_embeddings as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((cfg.max_position_embeddings, 1))?;
        let freqs = positions.matmul(&inv_freq)?;
        Ok(Rotary {
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
        })
    }

    /// Rotates `x` of shape [batch, heads, seq, head_dim] for positions `offset..offset+seq`.
    fn apply(&self, x: &Tensor, offset: usize, mode: Mode) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let cos = self.cos.narrow(0, offset, seq)?;
        let sin = self.sin.narrow(0, offset, seq)?;
        Ok(match mode {
            Mode::Inference => candle_nn::rotary_emb::rope(&x.contiguous()?, &cos, &sin)?,
            Mode::Training => candle_nn::rotary_emb::rope_slow(x, &cos, &sin)?,
        })
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    cache: Option<(Tensor, Tensor)>,
}

impl Attention {
    fn load(vb: VarBuilder, cfg: &ModelConfig, site: Option<&AdapterSite>) -> Result<Attention> {
        let (h, hd, heads, kv) = (
            cfg.hidden_size,
            cfg.head_dim(),
            cfg.num_attention_heads,
            cfg.kv_heads(),
        );
        let bias = cfg.qkv_bias();
        let sub = |name: &str| {
            site.map(|s| AdapterSite {
                config: s.config,
                vb: s.vb.pp(name),
            })
        };
        let q = Linear::load(
            vb.pp("q_proj"),
            h,
            heads * hd,
            bias,
            "q_proj",
            sub("q_proj").as_ref(),
        )?;
        let k = Linear::load(
            vb.pp("k_proj"),
            h,
            kv * hd,
            bias,
            "k_proj",
            sub("k_proj").as_ref(),
        )?;
        let v = Linear::load(
            vb.pp("v_proj"),
            h,
            kv * hd,
            bias,
            "v_proj",
            sub("v_proj").as_ref(),
        )?;
        let o = Linear::load(
            vb.pp("o_proj"),
            heads * hd,
            h,
            false,
            "o_proj",
            sub("o_proj").as_ref(),
        )?;
        let (q_norm, k_norm) = if cfg.qk_norm() {
            (
                Some(RmsNorm::load(vb.pp("q_norm"), hd, cfg.rms_norm_eps)?),
                Some(RmsNorm::load(vb.pp("k_norm"), hd, cfg.rms_norm_eps)?),
            )
        } else {
            (None, None)
        };
        Ok(Attention {
            q,
            k,
            v,
            o,
            q_norm,
            k_norm,
            heads,
            kv_heads: kv,
            head_dim: hd,
            cache: None,
        })
    }

    fn forward(
        &mut self,
        x: &Tensor,
        mask: &Tensor,
        rotary: &Rotary,
        offset: usize,
        mode: Mode,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let train = mode == Mode::Training;
        let shape = |y: Tensor, heads: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, heads, self.head_dim))?.transpose(1, 2)?)
        };
        let mut q = shape(self.q.forward_t(x, train)?, self.heads)?;
        let mut k = shape(self.k.forward_t(x, train)?, self.kv_heads)?;
        let v = shape(self.v.forward_t(x, train)?, self.kv_heads)?.contiguous()?;
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = qn.forward(&q, mode)?;
            k = kn.forward(&k, mode)?;
        }
        let q = rotary.apply(&q, offset, mode)?;
        let k = rotary.apply(&k, offset, mode)?;
        let (k, v) = match &self.cache {
            Some((ck, cv)) if mode == Mode::Inference => {
                (Tensor::cat(&[ck, &k], 2)?, Tensor::cat(&[cv, &v], 2)?)
            }
            _ => (k, v),
        };
        if mode == Mode::Inference {
            self.cache = Some((k.clone(), v.clone()));
        }
        let groups = self.heads / self.kv_heads;
        let k = repeat_kv(k, groups)?;
        let v = repeat_kv(v, groups)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores =
            (q.contiguous()?.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(mask)?;
        let probs = match mode {
            Mode::Inference => candle_nn::ops::softmax_last_dim(&scores)?,
            Mode::Training => candle_nn::ops::softmax(&scores, D::Minus1)?,
        };
        let out = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        self.o.forward_t(&out, train)
    }
}

/// Repeats key/value heads for grouped-query attention: [b, kv, t, d] -> [b, kv*n, t, d].
fn repeat_kv(x: Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x);
    }
    let (b, kv, t, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .broadcast_as((b, kv, n, t, d))?
        .reshape((b, kv * n, t, d))?)
}

#[derive(Debug, Clone)]
struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Mlp {
    fn load(vb: VarBuilder, cfg: &ModelConfig, site: Option<&AdapterSite>) -> Result<Mlp> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let sub = |name: &str| {
            site.map(|s| AdapterSite {
                config: s.config,
                vb: s.vb.pp(name),
            })
        };
        Ok(Mlp {
            gate: Linear::load(
                vb.pp("gate_proj"),
                h,
                i,
                false,
                "gate_proj",
                sub("gate_proj").as_ref(),
            )?,
            up: Linear::load(
                vb.pp("up_proj"),
                h,
                i,
                false,
                "up_proj",
                sub("up_proj").as_ref(),
            )?,
            down: Linear::load(
                vb.pp("down_proj"),
                i,
                h,
                false,
                "down_proj",
                sub("down_proj").as_ref(),
            )?,
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let gate = candle_nn::ops::silu(&self.gate.forward_t(x, train)?)?;
        self.down
            .forward_t(&(gate * self.up.forward_t(x, train)?)?, train)
    }
}

#[derive(Debug, Clone)]
struct Block {
    attn: Attention,
    mlp: Mlp,
    input_norm: RmsNorm,
    post_norm: RmsNorm,
}

/// A decoder-only causal language model of the Llama family.
#[derive(Debug, Clone)]
pub struct CausalLm {
    embed: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    lm_head: Linear,
    rotary: Rotary,
    config: ModelConfig,
    mode: Mode,
    cached: usize,
    device: Device,
    dtype: DType,
}

impl CausalLm {
    /// Builds the model from checkpoint weights in `vb`; `adapters` adds LoRA
    /// adapters (created in their own variable store) to the targeted projections.
    pub fn load(
        cfg: &ModelConfig,
        vb: VarBuilder,
        adapters: Option<&AdapterSite>,
    ) -> Result<CausalLm> {
        let device = vb.device().clone();
        let dtype = vb.dtype();
        let embed_weight = vb.get(
            (cfg.vocab_size, cfg.hidden_size),
            "model.embed_tokens.weight",
        )?;
        let embed = Embedding::new(embed_weight.clone(), cfg.hidden_size);
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let lvb = vb.pp(format!("model.layers.{i}"));
            let site = adapters.map(|s| AdapterSite {
                config: s.config,
                vb: s.vb.pp(format!("base_model.model.model.layers.{i}")),
            });
            let attn_site = site.as_ref().map(|s| AdapterSite {
                config: s.config,
                vb: s.vb.pp("self_attn"),
            });
            let mlp_site = site.as_ref().map(|s| AdapterSite {
                config: s.config,
                vb: s.vb.pp("mlp"),
            });
            blocks.push(Block {
                attn: Attention::load(lvb.pp("self_attn"), cfg, attn_site.as_ref())?,
                mlp: Mlp::load(lvb.pp("mlp"), cfg, mlp_site.as_ref())?,
                input_norm: RmsNorm::load(
                    lvb.pp("input_layernorm"),
                    cfg.hidden_size,
                    cfg.rms_norm_eps,
                )?,
                post_norm: RmsNorm::load(
                    lvb.pp("post_attention_layernorm"),
                    cfg.hidden_size,
                    cfg.rms_norm_eps,
                )?,
            });
        }
        let norm = RmsNorm::load(vb.pp("model.norm"), cfg.hidden_size, cfg.rms_norm_eps)?;
        let lm_head = if cfg.tie_word_embeddings || !vb.contains_tensor("lm_head.weight") {
            Linear::from_weight(embed_weight)
        } else {
            Linear::load(
                vb.pp("lm_head"),
                cfg.hidden_size,
                cfg.vocab_size,
                false,
                "lm_head",
                None,
            )?
        };
        let rotary = Rotary::new(cfg, dtype, &device)?;
        Ok(CausalLm {
            embed,
            blocks,
            norm,
            lm_head,
            rotary,
            config: cfg.clone(),
            mode: Mode::Inference,
            cached: 0,
            device,
            dtype,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Training mode uses differentiable kernels and no KV cache.
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        self.clear_kv_cache();
    }

    pub fn clear_kv_cache(&mut self) {
        self.cached = 0;
        for b in &mut self.blocks {
            b.attn.cache = None;
        }
    }

    /// How many positions the KV cache holds.
    pub fn cached_len(&self) -> usize {
        self.cached
    }

    /// Repeats a batch-1 KV cache `n` times along the batch, so `n` continuations
    /// of one prompt can run together.
    pub fn expand_kv_cache(&mut self, n: usize) -> Result<()> {
        for b in &mut self.blocks {
            if let Some((k, v)) = &b.attn.cache {
                let expand = |t: &Tensor| -> Result<Tensor> {
                    let (_, h, s, d) = t.dims4()?;
                    Ok(t.narrow(0, 0, 1)?
                        .broadcast_as((n, h, s, d))?
                        .contiguous()?)
                };
                b.attn.cache = Some((expand(k)?, expand(v)?));
            }
        }
        Ok(())
    }

    /// Logits for every position: `input_ids` is [batch, seq] (u32); `key_mask`
    /// is [batch, cached + seq] with 1 for real tokens and 0 for padding (None:
    /// no padding). In inference mode the keys and values are appended to the cache.
    pub fn forward(&mut self, input_ids: &Tensor, key_mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let offset = if self.mode == Mode::Inference {
            self.cached
        } else {
            0
        };
        let mask = attention_mask(b, t, offset, key_mask, self.dtype, &self.device)?;
        let mut x = self.embed.forward(input_ids)?;
        let train = self.mode == Mode::Training;
        for block in &mut self.blocks {
            let h = block.input_norm.forward(&x, self.mode)?;
            x = (x + block
                .attn
                .forward(&h, &mask, &self.rotary, offset, self.mode)?)?;
            let h = block.post_norm.forward(&x, self.mode)?;
            x = (x + block.mlp.forward(&h, train)?)?;
        }
        if self.mode == Mode::Inference {
            self.cached += t;
        }
        let x = self.norm.forward(&x, self.mode)?;
        self.lm_head.forward_t(&x, train)
    }
}

/// Additive mask [batch, 1, seq, offset + seq]: 0 where a query may attend, -inf elsewhere.
fn attention_mask(
    b: usize,
    t: usize,
    offset: usize,
    key_mask: Option<&Tensor>,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let total = offset + t;
    let causal: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j <= offset + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    let mut mask = Tensor::from_vec(causal, (1, 1, t, total), device)?;
    if let Some(keys) = key_mask {
        // 1 -> 0, 0 -> -1e9, broadcast over heads and queries.
        let keys = keys.to_dtype(DType::F32)?.reshape((b, 1, 1, total))?;
        // Finite, so that 0 * it stays 0 where the key is real.
        let pad = ((keys - 1.0)? * 1e9)?;
        mask = mask.broadcast_add(&pad)?;
    }
    Ok(mask.to_dtype(dtype)?)
}
