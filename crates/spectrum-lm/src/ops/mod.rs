//! Custom operations for training on the CPU, where candle's generic ones
//! cost time or memory the method does not need:
//!
//! - [`linear`]: `x Wᵀ` as one node, with a gradient for `x` only when it needs
//!   one and for `W` only when it trains (candle's matmul backward always
//!   computes both: as many FLOPs as the forward pass each), `∂L/∂W` in `W`'s
//!   layout.
//! - [`masked_softmax`]: `softmax(scores + mask)` with the fused kernel and a
//!   backward pass (`dx = y ⊙ (dy − Σ dy ⊙ y)`). The composed version keeps five
//!   score-sized intermediates per layer, and candle also stores a score-sized
//!   gradient for the constant mask until backward ends (gigabytes at 1,024 tokens).
//! - [`rope`]: the fused rotary kernel; its backward is the inverse rotation
//!   (sine negated). The composed one stores gradients for the constant cos/sin.
//! - [`rms_norm`]: the fused RMSNorm kernel and a hand-written backward
//!   (the scale's gradient only when it trains); the composed one keeps four
//!   activation-sized tensors per norm and a gradient for a frozen scale.
//! - [`lora_matmul`]: a frozen linear layer plus its LoRA adapter as one node,
//!   with the adapter's gradients and `∂L/∂x` written out, products
//!   accumulated into one output by direct calls to the matrix multiply.
//! - [`attention`]: RoPE, scores, mask, softmax and values of one layer as a
//!   single node with a hand-written backward, computed per (sequence,
//!   key/value head) in parallel so that each one's scores stay in cache.
//! - [`cross_entropy_rows`]: the loss over the vocabulary in one pass each way
//!   (`softmax - onehot` backward) instead of log-softmax's composed passes.
//!
//! With [`FrozenMatmul::Bf16`] set on the thread (on a CPU with AMX or
//! AVX512-BF16), the products of [`linear`] and [`lora_matmul`] with a frozen
//! weight run in bf16 with f32 sums ([`crate::bf16`]).
//!
//! Each applies to f32 tensors on the CPU (forward passes through candle's own
//! kernels or single loops, writing into the op's output); other devices and
//! dtypes (bf16 on GPUs) use the plain, composed operations.

mod attention;
mod gemm;
mod host;
mod linear;
mod loss;
mod norm;

pub use attention::{
    AttentionShape, attention, attention_cached, attention_prompt, masked_softmax, rope,
};
pub use gemm::matmul_placed;
pub use host::host_slice;
pub use linear::{LoraParts, linear, linear_with, lora_matmul, lora_swiglu, swiglu};
pub use loss::cross_entropy_rows;
pub use norm::rms_norm;

/// Which implementation the ops of a thread run: the custom CPU f32 kernels
/// (`Fused`, the default) or the composed candle operations every other
/// device and dtype runs (`Composed`: on the CPU, the exact path a GPU takes,
/// so that tests on a CPU machine cover it).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS,
)]
#[serde(rename_all = "snake_case")]
pub enum Kernels {
    #[default]
    Fused,
    Composed,
}

impl Kernels {
    pub fn is_fused(&self) -> bool {
        *self == Kernels::Fused
    }
}

thread_local! {
    static KERNELS: std::cell::Cell<Kernels> = const { std::cell::Cell::new(Kernels::Fused) };
}

/// Sets the kernels of the calling thread (every op decides on the thread
/// that calls it, forward and backward); returns the previous setting.
pub fn set_kernels(k: Kernels) -> Kernels {
    KERNELS.with(|c| c.replace(k))
}

/// The kernels of the calling thread.
pub fn kernels() -> Kernels {
    KERNELS.with(std::cell::Cell::get)
}

spectrum_core::closed_set! {
    /// The number format of training's products with frozen weights (`x Wᵀ`
    /// forward, `dy W` backward, the LM head's included) on the CPU.
    #[derive(Default)]
    FrozenMatmul {
        /// f32 operands and sums: the default, and what the reference tests hold.
        #[default]
        F32 => "f32",
        /// Operands rounded to bf16, sums in f32, on Intel's AMX tile units
        /// (Sapphire Rapids and newer; 2.5-3.4x faster products) or with
        /// AVX512-BF16 (AMD Zen 4 and newer; 1.9x on a Zen 5), with errors of about 1% of a
        /// product's mean magnitude, as PyTorch's bf16 matmul precision on
        /// the CPU. LoRA only (full fine-tuning has no frozen weight);
        /// refused where the CPU has neither.
        Bf16 => "bf16",
    }
}

