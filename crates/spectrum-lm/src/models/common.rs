//! Building blocks shared by the decoder families: RMSNorm, rotary embeddings,
//! grouped-query attention with a KV cache, gated MLPs and attention masks.
//! In training mode every block uses differentiable kernels; in inference mode
//! the fused ones.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::Result;
use crate::config::{ModelConfig, RopeScaling};
use crate::lora::{AdapterSite, EMBED_ROWS, HEAD_ROWS, Linear};

/// Whether gradients must flow (differentiable ops) or not (fused kernels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Inference,
    Training,
}

/// The attention masks of a pass: every layer's, and the sliding-window
/// layers' where the family has them.
#[derive(Debug, Clone)]
pub(crate) struct Masks {
    pub full: Tensor,
    pub local: Option<Tensor>,
}

/// A decoder-only network as its three stages, so that a pass can run (or
/// recompute) one decoder layer at a time.
pub(crate) trait Layers {
    /// The embedded tokens and the attention masks of a pass.
    fn begin(
        &self,
        ids: &Tensor,
        key_mask: Option<&Tensor>,
        pass: &Pass,
    ) -> Result<(Tensor, Masks)>;
    fn blocks(&self) -> usize;
    /// Decoder layer `i` on the residual stream `x`.
    fn block(&mut self, i: usize, x: &Tensor, masks: &Masks, pass: &Pass) -> Result<Tensor>;
    /// The final norm.
    fn end(&self, x: &Tensor, mode: Mode) -> Result<Tensor>;

    /// The final hidden states of `ids`.
    fn forward(&mut self, ids: &Tensor, key_mask: Option<&Tensor>, pass: &Pass) -> Result<Tensor> {
        let (mut x, masks) = self.begin(ids, key_mask, pass)?;
        for i in 0..self.blocks() {
            x = self.block(i, &x, &masks, pass)?;
        }
        self.end(&x, pass.mode)
    }
}

/// What one forward pass is: where it starts in the cache, in which mode, on what.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pass<'a> {
    pub offset: usize,
    pub mode: Mode,
    pub dtype: DType,
    pub device: &'a Device,
}

/// RMSNorm; Gemma scales by `1 + weight` (`offset` 1), Llama by `weight`.
#[derive(Debug, Clone)]
pub(crate) struct RmsNorm {
    weight: Tensor,
    eps: f64,
    offset: f64,
}

impl RmsNorm {
    pub fn load(vb: VarBuilder, size: usize, eps: f64, offset: f64) -> Result<RmsNorm> {
        Ok(RmsNorm {
            weight: vb.get(size, "weight")?,
            eps,
            offset,
        })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        if self.offset != 0.0 && matches!(x.dtype(), DType::BF16 | DType::F16) {
            // `1 + w` in bf16 keeps w to 2^-8 only: Gemma's norms (like
            // transformers' Gemma3RMSNorm) run in f32 and cast back.
            let f32_norm = RmsNorm {
                weight: self.weight.to_dtype(DType::F32)?,
                ..self.clone()
            };
            return Ok(f32_norm
                .forward(&x.to_dtype(DType::F32)?, mode)?
                .to_dtype(x.dtype())?);
        }
        let alpha = if self.offset != 0.0 {
            (&self.weight + self.offset)?
        } else {
            self.weight.clone()
        };
        Ok(match mode {
            Mode::Inference => candle_nn::ops::rms_norm(&x.contiguous()?, &alpha, self.eps as f32)?,
            Mode::Training => crate::ops::rms_norm(x, &alpha, self.eps as f32)?,
        })
    }
}

