//! Model families, written for training as well as inference: every operation
//! has a backward pass in training mode, and the fused inference kernels
//! (RMSNorm, RoPE, softmax) are used only when no gradient is needed.
//!
//! One family per file; [`CausalLm`] is the model whatever its family, with
//! the KV cache inside it.

mod common;
pub mod gemma3;
pub mod llama;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

pub use common::Mode;

use crate::Result;
use crate::config::{Family, ModelConfig};
use crate::lora::AdapterSite;

#[derive(Debug, Clone)]
enum Net {
    Llama(llama::Llama),
    Gemma3(gemma3::Gemma3),
}

/// A decoder-only causal language model of any supported family.
#[derive(Debug, Clone)]
pub struct CausalLm {
    net: Net,
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
        let (device, dtype) = (vb.device().clone(), vb.dtype());
        let net = match cfg.family() {
            Some(Family::Gemma3) => Net::Gemma3(gemma3::Gemma3::load(cfg, vb, adapters)?),
            _ => Net::Llama(llama::Llama::load(cfg, vb, adapters)?),
        };
        Ok(CausalLm {
            net,
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

    fn attention_layers(&mut self) -> Box<dyn Iterator<Item = &mut common::Attention> + '_> {
        match &mut self.net {
            Net::Llama(m) => Box::new(m.attention_layers()),
            Net::Gemma3(m) => Box::new(m.attention_layers()),
        }
    }

    pub fn clear_kv_cache(&mut self) {
        self.cached = 0;
        for a in self.attention_layers() {
            a.cache = None;
        }
    }

    /// How many positions the KV cache holds.
    pub fn cached_len(&self) -> usize {
        self.cached
    }

    /// Repeats a batch-1 KV cache `n` times along the batch, so `n` continuations
    /// of one prompt can run together.
    pub fn expand_kv_cache(&mut self, n: usize) -> Result<()> {
        let zeros = Tensor::zeros(n, DType::U32, &self.device)?;
        self.select_kv_rows(&zeros)
    }

    /// Rebuilds the KV cache from rows of the cached batch (`rows` [n], u32):
    /// row `i` of the new cache is row `rows[i]` of the old one.
    pub fn select_kv_rows(&mut self, rows: &Tensor) -> Result<()> {
        for a in self.attention_layers() {
            a.select_cache_rows(rows)?;
        }
        Ok(())
    }

    /// Logits for every position: `input_ids` is [batch, seq] (u32); `key_mask`
    /// is [batch, cached + seq] with 1 for real tokens and 0 for padding (None:
    /// no padding). In inference mode the keys and values are appended to the cache.
    pub fn forward(&mut self, input_ids: &Tensor, key_mask: Option<&Tensor>) -> Result<Tensor> {
        let hidden = self.forward_hidden(input_ids, key_mask)?;
        self.logits(&hidden)
    }

    /// The final hidden states [batch, seq, hidden] (after the last norm), for
    /// callers that turn only some positions into logits, or do it in chunks.
    pub fn forward_hidden(
        &mut self,
        input_ids: &Tensor,
        key_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        // Whatever thread runs a model (a front end's, a job's, a test's)
        // computes with subnormals flushed; the backward pass and the
        // optimiser step follow on the same thread.
        crate::fpu::flush_subnormals();
        let t = input_ids.dim(1)?;
        let offset = if self.mode == Mode::Inference {
            self.cached
        } else {
            0
        };
        let pass = common::Pass {
            offset,
            mode: self.mode,
            dtype: self.dtype,
            device: &self.device,
        };
        let hidden = match &mut self.net {
            Net::Llama(m) => m.forward(input_ids, key_mask, &pass)?,
            Net::Gemma3(m) => m.forward(input_ids, key_mask, &pass)?,
        };
        if self.mode == Mode::Inference {
            self.cached += t;
        }
        Ok(hidden)
    }

    /// Logits [.., vocab] from hidden states [.., hidden].
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let train = self.mode == Mode::Training;
        match &self.net {
            Net::Llama(m) => m.head(hidden, train),
            Net::Gemma3(m) => m.head(hidden, train),
        }
    }
}
