//! Training throughput and peak memory on the default model (SmolLM2-135M, f32,
//! CPU), LoRA and full fine-tuning, side by side in one run with a PyTorch +
//! transformers (+ peft) loop doing the same work: the same token ids and loss
//! masks, the same micro-batches, forward + backward + clipping + AdamW.
//!
//!     cargo bench -p spectrum-train --bench train_throughput
//!
//! Needs the default model (`spectrum model default`) and a Python with torch,
//! transformers and peft (`SPECTRUM_BENCH_PYTHON`, default bench/.venv/bin/python).
//!
//! `SPECTRUM_BENCH_SHAPE=qwen2.5-0.5b` (or qwen2.5-1.5b, llama-3.2-1b,
//! qwen2.5-7b) measures a randomly initialised model of that published shape
//! instead (`spectrum_lm::shapes`; written once under the target folder), so
//! that real sizes can be measured on a machine that reaches no network
//! (`SPECTRUM_BENCH_TMP` says where, for a binary carried to another machine).
//! Each configuration runs in its own process so peak memory is its own.
//!
//! `SPECTRUM_BENCH_DEVICE=cuda:0` trains on that device instead of the CPU,
//! in bf16 (a build with `--features cuda`); the peak is then the GPU
//! memory `nvidia-smi` reports for the process, sampled every 100 ms.
//!
//! `SPECTRUM_BENCH_MEMORY=1` measures our side only, with and without
//! gradient checkpointing, and prints each run's peak beside the memory
//! estimate `spectrum train` shows (`spectrum_train::memory`) and their ratio,
//! and, given the device's dense peak (`SPECTRUM_BENCH_PEAK_TFLOPS`, e.g. 989
//! for an H100/H200's bf16), the model FLOP utilisation: 6 x parameters
//! (full) or 4 x (LoRA) x tokens/s over that peak.
//! `SPECTRUM_BENCH_LENGTH` and `SPECTRUM_BENCH_BATCH` change the 4 x 256
//! tokens of a micro-batch; `SPECTRUM_BENCH_MODES=lora,lora-ckpt` runs only
//! those of `lora`, `lora-ckpt`, `full`, `full-ckpt`.
//!
//! `SPECTRUM_BENCH_STEPS` times more steps than 3: a profile of the steps
//! alone, past loading and the warm-up, e.g. `SPECTRUM_BENCH_STEPS=12
//! SPECTRUM_BENCH_CHILD=lora perf record --call-graph dwarf
//! target/debug/deps/train_throughput-*` (the dependencies carry no frame
//! pointers, so `-g` shows no callers).
//! The PyTorch side runs at its default settings and with subnormals flushed
//! and a thread per core, on AMD CPUs with oneMKL taking its Intel code
//! paths (`bench/torch_cpu.py`); ratios are against the
//! faster. `faults` are the page faults of a timed step.
//!
//! On a CPU with a bf16 unit (AMX, or AVX512-BF16), a third row,
//! `lora-bf16`: LoRA with the frozen weights' products in bf16 on it
//! (`frozen_matmul: bf16`) against PyTorch's two bf16 CPU paths (bf16 matmul precision for f32
//! matrix multiplies, and autocast), ratio against the faster.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use spectrum_lm::machine::{GemmProbe, Machine, Operands, gemm_gflops};
use spectrum_suite::Rng;
use spectrum_train::data::Item;
use spectrum_train::optim::AdamW;
use spectrum_train::{Method, RunSpec, Trainable};

// The allocator the `spectrum` binary uses: it keeps freed memory for reuse
// instead of returning it to the OS and faulting it back in, zeroed, each step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Timed steps after the warm-up (3 unless `SPECTRUM_BENCH_STEPS` says
/// otherwise: more for a profile of the steps alone).
fn steps() -> usize {
    std::env::var("SPECTRUM_BENCH_STEPS").map_or(3, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("SPECTRUM_BENCH_STEPS={v:?} is not a count"))
    })
}