/// Rotary position embeddings (the "rotate half" layout of Hugging Face models).
#[derive(Debug, Clone)]
pub(crate) struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    pub fn new(
        theta: f64,
        scaling: RopeScaling,
        head_dim: usize,
        positions: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Rotary> {
        let inv_freq: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| scaling.apply(1.0 / theta.powf(i as f64 / head_dim as f64)) as f32)
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, head_dim / 2), device)?;
        let positions = Tensor::arange(0u32, positions as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((positions, 1))?;
        let freqs = positions.matmul(&inv_freq)?;
        Ok(Rotary {
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
        })
    }

    /// cos and sin [seq, head_dim / 2] for positions `offset..offset+seq`.
    pub fn tables(&self, offset: usize, seq: usize) -> Result<(Tensor, Tensor)> {
        Ok((
            self.cos.narrow(0, offset, seq)?,
            self.sin.narrow(0, offset, seq)?,
        ))
    }

    /// Rotates `x` [batch, heads, seq, head_dim] for positions `offset..offset+seq`.
    pub fn apply(&self, x: &Tensor, offset: usize, mode: Mode) -> Result<Tensor> {
        let (cos, sin) = self.tables(offset, x.dim(2)?)?;
        match mode {
            Mode::Inference => Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, &cos, &sin)?),
            Mode::Training => crate::ops::rope(x, &cos, &sin),
        }
    }
}

/// Shapes and switches of one attention layer.
#[derive(Debug, Clone)]
pub(crate) struct AttentionSpec {
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub qkv_bias: bool,
    /// Per-head RMSNorm on queries and keys (Qwen3, Gemma 3): (eps, offset).
    pub qk_norm: Option<(f64, f64)>,
    /// Scores are multiplied by this (1/sqrt(head_dim) unless the family says otherwise).
    pub scale: f64,
}

/// Grouped-query self-attention with a KV cache.
#[derive(Debug, Clone)]
pub(crate) struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    spec: AttentionSpec,
    pub cache: Option<KvCache>,
}

/// The keys and values of the positions seen so far, each [b, kv_heads,
/// len, head_dim], held in buffers with room to grow: a decoding step writes
/// its position in place (growing by concatenation copied the whole cache at
/// every step, 7% of sampling).
#[derive(Debug)]
pub(crate) struct KvCache {
    k: Tensor,
    v: Tensor,
    len: usize,
    /// False in a clone, whose buffers its original still writes (past the
    /// clone's `len`): its first append moves it to buffers of its own.
    owned: bool,
}

impl Clone for KvCache {
    fn clone(&self) -> KvCache {
        KvCache {
            k: self.k.clone(),
            v: self.v.clone(),
            len: self.len,
            owned: false,
        }
    }
}

impl KvCache {
    /// A cache holding `k` and `v` [b, kv_heads, t, head_dim] exactly.
    fn new(k: Tensor, v: Tensor) -> Result<KvCache> {
        let len = k.dim(2)?;
        Ok(KvCache {
            k: k.contiguous()?,
            v: v.contiguous()?,
            len,
            owned: true,
        })
    }

    /// Appends `k` and `v` [b, kv_heads, t, head_dim]; returns the keys and
    /// values of every position so far (views of the buffers).
    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let needed = self.len + k.dim(2)?;
        if needed > self.k.dim(2)? || !self.owned {
            // Room for a quarter more (at least 64 positions): few copies as
            // it grows, little memory unused.
            let room = needed + (needed / 4).max(64);
            for buf in [&mut self.k, &mut self.v] {
                let (b, h, _, d) = buf.dims4()?;
                let grown = Tensor::zeros((b, h, room, d), buf.dtype(), buf.device())?;
                grown.slice_set(&buf.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                *buf = grown;
            }
            self.owned = true;
        }
        self.k.slice_set(&k.contiguous()?, 2, self.len)?;
        self.v.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = needed;
        Ok((self.k.narrow(2, 0, needed)?, self.v.narrow(2, 0, needed)?))
    }

    /// Row `i` of the new cache is row `rows[i]` of this one.
    fn select_rows(&self, rows: &Tensor) -> Result<KvCache> {
        KvCache::new(
            self.k.narrow(2, 0, self.len)?.index_select(rows, 0)?,
            self.v.narrow(2, 0, self.len)?.index_select(rows, 0)?,
        )
    }
}

impl Attention {
    /// The projections.
    pub fn linears_mut(&mut self) -> impl Iterator<Item = &mut Linear> {
        [&mut self.q, &mut self.k, &mut self.v, &mut self.o].into_iter()
    }
}

impl Mlp {
    /// The projections.
    pub fn linears_mut(&mut self) -> impl Iterator<Item = &mut Linear> {
        [&mut self.gate, &mut self.up, &mut self.down].into_iter()
    }
}

