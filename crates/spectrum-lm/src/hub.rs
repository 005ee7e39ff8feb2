//! Downloads from the Hugging Face hub into its usual cache (`HF_HOME`,
//! `HF_ENDPOINT` and `HF_TOKEN` are honoured). Only what loading needs is
//! fetched: the config, tokenizer files and safetensors weights.

use std::path::PathBuf;

use crate::{LmError, Result};

fn hub_error(repo: &str, e: impl std::fmt::Display) -> LmError {
    LmError::Hub {
        repo: repo.to_string(),
        message: e.to_string(),
    }
}

/// `repo` on the hub, with the environment's settings.
fn hub_repo(repo: &str) -> Result<hf_hub::api::sync::ApiRepo> {
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(false)
        .with_retries(0)
        .build()
        .map_err(|e| hub_error(repo, e))?;
    Ok(api.model(repo.to_string()))
}

/// Downloads `repo` (e.g. `HuggingFaceTB/SmolLM2-135M-Instruct`) and returns
/// the local snapshot folder, which loads like any model folder.
pub fn download(repo: &str, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let model = hub_repo(repo)?;
    let info = model.info().map_err(|e| hub_error(repo, e))?;
    let wanted = |f: &str| {
        matches!(
            f,
            "config.json"
                | "tokenizer.json"
                | "tokenizer_config.json"
                | "generation_config.json"
                | "model.safetensors.index.json"
        ) || (f.ends_with(".safetensors") && !f.contains('/'))
    };
    let files: Vec<String> = info
        .siblings
        .into_iter()
        .map(|s| s.rfilename)
        .filter(|f| wanted(f))
        .collect();
    if !files.iter().any(|f| f.ends_with(".safetensors")) {
        return Err(hub_error(repo, "the repository has no safetensors weights"));
    }
    let mut config = None;
    for (i, f) in files.iter().enumerate() {
        progress(&format!(
            "downloading {repo}/{f} ({}/{})",
            i + 1,
            files.len()
        ));
        let path = model.get(f).map_err(|e| hub_error(repo, e))?;
        if f == "config.json" {
            config = Some(path);
        }
    }
    let config = config.ok_or_else(|| hub_error(repo, "the repository has no config.json"))?;
    Ok(config.parent().map(PathBuf::from).unwrap_or_default())
}

/// Downloads only the tokenizer files of `repo` (for a model served remotely);
/// returns the snapshot folder holding them.
pub fn download_tokenizer(repo: &str, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let model = hub_repo(repo)?;
    progress(&format!("downloading {repo}/tokenizer.json"));
    let path = model
        .get("tokenizer.json")
        .map_err(|e| hub_error(repo, e))?;
    // Optional: chat template, BOS/EOS.
    let _ = model.get("tokenizer_config.json");
    Ok(path.parent().map(PathBuf::from).unwrap_or_default())
}
