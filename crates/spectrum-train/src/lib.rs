//! Spectrum Tuning (METHOD.md §3) on the engine of `spectrum-lm`: a run spec,
//! training data materialised by seed, the loop (AdamW, schedule, gradient
//! accumulation and clipping, held-out loss), checkpoints that resume exactly,
//! and exports (PEFT adapters, merged Hugging Face folders).
//!
//! The crate knows nothing of the store or of front ends: a job gets its data
//! as values and reports through events; `spectrum-app` wires both.

pub mod checkpoint;
pub mod data;
pub mod export;
pub mod job;
pub mod memory;
pub mod optim;
pub mod spec;
pub mod trainer;

use std::path::PathBuf;

use spectrum_core::{ErrorCode, Explain, Fix, Problem};

pub use checkpoint::Checkpoint;
pub use data::SourceSequence;
pub use spec::{
    Decay, Dtype, Length, Method, PRESETS, RunSpec, SpecError, SpecOverrides, TaskSelection,
};
pub use spectrum_lm::ops::FrozenMatmul;
pub use trainer::{
    EvalMetrics, Event, Outcome, StepMetrics, TrainJob, Trainable, planned_steps, train,
};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("run spec")]
    Setting(#[from] spec::SpecError),
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    #[error(transparent)]
    Lm(#[from] spectrum_lm::LmError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    // The variants below name what failed; their sources say why (an error
    // chain, `{:#}`, prints both, so the messages do not repeat the source).
    /// A front end's event handler failed (e.g. the store could not be written).
    #[error("recording the run")]
    Events(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Writing a file (a job bundle, an export) failed.
    #[error("cannot write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write JSON to {}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A lock another thread panicked while holding.
    #[error("a variable store lock was poisoned (a training thread panicked)")]
    Poisoned,
    /// A failure with a known way out.
    #[error(transparent)]
    Problem(#[from] Problem),
}

impl Explain for TrainError {
    fn code(&self) -> ErrorCode {
        match self {
            TrainError::Setting(_) | TrainError::Checkpoint { .. } => ErrorCode::BadInput,
            TrainError::Lm(e) => e.code(),
            TrainError::Problem(p) => p.code,
            TrainError::Candle(_)
            | TrainError::Events(_)
            | TrainError::Io { .. }
            | TrainError::Json { .. }
            | TrainError::Poisoned => ErrorCode::Internal,
        }
    }

    fn fix(&self) -> Option<Fix> {
        match self {
            TrainError::Lm(e) => e.fix(),
            TrainError::Problem(p) => p.fix.clone(),
            _ => None,
        }
    }
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
