//! GGUF import round trips: a model built in code is written as a GGUF the way
//! llama.cpp writes one (q/k rows permuted for Llama), imported, and must give
//! the logits of the original; the tokenizer is rebuilt from the metadata.

mod common;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use common::*;
use spectrum_lm::hf::ModelDir;
use spectrum_lm::models::CausalLm;
use spectrum_lm::{LmError, ModelConfig};

fn gguf_name(hf: &str) -> String {
    let map = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = map.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").expect("layer tensor");
    let (layer, tail) = rest.split_once('.').expect("layer");
    let parts = [
        ("self_attn.q_proj", "attn_q"),
        ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"),
        ("self_attn.q_norm", "attn_q_norm"),
        ("self_attn.k_norm", "attn_k_norm"),
        ("mlp.gate_proj", "ffn_gate"),
        ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
        ("input_layernorm", "attn_norm"),
        ("post_attention_layernorm", "ffn_norm"),
    ];
    let (part, kind) = tail.rsplit_once('.').expect("kind");
    let g = parts
        .iter()
        .find(|(h, _)| *h == part)
        .expect("known part")
        .1;
    format!("blk.{layer}.{g}.{kind}")
}

/// llama.cpp's `permute` of q/k rows (convert_hf_to_gguf.py).
fn permute(w: &Tensor, heads: usize) -> Tensor {
    let (out, inp) = w.dims2().expect("2d");
    w.reshape((heads, 2, out / heads / 2, inp))
        .and_then(|t| t.transpose(1, 2))
        .and_then(|t| t.reshape((out, inp)))
        .expect("permute")
}

fn tiny_config(family: &str) -> ModelConfig {
    let mut cfg = reference(family).config;
    cfg.vocab_size = vocab().len();
    cfg
}

fn shapes(cfg: &ModelConfig, family: &str) -> Vec<(String, Vec<usize>)> {
    // The reference shapes, with the vocabulary resized.
    reference(family)
        .shapes
        .into_iter()
        .map(|(name, mut shape)| {
            if name.contains("embed_tokens") || name.starts_with("lm_head") {
                shape[0] = cfg.vocab_size;
            }
            (name, shape)
        })
        .collect()
}

fn write_gguf(
    path: &std::path::Path,
    family: &str,
    cfg: &ModelConfig,
    dtype: GgmlDType,
    extra: &[(&str, Value)],
) {
    let mut tensors = Vec::new();
    for (name, shape) in shapes(cfg, family) {
        let mut t = weight(&name, &shape, DType::F32);
        if family == "llama" && name.ends_with("q_proj.weight") {
            t = permute(&t, cfg.num_attention_heads);
        }
        if family == "llama" && name.ends_with("k_proj.weight") {
            t = permute(&t, cfg.kv_heads());
        }
        // Block types need rows of whole blocks.
        let q = if shape.len() == 2 && shape[1] % dtype.block_size() == 0 {
            QTensor::quantize(&t, dtype)
        } else {
            QTensor::quantize(&t, GgmlDType::F32)
        }
        .expect("quantize");
        tensors.push((gguf_name(&name), q));
    }
    let arch = family.to_string();
    let key = |k: &str| format!("{arch}.{k}");
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.clone())),
        (key("embedding_length"), Value::U32(cfg.hidden_size as u32)),
        (key("feed_forward_length"), Value::U32(cfg.intermediate_size as u32)),
        (key("block_count"), Value::U32(cfg.num_hidden_layers as u32)),
        (key("attention.head_count"), Value::U32(cfg.num_attention_heads as u32)),
        (key("attention.head_count_kv"), Value::U32(cfg.kv_heads() as u32)),
        (key("attention.key_length"), Value::U32(cfg.head_dim() as u32)),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(cfg.rms_norm_eps as f32)),
        (key("rope.freq_base"), Value::F32(cfg.rope_theta as f32)),
        (key("context_length"), Value::U32(cfg.max_position_embeddings as u32)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("smollm".into())),
        ("tokenizer.ggml.tokens".into(), Value::Array(vocab().into_iter().map(Value::String).collect())),
        ("tokenizer.ggml.token_type".into(), Value::Array((0..vocab().len()).map(|i| Value::I32(if i < 3 { 3 } else { 1 })).collect())),
        ("tokenizer.ggml.merges".into(), Value::Array(MERGES.iter().map(|m| Value::String(m.to_string())).collect())),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
        ("tokenizer.chat_template".into(), Value::String("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}".into())),
    ];
    for (k, v) in extra {
        meta.retain(|(name, _)| name != k);
        meta.push((k.to_string(), v.clone()));
    }
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path).expect("create");
    gguf_file::write(&mut file, &meta_refs, &tensor_refs).expect("write gguf");
}

