//! Model configuration, read from a Hugging Face `config.json`. One struct
//! covers the decoder families we implement; `Family` says which one a
//! checkpoint is and which of the family-specific switches apply.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::LmError;

/// The model families Spectrum Studio can load and train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Llama 2/3.x, SmolLM/SmolLM2, Mistral: RMSNorm, RoPE, SwiGLU, GQA.
    Llama,
    /// Qwen2/Qwen2.5: Llama with biases on the q/k/v projections.
    Qwen2,
    /// Qwen3: Llama with RMSNorm on queries and keys, per head.
    Qwen3,
    /// Gemma 3 (text): sandwich norms, GELU, interleaved sliding-window attention.
    Gemma3,
}

impl Family {
    pub const SUPPORTED: &'static str = "llama (Llama 2/3, SmolLM, Mistral), qwen2, qwen3, gemma3_text and gemma3 (Gemma 3; the language model of multimodal checkpoints)";

    pub fn from_model_type(model_type: &str) -> Option<Family> {
        match model_type {
            "llama" | "mistral" | "smollm" | "smollm2" => Some(Family::Llama),
            "qwen2" => Some(Family::Qwen2),
            "qwen3" => Some(Family::Qwen3),
            "gemma3_text" => Some(Family::Gemma3),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Qwen2 => "qwen2",
            Family::Qwen3 => "qwen3",
            Family::Gemma3 => "gemma3",
        }
    }
}

/// The fields of `config.json` the decoder uses (others are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Biases on q/k/v (Qwen2 always has them; Llama may set `attention_bias`).
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    pub hidden_act: Option<String>,
    #[serde(default)]
    pub architectures: Vec<String>,
    /// RoPE scaling: `default`, `linear` or `llama3` (see [`RopeScaling`]).
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// transformers >= 5 writes `rope_theta` and `rope_scaling` here instead:
    /// one object, or one per layer type (Gemma 3). Folded into the fields
    /// above when the config is read.
    #[serde(default, skip_serializing)]
    pub rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub torch_dtype: Option<String>,
    /// Gemma 3: the activation is named `hidden_activation`.
    #[serde(default)]
    pub hidden_activation: Option<String>,
    /// Gemma 3: RoPE base of the sliding-window layers.
    #[serde(default)]
    pub rope_local_base_freq: Option<f64>,
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// Gemma 3: every n-th layer is a full-attention layer (older configs).
    #[serde(default)]
    pub sliding_window_pattern: Option<usize>,
    /// `sliding_attention` or `full_attention` per layer (newer configs).
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    /// Gemma 3: attention scores are scaled by 1/sqrt(this).
    #[serde(default)]
    pub query_pre_attn_scalar: Option<f64>,
    #[serde(default)]
    pub final_logit_softcapping: Option<f64>,
    #[serde(default)]
    pub attn_logit_softcapping: Option<f64>,
    /// The config came from a multimodal checkpoint (Gemma 3 `model_type: gemma3`
    /// with a `text_config`): only its language model is loaded.
    #[serde(skip)]
    pub multimodal: bool,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_positions() -> usize {
    4096
}

impl ModelConfig {
    pub fn from_file(path: &Path) -> Result<ModelConfig, LmError> {
        let text = std::fs::read_to_string(path).map_err(|e| LmError::io(path, e))?;
        let bad = |e: serde_json::Error| LmError::BadFile {
            path: path.to_path_buf(),
            message: format!("not a model config.json: {e}"),
        };
        let mut value: serde_json::Value = serde_json::from_str(&text).map_err(bad)?;
        // A multimodal Gemma 3 checkpoint: its language model is described by
        // `text_config` (which may leave out what Gemma3TextConfig defaults).
        let multimodal = value["model_type"] == "gemma3" && value["text_config"].is_object();
        if multimodal {
            let mut text_config = value["text_config"].take();
            let defaults = [
                ("model_type", serde_json::json!("gemma3_text")),
                ("tie_word_embeddings", serde_json::json!(true)),
                ("vocab_size", serde_json::json!(262_208)),
                ("rope_theta", serde_json::json!(1_000_000.0)),
                ("rope_local_base_freq", serde_json::json!(10_000.0)),
                ("query_pre_attn_scalar", serde_json::json!(256)),
                ("sliding_window", serde_json::json!(4096)),
                ("hidden_activation", serde_json::json!("gelu_pytorch_tanh")),
                ("max_position_embeddings", serde_json::json!(131_072)),
            ];
            for (key, default) in defaults {
                if text_config.get(key).is_none_or(|v| v.is_null()) {
                    text_config[key] = value
                        .get(key)
                        .filter(|v| !v.is_null())
                        .cloned()
                        .unwrap_or(default);
                }
            }
            text_config["model_type"] = serde_json::json!("gemma3_text");
            text_config["architectures"] = serde_json::json!(["Gemma3ForCausalLM"]);
            value = text_config;
        }
        let mut cfg: ModelConfig = serde_json::from_value(value).map_err(bad)?;
        cfg.multimodal = multimodal;
        cfg.fold_rope_parameters(path)?;
        cfg.check(path)?;
        Ok(cfg)
    }

