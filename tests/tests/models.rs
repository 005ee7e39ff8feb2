//! Models end to end through the CLI: the default model (installed once into
//! the target folder from the PyPI wheel), scoring, generation, the registry,
//! and broken model folders.

use spectrum_system_tests::{Sandbox, default_model};

/// A sandbox whose models folder holds the default model (the shared copy),
/// where the demo and `--model default` install it.
fn with_default_model_installed() -> Sandbox {
    let sb = Sandbox::default();
    std::fs::create_dir_all(sb.path("models")).expect("mkdir");
    std::os::unix::fs::symlink(default_model(), sb.path("models/SmolLM2-135M-Instruct"))
        .expect("link");
    sb
}

fn with_model() -> Sandbox {
    let sb = Sandbox::default();
    let dir = default_model().to_str().expect("utf-8").to_string();
    let added = sb.json(&["model", "add", &dir, "--name", "smol"]);
    assert_eq!(added["family"], "llama");
    assert_eq!(added["parameters"], 134_515_008);
    sb
}

#[test]
fn score_prints_one_json_line_per_row_in_input_order() {
    let sb = with_model();
    let rows = [
        r#"{"id": "b", "task": "coin", "messages": [{"role": "output", "content": "heads"}, {"role": "output", "content": "tails"}, {"role": "output", "content": "heads"}]}"#,
        r#"{"id": "a", "task": "coin", "messages": [{"role": "description", "content": "Flip a fair coin."}, {"role": "output", "content": "heads"}]}"#,
        r#"{"task": "die", "messages": [{"role": "input", "content": "d6"}, {"role": "output", "content": "4"}]}"#,
    ];
    let file = sb.write("rows.jsonl", rows.join("\n").as_bytes());
    let out = sb.ok(&[
        "--json",
        "score",
        "--model",
        "smol",
        file.to_str().expect("utf-8"),
    ]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        (
            lines[0]["id"].as_str(),
            lines[1]["id"].as_str(),
            &lines[2]["id"]
        ),
        (Some("b"), Some("a"), &serde_json::Value::Null)
    );
    // Spectrum format: no description, so the first output carries no loss.
    let first = &lines[0]["outputs"];
    assert_eq!(first.as_array().expect("outputs").len(), 3);
    assert!(first[0]["loss"].is_null() && first[0]["acc"].is_null());
    assert!(first[0]["example"].is_null());
    for (j, o) in first
        .as_array()
        .expect("outputs")
        .iter()
        .enumerate()
        .skip(1)
    {
        assert!(o["loss"].as_f64().expect("loss") > 0.0);
        // The reference's numbering and accuracies: the second output is example 0.
        assert_eq!(o["example"], j as u64 - 1);
        let acc = o["acc"].as_f64().expect("acc");
        assert!((0.0..=1.0).contains(&acc), "{o}");
        assert!(matches!(o["all_acc"].as_u64(), Some(0 | 1)));
        assert!(matches!(o["first_acc"].as_u64(), Some(0 | 1)));
        assert_eq!(o["tokens"], 2, "word + <|im_end|>");
    }
    assert!(
        lines[1]["outputs"][0]["loss"].as_f64().is_some(),
        "with a description the first output has loss"
    );
    // The colon format scores every output.
    let colon = sb.ok(&[
        "--json",
        "score",
        "--model",
        "smol",
        "--format",
        "colon",
        file.to_str().expect("utf-8"),
    ]);
    let first: serde_json::Value =
        serde_json::from_str(colon.lines().next().expect("line")).expect("json");
    assert!(first["outputs"][0]["loss"].as_f64().is_some());
    // The human table ends with the mean over outputs 1..
    let table = sb.ok(&["score", "--model", "smol", file.to_str().expect("utf-8")]);
    assert!(
        table.lines().next().expect("header").contains("MEAN_LOSS")
            && table.lines().last().expect("all").starts_with("all"),
        "{table}"
    );
}

