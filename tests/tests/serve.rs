//! `spectrum serve` as a user runs it: an evaluation through the server equals
//! the local one, the official `openai` Python client talks to it, remote
//! models are registered without keys in the store, SIGTERM stops it cleanly.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use spectrum_system_tests::{Sandbox, start_server};

/// `spectrum serve` on a free port; returns the child and its base URL.
fn serve(sb: &Sandbox, extra: &[&str]) -> (Child, String) {
    let mut args = vec!["--json", "serve", "--model", "tiny", "--port", "0"];
    args.extend_from_slice(extra);
    start_server(sb.command(&args))
}

/// SIGTERM: the server finishes and exits 0 within a few seconds.
fn terminate(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
            }
            assert!(status.success(), "serve exited with {status}: {stderr}");
            assert!(stderr.contains("stopping"), "{stderr}");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const EVAL: [&str; 13] = [
    "eval",
    "--budget",
    "256",
    "--max-sequences",
    "4",
    "--samples",
    "6",
    "--temperatures",
    "1",
    "--max-new-tokens",
    "8",
    "--max-items",
    "6",
];

fn close(a: &serde_json::Value, b: &serde_json::Value, path: &str) {
    match (a, b) {
        (serde_json::Value::Number(x), serde_json::Value::Number(y)) => {
            let (x, y) = (x.as_f64().expect("x"), y.as_f64().expect("y"));
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + x.abs()),
                "{path}: local {x} vs remote {y}"
            );
        }
        (serde_json::Value::Array(xs), serde_json::Value::Array(ys)) => {
            assert_eq!(xs.len(), ys.len(), "{path}");
            for (i, (x, y)) in xs.iter().zip(ys).enumerate() {
                close(x, y, &format!("{path}[{i}]"));
            }
        }
        (serde_json::Value::Object(xs), serde_json::Value::Object(ys)) => {
            for (k, x) in xs {
                if matches!(
                    k.as_str(),
                    "run"
                        | "name"
                        | "model"
                        | "model_path"
                        | "started_at"
                        | "finished_at"
                        | "seconds"
                ) {
                    continue;
                }
                close(x, &ys[k], &format!("{path}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

#[test]
fn an_evaluation_through_the_server_equals_the_local_one() {
    let sb = Sandbox::with_suite_and_tiny_model(8);
    let (server, url) = serve(&sb, &[]);
    let spec = format!("openai:{url}#tiny");
    let added = sb.json(&[
        "model",
        "add",
        &spec,
        "--name",
        "tiny-remote",
        "--concurrency",
        "2",
    ]);
    assert_eq!(added["family"], "remote");
    assert_eq!(added["source"], spec);

    let mut local = EVAL.to_vec();
    local.extend(["--model", "tiny", "--name", "local"]);
    let mut remote = EVAL.to_vec();
    remote.extend(["--model", "tiny-remote", "--name", "remote"]);
    let want = sb.json(&local);
    let got = sb.json(&remote);
    assert_eq!(got["status"], "finished");
    // Scores agree to float rounding (the server batches differently), samples exactly.
    for family in ["steer", "dist", "valid"] {
        assert!(!want[family].is_null(), "{family} ran");
        close(&want[family], &got[family], family);
    }
    assert_eq!(want["valid"]["samples"], got["valid"]["samples"]);

    // `--model openai:...` works directly: the registered model with that source is
    // found; a new source (the server twice) is registered on first use, as
    // tiny-remote-2 since tiny and tiny-remote are taken, and found afterwards.
    let twice = format!("openai:{url},{url}#tiny");
    for model in [&spec, &twice, &twice] {
        let out = sb.json(&[
            "generate",
            "--model",
            model,
            "--prompt",
            "hi",
            "-n",
            "2",
            "--max-tokens",
            "4",
        ]);
        assert_eq!(out.as_array().map(Vec::len), Some(2), "{out}");
    }
    let models = sb.json(&["model", "list"]);
    let remote: Vec<&str> = models
        .as_array()
        .expect("models")
        .iter()
        .filter(|m| m["family"] == "remote")
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    assert_eq!(remote, ["tiny-remote", "tiny-remote-2"]);

    // Training a remote model is refused with the way out.
    let out = sb.run(&["train", "--model", "tiny-remote", "--steps", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("served remotely") && err.contains("export the run as a job"),
        "{err}"
    );

    // No key in the store or the model folder.
    // SAFETY of the check: the key is only ever in this process's environment.
    let store = std::fs::read(sb.store()).expect("store");
    assert!(!String::from_utf8_lossy(&store).contains("sk-test-never-stored"));
    terminate(server);
}

#[test]
fn keys_stay_in_the_environment_and_a_keyed_server_refuses_strangers() {
    let sb = Sandbox::with_suite_and_tiny_model(4);
    let mut cmd = sb.command(&[
        "--json",
        "serve",
        "--model",
        "tiny",
        "--port",
        "0",
        "--api-key-env",
        "SERVE_KEY",
    ]);
    cmd.env("SERVE_KEY", "sk-test-never-stored");
    let (child, url) = start_server(cmd);
    let spec = format!("openai:{url}#tiny");

    // Without the key: refused, with the fix.
    let out = sb
        .command(&[
            "model",
            "add",
            &spec,
            "--name",
            "tiny-nokey",
            "--api-key-env",
            "NO_SUCH_KEY_VAR",
        ])
        .output()
        .expect("add");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("401") && err.contains("NO_SUCH_KEY_VAR"),
        "{err}"
    );

    // With it (from the environment): registered; the key is nowhere on disk.
    let out = sb
        .command(&[
            "--json",
            "model",
            "add",
            &spec,
            "--name",
            "tiny-keyed",
            "--api-key-env",
            "MY_KEY",
        ])
        .env("MY_KEY", "sk-test-never-stored")
        .output()
        .expect("add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let folder = std::path::PathBuf::from(record["path"].as_str().expect("path"));
    let remote_json = std::fs::read_to_string(folder.join("remote.json")).expect("remote.json");
    assert!(remote_json.contains("MY_KEY") && !remote_json.contains("sk-test"));
    let store = std::fs::read(sb.store()).expect("store");
    assert!(!String::from_utf8_lossy(&store).contains("sk-test-never-stored"));
    terminate(child);
}

#[test]
fn the_official_openai_python_client_talks_to_spectrum_serve() {
    let sb = Sandbox::with_suite_and_tiny_model(4);
    let (server, url) = serve(&sb, &[]);
    let script = sb.write(
        "client.py",
        br#"
import json, sys
from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="unused")
models = [m.id for m in client.models.list()]
c = client.completions.create(model="tiny", prompt="The colour is", max_tokens=5,
                              n=2, seed=3, temperature=1.0)
e = client.completions.create(model="tiny", prompt=[[1, 2, 3, 4]], max_tokens=0,
                              echo=True, logprobs=1)
again = client.completions.create(model="tiny", prompt="The colour is", max_tokens=5,
                                  n=2, seed=3, temperature=1.0)
chat = client.chat.completions.create(model="tiny", max_tokens=6, seed=1, logprobs=True, top_logprobs=1,
                                      messages=[{"role": "user", "content": "Name a colour."}])
try:
    client.completions.create(model="absent", prompt="x")
    missing = None
except Exception as err:
    missing = type(err).__name__
print(json.dumps({
    "models": models,
    "texts": [x.text for x in c.choices],
    "again": [x.text for x in again.choices],
    "usage": c.usage.total_tokens,
    "echo_logprobs": e.choices[0].logprobs.token_logprobs,
    "echo_top": e.choices[0].logprobs.top_logprobs,
    "chat_role": chat.choices[0].message.role,
    "chat_finish": chat.choices[0].finish_reason,
    "chat_logprobs": [t.logprob for t in chat.choices[0].logprobs.content],
    "missing": missing,
}))
"#,
    );
    let out = Command::new("python3")
        .arg(&script)
        .arg(&url)
        .output()
        .expect("python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the openai client failed (fix: `python3 -m pip install openai`): {stderr}"
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(got["models"], serde_json::json!(["tiny"]));
    assert_eq!(got["texts"].as_array().expect("texts").len(), 2);
    assert_eq!(
        got["texts"], got["again"],
        "a seed makes sampling repeatable"
    );
    assert!(got["usage"].as_u64() > Some(0));
    let lps = got["echo_logprobs"].as_array().expect("logprobs");
    assert_eq!(lps.len(), 4);
    assert!(lps[0].is_null());
    assert!(
        lps[1..]
            .iter()
            .all(|l| l.as_f64().is_some_and(|x| x <= 0.0))
    );
    assert_eq!(got["echo_top"].as_array().expect("top").len(), 4);
    assert_eq!(got["chat_role"], "assistant");
    assert!(got["chat_finish"] == "stop" || got["chat_finish"] == "length");
    let chat_lps = got["chat_logprobs"].as_array().expect("chat logprobs");
    assert!(
        !chat_lps.is_empty()
            && chat_lps
                .iter()
                .all(|l| l.as_f64().is_some_and(|x| x <= 0.0))
    );
    assert_eq!(got["missing"], "NotFoundError");
    terminate(server);
}
