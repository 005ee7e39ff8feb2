//! GGUF import: the files Ollama and LM Studio keep on users' disks become a
//! normal, trainable Hugging Face folder (config.json, model.safetensors in f32,
//! tokenizer.json, tokenizer_config.json).
//!
//! Weights are dequantised (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K);
//! what llama.cpp's convert script changed is undone (the row permutation of
//! Llama q/k projections, Gemma's RMSNorm weights stored as `1 + w`, Llama 3's
//! RoPE scaling stored as a `rope_freqs` tensor); the byte-level BPE or
//! SentencePiece tokenizer is rebuilt from the metadata. The Q4_0, Q4_1,
//! Q8_0, Q4_K and Q6_K matrices are also kept as blocks ([`crate::blocks`]),
//! for the decode products.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use serde_json::json;

use crate::blocks::{BlockKind, Blocks};
use crate::config::RopeScaling;
use crate::{LmError, Result};

pub const SUPPORTED_TYPES: &str = "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K";

fn supported(t: GgmlDType) -> bool {
    matches!(
        t,
        GgmlDType::F32
            | GgmlDType::F16
            | GgmlDType::BF16
            | GgmlDType::Q8_0
            | GgmlDType::Q4_0
            | GgmlDType::Q4_1
            | GgmlDType::Q4K
            | GgmlDType::Q5K
            | GgmlDType::Q6K
    )
}

/// What an import produced.
#[derive(Debug, Clone)]
pub struct GgufImport {
    pub dir: PathBuf,
    pub architecture: String,
    pub tensor_types: Vec<String>,
}

struct Meta<'a> {
    path: &'a Path,
    md: &'a HashMap<String, Value>,
}

impl<'a> Meta<'a> {
    fn of(path: &'a Path, content: &'a Content) -> Meta<'a> {
        Meta {
            path,
            md: &content.metadata,
        }
    }

    fn get(&self, key: &str) -> Result<&Value> {
        self.md.get(key).ok_or_else(|| LmError::Missing {
            path: self.path.to_path_buf(),
            what: format!("GGUF metadata `{key}`"),
            fix: "re-export the model with a current llama.cpp convert script".into(),
        })
    }
    fn u32(&self, key: &str) -> Result<u32> {
        Ok(self.get(key)?.to_u32()?)
    }
    fn f32_or(&self, key: &str, default: f32) -> Result<f32> {
        match self.md.get(key) {
            Some(v) => Ok(v.to_f32()?),
            None => Ok(default),
        }
    }
    fn str(&self, key: &str) -> Result<&str> {
        Ok(self.get(key)?.to_string()?.as_str())
    }
    fn strings(&self, key: &str) -> Result<Vec<String>> {
        self.get(key)?
            .to_vec()?
            .iter()
            .map(|v| Ok(v.to_string()?.clone()))
            .collect()
    }
}

/// The file and its header (metadata and tensor index; no weights read).
fn open(gguf_path: &Path) -> Result<(File, Content)> {
    let mut file = File::open(gguf_path).map_err(|e| LmError::io(gguf_path, e))?;
    let content = Content::read(&mut file)
        .map_err(|e| LmError::bad(gguf_path, format!("not a readable GGUF file: {e}")))?;
    Ok((file, content))
}

/// Writes the tokenizer of `gguf_path` (tokenizer.json and
/// tokenizer_config.json, rebuilt from its metadata as [`import_gguf`] does)
/// into `out_dir`, reading no weights: the tokenizer of a remote model that a
/// server runs from this file.
pub fn write_gguf_tokenizer(gguf_path: &Path, out_dir: &Path) -> Result<()> {
    let (_, content) = open(gguf_path)?;
    let meta = Meta::of(gguf_path, &content);
    let tokens = meta.strings("tokenizer.ggml.tokens")?;
    let id = |key: &str| content.metadata.get(key).map(|v| v.to_u32()).transpose();
    let (bos, eos) = (
        id("tokenizer.ggml.bos_token_id")?,
        id("tokenizer.ggml.eos_token_id")?,
    );
    let (tokenizer, tokenizer_config) = tokenizer_files(&meta, &tokens, bos, eos)?;
    std::fs::create_dir_all(out_dir).map_err(|e| LmError::io(out_dir, e))?;
    for (name, text) in [
        ("tokenizer.json", tokenizer),
        ("tokenizer_config.json", tokenizer_config),
    ] {
        let p = out_dir.join(name);
        std::fs::write(&p, text).map_err(|e| LmError::io(&p, e))?;
    }
    Ok(())
}

