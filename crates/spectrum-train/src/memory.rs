//! Will it fit: the peak memory of a training run, estimated from the model's
//! shape and the run's settings before anything is loaded, and the settings
//! that would fit when it does not.
//!
//! The parts: every weight in the run's dtype; for what trains, its gradient
//! (the weight's dtype) and AdamW's two f32 moments (plus an f32 master copy
//! of 16-bit weights); the activations the backward pass keeps for the
//! largest forward pass (`min(micro_batch x max_tokens, max_batch_tokens)`
//! tokens), all layers' or, with gradient checkpointing, each layer's input
//! plus one layer's; the logits of the loss rows; or, when that is larger,
//! what the optimiser step holds after the backward pass; and what the
//! process holds besides (tokenizer, code, allocator). The per-token activation sizes are
//! this engine's, measured on the CPU's kernels (`ACTIVATION_*` below; the
//! train bench's memory mode prints estimate against measured peak).

use serde::Serialize;
use spectrum_lm::config::ModelConfig;

use crate::spec::{Method, RunSpec};

/// Bytes each decoder layer keeps per token for the backward pass, as
/// multiples of the layer's widths (element size times these). Measured on
/// SmolLM2-135M, 4 x 256 tokens, CPU f32 (the train bench's memory mode).
const ACTIVATION_HIDDEN: u64 = 14;
const ACTIVATION_INTERMEDIATE: u64 = 4;
/// Copies of a loss row's logits alive at once (logits, their softmax, the
/// gradient).
const LOGIT_COPIES: u64 = 3;
/// The process besides the run: code, tokenizer, allocator, thread stacks.
const RUNTIME: u64 = 300 << 20;
/// f32 copies of what trains that clipping and the AdamW update hold beside
/// the gradients and moments (measured: full fine-tuning of SmolLM2-135M with
/// checkpointing peaks in the optimiser step).
const STEP_COPIES: u64 = 2;

/// A run's estimated peak memory, by part, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct MemoryEstimate {
    pub weights: u64,
    /// Gradients, AdamW moments and master weights of what trains.
    pub optimizer: u64,
    pub activations: u64,
    pub logits: u64,
    /// What the optimiser step holds beside the state (after the backward
    /// pass has freed the activations; the peak is the larger of the two).
    pub step: u64,
    pub runtime: u64,
    pub total: u64,
    /// Trainable parameters.
    pub trainable: u64,
    /// Tokens of the largest forward pass.
    pub tokens_per_pass: u64,
}

/// What the run would take on `config`'s model. `loss_fraction` is the share
/// of tokens that carry loss (the outputs of a Spectrum sequence; 1 for an
/// upper bound).
pub fn estimate(config: &ModelConfig, spec: &RunSpec, loss_fraction: f64) -> MemoryEstimate {
    let size = spec.dtype().size_in_bytes() as u64;
    let parameters = config.parameters();
    let trainable = trainable_parameters(config, &spec.method);
    let master = if size < 4 { 4 } else { 0 };
    let optimizer = trainable * (size + 8 + master);
    let per_sequence = spec.max_tokens as u64;
    let tokens = (spec.micro_batch as u64 * per_sequence)
        .min(spec.max_batch_tokens as u64)
        .max(1);
    let (h, i) = (config.hidden_size as u64, config.intermediate_size as u64);
    let heads = config.num_attention_heads as u64;
    // The attention probabilities of a position: one row per head.
    let layer_per_token = size
        * (ACTIVATION_HIDDEN * h + ACTIVATION_INTERMEDIATE * i + heads * per_sequence.min(tokens));
    let layers = config.num_hidden_layers as u64;
    let activations = if spec.gradient_checkpointing {
        // Every layer's input, one layer's activations, and that layer's
        // gradients while it is backpropagated.
        tokens * (layers * h * size + 2 * layer_per_token)
    } else {
        tokens * layers * layer_per_token
    };
    let loss_rows = (tokens as f64 * loss_fraction.clamp(0.0, 1.0)).ceil() as u64;
    let logits = loss_rows * config.vocab_size as u64 * 4 * LOGIT_COPIES;
    // With bf16 frozen products, each frozen weight also keeps two bf16
    // copies packed for the matrix units (`Wᵀ` forward, `W` backward).
    let tiles = match spec.frozen_matmul {
        spectrum_lm::ops::FrozenMatmul::Bf16 => parameters * 2 * 2,
        spectrum_lm::ops::FrozenMatmul::F32 => 0,
    };
    let weights = parameters * size + tiles;
    let step = trainable * 4 * STEP_COPIES;
    MemoryEstimate {
        weights,
        optimizer,
        activations,
        logits,
        step,
        runtime: RUNTIME,
        total: weights + optimizer + RUNTIME + (activations + logits).max(step),
        trainable,
        tokens_per_pass: tokens,
    }
}

