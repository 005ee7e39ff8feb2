//! What a training run is: every setting, with defaults sized for the
//! default model on a laptop CPU, and the paper's reference preset.

use std::path::Path;

use serde::{Deserialize, Serialize};
use spectrum_lm::lora::{LoraConfig, PROJECTIONS};
use spectrum_lm::ops::{FrozenMatmul, Kernels};
use spectrum_lm::{DeviceSpec, PromptFormat};

/// The number format a run's weights train in: one spelling (`f32`, `bf16`,
/// `f16`) in run specs, the store, TypeScript and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    Bf16,
    F16,
}

impl Dtype {
    pub const ALL: [Dtype; 3] = [Dtype::F32, Dtype::Bf16, Dtype::F16];

    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
            Dtype::F16 => "f16",
        }
    }

    pub fn parse(s: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.as_str() == s)
    }

    pub fn candle(self) -> candle_core::DType {
        match self {
            Dtype::F32 => candle_core::DType::F32,
            Dtype::Bf16 => candle_core::DType::BF16,
            Dtype::F16 => candle_core::DType::F16,
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which tasks to train on. Empty `names` and `categories`: every train task.
/// Held-out tasks are never trained on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct TaskSelection {
    /// Only tasks of this dataset (id or name); all datasets when `None`.
    pub dataset: Option<String>,
    pub names: Vec<String>,
    pub categories: Vec<String>,
}

/// LoRA adapters on chosen projections, or every weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Lora(LoraConfig),
    Full,
}

spectrum_core::closed_set! {
    /// How the learning rate decays after warm-up.
    Decay { Linear => "linear", Cosine => "cosine", Constant => "constant" }
}

