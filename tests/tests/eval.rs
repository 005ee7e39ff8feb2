//! Evaluation through the CLI on a tiny model built in code: the JSON document
//! the issue specifies, results kept in the store and shown by `runs show`,
//! `compare` on two runs, any imported task evaluated by name, clear errors.

use spectrum_system_tests::Sandbox;

const EVAL: [&str; 12] = [
    "eval",
    "--model",
    "tiny",
    "--budget",
    "256",
    "--max-sequences",
    "4",
    "--samples",
    "8",
    "--temperatures",
    "1",
    "--max-new-tokens",
];

fn eval(sb: &Sandbox, extra: &[&str]) -> serde_json::Value {
    let mut args = EVAL.to_vec();
    args.push("8");
    args.extend_from_slice(extra);
    sb.json(&args)
}

#[test]
fn eval_json_holds_every_family_and_is_kept_in_the_store() {
    let sb = Sandbox::with_suite_and_tiny_model(8);
    let report = eval(&sb, &["--name", "first"]);
    assert_eq!(report["status"], "finished");
    assert_eq!(report["template"], "spectrum");
    let run = report["run"].as_i64().expect("run id");

    // Steerability: the 8 held-out tasks, examples 0..=k each, outputs with tasks.
    let steer = &report["steer"];
    let tasks = steer["tasks"].as_array().expect("steer tasks");
    assert_eq!(tasks.len(), 8, "{tasks:?}");
    for t in tasks {
        let k = t["k"].as_u64().expect("k");
        assert!(k >= 2);
        assert_eq!(t["curve"].as_array().expect("curve").len() as u64, k + 1);
        assert!(t["k_tokenizer"].is_string(), "{t}");
        assert!(t["loss"]["mean"].as_f64().expect("loss") > 0.0);
    }
    let outputs = steer["outputs"].as_array().expect("outputs");
    assert!(
        outputs
            .iter()
            .all(|o| o["task"].is_string() && o["sequence"].is_string())
    );

    // Distributional items carry id, options, p, coverage, q, js, kl, tv.
    let items = report["dist"]["items"].as_array().expect("items");
    assert!(!items.is_empty());
    for item in items {
        for key in ["id", "options", "p", "coverage", "q", "js", "kl", "tv"] {
            assert!(!item[key].is_null(), "item lacks {key}: {item}");
        }
        let p: Vec<f64> = serde_json::from_value(item["p"].clone()).expect("p");
        let q: Vec<f64> = serde_json::from_value(item["q"].clone()).expect("q");
        let coverage = item["coverage"].as_f64().expect("coverage");
        assert!((p.iter().sum::<f64>() - coverage).abs() < 1e-9);
        assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let js = item["js"].as_f64().expect("js");
        assert!((0.0..=std::f64::consts::LN_2).contains(&js));
    }

    // Validity: every sample stored with its verdict, 3 settings x 1 temperature.
    let valid = &report["valid"];
    let samples = valid["samples"].as_array().expect("samples");
    let valid_tasks = valid["tasks"].as_array().expect("valid tasks").len();
    assert_eq!(samples.len(), valid_tasks * 3 * 8);
    assert!(
        samples
            .iter()
            .all(|s| s["valid"].is_boolean() && s["text"].is_string())
    );
    assert_eq!(valid["overall"].as_array().expect("overall").len(), 3);

    // The same document comes back from the store.
    let shown = sb.json(&["runs", "show", &run.to_string()]);
    assert_eq!(shown["steer"]["tasks"], report["steer"]["tasks"]);
    assert_eq!(shown["dist"]["items"], report["dist"]["items"]);
    let table = sb.ok(&["runs", "show", "first"]);
    assert!(
        table.contains("STEERABILITY") && table.contains("DISTRIBUTIONAL"),
        "{table}"
    );
    let list = sb.ok(&["runs", "list"]);
    assert!(list.contains("first") && list.contains("eval"), "{list}");

    // Same seed, same results.
    let again = eval(&sb, &["--name", "second"]);
    assert_eq!(again["steer"]["tasks"], report["steer"]["tasks"]);
    assert_eq!(again["valid"]["samples"], report["valid"]["samples"]);

    // Compare: identical runs tie everywhere.
    let cmp = sb.json(&["compare", "first", "second"]);
    let tally = &cmp["candidates"][0]["tally"];
    assert_eq!(tally["steer"]["tie"].as_u64(), Some(8), "{tally}");
    assert_eq!(tally["steer"]["win"].as_u64(), Some(0));
    let text = sb.ok(&["compare", "first", "second"]);
    assert!(text.contains("wins") && text.contains("ties"), "{text}");
}

