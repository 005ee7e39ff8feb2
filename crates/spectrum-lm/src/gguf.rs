//! GGUF import: the files Ollama and LM Studio keep on users' disks become a
//! normal, trainable Hugging Face folder (config.json, model.safetensors in f32,
//! tokenizer.json, tokenizer_config.json).
//!
//! Weights are dequantised (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K);
//! llama.cpp's row permutation of the Llama q/k projections is undone; the
//! byte-level BPE tokenizer is rebuilt from the metadata.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use serde_json::json;

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

impl Meta<'_> {
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

/// Reads `gguf_path` and writes a Hugging Face folder into `out_dir`.
pub fn import_gguf(gguf_path: &Path, out_dir: &Path) -> Result<GgufImport> {
    let mut file = File::open(gguf_path).map_err(|e| LmError::io(gguf_path, e))?;
    let content = Content::read(&mut file)
        .map_err(|e| LmError::bad(gguf_path, format!("not a readable GGUF file: {e}")))?;
    let meta = Meta {
        path: gguf_path,
        md: &content.metadata,
    };
    let arch = meta.str("general.architecture")?.to_string();
    let model_type = match arch.as_str() {
        "llama" | "qwen2" | "qwen3" => arch.clone(),
        other => {
            return Err(LmError::Unsupported {
                path: gguf_path.to_path_buf(),
                message: format!(
                    "GGUF architecture {other:?} is not supported; supported: llama, qwen2, qwen3"
                ),
            });
        }
    };
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
    for name in content.tensor_infos.keys() {
        let q = content
            .tensor(&mut file, name, &device)
            .map_err(|e| LmError::bad(gguf_path, format!("tensor {name}: {e}")))?;
        let mut t = q.dequantize(&device)?;
        let hf = hf_name(name).ok_or_else(|| LmError::Unsupported {
            path: gguf_path.to_path_buf(),
            message: format!("unexpected tensor {name} for a {arch} model"),
        })?;
        // llama.cpp permutes the rows of Llama q/k projections for its RoPE layout.
        if arch == "llama" && (name.ends_with("attn_q.weight") || name.ends_with("attn_k.weight")) {
            let h = if name.ends_with("attn_q.weight") {
                heads
            } else {
                kv_heads
            };
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
    let config = json!({
        "architectures": [match arch.as_str() { "qwen2" => "Qwen2ForCausalLM", "qwen3" => "Qwen3ForCausalLM", _ => "LlamaForCausalLM" }],
        "model_type": model_type,
        "vocab_size": tokens.len(),
        "hidden_size": hidden,
        "intermediate_size": meta.u32(&key("feed_forward_length"))?,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "rms_norm_eps": meta.f32_or(&key("attention.layer_norm_rms_epsilon"), 1e-6)? as f64,
        "rope_theta": meta.f32_or(&key("rope.freq_base"), 10_000.0)? as f64,
        "max_position_embeddings": meta.u32(&key("context_length")).unwrap_or(4096),
        "tie_word_embeddings": tied,
        "hidden_act": "silu",
        "bos_token_id": bos,
        "eos_token_id": eos,
        "torch_dtype": "float32",
    });

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
    Ok(GgufImport {
        dir: out_dir.to_path_buf(),
        architecture: arch,
        tensor_types: types,
    })
}

/// GGUF tensor names -> Hugging Face checkpoint names.
fn hf_name(gguf: &str) -> Option<String> {
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
        "ffn_norm" => "post_attention_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
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

/// A Hugging Face `tokenizer.json` for a byte-level BPE vocabulary as GGUF
/// stores it: tokens, merges (`"a b"`), token types (3 = control, 4 = user
/// defined: matched whole) and llama.cpp's pre-tokenizer name.
pub fn bpe_tokenizer_json(
    tokens: &[String],
    merges: &[String],
    token_types: &[i64],
    pre: &str,
) -> Result<serde_json::Value, String> {
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
            return Err(format!(
                "GGUF pre-tokenizer {other:?} is not supported yet (smollm, gpt2, llama-bpe, qwen2 are)"
            ));
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
) -> Result<serde_json::Value, String> {
    if scores.len() != tokens.len() {
        return Err(format!(
            "{} scores for {} tokens (tokenizer.ggml.scores)",
            scores.len(),
            tokens.len()
        ));
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
        other => Err(format!(
            "GGUF tokenizer model {other:?} is not supported yet (byte-level BPE \"gpt2\" and SentencePiece \"llama\" are); \
             import the model's Hugging Face folder instead"
        )),
    };
    let tokenizer = built.map_err(|message| LmError::Unsupported {
        path: meta.path.to_path_buf(),
        message,
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
