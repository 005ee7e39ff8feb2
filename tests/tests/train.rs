//! Training through the CLI on a tiny model built in code: a run killed with
//! SIGKILL resumes to the same losses as an uninterrupted one (a run belongs
//! to one process: a second resume is refused), Ctrl-C keeps a
//! checkpoint, held-out tasks are refused, exports load as models.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use spectrum_system_tests::Sandbox;

const TRAIN: [&str; 18] = [
    "train",
    "--model",
    "tiny",
    "--micro-batch",
    "2",
    "--grad-accum",
    "1",
    "--max-tokens",
    "128",
    "--lr",
    "0.01",
    "--eval-every",
    "50",
    "--eval-sequences",
    "4",
    "--checkpoint-every",
    "10",
    "--full",
];

fn train_args<'a>(name: &'a str, steps: &'a str) -> Vec<&'a str> {
    let mut args = TRAIN.to_vec();
    args.extend(["--name", name, "--steps", steps]);
    args
}

fn losses(sb: &Sandbox, run: &str) -> Vec<(i64, f64)> {
    let detail = sb.json(&["runs", "show", run]);
    detail["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["step"].as_i64().expect("step"),
                s["loss"].as_f64().expect("loss"),
            )
        })
        .collect()
}

/// Waits until the run folder holds a checkpoint of at least `step`.
fn wait_for_checkpoint(dir: &Path, step: usize, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let found = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix("step-")?
                    .parse::<usize>()
                    .ok()
            })
            .any(|s| s >= step);
        if found {
            return;
        }
        assert!(
            child.try_wait().expect("poll").is_none(),
            "the run ended before it could be stopped"
        );
        assert!(
            Instant::now() < deadline,
            "no checkpoint after five minutes"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn run_dir(sb: &Sandbox, run: &str) -> PathBuf {
    PathBuf::from(
        sb.json(&["runs", "show", run])["run"]["out_dir"]
            .as_str()
            .expect("out_dir"),
    )
}

#[test]
fn a_killed_run_resumes_to_the_losses_of_an_uninterrupted_one() {
    let sb = Sandbox::with_suite_and_tiny_model(6);
    sb.json(&train_args("whole", "200"));
    let whole = losses(&sb, "whole");
    assert_eq!(whole.len(), 200);
    // A run shows the settings it was started with, typed.
    let detail = sb.json(&["runs", "show", "whole"]);
    assert_eq!(detail["settings"]["kind"], "train");
    assert_eq!(detail["settings"]["spec"]["learning_rate"], 0.01);
    assert_eq!(detail["settings"]["spec"]["method"], "full");
    assert!(detail["run"].get("spec").is_none(), "{detail}");
    let human = sb.ok(&["runs", "show", "whole"]);
    assert!(human.contains("\"learning_rate\":0.01"), "{human}");
    // A training run is not an evaluation to compare.
    let out = sb.run(&["compare", "whole", "whole"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is a train run, not an evaluation"),
        "{stderr}"
    );

    let mut child = sb
        .command(&train_args("parts", "200"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start training");
    // The run folder is known once the run is recorded.
    let deadline = Instant::now() + Duration::from_secs(120);
    let dir = loop {
        let runs = sb.json(&["runs", "list"]);
        if let Some(dir) = runs
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == "parts"))
            .and_then(|r| r["out_dir"].as_str())
            .filter(|d| !d.is_empty())
        {
            break PathBuf::from(dir);
        }
        assert!(Instant::now() < deadline, "the run was not recorded");
        std::thread::sleep(Duration::from_millis(10));
    };
    wait_for_checkpoint(&dir.join("checkpoints"), 30, &mut child);
    // While it trains, the run belongs to its process: shown as its holder,
    // not resumable, and a second process's resume is refused without
    // touching a step the first one recorded.
    let running = sb.json(&["runs", "show", "parts"]);
    assert_eq!(running["run"]["holder"]["pid"], child.id(), "{running}");
    assert_eq!(running["run"]["resumable"], false);
    let before = losses(&sb, "parts");
    let refused = sb.run(&["train", "--resume", "parts"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("is being run by process {}", child.id())),
        "{stderr}"
    );
    let after = losses(&sb, "parts");
    assert!(
        after.len() >= before.len() && after[..before.len()] == before[..],
        "the refused resume rewound the run"
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let killed = sb.json(&["runs", "show", "parts"]);
    assert_eq!(
        killed["run"]["status"], "running",
        "a killed run cannot record its end"
    );
    assert!(killed["run"]["holder"].is_null(), "{killed}");
    assert_eq!(killed["run"]["resumable"], true);
    let stopped_at = killed["run"]["step"].as_i64().expect("step");
    assert!(stopped_at < 200, "killed before the end");

    // Two resumes at once: one trains the run to its end, the other is refused.
    let resumed = spectrum_system_tests::one_of_two_at_once(&sb, &["train", "--resume", "parts"]);
    assert_eq!(resumed["run"]["status"], "finished");
    assert_eq!(resumed["model"]["name"], "parts");
    let ended = sb.json(&["runs", "show", "parts"]);
    assert!(
        ended["run"]["holder"].is_null(),
        "the lease was given up: {ended}"
    );
    assert_eq!(
        losses(&sb, "parts"),
        whole,
        "same losses, step for step, bit for bit"
    );
}

#[test]
fn runs_stop_is_ctrl_c_from_elsewhere_and_the_run_resumes() {
    let sb = Sandbox::with_suite_and_tiny_model(6);
    let mut child = sb
        .command(&train_args("stopped", "5000"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start training");
    let deadline = Instant::now() + Duration::from_secs(120);
    let dir = loop {
        let runs = sb.json(&["runs", "list"]);
        if let Some(d) = runs
            .as_array()
            .and_then(|r| r.first())
            .and_then(|r| r["out_dir"].as_str())
            .filter(|d| !d.is_empty())
        {
            break PathBuf::from(d);
        }
        assert!(Instant::now() < deadline, "the run was not recorded");
        std::thread::sleep(Duration::from_millis(10));
    };
    wait_for_checkpoint(&dir.join("checkpoints"), 10, &mut child);
    // `spectrum runs stop` from another process is Ctrl-C in the trainer's terminal.
    let stop = sb.json(&["runs", "stop", "stopped", "--wait", "120"]);
    assert_eq!(stop["released"], true, "{stop}");
    assert_eq!(stop["holder"]["pid"], child.id(), "{stop}");
    assert_eq!(stop["run"]["status"], "cancelled", "{stop}");
    assert_eq!(stop["run"]["resumable"], true, "{stop}");
    let output = child.wait_with_output().expect("the trainer exits");
    assert_eq!(output.status.code(), Some(130), "exits as after Ctrl-C");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--resume"),
        "tells how to continue: {stderr}"
    );
    // Nothing runs it now: stopping again is refused with the way to resume.
    let again = sb.run(&["runs", "stop", "stopped"]);
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("is not running") && stderr.contains("--resume"),
        "{stderr}"
    );
    let detail = sb.json(&["runs", "show", "stopped"]);
    assert_eq!(detail["run"]["status"], "cancelled");
    let step = detail["run"]["step"].as_i64().expect("step");
    let newest = detail["checkpoints"]
        .as_array()
        .expect("checkpoints")
        .last()
        .expect("a checkpoint")
        .as_str()
        .expect("path")
        .to_string();
    assert!(
        newest.ends_with(&format!("step-{step:06}")),
        "the last step is checkpointed: {newest}"
    );
    assert_eq!(run_dir(&sb, "stopped"), dir);

    // A run held by another program (here the same binary under the desktop
    // app's name) is never signalled: the refusal says where to cancel it.
    let app = sb.path("spectrum-studio");
    std::os::unix::fs::symlink(spectrum_system_tests::spectrum_bin(), &app).expect("symlink");
    let mut held = std::process::Command::new(&app)
        .env_remove("SPECTRUM_STORE")
        // Already set, so the binary does not re-execute itself as `spectrum`
        // (`spectrum_lm::process`).
        .env("MIMALLOC_PURGE_DELAY", "-1")
        .env("CANDLE_BARRIER_POOL_SPIN_LIMIT", "0")
        .arg("--store")
        .arg(sb.store())
        .args(["train", "--resume", "stopped"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("resume under another name");
    let deadline = Instant::now() + Duration::from_secs(120);
    while sb.json(&["runs", "show", "stopped"])["run"]["holder"].is_null() {
        assert!(Instant::now() < deadline, "the resume never took the run");
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = sb.run(&["runs", "stop", "stopped"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("process {}", held.id()))
            && stderr.contains("not the `spectrum` command")
            && stderr.contains("desktop app"),
        "{stderr}"
    );
    assert!(held.try_wait().expect("poll").is_none(), "not signalled");
    held.kill().expect("SIGKILL");
    held.wait().expect("reap");
}

#[test]
fn held_out_tasks_are_refused_and_nothing_is_recorded() {
    let sb = Sandbox::with_suite_and_tiny_model(6);
    let held_out = sb.json(&["tasks", "list", "--split", "held_out"]);
    let name = held_out[0]["name"]
        .as_str()
        .expect("a held-out task")
        .to_string();
    let mut args = train_args("bad", "2");
    args.extend(["--tasks", &name]);
    let out = sb.run(&args);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("held out") && stderr.contains(&name),
        "{stderr}"
    );
    assert_eq!(sb.json(&["runs", "list"]), serde_json::json!([]));
    let out = sb.run(&["train", "--model", "tiny", "--device", "cuda"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--features cuda"));
    assert_eq!(
        sb.json(&["runs", "list"]),
        serde_json::json!([]),
        "nothing recorded"
    );

    let out = sb.run(&["train", "--model", "tiny", "--lora-targets", "qproj"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown LoRA target module \"qproj\""));
    let spec = sb.write(
        "spec.json",
        b"{\"learning_rate\": 0.01,\n \"lerning_rate\": 2}",
    );
    let out = sb.run(&[
        "train",
        "--model",
        "tiny",
        "--spec",
        spec.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.json") && stderr.contains("lerning_rate"),
        "{stderr}"
    );
}

#[test]
fn lora_runs_register_their_adapter_and_export_both_ways() {
    let sb = Sandbox::with_suite_and_tiny_model(6);
    let mut args = train_args("lora", "4");
    args.retain(|a| *a != "--full");
    args.extend(["--lora-rank", "4", "--lora-targets", "q_proj,v_proj"]);
    let outcome = sb.json(&args);
    assert_eq!(outcome["run"]["status"], "finished");
    let evals = outcome["evals"].as_array().expect("evals");
    assert_eq!(evals.first().expect("before")["step"], 0);
    assert_eq!(evals.last().expect("after")["step"], 4);
    let adapter = PathBuf::from(outcome["model"]["path"].as_str().expect("path"));
    assert!(adapter.join("adapter_config.json").exists());

    let peft = sb.path("peft");
    let merged = sb.path("merged");
    sb.ok(&[
        "export",
        "lora",
        "--peft",
        peft.to_str().expect("utf-8"),
        "--merged",
        merged.to_str().expect("utf-8"),
    ]);
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        assert!(peft.join(f).exists(), "{f}");
    }
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(merged.join(f).exists(), "{f}");
    }
    let again = sb.run(&[
        "export",
        "lora",
        "--merged",
        merged.to_str().expect("utf-8"),
    ]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "never overwrites"
    );
    // The tuned model, the merged export and the adapter export all score alike.
    sb.ok(&[
        "model",
        "add",
        merged.to_str().expect("utf-8"),
        "--name",
        "merged",
    ]);
    sb.ok(&[
        "model",
        "add",
        peft.to_str().expect("utf-8"),
        "--name",
        "adapter",
    ]);
    let rows = sb.write("rows.jsonl", br#"{"task": "t", "messages": [{"role": "description", "content": "Say hi."}, {"role": "output", "content": "hi"}, {"role": "output", "content": "hello"}]}"#);
    let score = |model: &str| -> f64 {
        let out = sb.ok(&[
            "--json",
            "score",
            "--model",
            model,
            rows.to_str().expect("utf-8"),
        ]);
        let line: serde_json::Value =
            serde_json::from_str(out.lines().next().expect("a line")).expect("json");
        line["outputs"][1]["loss"].as_f64().expect("loss")
    };
    let (tuned, m, a, base) = (
        score("lora"),
        score("merged"),
        score("adapter"),
        score("tiny"),
    );
    assert!(
        (tuned - m).abs() < 1e-4 && (tuned - a).abs() < 1e-4,
        "{tuned} {m} {a}"
    );
    assert!((tuned - base).abs() > 1e-6, "training changed the model");
}

/// A base model without turn tokens (as a pretrained Llama 2 or Mistral):
/// `spectrum train` adds ChatML's, with rows from the instruct sibling named by
/// --init-tokens-from, registers that model, trains it; `model add-tokens`
/// does the same by hand and refuses a model that has turn tokens.
#[test]
fn a_base_without_turn_tokens_gets_them_for_training() {
    let sb = Sandbox::with_suite_and_tiny_model(6);
    let bare = sb.path("bare");
    spectrum_lm::tiny::write_model(&bare, 32, 2, 3).expect("tiny model");
    spectrum_lm::tiny::strip_turn_tokens(&bare).expect("strip");
    sb.ok(&[
        "model",
        "add",
        bare.to_str().expect("utf-8"),
        "--name",
        "bare",
    ]);
    let spectrum_only = sb.run(&[
        "--json",
        "score",
        "--model",
        "bare",
        "--format",
        "spectrum",
        sb.write("rows.jsonl", br#"{"messages": [{"role": "description", "content": "Say hi."}, {"role": "output", "content": "hi"}, {"role": "output", "content": "yo"}]}"#)
            .to_str()
            .expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&spectrum_only.stderr);
    assert!(
        stderr.contains("(fix: --template (--format for score and generate): the colon format")
            && stderr.contains("add-tokens"),
        "the error names the fix: {stderr}"
    );

    let mut args = train_args("turns", "2");
    args.retain(|a| *a != "tiny");
    args.splice(2..2, ["bare", "--init-tokens-from", "tiny"]);
    let outcome = sb.json(&args);
    assert_eq!(outcome["run"]["status"], "finished");
    let added = sb.json(&["model", "show", "bare-turns"]);
    let source = added["source"].as_str().expect("source");
    assert!(
        source.contains("<|im_start|> <|im_end|>") && source.contains("tiny"),
        "{source}"
    );
    let marker: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(added["path"].as_str().expect("path")).join("spectrum_added_tokens.json"),
        )
        .expect("marker"),
    )
    .expect("json");
    assert_eq!(marker["first_id"], spectrum_lm::tiny::vocab().len());

    // By hand: mean rows this time (another model); a model with turn tokens is refused.
    let by_hand = sb.json(&["model", "add-tokens", "bare"]);
    assert_eq!(by_hand["name"], "bare-turns-2");
    let refused = sb.run(&["model", "add-tokens", "tiny"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("has turn tokens already"));
}

/// `spectrum train` says how much memory the run will take before it starts,
/// and refuses a run that cannot fit in this machine's free memory, naming
/// the settings that would fit; nothing is recorded.
#[test]
fn the_memory_estimate_is_shown_and_a_run_that_cannot_fit_is_refused() {
    let sb = Sandbox::with_suite_and_tiny_model(6);
    let out = sb.run(&train_args("fits", "1"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("peak memory up to about") && stderr.contains("free on cpu"),
        "{stderr}"
    );
    // Millions of tokens per forward pass: terabytes of attention probabilities.
    let out = sb.run(&[
        "train",
        "--model",
        "tiny",
        "--name",
        "huge",
        "--micro-batch",
        "64",
        "--max-tokens",
        "65536",
        "--max-batch-tokens",
        "4194304",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("more than the") && stderr.contains("these would fit: max_batch_tokens"),
        "{stderr}"
    );
    assert!(stderr.contains("(fix: --max-batch-tokens: "), "{stderr}");
    let runs = sb.json(&["runs", "list"]);
    assert_eq!(
        runs.as_array()
            .map(|r| r.iter().filter(|x| x["name"] == "huge").count()),
        Some(0),
        "nothing recorded: {runs}"
    );
}