/// Sequences per micro-batch and tokens per sequence (4 x 256 unless set).
fn batch_shape() -> (usize, usize) {
    let get = |name: &str, default: usize| {
        std::env::var(name).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a count"))
        })
    };
    (
        get("SPECTRUM_BENCH_BATCH", 4),
        get("SPECTRUM_BENCH_LENGTH", 256),
    )
}

/// The device `SPECTRUM_BENCH_DEVICE` names (the CPU when unset).
fn bench_device() -> spectrum_lm::DeviceSpec {
    std::env::var("SPECTRUM_BENCH_DEVICE").map_or(spectrum_lm::DeviceSpec::Cpu, |d| {
        spectrum_lm::DeviceSpec::parse(&d)
            .unwrap_or_else(|| panic!("SPECTRUM_BENCH_DEVICE={d:?}: cpu or cuda:N"))
    })
}

fn main() {
    // As the `spectrum` binary does; its children inherit the environment.
    spectrum_lm::process::settle_environment();
    spectrum_lm::fpu::flush_subnormals();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shape = std::env::var("SPECTRUM_BENCH_SHAPE").ok();
    let model_dir = match &shape {
        Some(name) => {
            // `SPECTRUM_BENCH_TMP`: where to write it when the build's own
            // target folder is not there (a binary carried to another machine).
            let tmp = std::env::var_os("SPECTRUM_BENCH_TMP")
                .map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
            let dir = tmp.join("shapes").join(name);
            spectrum_lm::shapes::write_model(name, &dir, 0).expect("model of a named shape")
        }
        None => spectrum_lm::default_model::for_benchmarks(env!("CARGO_TARGET_TMPDIR")),
    };
    let batch_file = std::env::temp_dir().join("spectrum-train-bench.json");
    if let Ok(mode) = std::env::var("SPECTRUM_BENCH_CHILD") {
        let report = child(&mode, &model_dir, &batch_file);
        println!("{report}");
        return;
    }

    // Token ids and loss masks: loss on the last third of each sequence, like
    // the outputs of a Spectrum sequence.
    let (batch, length) = batch_shape();
    let steps = steps();
    let mut rng = Rng::new(7);
    let items: Vec<Item> = (0..batch)
        .map(|_| Item {
            ids: (0..length)
                .map(|_| 100 + rng.below(40_000) as u32)
                .collect(),
            loss: (0..length).map(|p| p >= 2 * length / 3).collect(),
        })
        .collect();
    let spec = serde_json::json!({
        "ids": items.iter().map(|i| &i.ids).collect::<Vec<_>>(),
        "loss": items.iter().map(|i| &i.loss).collect::<Vec<_>>(),
        "steps": steps,
        "lora": lora(),
    });
    std::fs::write(&batch_file, spec.to_string()).expect("write the batch");

    let python = std::env::var("SPECTRUM_BENCH_PYTHON")
        .unwrap_or_else(|_| root.join("bench/.venv/bin/python").display().to_string());
    let exe = std::env::current_exe().expect("own path");
    let run = |program: &Path, args: &[&str], mode: &str, env: &[(&str, &str)]| {
        let out = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .env("SPECTRUM_BENCH_CHILD", mode)
            .output()
            .expect("run a benchmark process");
        assert!(
            out.status.success(),
            "{} {mode} failed:\n{}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str::<serde_json::Value>(text.lines().last().unwrap_or_default())
            .expect("JSON report")
    };
    if std::env::var_os("SPECTRUM_BENCH_MEMORY").is_some() {
        let device = bench_device();
        let peak_tflops: Option<f64> = std::env::var("SPECTRUM_BENCH_PEAK_TFLOPS")
            .ok()
            .map(|v| v.parse().expect("SPECTRUM_BENCH_PEAK_TFLOPS: a number"));
        println!(
            "\n{}, {} on {device}; {steps} steps of {batch} x {length} tokens (loss on the last third)",
            shape.as_deref().unwrap_or("SmolLM2-135M"),
            if device == spectrum_lm::DeviceSpec::Cpu {
                "f32"
            } else {
                "bf16"
            },
        );
        println!("{}\n", Machine::describe());
        println!(
            "{:<30} {:>10} {:>10} {:>7} {:>10} {:>6}",
            "",
            if device == spectrum_lm::DeviceSpec::Cpu {
                "peak MiB"
            } else {
                "GPU MiB"
            },
            "estimate",
            "ratio",
            "tokens/s",
            "MFU"
        );
        let modes = std::env::var("SPECTRUM_BENCH_MODES")
            .unwrap_or_else(|_| "lora,lora-ckpt,full,full-ckpt".into());
        for mode in modes.split(',').map(str::trim) {
            assert!(
                ["lora", "lora-ckpt", "full", "full-ckpt"].contains(&mode),
                "SPECTRUM_BENCH_MODES: {mode:?} is not lora, lora-ckpt, full or full-ckpt"
            );
            let ours = run(&exe, &[], mode, &[]);
            let get = |k: &str| ours[k].as_f64().unwrap_or(0.0);
            let per_token = if mode.starts_with("lora") { 4.0 } else { 6.0 } * get("parameters");
            let mfu = peak_tflops.map_or("-".to_string(), |peak| {
                format!(
                    "{:.1}%",
                    100.0 * per_token * get("tokens_per_s") / (peak * 1e12)
                )
            });
            println!(
                "{:<30} {:>10.0} {:>10.0} {:>6.2}x {:>10.0} {:>6}",
                mode.replace("-ckpt", " + checkpointing"),
                get("peak_mib"),
                get("estimate_mib"),
                get("estimate_mib") / get("peak_mib"),
                get("tokens_per_s"),
                mfu
            );
        }
        return;
    }
    let script = root.join("bench/train_torch.py");
    let model_arg = model_dir.display().to_string();
    let batch_arg = batch_file.display().to_string();
    // The machine's speed drifts between processes (PyTorch alone ranged over
    // 25% across one session's runs): alternate the two sides ROUNDS times and
    // keep each one's best, as for any throughput figure.
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    let matmul = gemm_gflops(2048, Operands::Ordinary).expect("matmul");
    let probe = GemmProbe::run(1024).expect("matmul probe");
    println!(
        "\n{}, f32, CPU, {} threads; {steps} steps of {batch} x {length} tokens (loss on the last third); best of {rounds} alternating rounds",
        shape
            .as_deref()
            .map_or("SmolLM2-135M".to_string(), |s| format!(
                "{s} (random weights)"
            )),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("{}", Machine::describe());
    println!("{probe}");
    println!("matrix multiply (2048x2048, candle): {matmul:.1} GFLOP/s\n");
    println!(
        "{:<24} {:>10} {:>10} {:>7}   {:>10} {:>10} {:>7}   {:>9}   {:>8} {:>8}",
        "",
        "tokens/s",
        "PyTorch",
        "ratio",
        "peak MiB",
        "PyTorch",
        "ratio",
        "% matmul",
        "faults",
        "PyTorch"
    );
    let mut defaults = Vec::new();
    let mut modes = vec!["lora", "full"];
    if spectrum_lm::bf16::Bf16Unit::get().is_some() {
        modes.push("lora-bf16");
    }
    for mode in modes {
        let (mut a, mut ma, mut mb, mut params) = (0f64, 0f64, 0f64, 0f64);
        let (mut b_best, mut b_default) = (0f64, 0f64);
        let (mut faults, mut their_faults) = (f64::MAX, f64::MAX);
        let torch_args = [&script.display().to_string(), &model_arg, &batch_arg, mode];
        // PyTorch's two ways of running the mode: at its best (subnormals
        // flushed, a thread per core, on AMD oneMKL's Intel paths) and as it
        // starts; for bf16, its two
        // bf16 paths. The ratio is against the faster, both are printed
        // where they differ.
        let (first, second): (TorchVariant, TorchVariant) = if mode == "lora-bf16" {
            (
                (
                    "bf16 matmul precision",
                    &[("SPECTRUM_TORCH_BF16", "matmul")],
                ),
                ("bf16 autocast", &[("SPECTRUM_TORCH_BF16", "autocast")]),
            )
        } else {
            (
                (
                    "its best settings (subnormals flushed, a thread per core, on AMD oneMKL's Intel paths)",
                    &[],
                ),
                ("as it starts", &[("SPECTRUM_TORCH_SETTINGS", "default")]),
            )
        };
        for _ in 0..rounds.max(1) {
            let get = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(0.0);
            let ours = run(&exe, &[], mode, &[]);
            let theirs = run(Path::new(&python), &torch_args, mode, first.1);
            let plain = run(Path::new(&python), &torch_args, mode, second.1);
            a = a.max(get(&ours, "tokens_per_s"));
            b_best = b_best.max(get(&theirs, "tokens_per_s"));
            b_default = b_default.max(get(&plain, "tokens_per_s"));
            ma = ma.max(get(&ours, "peak_mib"));
            mb = mb.max(get(&theirs, "peak_mib"));
            faults = faults.min(get(&ours, "faults_per_step"));
            their_faults = their_faults.min(get(&theirs, "faults_per_step"));
            params = get(&ours, "parameters");
        }
        // The ratio is against the faster of PyTorch's two settings.
        let b = b_best.max(b_default);
        // Forward 2 x params x tokens, backward about twice that (LoRA: the
        // weight gradients are skipped, about 1 x more instead of 2 x).
        let flops_per_token = if mode == "full" { 6.0 } else { 4.0 } * params;
        println!(
            "{:<24} {:>10.0} {:>10.0} {:>6.2}x   {:>10.0} {:>10.0} {:>6.2}x   {:>8.0}%   {:>8.0} {:>8.0}",
            format!("{mode} training"),
            a,
            b,
            a / b,
            ma,
            mb,
            ma / mb,
            100.0 * flops_per_token * a / 1e9 / matmul,
            faults,
            their_faults
        );
        if (b_default - b_best).abs() > 0.03 * b_best {
            defaults.push(format!(
                "{mode}: PyTorch {b_best:.0} tokens/s with {}, {b_default:.0} with {}",
                first.0, second.0
            ));
        }
    }
    for line in defaults {
        println!("{line}");
    }
    println!(
        "\n% matmul: achieved GFLOP/s (forward 2x, backward 2x (LoRA) or 4x (full) params per token) over the matmul rate\nfaults: page faults per step after the warm-up (pages the kernel zeroed because memory went back to the OS)\nPyTorch: the faster of as it starts and at its best: subnormals flushed, one thread per core, on AMD CPUs oneMKL's Intel code paths (bench/torch_cpu.py)"
    );
}

/// One way of running PyTorch: its name, and the environment that sets it.
type TorchVariant = (&'static str, &'static [(&'static str, &'static str)]);

/// The `cpu` preset's LoRA setting.
fn lora() -> serde_json::Value {
    match RunSpec::default().method {
        Method::Lora(config) => serde_json::to_value(config).expect("json"),
        Method::Full => unreachable!("the cpu preset trains LoRA adapters"),
    }
}

/// One configuration, in this process: load, warm up one step, time [`steps`].
fn child(mode: &str, model_dir: &Path, batch_file: &Path) -> serde_json::Value {
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(batch_file).expect("batch")).expect("json");
    let items: Vec<Item> = serde_json::from_value::<Vec<Vec<u32>>>(spec["ids"].clone())
        .expect("ids")
        .into_iter()
        .zip(serde_json::from_value::<Vec<Vec<bool>>>(spec["loss"].clone()).expect("loss"))
        .map(|(ids, loss)| Item { ids, loss })
        .collect();
    let (mode, checkpointing) = match mode.strip_suffix("-ckpt") {
        Some(m) => (m, true),
        None => (mode, false),
    };
    let (mode, frozen_matmul) = match mode.strip_suffix("-bf16") {
        Some(m) => (m, spectrum_train::FrozenMatmul::Bf16),
        None => (mode, spectrum_train::FrozenMatmul::F32),
    };
    let method = if mode == "lora" {
        Method::Lora(serde_json::from_value(spec["lora"].clone()).expect("lora"))
    } else {
        Method::Full
    };
    let device = bench_device();
    let (batch, length) = (items.len(), items[0].ids.len());
    let run = RunSpec {
        method,
        device,
        gradient_checkpointing: checkpointing,
        micro_batch: batch,
        max_tokens: length,
        max_batch_tokens: batch * length,
        frozen_matmul,
        ..RunSpec::default()
    };
    run.validate().expect("a valid run");
    // As `spectrum_train::train` does for a run, on the thread that trains.
    spectrum_lm::ops::set_frozen_matmul(frozen_matmul);
    let gpu = (device != spectrum_lm::DeviceSpec::Cpu).then(GpuPeak::start);
    let mut model = Trainable::load(&run, model_dir).expect("load");
    model.lm.model.set_mode(spectrum_lm::models::Mode::Training);
    let mut opt = AdamW::new(&model.vars, 0.0).expect("optimizer");
    let cancel = AtomicBool::new(false);
    let micro = vec![items];
    model
        .step(&mut opt, &micro, 1e-4, 1.0, usize::MAX, &cancel)
        .expect("warm-up");
    let (start, faults) = (Instant::now(), minor_faults());
    let steps = steps();
    for _ in 0..steps {
        model
            .step(&mut opt, &micro, 1e-4, 1.0, usize::MAX, &cancel)
            .expect("step");
    }
    let secs = start.elapsed().as_secs_f64();
    let faults = (minor_faults() - faults) as f64 / steps as f64;
    let estimate = spectrum_train::memory::estimate(model.lm.model.config(), &run, 1.0 / 3.0);
    serde_json::json!({
        "tokens_per_s": (steps * batch * length) as f64 / secs,
        "faults_per_step": faults,
        "peak_mib": gpu.map_or_else(peak_rss_mib, GpuPeak::stop),
        "estimate_mib": estimate.total as f64 / (1u64 << 20) as f64,
        "parameters": model.lm.model.config().parameters(),
    })
}

/// The most GPU memory this process held while it ran, as `nvidia-smi`
/// reports it (sampled every 100 ms on a thread of its own).
struct GpuPeak {
    stop: std::sync::Arc<AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

impl GpuPeak {
    fn start() -> GpuPeak {
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let pid = std::process::id().to_string();
        let thread = std::thread::spawn(move || {
            let mut peak = 0f64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let out = Command::new("nvidia-smi")
                    .args([
                        "--query-compute-apps=pid,used_memory",
                        "--format=csv,noheader,nounits",
                    ])
                    .output();
                let Ok(out) = out else { return f64::NAN };
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    let mut fields = line.split(',').map(str::trim);
                    if fields.next() == Some(pid.as_str())
                        && let Some(mib) = fields.next().and_then(|m| m.parse::<f64>().ok())
                    {
                        peak = peak.max(mib);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            peak
        });
        GpuPeak { stop, thread }
    }

    fn stop(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(f64::NAN)
    }
}

/// Peak resident memory of this process (VmHWM), in MiB.
/// Page faults this process took that needed no disk (`/proc/self/stat`'s
/// minflt): after the warm-up, each is a page the kernel zeroed for memory
/// the allocator gave back and asked for again.
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which is in parentheses).
            let rest = &s[s.rfind(')')? + 2..];
            rest.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
