//! LoRA adapters in Hugging Face PEFT's layout: a folder with
//! `adapter_config.json` and `adapter_model.safetensors`, whose tensors are
//! named `base_model.model.{module}.lora_A.weight` / `.lora_B.weight`.
//!
//! We write them (training exports) and read them: an adapter folder loads as
//! its base model with `W + scale · B A` merged into each adapted weight.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use serde_json::json;

use crate::lora::LoraConfig;
use crate::{LmError, Result};

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// The fields of `adapter_config.json` we read.
#[derive(Debug, Clone, Deserialize)]
struct AdapterConfigFile {
    #[serde(default)]
    peft_type: Option<String>,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    base_model_name_or_path: Option<String>,
    /// Module name (`embed_tokens`, `lm_head`) -> token ids whose rows the
    /// adapter replaces (PEFT's trainable tokens).
    #[serde(default)]
    trainable_token_indices: Option<HashMap<String, Vec<u32>>>,
}

/// Token ids per module whose rows an adapter replaces.
pub type TokenIndices = HashMap<String, Vec<u32>>;

/// A PEFT LoRA adapter folder.
#[derive(Debug, Clone)]
pub struct AdapterDir {
    pub dir: PathBuf,
    /// The base model's folder, from `base_model_name_or_path` (absolute, or
    /// relative to the adapter folder).
    pub base: PathBuf,
    pub scale: f64,
    pub token_indices: TokenIndices,
}

impl AdapterDir {
    pub fn is_adapter(dir: &Path) -> bool {
        dir.join(CONFIG_FILE).exists() && !dir.join("config.json").exists()
    }

    pub fn open(dir: &Path) -> Result<AdapterDir> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| LmError::io(&path, e))?;
        let cfg: AdapterConfigFile = serde_json::from_str(&text)
            .map_err(|e| LmError::bad(&path, format!("not a PEFT adapter config: {e}")))?;
        if cfg.peft_type.as_deref().is_some_and(|t| t != "LORA") || cfg.use_dora {
            return Err(LmError::Unsupported {
                path,
                message: "only LoRA adapters (peft_type LORA, without DoRA) can be loaded".into(),
            });
        }
        let base = cfg
            .base_model_name_or_path
            .ok_or_else(|| LmError::Missing {
                path: path.clone(),
                what: "base_model_name_or_path".into(),
                fix: "set it to the base model's folder".into(),
            })?;
        let base = dir.join(&base);
        if !base.is_dir() {
            return Err(LmError::Missing {
                path: path.clone(),
                what: format!("the base model folder {}", base.display()),
                fix: "set base_model_name_or_path to a local Hugging Face folder".into(),
            });
        }
        if !dir.join(WEIGHTS_FILE).exists() {
            return Err(LmError::Missing {
                path: dir.to_path_buf(),
                what: WEIGHTS_FILE.into(),
                fix: "an adapter folder holds adapter_model.safetensors beside its config".into(),
            });
        }
        let scale = if cfg.use_rslora {
            cfg.lora_alpha / (cfg.r as f64).sqrt()
        } else {
            cfg.lora_alpha / cfg.r as f64
        };
        Ok(AdapterDir {
            dir: dir.to_path_buf(),
            base,
            scale,
            token_indices: cfg.trainable_token_indices.unwrap_or_default(),
        })
    }

    pub fn weights_path(&self) -> PathBuf {
        self.dir.join(WEIGHTS_FILE)
    }

    /// Adds `scale · B A` to every adapted weight of `tensors` (base weights by
    /// checkpoint name).
    pub fn merge_into(&self, tensors: &mut HashMap<String, Tensor>) -> Result<()> {
        let path = self.weights_path();
        let adapter = candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| {
            LmError::bad(
                &path,
                format!("truncated or corrupt safetensors file ({e})"),
            )
        })?;
        merge(tensors, &adapter, self.scale, &self.token_indices)
            .map_err(|e| LmError::bad(&path, e.to_string()))
    }
}