/// Reads `gguf_path` and writes a Hugging Face folder into `out_dir`.
pub fn import_gguf(gguf_path: &Path, out_dir: &Path) -> Result<GgufImport> {
    let (mut file, content) = open(gguf_path)?;
    let meta = Meta::of(gguf_path, &content);
    let arch = meta.str("general.architecture")?.to_string();
    let (model_type, architecture) = match arch.as_str() {
        "llama" => ("llama", "LlamaForCausalLM"),
        "qwen2" => ("qwen2", "Qwen2ForCausalLM"),
        "qwen3" => ("qwen3", "Qwen3ForCausalLM"),
        "gemma3" => ("gemma3_text", "Gemma3ForCausalLM"),
        other => {
            return Err(LmError::Unsupported {
                path: gguf_path.to_path_buf(),
                message: format!(
                    "GGUF architecture {other:?} is not supported; supported: llama, qwen2, qwen3, gemma3"
                ),
            });
        }
    };
    let gemma = arch == "gemma3";
    let mut types: Vec<String> = Vec::new();
    for (name, info) in &content.tensor_infos {
        if !supported(info.ggml_dtype) {
            return Err(LmError::Unsupported {
                path: gguf_path.to_path_buf(),
                message: format!(
                    "tensor {name} has type {:?}; supported types: {SUPPORTED_TYPES}",
                    info.ggml_dtype
                ),
            });
        }
        let t = format!("{:?}", info.ggml_dtype);
        if !types.contains(&t) {
            types.push(t);
        }
    }
    types.sort();

    let key = |k: &str| format!("{arch}.{k}");
    let heads = meta.u32(&key("attention.head_count"))? as usize;
    let kv_heads = match content.metadata.get(&key("attention.head_count_kv")) {
        Some(v) => v.to_u32()? as usize,
        None => heads,
    };
    let hidden = meta.u32(&key("embedding_length"))? as usize;
    let tokens = meta.strings("tokenizer.ggml.tokens")?;

    let device = Device::Cpu;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut rope_freqs: Option<Vec<f32>> = None;
    for name in content.tensor_infos.keys() {
        let q = content
            .tensor(&mut file, name, &device)
            .map_err(|e| LmError::bad(gguf_path, format!("tensor {name}: {e}")))?;
        let mut t = q.dequantize(&device)?;
        if name == "rope_freqs.weight" {
            rope_freqs = Some(t.flatten_all()?.to_vec1()?);
            continue;
        }
        let hf = hf_name(name, gemma).ok_or_else(|| LmError::Unsupported {
            path: gguf_path.to_path_buf(),
            message: format!("unexpected tensor {name} for a {arch} model"),
        })?;
        // Gemma's RMSNorm scales by 1 + w; llama.cpp stores 1 + w.
        if gemma && name.ends_with("norm.weight") {
            t = (t - 1.0)?;
        }
        if let Some(h) = permuted_heads(&arch, name, heads, kv_heads) {
            t = unpermute(&t, h)?;
        }
        tensors.insert(hf, t);
    }
    let tied = !tensors.contains_key("lm_head.weight");
    let layers = meta.u32(&key("block_count"))? as usize;
    let head_dim = match content.metadata.get(&key("attention.key_length")) {
        Some(v) => v.to_u32()? as usize,
        None => hidden / heads,
    };
    let bos = content
        .metadata
        .get("tokenizer.ggml.bos_token_id")
        .map(|v| v.to_u32())
        .transpose()?;
    let eos = content
        .metadata
        .get("tokenizer.ggml.eos_token_id")
        .map(|v| v.to_u32())
        .transpose()?;
    let rope_theta = meta.f32_or(&key("rope.freq_base"), 10_000.0)? as f64;
    let rope_scaling = rope_scaling(&meta, &arch, rope_theta, head_dim, rope_freqs.as_deref())?;
    let mut eos_ids: Vec<u32> = eos.into_iter().collect();
    // Chat models end their turns with a separate token (Gemma's <end_of_turn>).
    if let Some(eot) = content.metadata.get("tokenizer.ggml.eot_token_id") {
        let eot = eot.to_u32()?;
        if !eos_ids.contains(&eot) {
            eos_ids.push(eot);
        }
    }
    let mut config = json!({
        "architectures": [architecture],
        "model_type": model_type,
        "vocab_size": tokens.len(),
        "hidden_size": hidden,
        "intermediate_size": meta.u32(&key("feed_forward_length"))?,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "rms_norm_eps": meta.f32_or(&key("attention.layer_norm_rms_epsilon"), 1e-6)? as f64,
        "rope_theta": rope_theta,
        "rope_scaling": rope_scaling,
        "max_position_embeddings": meta.u32(&key("context_length")).unwrap_or(4096),
        "tie_word_embeddings": tied,
        "bos_token_id": bos,
        "eos_token_id": if eos_ids.len() == 1 { json!(eos_ids[0]) } else { json!(eos_ids) },
        "torch_dtype": "float32",
    });
    if gemma {
        // What llama.cpp assumes for Gemma 3: every 6th layer global, local
        // RoPE base 10000, queries scaled by 1/sqrt(head_dim) (27B: by the
        // hidden size per head), unless the file says otherwise.
        // Flags (sliding or not) per layer, or every n-th layer global (default 6).
        let sliding: Vec<bool> = match content
            .metadata
            .get(&key("attention.sliding_window_pattern"))
        {
            Some(Value::Array(flags)) => flags
                .iter()
                .map(|f| f.to_bool())
                .collect::<candle_core::Result<_>>()?,
            other => {
                let n = other.map(|v| v.to_u32()).transpose()?.unwrap_or(6) as usize;
                (0..layers).map(|i| n == 0 || (i + 1) % n != 0).collect()
            }
        };
        let layer_types: Vec<&str> = sliding
            .into_iter()
            .map(|s| {
                if s {
                    "sliding_attention"
                } else {
                    "full_attention"
                }
            })
            .collect();
        let scalar = if layers == 62 {
            hidden / heads
        } else {
            head_dim
        };
        let extra = json!({
            "hidden_activation": "gelu_pytorch_tanh",
            "layer_types": layer_types,
            "sliding_window": meta.u32(&key("attention.sliding_window")).unwrap_or(4096),
            "rope_local_base_freq": meta.f32_or(&key("rope.freq_base_swa"), 10_000.0)? as f64,
            "query_pre_attn_scalar": scalar,
            "final_logit_softcapping": content.metadata.get(&key("final_logit_softcapping")).map(|v| v.to_f32()).transpose()?,
        });
        for (k, v) in extra.as_object().expect("object") {
            config[k] = v.clone();
        }
    } else {
        config["hidden_act"] = json!("silu");
    }

    std::fs::create_dir_all(out_dir).map_err(|e| LmError::io(out_dir, e))?;
    let write = |name: &str, text: String| -> Result<()> {
        let p = out_dir.join(name);
        std::fs::write(&p, text).map_err(|e| LmError::io(&p, e))
    };
    write(
        "config.json",
        serde_json::to_string_pretty(&config).expect("json"),
    )?;
    let (tokenizer, tokenizer_config) = tokenizer_files(&meta, &tokens, bos, eos)?;
    write("tokenizer.json", tokenizer)?;
    write("tokenizer_config.json", tokenizer_config)?;
    let weights = out_dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &weights)?;
    write_gguf_blocks(gguf_path, out_dir)?;
    Ok(GgufImport {
        dir: out_dir.to_path_buf(),
        architecture: arch,
        tensor_types: types,
    })
}

