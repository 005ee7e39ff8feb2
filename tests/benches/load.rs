//! Load test of `spectrum serve` (loopback only): 64 concurrent clients for a
//! minute against the default model, a mix of teacher-forced scoring (echo +
//! logprobs, 128 tokens) and sampling (16 new tokens). Run twice side by side:
//! with batching off (each request alone: --max-batch-rows 1
//! --max-batch-tokens 1) and on (the defaults). Prints failures, throughput,
//! latency percentiles and the ratios; then stops each server with SIGTERM
//! and reports how long the clean shutdown took.
//!
//!     cargo bench -p spectrum-system-tests --bench load
//!
//! LOAD_CLIENTS (64) and LOAD_SECONDS (60) change the load.

use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spectrum_system_tests::{spectrum_bin, start_server};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Default)]
struct Tally {
    score: Vec<f64>,
    sample: Vec<f64>,
    failures: Vec<String>,
    tokens: usize,
}

struct Outcome {
    label: &'static str,
    tally: Tally,
    seconds: f64,
    shutdown_s: f64,
}

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    xs[((xs.len() - 1) as f64 * p).round() as usize]
}

fn start(store: &std::path::Path, extra: &[&str]) -> (Child, String) {
    let mut command = Command::new(spectrum_bin());
    command
        .args([
            "--store",
            store.to_str().expect("utf-8"),
            "--json",
            "serve",
            "--model",
            "smollm2",
            "--port",
            "0",
        ])
        .args(extra);
    start_server(command)
}

fn load(url: &str, clients: usize, seconds: u64) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    std::thread::scope(|scope| {
        for c in 0..clients {
            let tally = tally.clone();
            scope.spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(120))
                    .build();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    i += 1;
                    let seed = c as u64 * 1_000_003 + i;
                    let ids = |n: usize| -> Vec<u32> {
                        (0..n as u64)
                            .map(|k| 100 + ((seed * 7919 + k * 104_729) % 40_000) as u32)
                            .collect()
                    };
                    let scoring = (c as u64 + i).is_multiple_of(2);
                    let body = if scoring {
                        serde_json::json!({"model": "smollm2", "prompt": ids(128), "max_tokens": 0,
                                           "echo": true, "logprobs": 1})
                    } else {
                        serde_json::json!({"model": "smollm2", "prompt": ids(32), "max_tokens": 16,
                                           "temperature": 1.0, "seed": seed})
                    };
                    let started = Instant::now();
                    let result = agent.post(&format!("{url}/completions")).send_json(body);
                    let latency = started.elapsed().as_secs_f64();
                    let mut t = tally.lock().expect("tally");
                    match result.map(|r| r.into_json::<serde_json::Value>()) {
                        Ok(Ok(v)) => {
                            t.tokens += v["usage"]["total_tokens"].as_u64().unwrap_or(0) as usize;
                            if scoring {
                                t.score.push(latency)
                            } else {
                                t.sample.push(latency)
                            }
                        }
                        Ok(Err(e)) => t.failures.push(e.to_string()),
                        Err(e) => t.failures.push(e.to_string()),
                    }
                }
            });
        }
    });
    Arc::try_unwrap(tally)
        .expect("clients done")
        .into_inner()
        .expect("tally")
}

fn terminate(mut child: Child) -> f64 {
    let started = Instant::now();
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "spectrum serve exited with {status} on SIGTERM"
    );
    started.elapsed().as_secs_f64()
}

fn main() {
    let clients = env_or("LOAD_CLIENTS", 64);
    let seconds = env_or("LOAD_SECONDS", 60) as u64;
    let model = spectrum_lm::default_model::for_benchmarks(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.sqlite3");
    let added = Command::new(spectrum_bin())
        .args([
            "--store",
            store.to_str().expect("utf-8"),
            "model",
            "add",
            model.to_str().expect("utf-8"),
            "--name",
            "smollm2",
        ])
        .output()
        .expect("model add");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    println!(
        "spectrum serve, SmolLM2-135M f32 on the CPU, {clients} clients x {seconds} s, loopback"
    );
    println!(
        "half of the requests score 128 tokens (echo + logprobs), half sample 16 tokens after 32\n"
    );
    let mut outcomes = Vec::new();
    for (label, extra) in [
        (
            "batching off",
            &["--max-batch-rows", "1", "--max-batch-tokens", "1"][..],
        ),
        ("batching on", &[][..]),
    ] {
        let (child, url) = start(&store, extra);
        let started = Instant::now();
        let tally = load(&url, clients, seconds);
        let elapsed = started.elapsed().as_secs_f64();
        let shutdown_s = terminate(child);
        outcomes.push(Outcome {
            label,
            tally,
            seconds: elapsed,
            shutdown_s,
        });
    }
    println!(
        "{:<13} {:>8} {:>7} {:>8} {:>9} {:>22} {:>22} {:>10}",
        "",
        "requests",
        "failed",
        "req/s",
        "tokens/s",
        "score p50/p90/p99 s",
        "sample p50/p90/p99 s",
        "SIGTERM s"
    );
    let mut rates = Vec::new();
    for o in &mut outcomes {
        let t = &mut o.tally;
        let n = t.score.len() + t.sample.len();
        let rate = n as f64 / o.seconds;
        rates.push(rate);
        let (s50, s90, s99) = (
            percentile(&mut t.score, 0.5),
            percentile(&mut t.score, 0.9),
            percentile(&mut t.score, 0.99),
        );
        let (g50, g90, g99) = (
            percentile(&mut t.sample, 0.5),
            percentile(&mut t.sample, 0.9),
            percentile(&mut t.sample, 0.99),
        );
        println!(
            "{:<13} {:>8} {:>7} {:>8.1} {:>9.0} {:>22} {:>22} {:>10.2}",
            o.label,
            n,
            t.failures.len(),
            rate,
            t.tokens as f64 / o.seconds,
            format!("{s50:.2}/{s90:.2}/{s99:.2}"),
            format!("{g50:.2}/{g90:.2}/{g99:.2}"),
            o.shutdown_s
        );
        if let Some(f) = t.failures.first() {
            println!("  first failure: {f}");
        }
    }
    println!(
        "\nthroughput, batching on / off: {:.2}x",
        rates[1] / rates[0]
    );
    let failed: usize = outcomes.iter().map(|o| o.tally.failures.len()).sum();
    assert_eq!(failed, 0, "requests failed");
}