/// `W += scale · B A` for each `base_model.model.{m}.lora_A.weight` in
/// `adapter`; rows `token_indices[m]` of `W` replaced by `{m}.token_adapter.trainable_tokens_delta`.
pub fn merge(
    tensors: &mut HashMap<String, Tensor>,
    adapter: &HashMap<String, Tensor>,
    scale: f64,
    token_indices: &TokenIndices,
) -> Result<()> {
    for (name, rows) in adapter {
        let Some(module) = name
            .strip_suffix(".token_adapter.trainable_tokens_delta")
            .map(|m| m.strip_prefix("base_model.model.").unwrap_or(m))
        else {
            continue;
        };
        let short = module.rsplit('.').next().unwrap_or(module);
        let ids = token_indices.get(short).ok_or_else(|| {
            LmError::tensor(
                name,
                format_args!("adapter_config.json lists no trainable_token_indices for {short}"),
            )
        })?;
        let weight_name = format!("{module}.weight");
        let w = tensors.get(&weight_name).ok_or_else(|| {
            LmError::tensor(
                name,
                format_args!("replaces rows of {weight_name}, which the base model lacks"),
            )
        })?;
        let replaced = replace_rows(w, ids, rows).map_err(|e| {
            LmError::tensor(name, format_args!("cannot go into {weight_name}: {e}"))
        })?;
        tensors.insert(weight_name, replaced);
    }
    for (name, a) in adapter {
        let Some(module) = name
            .strip_suffix(".lora_A.weight")
            .map(|m| m.strip_prefix("base_model.model.").unwrap_or(m))
        else {
            continue;
        };
        let b_name = name.replace(".lora_A.", ".lora_B.");
        let b = adapter
            .get(&b_name)
            .ok_or_else(|| LmError::tensor(name, format_args!("has no {b_name}")))?;
        let weight_name = format!("{module}.weight");
        let w = tensors.get(&weight_name).ok_or_else(|| {
            LmError::tensor(
                name,
                format_args!("adapts {weight_name}, which the base model lacks"),
            )
        })?;
        let merged = (|| {
            let dtype = w.dtype();
            let delta = b
                .to_device(w.device())?
                .to_dtype(DType::F32)?
                .matmul(&a.to_device(w.device())?.to_dtype(DType::F32)?)?;
            (w.to_dtype(DType::F32)? + (delta * scale)?)?.to_dtype(dtype)
        })()
        .map_err(|e| LmError::tensor(name, format_args!("cannot merge into {weight_name}: {e}")))?;
        tensors.insert(weight_name, merged);
    }
    Ok(())
}

/// `w` with row `ids[i]` set to row `i` of `rows`.
fn replace_rows(w: &Tensor, ids: &[u32], rows: &Tensor) -> candle_core::Result<Tensor> {
    let (n, h) = rows.dims2()?;
    let (v, wh) = w.dims2()?;
    if n != ids.len() || h != wh || ids.iter().any(|&i| i as usize >= v) {
        candle_core::bail!(
            "{n} x {h} rows for {} ids into a {:?} weight",
            ids.len(),
            w.dims()
        );
    }
    let rows = rows.to_device(w.device())?.to_dtype(w.dtype())?;
    let mut w = w.clone();
    for (i, &id) in ids.iter().enumerate() {
        let id = id as usize;
        w = w.slice_assign(&[id..id + 1, 0..h], &rows.narrow(0, i, 1)?)?;
    }
    Ok(w)
}

/// Writes a PEFT adapter folder: `tensors` named as PEFT names them, `config`
/// the LoRA settings, `base` the base model's folder, `token_rows` the ids
/// whose embedding (and LM-head) rows the adapter holds, if any.
pub fn write(
    dir: &Path,
    tensors: &HashMap<String, Tensor>,
    config: &LoraConfig,
    base: &Path,
    token_rows: Option<std::ops::Range<usize>>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| LmError::io(dir, e))?;
    let base = std::path::absolute(base).map_err(|e| LmError::io(base, e))?;
    let cfg = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base.to_string_lossy(),
        "r": config.rank,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": config.targets,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "use_rslora": false,
        "use_dora": false,
        "modules_to_save": null,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": null,
        "trainable_token_indices": token_rows.map(|rows| {
            let ids: Vec<usize> = rows.collect();
            let mut modules = serde_json::Map::new();
            modules.insert("embed_tokens".into(), json!(ids));
            if tensors.contains_key(crate::lora::HEAD_ROWS) {
                modules.insert("lm_head".into(), json!(ids));
            }
            modules
        }),
    });
    let path = dir.join(CONFIG_FILE);
    let text =
        serde_json::to_string_pretty(&cfg).map_err(|e| LmError::bad(&path, e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| LmError::io(&path, e))?;
    candle_core::safetensors::save(tensors, dir.join(WEIGHTS_FILE))?;
    Ok(())
}