/// Parameters that train: every weight, or the LoRA adapters' `r x (in + out)`
/// on each targeted projection of each layer.
pub fn trainable_parameters(config: &ModelConfig, method: &Method) -> u64 {
    let Method::Lora(lora) = method else {
        return config.parameters();
    };
    let (h, i) = (config.hidden_size as u64, config.intermediate_size as u64);
    let q = (config.num_attention_heads * config.head_dim()) as u64;
    let kv = (config.kv_heads() * config.head_dim()) as u64;
    let per_layer: u64 = lora
        .targets
        .iter()
        .map(|t| match t.as_str() {
            "q_proj" => h + q,
            "k_proj" | "v_proj" => h + kv,
            "o_proj" => q + h,
            "gate_proj" | "up_proj" | "down_proj" => h + i,
            _ => 0,
        })
        .sum();
    lora.rank as u64 * per_layer * config.num_hidden_layers as u64
}

/// A change of one setting and what the run would then take.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct Suggestion {
    /// The setting's name (`gradient_checkpointing`, `max_batch_tokens`,
    /// `micro_batch`, `method`).
    pub setting: String,
    /// Its new value, as a front end would write it.
    pub value: String,
    pub total: u64,
}

/// Settings, one change each, under which the run fits in `free` bytes,
/// cheapest in speed first: checkpointing, smaller forward passes, a smaller
/// micro-batch, LoRA. Empty when nothing single fits.
pub fn suggestions(
    config: &ModelConfig,
    spec: &RunSpec,
    loss_fraction: f64,
    free: u64,
) -> Vec<Suggestion> {
    let fits = |s: &RunSpec| {
        let total = estimate(config, s, loss_fraction).total;
        (total <= free).then_some(total)
    };
    let mut out = Vec::new();
    let mut add = |setting: &str, value: String, s: &RunSpec| {
        if let Some(total) = fits(s) {
            out.push(Suggestion {
                setting: setting.into(),
                value,
                total,
            });
        }
    };
    if !spec.gradient_checkpointing {
        let s = RunSpec {
            gradient_checkpointing: true,
            ..spec.clone()
        };
        add("gradient_checkpointing", "on".into(), &s);
    }
    // The largest power-of-two token budget per pass that fits.
    let tokens = estimate(config, spec, loss_fraction).tokens_per_pass as usize;
    if let Some(budget) = (6..usize::BITS)
        .map(|p| 1usize << p)
        .filter(|&b| b < tokens)
        .rev()
        .find(|&b| {
            fits(&RunSpec {
                max_batch_tokens: b,
                ..spec.clone()
            })
            .is_some()
        })
    {
        let s = RunSpec {
            max_batch_tokens: budget,
            ..spec.clone()
        };
        add("max_batch_tokens", budget.to_string(), &s);
    }
    if let Some(mb) = (1..spec.micro_batch).rev().find(|&m| {
        fits(&RunSpec {
            micro_batch: m,
            ..spec.clone()
        })
        .is_some()
    }) {
        let s = RunSpec {
            micro_batch: mb,
            grad_accum: spec.grad_accum * spec.micro_batch / mb.max(1),
            ..spec.clone()
        };
        add("micro_batch", mb.to_string(), &s);
    }
    if matches!(spec.method, Method::Full) {
        let s = RunSpec {
            method: RunSpec::default().method,
            ..spec.clone()
        };
        add("method", "lora".into(), &s);
    }
    out
}