/// The `rope_scaling` of config.json: `{arch}.rope.scaling.type` (linear), or
/// Llama 3's scaling recovered from the per-frequency factors llama.cpp
/// stores as `rope_freqs` (checked to regenerate every factor).
fn rope_scaling(
    meta: &Meta,
    arch: &str,
    theta: f64,
    head_dim: usize,
    rope_freqs: Option<&[f32]>,
) -> Result<serde_json::Value> {
    let unsupported = |message: String| LmError::Unsupported {
        path: meta.path.to_path_buf(),
        message,
    };
    if let Some(factors) = rope_freqs {
        return llama3_scaling(theta, head_dim, factors)
            .map(|s| s.to_json())
            .ok_or_else(|| {
                unsupported(
                    "rope_freqs.weight does not follow Llama 3's RoPE scaling; \
                     import the model's Hugging Face folder instead"
                        .into(),
                )
            });
    }
    let kind = match meta.md.get(&format!("{arch}.rope.scaling.type")) {
        Some(v) => v.to_string()?.clone(),
        None => return Ok(serde_json::Value::Null),
    };
    match kind.as_str() {
        "none" => Ok(serde_json::Value::Null),
        "linear" => Ok(json!({
            "rope_type": "linear",
            "factor": meta.f32_or(&format!("{arch}.rope.scaling.factor"), 1.0)? as f64,
        })),
        other => Err(unsupported(format!(
            "GGUF RoPE scaling {other:?} is not supported (linear and Llama 3's are)"
        ))),
    }
}

