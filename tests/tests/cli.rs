//! The `spectrum` CLI end to end: build the suite, import it, list it, break it.

use std::collections::HashMap;

use spectrum_system_tests::Sandbox;

#[test]
fn suite_round_trip_lists_every_task_with_its_counts() {
    let sb = Sandbox::default();
    let suite = sb.path("suite");
    let suite_arg = suite.to_str().expect("utf-8 path");
    sb.ok(&[
        "suite", "build", "--out", suite_arg, "--seed", "11", "--size", "12",
    ]);

    // Count what the files hold, independently of the importer.
    let mut expected: HashMap<String, [i64; 3]> = HashMap::new();
    let mut tasks_split = HashMap::new();
    for (file, slot) in [
        ("sequences.jsonl", 0),
        ("distribution.jsonl", 1),
        ("diverse_valid.jsonl", 2),
    ] {
        for line in std::fs::read_to_string(suite.join(file))
            .expect("read")
            .lines()
        {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            expected
                .entry(v["task"].as_str().expect("task").to_string())
                .or_default()[slot] += 1;
        }
    }
    for line in std::fs::read_to_string(suite.join("tasks.jsonl"))
        .expect("read")
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        tasks_split.insert(
            v["task"].as_str().expect("task").to_string(),
            v["split"].as_str().expect("split").to_string(),
        );
    }
    assert!(tasks_split.len() >= 24);

    let imported = sb.json(&["import", suite_arg]);
    assert_eq!(imported["outcome"], "imported");
    assert_eq!(imported["report"]["counts"]["tasks"], tasks_split.len());

    let tasks = sb.json(&["tasks", "list"]);
    let tasks = tasks.as_array().expect("array");
    assert_eq!(tasks.len(), tasks_split.len());
    for t in tasks {
        let name = t["name"].as_str().expect("name");
        let want = expected.get(name).copied().unwrap_or_default();
        assert_eq!(
            [
                t["sequences"].as_i64(),
                t["distribution_items"].as_i64(),
                t["validity_tasks"].as_i64()
            ],
            want.map(Some),
            "{name}"
        );
        assert_eq!(
            t["split"].as_str(),
            Some(tasks_split[name].as_str()),
            "{name}"
        );
        assert_eq!(t["sequences"], 12);
    }
    let held_out = sb.json(&["tasks", "list", "--split", "held_out"]);
    assert_eq!(
        held_out.as_array().expect("array").len(),
        tasks_split.values().filter(|s| *s == "held_out").count()
    );

    // The human listing shows the same tasks.
    let table = sb.ok(&["tasks", "list"]);
    assert!(tasks_split.keys().all(|name| table.contains(name.as_str())));

    // Building twice with one seed gives byte-identical files.
    let again = sb.path("again");
    sb.ok(&[
        "suite",
        "build",
        "--out",
        again.to_str().expect("utf-8"),
        "--seed",
        "11",
        "--size",
        "12",
    ]);
    for f in [
        "tasks.jsonl",
        "sequences.jsonl",
        "distribution.jsonl",
        "diverse_valid.jsonl",
    ] {
        assert_eq!(
            std::fs::read(suite.join(f)).expect("read"),
            std::fs::read(again.join(f)).expect("read"),
            "{f}"
        );
    }
}

#[test]
fn reimporting_identical_content_is_recognised() {
    let sb = Sandbox::default();
    let file = sb.write(
        "coin.jsonl",
        br#"{"task": "coin", "messages": [{"role": "output", "content": "heads"}]}"#,
    );
    let copy = sb.write(
        "copy.jsonl",
        br#"{"task": "coin", "messages": [{"role": "output", "content": "heads"}]}"#,
    );
    let first = sb.json(&["import", file.to_str().expect("utf-8")]);
    assert_eq!(first["outcome"], "imported");
    let second = sb.json(&["import", copy.to_str().expect("utf-8")]);
    assert_eq!(second["outcome"], "already_imported");
    assert_eq!(second["dataset"]["id"], first["dataset"]["id"]);
    assert_eq!(
        sb.json(&["datasets", "list"])
            .as_array()
            .expect("array")
            .len(),
        1
    );
    // Other options make another dataset.
    let third = sb.json(&[
        "import",
        file.to_str().expect("utf-8"),
        "--split",
        "held_out",
    ]);
    assert_eq!(third["outcome"], "imported");
}

