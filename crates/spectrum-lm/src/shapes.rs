//! Models of real shapes without downloads (for benchmarks): the
//! `config.json` values of a few published models, written here, and
//! randomly initialised weights drawn from a seed, so that speed and memory
//! can be measured on any machine, including one that reaches no network.
//!
//! The configs are the published ones' architecture fields (hidden sizes,
//! layers, heads, vocabulary, RoPE, tying); weights are normal with standard
//! deviation 0.02 (norms 1, biases 0), so losses mean nothing: only time and
//! memory do.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use serde_json::{Value, json};
use spectrum_core::Rng;

use spectrum_core::Problem;

use crate::Result;
use crate::config::ModelConfig;

/// The named shapes: (name, `config.json` fields).
fn shapes() -> Vec<(&'static str, Value)> {
    let qwen = |vocab: usize,
                hidden: usize,
                inter: usize,
                layers: usize,
                heads: usize,
                kv: usize,
                tie: bool| {
        json!({
            "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
            "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": inter,
            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
            "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 32768,
            "tie_word_embeddings": tie, "hidden_act": "silu",
            "bos_token_id": 151643, "eos_token_id": 151645, "torch_dtype": "bfloat16"
        })
    };
    vec![
        ("qwen2.5-0.5b", qwen(151936, 896, 4864, 24, 14, 2, true)),
        ("qwen2.5-1.5b", qwen(151936, 1536, 8960, 28, 12, 2, true)),
        (
            "llama-3.2-1b",
            json!({
                "model_type": "llama", "architectures": ["LlamaForCausalLM"],
                "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
                "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
                "head_dim": 64, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
                "max_position_embeddings": 131072, "tie_word_embeddings": true,
                "hidden_act": "silu", "bos_token_id": 128000, "eos_token_id": 128009,
                "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                "torch_dtype": "bfloat16"
            }),
        ),
        ("qwen2.5-7b", qwen(152064, 3584, 18944, 28, 28, 4, false)),
    ]
}

/// The names [`config`] knows.
pub fn names() -> Vec<&'static str> {
    shapes().into_iter().map(|(n, _)| n).collect()
}

/// The config of a named shape.
pub fn config(name: &str) -> Result<ModelConfig> {
    let value = shapes()
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .ok_or_else(|| {
            Problem::say(
                format!("no model shape {name:?}"),
                format!("name one of {}", names().join(", ")),
            )
        })?;
    // Written above; the parameter-count test reads every one.
    Ok(serde_json::from_value(value).expect("the shapes' configs are valid config.json values"))
}

/// Every weight of `cfg`'s checkpoint (the names a Hugging Face checkpoint
/// uses), drawn from `seed`: normal(0, 0.02) matrices, norms 1, biases 0.
pub fn random_weights(
    cfg: &ModelConfig,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let (h, q, kv) = (
        cfg.hidden_size,
        cfg.num_attention_heads * cfg.head_dim(),
        cfg.kv_heads() * cfg.head_dim(),
    );
    let mut shapes: Vec<(String, Vec<usize>)> =
        vec![("model.embed_tokens.weight".into(), vec![cfg.vocab_size, h])];
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let mut layer = vec![
            ("self_attn.q_proj.weight", vec![q, h]),
            ("self_attn.k_proj.weight", vec![kv, h]),
            ("self_attn.v_proj.weight", vec![kv, h]),
            ("self_attn.o_proj.weight", vec![h, q]),
            ("mlp.gate_proj.weight", vec![cfg.intermediate_size, h]),
            ("mlp.up_proj.weight", vec![cfg.intermediate_size, h]),
            ("mlp.down_proj.weight", vec![h, cfg.intermediate_size]),
            ("input_layernorm.weight", vec![h]),
            ("post_attention_layernorm.weight", vec![h]),
        ];
        if cfg.qkv_bias() {
            layer.extend([
                ("self_attn.q_proj.bias", vec![q]),
                ("self_attn.k_proj.bias", vec![kv]),
                ("self_attn.v_proj.bias", vec![kv]),
            ]);
        }
        if cfg.qk_norm() {
            let d = cfg.head_dim();
            layer.extend([
                ("self_attn.q_norm.weight", vec![d]),
                ("self_attn.k_norm.weight", vec![d]),
            ]);
        }
        shapes.extend(layer.into_iter().map(|(n, s)| (format!("{p}.{n}"), s)));
    }
    shapes.push(("model.norm.weight".into(), vec![h]));
    if !cfg.tie_word_embeddings {
        shapes.push(("lm_head.weight".into(), vec![cfg.vocab_size, h]));
    }
    let mut out = HashMap::with_capacity(shapes.len());
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            // One stream per tensor: the same seed gives the same weights
            // whatever the order tensors are drawn in.
            let mut rng = Rng::derive(seed, &name);
            (0..n).map(|_| (0.02 * rng.normal()) as f32).collect()
        };
        let t = Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(dtype)?;
        out.insert(name, t.to_device(device)?);
    }
    Ok(out)
}

/// Writes a model folder of the named shape into `dir` (config, random
/// weights stored in bf16, a stand-in tokenizer) unless one is there, and
/// returns `dir`: what `Trainable::load`, `load_local` and transformers'
/// `from_pretrained` read.
pub fn write_model(name: &str, dir: &std::path::Path, seed: u64) -> Result<std::path::PathBuf> {
    let cfg = config(name)?;
    if !dir.join("model.safetensors").exists() {
        let weights = random_weights(&cfg, seed, DType::BF16, &Device::Cpu)?;
        crate::tiny::write_folder(dir, &cfg, &weights)?;
    }
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_have_the_published_parameter_counts() {
        // The counts the model cards publish (embedding included, tied once).
        for (name, params) in [
            ("qwen2.5-0.5b", 494_032_768u64),
            ("qwen2.5-1.5b", 1_543_714_304),
            ("llama-3.2-1b", 1_235_814_400),
            ("qwen2.5-7b", 7_615_616_512),
        ] {
            assert_eq!(config(name).expect("config").parameters(), params, "{name}");
        }
        let err = config("gpt-5").expect_err("unknown");
        let Some(spectrum_core::Fix::Say { text }) = spectrum_core::Explain::fix(&err) else {
            panic!("no fix for {err}")
        };
        assert!(text.contains("qwen2.5-0.5b"), "{text}");
    }

    #[test]
    fn random_weights_load_and_run_a_forward_pass() {
        // One layer of the 0.5B shape (the full vocabulary), on the CPU.
        let mut cfg = config("qwen2.5-0.5b").expect("config");
        cfg.num_hidden_layers = 1;
        let w = random_weights(&cfg, 7, DType::F32, &Device::Cpu).expect("weights");
        let n: usize = w.values().map(|t| t.elem_count()).sum();
        assert_eq!(n as u64, cfg.parameters());
        let again = random_weights(&cfg, 7, DType::F32, &Device::Cpu).expect("weights");
        let a = w["model.layers.0.mlp.up_proj.weight"]
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>());
        let b = again["model.layers.0.mlp.up_proj.weight"]
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>());
        assert_eq!(a.expect("a"), b.expect("b"), "same seed, same weights");
        let vb = candle_nn::VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
        let mut model = crate::models::CausalLm::load(&cfg, vb, None).expect("model");
        let ids = Tensor::new(&[[1u32, 2, 3, 4]], &Device::Cpu).expect("ids");
        let logits = model.forward(&ids, None).expect("forward");
        assert_eq!(logits.dims(), [1, 4, 151936]);
        let v: Vec<f32> = logits
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("values");
        assert!(v.iter().all(|x| x.is_finite()));
    }
}
