//! What candle's elementwise pool costs the matrix multiply after it: the
//! sequence of a backward pass (a gradient zeroed and added on candle's
//! barrier pool, then a product on rayon's threads), timed in processes that
//! differ only in `CANDLE_BARRIER_POOL_SPIN_LIMIT`: candle's default (25,000
//! pauses of spinning after each kernel) against the front ends' setting
//! (`spectrum_lm::process`), alternating `ROUNDS` times (default 8), medians.
//!
//!     cargo bench --profile dev -p spectrum-lm --bench pool_spin

use std::process::Command;
use std::time::Instant;

use candle_core::{Device, Tensor};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rows and widths of the default model's LoRA step (4 x 256 tokens, 576 wide).
const ROWS: usize = 1024;
const WIDTH: usize = 576;
/// Sequences timed per process.
const REPEATS: usize = 200;

/// One process's part: `REPEATS` times a zeroed gradient plus an added one
/// (candle's `GradStore`), then the product that a linear layer's backward
/// runs; seconds per sequence.
fn child() -> candle_core::Result<f64> {
    let dev = &Device::Cpu;
    let grad = Tensor::randn(0f32, 1.0, (ROWS, WIDTH), dev)?;
    let w = Tensor::randn(0f32, 0.05, (WIDTH, WIDTH), dev)?;
    let once = || -> candle_core::Result<Tensor> {
        let sum = grad.zeros_like()?.add(&grad)?;
        sum.matmul(&w)
    };
    for _ in 0..10 {
        once()?;
    }
    let start = Instant::now();
    for _ in 0..REPEATS {
        std::hint::black_box(once()?);
    }
    Ok(start.elapsed().as_secs_f64() / REPEATS as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> candle_core::Result<()> {
    spectrum_lm::fpu::flush_subnormals();
    if std::env::var_os("SPECTRUM_BENCH_CHILD").is_some() {
        println!("{}", child()?);
        return Ok(());
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(8);
    println!("{}", spectrum_lm::machine::Machine::describe());
    let ours = spectrum_lm::process::CANDLE_SPIN_LIMIT;
    let exe = std::env::current_exe().expect("own path");
    let run = |limit: &str| -> f64 {
        let out = Command::new(&exe)
            .env("SPECTRUM_BENCH_CHILD", "1")
            .env("CANDLE_BARRIER_POOL_SPIN_LIMIT", limit)
            .env("MIMALLOC_PURGE_DELAY", "-1")
            .output()
            .expect("run the bench's child");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("seconds")
    };
    let (mut default, mut settled) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        default.push(run("25000"));
        settled.push(run(ours));
    }
    let (d, s) = (median(default), median(settled));
    println!("zero + add + product, [{ROWS}, {WIDTH}] x [{WIDTH}, {WIDTH}], medians of {rounds}:");
    println!("  spin limit 25000 (candle's default) {:>8.3} ms", d * 1e3);
    println!(
        "  spin limit {ours:<5} (the front ends) {:>8.3} ms",
        s * 1e3
    );
    println!("  ratio {:.2}x", d / s);
    Ok(())
}