/// A LoRA site for the projection `name` under `site`.
pub(crate) fn sub_site<'a>(site: Option<&AdapterSite<'a>>, name: &str) -> Option<AdapterSite<'a>> {
    site.map(|s| AdapterSite {
        config: s.config,
        vb: s.vb.pp(name),
        token_rows: None,
    })
}

/// Token embeddings and the LM head (tied to them, or not). With trainable
/// token rows (tokens added to the model), those rows come from trainable
/// variables and the rest stays frozen.
#[derive(Debug, Clone)]
pub(crate) struct TokenIo {
    embed: Tensor,
    /// Untied `lm_head.weight` (never LoRA-adapted).
    head: Option<Linear>,
    /// The head tied to `embed` (its bf16 copies live as long as the model).
    tied: Linear,
    /// (first id, embedding rows, untied head rows).
    rows: Option<(usize, Tensor, Option<Tensor>)>,
}

impl TokenIo {
    pub fn load(cfg: &ModelConfig, vb: &VarBuilder, site: Option<&AdapterSite>) -> Result<TokenIo> {
        let (v, h) = (cfg.vocab_size, cfg.hidden_size);
        let embed = vb.get((v, h), "model.embed_tokens.weight")?;
        let head = if cfg.tie_word_embeddings || !vb.contains_tensor("lm_head.weight") {
            None
        } else {
            Some(Linear::load(
                vb.pp("lm_head"),
                h,
                v,
                false,
                "lm_head",
                None,
            )?)
        };
        let rows = match site.and_then(|s| s.token_rows.clone().map(|r| (s, r))) {
            Some((site, range)) => {
                if range.end > v || range.is_empty() {
                    return Err(candle_core::Error::Msg(format!(
                        "trainable token rows {range:?} outside the vocabulary of {v}"
                    ))
                    .into());
                }
                let n = range.len();
                let zero = candle_nn::Init::Const(0.0);
                let embed_rows = site.vb.get_with_hints((n, h), EMBED_ROWS, zero)?;
                let head_rows = match head {
                    Some(_) => Some(site.vb.get_with_hints((n, h), HEAD_ROWS, zero)?),
                    None => None,
                };
                Some((range.start, embed_rows, head_rows))
            }
            None => None,
        };
        let tied = Linear::from_weight(embed.clone(), "model.embed_tokens.weight");
        Ok(TokenIo {
            embed,
            head,
            tied,
            rows,
        })
    }

