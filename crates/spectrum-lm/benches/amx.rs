//! Does AMX pay for a LoRA step's products with frozen weights? Each product
//! of the default model's (SmolLM2-135M) LoRA step, 4 x 256 tokens: the f32
//! product the step runs today (candle's gemm, AVX-512 where the CPU has it)
//! side by side with the bf16 tile product of `spectrum_lm::amx` (the weight
//! packed once, the activations rounded per call), alternating, best of
//! `ROUNDS` (default 3) each; then what the whole step's frozen products take
//! with each.
//!
//!     cargo bench --profile dev -p spectrum-lm --bench amx
//!
//! On a CPU without AMX it says so and measures only f32.

use std::time::Instant;

use candle_core::{Device, Tensor};
use spectrum_lm::amx::{self, Amx, PackedWeight};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKENS: usize = 4 * 256;
const LAYERS: usize = 30;

/// (name, in, out, per step): the forward `x Wᵀ` and the backward `dy W` of
/// each frozen weight, per layer (the LM head once).
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("q, o", 576, 576, 2 * LAYERS),
    ("k, v", 576, 192, 2 * LAYERS),
    ("gate, up", 576, 1536, 2 * LAYERS),
    ("down", 1536, 576, LAYERS),
    ("LM head", 576, 49152, 1),
];

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = spectrum_core::Rng::new(seed);
    (0..n).map(|_| (rng.f64() as f32 - 0.5) * 0.1).collect()
}

fn best_of(rounds: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> candle_core::Result<()> {
    spectrum_lm::fpu::flush_subnormals();
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let amx = Amx::get();
    println!(
        "{} threads, kernels {}; AMX bf16: {}",
        candle_core::utils::get_num_threads(),
        spectrum_lm::isa::Isa::best().name(),
        if amx.is_some() {
            "yes"
        } else {
            "no (f32 only)"
        }
    );
    println!(
        "{:<10} {:>18} {:>10} {:>10} {:>7} {:>9}",
        "product", "m x k x n", "f32 GF/s", "AMX GF/s", "ratio", "max err"
    );
    let (mut f32_step, mut amx_step) = (0.0, 0.0);
    for &(name, inp, out, count) in SHAPES {
        let w = values(out * inp, 7);
        // Forward: x [T, in] · Wᵀ; backward: dy [T, out] · W.
        for (dir, k, n, transposed) in [("fwd", inp, out, true), ("bwd", out, inp, false)] {
            let a = values(TOKENS * k, 11);
            let at = Tensor::from_slice(&a, (TOKENS, k), &Device::Cpu)?;
            let b_values: Vec<f32> = if transposed {
                (0..k * n).map(|i| w[(i % n) * inp + i / n]).collect()
            } else {
                w.clone()
            };
            let bt = Tensor::from_slice(&b_values, (k, n), &Device::Cpu)?;
            let flops = 2.0 * (TOKENS * k * n) as f64;
            let reference: Vec<f32> = at.matmul(&bt)?.flatten_all()?.to_vec1()?;
            let t32 = best_of(rounds, || {
                std::hint::black_box(at.matmul(&bt).expect("f32 product"));
            });
            f32_step += t32 * count as f64;
            let (tamx, err) = match amx {
                Some(amx) => {
                    let packed = PackedWeight::pack(&w, out, inp, transposed);
                    let mut c = vec![0f32; TOKENS * n];
                    let t = best_of(rounds, || {
                        amx::matmul(amx, &mut c, &a, TOKENS, &packed, false)
                    });
                    let scale =
                        reference.iter().map(|v| v.abs()).sum::<f32>() / reference.len() as f32;
                    let err = c
                        .iter()
                        .zip(&reference)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0f32, f32::max)
                        / scale;
                    (Some(t), err)
                }
                None => (None, 0.0),
            };
            amx_step += tamx.unwrap_or(t32) * count as f64;
            println!(
                "{:<10} {:>18} {:>10.0} {:>10} {:>7} {:>9}",
                format!("{name} {dir}"),
                format!("{TOKENS} x {k} x {n}"),
                flops / t32 / 1e9,
                tamx.map_or("-".into(), |t| format!("{:.0}", flops / t / 1e9)),
                tamx.map_or("-".into(), |t| format!("{:.2}x", t32 / t)),
                tamx.map_or("-".into(), |_| format!("{err:.1e}")),
            );
        }
    }
    println!(
        "a LoRA step's frozen products: f32 {:.2} s, AMX bf16 {:.2} s ({:.2}x)",
        f32_step,
        amx_step,
        f32_step / amx_step
    );
    println!("(max err: the largest |AMX - f32| over the mean |f32| of the product)");
    Ok(())
}
