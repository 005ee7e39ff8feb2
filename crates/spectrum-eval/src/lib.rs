//! The three evaluation families of METHOD.md §4, over the
//! [`LanguageModel`](spectrum_lm::LanguageModel) trait:
//!
//! - [`steer`]: in-context steerability (per-output loss and accuracy from one
//!   forward pass per sequence, the steerability curve, calibration);
//! - [`dist`]: distributional alignment (option probabilities from the shared
//!   prompt's KV cache against target distributions);
//! - [`valid`]: validity and diversity of samples (yield), with a temperature sweep.
//!
//! [`metrics`] holds the pure metric functions, [`stats`] the bootstrap used to
//! compare runs. Nothing here touches SQLite: the app stores what these return.

pub mod dist;

/// Which metric definitions an evaluation computes, stored with every run so
/// that its numbers can be traced (README, "Conformance with the reference"):
/// distributional and validity prompts as tsor13/spectrum @ 5a33588 builds
/// them, validity sampled with its top-k; steerability as before.
pub const DEFINITIONS: &str = "2026-12-01b: reference 5a33588 prompts for dist (trailing input, colon output name, chat system turn) and valid (chat system turn, top-k 50); steer: chat as the reference renders it, examples by loss runs, k by one tokenizer in the spectrum format, acc/all_acc/first_acc, pooled sem beside the sequence se, the reference's ECE";
pub mod metrics;
pub mod stats;
pub mod steer;
pub mod valid;

use serde::{Deserialize, Serialize};
use spectrum_core::{ErrorCode, Explain, Fix, Problem};

/// The evaluation families (defined with the other closed sets).
pub use spectrum_core::Family;

spectrum_core::closed_set! {
    /// Evaluation sizes: `quick` runs in minutes on a CPU with the default model,
    /// `full` uses the reference sizes of METHOD.md §4.
    Profile { Quick => "quick", Standard => "standard", Full => "full" }
}

impl Profile {
    pub fn settings(self) -> Settings {
        match self {
            Profile::Quick => Settings {
                budget: 512,
                max_sequences: 12,
                max_items: 24,
                samples: 32,
                temperatures: vec![0.7, 1.0, 1.3],
                max_new_tokens: 32,
                ..Settings::default()
            },
            Profile::Standard => Settings {
                budget: 1024,
                max_sequences: 100,
                max_items: 200,
                samples: 100,
                temperatures: vec![0.5, 0.7, 1.0, 1.3, 1.6],
                ..Settings::default()
            },
            Profile::Full => Settings::default(),
        }
    }
}

/// What an evaluation does, in numbers. The defaults are the reference sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Tokens within which the k rule counts a steerability sequence's
    /// examples, in the spectrum format with the k tokenizer (the
    /// reference's 2048).
    pub budget: usize,
    /// Steerability sequences per task, at most.
    pub max_sequences: usize,
    /// Distributional items per task, at most.
    pub max_items: usize,
    /// Samples per task, prompt setting and temperature.
    pub samples: usize,
    /// The temperature sweep; 1.0 is the headline setting.
    pub temperatures: Vec<f64>,
    /// Tokens a sample may run to before it is cut.
    pub max_new_tokens: usize,
    /// Padded tokens per scoring forward pass.
    pub batch_tokens: usize,
    /// Seed of every choice of sequences, items and samples.
    pub seed: u64,
    /// A tokenizer folder that measures steerability's k (the reference uses
    /// google/gemma-3-1b-it's); `None`: that one from the Hugging Face cache
    /// if it is there, else the default model's.
    pub k_tokenizer: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            budget: 2048,
            max_sequences: 1000,
            max_items: 1000,
            samples: 100,
            temperatures: vec![0.3, 0.5, 0.7, 1.0, 1.3, 1.6, 2.0],
            max_new_tokens: 48,
            batch_tokens: 4096,
            seed: 42,
            k_tokenizer: None,
        }
    }
}