#[test]
fn generate_continues_a_prompt_greedily() {
    let sb = with_model();
    let out = sb.json(&[
        "generate",
        "--model",
        "smol",
        "--prompt",
        "The capital of France is",
        "-n",
        "2",
        "--temperature",
        "0",
        "--max-tokens",
        "3",
    ]);
    assert_eq!(out, serde_json::json!(["Paris.", "Paris."]));
    // Sampling is reproducible by seed.
    let args = [
        "generate",
        "--model",
        "smol",
        "--prompt",
        "My favourite colour is",
        "-n",
        "3",
        "--max-tokens",
        "5",
        "--seed",
        "7",
    ];
    assert_eq!(sb.json(&args), sb.json(&args));
}

#[test]
fn registry_lists_shows_and_removes_without_deleting_user_folders() {
    let sb = with_model();
    let list = sb.json(&["model", "list"]);
    assert_eq!(list.as_array().expect("array").len(), 1);
    assert_eq!(sb.json(&["model", "show", "smol"])["name"], "smol");
    sb.ok(&["model", "remove", "smol"]);
    assert_eq!(sb.json(&["model", "list"]), serde_json::json!([]));
    assert!(
        default_model().join("model.safetensors").exists(),
        "a folder the user added must not be deleted"
    );
}

#[test]
fn broken_model_folders_get_clear_errors() {
    let sb = Sandbox::default();
    let src = default_model();
    let copy = |name: &str| {
        let dir = sb.path(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            std::fs::copy(src.join(f), dir.join(f)).expect("copy");
        }
        // The weights are large: link them.
        std::os::unix::fs::symlink(src.join("model.safetensors"), dir.join("model.safetensors"))
            .expect("link");
        dir
    };
    let fail = |args: &[&str], needle: &str| {
        let out = sb.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr}"
        );
    };
    // Truncated weights.
    let dir = copy("truncated");
    let bytes = std::fs::read(src.join("model.safetensors")).expect("read");
    std::fs::remove_file(dir.join("model.safetensors")).expect("unlink");
    std::fs::write(dir.join("model.safetensors"), &bytes[..4096]).expect("write");
    sb.write(
        "x.jsonl",
        br#"{"task": "t", "messages": [{"role": "output", "content": "a"}]}"#,
    );
    fail(
        &["score", "--model", dir.to_str().expect("utf-8"), "x.jsonl"],
        "truncated or corrupt safetensors",
    );
    // No tokenizer.
    let dir = copy("no-tokenizer");
    std::fs::remove_file(dir.join("tokenizer.json")).expect("rm");
    fail(
        &["model", "add", dir.to_str().expect("utf-8")],
        "missing tokenizer.json",
    );
    // Unknown architecture.
    let dir = copy("gpt2");
    let config = std::fs::read_to_string(dir.join("config.json"))
        .expect("read")
        .replace("\"llama\"", "\"gpt2\"");
    std::fs::write(dir.join("config.json"), config).expect("write");
    fail(
        &["model", "add", dir.to_str().expect("utf-8")],
        "architecture \"gpt2\" is not supported; supported: llama",
    );
    // Pickle only.
    let dir = copy("pickle");
    std::fs::remove_file(dir.join("model.safetensors")).expect("unlink");
    std::fs::write(dir.join("pytorch_model.bin"), b"not really").expect("write");
    fail(
        &["model", "add", dir.to_str().expect("utf-8")],
        "only safetensors are loaded",
    );
    // A GGUF that is not one.
    let fake = sb.write("fake.gguf", b"GGUF but not really");
    fail(
        &["model", "add", fake.to_str().expect("utf-8")],
        "not a readable GGUF file",
    );
    fail(
        &["model", "add", "hf:HuggingFaceTB/SmolLM2-135M"],
        "Hugging Face hub",
    );
}

