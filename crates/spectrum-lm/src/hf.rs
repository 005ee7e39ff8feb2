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
use crate::peft::AdapterDir;
use crate::tokenizer::TextTokenizer;
use crate::{LmError, Result};

/// A checked model folder: its config and the weight files to read.
#[derive(Debug, Clone)]
pub struct ModelDir {
    /// The folder with config, weights and tokenizer (an adapter's base model).
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub weights: Vec<PathBuf>,
    /// A PEFT LoRA adapter merged into the weights when they load.
    pub adapter: Option<AdapterDir>,
}

impl ModelDir {
    /// Checks that `dir` holds a model we can load, naming what is missing.
    /// A PEFT adapter folder opens as its base model plus the adapter.
    pub fn open(dir: &Path) -> Result<ModelDir> {
        if AdapterDir::is_adapter(dir) {
            let adapter = AdapterDir::open(dir)?;
            let mut base = ModelDir::open(&adapter.base)?;
            base.adapter = Some(adapter);
            return Ok(base);
        }
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
            adapter: None,
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
                let name = if self.config.multimodal {
                    // Only the language model of a multimodal checkpoint:
                    // `language_model.model.X` (or `model.language_model.X`) -> `model.X`.
                    match text_weight_name(&name) {
                        Some(n) => n,
                        None => continue,
                    }
                } else {
                    name
                };
                all.insert(name, t.to_dtype(dtype)?);
            }
        }
        if let Some(adapter) = &self.adapter {
            adapter.merge_into(&mut all)?;
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
        let mut model = CausalLm::load(&self.config, vb, adapters).map_err(|e| match e {
            LmError::Candle(c) => {
                LmError::bad(&self.dir, format!("weights do not match config.json: {c}"))
            }
            other => other,
        })?;
        // A folder imported from GGUF keeps its blocks for the decode
        // products (f32 CPU weights only; a merged adapter changed them).
        if dtype == DType::F32 && device.is_cpu() && self.adapter.is_none() {
            model.attach_blocks(&crate::blocks::read(&self.dir)?);
        }
        Ok((model, TextTokenizer::from_dir(&self.dir)?))
    }

    /// The dtype the weights are stored in (of the first tensor of the first file).
    pub fn stored_dtype(&self) -> Result<DType> {
        let path = &self.weights[0];
        let header = safetensors_header(path)?;
        let dtype = header
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| *k != "__metadata__"))
            .and_then(|(_, v)| v.get("dtype"))
            .and_then(|d| d.as_str())
            .unwrap_or("F32");
        Ok(match dtype {
            "BF16" => DType::BF16,
            "F16" => DType::F16,
            _ => DType::F32,
        })
    }

    /// SHA-256 over the config and weight files, in order (hex).
    pub fn content_hash(&self) -> Result<String> {
        let mut hasher = Sha256::new();
        let mut files = vec![self.dir.join("config.json")];
        files.extend(self.weights.iter().cloned());
        files.extend(self.adapter.as_ref().map(AdapterDir::weights_path));
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

/// The JSON header of a safetensors file (read without the tensors).
fn safetensors_header(path: &Path) -> Result<serde_json::Value> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| LmError::io(path, e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|e| LmError::io(path, e))?;
    let len = u64::from_le_bytes(len);
    if len > 100_000_000 {
        return Err(LmError::bad(
            path,
            "not a safetensors file (header too long)",
        ));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| LmError::bad(path, format!("truncated safetensors header ({e})")))?;
    serde_json::from_slice(&header)
        .map_err(|e| LmError::bad(path, format!("corrupt safetensors header ({e})")))
}

/// The text-model name of a multimodal Gemma 3 weight; `None` for vision weights.
fn text_weight_name(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("language_model.") {
        return Some(rest.to_string());
    }
    if let Some(rest) = name.strip_prefix("model.language_model.") {
        return Some(format!("model.{rest}"));
    }
    (name == "lm_head.weight").then(|| name.to_string())
}
