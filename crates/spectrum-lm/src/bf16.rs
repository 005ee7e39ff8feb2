//! Products with a frozen weight in bf16: the weight rounded to bf16 and
//! packed once, the activations rounded per call, the sums kept in f32.
//! Where a LoRA step spends most of its time in `x Wᵀ` and `dy W` with frozen
//! `W`, this is the lever; it rounds both operands to bf16 (8 bits of
//! mantissa), which the reference tests' f32 tolerances do not allow, so
//! callers opt in.
//!
//! Two units run them, the faster chosen at run time ([`Bf16Unit::get`]):
//! - Intel's matrix units (AMX, Sapphire Rapids and newer): a tile product
//!   does 512 multiply-adds a cycle against AVX-512's 32 in f32. Linux x86-64
//!   only: the tile registers need the kernel's permission
//!   (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), asked for once per process; the
//!   instructions are written in `asm!` (Rust's AMX intrinsics are unstable).
//! - AVX512-BF16 (`vdpbf16ps`: each f32 lane adds two bf16 products, twice
//!   the multiply-adds of an f32 FMA): AMD Zen 4 and newer, and Intel's
//!   AVX-512 CPUs with it (the AMX ones among them).
//!
//! Both read the same packing of the weight (panels of 32 columns, each the
//! column pairs `B[2i][j]`, `B[2i+1][j]` side by side), so one copy serves
//! either. The fourth audited `unsafe` of the crate, with the safety argument
//! beside each block.

use rayon::prelude::*;

/// A unit that runs bf16 products here, and the proof that it may: the CPU
/// has the instructions (and AVX-512 F and BW, for rounding the activations)
/// and, for AMX, the kernel granted the tile state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bf16Unit(Unit);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Amx,
    Avx512Bf16,
}

impl Bf16Unit {
    /// The fastest unit this CPU and OS offer (AMX before AVX512-BF16), or
    /// `None`, where bf16 products are refused.
    pub fn get() -> Option<Bf16Unit> {
        Bf16Unit::available().first().copied()
    }

    /// Every unit this CPU and OS offer, fastest first (asked once per
    /// process): tests run each against the others, benches measure each.
    pub fn available() -> &'static [Bf16Unit] {
        static UNITS: std::sync::OnceLock<Vec<Bf16Unit>> = std::sync::OnceLock::new();
        UNITS.get_or_init(|| {
            let mut units = Vec::new();
            if avx512::detected(false) && amx::enable() {
                units.push(Bf16Unit(Unit::Amx));
            }
            if avx512::detected(true) {
                units.push(Bf16Unit(Unit::Avx512Bf16));
            }
            units
        })
    }

    /// "AMX" or "AVX512-BF16".
    pub fn name(self) -> &'static str {
        match self.0 {
            Unit::Amx => "AMX",
            Unit::Avx512Bf16 => "AVX512-BF16",
        }
    }

    /// `c [32, 32] = a [32, kp] · panel` for `a` bf16 rows of length `kp`
    /// and `panel` the [kp/2, 64] column pairs of 32 columns; on AMX only
    /// inside `amx::with_tiles`.
    fn block(self, a: &[u16], panel: &[u16], kp: usize, c: &mut [f32; BLOCK * BLOCK]) {
        match self.0 {
            Unit::Amx => amx::block(a, panel, kp, c),
            Unit::Avx512Bf16 => avx512::block(a, panel, kp, c),
        }
    }
}

