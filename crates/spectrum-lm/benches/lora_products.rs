//! Where a LoRA step's skinny products should run: the products with an
//! adapter-rank side (`x Aᵀ` [rows, r], `∂h = dy B` [rows, r], `∂B` [out, r],
//! `∂A` [r, in]) of the default model's step (SmolLM2-135M, rank 16, 4 x 256
//! tokens; the fused MLP's two adapters side by side, 2r), each on the
//! calling thread and split over the compute pool, alternating `ROUNDS` times
//! (default 100) with a little serial work between (as in a step, where the
//! pool's threads fall asleep between products), medians; then a step's
//! worth of each. `spectrum_lm::ops` runs skinny products on the calling
//! thread on machines of two compute threads.
//!
//!     cargo bench --profile dev -p spectrum-lm --bench lora_products

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROWS: usize = 1024;

/// (what, m, n, k, calls in a step of 30 layers).
const SHAPES: &[(&str, usize, usize, usize, usize)] = &[
    ("x Aᵀ, q k v o", ROWS, 16, 576, 120),
    ("x Aᵀ, down", ROWS, 16, 1536, 30),
    ("x Aᵀ, gate+up", ROWS, 32, 576, 30),
    ("∂h, q o down", ROWS, 16, 576, 90),
    ("∂h, k v", ROWS, 16, 192, 60),
    ("∂h, gate up", ROWS, 16, 1536, 60),
    ("∂B, q o down", 576, 16, ROWS, 90),
    ("∂B, k v", 192, 16, ROWS, 60),
    ("∂B, gate up", 1536, 16, ROWS, 60),
    ("∂A, q k v o", 16, 576, ROWS, 120),
    ("∂A, down", 16, 1536, ROWS, 30),
    ("∂A, gate+up", 32, 576, ROWS, 30),
];

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 + seed) % 13) as f32 * 0.01)
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    spectrum_lm::fpu::flush_subnormals();
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100);
    println!("{}", spectrum_lm::machine::Machine::describe());
    println!(
        "{:<16} {:>18} {:>12} {:>12} {:>9}",
        "product", "m x n x k", "here µs", "pool µs", "pool/here"
    );
    let (mut here_step, mut pool_step) = (0.0, 0.0);
    for &(what, m, n, k, calls) in SHAPES {
        let (a, b) = (values(m * k, 1), values(k * n, 2));
        let time = |on_pool: bool| {
            // Serial work between products, as a step has (norms, candle's
            // zeroed gradients): long enough for idle pool threads to sleep.
            std::hint::black_box(vec![1u8; 1 << 20]);
            let start = Instant::now();
            std::hint::black_box(spectrum_lm::ops::matmul_placed(&a, &b, (m, n, k), on_pool));
            start.elapsed().as_secs_f64()
        };
        let (mut here, mut pool) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            here.push(time(false));
            pool.push(time(true));
        }
        let (h, p) = (median(here), median(pool));
        here_step += h * calls as f64;
        pool_step += p * calls as f64;
        println!(
            "{what:<16} {:>18} {:>12.1} {:>12.1} {:>8.2}x",
            format!("{m} x {n} x {k}"),
            h * 1e6,
            p * 1e6,
            p / h
        );
    }
    println!(
        "a step's skinny products: {:.1} ms here, {:.1} ms on the pool: {:.2}x",
        here_step * 1e3,
        pool_step * 1e3,
        pool_step / here_step
    );
}