/// Using the default model registers it once: later commands find its record
/// instead of hashing its 540 MB again (the record, its time included, stays).
#[test]
fn the_default_model_is_registered_once() {
    let sb = with_default_model_installed();
    let greedy = [
        "generate",
        "--prompt",
        "The capital of France is",
        "-n",
        "1",
        "--temperature",
        "0",
        "--max-tokens",
        "2",
    ];
    sb.ok(&greedy);
    let first = sb.json(&["model", "list"]);
    assert_eq!(first[0]["name"], "SmolLM2-135M-Instruct");
    assert_eq!(first[0]["content_hash"].as_str().map(str::len), Some(64));
    // Registration times have whole seconds: a second registration would show.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    sb.ok(&greedy);
    assert_eq!(sb.json(&["model", "list"]), first);
}

#[test]
fn demo_builds_imports_installs_tunes_and_evaluates_the_default_model() {
    let sb = with_default_model_installed();
    // A short tuning run: the full one takes about 10 minutes.
    let quick = [
        "demo",
        "--size",
        "4",
        "--steps",
        "1",
        "--max-tokens",
        "192",
        "--eval-sequences",
        "2",
        "--eval-size",
        "2",
    ];
    let out = sb.run(&quick);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for step in [
        "1/6 building",
        "2/6 importing",
        "3/6 installing the default model",
        "4/6 Spectrum-tuning it",
        "held-out loss (outputs with index >= 1)",
        "5/6 evaluating on the held-out tasks",
        "6/6 writing the PDF report",
    ] {
        assert!(stderr.contains(step), "{stderr}");
    }
    let datasets = sb.json(&["datasets", "list"]);
    assert_eq!(datasets[0]["name"], "builtin-suite");
    assert_eq!(
        datasets[0]["sequences"],
        4 * datasets[0]["tasks"].as_u64().expect("tasks")
    );
    let models = sb.json(&["model", "list"]);
    assert_eq!(models[0]["name"], "SmolLM2-135M-Instruct");
    assert_eq!(models[1]["name"], "SmolLM2-135M-Instruct-spectrum");
    // One training run, then two evaluations (instruct + chat, tuned + spectrum), compared.
    let runs = sb.json(&["runs", "list"]);
    assert_eq!(runs.as_array().expect("array").len(), 3);
    assert!(
        runs.as_array()
            .expect("array")
            .iter()
            .all(|r| r["status"] == "finished")
    );
    assert_eq!(runs[0]["kind"], "eval");
    assert_eq!(runs[2]["kind"], "train");
    // Provenance recorded when each run started: the dataset it read and its
    // model's content hash (the instruct model for the training run and the
    // first evaluation, the tuned one for the second).
    for run in runs.as_array().expect("array") {
        assert_eq!(run["datasets"][0]["name"], "builtin-suite", "{run}");
        assert_eq!(
            run["datasets"][0]["content_hash"],
            datasets[0]["content_hash"]
        );
    }
    let hash = |name: &str| {
        models
            .as_array()
            .expect("array")
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["content_hash"].clone())
            .expect("registered")
    };
    assert_eq!(runs[2]["model_hash"], hash("SmolLM2-135M-Instruct"));
    assert_eq!(runs[1]["model_hash"], hash("SmolLM2-135M-Instruct"));
    assert_eq!(
        runs[0]["model_hash"],
        hash("SmolLM2-135M-Instruct-spectrum")
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("baseline:") && stdout.contains("wins"),
        "{stdout}"
    );
    // Running it again changes nothing.
    let again = sb.run(&quick);
    assert!(again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("already imported")
            && stderr.contains("already tuned")
            && stderr.contains("already evaluated"),
        "{stderr}"
    );
    assert_eq!(
        sb.json(&["datasets", "list"])
            .as_array()
            .expect("array")
            .len(),
        1
    );
    assert_eq!(
        sb.json(&["runs", "list"]).as_array().expect("array").len(),
        3
    );
}