#[test]
fn llama_and_qwen2_gguf_import_gives_the_original_model() {
    for family in ["llama", "qwen2"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = tiny_config(family);
        let path = dir.path().join("tiny.gguf");
        write_gguf(&path, family, &cfg, GgmlDType::F32, &[]);
        let out = dir.path().join("hf");
        let imported = spectrum_lm::gguf::import_gguf(&path, &out).expect("import");
        assert_eq!(imported.architecture, family);

        let tensors = shapes(&cfg, family)
            .into_iter()
            .map(|(n, s)| {
                let t = weight(&n, &s, DType::F32);
                (n, t)
            })
            .collect();
        let mut original = CausalLm::load(
            &cfg,
            candle_nn::VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
            None,
        )
        .expect("load");
        let model_dir = ModelDir::open(&out).expect("open imported");
        assert_eq!(
            model_dir.config.tie_word_embeddings, cfg.tie_word_embeddings,
            "{family}"
        );
        let (mut model, tokenizer) = model_dir
            .load(DType::F32, &Device::Cpu, None)
            .expect("load imported");
        let ids = Tensor::new(&[[1u32, 20, 40, 60, 80, 100, 120, 2]], &Device::Cpu).expect("ids");
        let diff = max_diff(
            &original.forward(&ids, None).expect("fwd"),
            &model.forward(&ids, None).expect("fwd"),
        );
        assert!(diff < 1e-5, "{family}: imported model differs by {diff}");

        // The byte-level BPE tokenizer: merges apply, specials match whole, bytes round-trip.
        assert_eq!(
            tokenizer.encode("head").expect("encode"),
            vec![vocab().len() as u32 - 1]
        );
        let ids = tokenizer
            .encode("<|im_start|>output\nhead 42 é<|im_end|>")
            .expect("encode");
        assert_eq!(ids[0], 1);
        assert_eq!(*ids.last().expect("last"), 2);
        assert_eq!(
            tokenizer.decode(&ids[1..ids.len() - 1]).expect("decode"),
            "output\nhead 42 é"
        );
        assert_eq!(tokenizer.eos, vec![2]);
        assert!(tokenizer.chat_template.is_some());
    }
}

