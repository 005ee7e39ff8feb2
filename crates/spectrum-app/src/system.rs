//! What this machine offers the engine: the CPU, the floating-point mode of the
//! calling thread and of the compute pool, the GPU backends this build has,
//! and (when asked, about a second) the measured matrix-multiply rates.

use anyhow::Result;
use serde::Serialize;
use spectrum_lm::machine::{GemmProbe, Machine};

/// `spectrum system`: the facts a speed question starts from.
#[derive(Debug, Clone, Serialize)]
pub struct SystemReport {
    pub machine: Machine,
    /// Devices this build can run on: "cpu", and "cuda" / "metal" when built with them.
    pub backends: Vec<&'static str>,
    /// The f32 matrix-multiply rates, when measured.
    pub gemm: Option<GemmProbe>,
    /// The environment the front ends settle at start (allocator, candle's pool).
    pub environment: Vec<spectrum_lm::process::Setting>,
}

/// Describes this machine as seen from the calling thread; `measure` adds the
/// matrix-multiply probe (ordinary, subnormal and underflowing operands).
pub fn system(measure: bool) -> Result<SystemReport> {
    let mut backends = vec!["cpu"];
    if cfg!(feature = "cuda") {
        backends.push("cuda");
    }
    if cfg!(feature = "metal") {
        backends.push("metal");
    }
    Ok(SystemReport {
        machine: Machine::describe(),
        backends,
        gemm: measure.then(|| GemmProbe::run(512)).transpose()?,
        environment: spectrum_lm::process::settings(),
    })
}