/// Finds Llama 3 scaling parameters (low/high frequency factors 1 and 4, as
/// every Llama 3.x uses) that give `factors`: the largest factor is `factor`,
/// the original context length follows from a blended frequency if there is
/// one (else 8192).
fn llama3_scaling(theta: f64, head_dim: usize, factors: &[f32]) -> Option<RopeScaling> {
    let inv_freq: Vec<f64> = (0..head_dim)
        .step_by(2)
        .map(|i| 1.0 / theta.powf(i as f64 / head_dim as f64))
        .collect();
    if inv_freq.len() != factors.len() {
        return None;
    }
    let factor = factors.iter().copied().fold(1.0f32, f32::max) as f64;
    let (low, high) = (1.0, 4.0);
    let mut candidates = vec![8192.0];
    for (&f, &freq) in factors.iter().zip(&inv_freq) {
        let f = f as f64;
        if (f - 1.0).abs() > 1e-4 && (f - factor).abs() > 1e-4 * factor {
            // 1/f = (1 - s)/factor + s, s = (original/wavelen - low)/(high - low)
            let s = (1.0 / f - 1.0 / factor) / (1.0 - 1.0 / factor);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            candidates.insert(0, (wavelen * (low + s * (high - low))).round());
        }
    }
    candidates.into_iter().find_map(|original| {
        let scaling = RopeScaling::Llama3 {
            factor,
            low_freq_factor: low,
            high_freq_factor: high,
            original_max_position_embeddings: original,
        };
        let fits = factors.iter().zip(&inv_freq).all(|(&f, &freq)| {
            let want = freq / scaling.apply(freq);
            (want - f as f64).abs() <= 1e-3 * want
        });
        fits.then_some(scaling)
    })
}

/// GGUF tensor names -> Hugging Face checkpoint names (Gemma's four norms per
/// layer are named differently from Llama's two).
fn hf_name(gguf: &str, gemma: bool) -> Option<String> {
    let direct = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(d) = direct {
        return Some(d.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, tail) = rest.split_once('.')?;
    let (part, kind) = tail.rsplit_once('.')?; // kind: weight | bias
    let hf = match part {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "attn_norm" => "input_layernorm",
        "ffn_norm" if gemma => "pre_feedforward_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "post_attention_norm" if gemma => "post_attention_layernorm",
        "post_ffw_norm" if gemma => "post_feedforward_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// The heads of a Llama q/k projection, whose rows llama.cpp permutes for
/// its RoPE layout (None for every other tensor).
fn permuted_heads(arch: &str, name: &str, heads: usize, kv_heads: usize) -> Option<usize> {
    match arch {
        "llama" if name.ends_with("attn_q.weight") => Some(heads),
        "llama" if name.ends_with("attn_k.weight") => Some(kv_heads),
        _ => None,
    }
}

/// Writes the matrices of `gguf_path` that are kept as blocks
/// ([`BlockKind::keeps`]: Q4_0, Q4_1, Q8_0, Q4_K, Q6_K; their rows unpermuted as the import unpermutes the weights) into
/// `out_dir`'s blocks file ([`crate::blocks`]), for the decode products of
/// the folder [`import_gguf`] made from it. Writes nothing when it has none.
pub fn write_gguf_blocks(gguf_path: &Path, out_dir: &Path) -> Result<()> {
    let (mut file, content) = open(gguf_path)?;
    let meta = Meta::of(gguf_path, &content);
    let arch = meta.str("general.architecture")?.to_string();
    let heads = meta.u32(&format!("{arch}.attention.head_count"))? as usize;
    let kv_heads = match content
        .metadata
        .get(&format!("{arch}.attention.head_count_kv"))
    {
        Some(v) => v.to_u32()? as usize,
        None => heads,
    };
    let gemma = arch == "gemma3";
    let mut blocks = HashMap::new();
    for (name, info) in &content.tensor_infos {
        let Some(hf) = hf_name(name, gemma).filter(|_| BlockKind::keeps(info.ggml_dtype)) else {
            continue;
        };
        let q = content
            .tensor(&mut file, name, &Device::Cpu)
            .map_err(|e| LmError::bad(gguf_path, format!("tensor {name}: {e}")))?;
        let &[n, k] = q.shape().dims() else {
            continue;
        };
        // Rows of bytes: a row permutation moves whole rows of blocks.
        let bytes = q.data()?.into_owned();
        let row_bytes = bytes.len() / n.max(1);
        let mut rows = Tensor::from_vec(bytes, (n, row_bytes), &Device::Cpu)?;
        if let Some(h) = permuted_heads(&arch, name, heads, kv_heads) {
            rows = unpermute(&rows, h)?;
        }
        let bytes = rows.flatten_all()?.to_vec1::<u8>()?;
        blocks.extend(Blocks::from_gguf(info.ggml_dtype, (n, k), &bytes).map(|b| (hf, b)));
    }
    if blocks.is_empty() {
        return Ok(());
    }
    crate::blocks::write(out_dir, &blocks)
}

/// Undoes llama.cpp's `permute`: rows were reordered from [h, 2, d/2] to [h, d/2, 2] per head.
fn unpermute(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    Ok(w.reshape((heads, out / heads / 2, 2, inp))?
        .transpose(1, 2)?
        .reshape((out, inp))?)
}

/// `tokenizer.json`'s vocabulary: token -> id.
fn vocab_json(tokens: &[String]) -> serde_json::Map<String, serde_json::Value> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect()
}

/// The tokens of the `whole` types as added tokens (matched whole, before the
/// model runs); all but user-defined ones (4) are special.
fn added_tokens(tokens: &[String], token_types: &[i64], whole: &[i64]) -> Vec<serde_json::Value> {
    tokens
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let kind = *token_types.get(i)?;
            whole.contains(&kind).then(|| {
                json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                       "normalized": false, "special": kind != 4})
            })
        })
        .collect()
}