    /// Moves transformers 5's `rope_parameters` into `rope_theta`,
    /// `rope_scaling` and (Gemma 3's sliding layers) `rope_local_base_freq`.
    fn fold_rope_parameters(&mut self, path: &Path) -> Result<(), LmError> {
        let Some(params) = self.rope_parameters.take() else {
            return Ok(());
        };
        let (full, sliding) = match (
            params.get("full_attention"),
            params.get("sliding_attention"),
        ) {
            (Some(full), sliding) => (full.clone(), sliding.cloned()),
            (None, _) => (params.clone(), None),
        };
        let theta = |p: &serde_json::Value| p.get("rope_theta").and_then(|t| t.as_f64());
        if let Some(t) = theta(&full) {
            self.rope_theta = t;
        }
        if full.get("rope_type").is_some_and(|t| t != "default") {
            self.rope_scaling = Some(full);
        }
        if let Some(sliding) = sliding {
            if sliding.get("rope_type").is_some_and(|t| t != "default") {
                return Err(LmError::Unsupported {
                    path: path.to_path_buf(),
                    message: "RoPE scaling on sliding-window layers is not supported".into(),
                });
            }
            if let Some(t) = theta(&sliding) {
                self.rope_local_base_freq = Some(t);
            }
        }
        Ok(())
    }

    pub fn family(&self) -> Option<Family> {
        Family::from_model_type(&self.model_type)
    }

    fn check(&self, path: &Path) -> Result<(), LmError> {
        if self.family().is_none() {
            return Err(LmError::Unsupported {
                path: path.to_path_buf(),
                message: format!(
                    "architecture {:?} is not supported; supported: {}",
                    self.model_type,
                    Family::SUPPORTED
                ),
            });
        }
        self.rope().map_err(|e| LmError::Unsupported {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if self.hidden_act.as_deref().is_some_and(|a| a != "silu") {
            return Err(LmError::Unsupported {
                path: path.to_path_buf(),
                message: format!(
                    "activation {:?} is not supported for this family (expected silu)",
                    self.hidden_act
                ),
            });
        }
        if self.num_attention_heads == 0
            || !self.num_attention_heads.is_multiple_of(self.kv_heads())
        {
            return Err(LmError::BadFile {
                path: path.to_path_buf(),
                message: "num_attention_heads must be a positive multiple of num_key_value_heads"
                    .into(),
            });
        }
        Ok(())
    }

    /// The RoPE scaling of the (full-attention) layers.
    pub fn rope(&self) -> Result<RopeScaling, RopeError> {
        RopeScaling::parse(
            self.rope_scaling.as_ref(),
            self.max_position_embeddings as f64,
        )
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads
            .unwrap_or(self.num_attention_heads)
            .max(1)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Whether q/k/v carry biases.
    pub fn qkv_bias(&self) -> bool {
        self.family() == Some(Family::Qwen2) || self.attention_bias
    }

    /// Whether queries and keys are RMS-normalised per head (Qwen3, Gemma 3).
    pub fn qk_norm(&self) -> bool {
        matches!(self.family(), Some(Family::Qwen3 | Family::Gemma3))
    }

    /// Gemma 3: whether layer `i` attends within a sliding window.
    pub fn is_sliding_layer(&self, i: usize) -> bool {
        match (&self.layer_types, self.sliding_window_pattern) {
            (Some(types), _) => types.get(i).is_some_and(|t| t == "sliding_attention"),
            (None, Some(n)) if n > 0 => !(i + 1).is_multiple_of(n),
            _ => self.family() == Some(Family::Gemma3) && !(i + 1).is_multiple_of(6),
        }
    }

    /// The end-of-sequence ids (`eos_token_id` may be a number or a list).
    pub fn eos_ids(&self) -> Vec<u32> {
        match &self.eos_token_id {
            Some(serde_json::Value::Number(n)) => {
                n.as_u64().map(|n| vec![n as u32]).unwrap_or_default()
            }
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_u64().map(|n| n as u32))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Parameter count implied by the shapes (embeddings counted once when tied).
    pub fn parameters(&self) -> u64 {
        let (h, i, l, v) = (
            self.hidden_size as u64,
            self.intermediate_size as u64,
            self.num_hidden_layers as u64,
            self.vocab_size as u64,
        );
        let (q, kv) = (
            (self.num_attention_heads * self.head_dim()) as u64,
            (self.kv_heads() * self.head_dim()) as u64,
        );
        let attn = h * q + 2 * h * kv + q * h + if self.qkv_bias() { q + 2 * kv } else { 0 };
        let norms = 2 * h
            + if self.qk_norm() {
                2 * self.head_dim() as u64
            } else {
                0
            };
        let layer = attn + 3 * h * i + norms;
        let head = if self.tie_word_embeddings { 0 } else { v * h };
        v * h + l * layer + h + head
    }
}

/// How RoPE frequencies are stretched for long contexts (transformers'
/// `rope_type`s that change the frequencies only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    Default,
    /// Positions divided by `factor` (Gemma 3 4B+ on its global layers).
    Linear {
        factor: f64,
    },
    /// Llama 3.1+: low frequencies divided by `factor`, high ones kept, a
    /// smooth blend between the two wavelength bounds.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

/// Why a config's `rope_scaling` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RopeError {
    #[error("rope scaling {kind:?} needs a number `{key}`")]
    MissingNumber { kind: String, key: String },
    #[error(
        "rope scaling {kind:?} is not supported yet (supported: {})",
        RopeScaling::SUPPORTED
    )]
    Unsupported { kind: String },
}

impl RopeScaling {
    pub const SUPPORTED: &'static str = "default, linear, llama3";