    /// `w` with rows `first..first + n` replaced by `rows`.
    fn patched(w: &Tensor, first: usize, rows: &Tensor) -> Result<Tensor> {
        let n = rows.dim(0)?;
        let tail = w.dim(0)? - first - n;
        let mut parts = vec![w.narrow(0, 0, first)?, rows.clone()];
        if tail > 0 {
            parts.push(w.narrow(0, first + n, tail)?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    fn embed_weight(&self) -> Result<Tensor> {
        match &self.rows {
            Some((first, rows, _)) => Self::patched(&self.embed, *first, rows),
            None => Ok(self.embed.clone()),
        }
    }

    /// Embeddings of `ids` [batch, seq] -> [batch, seq, hidden].
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let h = self.embed.dim(1)?;
        Ok(candle_core::Module::forward(
            &candle_nn::Embedding::new(self.embed_weight()?, h),
            ids,
        )?)
    }

    /// The layers with a weight matrix (the LM head, tied or not).
    pub fn linears_mut(&mut self) -> impl Iterator<Item = &mut Linear> {
        self.head.iter_mut().chain([&mut self.tied])
    }

    /// Logits of final hidden states.
    pub fn head(&self, hidden: &Tensor, train: bool) -> Result<Tensor> {
        match (&self.head, &self.rows) {
            (Some(head), Some((first, _, Some(rows)))) => head
                .with_weight(Self::patched(head.weight(), *first, rows)?)
                .forward_t(hidden, train),
            (Some(head), _) => head.forward_t(hidden, train),
            (None, None) => self.tied.forward_t(hidden, train),
            (None, Some(_)) => {
                Linear::from_weight(self.embed_weight()?, "").forward_t(hidden, train)
            }
        }
    }
}

impl Attention {
    pub fn load(
        vb: VarBuilder,
        spec: AttentionSpec,
        site: Option<&AdapterSite>,
    ) -> Result<Attention> {
        let AttentionSpec {
            hidden: h,
            heads,
            kv_heads: kv,
            head_dim: hd,
            qkv_bias: bias,
            ..
        } = spec;
        let q = Linear::load(
            vb.pp("q_proj"),
            h,
            heads * hd,
            bias,
            "q_proj",
            sub_site(site, "q_proj").as_ref(),
        )?;
        let k = Linear::load(
            vb.pp("k_proj"),
            h,
            kv * hd,
            bias,
            "k_proj",
            sub_site(site, "k_proj").as_ref(),
        )?;
        let v = Linear::load(
            vb.pp("v_proj"),
            h,
            kv * hd,
            bias,
            "v_proj",
            sub_site(site, "v_proj").as_ref(),
        )?;
        let o = Linear::load(
            vb.pp("o_proj"),
            heads * hd,
            h,
            false,
            "o_proj",
            sub_site(site, "o_proj").as_ref(),
        )?;
        let (q_norm, k_norm) = match spec.qk_norm {
            Some((eps, offset)) => (
                Some(RmsNorm::load(vb.pp("q_norm"), hd, eps, offset)?),
                Some(RmsNorm::load(vb.pp("k_norm"), hd, eps, offset)?),
            ),
            None => (None, None),
        };
        Ok(Attention {
            q,
            k,
            v,
            o,
            q_norm,
            k_norm,
            spec,
            cache: None,
        })
    }

    /// `mask` is [b or 1, 1, t, cached + t], additive.
    pub fn forward(
        &mut self,
        x: &Tensor,
        mask: &Tensor,
        rotary: &Rotary,
        offset: usize,
        mode: Mode,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let train = mode == Mode::Training;
        let AttentionSpec {
            heads,
            kv_heads,
            head_dim,
            scale,
            ..
        } = self.spec;
        // [b, t, n · head_dim]; q/k norms act on each head ([b, t, n, head_dim]).
        let (mut q, mut k) = (self.q.forward_t(x, train)?, self.k.forward_t(x, train)?);
        let v = self.v.forward_t(x, train)?;
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = qn.forward(&q.reshape((b, t, heads, head_dim))?, mode)?;
            k = kn.forward(&k.reshape((b, t, kv_heads, head_dim))?, mode)?;
        }
        // A whole sequence (training, or a prompt with an empty cache): the
        // fused attention op, where it applies.
        if offset == 0 && (train || self.cache.is_none()) {
            let (cos, sin) = rotary.tables(0, t)?;
            let shape = crate::ops::AttentionShape {
                batch: b,
                seq: t,
                heads,
                kv_heads,
                head_dim,
                scale,
            };
            if train {
                if let Some(out) = crate::ops::attention(&q, &k, &v, &cos, &sin, mask, shape)? {
                    return self.o.forward_t(&out, train);
                }
            } else if let Some((out, k, v)) =
                crate::ops::attention_prompt(&q, &k, &v, &cos, &sin, mask, shape)?
            {
                self.cache = Some(KvCache::new(k, v)?);
                return self.o.forward_t(&out, train);
            }
        }
        let heads_first = |y: Tensor, n: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, n, head_dim))?.transpose(1, 2)?)
        };
        let v = heads_first(v, kv_heads)?.contiguous()?;
        let q = rotary.apply(&heads_first(q, heads)?, offset, mode)?;
        let k = rotary.apply(&heads_first(k, kv_heads)?, offset, mode)?;
        let (k, v) = match (&mut self.cache, mode) {
            (Some(cache), Mode::Inference) => cache.append(&k, &v)?,
            (None, Mode::Inference) => {
                let cache = KvCache::new(k, v)?;
                let kv = (cache.k.clone(), cache.v.clone());
                self.cache = Some(cache);
                kv
            }
            _ => (k, v),
        };
        if mode == Mode::Inference
            && let Some(out) = crate::ops::attention_cached(&q, &k, &v, mask, scale)?
        {
            return self.o.forward_t(&out, train);
        }
        // Grouped-query attention without copying keys and values per head:
        // the query heads of one key/value head are stacked along the rows.
        let groups = heads / kv_heads;
        let total = k.dim(2)?;
        let q = q
            .contiguous()?
            .reshape((b, kv_heads, groups * t, head_dim))?;
        // Scaling the queries (t x head_dim) is cheaper than scaling the scores (t x total).
        let scores = (q * scale)?
            .matmul(&k.t()?)?
            .reshape((b, kv_heads, groups, t, total))?;
        let probs = crate::ops::masked_softmax(&scores, &mask.unsqueeze(1)?)?;
        let probs = probs.reshape((b, kv_heads, groups * t, total))?;
        let out = probs.matmul(&v)?.reshape((b, heads, t, head_dim))?;
        let out = out.transpose(1, 2)?.reshape((b, t, heads * head_dim))?;
        self.o.forward_t(&out, train)
    }

    /// Row `i` of the new cache is row `rows[i]` of the old one.
    pub fn select_cache_rows(&mut self, rows: &Tensor) -> Result<()> {
        if let Some(cache) = &self.cache {
            self.cache = Some(cache.select_rows(rows)?);
        }
        Ok(())
    }
}

