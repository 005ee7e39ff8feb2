//! `spectrum export-job`: a run written for TRL + accelerate, trained with TRL
//! on the CPU, brought back with `spectrum model add`, and evaluated.

use std::process::Command;

use spectrum_system_tests::Sandbox;

fn read_jsonl(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[test]
fn a_run_exported_for_trl_trains_there_and_comes_back() {
    let sb = Sandbox::with_suite_and_tiny_model(6);
    let run = sb.json(&[
        "train",
        "--model",
        "tiny",
        "--name",
        "cluster",
        "--no-start",
        "--steps",
        "3",
        "--micro-batch",
        "2",
        "--grad-accum",
        "2",
        "--max-tokens",
        "256",
        "--eval-every",
        "2",
    ]);
    assert_eq!(run["status"], "cancelled");
    assert_eq!(run["step"], 0);
    let id = run["id"].as_i64().expect("run id").to_string();

    let bundle = sb.path("bundle");
    let out = sb.json(&[
        "export-job",
        &id,
        "--engine",
        "trl",
        "--out",
        bundle.to_str().expect("utf-8"),
    ]);
    assert_eq!(out["steps"], 3);
    assert_eq!(out["micro_batches"], 6);
    for file in [
        "train.py",
        "launch.sh",
        "job.json",
        "README.md",
        "accelerate/cpu.yaml",
        "accelerate/multi_gpu.yaml",
        "accelerate/zero3.yaml",
        "deepspeed/zero3.json",
    ] {
        assert!(bundle.join(file).is_file(), "{file}");
    }
    let rows = read_jsonl(&bundle.join("data/train.jsonl"));
    assert_eq!(
        rows.len() as u64,
        out["train_sequences"].as_u64().expect("n")
    );
    for row in &rows {
        let ids = row["input_ids"].as_array().expect("ids");
        let mask = row["loss_mask"].as_array().expect("mask");
        assert_eq!(ids.len(), mask.len());
        assert!(ids.len() <= 256);
        assert!(mask.iter().any(|m| m == 1), "every sequence carries loss");
    }
    // A second export into the same folder is refused; nothing is overwritten.
    let again = sb.run(&["export-job", &id, "--out", bundle.to_str().expect("utf-8")]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // Train with TRL on the CPU, as the bundle's README says.
    let trl = Command::new("bash")
        .arg(bundle.join("launch.sh"))
        .env("ACCELERATE_CONFIG", "accelerate/cpu.yaml")
        .env("HF_HUB_OFFLINE", "1")
        .env("TOKENIZERS_PARALLELISM", "false")
        .output()
        .expect("run launch.sh");
    let stderr = String::from_utf8_lossy(&trl.stderr);
    assert!(
        trl.status.success(),
        "TRL training failed (fix: `python3 -m pip install -r {}`):\n{}",
        bundle.join("requirements.txt").display(),
        &stderr[stderr.len().saturating_sub(4000)..]
    );
    let log = read_jsonl(&bundle.join("output/log.jsonl"));
    let losses: Vec<(u64, f64)> = log
        .iter()
        .filter_map(|l| Some((l["step"].as_u64()?, l.get("loss")?.as_f64()?)))
        .collect();
    assert_eq!(losses.len(), 3, "{log:?}");

    // Our trainer on the same run: LoRA starts at the base model (B = 0), so the
    // first step's loss is the same number whatever the engine.
    let ours = sb.json(&["train", "--resume", &id]);
    let steps = sb.json(&["runs", "show", &id]);
    let first = steps["steps"][0]["loss"].as_f64().expect("our first loss");
    eprintln!(
        "step losses: ours {:?}, TRL {losses:?}",
        steps["steps"]
            .as_array()
            .map(|s| s.iter().map(|x| x["loss"].clone()).collect::<Vec<_>>())
    );
    assert!(
        (first - losses[0].1).abs() < 1e-5 * first,
        "step 1: ours {first} vs TRL {} ({ours})",
        losses[0].1
    );

    // Back in Spectrum Studio: register the TRL model and evaluate it.
    let final_dir = bundle.join("output/final");
    let model = sb.json(&[
        "model",
        "add",
        final_dir.to_str().expect("utf-8"),
        "--name",
        "tiny-trl",
    ]);
    assert_eq!(model["family"], "llama");
    let report = sb.json(&[
        "eval",
        "--model",
        "tiny-trl",
        "--budget",
        "256",
        "--max-sequences",
        "2",
        "--samples",
        "4",
        "--temperatures",
        "1",
        "--max-new-tokens",
        "6",
        "--max-items",
        "4",
    ]);
    assert_eq!(report["status"], "finished");
}
