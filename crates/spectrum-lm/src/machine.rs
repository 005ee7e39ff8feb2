//! What this machine is, for benchmarks and `spectrum system`: the CPU model,
//! its vector instructions, the compute threads, whether subnormals are
//! flushed (see [`crate::fpu`]), and the matrix-multiply rate with ordinary,
//! subnormal and underflowing operands. Speeds differ between CPU models far
//! more than between runs (Intel cores slow to a crawl on subnormals, AMD's do
//! not), so every figure this project reports names the CPU it comes from.

use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::Serialize;

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// e.g. "AMD EPYC 9R14 96-Core Processor (family 25, model 17)".
    pub cpu: String,
    /// The widest vector instructions the CPU offers: "AVX-512", "AVX2+FMA", "NEON"...
    pub simd: &'static str,
    /// The instruction set our kernels and gemm's microkernels run on here
    /// (the widest of those built in that the CPU runs).
    pub kernels: crate::isa::Isa,
    /// The unit that runs LoRA training's bf16 frozen products here
    /// (`frozen_matmul: bf16`): "AMX", "AVX512-BF16", or none.
    pub bf16_unit: Option<&'static str>,
    /// Threads the tensor kernels use.
    pub threads: usize,
    /// Whether a subnormal result is zero on the calling thread.
    pub flushes_here: bool,
    /// Whether it is zero on every thread of the compute pool.
    pub pool_flushes: bool,
}

impl Machine {
    /// Reads the CPU and checks the floating-point mode of this thread and of
    /// the compute pool (by computing a subnormal product on each).
    pub fn describe() -> Machine {
        Machine {
            cpu: cpu_model(),
            simd: simd(),
            kernels: crate::isa::Isa::best(),
            bf16_unit: crate::bf16::Bf16Unit::get().map(crate::bf16::Bf16Unit::name),
            threads: candle_core::utils::get_num_threads(),
            flushes_here: crate::fpu::flushes_here(),
            pool_flushes: crate::fpu::pool_flushes(),
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let flush = |on: bool| {
            if on {
                "flushed to zero"
            } else {
                "kept (slow on Intel and ARM)"
            }
        };
        write!(
            f,
            "CPU: {} ({}, {} threads); kernels: {}{}; subnormals: {} here, {} in the compute pool",
            self.cpu,
            self.simd,
            self.threads,
            self.kernels,
            self.bf16_unit
                .map_or(String::new(), |unit| format!(", bf16 on {unit}")),
            flush(self.flushes_here),
            flush(self.pool_flushes)
        )
    }
}

/// The CPU's model name (`/proc/cpuinfo`'s "model name", with x86's family
/// and model numbers, which tell generations apart when the name does not).
pub fn cpu_model() -> String {
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        let field = |key: &str| {
            info.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim().to_string())
        };
        if let Some(name) = field("model name") {
            return match (field("cpu family"), field("model")) {
                (Some(family), Some(model)) => format!("{name} (family {family}, model {model})"),
                _ => name,
            };
        }
    }
    #[cfg(target_os = "macos")]
    if let Ok(out) = std::process::Command::new("sysctl")
        .args(["-n", "machdep.cpu.brand_string"])
        .output()
    {
        let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !name.is_empty() {
            return name;
        }
    }
    if let Ok(name) = std::env::var("PROCESSOR_IDENTIFIER") {
        return name;
    }
    format!("unknown {} CPU", std::env::consts::ARCH)
}

fn simd() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "AVX2+FMA";
        }
        "SSE2"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "NEON"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "scalar"
    }
}

/// What a probe multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operands {
    /// Values of order 1.
    Ordinary,
    /// One operand holds subnormal values (below 1.2e-38).
    Subnormal,
    /// Both operands are about 1e-20: every product underflows.
    Underflowing,
}

/// The f32 matrix-multiply rate (candle's CPU kernel, all compute threads)
/// in GFLOP/s for `n x n` operands, best of three after a warm-up.
pub fn gemm_gflops(n: usize, operands: Operands) -> candle_core::Result<f64> {
    let (a, b) = probe_operands(n, operands)?;
    a.matmul(&b)?; // warm-up: pages, packing buffers, threads
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let c = a.matmul(&b)?;
        // Wait for the result, whatever the backend.
        c.flatten_all()?.get(0)?.to_scalar::<f32>()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(2.0 * (n as f64).powi(3) / best / 1e9)
}

