//! Hugging Face model folders: `config.json`, single or sharded safetensors,
//! `tokenizer.json` and `tokenizer_config.json`. Only safetensors are read
//! (never pickle).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use sha2::{Digest, Sha256};

use crate::config::ModelConfig;
use crate::lora::AdapterSite;
use crate::models::CausalLm;
use crate::tokenizer::TextTokenizer;
use crate::{LmError, Result};

/// A checked model folder: its config and the weight files to read.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub weights: Vec<PathBuf>,
}

impl ModelDir {
    /// Checks that `dir` holds a model we can load, naming what is missing.
    pub fn open(dir: &Path) -> Result<ModelDir> {
        if !dir.is_dir() {
            return Err(LmError::Missing {
                path: dir.to_path_buf(),
                what: "the model folder".into(),
                fix: "pass a Hugging Face model folder, a .gguf file, or `default`".into(),
            });
        }
        let config_path = dir.join("config.json");
        if !config_path.exists() {
            return Err(LmError::Missing {
                path: dir.to_path_buf(),
                what: "config.json".into(),
                fix: "a Hugging Face model folder holds config.json beside its weights".into(),
            });
        }
        let config = ModelConfig::from_file(&config_path)?;
        let weights = weight_files(dir)?;
        if !dir.join("tokenizer.json").exists() {
            return Err(LmError::Missing {
                path: dir.to_path_buf(),
                what: "tokenizer.json".into(),
                fix: "copy the model's tokenizer.json into the folder".into(),
            });
        }
        Ok(ModelDir {
            dir: dir.to_path_buf(),
            config,
            weights,
        })
    }

    /// Reads every weight tensor, converted to `dtype`.
    pub fn load_tensors(&self, dtype: DType, device: &Device) -> Result<HashMap<String, Tensor>> {
        let mut all = HashMap::new();
        for path in &self.weights {
            let bytes = std::fs::read(path).map_err(|e| LmError::io(path, e))?;
            let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| {
                LmError::bad(
                    path,
                    format!("truncated or corrupt safetensors file ({e}); download it again"),
                )
            })?;
            for (name, t) in tensors {
                all.insert(name, t.to_dtype(dtype)?);
            }
        }
        Ok(all)
    }

    /// Loads the model (and its tokenizer). `adapters` adds LoRA adapters.
    pub fn load(
        &self,
        dtype: DType,
        device: &Device,
        adapters: Option<&AdapterSite>,
    ) -> Result<(CausalLm, TextTokenizer)> {
        let tensors = self.load_tensors(dtype, device)?;
        let vb = VarBuilder::from_tensors(tensors, dtype, device);
        let model = CausalLm::load(&self.config, vb, adapters).map_err(|e| match e {
            LmError::Candle(c) => {
                LmError::bad(&self.dir, format!("weights do not match config.json: {c}"))
            }
            other => other,
        })?;
        Ok((model, TextTokenizer::from_dir(&self.dir)?))
    }

    /// SHA-256 over the config and weight files, in order (hex).
    pub fn content_hash(&self) -> Result<String> {
        let mut hasher = Sha256::new();
        let mut files = vec![self.dir.join("config.json")];
        files.extend(self.weights.iter().cloned());
        for f in files {
            let mut file = std::fs::File::open(&f).map_err(|e| LmError::io(&f, e))?;
            std::io::copy(&mut file, &mut hasher).map_err(|e| LmError::io(&f, e))?;
        }
        Ok(format!("{:x}", hasher.finalize()))
    }
}

/// `model.safetensors`, or the shards listed in `model.safetensors.index.json`.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| LmError::io(&index, e))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| LmError::bad(&index, e.to_string()))?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| LmError::bad(&index, "no weight_map"))?;
        let mut files: Vec<PathBuf> = map
            .values()
            .filter_map(|f| f.as_str())
            .map(|f| dir.join(f))
            .collect();
        files.sort();
        files.dedup();
        if let Some(missing) = files.iter().find(|f| !f.exists()) {
            return Err(LmError::Missing {
                path: dir.to_path_buf(),
                what: format!("shard {}", missing.display()),
                fix: "download every shard listed in model.safetensors.index.json".into(),
            });
        }
        return Ok(files);
    }
    let pickle = ["pytorch_model.bin", "model.bin"]
        .iter()
        .any(|f| dir.join(f).exists());
    Err(LmError::Missing {
        path: dir.to_path_buf(),
        what: "safetensors weights (model.safetensors or a sharded index)".into(),
        fix: if pickle {
            "only safetensors are loaded (pickle files can run code); convert with `transformers` save_pretrained(safe_serialization=True)".into()
        } else {
            "download the model's .safetensors files into the folder".into()
        },
    })
}
