//! The PEFT fixture: a tiny base model given ChatML turn tokens (METHOD.md §2),
//! a LoRA adapter with fixed values on every projection and on the new tokens'
//! embedding rows (PEFT's trainable tokens), exported by our exporters. `scripts/check_peft.py` loads
//! the adapter with `peft` and records the logits the tests compare against.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use spectrum_lm::added_tokens::RowInit;
use spectrum_lm::lora::{LoraConfig, PROJECTIONS};
use spectrum_suite::Rng;
use spectrum_train::{Checkpoint, Method, checkpoint, export};

/// 262 and 263 are the added <|im_start|> and <|im_end|>.
pub const IDS: [[u32; 12]; 2] = [
    [262, 40, 41, 42, 263, 10, 11, 200, 201, 202, 3, 4],
    [1, 90, 91, 92, 93, 2, 50, 60, 70, 80, 5, 6],
];

pub fn method() -> Method {
    Method::Lora(LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: PROJECTIONS.map(String::from).to_vec(),
    })
}

/// Writes `base/`, `adapter/` (PEFT export) and `merged/` into `dir`.
pub fn build(dir: &Path) {
    let (bare, base) = (dir.join("bare"), dir.join("base"));
    spectrum_lm::tiny::write_model(&bare, 64, 2, 5).expect("tiny model");
    spectrum_lm::tiny::strip_turn_tokens(&bare).expect("strip");
    let tokens = ["<|im_start|>".to_string(), "<|im_end|>".to_string()];
    spectrum_lm::added_tokens::add_tokens(&bare, &base, &tokens, RowInit::Mean).expect("tokens");
    let cfg = spectrum_lm::tiny::config(64, 2);
    let (h, kv, inner) = (
        cfg.hidden_size,
        cfg.kv_heads() * cfg.head_dim(),
        cfg.intermediate_size,
    );
    let mut tensors = HashMap::new();
    for layer in 0..cfg.num_hidden_layers {
        for (module, fan_in, fan_out) in [
            ("self_attn.q_proj", h, h),
            ("self_attn.k_proj", h, kv),
            ("self_attn.v_proj", h, kv),
            ("self_attn.o_proj", h, h),
            ("mlp.gate_proj", h, inner),
            ("mlp.up_proj", h, inner),
            ("mlp.down_proj", inner, h),
        ] {
            let prefix = format!("base_model.model.model.layers.{layer}.{module}");
            for (part, shape) in [("lora_A", (4, fan_in)), ("lora_B", (fan_out, 4))] {
                let name = format!("{prefix}.{part}.weight");
                let mut rng = Rng::derive(1, &name);
                let values: Vec<f32> = (0..shape.0 * shape.1)
                    .map(|_| (rng.f64() * 0.4 - 0.2) as f32)
                    .collect();
                tensors.insert(
                    name,
                    Tensor::from_vec(values, shape, &Device::Cpu).expect("tensor"),
                );
            }
        }
    }
    let mut rng = Rng::derive(1, spectrum_lm::lora::EMBED_ROWS);
    let rows: Vec<f32> = (0..2 * h).map(|_| (rng.f64() * 0.4 - 0.2) as f32).collect();
    tensors.insert(
        spectrum_lm::lora::EMBED_ROWS.to_string(),
        Tensor::from_vec(rows, (2, h), &Device::Cpu).expect("rows"),
    );
    let state = checkpoint::State {
        step: 1,
        cursor: Default::default(),
        adam_t: 1,
        elapsed_s: 0.0,
        spec_hash: String::new(),
    };
    let ckpt_dir = checkpoint::save(
        &dir.join("checkpoints"),
        &tensors,
        &HashMap::new(),
        &state,
        1,
    )
    .expect("checkpoint");
    let ckpt = Checkpoint { dir: ckpt_dir };
    export::export_peft(&ckpt, &method(), &base, &dir.join("adapter")).expect("peft export");
    export::export_merged(&ckpt, &method(), &base, &dir.join("merged")).expect("merged export");
}
