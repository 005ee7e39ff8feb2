//! Job bundles for distributed engines: a run's rendered data and a launcher.
//!
//! `write_trl_bundle` writes every micro-batch of a run, grouped by optimiser
//! step and in training order, as token ids and loss masks exactly as
//! [`train`](crate::train) would consume them ([`planned_steps`]), the fixed
//! held-out sample, the run's settings (`job.json`), and a Hugging Face TRL +
//! accelerate launcher (`train.py`, `launch.sh`, accelerate configs for CPU,
//! multi-GPU and DeepSpeed ZeRO-3).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use spectrum_core::Problem;
use spectrum_lm::PromptFormat;
use spectrum_lm::tokenizer::TextTokenizer;
use spectrum_suite::Message;

use crate::data::SourceSequence;
use crate::spec::{Decay, Method, RunSpec};
use crate::trainer::planned_steps;
use crate::{Result, TrainError};

/// What a bundle is made from.
#[derive(Debug)]
pub struct JobInput<'a> {
    pub run_id: i64,
    pub run_name: &'a str,
    pub spec: &'a RunSpec,
    /// How the engine finds the base model: a folder or a hub id.
    pub model: &'a str,
    pub tokenizer: &'a TextTokenizer,
    pub train: &'a [SourceSequence],
    pub held_out: &'a [Vec<Message>],
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct JobBundle {
    pub dir: PathBuf,
    pub steps: usize,
    pub micro_batches: usize,
    pub train_sequences: usize,
    pub loss_tokens: usize,
    pub held_out_sequences: usize,
}

const FILES: [(&str, &str); 7] = [
    ("train.py", include_str!("../assets/trl/train.py")),
    ("launch.sh", include_str!("../assets/trl/launch.sh")),
    (
        "requirements.txt",
        include_str!("../assets/trl/requirements.txt"),
    ),
    (
        "accelerate/cpu.yaml",
        include_str!("../assets/trl/accelerate_cpu.yaml"),
    ),
    (
        "accelerate/multi_gpu.yaml",
        include_str!("../assets/trl/accelerate_multi_gpu.yaml"),
    ),
    (
        "accelerate/zero3.yaml",
        include_str!("../assets/trl/accelerate_zero3.yaml"),
    ),
    (
        "deepspeed/zero3.json",
        include_str!("../assets/trl/ds_zero3.json"),
    ),
];

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the TRL bundle into `out` (created; it must not exist or be empty).
pub fn write_trl_bundle(input: &JobInput, out: &Path) -> Result<JobBundle> {
    if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(Problem::setting(
            format!("{} exists and is not empty", out.display()),
            "out",
            "a new folder",
        )
        .into());
    }
    let spec = input.spec;
    let steps = planned_steps(input.train, input.tokenizer, spec)?;
    for dir in ["data", "accelerate", "deepspeed"] {
        let d = out.join(dir);
        std::fs::create_dir_all(&d).map_err(io(&d))?;
    }
    let (mut micro, mut sequences, mut loss_tokens) = (0, 0, 0);
    let path = out.join("data/train.jsonl");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io(&path))?);
    for (s, step) in steps.iter().enumerate() {
        for batch in step {
            for item in batch {
                let row = serde_json::json!({
                    "step": s + 1,
                    "micro": micro,
                    "input_ids": item.ids,
                    "loss_mask": item.loss.iter().map(|&l| l as u8).collect::<Vec<_>>(),
                });
                writeln!(w, "{row}").map_err(io(&path))?;
                sequences += 1;
                loss_tokens += item.loss_tokens();
            }
            micro += 1;
        }
    }
    w.flush().map_err(io(&path))?;
    // The held-out sample, rendered as the trainer scores it.
    let path = out.join("data/held_out.jsonl");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io(&path))?);
    for messages in input.held_out {
        let r = spectrum_lm::template::render(
            input.tokenizer,
            PromptFormat::Spectrum,
            messages,
            Some(spec.max_tokens),
        )?;
        let row = serde_json::json!({
            "input_ids": r.ids,
            "loss_mask": r.loss.iter().map(|&l| l as u8).collect::<Vec<_>>(),
        });
        writeln!(w, "{row}").map_err(io(&path))?;
    }
    w.flush().map_err(io(&path))?;

    let (method, lora) = match &spec.method {
        Method::Lora(l) => ("lora", serde_json::to_value(l).unwrap_or_default()),
        Method::Full => ("full", serde_json::Value::Null),
    };
    let job = serde_json::json!({
        "engine": "trl",
        "run": input.run_id,
        "name": input.run_name,
        "spec_hash": spec.hash(),
        "spectrum_version": env!("CARGO_PKG_VERSION"),
        "model": input.model,
        "format": spec.format,
        "max_tokens": spec.max_tokens,
        "method": method,
        "lora": lora,
        "learning_rate": spec.learning_rate,
        "warmup_steps": spec.warmup_steps,
        "decay": match spec.decay { Decay::Linear => "linear", Decay::Cosine => "cosine", Decay::Constant => "constant" },
        "total_steps": steps.len(),
        "micro_batch": spec.micro_batch,
        "grad_accum": spec.grad_accum,
        "max_grad_norm": spec.max_grad_norm,
        "weight_decay": spec.weight_decay,
        "dtype": spec.resolved_dtype(),
        "seed": spec.seed,
        "eval_every": spec.eval_every,
        "checkpoint_every": spec.checkpoint_every,
        "keep_checkpoints": spec.keep_checkpoints,
    });
    let path = out.join("job.json");
    let text = serde_json::to_string_pretty(&job).map_err(|source| TrainError::Json {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&path, text).map_err(io(&path))?;
    for (name, content) in FILES {
        let path = out.join(name);
        std::fs::write(&path, content).map_err(io(&path))?;
    }
    set_executable(&out.join("launch.sh"))?;
    set_executable(&out.join("train.py"))?;
    let bundle = JobBundle {
        dir: out.to_path_buf(),
        steps: steps.len(),
        micro_batches: micro,
        train_sequences: sequences,
        loss_tokens,
        held_out_sequences: input.held_out.len(),
    };
    let path = out.join("README.md");
    std::fs::write(&path, readme(input, &bundle)).map_err(io(&path))?;
    Ok(bundle)
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io(path))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> Result<()> {
    Ok(())
}