/// The import keeps a quantised GGUF's blocks (Llama q/k rows unpermuted
/// like the weights), and the products of a few rows that read them give
/// the logits of the f32 weights, bit for bit, prompt and decoding steps.
#[test]
fn quantised_blocks_decode_as_the_f32_weights_do() {
    for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = tiny_config("llama");
        let path = dir.path().join("tiny.gguf");
        write_gguf(&path, "llama", &cfg, dtype, &[]);
        let out = dir.path().join("hf");
        spectrum_lm::gguf::import_gguf(&path, &out).expect("import");
        let blocks = spectrum_lm::blocks::read(&out).expect("blocks");
        // q, k, v, o, gate and up (32 columns) of each layer, the embedding
        // and the LM head; not down (48 columns).
        assert_eq!(blocks.len(), cfg.num_hidden_layers * 6 + 2, "{dtype:?}");
        let md = ModelDir::open(&out).expect("open");
        let (mut with, _) = md.load(DType::F32, &Device::Cpu, None).expect("load");
        let (mut without, _) = md.load(DType::F32, &Device::Cpu, None).expect("load");
        assert_eq!(with.attach_blocks(&blocks), blocks.len());
        without.attach_blocks(&Default::default());
        let bits = |t: Tensor| -> Vec<u32> {
            let v: Vec<f32> = t.flatten_all().and_then(|t| t.to_vec1()).expect("logits");
            v.iter().map(|f| f.to_bits()).collect()
        };
        let prompt = Tensor::new(&[[1u32, 20, 40, 60, 80]], &Device::Cpu).expect("ids");
        assert_eq!(
            bits(with.forward(&prompt, None).expect("forward")),
            bits(without.forward(&prompt, None).expect("forward")),
            "{dtype:?} prompt"
        );
        for token in [7u32, 9, 11] {
            let step = Tensor::new(&[[token]], &Device::Cpu).expect("ids");
            assert_eq!(
                bits(with.forward(&step, None).expect("forward")),
                bits(without.forward(&step, None).expect("forward")),
                "{dtype:?} step"
            );
        }
        // Every product read its blocks (the embedding is no product: this
        // model's head is untied).
        for (name, b) in &blocks {
            let used = name != "model.embed_tokens.weight";
            assert_eq!(b.checked(), used.then_some(true), "{dtype:?} {name}");
        }
    }
}

/// Q4_K and Q6_K (what Ollama's Q4_K_M files hold) are kept too, as Q4_1
/// blocks and as bytes with a scale per 16, and decode bit for bit as their
/// dequantised weights do.
#[test]
fn k_quant_blocks_decode_as_the_f32_weights_do() {
    let mut cfg = tiny_config("qwen2");
    // Rows of whole super-blocks (256 values).
    (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_hidden_layers,
    ) = (256, 256, 1);
    cfg.head_dim = Some(64);
    for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.gguf");
        write_gguf_with(&path, &cfg, dtype);
        let out = dir.path().join("hf");
        spectrum_lm::gguf::import_gguf(&path, &out).expect("import");
        let blocks = spectrum_lm::blocks::read(&out).expect("blocks");
        assert_eq!(
            blocks.len(),
            7 + 1,
            "{dtype:?}: 7 projections and the tied embedding"
        );
        let md = ModelDir::open(&out).expect("open");
        let (mut with, _) = md.load(DType::F32, &Device::Cpu, None).expect("load");
        let (mut without, _) = md.load(DType::F32, &Device::Cpu, None).expect("load");
        with.attach_blocks(&blocks);
        without.attach_blocks(&Default::default());
        // A prompt, then two decoding steps from its cache.
        for ids in [vec![1u32, 20, 40], vec![7], vec![9]] {
            let ids = ids_tensor(&[ids]);
            let (a, b) = (with.forward(&ids, None), without.forward(&ids, None));
            let bits = |t: Tensor| -> Vec<u32> {
                let v: Vec<f32> = t.flatten_all().and_then(|t| t.to_vec1()).expect("logits");
                v.iter().map(|f| f.to_bits()).collect()
            };
            assert_eq!(
                bits(a.expect("forward")),
                bits(b.expect("forward")),
                "{dtype:?}"
            );
        }
        assert!(
            blocks.values().all(|b| b.checked() == Some(true)),
            "{dtype:?}"
        );
    }
}

