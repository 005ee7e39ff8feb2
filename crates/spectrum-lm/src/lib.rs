//! Everything that touches a language model: model families on candle (written
//! for training as well as inference), loaders for Hugging Face folders and GGUF
//! files, tokenizers, Spectrum prompt templates (token ids + loss masks), LoRA
//! adapters, scoring and sampling behind the [`LanguageModel`] trait.

pub mod added_tokens;
pub mod bf16;
pub mod blocks;
pub mod config;
pub mod default_model;
pub mod engine;
mod error;
pub mod fpu;
pub mod gguf;
pub mod hf;
#[cfg(feature = "hub")]
pub mod hub;
pub mod isa;
pub mod lora;
pub mod machine;
pub mod models;
pub mod ops;
pub mod peft;
pub mod process;
pub mod shapes;
mod skinny;
pub mod template;
pub mod tiny;
pub mod tokenizer;
mod vmath;

pub use config::{Family, ModelConfig, RopeScaling};
pub use engine::{LanguageModel, LocalModel, OutputScore, SamplingParams, TokenScores};
pub use error::{LmError, Result};
pub use template::{PromptFormat, Rendered};

use std::path::Path;

use spectrum_core::Problem;

pub use spectrum_core::DeviceSpec;

/// What a [`DeviceSpec`] means to candle.
pub trait Backend {
    /// The candle device, or a clear error when this build lacks the backend.
    fn device(self) -> Result<candle_core::Device>;
    /// f32 on the CPU, bf16 on GPUs.
    fn dtype(self) -> candle_core::DType;
}

impl Backend for DeviceSpec {
    fn device(self) -> Result<candle_core::Device> {
        Ok(match self {
            DeviceSpec::Cpu => candle_core::Device::Cpu,
            DeviceSpec::Cuda(i) => candle_core::Device::new_cuda(i).map_err(|e| {
                Problem::say(
                    format!("CUDA device {i} is not available ({e}); this build has no CUDA backend or sees no NVIDIA GPU"),
                    "build with `cargo build --release -p spectrum-cli --features cuda` on a machine with the CUDA toolkit",
                )
            })?,
            DeviceSpec::Metal => candle_core::Device::new_metal(0).map_err(|e| {
                Problem::say(
                    format!("Metal is not available ({e})"),
                    "build with `cargo build --release -p spectrum-cli --features metal` on macOS",
                )
            })?,
        })
    }

    fn dtype(self) -> candle_core::DType {
        match self {
            DeviceSpec::Cpu => candle_core::DType::F32,
            _ => candle_core::DType::BF16,
        }
    }
}

/// Loads a Hugging Face model folder for inference on `device`.
pub fn load_local(dir: &Path, device: DeviceSpec) -> Result<LocalModel> {
    let model_dir = hf::ModelDir::open(dir)?;
    let (model, tokenizer) = model_dir.load(device.dtype(), &device.device()?, None)?;
    Ok(LocalModel { model, tokenizer })
}