/// Why a GGUF file's vocabulary cannot become a tokenizer.json.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VocabError {
    #[error("GGUF pre-tokenizer {0:?} is not supported yet (smollm, gpt2, llama-bpe, qwen2 are)")]
    PreTokenizer(String),
    #[error("{scores} scores for {tokens} tokens (tokenizer.ggml.scores)")]
    Scores { scores: usize, tokens: usize },
    #[error(
        "GGUF tokenizer model {0:?} is not supported yet (byte-level BPE \"gpt2\" and SentencePiece \"llama\" are); \
         import the model's Hugging Face folder instead"
    )]
    Model(String),
}

/// A Hugging Face `tokenizer.json` for a byte-level BPE vocabulary as GGUF
/// stores it: tokens, merges (`"a b"`), token types (3 = control, 4 = user
/// defined: matched whole) and llama.cpp's pre-tokenizer name.
pub fn bpe_tokenizer_json(
    tokens: &[String],
    merges: &[String],
    token_types: &[i64],
    pre: &str,
) -> Result<serde_json::Value, VocabError> {
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let pre_tokenizer = match pre {
        "smollm" | "starcoder" | "refact" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level]}),
        "default" | "gpt-2" | "gpt2" => byte_level,
        "llama-bpe" | "llama3" | "qwen2" => {
            let pattern = if pre == "qwen2" {
                r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
            } else {
                r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
            };
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})
        }
        other => {
            return Err(VocabError::PreTokenizer(other.to_string()));
        }
    };
    let vocab = vocab_json(tokens);
    // Control (3) and user-defined (4) tokens are matched whole, before the model runs.
    let added = added_tokens(tokens, token_types, &[3, 4]);
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges}
    }))
}

