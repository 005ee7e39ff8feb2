//! The UI's own tests (Vitest: chart options, formatting, job progress) and
//! its type check (svelte-check against the generated bindings), run from
//! `cargo test` so that the README's one test command covers them.

use std::path::Path;
use std::process::Command;

fn npm(args: &[&str]) {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    let out = Command::new("npm")
        .args(args)
        .current_dir(&ui)
        .output()
        .unwrap_or_else(|e| panic!("cannot run npm ({e}) (fix: install Node.js 20+ and npm)"));
    assert!(
        out.status.success(),
        "`npm {}` failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn vitest() {
    npm(&["test", "--silent"]);
}

#[test]
fn svelte_check() {
    npm(&["run", "check", "--silent"]);
}
