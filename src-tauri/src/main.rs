// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::process::ExitCode;

// Same allocator and settings as the CLI: training reuses freed buffers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    spectrum_app::settle_environment();
    // Before any thread starts: every later thread inherits the mode, and
    // the call reaches rayon's pool too.
    spectrum_app::flush_subnormals();
    match spectrum_studio::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spectrum-studio: {e:#}");
            ExitCode::FAILURE
        }
    }
}
