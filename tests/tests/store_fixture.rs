//! A store written by an earlier version of Spectrum Studio still opens and
//! reads the same. Each `tests/fixtures/store-vN.sqlite3` was written by the
//! code of its commit (schema N: a dataset of the built-in suite, a tiny
//! model, a training run and two evaluation runs), with what the CLI printed
//! about it then in `store-vN.expected.json`. Every later version must read
//! each file and print at least that: new fields may appear, none may change
//! or vanish.
//!
//! Write one when the schema or a stored record changes, before the change,
//! as a new fixture beside the old ones (never over them):
//! `SPECTRUM_WRITE_STORE_FIXTURE=store-v7 cargo test -p spectrum-system-tests --test store_fixture`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use spectrum_system_tests::Sandbox;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// What the CLI shows of a store: the reads a user does. (A training run's
/// checkpoints are its folder's, not the store's: left out.)
fn reads(sb: &Sandbox) -> Value {
    let mut train = sb.json(&["runs", "show", "t1"]);
    if let Some(detail) = train.as_object_mut() {
        detail.remove("checkpoints");
    }
    json!({
        "datasets": sb.json(&["datasets", "list"]),
        "models": sb.json(&["model", "list"]),
        "runs": sb.json(&["runs", "list"]),
        "train": train,
        "eval": sb.json(&["runs", "show", "e1"]),
        "compare": sb.json(&["compare", "e1", "e2"]),
    })
}

/// `expected` is found in `got`: objects may have more keys, everything
/// else is equal (numbers exactly: they were computed once and stored).
fn contains(got: &Value, expected: &Value, at: &str, problems: &mut Vec<String>) {
    match (got, expected) {
        (Value::Object(g), Value::Object(e)) => {
            for (k, v) in e {
                match g.get(k) {
                    Some(gv) => contains(gv, v, &format!("{at}.{k}"), problems),
                    None => problems.push(format!("{at}.{k} is gone")),
                }
            }
        }
        (Value::Array(g), Value::Array(e)) => {
            if g.len() != e.len() {
                problems.push(format!("{at}: {} entries, was {}", g.len(), e.len()));
                return;
            }
            for (i, (gv, ev)) in g.iter().zip(e).enumerate() {
                contains(gv, ev, &format!("{at}[{i}]"), problems);
            }
        }
        _ if got != expected => problems.push(format!("{at}: {got}, was {expected}")),
        _ => {}
    }
}

fn write_fixture(name: &str) {
    let sb = Sandbox::with_suite_and_tiny_model(8);
    let common = [
        "--model",
        "tiny",
        "--budget",
        "256",
        "--max-sequences",
        "4",
        "--max-items",
        "4",
        "--samples",
        "8",
        "--temperatures",
        "1",
        "--max-new-tokens",
        "8",
    ];
    sb.ok(&[
        "train",
        "--model",
        "tiny",
        "--name",
        "t1",
        "--steps",
        "3",
        "--eval-every",
        "2",
    ]);
    for (name, template) in [("e1", "spectrum"), ("e2", "colon")] {
        let mut args = vec!["eval", "--name", name, "--template", template];
        args.extend_from_slice(&common);
        sb.ok(&args);
    }
    let out = fixtures();
    std::fs::create_dir_all(&out).expect("fixtures folder");
    let store = out.join(format!("{name}.sqlite3"));
    assert!(
        !store.exists(),
        "{} exists: a fixture is never rewritten (name a new one)",
        store.display()
    );
    let copy = rusqlite_free_copy(&sb.store());
    std::fs::write(&store, copy).expect("write the fixture store");
    let expected = serde_json::to_string_pretty(&reads(&sb)).expect("json");
    std::fs::write(out.join(format!("{name}.expected.json")), expected + "\n")
        .expect("write the expected reads");
}

/// The store file as one self-contained file: the CLI has exited, so the
/// write-ahead log is checkpointed into it.
fn rusqlite_free_copy(store: &Path) -> Vec<u8> {
    for side in ["-wal", "-shm"] {
        let mut name = store.as_os_str().to_owned();
        name.push(side);
        let path = PathBuf::from(name);
        assert!(
            !path.exists() || std::fs::metadata(&path).map_or(0, |m| m.len()) == 0,
            "{} holds unwritten pages",
            path.display()
        );
    }
    std::fs::read(store).expect("read the store")
}

#[test]
fn a_store_of_an_earlier_version_reads_the_same() {
    if let Ok(name) = std::env::var("SPECTRUM_WRITE_STORE_FIXTURE") {
        write_fixture(&name);
    }
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .expect("fixtures folder")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".sqlite3")?.to_string())
        })
        .filter(|n| n.starts_with("store-v"))
        .collect();
    names.sort();
    assert!(names.len() >= 2, "the fixtures: {names:?}");
    for name in names {
        reads_the_same(&name);
    }
}

fn reads_the_same(name: &str) {
    let sb = Sandbox::default();
    let fixture = fixtures().join(format!("{name}.sqlite3"));
    std::fs::copy(&fixture, sb.store()).expect("copy the fixture store");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(format!("{name}.expected.json")))
            .expect("expected reads"),
    )
    .expect("expected json");
    let mut problems = Vec::new();
    contains(&reads(&sb), &expected, "", &mut problems);
    assert!(
        problems.is_empty(),
        "{} reads differently now:\n{}",
        fixture.display(),
        problems.join("\n")
    );
    // And it still takes new work: a report of the old runs.
    let pdf = sb.path("old.pdf");
    sb.ok(&[
        "report",
        "e1",
        "e2",
        "t1",
        "--out",
        pdf.to_str().expect("utf-8"),
    ]);
    assert!(std::fs::metadata(&pdf).expect("pdf").len() > 1000);
}