#[test]
fn quantised_gguf_imports_close_to_the_original() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = tiny_config("qwen2");
    cfg.intermediate_size = 64; // Q8_0 needs rows in blocks of 32
    let path = dir.path().join("q8.gguf");
    // Shapes follow the config, so they are rebuilt for the wider MLP.
    write_gguf_with(&path, &cfg, GgmlDType::Q8_0);
    let out = dir.path().join("hf");
    let imported = spectrum_lm::gguf::import_gguf(&path, &out).expect("import");
    assert!(
        imported.tensor_types.contains(&"Q8_0".to_string()),
        "{:?}",
        imported.tensor_types
    );
    let loaded = ModelDir::open(&out)
        .expect("open")
        .load_tensors(DType::F32, &Device::Cpu)
        .expect("tensors");
    let w = &loaded["model.layers.0.mlp.down_proj.weight"];
    let original = weight("model.layers.0.mlp.down_proj.weight", &[32, 64], DType::F32);
    // Q8_0 keeps 8 bits per value with one scale per 32: error below 1% of the block maximum.
    assert!(
        max_diff(w, &original) < 0.08 / 127.0,
        "Q8_0 round trip error {}",
        max_diff(w, &original)
    );
}

/// A Qwen2 GGUF of `cfg`'s shapes, its matrices in `dtype` where their rows
/// hold whole blocks of it.
fn write_gguf_with(path: &std::path::Path, cfg: &ModelConfig, dtype: GgmlDType) {
    let mut tensors = Vec::new();
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let hd = cfg.head_dim();
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![v, h]),
        ("model.norm.weight".into(), vec![h]),
    ];
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        for (n, s) in [
            (
                "self_attn.q_proj.weight",
                vec![cfg.num_attention_heads * hd, h],
            ),
            ("self_attn.q_proj.bias", vec![cfg.num_attention_heads * hd]),
            ("self_attn.k_proj.weight", vec![cfg.kv_heads() * hd, h]),
            ("self_attn.k_proj.bias", vec![cfg.kv_heads() * hd]),
            ("self_attn.v_proj.weight", vec![cfg.kv_heads() * hd, h]),
            ("self_attn.v_proj.bias", vec![cfg.kv_heads() * hd]),
            (
                "self_attn.o_proj.weight",
                vec![h, cfg.num_attention_heads * hd],
            ),
            ("mlp.gate_proj.weight", vec![i, h]),
            ("mlp.up_proj.weight", vec![i, h]),
            ("mlp.down_proj.weight", vec![h, i]),
            ("input_layernorm.weight", vec![h]),
            ("post_attention_layernorm.weight", vec![h]),
        ] {
            shapes.push((format!("{p}.{n}"), s));
        }
    }
    for (name, shape) in shapes {
        let t = weight(&name, &shape, DType::F32);
        let q = if shape.len() == 2 && shape[1] % dtype.block_size() == 0 {
            QTensor::quantize(&t, dtype)
        } else {
            QTensor::quantize(&t, GgmlDType::F32)
        }
        .expect("quantize");
        tensors.push((gguf_name(&name), q));
    }
    let meta = [
        ("general.architecture", Value::String("qwen2".into())),
        ("qwen2.embedding_length", Value::U32(h as u32)),
        ("qwen2.feed_forward_length", Value::U32(i as u32)),
        (
            "qwen2.block_count",
            Value::U32(cfg.num_hidden_layers as u32),
        ),
        (
            "qwen2.attention.head_count",
            Value::U32(cfg.num_attention_heads as u32),
        ),
        (
            "qwen2.attention.head_count_kv",
            Value::U32(cfg.kv_heads() as u32),
        ),
        ("qwen2.context_length", Value::U32(64)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(vocab().into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.merges",
            Value::Array(
                MERGES
                    .iter()
                    .map(|m| Value::String(m.to_string()))
                    .collect(),
            ),
        ),
    ];
    let meta: Vec<(String, Value)> = meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    write_raw(path, &meta, &tensors);
}