impl FrozenMatmul {
    pub fn is_f32(&self) -> bool {
        *self == FrozenMatmul::F32
    }
}

thread_local! {
    static FROZEN_MATMUL: std::cell::Cell<FrozenMatmul> = const { std::cell::Cell::new(FrozenMatmul::F32) };
}

/// Sets the number format of the calling thread's products with frozen
/// weights (read by the ops on the thread that calls them, forward and
/// backward); returns the previous setting.
pub fn set_frozen_matmul(m: FrozenMatmul) -> FrozenMatmul {
    FROZEN_MATMUL.with(|c| c.replace(m))
}

/// Runs `work` on a thread of rayon's global pool (right here when this is
/// one), with the calling thread's [`Kernels`] and [`FrozenMatmul`].
///
/// Every parallel op (candle's and gemm's matrix multiplies, our kernels and
/// row loops) splits its work over that pool. Called from a thread outside
/// it, each op hands its work over and sleeps until it is done: two context
/// switches (a wake-up of a sleeping thread, on a VM an interrupt between
/// virtual CPUs) per op, some two thousand times a decoding step, and one
/// thread more than there are cores. From a pool thread the caller does its
/// share and the others steal the rest. Decoding (`spectrum generate` 1.25x
/// on Intel model 207), scoring and each training step run through here
/// ([`on_pool_for`]): a LoRA step's profile on the AMD EPYC family 26 model 2
/// (Zen 5) spent 12% of its time in the kernel waking and parking threads
/// from outside the pool, 3% from inside (`BENCHMARKS.md`).
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return work();
    }
    // Before entering: the pool's threads get the mode here, not from
    // inside a job of theirs.
    crate::fpu::flush_subnormals();
    let settings = (kernels(), FROZEN_MATMUL.with(std::cell::Cell::get));
    /// The worker's own settings back, even if `work` panics.
    struct Restore(Kernels, FrozenMatmul);
    impl Drop for Restore {
        fn drop(&mut self) {
            set_kernels(self.0);
            set_frozen_matmul(self.1);
        }
    }
    let mut out = None;
    rayon::scope(|_| {
        let _restore = Restore(set_kernels(settings.0), set_frozen_matmul(settings.1));
        out = Some(work());
    });
    out.expect("rayon ran the scope's body")
}

/// [`on_pool`] for work on `device` when that is the CPU; work for a GPU runs
/// right here, on the calling thread, as the rest of a GPU run does.
pub fn on_pool_for<R: Send>(device: &candle_core::Device, work: impl FnOnce() -> R + Send) -> R {
    if device.is_cpu() {
        on_pool(work)
    } else {
        work()
    }
}

/// The bf16 unit and a weight's packed copies, when the calling thread runs products
/// with frozen weights in bf16 and `tiles` belongs to a frozen weight.
pub(crate) fn bf16_for(
    tiles: Option<&std::sync::Arc<crate::bf16::Tiles>>,
) -> Option<(crate::bf16::Bf16Unit, std::sync::Arc<crate::bf16::Tiles>)> {
    let bf16 = FROZEN_MATMUL.with(std::cell::Cell::get) == FrozenMatmul::Bf16;
    let tiles = tiles.filter(|_| bf16)?;
    Some((crate::bf16::Bf16Unit::get()?, tiles.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The work runs on a pool thread with the caller's settings, and the
    /// pool's threads have their own settings back afterwards, also after a
    /// panic.
    #[test]
    fn on_pool_runs_on_the_pool_with_the_callers_settings() {
        let before = (
            set_kernels(Kernels::Composed),
            set_frozen_matmul(FrozenMatmul::Bf16),
        );
        let seen = on_pool(|| {
            (
                rayon::current_thread_index().is_some(),
                kernels(),
                FROZEN_MATMUL.with(std::cell::Cell::get),
            )
        });
        assert_eq!(seen, (true, Kernels::Composed, FrozenMatmul::Bf16));
        let panicked = std::panic::catch_unwind(|| on_pool(|| panic!("in the work")));
        assert!(panicked.is_err());
        let pool: Vec<_> =
            rayon::broadcast(|_| (kernels(), FROZEN_MATMUL.with(std::cell::Cell::get)));
        assert!(
            pool.iter()
                .all(|&s| s == (Kernels::Fused, FrozenMatmul::F32)),
            "{pool:?}"
        );
        // Already on a pool thread: the work runs right there.
        let nested = on_pool(|| {
            let here = rayon::current_thread_index();
            on_pool(rayon::current_thread_index) == here
        });
        assert!(nested);
        set_kernels(before.0);
        set_frozen_matmul(before.1);
    }
}
