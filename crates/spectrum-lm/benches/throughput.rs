//! Scoring and generation throughput on the default model (SmolLM2-135M, f32,
//! CPU), side by side with Hugging Face transformers on PyTorch in the same run
//! (same token ids, same batch), plus the achieved GFLOP/s against this
//! machine's measured matrix-multiply rate.
//!
//!     cargo bench -p spectrum-lm --bench throughput
//!
//! Needs the default model (`spectrum model default`) and a Python with torch
//! and transformers (`SPECTRUM_BENCH_PYTHON`, default bench/.venv/bin/python).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use spectrum_core::Rng;
use spectrum_lm::machine::{GemmProbe, Machine, Operands, gemm_gflops};
use spectrum_lm::{DeviceSpec, LanguageModel, SamplingParams};

// The allocator and environment the `spectrum` binary runs with (see its
// main.rs): mimalloc, keeping freed memory instead of faulting it back in
// every pass, and candle's pool not spinning (`spectrum_lm::process`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SEQUENCES: usize = 16;
const LENGTH: usize = 256;
const BATCH: usize = 4;
const PROMPT: usize = 32;
const SAMPLES: usize = 8;
const NEW_TOKENS: usize = 64;

fn main() {
    spectrum_lm::process::settle_environment();
    spectrum_lm::fpu::flush_subnormals();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model_dir = spectrum_lm::default_model::for_benchmarks(env!("CARGO_TARGET_TMPDIR"));
    let python = std::env::var("SPECTRUM_BENCH_PYTHON")
        .unwrap_or_else(|_| root.join("bench/.venv/bin/python").display().to_string());

    let mut rng = Rng::new(42);
    let sequences: Vec<Vec<u32>> = (0..SEQUENCES)
        .map(|_| {
            (0..LENGTH)
                .map(|_| 100 + rng.below(40_000) as u32)
                .collect()
        })
        .collect();
    let prompt: Vec<u32> = sequences[0][..PROMPT].to_vec();
    let ids_file = std::env::temp_dir().join("spectrum-bench-ids.json");
    std::fs::write(&ids_file, serde_json::json!({"sequences": sequences, "prompt": prompt, "batch": BATCH, "samples": SAMPLES, "new_tokens": NEW_TOKENS}).to_string()).expect("write ids");

    let mut lm = spectrum_lm::load_local(&model_dir, DeviceSpec::Cpu).expect("load model");
    let params = lm.model.config().parameters() as f64;

    // The machine's speed drifts between processes as much as the effects
    // measured: alternate ours and PyTorch ROUNDS times (default 2) and keep
    // each side's best, as the training bench does.
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    let sampling = SamplingParams {
        n: SAMPLES,
        temperature: 1.0,
        max_tokens: NEW_TOKENS,
        seed: 1,
        ..SamplingParams::default()
    };
    let (mut score_tps, mut gen_tps) = (0f64, 0f64);
    let (mut b_score, mut b_gen, mut d_score, mut d_gen) = (0f64, 0f64, 0f64, 0f64);
    for _ in 0..rounds.max(1) {
        // Scoring: best of 3.
        let score_secs = best_of(3, || {
            for batch in sequences.chunks(BATCH) {
                lm.score_tokens(batch).expect("score");
            }
        });
        score_tps = score_tps.max((SEQUENCES * LENGTH) as f64 / score_secs);
        // Generation: sampled, no stop, fixed length.
        let gen_secs = best_of(3, || {
            let out = lm.sample(&prompt, &sampling).expect("sample");
            assert!(out.iter().all(|s| s.len() == NEW_TOKENS));
        });
        gen_tps = gen_tps.max((SAMPLES * NEW_TOKENS) as f64 / gen_secs);

        // PyTorch at its best (subnormals flushed, a thread per core, on AMD
        // oneMKL's Intel paths), and as it starts, printed too where the two differ.
        for (settings, score, sampled) in [
            ("best", &mut b_score, &mut b_gen),
            ("default", &mut d_score, &mut d_gen),
        ] {
            let torch = Command::new(&python)
                .arg(root.join("bench/lm_torch.py"))
                .arg(&model_dir)
                .arg(&ids_file)
                .env("SPECTRUM_TORCH_SETTINGS", settings)
                .output()
                .expect("run the PyTorch baseline");
            assert!(
                torch.status.success(),
                "PyTorch baseline failed:\n{}",
                String::from_utf8_lossy(&torch.stderr)
            );
            let t: serde_json::Value =
                serde_json::from_slice(&torch.stdout).expect("baseline JSON");
            *score = score.max(t["score_tokens_per_s"].as_f64().expect("score"));
            *sampled = sampled.max(t["generate_tokens_per_s"].as_f64().expect("gen"));
        }
    }
    // The ratio is against the faster of PyTorch's two settings.
    let (t_score, t_gen) = (b_score.max(d_score), b_gen.max(d_gen));
    let matmul = gemm_gflops(2048, Operands::Ordinary).expect("matmul");
    let probe = GemmProbe::run(1024).expect("matmul probe");

    let gflops = |tps: f64| 2.0 * params * tps / 1e9;
    println!(
        "\nSmolLM2-135M ({:.1}M parameters), f32, CPU, {} threads; best of {} alternating rounds",
        params / 1e6,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        rounds.max(1)
    );
    println!("{}", Machine::describe());
    println!("{probe}");
    println!("matrix multiply (2048x2048, candle): {matmul:.1} GFLOP/s\n");
    println!(
        "{:<44} {:>12} {:>12} {:>8}",
        "", "spectrum", "PyTorch", "ratio"
    );
    println!(
        "{:<44} {:>12.0} {:>12.0} {:>7.2}x",
        format!("scoring tokens/s ({SEQUENCES} x {LENGTH}, batch {BATCH})"),
        score_tps,
        t_score,
        score_tps / t_score
    );
    println!(
        "{:<44} {:>12.1} {:>12.1} {:>7.2}x",
        format!("generation tokens/s ({SAMPLES} samples x {NEW_TOKENS})"),
        gen_tps,
        t_gen,
        gen_tps / t_gen
    );
    println!(
        "\nscoring achieves {:.1} GFLOP/s = {:.0}% of the matmul rate (2 x params x tokens)",
        gflops(score_tps),
        100.0 * gflops(score_tps) / matmul
    );
    println!(
        "generation achieves {:.1} GFLOP/s = {:.0}% of the matmul rate",
        gflops(gen_tps),
        100.0 * gflops(gen_tps) / matmul
    );
    println!(
        "PyTorch: the faster of as it starts and at its best: subnormals flushed, one thread per core, on AMD CPUs oneMKL's Intel code paths (bench/torch_cpu.py)"
    );
    for (what, best, plain) in [("scoring", b_score, d_score), ("generation", b_gen, d_gen)] {
        if (plain - best).abs() > 0.03 * best {
            println!(
                "{what}: PyTorch {best:.1} tokens/s at its best (subnormals flushed, a thread per core, on AMD oneMKL's Intel paths), {plain:.1} as it starts"
            );
        }
    }
}

fn best_of(n: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
