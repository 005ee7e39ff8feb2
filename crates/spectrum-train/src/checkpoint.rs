//! Checkpoints: `checkpoints/step-NNNNNN/` with the trainable weights
//! (`trainable.safetensors`: a LoRA adapter under PEFT's names, or every
//! weight), the optimizer moments (`optimizer.safetensors`) and `state.json`
//! (step, data cursor, optimizer step count, elapsed time, spec hash).
//!
//! A checkpoint is written into a temporary folder and renamed into place, so
//! a folder named `step-*` is always complete, even after a kill -9.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::data::Cursor;
use crate::optim::AdamW;
use crate::{Result, TrainError};

pub const TRAINABLE: &str = "trainable.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "state.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub step: usize,
    pub cursor: Cursor,
    pub adam_t: u64,
    pub elapsed_s: f64,
    pub spec_hash: String,
}

/// A complete checkpoint folder.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
}

fn bad(path: &Path, message: impl Into<String>) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |e| bad(path, e.to_string())
}

impl Checkpoint {
    /// The step of a `step-NNNNNN` folder.
    pub fn step_of(dir: &Path) -> Option<usize> {
        dir.file_name()?
            .to_str()?
            .strip_prefix("step-")?
            .parse()
            .ok()
    }

    pub fn state(&self) -> Result<State> {
        let path = self.dir.join(STATE);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text).map_err(|e| bad(&path, format!("corrupt state ({e})")))
    }

    /// The trainable tensors, on the CPU.
    pub fn trainable(&self) -> Result<HashMap<String, Tensor>> {
        let path = self.dir.join(TRAINABLE);
        candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| bad(&path, format!("corrupt weights ({e})")))
    }

    /// Loads weights and optimizer state into a fresh run; returns the state.
    pub fn restore(
        &self,
        names: &[String],
        vars: &[Var],
        opt: &mut AdamW,
        spec_hash: &str,
    ) -> Result<State> {
        let state = self.state()?;
        if state.spec_hash != spec_hash {
            return Err(bad(
                &self.dir,
                "the checkpoint was written with other settings; a run resumes only with its own spec",
            ));
        }
        let weights = self.trainable()?;
        for (name, var) in names.iter().zip(vars) {
            let t = weights
                .get(name)
                .ok_or_else(|| bad(&self.dir, format!("no weights for {name}")))?;
            var.set(&t.to_device(var.device())?.to_dtype(var.dtype())?)
                .map_err(|e| bad(&self.dir, format!("{name}: {e}")))?;
        }
        let path = self.dir.join(OPTIMIZER);
        let moments = candle_core::safetensors::load(&path, &vars[0].device().clone())
            .map_err(|e| bad(&path, format!("corrupt optimizer state ({e})")))?;
        opt.load_state(names, vars, &moments, state.adam_t)
            .map_err(|e| bad(&path, e.to_string()))?;
        Ok(state)
    }
}

/// The newest complete checkpoint in `dir`, if any.
pub fn latest(dir: &Path) -> Result<Option<Checkpoint>> {
    Ok(list(dir)?.pop())
}

/// Complete checkpoints in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<Checkpoint>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(STATE).exists())
        .filter_map(|p| Checkpoint::step_of(&p).map(|s| (s, p)))
        .collect();
    found.sort();
    Ok(found
        .into_iter()
        .map(|(_, dir)| Checkpoint { dir })
        .collect())
}

/// Writes a checkpoint (temporary folder, then rename) and keeps the newest `keep`.
pub fn save(
    dir: &Path,
    trainable: &HashMap<String, Tensor>,
    optimizer: &HashMap<String, Tensor>,
    state: &State,
    keep: usize,
) -> Result<PathBuf> {
    let target = dir.join(format!("step-{:06}", state.step));
    let tmp = dir.join(format!(".tmp-step-{:06}", state.step));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    candle_core::safetensors::save(trainable, tmp.join(TRAINABLE))?;
    candle_core::safetensors::save(optimizer, tmp.join(OPTIMIZER))?;
    let state_path = tmp.join(STATE);
    let text = serde_json::to_string_pretty(state).map_err(|e| bad(&state_path, e.to_string()))?;
    std::fs::write(&state_path, text).map_err(io(&state_path))?;
    for f in [TRAINABLE, OPTIMIZER, STATE] {
        let p = tmp.join(f);
        std::fs::File::open(&p)
            .and_then(|f| f.sync_all())
            .map_err(io(&p))?;
    }
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&tmp, &target).map_err(io(&target))?;
    let all = list(dir)?;
    for old in all.iter().take(all.len().saturating_sub(keep.max(1))) {
        let _ = std::fs::remove_dir_all(&old.dir);
    }
    Ok(target)
}
