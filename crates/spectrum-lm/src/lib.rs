//! Everything that touches a language model: model families on candle (written
//! for training as well as inference), loaders for Hugging Face folders and GGUF
//! files, tokenizers, Spectrum prompt templates (token ids + loss masks), LoRA
//! adapters, scoring and sampling behind the [`LanguageModel`] trait.

pub mod config;
pub mod default_model;
pub mod engine;
mod error;
pub mod gguf;
pub mod hf;
pub mod lora;
pub mod models;
pub mod template;
pub mod tokenizer;

pub use config::{Family, ModelConfig};
pub use engine::{LanguageModel, LocalModel, OutputScore, SamplingParams, TokenScores};
pub use error::{LmError, Result};
pub use template::{PromptFormat, Rendered};
