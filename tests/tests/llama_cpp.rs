//! Remote evaluation against a server we did not write: llama-cpp-python's
//! OpenAI-compatible server (tests/requirements.txt installs it) serving the
//! default model's own GGUF, compared with the local evaluation of that GGUF.
//!
//! The server computes with the GGUF's Q4_1 weights and 8-bit quantised
//! activations (llama.cpp's `q4_1 x q8_1` dot products); the local model runs
//! the same weights dequantised, in f32. Rounding each activation block of 32
//! to 8 bits perturbs every product by a fraction of a percent, and the
//! perturbation carries through 30 layers into the logits as a relative error:
//! a token's log-probability moves by a few percent of its size (0.04 nats per
//! token on average here, up to 0.6 for tokens near -7). So an output's loss
//! may differ by 10% of itself plus 0.15 nats per token, a distributional
//! item's Jensen-Shannon divergence by 0.03: about twice the largest
//! differences measured on this model (README, Remote models). An echo read
//! one position off, or other tokens, misses these by nats.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spectrum_system_tests::{Sandbox, default_model};

/// The default model's folder and its GGUF (installed once from the PyPI wheel).
fn default_model_and_gguf() -> (String, String) {
    let dir = default_model();
    let gguf = spectrum_lm::default_model::DefaultModel::new(dir.clone(), "python3".into()).gguf();
    assert!(
        gguf.is_file(),
        "{}: the default model's wheel unpacks its GGUF there",
        gguf.display()
    );
    (
        dir.to_str().expect("utf-8").to_string(),
        gguf.to_str().expect("utf-8").to_string(),
    )
}

/// llama-cpp-python's server on a free port, answering as `smol`.
struct LlamaServer {
    child: Child,
    url: String,
}