impl Settings {
    /// Checks the numbers; the message says which one is wrong and how to fix it.
    pub fn validate(&self) -> Result<()> {
        let bad = |setting: &'static str, message: &str| {
            Err(EvalError::Settings {
                setting,
                message: message.to_string(),
            })
        };
        if self.budget < 16 {
            return bad("budget", "budget must be at least 16 tokens");
        }
        for (setting, n) in [
            ("max_sequences", self.max_sequences),
            ("max_items", self.max_items),
            ("samples", self.samples),
            ("max_new_tokens", self.max_new_tokens),
            ("batch_tokens", self.batch_tokens),
        ] {
            if n == 0 {
                return bad(setting, &format!("{setting} must be at least 1"));
            }
        }
        if self.temperatures.is_empty() || self.temperatures.iter().any(|t| t.is_nan() || *t <= 0.0)
        {
            return bad(
                "temperatures",
                "temperatures must be a non-empty list of numbers above 0",
            );
        }
        if let Some(dir) = &self.k_tokenizer {
            if dir.ends_with(".gguf") {
                return Err(Problem::setting(
                    format!("k_tokenizer {dir} is a GGUF file, not a tokenizer folder"),
                    "k_tokenizer",
                    format!(
                        "add {dir} as a model (that converts it into a folder) and give that model's folder"
                    ),
                )
                .into());
            }
            if !std::path::Path::new(dir).join("tokenizer.json").exists() {
                return Err(Problem::setting(
                    format!("k_tokenizer {dir} holds no tokenizer.json"),
                    "k_tokenizer",
                    "the folder of a Hugging Face model, e.g. google/gemma-3-1b-it's",
                )
                .into());
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Lm(#[from] spectrum_lm::LmError),
    #[error("cancelled")]
    Cancelled,
    #[error("task {task}: {reason}")]
    Task { task: String, reason: String },
    /// An evaluation setting out of range; `setting` names it for a front end.
    #[error("invalid settings: {message}")]
    Settings {
        setting: &'static str,
        message: String,
    },
    /// A failure with a known way out.
    #[error(transparent)]
    Problem(#[from] Problem),
}

impl Explain for EvalError {
    fn code(&self) -> ErrorCode {
        match self {
            EvalError::Lm(e) => e.code(),
            EvalError::Cancelled => ErrorCode::Cancelled,
            EvalError::Task { .. } | EvalError::Settings { .. } => ErrorCode::BadInput,
            EvalError::Problem(p) => p.code,
        }
    }

    fn fix(&self) -> Option<Fix> {
        match self {
            EvalError::Lm(e) => e.fix(),
            EvalError::Problem(p) => p.fix.clone(),
            EvalError::Cancelled | EvalError::Task { .. } | EvalError::Settings { .. } => None,
        }
    }
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;

/// What every family runs with: the model, its tokenizer, the prompt format,
/// the sizes, and the flag that cancels between batches.
#[allow(missing_debug_implementations)]
pub struct Evaluator<'a> {
    pub lm: &'a mut dyn spectrum_lm::LanguageModel,
    pub tok: &'a spectrum_lm::tokenizer::TextTokenizer,
    pub format: spectrum_lm::PromptFormat,
    pub settings: &'a Settings,
    /// The tokenizer that measures k for steerability (one for every model
    /// and format of a comparison).
    pub k_tokenizer: &'a steer::KTokenizer,
    pub cancel: &'a std::sync::atomic::AtomicBool,
}

/// Work done within one task, for progress bars: `done` of `total` units
/// (sequences, items or sample batches).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

impl Evaluator<'_> {
    fn check(&self) -> Result<()> {
        if self.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            Err(EvalError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Up to `max` indices of `0..n`, chosen by `seed` and `task`, in a seeded order.
fn sample_indices(n: usize, max: usize, seed: u64, task: &str) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    spectrum_suite::Rng::derive(seed, task).shuffle(&mut order);
    order.truncate(max);
    order
}
