//! The vector instruction sets our CPU kernels run on, chosen at run time:
//! one binary carries AVX-512 (x86-64-v4), AVX2+FMA (x86-64-v3) and scalar
//! versions of every kernel written over `pulp` (`skinny`, `vmath`), and
//! takes the widest this CPU runs. gemm, which does the large products for
//! candle and for us, chooses between its AVX-512 and AVX2 microkernels the
//! same way (both are built in: the workspace turns on its `x86-v4`).
//!
//! Each set can also be asked for by name, so that tests run every kernel the
//! CPU allows against the others.

use serde::Serialize;

/// One instruction set the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Isa {
    /// AVX-512F/BW/CD/DQ/VL with FMA: 16 f32 lanes.
    Avx512,
    /// AVX2 with FMA: 8 f32 lanes.
    Avx2,
    /// NEON (aarch64).
    Neon,
    /// No vector instructions: what a CPU without the others runs.
    Scalar,
}

impl Isa {
    /// The widest set this CPU runs.
    pub fn best() -> Isa {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Isa::available()[0])
    }

    /// Every set this CPU runs, widest first (`Scalar` always last).
    pub fn available() -> Vec<Isa> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if pulp::x86::V4::try_new().is_some() {
                out.push(Isa::Avx512);
            }
            if pulp::x86::V3::try_new().is_some() {
                out.push(Isa::Avx2);
            }
        }
        #[cfg(target_arch = "aarch64")]
        if !matches!(pulp::Arch::new(), pulp::Arch::Scalar) {
            out.push(Isa::Neon);
        }
        out.push(Isa::Scalar);
        out
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "AVX-512",
            Isa::Avx2 => "AVX2+FMA",
            Isa::Neon => "NEON",
            Isa::Scalar => "scalar",
        }
    }

    /// Runs `op` compiled for this set.
    ///
    /// Panics when the CPU does not run it (ask [`Isa::available`] first).
    #[inline(always)]
    pub fn dispatch<Op: pulp::WithSimd>(self, op: Op) -> Op::Output {
        self.arch().dispatch(op)
    }

    fn arch(self) -> pulp::Arch {
        let missing = || -> ! { panic!("this CPU does not run {}", self.name()) };
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => pulp::Arch::V4(pulp::x86::V4::try_new().unwrap_or_else(|| missing())),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => pulp::Arch::V3(pulp::x86::V3::try_new().unwrap_or_else(|| missing())),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => match pulp::Arch::new() {
                pulp::Arch::Scalar => missing(),
                native => native,
            },
            Isa::Scalar => pulp::Arch::Scalar,
            #[allow(unreachable_patterns)]
            _ => missing(),
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_set_is_the_first_available_and_scalar_is_always_there() {
        let all = Isa::available();
        assert_eq!(Isa::best(), all[0]);
        assert_eq!(all.last(), Some(&Isa::Scalar));
        // Each one runs.
        for isa in all {
            assert_eq!(isa.dispatch(|| 1 + 1), 2);
        }
    }
}