/// How long to train.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Length {
    Steps(usize),
    Epochs(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct RunSpec {
    pub tasks: TaskSelection,
    pub format: PromptFormat,
    /// Token budget per sequence (examples are cut at example boundaries).
    pub max_tokens: usize,
    /// Probability that a sequence keeps its description (0.6, the reference's).
    pub description_prob: f64,
    pub method: Method,
    pub learning_rate: f64,
    pub warmup_steps: usize,
    pub decay: Decay,
    /// Sequences per forward pass.
    pub micro_batch: usize,
    /// Micro-batches per optimiser step (effective batch = micro_batch x grad_accum).
    pub grad_accum: usize,
    /// Padded tokens per forward pass at most: a micro-batch of long sequences
    /// runs in pieces (the same gradient, less memory).
    pub max_batch_tokens: usize,
    pub length: Length,
    /// Clip the global gradient norm to this (0: no clipping).
    pub max_grad_norm: f64,
    pub weight_decay: f64,
    /// The weights' number format; `None`: f32 on the CPU, bf16 on GPUs
    /// ([`RunSpec::resolved_dtype`]).
    pub dtype: Option<Dtype>,
    pub device: DeviceSpec,
    /// `composed`: run the composed candle operations a GPU runs instead of
    /// the CPU's custom f32 kernels (for testing that path on a CPU).
    #[serde(default, skip_serializing_if = "Kernels::is_fused")]
    pub kernels: Kernels,
    /// `bf16`: LoRA's products with the frozen weights (and the LM head) in
    /// bf16 with f32 sums, on Intel's AMX units (2.5-3.4x faster products on
    /// a Sapphire Rapids core) or with AVX512-BF16 (AMD Zen 4 and newer;
    /// 1.9x faster products on a Zen 5); `f32` (the default) everywhere else.
    #[serde(default, skip_serializing_if = "FrozenMatmul::is_f32")]
    pub frozen_matmul: FrozenMatmul,
    /// Recompute each decoder layer's activations in the backward pass
    /// instead of keeping them: activation memory falls to the layers' inputs
    /// plus one layer's, for about a third more compute. Gradients are
    /// unchanged (bit for bit on the CPU's kernels). On by default for GPU
    /// presets.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gradient_checkpointing: bool,
    pub seed: u64,
    /// Held-out loss every this many steps (and at the start and the end).
    pub eval_every: usize,
    /// Held-out sequences in the fixed evaluation sample.
    pub eval_sequences: usize,
    pub checkpoint_every: usize,
    /// Checkpoints kept on disk (the newest ones).
    pub keep_checkpoints: usize,
}

impl Default for RunSpec {
    /// The CPU default: LoRA on every projection of the default model, sized so
    /// that `spectrum demo` (tuning and both evaluations) takes at most 20
    /// minutes on a 2-core CPU: 40 steps, about 9 minutes of training on an
    /// AMD EPYC (Zen 3) (README, BENCHMARKS.md). 100 steps gained nothing on
    /// the held-out loss (5.837 vs 5.845).
    fn default() -> Self {
        RunSpec {
            tasks: TaskSelection::default(),
            format: PromptFormat::Spectrum,
            max_tokens: 1024,
            // The reference generators' rate (METHOD.md §1).
            description_prob: 0.6,
            method: Method::Lora(LoraConfig {
                rank: 16,
                alpha: 32.0,
                dropout: 0.0,
                targets: PROJECTIONS.map(String::from).to_vec(),
            }),
            learning_rate: 1e-3,
            warmup_steps: 4,
            decay: Decay::Cosine,
            micro_batch: 4,
            grad_accum: 2,
            max_batch_tokens: 2048,
            length: Length::Steps(40),
            max_grad_norm: 1.0,
            weight_decay: 0.0,
            dtype: None,
            device: DeviceSpec::Cpu,
            kernels: Kernels::Fused,
            frozen_matmul: FrozenMatmul::F32,
            gradient_checkpointing: false,
            seed: 0,
            eval_every: 20,
            eval_sequences: 12,
            checkpoint_every: 20,
            keep_checkpoints: 2,
        }
    }
}

/// Settings given on top of a preset and a spec file: a front end's flags or
/// fields. Unset ones leave the layers below as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpecOverrides {
    pub dataset: Option<String>,
    pub tasks: Vec<String>,
    pub categories: Vec<String>,
    /// Full fine-tuning instead of LoRA.
    pub full: bool,
    pub lora_rank: Option<usize>,
    pub lora_alpha: Option<f64>,
    pub lora_dropout: Option<f32>,
    pub lora_targets: Vec<String>,
    pub learning_rate: Option<f64>,
    pub warmup_steps: Option<usize>,
    pub decay: Option<Decay>,
    pub micro_batch: Option<usize>,
    pub grad_accum: Option<usize>,
    pub max_batch_tokens: Option<usize>,
    pub gradient_checkpointing: Option<bool>,
    pub steps: Option<usize>,
    pub epochs: Option<f64>,
    pub max_tokens: Option<usize>,
    pub description_prob: Option<f64>,
    pub max_grad_norm: Option<f64>,
    pub weight_decay: Option<f64>,
    pub dtype: Option<Dtype>,
    pub frozen_matmul: Option<FrozenMatmul>,
    pub device: Option<DeviceSpec>,
    pub seed: Option<u64>,
    pub eval_every: Option<usize>,
    pub eval_sequences: Option<usize>,
    pub checkpoint_every: Option<usize>,
}

/// Names of the presets `preset` knows.
pub const PRESETS: [&str; 2] = ["cpu", "paper"];

impl RunSpec {
    /// `cpu` (the default) or `paper`: METHOD.md §3's reference
    /// hyper-parameters (full fine-tune, lr 3e-6, linear decay, one epoch,
    /// 1024 tokens, effective batch 1024 sequences, bf16, clipping 1.0).
    pub fn preset(name: &str) -> Option<RunSpec> {
        match name {
            "cpu" | "default" => Some(RunSpec::default()),
            "paper" => Some(RunSpec {
                method: Method::Full,
                learning_rate: 3e-6,
                warmup_steps: 0,
                decay: Decay::Linear,
                micro_batch: 8,
                grad_accum: 128,
                length: Length::Epochs(1.0),
                dtype: Some(Dtype::Bf16),
                gradient_checkpointing: true,
                eval_every: 10,
                checkpoint_every: 10,
                ..RunSpec::default()
            }),
            _ => None,
        }
    }