#[test]
fn bad_gguf_files_get_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = tiny_config("llama");
    let path = dir.path().join("tiny.gguf");
    write_gguf(&path, "llama", &cfg, GgmlDType::F32, &[]);
    let bytes = std::fs::read(&path).expect("read");

    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let err =
        spectrum_lm::gguf::import_gguf(&truncated, &dir.path().join("a")).expect_err("truncated");
    assert!(err.to_string().contains("truncated.gguf"), "{err}");

    let other = dir.path().join("gpt2.gguf");
    write_gguf(
        &other,
        "llama",
        &cfg,
        GgmlDType::F32,
        &[("general.architecture", Value::String("gpt2".into()))],
    );
    let err = spectrum_lm::gguf::import_gguf(&other, &dir.path().join("b")).expect_err("arch");
    assert!(
        matches!(err, LmError::Unsupported { .. })
            && err
                .to_string()
                .contains("supported: llama, qwen2, qwen3, gemma3"),
        "{err}"
    );

    let bert = dir.path().join("bert.gguf");
    write_gguf(
        &bert,
        "llama",
        &cfg,
        GgmlDType::F32,
        &[("tokenizer.ggml.model", Value::String("bert".into()))],
    );
    let err = spectrum_lm::gguf::import_gguf(&bert, &dir.path().join("c")).expect_err("tokenizer");
    assert!(
        err.to_string()
            .contains("tokenizer model \"bert\" is not supported"),
        "{err}"
    );
}