impl LlamaServer {
    fn start(gguf: &str) -> LlamaServer {
        let python =
            std::env::var("SPECTRUM_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let child = Command::new(&python)
            .args([
                "-m",
                "llama_cpp.server",
                "--model",
                gguf,
                "--model_alias",
                "smol",
            ])
            .args([
                "--logits_all",
                "true",
                "--n_ctx",
                "4096",
                "--verbose",
                "false",
            ])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{python}: {e}"));
        let mut server = LlamaServer {
            child,
            url: format!("http://127.0.0.1:{port}/v1"),
        };
        let start = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait().expect("wait") {
                let mut stderr = String::new();
                if let Some(mut e) = server.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
                }
                panic!(
                    "llama-cpp-python's server exited ({status}); fix: \
                     python3 -m pip install -r tests/requirements.txt (or set \
                     SPECTRUM_TEST_PYTHON to a Python that has it): {stderr}"
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "llama-cpp-python's server did not listen within 2 minutes"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One task per family's kind of data (the server is slow: it sorts the
/// whole vocabulary in Python for every echoed token).
const EVAL: [&str; 15] = [
    "eval",
    "--tasks",
    "geometric_trials,spinner,element_symbol",
    "--budget",
    "256",
    "--max-sequences",
    "2",
    "--max-items",
    "4",
    "--samples",
    "4",
    "--temperatures",
    "1",
    "--max-new-tokens",
    "8",
];

/// How far the server's numbers may be from the local ones (module docs).
const LOSS_RELATIVE: f64 = 0.10;
const LOSS_PER_TOKEN: f64 = 0.15; // nats
const MEAN_PER_TOKEN: f64 = 0.10; // nats, over every output
const ITEM_JS: f64 = 0.03;

fn rows<'a>(run: &'a serde_json::Value, family: &str, key: &str) -> &'a Vec<serde_json::Value> {
    run[family][key]
        .as_array()
        .unwrap_or_else(|| panic!("{family}.{key} in {run}"))
}

#[test]
fn an_evaluation_through_llama_cpp_python_matches_the_local_one() {
    let sb = Sandbox::with_suite_and_tiny_model(8);
    let (dir, gguf) = default_model_and_gguf();
    let server = LlamaServer::start(&gguf);
    sb.ok(&["model", "add", &dir, "--name", "smol"]);
    let spec = format!("openai:{}#smol", server.url);
    sb.ok(&[
        "model",
        "add",
        &spec,
        "--name",
        "smol-llama-cpp",
        "--tokenizer",
        &gguf, // the tokenizer of the GGUF the server runs, rebuilt from its metadata
    ]);

    let run = |model: &str, template: &str, name: &str| {
        let mut args = EVAL.to_vec();
        args.extend(["--model", model, "--template", template, "--name", name]);
        sb.json(&args);
        sb.json(&["runs", "show", name])
    };
    let local = run("smol", "spectrum", "local");
    let remote = run("smol-llama-cpp", "spectrum", "remote");
    assert_eq!(remote["status"], "finished", "{remote}");

    // Steerability: every output scored, each within the bound per token.
    let (want, got) = (
        rows(&local, "steer", "outputs"),
        rows(&remote, "steer", "outputs"),
    );
    assert_eq!(want.len(), got.len());
    assert!(want.len() >= 20, "{} outputs", want.len());
    let (mut sum, mut tokens_seen) = (0.0f64, 0.0f64);
    for (w, g) in want.iter().zip(got) {
        assert_eq!((&w["sequence"], &w["index"]), (&g["sequence"], &g["index"]));
        let (Some(lw), Some(lg)) = (w["loss"].as_f64(), g["loss"].as_f64()) else {
            assert_eq!(w["loss"], g["loss"], "{w} vs {g}");
            continue;
        };
        let tokens = w["tokens"].as_f64().expect("tokens");
        let bound = LOSS_RELATIVE * lw + LOSS_PER_TOKEN * tokens;
        assert!(
            (lw - lg).abs() <= bound,
            "output {w}: local {lw}, llama.cpp {lg}"
        );
        sum += (lw - lg).abs();
        tokens_seen += tokens;
    }
    let mean = sum / tokens_seen;
    eprintln!("steer: mean loss difference {mean:.4} nats per token");
    assert!(mean <= MEAN_PER_TOKEN, "{mean} nats per token");

    // Distributions: every item's JS within the bound.
    let (want, got) = (
        rows(&local, "dist", "items"),
        rows(&remote, "dist", "items"),
    );
    assert_eq!(want.len(), got.len());
    assert!(!want.is_empty());
    let mut worst = 0.0f64;
    for (w, g) in want.iter().zip(got) {
        let (jw, jg) = (w["js"].as_f64().expect("js"), g["js"].as_f64().expect("js"));
        worst = worst.max((jw - jg).abs());
        assert!(
            (jw - jg).abs() <= ITEM_JS,
            "item {w}: local JS {jw}, llama.cpp {jg}"
        );
    }
    eprintln!("dist: largest per-item JS difference {worst:.4}");

    // Validity samples through the server (one choice per request there).
    let samples = rows(&remote, "valid", "samples");
    assert!(!samples.is_empty(), "{remote}");

    // The colon format tokenises its parts apart ("\n\n" before "Output"
    // is one token there, two in the text as a whole): a server that takes
    // text only cannot score those tokens, and the evaluation says so.
    let mut args = EVAL.to_vec();
    args.extend([
        "--model",
        "smol-llama-cpp",
        "--template",
        "colon",
        "--family",
        "steer",
    ]);
    let out = sb.run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("tokenised the text differently"), "{err}");
    assert!(err.contains("--template spectrum or chat"), "{err}");

    // A prompt that does not start with BOS (one colon-format output): the
    // server's echo is shifted by one there, which the client finds by
    // asking the server to predict the last token, and refuses.
    let rows = sb.write(
        "one.jsonl",
        br#"{"id": "c", "task": "coin", "messages": [{"role": "output", "content": "heads or tails"}]}"#,
    );
    let rows = rows.to_str().expect("utf-8");
    let local = sb.run(&["score", "--model", "smol", "--format", "colon", rows]);
    assert!(local.status.success());
    let out = sb.run(&[
        "score",
        "--model",
        "smol-llama-cpp",
        "--format",
        "colon",
        rows,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("shifted by one position"), "{err}");
}