    /// Checks the settings, naming the one that is wrong and how to fix it.
    /// `self` with the settings of a JSON object laid over it (a run-spec
    /// file: `{"learning_rate": 0.001}`); every key must name a setting. The
    /// message of an error says the line and column and how to fix it; the
    /// caller adds the file's name.
    pub fn overlay_json(&self, text: &str) -> Result<RunSpec, String> {
        let overlay: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            format!(
                "line {}, column {}: not valid JSON ({e}) (fix: the file is a JSON object of run settings, e.g. {{\"learning_rate\": 0.001}})",
                e.line(),
                e.column()
            )
        })?;
        let serde_json::Value::Object(overlay) = overlay else {
            return Err("the run spec must be a JSON object of settings".into());
        };
        let mut base = serde_json::to_value(self).map_err(|e| e.to_string())?;
        for (k, v) in overlay {
            if base.get(&k).is_none() {
                return Err(format!(
                    "unknown setting {k:?} (fix: `spectrum runs show RUN --json` prints every setting with its name)"
                ));
            }
            base[k] = v;
        }
        serde_json::from_value(base).map_err(|e| e.to_string())
    }

    /// The preset, then the JSON object of `spec_file` (if any), then the
    /// overrides: how every front end builds a run's settings. Not validated
    /// here (the run's start does it).
    pub fn layered(
        preset: &str,
        spec_file: Option<&Path>,
        o: &SpecOverrides,
    ) -> Result<RunSpec, SpecError> {
        let mut spec = RunSpec::preset(preset).ok_or_else(|| {
            SpecError::new(
                "preset",
                format!(
                    "unknown preset {preset:?} (presets: {})",
                    PRESETS.join(", ")
                ),
            )
        })?;
        if let Some(path) = spec_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                SpecError::new(
                    "spec",
                    format!("{}: cannot read the run spec: {e}", path.display()),
                )
            })?;
            spec = spec
                .overlay_json(&text)
                .map_err(|e| SpecError::new("spec", format!("{}: {e}", path.display())))?;
        }
        if let Some(d) = &o.dataset {
            spec.tasks.dataset = Some(d.clone());
        }
        if !o.tasks.is_empty() {
            spec.tasks.names = o.tasks.clone();
        }
        if !o.categories.is_empty() {
            spec.tasks.categories = o.categories.clone();
        }
        if o.full {
            spec.method = Method::Full;
        } else if o.lora_rank.is_some()
            || o.lora_alpha.is_some()
            || o.lora_dropout.is_some()
            || !o.lora_targets.is_empty()
        {
            let mut lora = match &spec.method {
                Method::Lora(l) => l.clone(),
                Method::Full => LoraConfig::default(),
            };
            lora.rank = o.lora_rank.unwrap_or(lora.rank);
            lora.alpha = o.lora_alpha.unwrap_or(lora.alpha);
            lora.dropout = o.lora_dropout.unwrap_or(lora.dropout);
            if !o.lora_targets.is_empty() {
                lora.targets = o.lora_targets.clone();
            }
            spec.method = Method::Lora(lora);
        }
        macro_rules! set {
            ($($field:ident),* $(,)?) => {
                $(if let Some(v) = o.$field.clone() { spec.$field = v; })*
            };
        }
        set!(
            learning_rate,
            warmup_steps,
            decay,
            micro_batch,
            grad_accum,
            max_batch_tokens,
            gradient_checkpointing,
            max_tokens,
            description_prob,
            max_grad_norm,
            weight_decay,
            frozen_matmul,
            device,
            seed,
            eval_every,
            eval_sequences,
            checkpoint_every,
        );
        if o.dtype.is_some() {
            spec.dtype = o.dtype;
        }
        if let Some(n) = o.steps {
            spec.length = Length::Steps(n);
        }
        if let Some(e) = o.epochs {
            spec.length = Length::Epochs(e);
        }
        Ok(spec)
    }

    pub fn validate(&self) -> Result<(), SpecError> {
        let positive = [
            ("max_tokens", self.max_tokens),
            ("micro_batch", self.micro_batch),
            ("grad_accum", self.grad_accum),
            ("max_batch_tokens", self.max_batch_tokens),
            ("eval_every", self.eval_every),
            ("checkpoint_every", self.checkpoint_every),
            ("keep_checkpoints", self.keep_checkpoints),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(SpecError::new(name, format!("{name} must be at least 1")));
        }
        if !(0.0..=1.0).contains(&self.description_prob) {
            return Err(SpecError::new(
                "description_prob",
                "description_prob must be between 0 and 1",
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(SpecError::new(
                "learning_rate",
                "learning_rate must be a positive number",
            ));
        }
        if self.max_grad_norm < 0.0 || self.weight_decay < 0.0 {
            return Err(SpecError::new(
                if self.max_grad_norm < 0.0 {
                    "max_grad_norm"
                } else {
                    "weight_decay"
                },
                "max_grad_norm and weight_decay cannot be negative",
            ));
        }
        match self.length {
            Length::Steps(0) => return Err(SpecError::new("length", "steps must be at least 1")),
            Length::Epochs(e) if !(e > 0.0 && e.is_finite()) => {
                return Err(SpecError::new("length", "epochs must be a positive number"));
            }
            _ => {}
        }
        if self.frozen_matmul == FrozenMatmul::Bf16 {
            let fix = "fix: leave frozen_matmul at f32";
            if !matches!(self.method, Method::Lora(_)) {
                return Err(SpecError::new(
                    "frozen_matmul",
                    format!(
                        "frozen_matmul bf16 applies to LoRA, whose base weights are frozen; full fine-tuning trains every weight ({fix})"
                    ),
                ));
            }
            if self.device != DeviceSpec::Cpu || self.resolved_dtype() != Dtype::F32 {
                return Err(SpecError::new(
                    "frozen_matmul",
                    format!(
                        "frozen_matmul bf16 is for f32 training on the CPU; on a GPU, train in bf16 with dtype ({fix})"
                    ),
                ));
            }
            if spectrum_lm::bf16::Bf16Unit::get().is_none() {
                return Err(SpecError::new(
                    "frozen_matmul",
                    format!(
                        "frozen_matmul bf16 runs on Intel's AMX units or with AVX512-BF16 (AMD Zen 4 or newer, Intel Xeon Cooper Lake or newer), neither of which this CPU or OS offers; `spectrum system` shows the CPU ({fix})"
                    ),
                ));
            }
        }
        if let Method::Lora(l) = &self.method {
            if l.rank == 0 {
                return Err(SpecError::new("method", "LoRA rank must be at least 1"));
            }
            if l.targets.is_empty() {
                return Err(SpecError::new(
                    "method",
                    format!(
                        "LoRA needs at least one target module (one of {})",
                        PROJECTIONS.join(", ")
                    ),
                ));
            }
            if let Some(t) = l
                .targets
                .iter()
                .find(|t| !PROJECTIONS.contains(&t.as_str()))
            {
                return Err(SpecError::new(
                    "method",
                    format!(
                        "unknown LoRA target module {t:?} (known: {})",
                        PROJECTIONS.join(", ")
                    ),
                ));
            }
            if !(0.0..1.0).contains(&l.dropout) {
                return Err(SpecError::new("method", "LoRA dropout must be in [0, 1)"));
            }
        }
        Ok(())
    }

    /// The dtype the run trains in: the one set, else f32 on the CPU and
    /// bf16 on GPUs.
    pub fn resolved_dtype(&self) -> Dtype {
        self.dtype.unwrap_or(match self.device {
            DeviceSpec::Cpu => Dtype::F32,
            DeviceSpec::Cuda(_) | DeviceSpec::Metal => Dtype::Bf16,
        })
    }

    pub fn dtype(&self) -> candle_core::DType {
        self.resolved_dtype().candle()
    }

    /// Sequences per optimiser step.
    pub fn effective_batch(&self) -> usize {
        self.micro_batch * self.grad_accum
    }

    /// The learning rate of update `t` (1-based) out of `total`: linear
    /// warm-up to the peak over `warmup_steps`, then the decay to 0.
    pub fn lr_at(&self, t: usize, total: usize) -> f64 {
        let w = self.warmup_steps.min(total.saturating_sub(1));
        if t <= w {
            return self.learning_rate * t as f64 / w.max(1) as f64;
        }
        let progress = (t - w - 1) as f64 / (total - w).max(1) as f64;
        self.learning_rate
            * match self.decay {
                Decay::Linear => 1.0 - progress,
                Decay::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
                Decay::Constant => 1.0,
            }
    }

    /// A stable hash of the settings that change the result.
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(self).unwrap_or_default());
        format!("{:x}", h.finalize())[..16].to_string()
    }
}

