//! Exports of a trained checkpoint: a LoRA adapter in PEFT's layout (loadable
//! with `peft` on the base model, and by `spectrum model add`), or a merged
//! Hugging Face folder (config, safetensors, tokenizer) that transformers loads.

use std::path::Path;

use candle_core::{DType, Device};
use spectrum_core::Problem;
use spectrum_lm::hf::ModelDir;
use spectrum_lm::peft;

use crate::checkpoint::Checkpoint;
use crate::spec::Method;
use crate::{Result, TrainError};

/// Tokenizer and generation files copied next to merged weights.
const SIDE_FILES: [&str; 6] = [
    spectrum_lm::added_tokens::MARKER,
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
];

/// Writes the LoRA adapter of `ckpt` as a PEFT folder in `out`.
pub fn export_peft(ckpt: &Checkpoint, method: &Method, base: &Path, out: &Path) -> Result<()> {
    let Method::Lora(cfg) = method else {
        return Err(Problem::setting(
            "this run fine-tuned every weight, so it has no adapter to export",
            "merged",
            "export the merged model instead",
        )
        .into());
    };
    let added = spectrum_lm::added_tokens::AddedTokens::read(base)?;
    peft::write(out, &ckpt.trainable()?, cfg, base, added.map(|a| a.ids()))?;
    Ok(())
}

/// Writes the base model with the checkpoint's weights (merged LoRA, or the
/// fully tuned weights) as a Hugging Face folder in `out`, in the base's dtype.
pub fn export_merged(ckpt: &Checkpoint, method: &Method, base: &Path, out: &Path) -> Result<()> {
    let md = ModelDir::open(base)?;
    let mut tensors = md.load_tensors(DType::F32, &Device::Cpu)?;
    let trained = ckpt.trainable()?;
    match method {
        Method::Lora(cfg) => peft::merge(
            &mut tensors,
            &trained,
            cfg.scale(),
            &token_indices(base, &trained)?,
        )
        .map_err(|e| TrainError::Checkpoint {
            path: ckpt.dir.clone(),
            message: e.to_string(),
        })?,
        Method::Full => {
            for (name, t) in trained {
                if !tensors.contains_key(&name) {
                    return Err(TrainError::Checkpoint {
                        path: ckpt.dir.clone(),
                        message: format!("{name} is not a weight of the base model"),
                    });
                }
                tensors.insert(name, t);
            }
        }
    }
    let dtype = md.stored_dtype()?;
    let tensors = tensors
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_dtype(dtype)?)))
        .collect::<candle_core::Result<std::collections::HashMap<_, _>>>()?;
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    candle_core::safetensors::save(&tensors, out.join("model.safetensors"))?;
    let cfg_path = md.dir.join("config.json");
    if md.config.multimodal {
        // Only the language model was loaded: describe the export as the text model.
        let mut cfg = serde_json::to_value(&md.config).map_err(|source| TrainError::Json {
            path: cfg_path.clone(),
            source,
        })?;
        if let Some(o) = cfg.as_object_mut() {
            o.retain(|_, v| !v.is_null());
        }
        let text = serde_json::to_string_pretty(&cfg).unwrap_or_default();
        let path = out.join("config.json");
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    } else {
        std::fs::copy(&cfg_path, out.join("config.json")).map_err(|e| io(&cfg_path, e))?;
    }
    for f in SIDE_FILES {
        let src = md.dir.join(f);
        if src.exists() {
            std::fs::copy(&src, out.join(f)).map_err(|e| io(&src, e))?;
        }
    }
    Ok(())
}

/// The rows a LoRA checkpoint's trainable tokens replace (the base's added tokens).
fn token_indices(
    base: &Path,
    trained: &std::collections::HashMap<String, candle_core::Tensor>,
) -> Result<peft::TokenIndices> {
    let Some(added) = spectrum_lm::added_tokens::AddedTokens::read(base)? else {
        return Ok(Default::default());
    };
    let ids: Vec<u32> = added.ids().map(|i| i as u32).collect();
    Ok([
        ("embed_tokens", spectrum_lm::lora::EMBED_ROWS),
        ("lm_head", spectrum_lm::lora::HEAD_ROWS),
    ]
    .into_iter()
    .filter(|(_, name)| trained.contains_key(*name))
    .map(|(module, _)| (module.to_string(), ids.clone()))
    .collect())
}

fn io(path: &Path, e: std::io::Error) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}
