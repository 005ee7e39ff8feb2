//! Settings that libraries read from the environment once, when the process
//! (or their pool) starts, and that the model code needs set its way: a front
//! end's `main` calls [`settle_environment`] first.
//!
//! - `MIMALLOC_PURGE_DELAY=-1`: mimalloc keeps freed memory for reuse.
//!   Training frees and re-allocates activation-sized buffers every step, and
//!   returning them to the OS only to fault them back in, zeroed, cost a third
//!   of each step (BENCHMARKS.md).
//! - `CANDLE_BARRIER_POOL_SPIN_LIMIT`: candle runs its elementwise kernels on a
//!   pool of its own beside rayon's, whose threads spin for 25,000 pauses
//!   (about half a millisecond) after every kernel before they sleep. On a
//!   machine with as many compute threads as cores, that spinning takes a core
//!   from the matrix multiply that follows (rayon's threads): a LoRA step's
//!   profile on a 2-core AMD EPYC (Zen 3) VM showed candle's worker spinning for about a
//!   fifteenth of the step. At [`CANDLE_SPIN_LIMIT`] pauses it goes to sleep at
//!   once; a kernel then wakes it (microseconds, against kernels of hundreds).
//!
//! A value the user has set is kept.

/// Candle's barrier-pool spin limit the front ends run with.
pub const CANDLE_SPIN_LIMIT: &str = "0";

/// The variables and the values this process needs.
const SETTINGS: [(&str, &str); 2] = [
    ("MIMALLOC_PURGE_DELAY", "-1"),
    ("CANDLE_BARRIER_POOL_SPIN_LIMIT", CANDLE_SPIN_LIMIT),
];

/// The settings the environment lacks.
fn missing() -> Vec<(&'static str, &'static str)> {
    SETTINGS
        .into_iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .collect()
}

/// Re-executes the running binary once, with the same arguments, and the
/// settings above added to its environment where they are not set (setting
/// them in the running process would be too late for mimalloc and unsound
/// once threads run). Call it first thing in `main`: it returns at once when
/// nothing is missing, or if the re-execution fails (the defaults stay).
#[cfg(unix)]
pub fn settle_environment() {
    use std::os::unix::process::CommandExt;
    let missing = missing();
    if missing.is_empty() {
        return;
    }
    if let Ok(exe) = std::env::current_exe() {
        // `exec` only returns if it failed.
        let _ = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .envs(missing)
            .exec();
    }
}

/// Elsewhere there is no `exec`; the defaults stay.
#[cfg(not(unix))]
pub fn settle_environment() {}

/// One of the settings above as this process sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Setting {
    pub name: &'static str,
    /// What the front ends set it to.
    pub wanted: &'static str,
    /// Its value here (`None`: unset, the library's default).
    pub value: Option<String>,
}

/// The settings and their values in this process (`spectrum system`).
pub fn settings() -> Vec<Setting> {
    SETTINGS
        .into_iter()
        .map(|(name, wanted)| Setting {
            name,
            wanted,
            value: std::env::var(name).ok(),
        })
        .collect()
}
