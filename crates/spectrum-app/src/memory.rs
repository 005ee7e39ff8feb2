//! Will a training run fit: the estimate of its peak memory
//! (`spectrum_train::memory`) against what the device has free, shown before
//! a run starts by `spectrum train` and the Train view, and the refusal, with
//! the settings that would fit, of a run that cannot.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use spectrum_core::{Fix, Problem};
use spectrum_lm::DeviceSpec;
use spectrum_train::RunSpec;
use spectrum_train::memory::{self, MemoryEstimate, Suggestion, bytes_text};

/// The share of a training sequence's tokens that carry loss, for the
/// estimate before the data is read: Spectrum sequences score their outputs,
/// about half their tokens.
const LOSS_FRACTION: f64 = 0.5;

/// A run's estimated peak memory beside the device's free memory.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct MemoryFit {
    pub estimate: MemoryEstimate,
    /// `cpu`, `cuda:0`, ...
    pub device: DeviceSpec,
    /// Free memory where it can be read (the CPU's `MemAvailable`; a GPU's is
    /// not read yet).
    pub free: Option<u64>,
    /// False only when the free memory is known and the estimate exceeds it:
    /// then the run is refused.
    pub fits: bool,
    /// One-setting changes that would fit, when this does not.
    pub suggestions: Vec<Suggestion>,
}

impl MemoryFit {
    /// Of the model in `model_dir` under `spec`, on `spec`'s device.
    pub fn of(model_dir: &Path, spec: &RunSpec) -> Result<MemoryFit> {
        let config = spectrum_lm::hf::ModelDir::open(model_dir)?.config;
        let estimate = memory::estimate(&config, spec, LOSS_FRACTION);
        let free = match spec.device {
            DeviceSpec::Cpu => memory::free_cpu_memory(),
            _ => None,
        };
        let suggestions = match free {
            Some(free) if estimate.total > free => {
                memory::suggestions(&config, spec, LOSS_FRACTION, free)
            }
            _ => Vec::new(),
        };
        Ok(MemoryFit {
            fits: free.is_none_or(|free| estimate.total <= free),
            estimate,
            device: spec.device,
            free,
            suggestions,
        })
    }

    /// `peak memory up to about 2.9 GiB (weights 513 MiB, ...) with 1024
    /// tokens per forward pass (the most these settings allow); 20.1 GiB free
    /// on cpu`. Shorter sequences than `max_tokens` need less.
    pub fn summary(&self) -> String {
        let e = &self.estimate;
        let free = match self.free {
            Some(f) => format!("{} free on {}", bytes_text(f), self.device),
            None => format!("free memory of {} not read", self.device),
        };
        format!(
            "peak memory up to about {} (weights {}, optimizer {}, activations {}, logits {}) with {} tokens per forward pass, the most these settings allow; {free}",
            bytes_text(e.total),
            bytes_text(e.weights),
            bytes_text(e.optimizer),
            bytes_text(e.activations),
            bytes_text(e.logits),
            e.tokens_per_pass
        )
    }

    /// The error for a run that does not fit: the estimate, the free memory,
    /// and each setting that would fit.
    pub fn refusal(&self) -> Problem {
        let mut message = format!(
            "the run needs {}, more than the {} free on {} ({})",
            bytes_text(self.estimate.total),
            bytes_text(self.free.unwrap_or(0)),
            self.device,
            self.summary()
        );
        let Some(first) = self.suggestions.first() else {
            return Problem::say(
                message,
                "a smaller model, or a device with more memory: no single setting fits",
            );
        };
        message.push_str("; these would fit: ");
        message.push_str(
            &self
                .suggestions
                .iter()
                .map(|s| format!("{} {} ({})", s.setting, s.value, bytes_text(s.total)))
                .collect::<Vec<_>>()
                .join(", "),
        );
        Problem::bad_input(message).with_fix(Fix::setting(
            &first.setting,
            format!("{} (about {})", first.value, bytes_text(first.total)),
        ))
    }
}
