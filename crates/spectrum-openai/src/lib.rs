//! The OpenAI-compatible completions API, both ways.
//!
//! - [`client`]: [`RemoteModel`], a [`LanguageModel`](spectrum_lm::LanguageModel)
//!   over one or more servers (vLLM, SGLang, llama.cpp, `spectrum serve`):
//!   teacher-forced scores from prompt log-probabilities, sampling with the
//!   run's parameters, work split across endpoints, retries with back-off.
//! - [`server`]: `spectrum serve`, which serves local models over the same API
//!   and batches concurrent requests.
//! - [`wire`]: the JSON bodies both sides use.

pub mod client;
pub mod server;
pub mod wire;

pub use client::{RemoteModel, RemoteSpec};
pub use server::{ServeOptions, ServedModel, Server};