impl std::fmt::Display for Bf16Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Rows and columns of one block of the output a unit computes at once (on
/// AMX 2 x 2 tiles of 16 x 16 f32; with AVX512-BF16 four passes of 8 rows).
const BLOCK: usize = 32;
/// Rows of the output one parallel task computes: the activations' strip it
/// reads stays in L2 while every panel of the weight streams past it.
const ROWS_PER_TASK: usize = 256;

/// `B` [k, n] (the right operand of `a B`) rounded to bf16 and packed as
/// both units read it: panels of 32 columns, each a [k/2, 64] block of
/// column pairs (`B[2i][j]`, `B[2i+1][j]` side by side), zero-padded to
/// multiples of 32 in both dimensions.
#[derive(Debug)]
pub struct PackedWeight {
    k: usize,
    n: usize,
    kp: usize,
    np: usize,
    data: Vec<u16>,
}

impl PackedWeight {
    /// Packs `W` [rows, cols] (row-major f32) as the right operand of `x Wᵀ`
    /// (`transposed`: `B = Wᵀ`, k = cols, n = rows) or of `dy W` (`B = W`,
    /// k = rows, n = cols).
    pub fn pack(w: &[f32], rows: usize, cols: usize, transposed: bool) -> PackedWeight {
        assert!(
            w.len() >= rows * cols,
            "pack: weight smaller than [{rows}, {cols}]"
        );
        let (k, n) = if transposed {
            (cols, rows)
        } else {
            (rows, cols)
        };
        let at = |kk: usize, nn: usize| {
            if transposed {
                w[nn * cols + kk]
            } else {
                w[kk * cols + nn]
            }
        };
        let (kp, np) = (k.div_ceil(BLOCK) * BLOCK, n.div_ceil(BLOCK) * BLOCK);
        let mut data = vec![0u16; kp * np];
        let panel_len = kp / 2 * 2 * BLOCK;
        data.par_chunks_mut(panel_len)
            .enumerate()
            .for_each(|(p, panel)| {
                for (pair, row) in panel.chunks_exact_mut(2 * BLOCK).enumerate() {
                    for c in 0..BLOCK {
                        let nn = p * BLOCK + c;
                        for j in 0..2 {
                            let kk = 2 * pair + j;
                            if kk < k && nn < n {
                                row[2 * c + j] = bf16(at(kk, nn));
                            }
                        }
                    }
                }
            });
        PackedWeight { k, n, kp, np, data }
    }

    /// (k, n): the product's inner and output dimensions.
    pub fn dims(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    fn panel(&self, p: usize) -> &[u16] {
        let len = self.kp * 2 * BLOCK / 2;
        &self.data[p * len..][..len]
    }
}

/// A frozen weight's two packed copies, made on first use: `Wᵀ` for the
/// forward product `x Wᵀ`, `W` for the backward `dy W`. Shared by every
/// clone of the layer that owns the weight; never for a weight that trains.
#[derive(Debug, Default)]
pub struct Tiles {
    forward: std::sync::OnceLock<PackedWeight>,
    backward: std::sync::OnceLock<PackedWeight>,
}

impl Tiles {
    /// `Wᵀ` packed, for `w` [rows, cols] (packed on the first call).
    pub fn forward(&self, w: &[f32], rows: usize, cols: usize) -> &PackedWeight {
        let p = self
            .forward
            .get_or_init(|| PackedWeight::pack(w, rows, cols, true));
        assert_eq!(p.dims(), (cols, rows), "tiles of another weight");
        p
    }

    /// `W` packed, for `w` [rows, cols] (packed on the first call).
    pub fn backward(&self, w: &[f32], rows: usize, cols: usize) -> &PackedWeight {
        let p = self
            .backward
            .get_or_init(|| PackedWeight::pack(w, rows, cols, false));
        assert_eq!(p.dims(), (rows, cols), "tiles of another weight");
        p
    }
}

/// `out [m, n] (+)= a [m, k] · B` with `a` rounded to bf16 and f32 sums.
pub fn matmul(unit: Bf16Unit, out: &mut [f32], a: &[f32], m: usize, b: &PackedWeight, add: bool) {
    let (k, n, kp) = (b.k, b.n, b.kp);
    assert!(
        a.len() >= m * k && out.len() >= m * n,
        "bf16 matmul: operands smaller than [{m}, {k}] x [{k}, {n}]"
    );
    if m == 0 || n == 0 {
        return;
    }
    out[..m * n]
        .par_chunks_mut(ROWS_PER_TASK * n)
        .enumerate()
        .for_each(|(t, out)| {
            let rows = out.len() / n;
            let first = t * ROWS_PER_TASK;
            // The task's rows of `a` as bf16, padded to whole blocks and to kp.
            let mut strip = vec![0u16; rows.div_ceil(BLOCK) * BLOCK * kp];
            for (r, dst) in strip.chunks_exact_mut(kp).take(rows).enumerate() {
                avx512::round_row(&a[(first + r) * k..][..k], &mut dst[..k]);
            }
            let mut blocks = || {
                let mut block = Block([0f32; BLOCK * BLOCK]);
                for p in 0..b.np / BLOCK {
                    let panel = b.panel(p);
                    let cols = BLOCK.min(n - p * BLOCK);
                    for (i, a_rows) in strip.chunks_exact(BLOCK * kp).enumerate() {
                        unit.block(a_rows, panel, kp, &mut block.0);
                        for r in 0..BLOCK.min(rows - i * BLOCK) {
                            let dst = &mut out[(i * BLOCK + r) * n + p * BLOCK..][..cols];
                            let src = &block.0[r * BLOCK..][..cols];
                            if add {
                                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                            } else {
                                dst.copy_from_slice(src);
                            }
                        }
                    }
                }
            };
            match unit.0 {
                Unit::Amx => amx::with_tiles(blocks),
                Unit::Avx512Bf16 => blocks(),
            }
        });
}

/// One 32 x 32 block of f32 sums, aligned as tile stores like.
#[repr(C, align(64))]
struct Block([f32; BLOCK * BLOCK]);

/// `x` rounded to the nearest bf16, ties to even (NaN stays NaN). Branch
/// free, so loops over it vectorise.
#[inline(always)]
fn bf16(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = (b.wrapping_add(0x7FFF).wrapping_add((b >> 16) & 1) >> 16) as u16;
    let quiet = ((b >> 16) | 0x40) as u16;
    if x.is_nan() { quiet } else { rounded }
}

/// A bf16 value back as f32 (exact).
pub fn bf16_to_f32(x: u16) -> f32 {
    f32::from_bits((x as u32) << 16)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[allow(unsafe_code)]
mod amx {
    use std::arch::asm;
    use std::arch::x86_64::__cpuid_count;

    use super::BLOCK;

    pub(super) fn enable() -> bool {
        // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
        let leaf7 = __cpuid_count(7, 0);
        if leaf7.edx & (1 << 22) == 0 || leaf7.edx & (1 << 24) == 0 {
            return false;
        }
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: u64 = 0x1023;
        const XFEATURE_XTILEDATA: u64 = 18;
        let ret: i64;
        // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) asks the kernel
        // for the tile state; it reads no memory of ours and changes only
        // this process's permitted extended state. The syscall clobbers rcx
        // and r11, declared.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    }

    /// The tile configuration every block uses: tiles 0-7, 16 rows of 64
    /// bytes (16 f32 or 32 bf16).
    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        colsb: [u16; 16],
        rows: [u8; 16],
    }

    /// Runs `work` with the tiles configured on this thread, and releases
    /// them after (so the kernel does not save them at every switch).
    pub(super) fn with_tiles(work: impl FnOnce()) {
        let mut config = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        for t in 0..8 {
            config.colsb[t] = 64;
            config.rows[t] = 16;
        }
        // SAFETY: only reached through the AMX `Bf16Unit`, so the CPU has AMX
        // and the OS granted the tile state; ldtilecfg reads the 64 bytes of `config`.
        unsafe { asm!("ldtilecfg [{}]", in(reg) &config, options(nostack, readonly)) };
        work();
        // SAFETY: as above; tilerelease only returns the tiles to their init state.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }

    /// `c [32, 32] = a [32, kp] · panel` for `a` bf16 rows of length `kp`
    /// and `panel` the [kp/2, 64] column pairs of 32 columns.
    pub(super) fn block(a: &[u16], panel: &[u16], kp: usize, c: &mut [f32; BLOCK * BLOCK]) {
        assert!(a.len() >= BLOCK * kp && panel.len() >= kp * BLOCK && kp.is_multiple_of(BLOCK));
        let lda = (kp * 2) as isize;
        let (a, panel) = (a.as_ptr(), panel.as_ptr());
        // SAFETY: called inside `with_tiles` (configured tiles 0-7 of 16 x 64
        // bytes). Every load reads 16 rows of 64 bytes: at `a + 16 r lda + 2 k`
        // (r < 2, k + 32 <= kp: inside the 32 x kp strip, asserted) and at
        // `panel + 128 k/2 + 64 h` with stride 128 (h < 2: inside the panel's
        // kp/2 rows of 128 bytes). The stores write 16 rows of 64 bytes into
        // `c`'s four quarters, stride 128 bytes.
        unsafe {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
            for k in (0..kp).step_by(32) {
                let b = panel.add(k / 2 * 2 * BLOCK);
                asm!(
                    "tileloadd tmm4, [{a0} + {lda}*1]",
                    "tileloadd tmm6, [{b0} + {ldb}*1]",
                    "tileloadd tmm7, [{b1} + {ldb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tileloadd tmm5, [{a1} + {lda}*1]",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a0 = in(reg) a.add(k),
                    a1 = in(reg) a.add(16 * kp + k),
                    b0 = in(reg) b,
                    b1 = in(reg) b.add(32),
                    lda = in(reg) lda,
                    ldb = in(reg) 128isize,
                    options(nostack, readonly),
                );
            }
            let c = c.as_mut_ptr();
            asm!(
                "tilestored [{c00} + {ldc}*1], tmm0",
                "tilestored [{c01} + {ldc}*1], tmm1",
                "tilestored [{c10} + {ldc}*1], tmm2",
                "tilestored [{c11} + {ldc}*1], tmm3",
                c00 = in(reg) c,
                c01 = in(reg) c.add(16),
                c10 = in(reg) c.add(16 * BLOCK),
                c11 = in(reg) c.add(16 * BLOCK + 16),
                ldc = in(reg) (BLOCK * 4) as isize,
                options(nostack),
            );
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod amx {
    use super::BLOCK;

    pub(super) fn enable() -> bool {
        false
    }
    pub(super) fn with_tiles(_: impl FnOnce()) {
        unreachable!("no AMX on this platform")
    }
    pub(super) fn block(_: &[u16], _: &[u16], _: usize, _: &mut [f32; BLOCK * BLOCK]) {
        unreachable!("no AMX on this platform")
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use std::arch::x86_64::*;

    use super::BLOCK;

    /// Whether the CPU runs AVX-512 F and BW (the rounding of activations,
    /// which every unit uses) and, with `bf16`, AVX512-BF16.
    pub(super) fn detected(bf16: bool) -> bool {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && (!bf16 || is_x86_feature_detected!("avx512bf16"))
    }

    /// `dst = bf16(src)`, compiled for AVX-512 (16 lanes of integer rounding).
    pub(super) fn round_row(src: &[f32], dst: &mut [u16]) {
        // SAFETY: only reached through a `Bf16Unit`, which exists only where
        // `detected` found AVX-512 F and BW.
        unsafe { round_row_avx512(src, dst) }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    fn round_row_avx512(src: &[f32], dst: &mut [u16]) {
        for (s, d) in src.iter().zip(dst) {
            *d = super::bf16(*s);
        }
    }

    /// Rows of `a` one pass over the panel computes: 8 rows x 2 vectors of 16
    /// columns are 16 accumulators, enough independent sums to keep both FMA
    /// pipes busy, with the panel's two vectors and a broadcast beside them.
    const ROWS: usize = 8;

    /// `c [32, 32] = a [32, kp] · panel` (see `Bf16Unit::block`), eight rows
    /// at a time: per pair of `k`, two loads of the panel, eight broadcasts of
    /// a row's pair and sixteen `vdpbf16ps`.
    pub(super) fn block(a: &[u16], panel: &[u16], kp: usize, c: &mut [f32; BLOCK * BLOCK]) {
        assert!(a.len() >= BLOCK * kp && panel.len() >= kp * BLOCK && kp.is_multiple_of(2));
        // SAFETY: only reached through the AVX512-BF16 `Bf16Unit`, which
        // exists only where `detected(true)` found AVX-512 F and AVX512-BF16.
        unsafe { block_avx512(a, panel, kp, c) }
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    fn block_avx512(a: &[u16], panel: &[u16], kp: usize, c: &mut [f32; BLOCK * BLOCK]) {
        for g in 0..BLOCK / ROWS {
            let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
            let a = &a[g * ROWS * kp..][..ROWS * kp];
            for pair in 0..kp / 2 {
                // SAFETY: `panel` holds kp/2 rows of 64 bf16 (asserted), so
                // both 32-value loads at 64 pair are inside it; each row of
                // `a` has kp values, so the pair at 2 pair + 1 < kp is inside
                // the row (`a` is the group's ROWS x kp, sliced above).
                unsafe {
                    let b = panel.as_ptr().add(pair * 64);
                    let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.cast()));
                    let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(32).cast()));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let x = a
                            .as_ptr()
                            .add(r * kp + 2 * pair)
                            .cast::<i32>()
                            .read_unaligned();
                        let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(x));
                        acc[0] = _mm512_dpbf16_ps(acc[0], x, b0);
                        acc[1] = _mm512_dpbf16_ps(acc[1], x, b1);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let row = &mut c[(g * ROWS + r) * BLOCK..][..BLOCK];
                // SAFETY: `row` holds 32 f32, the two 16-lane stores fill it.
                unsafe {
                    _mm512_storeu_ps(row.as_mut_ptr(), acc[0]);
                    _mm512_storeu_ps(row.as_mut_ptr().add(16), acc[1]);
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx512 {
    use super::BLOCK;

    pub(super) fn detected(_: bool) -> bool {
        false
    }
    pub(super) fn round_row(_: &[f32], _: &mut [u16]) {
        unreachable!("no AVX-512 on this platform")
    }
    pub(super) fn block(_: &[u16], _: &[u16], _: usize, _: &mut [f32; BLOCK * BLOCK]) {
        unreachable!("no AVX-512 on this platform")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = spectrum_core::Rng::new(seed);
        (0..n).map(|_| rng.f64() as f32 - 0.5).collect()
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(bf16(1.0), 0x3F80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even 1.
        assert_eq!(bf16(1.0 + 1.0 / 256.0), 0x3F80);
        assert_eq!(bf16(1.0 + 3.0 / 256.0), 0x3F82);
        assert!(bf16_to_f32(bf16(f32::NAN)).is_nan());
        assert_eq!(bf16_to_f32(bf16(-2.5)), -2.5);
    }

    /// Every unit this CPU offers, both orientations, ragged sizes, and
    /// `add`, against an f64 product of the bf16-rounded operands: the units
    /// sum in f32, so the only difference is f32 summation (relative to the
    /// sum of magnitudes).
    #[test]
    fn products_equal_the_rounded_operands_product() {
        if Bf16Unit::available().is_empty() {
            eprintln!("skipped: this CPU or OS runs no bf16 unit (AMX, AVX512-BF16)");
        }
        for &unit in Bf16Unit::available() {
            products_of(unit);
            eprintln!("{unit}: products checked");
        }
    }

    fn products_of(unit: Bf16Unit) {
        for &(m, k, n) in &[(1, 1, 1), (37, 70, 45), (300, 96, 64), (64, 577, 33)] {
            for transposed in [true, false] {
                let x = values(m * k, 1);
                let w_len = k * n;
                let w = values(w_len, 2);
                let (rows, cols) = if transposed { (n, k) } else { (k, n) };
                let packed = PackedWeight::pack(&w, rows, cols, transposed);
                assert_eq!(packed.dims(), (k, n));
                let mut out = values(m * n, 3);
                let before = out.clone();
                matmul(unit, &mut out, &x, m, &packed, true);
                let round = |v: f32| bf16_to_f32(bf16(v)) as f64;
                for i in 0..m {
                    for j in 0..n {
                        let b = |l: usize| {
                            if transposed {
                                w[j * cols + l]
                            } else {
                                w[l * cols + j]
                            }
                        };
                        let (mut exact, mut scale) = (0f64, 0f64);
                        for l in 0..k {
                            let p = round(x[i * k + l]) * round(b(l));
                            exact += p;
                            scale += p.abs();
                        }
                        let got = (out[i * n + j] - before[i * n + j]) as f64;
                        assert!(
                            (got - exact).abs() <= 1e-5 * scale.max(1e-3),
                            "{unit} [{m}x{k}x{n}, transposed {transposed}] ({i},{j}): {got} vs {exact}"
                        );
                    }
                }
            }
        }
    }
}