#[test]
fn templates_are_factors_and_tasks_are_chosen_by_name() {
    let sb = Sandbox::with_suite_and_tiny_model(8);
    let colon = eval(
        &sb,
        &[
            "--template",
            "colon",
            "--family",
            "dist",
            "--tasks",
            "urn_red_count",
        ],
    );
    assert_eq!(colon["template"], "colon");
    assert!(colon["steer"].is_null() && colon["valid"].is_null());
    let tasks = colon["dist"]["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["task"], "urn_red_count");
    let chat = eval(
        &sb,
        &[
            "--template",
            "chat",
            "--family",
            "dist",
            "--tasks",
            "urn_red_count",
        ],
    );
    assert_eq!(chat["template"], "chat");
    // Another prompt, other probabilities.
    assert_ne!(
        chat["dist"]["items"][0]["p"],
        colon["dist"]["items"][0]["p"]
    );
}

#[test]
fn an_imported_distribution_file_is_evaluated_by_task_name() {
    let sb = Sandbox::default();
    let file = sb.write(
        "coins.jsonl",
        br#"{"task": "weighted_coin", "description": "A coin that lands heads 70% of the time.", "options": ["heads", "tails"], "probs": [0.7, 0.3], "id": "c1"}
{"task": "weighted_coin", "description": "A coin that lands heads 20% of the time.", "options": ["heads", "tails"], "probs": [0.2, 0.8], "id": "c2"}
"#,
    );
    sb.ok(&[
        "import",
        file.to_str().expect("utf-8"),
        "--split",
        "held-out",
    ]);
    let model = sb.path("tiny");
    spectrum_lm::tiny::write_model(&model, 32, 2, 3).expect("tiny model");
    let report = sb.json(&[
        "eval",
        "--model",
        model.to_str().expect("utf-8"),
        "--tasks",
        "weighted_coin",
        "--family",
        "dist",
    ]);
    let items = report["dist"]["items"].as_array().expect("items");
    let mut ids: Vec<&str> = items
        .iter()
        .map(|i| i["id"].as_str().expect("id"))
        .collect();
    ids.sort();
    assert_eq!(ids, ["c1", "c2"]);
    assert_eq!(items[0]["options"], serde_json::json!(["heads", "tails"]));
}

#[test]
fn bad_requests_name_the_fix_and_record_nothing() {
    let sb = Sandbox::with_suite_and_tiny_model(8);
    let out = sb.run(&["eval", "--model", "tiny", "--tasks", "no_such_task"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no_such_task") && err.contains("spectrum tasks list"),
        "{err}"
    );
    let out = sb.run(&["eval", "--model", "tiny", "--family", "vibes"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("steer, dist or valid"));
    let out = sb.run(&["eval", "--model", "tiny", "--temperatures", "0"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("temperatures"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sb.run(&["eval", "--model", "tiny", "--k-tokenizer", "gemma.gguf"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("GGUF") && err.contains("(fix: --k-tokenizer: add gemma.gguf as a model"),
        "{err}"
    );
    let out = sb.run(&["eval", "--model", "tiny", "--k-tokenizer", "/nowhere"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no tokenizer.json"), "{err}");
    let out = sb.run(&["compare", "1", "2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("spectrum runs list"));
    assert!(
        sb.ok(&["runs", "list"]).contains("no runs yet")
            || sb
                .json(&["runs", "list"])
                .as_array()
                .is_some_and(|r| r.is_empty())
    );
}

#[test]
fn ctrl_c_keeps_the_finished_tasks() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let sb = Sandbox::with_suite_and_tiny_model(8);
    // Steerability finishes in a moment; the sampling after it runs long.
    let child = sb
        .command(&[
            "eval",
            "--model",
            "tiny",
            "--family",
            "steer,valid",
            "--budget",
            "256",
            "--samples",
            "300",
            "--max-new-tokens",
            "64",
            "--name",
            "stopped",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the evaluation");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let runs = sb.json(&["runs", "list"]);
        let step = runs
            .as_array()
            .and_then(|r| r.first())
            .and_then(|r| r["step"].as_i64());
        if step.is_some_and(|s| s >= 8) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "steerability did not finish: {runs}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // While it runs, a second process cannot resume it.
    let refused = sb.run(&["eval", "--resume", "stopped"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("is being run by process {}", child.id())),
        "{stderr}"
    );
    // Nor remove it.
    let refused = sb.run(&["runs", "remove", "stopped"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("is being run by process {}", child.id())),
        "{stderr}"
    );
    let stderr = spectrum_system_tests::interrupt(child);
    assert!(stderr.contains("finished tasks are kept"), "{stderr}");
    let report = sb.json(&["runs", "show", "stopped"]);
    assert_eq!(report["status"], "cancelled");
    assert_eq!(report["steer"]["tasks"].as_array().expect("kept").len(), 8);
    assert!(report["unfinished"].as_u64().expect("unfinished") >= 1);
    // Resuming keeps what was done and runs the rest with the run's settings;
    // of two resumes at once, one runs it and the other is refused.
    let resumed = spectrum_system_tests::one_of_two_at_once(&sb, &["eval", "--resume", "stopped"]);
    assert_eq!(resumed["run"], report["run"]);
    assert_eq!(resumed["status"], "finished");
    assert_eq!(resumed["unfinished"], 0);
    assert_eq!(resumed["steer"]["tasks"], report["steer"]["tasks"]);
    let samples = resumed["valid"]["samples"]
        .as_array()
        .expect("samples")
        .len();
    assert_eq!(
        samples,
        2 * 3 * 3 * 300,
        "two tasks x three prompts x three temperatures"
    );
    let again = sb.run(&["eval", "--resume", "stopped"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"));
    // Once nobody runs it, it can be removed, with everything recorded of it.
    let removed = sb.json(&["runs", "remove", "stopped"]);
    assert_eq!(removed["id"], report["run"]);
    assert_eq!(sb.json(&["runs", "list"]), serde_json::json!([]));
}

#[test]
fn report_and_charts_of_stored_runs() {
    let sb = Sandbox::with_suite_and_tiny_model(8);
    eval(&sb, &["--name", "a"]);
    eval(&sb, &["--name", "b", "--template", "colon"]);
    let pdf = sb.path("out/report.pdf");
    let pdf_s = pdf.to_str().expect("utf-8");
    let report = [
        "report",
        "a",
        "b",
        "--out",
        pdf_s,
        "--created",
        "2026-01-02",
    ];
    sb.ok(&report);
    let first = std::fs::read(&pdf).expect("the report");
    sb.ok(&report);
    assert_eq!(
        first,
        std::fs::read(&pdf).expect("again"),
        "same runs and date, same bytes"
    );
    let text = std::process::Command::new("pdftotext")
        .args([pdf_s, "-"])
        .output()
        .expect("pdftotext (Debian: poppler-utils)");
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in [
        "Summary",
        "In-context steerability",
        "Distributional alignment",
        "Validity and diversity",
        "urn_red_count",
        "element_symbol",
        "a (spectrum)",
        "b (colon)",
        "wins",
        // The appendix: each run's settings, read back typed.
        "Appendix: run specifications",
        "\"kind\": \"eval\"",
        "\"template\": \"colon\"",
    ] {
        assert!(
            text.contains(needle),
            "{needle:?} missing from the report:\n{text}"
        );
    }
    // One section only.
    sb.ok(&["report", "a", "--out", pdf_s, "--sections", "summary"]);
    let short = std::process::Command::new("pdfinfo")
        .arg(pdf_s)
        .output()
        .expect("pdfinfo");
    assert!(String::from_utf8_lossy(&short.stdout).contains("Pages:           3"));

    let svg = sb.path("steer.svg");
    sb.ok(&[
        "chart",
        "steer",
        "a",
        "b",
        "--out",
        svg.to_str().expect("utf-8"),
    ]);
    let content = std::fs::read_to_string(&svg).expect("svg");
    assert!(
        content.starts_with("<svg") && content.contains("zipf_rank"),
        "{content}"
    );
    sb.ok(&[
        "chart",
        "steer",
        "a",
        "--metric",
        "acc",
        "--out",
        svg.to_str().expect("utf-8"),
    ]);
    assert!(
        std::fs::read_to_string(&svg)
            .expect("svg")
            .contains("accuracy")
    );
    let png = sb.path("heat.png");
    sb.ok(&[
        "chart",
        "heatmap",
        "a",
        "b",
        "--task",
        "dist",
        "--out",
        png.to_str().expect("utf-8"),
    ]);
    assert!(std::fs::read(&png).expect("png").starts_with(b"\x89PNG"));

    let err = |args: &[&str]| String::from_utf8_lossy(&sb.run(args).stderr).into_owned();
    assert!(err(&["chart", "steer", "a", "--out", "x.txt"]).contains(".svg or .png"));
    assert!(err(&["chart", "training", "a", "--out", "x.svg"]).contains("training run"));
    assert!(
        err(&["report", "a", "--out", pdf_s, "--sections", "bogus"]).contains("summary, steer")
    );
}

#[test]
fn prompt_prints_what_the_evaluation_scores_and_validate_judges_texts() {
    let sb = Sandbox::with_suite_and_tiny_model(8);
    let common = ["--model", "tiny", "--budget", "256", "--format", "chat"];
    let prompt = |extra: &[&str]| {
        let mut args = vec!["prompt"];
        args.extend_from_slice(&common);
        args.extend_from_slice(extra);
        sb.json(&args)
    };
    // Steerability: the sequence the evaluation scores first, loss tokens marked.
    let p = prompt(&["--task", "zipf_rank"]);
    assert_eq!(p["family"], "steer");
    let ids = p["ids"].as_array().expect("ids");
    let loss: Vec<bool> = serde_json::from_value(p["loss"].clone()).expect("loss");
    assert_eq!(loss.len(), ids.len());
    let note = p["note"].as_str().expect("note");
    let sequence = note
        .strip_prefix("sequence ")
        .and_then(|n| n.split(' ').next())
        .expect("sequence id");
    // The evaluation (same settings, chat template) scores exactly those loss tokens.
    let report = sb.json(&[
        "eval",
        "--model",
        "tiny",
        "--budget",
        "256",
        "--template",
        "chat",
        "--family",
        "steer",
        "--tasks",
        "zipf_rank",
    ]);
    let scored: u64 = report["steer"]["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .filter(|o| o["sequence"] == sequence && !o["loss"].is_null())
        .map(|o| o["tokens"].as_u64().expect("tokens"))
        .sum();
    assert_eq!(scored, loss.iter().filter(|&&l| l).count() as u64, "{note}");
    let k = report["steer"]["tasks"][0]["k"].as_u64().expect("k");
    assert!(note.contains(&format!("examples 0..={k}")), "{note}");

    // Distributions: every option's ids.
    let p = prompt(&["--task", "spinner", "--family", "dist", "--index", "1"]);
    assert!(!p["options"].as_array().expect("options").is_empty());
    // Validity: the reference's chat prompt, the task's sample length.
    let p = prompt(&["--task", "element_symbol", "--setting", "examples"]);
    assert_eq!(p["family"], "valid");
    let text = p["text"].as_str().expect("text");
    assert!(
        text.contains("Respond with JUST the requested output"),
        "{text}"
    );
    assert!(
        text.contains("Generate an output like the provided examples."),
        "{text}"
    );
    assert_eq!(p["max_new_tokens"], 5);
    // Plain output marks loss tokens.
    let plain = sb.ok(&[
        "prompt",
        "--model",
        "tiny",
        "--task",
        "zipf_rank",
        "--budget",
        "256",
    ]);
    assert!(plain.contains("[[") && plain.contains("]]"), "{plain}");

    // Verdicts after the evaluation's cleanup.
    let v = sb.json(&[
        "validate",
        "element_symbol",
        "Fe",
        " Na<|im_end|>junk",
        "Xx",
    ]);
    let verdicts: Vec<bool> = v
        .as_array()
        .expect("verdicts")
        .iter()
        .map(|x| x["valid"].as_bool().expect("valid"))
        .collect();
    assert_eq!(verdicts, [true, true, false]);
    assert_eq!(v[1]["cleaned"], "Na");
    let out = sb.run(&["validate", "zipf_rank", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no validity rule"));
    let out = sb.run(&[
        "prompt",
        "--model",
        "tiny",
        "--task",
        "zipf_rank",
        "--index",
        "99",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is past them"));
}
