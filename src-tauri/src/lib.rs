//! Spectrum Studio's desktop shell: Tauri 2 around `spectrum-app`.
//!
//! - `commands`: what the UI may call (listed in `build.rs` and allowed in
//!   `capabilities/default.json`; nothing else is reachable). The `drift`
//!   test checks those lists and `ui/src/lib/api.ts`'s calls against them.
//! - `jobs`: long work on its own threads, progress over Tauri channels,
//!   cancelled and joined when the app exits.
//!
//! The types that cross to the UI (requests, job events and results, errors)
//! are `spectrum_app::dto`'s, and `spectrum_app::bindings` writes their
//! TypeScript: the shell only moves values between the web view and the core.

mod commands;
#[cfg(test)]
mod drift;
mod jobs;

use std::path::PathBuf;

use tauri::{DragDropEvent, Emitter, Manager, RunEvent, WindowEvent};

pub use commands::Shell;

/// Every command, for the invoke handler and `build.rs`'s allow-list.
macro_rules! handler {
    () => {
        tauri::generate_handler![
            commands::app_info,
            commands::jobs,
            commands::cancel_job,
            commands::pick,
            commands::pick_save,
            commands::tour_suite,
            commands::preview_import,
            commands::import,
            commands::datasets,
            commands::remove_dataset,
            commands::tasks,
            commands::task_detail,
            commands::distribution_item,
            commands::run_prompt,
            commands::run_demo,
            commands::models,
            commands::remove_model,
            commands::remove_run,
            commands::paper_suite,
            commands::fetch_paper_suite,
            commands::add_model,
            commands::train_defaults,
            commands::train_memory,
            commands::train,
            commands::resume_run,
            commands::eval_defaults,
            commands::evaluate,
            commands::runs,
            commands::run_detail,
            commands::eval_report,
            commands::compare,
            commands::report_options,
            commands::export_report,
            commands::open_path,
        ]
    };
}

/// The store: `SPECTRUM_STORE` (as for the CLI), else the OS data folder.
fn studio() -> anyhow::Result<spectrum_app::Studio> {
    let store = std::env::var_os("SPECTRUM_STORE").map(PathBuf::from);
    let mut studio = spectrum_app::Studio::new(store)?;
    if let Some(python) = std::env::var_os("SPECTRUM_PYTHON") {
        studio = studio.with_python(python.to_string_lossy().into_owned());
    }
    Ok(studio)
}

/// Runs the app until its window closes; then cancels and joins every job.
pub fn run() -> anyhow::Result<()> {
    let shell = Shell::new(studio()?);
    if let Some(dir) = shell.studio.store_path().parent() {
        std::fs::create_dir_all(dir)?;
    }
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init())
        .manage(shell)
        .on_window_event(|window, event| {
            if let WindowEvent::DragDrop(drop) = event {
                let app = window.app_handle();
                match drop {
                    DragDropEvent::Enter { .. } | DragDropEvent::Over { .. } => {
                        let _ = app.emit("drag-hover", true);
                    }
                    DragDropEvent::Leave => {
                        let _ = app.emit("drag-hover", false);
                    }
                    DragDropEvent::Drop { paths, .. } => {
                        let _ = app.emit("drag-hover", false);
                        let shell = app.state::<Shell>();
                        commands::accept_dropped(app, &shell, paths.clone());
                    }
                    _ => {}
                }
            }
        })
        .invoke_handler(handler!())
        .build(tauri::generate_context!())?;
    // SIGTERM, SIGINT and SIGHUP (logout, `kill`, Ctrl-C in a terminal) end
    // the app like closing its window: jobs are cancelled and joined first.
    let handle = app.handle().clone();
    ctrlc::set_handler(move || handle.exit(0))?;
    app.run(|app, event| {
        if let RunEvent::Exit = event {
            app.state::<Shell>().jobs.shutdown();
        }
    });
    Ok(())
}
