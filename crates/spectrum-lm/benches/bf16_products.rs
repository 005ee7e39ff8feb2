//! Do bf16 units pay for a LoRA step's products with frozen weights? Each
//! product of the default model's (SmolLM2-135M) LoRA step, 4 x 256 tokens:
//! the f32 product the step runs today (candle's gemm, AVX-512 where the CPU
//! has it) side by side with the bf16 product of `spectrum_lm::bf16` on each
//! unit this CPU offers (AMX, AVX512-BF16; the weight packed once, the
//! activations rounded per call), alternating, best of `ROUNDS` (default 3)
//! each; then what the whole step's frozen products take with each.
//!
//!     cargo bench --profile dev -p spectrum-lm --bench bf16_products
//!
//! On a CPU with neither unit it says so and measures only f32.

use std::time::Instant;

use candle_core::{Device, Tensor};
use spectrum_lm::bf16::{self, Bf16Unit, PackedWeight};
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

fn main() -> candle_core::Result<()> {
    // The allocator keeping its pages, as in training: otherwise both sides
    // time the kernel zeroing fresh pages for every output.
    spectrum_lm::process::settle_environment();
    spectrum_lm::fpu::flush_subnormals();
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let units = Bf16Unit::available();
    let names: Vec<&str> = units.iter().map(|u| u.name()).collect();
    println!(
        "CPU: {}; {} threads, kernels {}; bf16 units: {}",
        spectrum_lm::machine::cpu_model(),
        candle_core::utils::get_num_threads(),
        spectrum_lm::isa::Isa::best().name(),
        if units.is_empty() {
            "none (f32 only)".to_string()
        } else {
            names.join(", ")
        }
    );
    print!("{:<12} {:>18} {:>9}", "product", "m x k x n", "f32 GF/s");
    for name in &names {
        print!(
            " {:>12} {:>6} {:>8}",
            format!("{name} GF/s"),
            "ratio",
            "max err"
        );
    }
    println!();
    let mut f32_step = 0.0;
    let mut unit_step = vec![0.0; units.len()];
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
            let scale = reference.iter().map(|v| v.abs()).sum::<f32>() / reference.len() as f32;
            let packed = PackedWeight::pack(&w, out, inp, transposed);
            let mut c = vec![0f32; TOKENS * n];
            let mut best = vec![f64::INFINITY; units.len() + 1];
            // Alternating: each round times f32, then every unit.
            for round in 0..=rounds {
                for (i, slot) in best.iter_mut().enumerate() {
                    let t = Instant::now();
                    match i.checked_sub(1) {
                        None => {
                            std::hint::black_box(at.matmul(&bt)?);
                        }
                        Some(u) => bf16::matmul(units[u], &mut c, &a, TOKENS, &packed, false),
                    }
                    if round > 0 {
                        *slot = slot.min(t.elapsed().as_secs_f64());
                    }
                }
            }
            f32_step += best[0] * count as f64;
            print!(
                "{:<12} {:>18} {:>9.0}",
                format!("{name} {dir}"),
                format!("{TOKENS} x {k} x {n}"),
                flops / best[0] / 1e9
            );
            for (u, &unit) in units.iter().enumerate() {
                bf16::matmul(unit, &mut c, &a, TOKENS, &packed, false);
                let err = c
                    .iter()
                    .zip(&reference)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max)
                    / scale;
                unit_step[u] += best[u + 1] * count as f64;
                print!(
                    " {:>12.0} {:>6} {:>8.1e}",
                    flops / best[u + 1] / 1e9,
                    format!("{:.2}x", best[0] / best[u + 1]),
                    err
                );
            }
            println!();
        }
    }
    print!("a LoRA step's frozen products: f32 {f32_step:.2} s");
    for (name, t) in names.iter().zip(&unit_step) {
        print!(", {name} {t:.2} s ({:.2}x)", f32_step / t);
    }
    println!();
    println!("(max err: the largest |bf16 - f32| over the mean |f32| of the product)");
    Ok(())
}
