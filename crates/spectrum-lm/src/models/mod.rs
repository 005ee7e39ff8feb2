//! Model families, written for training as well as inference: every operation
//! has a backward pass in training mode, and the fused inference kernels
//! (RMSNorm, RoPE, softmax) are used only when no gradient is needed.
//!
//! One family per file; [`CausalLm`] is the model whatever its family, with
//! the KV cache inside it.

mod common;
pub mod gemma3;
pub mod llama;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;

pub use common::Mode;

use crate::Result;
use crate::config::{Family, ModelConfig};
use crate::lora::AdapterSite;
use common::Layers;

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

    /// Gives each weight its GGUF blocks (checkpoint name -> blocks), which
    /// token-by-token generation reads instead once they are checked to
    /// dequantise to the weight ([`crate::blocks`]). Returns how many weights
    /// have blocks.
    pub fn attach_blocks(
        &mut self,
        blocks: &std::collections::HashMap<String, std::sync::Arc<crate::blocks::Blocks>>,
    ) -> usize {
        let linears: Box<dyn Iterator<Item = &mut crate::lora::Linear>> = match &mut self.net {
            Net::Llama(m) => Box::new(m.linears_mut()),
            Net::Gemma3(m) => Box::new(m.linears_mut()),
        };
        let mut attached = 0;
        for l in linears {
            let b = blocks.get(l.name()).cloned();
            attached += usize::from(b.is_some());
            l.set_blocks(b);
        }
        attached
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
        let device = self.device.clone();
        let pass = common::Pass {
            offset,
            mode: self.mode,
            dtype: self.dtype,
            device: &device,
        };
        let hidden = self.layers().forward(input_ids, key_mask, &pass)?;
        if self.mode == Mode::Inference {
            self.cached += t;
        }
        Ok(hidden)
    }

    /// The gradients of `loss(self, hidden)` with gradient checkpointing: the
    /// forward pass keeps only each decoder layer's input (one [batch, seq,
    /// hidden] tensor per layer) and drops the layer's activations; the
    /// backward pass recomputes them one layer at a time, last layer first,
    /// and backpropagates through that layer alone. Peak activation memory is
    /// the layer inputs plus one layer's activations, for a second forward
    /// pass of compute. Every operation is deterministic, so the gradients
    /// equal `loss(self, forward_hidden(..)).backward()`'s bit for bit.
    /// Returns the loss (detached) and the gradients. Training mode only.
    pub fn backward_checkpointed(
        &mut self,
        input_ids: &Tensor,
        key_mask: Option<&Tensor>,
        loss: &mut dyn FnMut(&CausalLm, &Tensor) -> Result<Tensor>,
    ) -> Result<(Tensor, GradStore)> {
        if self.mode != Mode::Training {
            return Err(candle_core::Error::Msg(
                "gradient checkpointing needs the model in training mode".into(),
            )
            .into());
        }
        crate::fpu::flush_subnormals();
        let (dtype, device) = (self.dtype, self.device.clone());
        let pass = common::Pass {
            offset: 0,
            mode: Mode::Training,
            dtype,
            device: &device,
        };
        let (x0, masks) = self.layers().begin(input_ids, key_mask, &pass)?;
        // Forward: keep each layer's input, detached (its graph is dropped).
        let mut inputs = vec![x0.detach()];
        for i in 0..self.layers().blocks() {
            let x = inputs
                .last()
                .cloned()
                .expect("inputs start with the embeddings");
            let y = self.layers().block(i, &x, &masks, &pass)?;
            inputs.push(y.detach());
        }
        // The top: final norm, head and loss, from the last layer's output.
        let top = Var::from_tensor(&inputs.pop().expect("the last output"))?;
        let hidden = self.layers().end(top.as_tensor(), Mode::Training)?;
        let value = loss(self, &hidden)?;
        let mut grads = value.backward()?;
        detach_all(&mut grads);
        let mut upstream = take_grad(&mut grads, top.as_tensor())?;
        // Layer by layer, last first: recompute, then backpropagate `upstream`.
        for i in (0..self.layers().blocks()).rev() {
            let x = Var::from_tensor(&inputs.pop().expect("a layer input"))?;
            let y = self.layers().block(i, x.as_tensor(), &masks, &pass)?;
            let mut layer = (y * &upstream)?.sum_all()?.backward()?;
            // Candle's gradients can keep the graph they were computed from
            // (the layer's recomputed activations): detached, each layer's
            // activations are freed before the next layer is recomputed.
            detach_all(&mut layer);
            upstream = take_grad(&mut layer, x.as_tensor())?;
            grads.extend(layer)?;
        }
        // The embeddings (trainable in full fine-tuning). A variable that
        // already has a gradient (a tied embedding matrix: the head's) gets
        // it back as a term of this root, so that the input's rows are added
        // into it in the ordinary pass's order: candle processes a sum's right
        // operand first, so the earlier gradient comes first, as there.
        let (x0, _) = self.layers().begin(input_ids, key_mask, &pass)?;
        let mut root = (x0.clone() * &upstream)?.sum_all()?;
        let shared: Vec<Tensor> = x0
            .sorted_nodes()
            .into_iter()
            .filter(|n| n.is_variable())
            .cloned()
            .collect();
        let mut earlier: Option<Tensor> = None;
        for var in &shared {
            if let Some(g) = grads.remove(var) {
                let term = (var * g)?.sum_all()?;
                earlier = Some(match earlier {
                    Some(e) => (e + term)?,
                    None => term,
                });
            }
        }
        if let Some(e) = earlier {
            root = (root + e)?;
        }
        grads.extend(root.backward()?)?;
        Ok((value.detach(), grads))
    }

    fn layers(&mut self) -> &mut dyn Layers {
        match &mut self.net {
            Net::Llama(m) => m,
            Net::Gemma3(m) => m,
        }
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

/// The gradient of `of` in `grads`, removed (zeros where nothing reached it).
fn take_grad(grads: &mut GradStore, of: &Tensor) -> Result<Tensor> {
    Ok(match grads.remove(of) {
        Some(g) => g,
        None => of.zeros_like()?,
    })
}

/// Every gradient in `grads` without the graph it may still reference.
fn detach_all(grads: &mut GradStore) {
    let ids: Vec<_> = grads.get_ids().copied().collect();
    for id in ids {
        if let Some(g) = grads.get_id(id).map(Tensor::detach) {
            grads.insert_id(id, g);
        }
    }
}