/// Memory the operating system can give this process now (`MemAvailable`),
/// where it can be read.
pub fn free_cpu_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// `1.9 GiB`, `640 MiB`.
pub fn bytes_text(bytes: u64) -> String {
    let mib = bytes as f64 / (1u64 << 20) as f64;
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
    }
}

#[cfg(test)]
mod tests {
    use spectrum_lm::lora::LoraConfig;

    use super::*;

    fn smollm() -> ModelConfig {
        // SmolLM2-135M's config.json values.
        serde_json::from_value(serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
            "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
            "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
            "tie_word_embeddings": true
        }))
        .unwrap_or_else(|e| panic!("config: {e}"))
    }

    #[test]
    fn parts_follow_the_settings() {
        let cfg = smollm();
        assert_eq!(cfg.parameters(), 134_515_008);
        let lora = RunSpec::default();
        // r16 on all seven projections: 16 x (3 x 2 x 576... ) per layer.
        let Method::Lora(l) = &lora.method else {
            panic!("the cpu preset is LoRA")
        };
        assert_eq!(l.targets.len(), 7);
        let per_layer = 16 * ((576 + 576) + 2 * (576 + 192) + (576 + 576) + 3 * (576 + 1536));
        assert_eq!(trainable_parameters(&cfg, &lora.method), 30 * per_layer);
        let e = estimate(&cfg, &lora, 1.0 / 3.0);
        assert_eq!(e.weights, 134_515_008 * 4);
        assert_eq!(
            e.tokens_per_pass,
            (lora.micro_batch * lora.max_tokens).min(2048) as u64
        );
        assert_eq!(
            e.total,
            e.weights + e.optimizer + e.runtime + (e.activations + e.logits).max(e.step)
        );
        // Full fine-tuning adds every weight's gradient and moments.
        let full = RunSpec {
            method: Method::Full,
            ..lora.clone()
        };
        assert_eq!(estimate(&cfg, &full, 1.0 / 3.0).optimizer, 134_515_008 * 12);
        // Checkpointing shrinks the activations; a smaller pass shrinks them too.
        let ckpt = RunSpec {
            gradient_checkpointing: true,
            ..lora.clone()
        };
        assert!(estimate(&cfg, &ckpt, 0.3).activations * 4 < e.activations);
        let small = RunSpec {
            max_batch_tokens: 256,
            ..lora.clone()
        };
        assert!(estimate(&cfg, &small, 0.3).activations < e.activations);
        // bf16 weights: half the bytes, and an f32 master copy of what trains.
        let bf16 = RunSpec {
            dtype: Some(crate::Dtype::Bf16),
            ..full
        };
        let b = estimate(&cfg, &bf16, 0.3);
        assert_eq!(b.weights, 134_515_008 * 2);
        assert_eq!(b.optimizer, 134_515_008 * (2 + 8 + 4));
    }

    #[test]
    fn suggestions_fit_and_are_cheapest_first() {
        let cfg = smollm();
        let full = RunSpec {
            method: Method::Full,
            micro_batch: 8,
            max_tokens: 1024,
            max_batch_tokens: 8192,
            ..RunSpec::default()
        };
        let need = estimate(&cfg, &full, 0.5).total;
        let free = need * 2 / 3;
        let s = suggestions(&cfg, &full, 0.5, free);
        assert!(!s.is_empty());
        assert!(s.iter().all(|x| x.total <= free), "{s:?}");
        assert_eq!(s[0].setting, "gradient_checkpointing");
        // Nothing fits in almost nothing.
        assert!(suggestions(&cfg, &full, 0.5, 1 << 20).is_empty());
        let lora = RunSpec {
            method: Method::Lora(LoraConfig::default()),
            ..full
        };
        assert!(
            suggestions(&cfg, &lora, 0.5, free)
                .iter()
                .all(|x| x.setting != "method")
        );
    }
}