/// A Hugging Face `tokenizer.json` for a SentencePiece BPE vocabulary as GGUF
/// stores it (`tokenizer.ggml.model` "llama": Llama 2, Mistral, Gemma...):
/// pieces, scores and token types (1 normal, 2 unknown, 3 control, 4 user
/// defined, 6 byte). What llama.cpp and transformers' GGUF loader do: merges
/// ranked by the merged piece's score (SentencePiece merges the best-scoring
/// pair first), bytes for characters outside the vocabulary (`<0xNN>` pieces),
/// spaces as `▁` with one prepended to each piece of text (`add_space_prefix`),
/// control and user-defined pieces matched whole; `bos`, when given, is added
/// in front of every encoded text (`add_bos_token`).
pub fn spm_tokenizer_json(
    tokens: &[String],
    scores: &[f32],
    token_types: &[i64],
    add_space_prefix: bool,
    bos: Option<u32>,
) -> Result<serde_json::Value, VocabError> {
    if scores.len() != tokens.len() {
        return Err(VocabError::Scores {
            scores: scores.len(),
            tokens: tokens.len(),
        });
    }
    let kind = |i: usize| token_types.get(i).copied().unwrap_or(1);
    let ids: std::collections::HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    // Every split of a normal piece into two pieces of the vocabulary is a
    // merge, ranked by the piece's score (ties: vocabulary order).
    let mut merges: Vec<(f32, usize, usize, usize)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        if kind(id) != 1 {
            continue;
        }
        let mut local: Vec<(usize, usize)> = piece
            .char_indices()
            .skip(1)
            .filter_map(|(at, _)| {
                let (l, r) = piece.split_at(at);
                Some((*ids.get(l)?, *ids.get(r)?))
            })
            .filter(|&(l, r)| kind(l) == 1 && kind(r) == 1)
            .collect();
        local.sort_unstable();
        merges.extend(local.into_iter().map(|(l, r)| (scores[id], id, l, r)));
    }
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let merges: Vec<[&str; 2]> = merges
        .iter()
        .map(|&(_, _, l, r)| [tokens[l].as_str(), tokens[r].as_str()])
        .collect();
    let vocab = vocab_json(tokens);
    let added = added_tokens(tokens, token_types, &[2, 3, 4]);
    let unk = tokens
        .iter()
        .enumerate()
        .find(|(i, _)| kind(*i) == 2)
        .map(|(_, t)| t.clone());
    let replace = json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"});
    let (normalizer, decoder) = if add_space_prefix {
        (
            json!({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u{2581}"}, replace]}),
            json!({"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}),
        )
    } else {
        (
            replace,
            json!({"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}]}),
        )
    };
    let post_processor = match bos.and_then(|b| tokens.get(b as usize).map(|t| (b, t))) {
        Some((id, token)) => json!({"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": token, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": token, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": token, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {token: {"id": token, "ids": [id], "tokens": [token]}}}),
        None => serde_json::Value::Null,
    };
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": null,
        "post_processor": post_processor,
        "decoder": decoder,
        "model": {"type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                  "vocab": vocab, "merges": merges}
    }))
}

/// Rebuilds `tokenizer.json` (byte-level BPE or SentencePiece) and `tokenizer_config.json`.
fn tokenizer_files(
    meta: &Meta,
    tokens: &[String],
    bos: Option<u32>,
    eos: Option<u32>,
) -> Result<(String, String)> {
    let model = meta.str("tokenizer.ggml.model")?;
    let types: Vec<i64> = match meta.md.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()?
            .iter()
            .map(|t| t.to_i32().map(i64::from))
            .collect::<candle_core::Result<_>>()?,
        None => vec![1; tokens.len()],
    };
    let flag = |key: &str| meta.md.get(key).and_then(|v| v.to_bool().ok());
    let built = match model {
        "gpt2" => {
            let pre = meta
                .md
                .get("tokenizer.ggml.pre")
                .and_then(|v| v.to_string().ok())
                .map(String::as_str)
                .unwrap_or("default");
            let merges = meta.strings("tokenizer.ggml.merges")?;
            bpe_tokenizer_json(tokens, &merges, &types, pre)
        }
        "llama" => {
            let scores: Vec<f32> = meta
                .get("tokenizer.ggml.scores")?
                .to_vec()?
                .iter()
                .map(|v| v.to_f32())
                .collect::<candle_core::Result<_>>()?;
            let prefix = flag("tokenizer.ggml.add_space_prefix").unwrap_or(true);
            let add_bos = flag("tokenizer.ggml.add_bos_token").unwrap_or(true);
            spm_tokenizer_json(tokens, &scores, &types, prefix, bos.filter(|_| add_bos))
        }
        other => Err(VocabError::Model(other.to_string())),
    };
    let tokenizer = built.map_err(|e| LmError::Unsupported {
        path: meta.path.to_path_buf(),
        message: e.to_string(),
    })?;
    let name = |id: Option<u32>| id.and_then(|i| tokens.get(i as usize)).cloned();
    let chat_template = meta
        .md
        .get("tokenizer.chat_template")
        .and_then(|v| v.to_string().ok())
        .cloned();
    let config = json!({
        "bos_token": name(bos),
        "eos_token": name(eos),
        // llama.cpp's default: SentencePiece vocabularies start with BOS, byte-level BPE ones do not.
        "add_bos_token": flag("tokenizer.ggml.add_bos_token").unwrap_or(model == "llama"),
        "chat_template": chat_template,
        "model_max_length": meta.u32(&format!("{}.context_length", meta.str("general.architecture")?)).unwrap_or(4096),
    });
    Ok((
        serde_json::to_string(&tokenizer).expect("json"),
        serde_json::to_string_pretty(&config).expect("json"),
    ))
}