/// The activation of a gated MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    Silu,
    /// GELU, tanh approximation (`gelu_pytorch_tanh`).
    GeluTanh,
}

/// `down(act(gate(x)) * up(x))`.
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
    act: Activation,
}

impl Mlp {
    pub fn load(
        vb: VarBuilder,
        hidden: usize,
        inner: usize,
        act: Activation,
        site: Option<&AdapterSite>,
    ) -> Result<Mlp> {
        Ok(Mlp {
            gate: Linear::load(
                vb.pp("gate_proj"),
                hidden,
                inner,
                false,
                "gate_proj",
                sub_site(site, "gate_proj").as_ref(),
            )?,
            up: Linear::load(
                vb.pp("up_proj"),
                hidden,
                inner,
                false,
                "up_proj",
                sub_site(site, "up_proj").as_ref(),
            )?,
            down: Linear::load(
                vb.pp("down_proj"),
                inner,
                hidden,
                false,
                "down_proj",
                sub_site(site, "down_proj").as_ref(),
            )?,
            act,
        })
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        // LoRA training: gate, up and SwiGLU as one node where they can be.
        if let (true, Activation::Silu, Some(gate), Some(up)) = (
            train,
            self.act,
            self.gate.lora_parts(),
            self.up.lora_parts(),
        ) && let Some(hidden) = crate::ops::lora_swiglu(x, gate, up)?
        {
            return self.down.forward_t(&hidden, train);
        }
        let gate = self.gate.forward_t(x, train)?;
        let up = self.up.forward_t(x, train)?;
        let hidden = match self.act {
            Activation::Silu => crate::ops::swiglu(&gate, &up)?,
            Activation::GeluTanh => (gate.gelu()? * up)?,
        };
        self.down.forward_t(&hidden, train)
    }
}

/// Additive mask [batch, 1, seq, offset + seq]: 0 where query i may attend to
/// key j (causal, within `window` positions if set, key not padding), -1e9 elsewhere.
pub(crate) fn attention_mask(
    b: usize,
    t: usize,
    offset: usize,
    key_mask: Option<&Tensor>,
    window: Option<usize>,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let total = offset + t;
    let causal: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..total).map(move |j| {
                let q = offset + i;
                let visible = j <= q && window.is_none_or(|w| q - j < w);
                if visible { 0.0 } else { f32::NEG_INFINITY }
            })
        })
        .collect();
    let mut mask = Tensor::from_vec(causal, (1, 1, t, total), device)?;
    if let Some(keys) = key_mask {
        // 1 -> 0, 0 -> -1e9 (finite, so that 0 * it stays 0 where the key is real).
        let keys = keys.to_dtype(DType::F32)?.reshape((b, 1, 1, total))?;
        mask = mask.broadcast_add(&((keys - 1.0)? * 1e9)?)?;
    }
    Ok(mask.to_dtype(dtype)?)
}
