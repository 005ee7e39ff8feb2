//! Model families, written for training as well as inference: every operation
//! has a backward pass in training mode, and the fused inference kernels
//! (RMSNorm, RoPE, softmax) are used only when no gradient is needed.

pub mod llama;

pub use llama::{CausalLm, Mode};