/// A SentencePiece vocabulary (Llama 2, Mistral, Gemma GGUFs) becomes a
/// tokenizer that splits text as SentencePiece (and llama.cpp) do: recorded
/// by scripts/record_spm_reference.py from a model trained with Llama's settings.
#[test]
fn sentencepiece_gguf_tokenizers_split_text_as_sentencepiece_does() {
    let path = format!(
        "{}/tests/reference/spm_tokenizer.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("reference")).expect("json");
    let tokens: Vec<String> = serde_json::from_value(r["tokens"].clone()).expect("tokens");
    let scores: Vec<f32> = serde_json::from_value(r["scores"].clone()).expect("scores");
    let types: Vec<i32> = serde_json::from_value(r["token_type"].clone()).expect("types");
    let mut cfg = tiny_config("llama");
    cfg.vocab_size = tokens.len();
    let dir = tempfile::tempdir().expect("tempdir");
    let gguf = dir.path().join("spm.gguf");
    write_gguf(
        &gguf,
        "llama",
        &cfg,
        GgmlDType::F32,
        &[
            ("tokenizer.ggml.model", Value::String("llama".into())),
            (
                "tokenizer.ggml.tokens",
                Value::Array(tokens.iter().cloned().map(Value::String).collect()),
            ),
            (
                "tokenizer.ggml.scores",
                Value::Array(scores.iter().map(|&s| Value::F32(s)).collect()),
            ),
            (
                "tokenizer.ggml.token_type",
                Value::Array(types.iter().map(|&t| Value::I32(t)).collect()),
            ),
            ("tokenizer.ggml.bos_token_id", Value::U32(1)),
            ("tokenizer.ggml.eos_token_id", Value::U32(2)),
            ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
        ],
    );
    let out = dir.path().join("model");
    spectrum_lm::gguf::import_gguf(&gguf, &out).expect("import");
    let tok = spectrum_lm::tokenizer::TextTokenizer::from_dir(&out).expect("tokenizer");
    assert_eq!(tok.bos, Some(1), "SentencePiece models start with BOS");
    assert_eq!(tok.eos, vec![2]);
    let texts: Vec<String> = serde_json::from_value(r["texts"].clone()).expect("texts");
    let ids: Vec<Vec<u32>> = serde_json::from_value(r["ids"].clone()).expect("ids");
    let decoded: Vec<String> = serde_json::from_value(r["decoded"].clone()).expect("decoded");
    for ((text, want), back) in texts.iter().zip(&ids).zip(&decoded) {
        let got = tok.encode(text).expect("encode");
        let show = |ids: &[u32]| {
            ids.iter()
                .map(|&i| tokens[i as usize].as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            got,
            *want,
            "{text:?}: {:?} vs SentencePiece {:?}",
            show(&got),
            show(want)
        );
        if !text.contains("<|im") {
            assert_eq!(tok.decode(&got).expect("decode"), *back, "{text:?}");
        }
    }
    // The imported model runs on those ids.
    let lm = spectrum_lm::load_local(&out, spectrum_lm::DeviceSpec::Cpu).expect("load");
    assert_eq!(lm.model.config().vocab_size, tokens.len());
}

fn write_raw(path: &std::path::Path, meta: &[(String, Value)], tensors: &[(String, QTensor)]) {
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(
        &mut std::fs::File::create(path).expect("create"),
        &meta_refs,
        &tensor_refs,
    )
    .expect("write");
}

fn f32_tensor(t: &Tensor) -> QTensor {
    QTensor::quantize(t, GgmlDType::F32).expect("quantize")
}

/// Imports `gguf` and checks the model's logits against transformers'.
fn assert_import_matches(gguf: &std::path::Path, r: &Reference, what: &str) -> ModelDir {
    let out = gguf.with_extension("hf");
    spectrum_lm::gguf::import_gguf(gguf, &out).expect("import");
    let dir = ModelDir::open(&out).expect("open imported");
    let (mut model, _) = dir
        .load(DType::F32, &Device::Cpu, None)
        .expect("load imported");
    assert_matches_reference(&mut model, r, what);
    dir
}

/// A Gemma 3 GGUF as llama.cpp writes one (tensor names from gguf-py's map,
/// norms stored as 1 + w, `gemma3.*` metadata with linear RoPE scaling:
/// recorded and checked against transformers' GGUF reader by
/// scripts/record_reference.py) imports to the model transformers runs.
#[test]
fn gemma3_gguf_import_matches_transformers() {
    let r = reference("gemma3");
    let names = r.gguf["tensors"].as_object().expect("tensor names");
    let tensors: Vec<(String, QTensor)> = r
        .shapes
        .iter()
        .map(|(name, shape)| {
            let mut t = weight(name, shape, DType::F32);
            if name.ends_with("norm.weight") {
                t = (t + 1.0).expect("plus one");
            }
            let gname = names[name].as_str().expect("gguf name").to_string();
            (gname, f32_tensor(&t))
        })
        .collect();
    let mut meta: Vec<(String, Value)> = r.gguf["metadata"]
        .as_object()
        .expect("metadata")
        .iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => Value::String(s.clone()),
                serde_json::Value::Number(n) if n.is_u64() => {
                    Value::U32(n.as_u64().expect("int") as u32)
                }
                serde_json::Value::Number(n) => Value::F32(n.as_f64().expect("float") as f32),
                other => panic!("unexpected metadata {other}"),
            };
            (k.clone(), value)
        })
        .collect();
    // A Gemma-like SentencePiece vocabulary: control tokens, turn markers, no space prefix.
    let special = [
        "<pad>",
        "<eos>",
        "<bos>",
        "<unk>",
        "<start_of_turn>",
        "<end_of_turn>",
    ];
    let tokens: Vec<String> = (0..r.config.vocab_size)
        .map(|i| match special.get(i) {
            Some(s) => s.to_string(),
            None => char::from(b'a' + (i - special.len()) as u8).to_string(),
        })
        .collect();
    let types: Vec<Value> = (0..tokens.len())
        .map(|i| {
            Value::I32(match i {
                3 => 2,
                0..=5 => 3,
                _ => 1,
            })
        })
        .collect();
    meta.extend([
        (
            "general.architecture".to_string(),
            Value::String("gemma3".into()),
        ),
        ("tokenizer.ggml.model".into(), Value::String("llama".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.iter().cloned().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.scores".into(),
            Value::Array(tokens.iter().map(|_| Value::F32(0.0)).collect()),
        ),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.eot_token_id".into(), Value::U32(5)),
        ("tokenizer.ggml.add_space_prefix".into(), Value::Bool(false)),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gemma3.gguf");
    write_raw(&path, &meta, &tensors);
    let model = assert_import_matches(&path, &r, "gemma3 gguf");
    assert_eq!(model.config.family(), Some(spectrum_lm::Family::Gemma3));
    assert_eq!(
        model.config.eos_ids(),
        vec![1, 5],
        "<end_of_turn> ends generation too"
    );
    assert!(!model.config.is_sliding_layer(5) && model.config.is_sliding_layer(4));
    let tok = spectrum_lm::tokenizer::TextTokenizer::from_dir(&model.dir).expect("tokenizer");
    assert_eq!(tok.bos, Some(2));
    // Turn markers match whole; no `▁` is put in front of the text.
    assert_eq!(
        tok.encode("<start_of_turn>b<end_of_turn>").expect("encode"),
        vec![4, 7, 5]
    );
}

/// Llama 3.1+ GGUFs keep RoPE scaling as a `rope_freqs` tensor of per-frequency
/// factors (written as in llama.cpp's convert script); the import recovers the
/// `llama3` parameters and the model transformers runs.
#[test]
fn llama3_rope_freqs_become_llama3_scaling() {
    let r = reference("llama3_rope");
    let cfg = &r.config;
    let hd = cfg.head_dim();
    let (factor, low, high, original) = (8.0f64, 1.0f64, 4.0f64, 32.0f64);
    // llama.cpp: factor 1 above the high band, `factor` below the low band, 1/blend between.
    let factors: Vec<f32> = (0..hd)
        .step_by(2)
        .map(|i| {
            let freq = 1.0 / cfg.rope_theta.powf(i as f64 / hd as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            if wavelen < original / high {
                1.0
            } else if wavelen > original / low {
                factor as f32
            } else {
                let smooth = (original / wavelen - low) / (high - low);
                (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
            }
        })
        .collect();
    assert!(
        factors.iter().any(|&f| f > 1.0 && (f as f64) < factor),
        "a blended band"
    );
    let mut tensors: Vec<(String, QTensor)> = r
        .shapes
        .iter()
        .map(|(name, shape)| {
            let mut t = weight(name, shape, DType::F32);
            if name.ends_with("q_proj.weight") {
                t = permute(&t, cfg.num_attention_heads);
            }
            if name.ends_with("k_proj.weight") {
                t = permute(&t, cfg.kv_heads());
            }
            (gguf_name(name), f32_tensor(&t))
        })
        .collect();
    let n = factors.len();
    tensors.push((
        "rope_freqs.weight".into(),
        f32_tensor(&Tensor::from_vec(factors, n, &Device::Cpu).expect("factors")),
    ));
    let key = |k: &str| format!("llama.{k}");
    let meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String("llama".into())),
        (key("embedding_length"), Value::U32(cfg.hidden_size as u32)),
        (
            key("feed_forward_length"),
            Value::U32(cfg.intermediate_size as u32),
        ),
        (key("block_count"), Value::U32(cfg.num_hidden_layers as u32)),
        (
            key("attention.head_count"),
            Value::U32(cfg.num_attention_heads as u32),
        ),
        (
            key("attention.head_count_kv"),
            Value::U32(cfg.kv_heads() as u32),
        ),
        (
            key("attention.layer_norm_rms_epsilon"),
            Value::F32(cfg.rms_norm_eps as f32),
        ),
        (key("rope.freq_base"), Value::F32(cfg.rope_theta as f32)),
        (
            key("context_length"),
            Value::U32(cfg.max_position_embeddings as u32),
        ),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(
                (0..cfg.vocab_size)
                    .map(|i| Value::String(format!("t{i}")))
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.merges".into(), Value::Array(vec![])),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("llama3.gguf");
    write_raw(&path, &meta, &tensors);
    let model = assert_import_matches(&path, &r, "llama3 rope_freqs");
    assert_eq!(model.config.rope(), r.config.rope());
}