/// A run setting that is out of range: which one (its name in the spec) and
/// what is wrong, so that a front end can point at the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    pub setting: &'static str,
    pub message: String,
}

impl SpecError {
    fn new(setting: &'static str, message: impl Into<String>) -> SpecError {
        SpecError {
            setting,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_preset_then_file_then_overrides() {
        let dir = std::env::temp_dir().join(format!("spectrum-layered-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("spec.json");
        std::fs::write(
            &file,
            r#"{"learning_rate": 0.001, "micro_batch": 2, "seed": 5}"#,
        )
        .expect("write");
        let o = SpecOverrides {
            seed: Some(9),
            lora_rank: Some(4),
            steps: Some(3),
            ..SpecOverrides::default()
        };
        let spec = RunSpec::layered("paper", Some(&file), &o).expect("layered");
        assert_eq!(spec.learning_rate, 0.001, "the file over the preset");
        assert_eq!(spec.micro_batch, 2);
        assert_eq!(spec.seed, 9, "the overrides over the file");
        assert_eq!(spec.length, Length::Steps(3));
        assert_eq!(
            spec.dtype,
            Some(Dtype::Bf16),
            "the preset where nothing says otherwise"
        );
        // LoRA settings on the paper's full fine-tune turn it into LoRA.
        assert!(matches!(&spec.method, Method::Lora(l) if l.rank == 4));
        let err = RunSpec::layered("gpu", None, &o).expect_err("unknown preset");
        assert!(err.message.contains("cpu, paper"), "{err:?}");
        let err = RunSpec::layered("cpu", Some(&dir.join("none.json")), &o).expect_err("missing");
        assert!(err.message.contains("none.json"), "{err:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_json_overlay_sets_named_settings_and_names_what_is_wrong() {
        let base = RunSpec::preset("cpu").expect("preset");
        let spec = base
            .overlay_json(r#"{"learning_rate": 0.001, "decay": "linear"}"#)
            .expect("overlay");
        assert_eq!(spec.learning_rate, 0.001);
        assert_eq!(spec.decay, Decay::Linear);
        assert_eq!(spec.micro_batch, base.micro_batch);
        let e = base.overlay_json("{\n  \"lr\": 1\n}").expect_err("refused");
        assert!(e.contains("unknown setting \"lr\""), "{e}");
        let e = base
            .overlay_json("{\n  \"learning_rate\": ,\n}")
            .expect_err("refused");
        assert!(e.starts_with("line 2, column"), "{e}");
        assert!(
            base.overlay_json("[1]")
                .expect_err("refused")
                .contains("JSON object")
        );
        let e = base
            .overlay_json(r#"{"decay": "stepwise"}"#)
            .expect_err("refused");
        assert!(e.contains("stepwise"), "{e}");
    }

    #[test]
    fn schedule_warms_up_then_decays_to_near_zero() {
        let spec = RunSpec {
            learning_rate: 1.0,
            warmup_steps: 4,
            decay: Decay::Linear,
            ..RunSpec::default()
        };
        let lrs: Vec<f64> = (1..=10).map(|t| spec.lr_at(t, 10)).collect();
        assert_eq!(&lrs[..4], &[0.25, 0.5, 0.75, 1.0]);
        assert_eq!(lrs[4], 1.0);
        assert!((lrs[9] - 1.0 / 6.0).abs() < 1e-12, "{lrs:?}");
        assert!(lrs.windows(2).skip(4).all(|w| w[1] < w[0]));
        let cosine = RunSpec {
            decay: Decay::Cosine,
            ..spec
        };
        assert_eq!(cosine.lr_at(5, 10), 1.0);
        assert!(cosine.lr_at(10, 10) < 0.1);
    }

    #[test]
    fn presets_are_valid_and_bad_settings_are_named() {
        for p in PRESETS {
            RunSpec::preset(p).expect("preset").validate().expect(p);
        }
        let bad = RunSpec {
            method: Method::Lora(LoraConfig {
                targets: vec!["qproj".into()],
                ..LoraConfig::default()
            }),
            ..RunSpec::default()
        };
        let e = bad.validate().expect_err("unknown target");
        assert_eq!(e.setting, "method");
        assert!(
            e.message.contains("qproj") && e.message.contains("q_proj"),
            "{e}"
        );
        let e = RunSpec {
            grad_accum: 0,
            ..RunSpec::default()
        }
        .validate()
        .expect_err("zero");
        assert_eq!(e.setting, "grad_accum");
        assert_eq!(e.to_string(), "grad_accum must be at least 1");
    }

    #[test]
    fn specs_round_trip_through_json_with_defaults_for_missing_fields() {
        let spec: RunSpec =
            serde_json::from_str(r#"{"learning_rate": 0.01, "method": "full"}"#).expect("json");
        assert_eq!(spec.learning_rate, 0.01);
        assert_eq!(spec.method, Method::Full);
        assert_eq!(spec.max_tokens, 1024);
        let back: RunSpec =
            serde_json::from_str(&serde_json::to_string(&spec).expect("ser")).expect("de");
        assert_eq!(back, spec);
    }
}