fn readme(input: &JobInput, b: &JobBundle) -> String {
    let spec = input.spec;
    format!(
        "# Spectrum Studio run {id} ({name}) for TRL + accelerate

Written by `spectrum export-job {id} --engine trl`. The run: {steps} optimiser steps of
{accum} micro-batches of {micro} sequences ({micro_batches} micro-batches, {seqs} sequences,
{tokens} loss tokens), {method}, learning rate {lr}, base model `{model}`.

- `data/train.jsonl`: one sequence per line, in training order: `step` (1-based optimiser
  step), `micro` (micro-batch), `input_ids` and `loss_mask` (1 where the loss is taken),
  exactly as Spectrum Studio's trainer renders and batches them.
- `data/held_out.jsonl`: the fixed held-out sample the run's held-out loss is measured on.
- `job.json`: the run's settings; `train.py` reads it.
- `train.py`: TRL's `SFTTrainer` fed those micro-batches unchanged, with the run's
  learning-rate schedule (warm-up then {decay:?} decay), AdamW (0.9, 0.999, 1e-8), gradient
  clipping and accumulation; writes `output/final`, a Hugging Face model folder (LoRA runs
  are merged into the base). `output/log.jsonl` holds every logged loss.
- `launch.sh` + `accelerate/*.yaml` + `deepspeed/zero3.json`: how to launch.

## Run

```sh
python3 -m pip install -r requirements.txt
ACCELERATE_CONFIG=accelerate/cpu.yaml ./launch.sh        # a check on the CPU
./launch.sh                                               # every GPU of this machine
ACCELERATE_CONFIG=accelerate/zero3.yaml ./launch.sh      # DeepSpeed ZeRO-3 (pip install deepspeed)
# several machines, on each (R = 0, 1, ...):
ACCELERATE_ARGS=\"--num_machines 2 --num_processes 16 --machine_rank R --main_process_ip HOST --main_process_port 29500\" ./launch.sh
```

Edit `num_processes` in the accelerate config to the number of GPUs. With N processes,
each accumulates grad_accum / N micro-batches per update, so the effective batch stays
{effective} sequences. If the base model is not at `{model}` on the cluster, pass
`-- --model PATH_OR_HUB_ID`.

## Back in Spectrum Studio

```sh
spectrum model add output/final --name {name}-trl
spectrum eval --model {name}-trl --template spectrum
```
",
        id = input.run_id,
        name = input.run_name,
        steps = b.steps,
        accum = spec.grad_accum,
        micro = spec.micro_batch,
        micro_batches = b.micro_batches,
        seqs = b.train_sequences,
        tokens = b.loss_tokens,
        method = match &spec.method {
            Method::Lora(l) => format!("LoRA rank {} alpha {} on {}", l.rank, l.alpha, l.targets.join(", ")),
            Method::Full => "full fine-tuning".to_string(),
        },
        lr = spec.learning_rate,
        model = input.model,
        decay = spec.decay,
        effective = spec.effective_batch(),
    )
}
