//! Tiny models built in code, for tests and benchmarks that need a real model
//! folder on disk without downloading one: a Llama-family decoder with random
//! weights (seeded) and a byte-level BPE tokenizer with ChatML turn tokens.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::json;
use spectrum_core::Rng;

use crate::config::ModelConfig;
use crate::{LmError, Result};

/// The special tokens of the tiny tokenizer (ids 0, 1, 2).
pub const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
/// Its merges (so BPE merging is exercised).
pub const MERGES: [&str; 3] = ["h e", "he a", "hea d"];

/// GPT-2's byte-to-unicode table: the 256 symbols of a byte-level BPE vocabulary.
pub fn byte_symbols() -> Vec<String> {
    let mut bytes: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars = bytes.clone();
    let mut extra = 0;
    for b in 0..256u32 {
        if !bytes.contains(&b) {
            bytes.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    let mut pairs: Vec<(u32, u32)> = bytes.into_iter().zip(chars).collect();
    pairs.sort();
    pairs
        .into_iter()
        .filter_map(|(_, c)| char::from_u32(c).map(String::from))
        .collect()
}

/// The tiny vocabulary: 3 specials, 256 bytes, and the merged tokens.
pub fn vocab() -> Vec<String> {
    let mut tokens: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    tokens.extend(byte_symbols());
    tokens.extend(MERGES.iter().map(|m| m.replace(' ', "")));
    tokens
}

/// `tokenizer.json` of the tiny byte-level BPE tokenizer.
pub fn tokenizer_json() -> serde_json::Value {
    let tokens = vocab();
    let types: Vec<i64> = (0..tokens.len())
        .map(|i| if i < SPECIALS.len() { 3 } else { 1 })
        .collect();
    let merges: Vec<String> = MERGES.iter().map(|m| m.to_string()).collect();
    crate::gguf::bpe_tokenizer_json(&tokens, &merges, &types, "smollm")
        .unwrap_or_else(|e| unreachable!("the tiny tokenizer uses a supported pre-tokenizer: {e}"))
}

const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// The config of a tiny Llama-family model over the tiny vocabulary.
pub fn config(hidden: usize, layers: usize) -> ModelConfig {
    serde_json::from_value(json!({
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": vocab().len(),
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": true,
        "hidden_act": "silu",
        "bos_token_id": 0,
        "eos_token_id": 2,
        "torch_dtype": "float32"
    }))
    .unwrap_or_else(|e| unreachable!("the tiny config is valid: {e}"))
}

/// Random weights for `cfg` (normal, std 0.02; norms 1), the same for the same seed.
pub fn weights(cfg: &ModelConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    let mut rng = Rng::new(seed);
    let (h, kv) = (cfg.hidden_size, cfg.kv_heads() * cfg.head_dim());
    let mut shapes: Vec<(String, Vec<usize>)> =
        vec![("model.embed_tokens.weight".into(), vec![cfg.vocab_size, h])];
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        for (name, shape) in [
            ("self_attn.q_proj", vec![h, h]),
            ("self_attn.k_proj", vec![kv, h]),
            ("self_attn.v_proj", vec![kv, h]),
            ("self_attn.o_proj", vec![h, h]),
            ("mlp.gate_proj", vec![cfg.intermediate_size, h]),
            ("mlp.up_proj", vec![cfg.intermediate_size, h]),
            ("mlp.down_proj", vec![h, cfg.intermediate_size]),
            ("input_layernorm", vec![h]),
            ("post_attention_layernorm", vec![h]),
        ] {
            shapes.push((format!("{p}.{name}.weight"), shape));
        }
    }
    shapes.push(("model.norm.weight".into(), vec![h]));
    let mut out = HashMap::new();
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else {
            (0..n).map(|_| (0.02 * rng.normal()) as f32).collect()
        };
        out.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?);
    }
    Ok(out)
}

/// Writes a tiny model folder (config, safetensors, tokenizer files) into `dir`.
pub fn write_model(dir: &Path, hidden: usize, layers: usize, seed: u64) -> Result<()> {
    let cfg = config(hidden, layers);
    write_folder(dir, &cfg, &weights(&cfg, seed)?)
}

/// Writes a model folder: `cfg` as config.json, `tensors` as
/// model.safetensors, and the tiny tokenizer (a byte-level vocabulary: enough
/// for models whose token ids come from elsewhere, as in benchmarks).
pub fn write_folder(
    dir: &Path,
    cfg: &ModelConfig,
    tensors: &HashMap<String, Tensor>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| LmError::io(dir, e))?;
    let write = |name: &str, value: &serde_json::Value| -> Result<()> {
        let path = dir.join(name);
        let text =
            serde_json::to_string_pretty(value).map_err(|e| LmError::bad(&path, e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| LmError::io(&path, e))
    };
    let mut cfg_json = serde_json::to_value(cfg).map_err(|e| LmError::bad(dir, e.to_string()))?;
    // transformers rejects `null` for fields it types strictly: leave them out.
    if let Some(o) = cfg_json.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    write("config.json", &cfg_json)?;
    write("tokenizer.json", &tokenizer_json())?;
    write(
        "tokenizer_config.json",
        &json!({
            "bos_token": null,
            "eos_token": "<|im_end|>",
            "add_bos_token": false,
            "chat_template": CHATML,
        }),
    )?;
    candle_core::safetensors::save(tensors, dir.join("model.safetensors"))?;
    Ok(())
}

/// Renames the tiny model's ChatML turn tokens in `dir` (to `<|turn|>` and
/// `<|end|>`): a model without turn tokens for the spectrum format, as a
/// pretrained Llama 2 or Mistral is.
pub fn strip_turn_tokens(dir: &Path) -> Result<()> {
    for name in ["tokenizer.json", "tokenizer_config.json"] {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).map_err(|e| LmError::io(&path, e))?;
        let text = text
            .replace("<|im_start|>", "<|turn|>")
            .replace("<|im_end|>", "<|end|>");
        std::fs::write(&path, text).map_err(|e| LmError::io(&path, e))?;
    }
    Ok(())
}
