//! Shared helpers: tiny models whose weights follow a formula that
//! scripts/record_reference.py computes too, so no weights are stored.

#![allow(dead_code)]

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use spectrum_lm::ModelConfig;

#[derive(Debug)]
pub struct Reference {
    pub config: ModelConfig,
    pub shapes: Vec<(String, Vec<usize>)>,
    pub ids: Vec<Vec<u32>>,
    pub mask: Vec<Vec<u32>>,
    pub logits: Vec<Vec<Vec<f64>>>,
    /// The config as transformers >= 5 writes it (`rope_parameters`).
    pub saved_config: serde_json::Value,
    /// Gemma 3 only: how llama.cpp writes the model as GGUF.
    pub gguf: serde_json::Value,
}

pub fn reference(family: &str) -> Reference {
    // The mode every front end computes in (the model's forward pass sets it
    // too; tests that run ops directly start here).
    spectrum_lm::fpu::flush_subnormals();
    let path = format!(
        "{}/tests/reference/tiny_{family}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("reference file"))
            .expect("json");
    let shapes = v["shapes"]
        .as_object()
        .expect("shapes")
        .iter()
        .map(|(k, s)| {
            (
                k.clone(),
                s.as_array()
                    .expect("shape")
                    .iter()
                    .map(|d| d.as_u64().expect("dim") as usize)
                    .collect(),
            )
        })
        .collect();
    Reference {
        config: serde_json::from_value(v["config"].clone()).expect("config"),
        shapes,
        ids: serde_json::from_value(v["ids"].clone()).expect("ids"),
        mask: serde_json::from_value(v["mask"].clone()).expect("mask"),
        logits: serde_json::from_value(v["logits"].clone()).expect("logits"),
        saved_config: v["saved_config"].clone(),
        gguf: v["gguf"].clone(),
    }
}

/// value[k] = scale * sin(0.37 k + phase(name)), as in record_reference.py.
pub fn weight(name: &str, shape: &[usize], dtype: DType) -> Tensor {
    let phase = (name.bytes().map(u64::from).sum::<u64>() % 1000) as f64 * 0.1;
    let n: usize = shape.iter().product();
    let values: Vec<f64> = (0..n)
        .map(|k| {
            let s = (0.37 * k as f64 + phase).sin();
            if name.ends_with("norm.weight") {
                1.0 + 0.1 * s
            } else if name.ends_with(".bias") {
                0.05 * s
            } else {
                0.08 * s
            }
        })
        .collect();
    let t = Tensor::from_vec(values, shape, &Device::Cpu).expect("tensor");
    // Like the script: computed in f64, rounded to f32 first.
    t.to_dtype(DType::F32)
        .and_then(|t| t.to_dtype(dtype))
        .expect("dtype")
}

pub fn tensors(r: &Reference, dtype: DType) -> HashMap<String, Tensor> {
    r.shapes
        .iter()
        .map(|(name, shape)| (name.clone(), weight(name, shape, dtype)))
        .collect()
}

pub fn vb(r: &Reference, dtype: DType) -> VarBuilder<'static> {
    VarBuilder::from_tensors(tensors(r, dtype), dtype, &Device::Cpu)
}

/// Weights as trainable variables (for gradient checks).
pub fn varmap(r: &Reference, dtype: DType) -> VarMap {
    let map = VarMap::new();
    {
        let mut data = map.data().lock().expect("lock");
        for (name, t) in tensors(r, dtype) {
            data.insert(name, Var::from_tensor(&t).expect("var"));
        }
    }
    map
}

pub fn ids_tensor(ids: &[Vec<u32>]) -> Tensor {
    let flat: Vec<u32> = ids.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (ids.len(), ids[0].len()), &Device::Cpu).expect("ids")
}

pub fn mask_tensor(mask: &[Vec<u32>]) -> Tensor {
    let flat: Vec<f32> = mask.iter().flatten().map(|&m| m as f32).collect();
    Tensor::from_vec(flat, (mask.len(), mask[0].len()), &Device::Cpu).expect("mask")
}

/// |a - b| <= tol * max(1, |b|) for every element.
pub fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * b.abs().max(1.0),
            "{what}[{i}]: got {a}, want {b} (tolerance {tol})"
        );
    }
}

/// The model's logits on the reference ids equal transformers' within 1e-4
/// relative, at every unpadded position.
pub fn assert_matches_reference(
    model: &mut spectrum_lm::models::CausalLm,
    r: &Reference,
    what: &str,
) {
    use candle_core::IndexOp;
    let logits = model
        .forward(&ids_tensor(&r.ids), Some(&mask_tensor(&r.mask)))
        .expect("forward");
    for (b, row) in r.mask.iter().enumerate() {
        for (t, &m) in row.iter().enumerate() {
            if m == 1 {
                let got: Vec<f64> = logits
                    .i((b, t))
                    .and_then(|x| x.to_dtype(DType::F64))
                    .and_then(|x| x.to_vec1())
                    .expect("row");
                assert_close(
                    &got,
                    &r.logits[b][t],
                    1e-4,
                    &format!("{what} logits[{b}][{t}]"),
                );
            }
        }
    }
}

#[allow(unused_imports)]
pub use spectrum_lm::tiny::{MERGES, vocab};

/// A byte-level BPE tokenizer with ChatML specials, built in code.
pub fn tiny_tokenizer(chat_template: Option<&str>) -> spectrum_lm::tokenizer::TextTokenizer {
    let json = spectrum_lm::tiny::tokenizer_json();
    let inner = tokenizers::Tokenizer::from_bytes(json.to_string().as_bytes()).expect("tokenizer");
    let config = spectrum_lm::tokenizer::TokenizerConfig {
        chat_template: chat_template.map(|t| serde_json::Value::String(t.into())),
        eos_token: Some(serde_json::Value::String("<|im_end|>".into())),
        ..Default::default()
    };
    spectrum_lm::tokenizer::TextTokenizer::new(inner, &config)
}

/// The largest absolute difference between two tensors.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("diff")
}