fn probe_operands(n: usize, operands: Operands) -> candle_core::Result<(Tensor, Tensor)> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        // splitmix64: any well-mixed bits will do.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as u32
    };
    let mut ordinary = |scale: f32| -> Vec<f32> {
        (0..n * n)
            .map(|_| ((next() >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * scale)
            .collect()
    };
    let (a, b) = match operands {
        Operands::Ordinary => (ordinary(1.0), ordinary(1.0)),
        Operands::Underflowing => (ordinary(1e-20), ordinary(1e-20)),
        Operands::Subnormal => {
            // Built from bits (zero exponent, random mantissa and sign): a
            // multiplication by 1e-39 would itself be flushed to zero.
            let b = ordinary(1.0);
            let a = (0..n * n)
                .map(|_| {
                    let bits = next();
                    f32::from_bits((bits & 0x8000_0000) | (bits & 0x007F_FFFF).max(1))
                })
                .collect();
            (a, b)
        }
    };
    Ok((
        Tensor::from_vec(a, (n, n), &Device::Cpu)?,
        Tensor::from_vec(b, (n, n), &Device::Cpu)?,
    ))
}

/// Rounds of [`GemmProbe::run`] after its warm-up.
pub const ROUNDS: usize = 5;

/// The three rates side by side: a machine that computes with subnormals at
/// full speed has a ratio near 1; without flush-to-zero an Intel core's is
/// near 0.005.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GemmProbe {
    pub n: usize,
    pub ordinary: f64,
    pub subnormal: f64,
    pub underflowing: f64,
}

impl GemmProbe {
    /// The three rates for `n x n` operands. The kinds take turns for
    /// [`ROUNDS`] rounds and each keeps its best: on a shared 2-core VM the
    /// rate drifts by a third from one run to the next, and measuring the
    /// kinds one after another turned drift into a spurious ratio.
    pub fn run(n: usize) -> candle_core::Result<GemmProbe> {
        const KINDS: [Operands; 3] = [
            Operands::Ordinary,
            Operands::Subnormal,
            Operands::Underflowing,
        ];
        let operands = KINDS
            .iter()
            .map(|&kind| probe_operands(n, kind))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let mut best = [f64::INFINITY; 3];
        for round in 0..=ROUNDS {
            for (k, (a, b)) in operands.iter().enumerate() {
                let t = Instant::now();
                let c = a.matmul(b)?;
                c.flatten_all()?.get(0)?.to_scalar::<f32>()?;
                // Round 0 warms up pages, packing buffers and threads.
                if round > 0 {
                    best[k] = best[k].min(t.elapsed().as_secs_f64());
                }
            }
        }
        let rate = |secs: f64| 2.0 * (n as f64).powi(3) / secs / 1e9;
        Ok(GemmProbe {
            n,
            ordinary: rate(best[0]),
            subnormal: rate(best[1]),
            underflowing: rate(best[2]),
        })
    }

    /// The slower of the two subnormal cases over the ordinary rate.
    pub fn ratio(&self) -> f64 {
        self.subnormal.min(self.underflowing) / self.ordinary
    }
}

impl std::fmt::Display for GemmProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "matrix multiply ({n}x{n}, f32): {:.1} GFLOP/s; subnormal operand {:.1}, underflowing products {:.1}: ratio {:.2}",
            self.ordinary,
            self.subnormal,
            self.underflowing,
            self.ratio(),
            n = self.n
        )?;
        if self.ratio() < 0.8 {
            write!(f, "  << below 0.8: subnormal floats slow this machine down")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_has_a_name_and_subnormal_operands_are_subnormal() {
        assert!(!cpu_model().is_empty());
        let (a, _) = probe_operands(8, Operands::Subnormal).expect("operands");
        let values = a
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("values");
        assert!(values.iter().all(|v| v.is_subnormal()), "{values:?}");
        let (a, b) = probe_operands(8, Operands::Underflowing).expect("operands");
        for t in [a, b] {
            let values = t
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .expect("values");
            assert!(
                values
                    .iter()
                    .all(|v| v.abs() < 1e-19 && (*v == 0.0 || v.is_normal()))
            );
        }
    }
}