#[test]
fn invalid_rows_import_nothing_and_are_all_listed() {
    let sb = Sandbox::default();
    let content = concat!(
        r#"{"task": "coin", "messages": [{"role": "output", "content": "heads"}]}"#,
        "\n",
        r#"{"task": "coin", "messages": [{"role": "assistant", "content": "heads"}]}"#,
        "\n",
        r#"{"task": "coin", "messages": [{"role": "output", "content": "tails"}]"#,
        "\n",
    );
    let file = sb.write("chat.jsonl", content.as_bytes());
    let path = file.to_str().expect("utf-8");
    let out = sb.run(&["import", path]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first_line = stderr.lines().next().expect("a reason");
    assert!(
        first_line.starts_with("error: ")
            && first_line.contains("2 invalid row(s); nothing was imported"),
        "{stderr}"
    );
    assert!(
        stderr.contains("chat.jsonl: line 2: field `messages[0].role`: unknown role \"assistant\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("chat.jsonl: line 3: incomplete JSON"),
        "{stderr}"
    );
    assert!(stderr.contains("--skip-invalid"), "{stderr}");
    assert_eq!(sb.json(&["datasets", "list"]), serde_json::json!([]));

    // --json reports the rows as data.
    let out = sb.run(&["--json", "import", path]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(v["error"]["rejected"], 2);
    assert_eq!(
        v["error"]["rows"][0]["location"],
        serde_json::json!({"unit": "line", "number": 2})
    );

    let kept = sb.json(&["import", path, "--skip-invalid"]);
    assert_eq!(kept["report"]["counts"]["sequences"], 1);
    assert_eq!(kept["report"]["rejected"], 2);
}

#[test]
fn datasets_show_and_remove() {
    let sb = Sandbox::default();
    let csv = sb.write("pairs.csv", b"task,input,output\nadd,1+1,2\nadd,2+2,4\n");
    sb.ok(&[
        "import",
        csv.to_str().expect("utf-8"),
        "--name",
        "arith",
        "--split",
        "held_out",
    ]);
    let shown = sb.json(&["datasets", "show", "arith"]);
    assert_eq!(shown["files"][0]["shape"], "rows");
    assert_eq!(shown["files"][0]["format"], "csv");
    assert_eq!(shown["tasks"][0]["split"], "held_out");
    assert_eq!(shown["sequences"], 2);
    let human = sb.ok(&["datasets", "show", "arith"]);
    assert!(
        human.contains("csv, rows shape): 2 rows, 2 imported, 0 rejected"),
        "{human}"
    );
    sb.ok(&["datasets", "remove", "arith"]);
    assert_eq!(sb.json(&["tasks", "list"]), serde_json::json!([]));
    let out = sb.run(&["datasets", "show", "arith"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no dataset \"arith\"") && stderr.contains("spectrum datasets list"),
        "{stderr}"
    );
}

#[test]
fn failures_give_one_line_reasons_and_nonzero_exit() {
    let sb = Sandbox::default();
    for (args, reason) in [
        (vec!["import", "missing.jsonl"], "cannot read missing.jsonl"),
        (vec!["import", "x.jsonl", "--as", "chat"], "unknown shape"),
        (
            vec!["tasks", "list", "--dataset", "nope"],
            "no dataset \"nope\"",
        ),
    ] {
        if args[1] == "x.jsonl" {
            sb.write("x.jsonl", b"{}");
        }
        let out = sb.run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
    // A store written by a newer version is refused, not migrated. The schema
    // version is SQLite's user_version: four big-endian bytes at offset 60.
    sb.ok(&["datasets", "list"]);
    let mut bytes = std::fs::read(sb.store()).expect("read store");
    bytes[60..64].copy_from_slice(&99u32.to_be_bytes());
    std::fs::write(sb.store(), &bytes).expect("write store");
    let out = sb.run(&["datasets", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("newer Spectrum Studio (schema version 99")
            && stderr.contains("(fix: upgrade Spectrum Studio, or use another --store)"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(sb.store()).expect("read store"),
        bytes,
        "the newer store was modified"
    );
}

#[test]
fn help_reads_like_a_manual() {
    let sb = Sandbox::default();
    let help = sb.ok(&["--help"]);
    for needle in [
        "Spectrum Tuning",
        "messages",
        "distribution",
        "diverse_valid",
        "--store",
        "--json",
        "Examples:",
        "Exit status",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}");
    }
    let import_help = sb.ok(&["import", "--help"]);
    assert!(import_help.contains("--skip-invalid") && import_help.contains("--as"));
}

#[test]
fn system_reports_the_cpu_and_computes_with_subnormals_flushed() {
    let sb = Sandbox::default();
    let report = sb.json(&["system"]);
    let machine = &report["machine"];
    assert!(
        !machine["cpu"].as_str().unwrap_or_default().is_empty(),
        "{report}"
    );
    // Computed on the CLI's main thread and on every thread of its compute
    // pool: a subnormal product (scalar and through the matrix-multiply
    // kernel) comes out as zero.
    assert_eq!(machine["flushes_here"], true, "{report}");
    assert_eq!(machine["pool_flushes"], true, "{report}");
    assert_eq!(report["backends"][0], "cpu");
    let gemm = &report["gemm"];
    assert!(
        gemm["ordinary"].as_f64().unwrap_or_default() > 0.0,
        "{report}"
    );
    assert!(
        gemm["subnormal"].as_f64().unwrap_or_default() > 0.0,
        "{report}"
    );
    // No store is needed, so none is created.
    assert!(!sb.store().exists());
    let text = sb.ok(&["system", "--no-measure"]);
    assert!(
        text.contains("subnormals   flushed to zero (main thread), flushed to zero (compute pool)"),
        "{text}"
    );
    // Started without the allocator's and candle's settings, the binary runs
    // with them (it re-executes itself once with what is missing); one the
    // user set is kept.
    let out = sb
        .command(&["--json", "system", "--no-measure"])
        .env_remove("MIMALLOC_PURGE_DELAY")
        .env("CANDLE_BARRIER_POOL_SPIN_LIMIT", "7")
        .output()
        .expect("run spectrum");
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let env = &report["environment"];
    assert_eq!(env[0]["name"], "MIMALLOC_PURGE_DELAY", "{report}");
    assert_eq!(env[0]["value"], "-1", "{report}");
    assert_eq!(env[1]["name"], "CANDLE_BARRIER_POOL_SPIN_LIMIT", "{report}");
    assert_eq!(env[1]["value"], "7", "{report}");
    assert_eq!(env[1]["wanted"], "0", "{report}");
}