    /// Reads a `rope_scaling` object; `max_positions` stands in for a missing
    /// `original_max_position_embeddings`, as in transformers.
    pub fn parse(
        value: Option<&serde_json::Value>,
        max_positions: f64,
    ) -> Result<RopeScaling, RopeError> {
        let Some(v) = value.filter(|v| !v.is_null()) else {
            return Ok(RopeScaling::Default);
        };
        let kind = v
            .get("rope_type")
            .or_else(|| v.get("type"))
            .and_then(|k| k.as_str())
            .unwrap_or("default");
        let num = |key: &str| {
            v.get(key)
                .and_then(|n| n.as_f64())
                .ok_or_else(|| RopeError::MissingNumber {
                    kind: kind.to_string(),
                    key: key.to_string(),
                })
        };
        match kind {
            "default" => Ok(RopeScaling::Default),
            "linear" => Ok(RopeScaling::Linear {
                factor: num("factor")?,
            }),
            "llama3" => Ok(RopeScaling::Llama3 {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")
                    .unwrap_or(max_positions),
            }),
            other => Err(RopeError::Unsupported {
                kind: other.to_string(),
            }),
        }
    }

    /// The `rope_scaling` object of a config.json.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            RopeScaling::Default => serde_json::Value::Null,
            RopeScaling::Linear { factor } => {
                serde_json::json!({"rope_type": "linear", "factor": factor})
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => serde_json::json!({
                "rope_type": "llama3",
                "factor": factor,
                "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor,
                // A length: written as the integer config.json files use.
                "original_max_position_embeddings": original_max_position_embeddings.round() as u64,
            }),
        }
    }

    /// Scales one inverse frequency (radians per position), in f64.
    pub fn apply(self, inv_freq: f64) -> f64 {
        match self {
            RopeScaling::Default => inv_freq,
            RopeScaling::Linear { factor } => inv_freq / factor,
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: original,
            } => {
                let wavelen = 2.0 * std::f64::consts::PI / inv_freq;
                let (low_wavelen, high_wavelen) =
                    (original / low_freq_factor, original / high_freq_factor);
                if wavelen < high_wavelen {
                    inv_freq
                } else if wavelen > low_wavelen {
                    inv_freq / factor
                } else {
                    let smooth = (original / wavelen - low_freq_factor)
                        / (high_freq_factor - low_freq_factor);
                    (1.0 - smooth) * inv_freq / factor + smooth * inv_freq
                }
            }
        }
    }
}
