//! Builds the web UI (`ui/`, Vite) when its sources change, so that a plain
//! `cargo build` or `cargo test` embeds a current `ui/dist`; then Tauri's own
//! build step, with the allow-list of commands the UI may call.

use std::path::Path;
use std::process::Command;

/// Must match `handler!` in src/lib.rs; each becomes an `allow-<name>`
/// permission, granted in capabilities/default.json.
const COMMANDS: &[&str] = &[
    "app_info",
    "jobs",
    "cancel_job",
    "pick",
    "pick_save",
    "tour_suite",
    "run_demo",
    "preview_import",
    "import",
    "datasets",
    "remove_dataset",
    "tasks",
    "task_detail",
    "distribution_item",
    "run_prompt",
    "models",
    "remove_model",
    "remove_run",
    "paper_suite",
    "fetch_paper_suite",
    "add_model",
    "train_defaults",
    "train_memory",
    "train",
    "resume_run",
    "eval_defaults",
    "evaluate",
    "runs",
    "run_detail",
    "eval_report",
    "compare",
    "report_options",
    "export_report",
    "open_path",
];

fn npm(ui: &Path, args: &[&str]) {
    let status = Command::new("npm")
        .args(args)
        .current_dir(ui)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run npm ({e}): building the desktop UI needs Node.js 20+ and npm \
                 (fix: install them, e.g. `apt-get install nodejs npm`)"
            )
        });
    assert!(
        status.success(),
        "`npm {}` failed in {} (see the output above)",
        args.join(" "),
        ui.display()
    );
}

fn main() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    for watched in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
    ] {
        println!("cargo:rerun-if-changed=../ui/{watched}");
    }
    println!("cargo:rerun-if-env-changed=SPECTRUM_SKIP_UI_BUILD");
    if std::env::var_os("SPECTRUM_SKIP_UI_BUILD").is_none() {
        if !ui.join("node_modules/.package-lock.json").exists() {
            npm(&ui, &["ci", "--no-audit", "--no-fund"]);
        }
        npm(&ui, &["run", "build"]);
    }
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    tauri_build::try_build(attributes).expect("tauri build step");
}
