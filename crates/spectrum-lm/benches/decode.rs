//! The products of one decoding step of the default model (SmolLM2-135M,
//! 8 samples: 8 rows of `x` against every weight of the model, the tied LM
//! head included), reading the f32 weights and reading the GGUF blocks they
//! were dequantised from (`spectrum_lm::blocks`), side by side, alternating,
//! best of `ROUNDS` (default 5) each, for the whole step and per weight
//! shape. The results are checked equal, bit for bit, first.
//!
//!     cargo bench --profile dev -p spectrum-lm --bench decode

use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use spectrum_lm::blocks::Blocks;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROWS: usize = 8;

/// A weight, its blocks, and the rows of x it multiplies.
type Layer = (Tensor, Arc<Blocks>, Tensor);

fn products(layers: &[&Layer], with_blocks: bool) -> Vec<Tensor> {
    layers
        .iter()
        .map(|(w, b, x)| {
            let b = with_blocks.then_some(&**b);
            spectrum_lm::ops::linear_with(x, w, None, b).expect("product")
        })
        .collect()
}

/// Best time of `rounds` for the products of `layers`: [f32, blocks].
fn best_of(rounds: usize, layers: &[&Layer]) -> [f64; 2] {
    let mut best = [f64::INFINITY; 2];
    for _ in 0..rounds.max(1) {
        for (i, with_blocks) in [false, true].into_iter().enumerate() {
            let t = Instant::now();
            products(layers, with_blocks);
            best[i] = best[i].min(t.elapsed().as_secs_f64());
        }
    }
    best
}

fn bits(t: &Tensor) -> Vec<u32> {
    let v: Vec<f32> = t.flatten_all().and_then(|t| t.to_vec1()).expect("values");
    v.iter().map(|f| f.to_bits()).collect()
}

fn main() -> candle_core::Result<()> {
    spectrum_lm::fpu::flush_subnormals();
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let dir = spectrum_lm::default_model::for_benchmarks(env!("CARGO_TARGET_TMPDIR"));
    let blocks = spectrum_lm::blocks::read(&dir).expect("the default model's blocks");
    let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
    let mut layers: Vec<Layer> = Vec::new();
    for (name, b) in &blocks {
        let w = weights[name].to_dtype(DType::F32)?;
        let x = Tensor::randn(0f32, 1.0, (ROWS, w.dim(1)?), &Device::Cpu)?;
        layers.push((w, b.clone(), x));
    }
    let all: Vec<&Layer> = layers.iter().collect();
    // Equal results, bit for bit (and each weight's check of its blocks done
    // before timing).
    for (a, b) in products(&all, false).iter().zip(products(&all, true)) {
        assert_eq!(bits(a), bits(&b), "the blocks give the f32 results");
    }
    println!(
        "{} weights, {ROWS} rows of x; {} threads, kernels {}",
        layers.len(),
        candle_core::utils::get_num_threads(),
        spectrum_lm::isa::Isa::best().name()
    );
    let f32_bytes: usize = layers.iter().map(|(w, ..)| w.elem_count() * 4).sum();
    let block_bytes: usize = layers.iter().map(|(_, b, _)| b.bytes_read()).sum();
    let [f32_s, blocks_s] = best_of(rounds, &all);
    for (what, bytes, s) in [
        ("f32 weights", f32_bytes, f32_s),
        ("GGUF blocks", block_bytes, blocks_s),
    ] {
        println!(
            "{what}: {:6.1} ms a step, {:5.1} MB read at {:5.1} GB/s",
            s * 1e3,
            bytes as f64 / 1e6,
            bytes as f64 / s / 1e9
        );
    }
    println!("blocks / f32 speed: {:.2}x", f32_s / blocks_s);

    // Per shape: where the step's time goes.
    let shape = |l: &Layer| l.0.dims2().expect("a matrix");
    let mut shapes: Vec<(usize, usize)> = layers.iter().map(shape).collect();
    shapes.sort();
    shapes.dedup();
    println!(
        "\n{:>14} {:>7} {:>9} {:>9} {:>7} {:>14}",
        "W [n, k]", "weights", "f32 ms", "blocks ms", "ratio", "blocks GFLOP/s"
    );
    for s in shapes {
        let of: Vec<&Layer> = layers.iter().filter(|l| shape(l) == s).collect();
        let [f, b] = best_of(rounds, &of);
        let flops = (of.len() * s.0 * s.1 * ROWS * 2) as f64;
        println!(
            "{:>14} {:>7} {:>9.2} {:>9.2} {:>6.2}x {:>14.0}",
            format!("{s:?}"),
            of.len(),
            f * 1e3,
            b * 1e3,
            f / b,
            flops / b / 1e9
        );
    }
    Ok(())
}
