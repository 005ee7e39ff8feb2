//! A killed import leaves the store with all of it or none of it: the real
//! `spectrum` process is killed (SIGKILL) in the middle of a large import.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use spectrum_system_tests::Sandbox;

const ROW: &str = r#"{"task": "coin", "messages": [{"role": "description", "content": "Flip a coin that lands heads 70% of the time."}, {"role": "output", "content": "heads"}, {"role": "output", "content": "tails"}, {"role": "output", "content": "heads"}, {"role": "output", "content": "heads"}]}"#;

fn dataset_count(sb: &Sandbox) -> usize {
    sb.json(&["datasets", "list"])
        .as_array()
        .expect("array")
        .len()
}

/// Starts importing a large file and returns once the import has written
/// `bytes` into its (uncommitted) transaction, while it is still running.
fn start_large_import(sb: &Sandbox, bytes: u64) -> Child {
    let big = sb.write("big.jsonl", format!("{ROW}\n").repeat(300_000).as_bytes());
    sb.ok(&["datasets", "list"]); // create the store first, so its WAL is ours to watch
    let wal = sb.path("store.sqlite3-wal");
    let start_len = std::fs::metadata(&wal).map_or(0, |m| m.len());
    let mut child = sb
        .command(&["import", big.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start import");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::metadata(&wal)
        .map_or(0, |m| m.len())
        .saturating_sub(start_len)
        < bytes
    {
        assert!(
            child.try_wait().expect("poll").is_none(),
            "the import finished before it could be stopped; use a larger file"
        );
        assert!(
            Instant::now() < deadline,
            "the import wrote nothing for two minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_wait().expect("poll").is_none(),
        "the import must still be running"
    );
    child
}

#[test]
fn killed_import_leaves_nothing_and_the_store_stays_usable() {
    let sb = Sandbox::default();
    let mut child = start_large_import(&sb, 4 << 20);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    // Reopened, the store holds none of the import...
    assert_eq!(dataset_count(&sb), 0);
    assert_eq!(sb.json(&["tasks", "list"]), serde_json::json!([]));
    // ...and still works: a small import of the same task succeeds whole.
    let small = sb.write("small.jsonl", format!("{ROW}\n").repeat(1000).as_bytes());
    let done = sb.json(&["import", small.to_str().expect("utf-8")]);
    assert_eq!(done["dataset"]["sequences"], 1000);
    assert_eq!(dataset_count(&sb), 1);
}

#[test]
fn ctrl_c_cancels_an_import_cleanly() {
    let sb = Sandbox::default();
    let child = start_large_import(&sb, 1 << 20);
    let stderr = spectrum_system_tests::interrupt(child);
    assert!(
        stderr.contains("cancelled; nothing was imported"),
        "{stderr}"
    );
    assert_eq!(dataset_count(&sb), 0);
}

#[test]
fn an_import_that_finishes_is_complete_after_a_kill() {
    let sb = Sandbox::default();
    let rows = 20_000;
    let file = sb.write("done.jsonl", format!("{ROW}\n").repeat(rows).as_bytes());
    let mut child = sb
        .command(&["import", file.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    assert!(child.wait().expect("wait").success());
    // A committed import survives whatever happens to later processes.
    let mut reader = sb
        .command(&["datasets", "list"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start");
    let _ = reader.kill();
    let _ = reader.wait();
    let list = sb.json(&["datasets", "list"]);
    assert_eq!(list[0]["sequences"], rows);
    assert_eq!(list[0]["tasks"], 1);
}
