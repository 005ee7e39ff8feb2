//! A GGUF model's quantised blocks, kept beside the f32 weights they were
//! dequantised into, for the products of token-by-token generation.
//!
//! Sampling is bound by reading the weights: every step reads each one once
//! for a handful of rows. A model imported from a GGUF file (the default
//! model, Ollama's and LM Studio's files) was stored in blocks of 32 (or
//! 256) values of 4.5 to 8.5 bits, and its f32 weights are exactly those
//! blocks dequantised. So the decode products read the blocks (about a fifth
//! of the bytes for Q4_1, its scales kept as f32) and dequantise each row of
//! `W` into L1 as they go, with the same
//! arithmetic as the import (`d · q + m`, each rounded as candle and
//! llama.cpp round it): the products see the very same f32 weights, and give
//! the very same results, as when they read the f32 weights.
//!
//! The import writes the blocks to [`FILE`] in the model folder (q and k
//! projections of Llama models with their rows unpermuted like the weights).
//! A weight uses its blocks only after they were checked to dequantise to it,
//! bit for bit, on first use; a weight that differs (an adapter merged in, a
//! tuned copy) keeps reading f32. Q4_0, Q4_1, Q8_0, Q4_K (as Q4_1 blocks)
//! and Q6_K (as bytes with a scale per 16) are kept; other types (Q5_K, F16,
//! ...) read f32.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};

use crate::{LmError, Result};

/// The blocks file of a model folder imported from GGUF.
pub const FILE: &str = "spectrum.blocks.safetensors";

/// Values per block (every kept type).
pub const VALUES: usize = 32;

/// A GGUF block type whose rows the decode products read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// f16 scale, 32 nibbles: `d · (q − 8)`.
    Q4_0,
    /// f16 scale and minimum, 32 nibbles: `d · q + m`.
    Q4_1,
    /// f16 scale, 32 signed bytes: `d · q`.
    Q8_0,
    /// 32 signed bytes, a scale per 16: `d_{j / 16} · q` (Q6_K's values,
    /// each widened to a byte, with its scales `d · sc` computed once).
    Q8_16,
}

impl BlockKind {
    pub const ALL: [BlockKind; 4] = [
        BlockKind::Q4_0,
        BlockKind::Q4_1,
        BlockKind::Q8_0,
        BlockKind::Q8_16,
    ];

    /// Bytes of quantised values per block.
    pub const fn q_bytes(self) -> usize {
        match self {
            BlockKind::Q4_0 | BlockKind::Q4_1 => VALUES / 2,
            BlockKind::Q8_0 | BlockKind::Q8_16 => VALUES,
        }
    }

    /// Scales per block: `d`, and `m` for Q4_1; two `d` for Q8_16.
    pub const fn scales(self) -> usize {
        match self {
            BlockKind::Q4_1 | BlockKind::Q8_16 => 2,
            _ => 1,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            BlockKind::Q4_0 => "q4_0",
            BlockKind::Q4_1 => "q4_1",
            BlockKind::Q8_0 => "q8_0",
            BlockKind::Q8_16 => "q8_16",
        }
    }

    /// Whether a GGUF matrix of type `t` is kept as blocks: Q4_0, Q4_1 and
    /// Q8_0 as they are, Q4_K as Q4_1 blocks (`d·sc·q − dmin·m` is `q·d1 + m1`
    /// with `d1 = d·sc`, `m1 = −dmin·m`, each rounded as candle rounds
    /// them), Q6_K as Q8_16 (Ollama's usual Q4_K_M files are these two).
    pub fn keeps(t: GgmlDType) -> bool {
        matches!(
            t,
            GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q8_0 | GgmlDType::Q4K | GgmlDType::Q6K
        )
    }

    fn parse(name: &str) -> Option<BlockKind> {
        BlockKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One weight [rows, k] as blocks, row after row (each row `k / 32`
/// blocks), held as the kernels read them: the quantised values, and the
/// scales already widened to f32 (the f16 conversion per block cost more
/// than the rest of the dequantisation).
#[derive(Debug)]
pub struct Blocks {
    pub kind: BlockKind,
    pub rows: usize,
    pub k: usize,
    qs: Vec<u8>,
    scales: Vec<f32>,
    /// Whether the blocks dequantise to the f32 weight, checked on first use.
    checked: OnceLock<bool>,
}

impl Blocks {
    /// From the quantised values and the f32 scales of `rows` rows of `k`
    /// values (None when the lengths do not fit).
    pub fn new(
        kind: BlockKind,
        (rows, k): (usize, usize),
        qs: Vec<u8>,
        scales: Vec<f32>,
    ) -> Option<Blocks> {
        let n = rows * k / VALUES;
        let fits = k.is_multiple_of(VALUES)
            && qs.len() == n * kind.q_bytes()
            && scales.len() == n * kind.scales();
        fits.then(|| Blocks {
            kind,
            rows,
            k,
            qs,
            scales,
            checked: OnceLock::new(),
        })
    }

    /// From a GGUF matrix of type `t` ([`BlockKind::keeps`]) as the file
    /// stores it: `rows` rows of `k` values. None for another type, or
    /// lengths that do not fit.
    pub fn from_gguf(t: GgmlDType, (rows, k): (usize, usize), bytes: &[u8]) -> Option<Blocks> {
        let (kind, values, size): (BlockKind, usize, usize) = match t {
            GgmlDType::Q4_0 => (BlockKind::Q4_0, 32, 18),
            GgmlDType::Q4_1 => (BlockKind::Q4_1, 32, 20),
            GgmlDType::Q8_0 => (BlockKind::Q8_0, 32, 34),
            GgmlDType::Q4K => (BlockKind::Q4_1, 256, 144),
            GgmlDType::Q6K => (BlockKind::Q8_16, 256, 210),
            _ => return None,
        };
        if !k.is_multiple_of(values) || bytes.len() != rows * k / values * size {
            return None;
        }
        let (mut qs, mut scales) = (Vec::with_capacity(rows * k), Vec::new());
        for block in bytes.chunks_exact(size) {
            match t {
                GgmlDType::Q4K => q4k(block, &mut qs, &mut scales),
                GgmlDType::Q6K => q6k(block, &mut qs, &mut scales),
                _ => {
                    let (s, q) = block.split_at(2 * kind.scales());
                    scales.extend(s.chunks_exact(2).map(half));
                    qs.extend_from_slice(q);
                }
            }
        }
        Blocks::new(kind, (rows, k), qs, scales)
    }

    /// Bytes the kernels read for the whole weight.
    pub fn bytes_read(&self) -> usize {
        self.qs.len() + 4 * self.scales.len()
    }

    /// Rows `first..first + n`: their quantised values and scales.
    pub fn rows(&self, first: usize, n: usize) -> (&[u8], &[f32]) {
        let blocks = self.k / VALUES;
        let (q, s) = (blocks * self.kind.q_bytes(), blocks * self.kind.scales());
        (
            &self.qs[first * q..][..n * q],
            &self.scales[first * s..][..n * s],
        )
    }

    /// Row `j` dequantised into `out` (k values).
    pub fn dequantize_row(&self, j: usize, out: &mut [f32]) {
        let (qs, scales) = self.rows(j, 1);
        dequantize_row(self.kind, qs, scales, out);
    }

    /// Whether the blocks were found to dequantise to their weight (None:
    /// not used yet).
    pub fn checked(&self) -> Option<bool> {
        self.checked.get().copied()
    }

    /// True when these blocks dequantise to `w` [rows, k] bit for bit
    /// (checked once; the answer is kept). The check runs in parallel outside
    /// the cell's initialisation: a pool thread waiting inside it could steal
    /// a job that asks again, and wait for itself.
    pub fn dequantise_to(&self, w: &[f32]) -> bool {
        if let Some(&known) = self.checked.get() {
            return known;
        }
        use rayon::prelude::*;
        let equal = w.len() == self.rows * self.k
            && w.par_chunks(self.k).enumerate().all(|(j, row)| {
                let mut values = vec![0f32; self.k];
                self.dequantize_row(j, &mut values);
                values
                    .iter()
                    .zip(row)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            });
        *self.checked.get_or_init(|| equal)
    }
}

/// A Q4_K super-block (256 values: f16 `d` and `dmin`, 12 bytes of 6-bit
/// scales and minimums, 128 bytes of nibbles) as eight Q4_1 blocks: each
/// sub-block's `d1 = d·sc` and `−m1 = −(dmin·m)`, computed as candle's
/// dequantisation computes them, and its nibbles reordered (a Q4_K byte
/// holds values j and j + 32 of 64, a Q4_1 byte values j and j + 16 of 32).
fn q4k(block: &[u8], qs: &mut Vec<u8>, scales: &mut Vec<f32>) {
    let (d, dmin) = (half(&block[0..2]), half(&block[2..4]));
    let (sc, q) = (&block[4..16], &block[16..144]);
    // llama.cpp's `get_scale_min_k4`: 6-bit scale and minimum of sub-block j.
    let scale_min = |j: usize| {
        if j < 4 {
            (sc[j] & 63, sc[j + 4] & 63)
        } else {
            (
                (sc[j + 4] & 0xf) | ((sc[j - 4] >> 6) << 4),
                (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4),
            )
        }
    };
    for (c, q) in q.chunks_exact(32).enumerate() {
        for high in [false, true] {
            let (s, m) = scale_min(2 * c + usize::from(high));
            scales.extend([d * s as f32, -(dmin * m as f32)]);
            let nibble = |b: u8| if high { b >> 4 } else { b & 0xf };
            qs.extend((0..16).map(|j| nibble(q[j]) | (nibble(q[j + 16]) << 4)));
        }
    }
}

/// A Q6_K super-block (256 values: 128 bytes of low nibbles, 64 of high
/// bit pairs, 16 signed 8-bit scales, f16 `d`) as eight Q8_16 blocks: each
/// value `q − 32` in a byte, each 16's scale `d·sc` as candle computes it.
fn q6k(block: &[u8], qs: &mut Vec<u8>, scales: &mut Vec<f32>) {
    let (ql, qh, sc, d) = (
        &block[0..128],
        &block[128..192],
        &block[192..208],
        half(&block[208..210]),
    );
    let mut values = [0i8; 256];
    for n in 0..2 {
        let (ql, qh) = (&ql[64 * n..], &qh[32 * n..]);
        for l in 0..32 {
            let six = |low: u8, high: u8| (low | (high << 4)) as i8 - 32;
            let v = &mut values[128 * n + l..];
            v[0] = six(ql[l] & 0xf, qh[l] & 3);
            v[32] = six(ql[l + 32] & 0xf, (qh[l] >> 2) & 3);
            v[64] = six(ql[l] >> 4, (qh[l] >> 4) & 3);
            v[96] = six(ql[l + 32] >> 4, (qh[l] >> 6) & 3);
        }
    }
    qs.extend(values.iter().map(|&v| v as u8));
    scales.extend(sc.iter().map(|&s| d * (s as i8) as f32));
}

/// Two little-endian bytes of an f16, as f32.
fn half(b: &[u8]) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[0], b[1]]))
}

/// f16 bits to f32 (exact: every f16 value is an f32 value). Integer steps
/// and a multiply by a power of two, so that flushing subnormals (which the
/// compute threads do) cannot change a subnormal f16's value.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        // Subnormal: frac · 2^-24, a normal f32.
        (0, _) => return f32::from_bits(sign | 0x3f80_0000) * (frac as f32 / 16_777_216.0),
        (0x1f, _) => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 112) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

/// One row of blocks into `out`, with the arithmetic of candle's (and
/// llama.cpp's) dequantisation, so every value comes out bit for bit the same.
/// Inlined into the kernels so that it is vectorised for their instruction set.
#[inline(always)]
pub fn dequantize_row(kind: BlockKind, qs: &[u8], scales: &[f32], out: &mut [f32]) {
    let blocks = out.chunks_exact_mut(VALUES);
    match kind {
        BlockKind::Q4_0 => {
            for ((q, &d), out) in qs.chunks_exact(16).zip(scales).zip(blocks) {
                let (lo, hi) = out.split_at_mut(16);
                for ((q, a), b) in q.iter().zip(lo).zip(hi) {
                    *a = ((q & 0x0f) as i16 - 8) as f32 * d;
                    *b = ((q >> 4) as i16 - 8) as f32 * d;
                }
            }
        }
        BlockKind::Q4_1 => {
            for ((q, dm), out) in qs.chunks_exact(16).zip(scales.chunks_exact(2)).zip(blocks) {
                let (d, m) = (dm[0], dm[1]);
                let (lo, hi) = out.split_at_mut(16);
                for ((q, a), b) in q.iter().zip(lo).zip(hi) {
                    *a = (q & 0x0f) as f32 * d + m;
                    *b = (q >> 4) as f32 * d + m;
                }
            }
        }
        BlockKind::Q8_0 => {
            for ((q, &d), out) in qs.chunks_exact(32).zip(scales).zip(blocks) {
                for (q, v) in q.iter().zip(out) {
                    *v = (*q as i8) as f32 * d;
                }
            }
        }
        BlockKind::Q8_16 => {
            for ((q, &d), out) in qs
                .chunks_exact(16)
                .zip(scales)
                .zip(out.chunks_exact_mut(16))
            {
                for (q, v) in q.iter().zip(out) {
                    *v = (*q as i8) as f32 * d;
                }
            }
        }
    }
}

/// Dequantises rows with the CPU's vector conversions where it has them
/// (checked when made), the portable loop elsewhere; every way gives the
/// same bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dequantiser(Kernel);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Dequantiser {
    /// The dequantiser of `isa`, when the CPU runs it (portable otherwise).
    pub fn new(isa: crate::isa::Isa) -> Dequantiser {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::isa::Isa;
            let has = |f: &str| match f {
                "avx512" => {
                    std::arch::is_x86_feature_detected!("avx512f")
                        && std::arch::is_x86_feature_detected!("avx512bw")
                }
                _ => std::arch::is_x86_feature_detected!("avx2"),
            };
            match isa {
                Isa::Avx512 if has("avx512") => return Dequantiser(Kernel::Avx512),
                Isa::Avx2 if has("avx2") => return Dequantiser(Kernel::Avx2),
                _ => {}
            }
        }
        let _ = isa;
        Dequantiser(Kernel::Portable)
    }

    /// One row of blocks into `out`, as [`dequantize_row`].
    #[inline]
    pub fn row(self, kind: BlockKind, qs: &[u8], scales: &[f32], out: &mut [f32]) {
        let blocks = out.len() / VALUES;
        assert!(
            qs.len() == blocks * kind.q_bytes() && scales.len() == blocks * kind.scales(),
            "a row of {blocks} blocks"
        );
        match self.0 {
            Kernel::Portable => dequantize_row(kind, qs, scales, out),
            // SAFETY: made only where the CPU has the features (`new`), and
            // the lengths were checked above.
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            Kernel::Avx512 => unsafe { x86::avx512(kind, qs, scales, out) },
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            Kernel::Avx2 => unsafe { x86::avx2(kind, qs, scales, out) },
        }
    }
}

/// The vector dequantisations: integers widened and converted exactly, then
/// a multiply and an add, each rounded once (never fused), as the portable
/// loop and candle do.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use super::{BlockKind, VALUES};
    use std::arch::x86_64::*;

    /// Block `i`'s scale, and its minimum for Q4_1.
    #[inline(always)]
    fn scale(kind: BlockKind, scales: &[f32], i: usize) -> (f32, Option<f32>) {
        match kind {
            BlockKind::Q4_1 => (scales[2 * i], Some(scales[2 * i + 1])),
            _ => (scales[i], None),
        }
    }

    /// The scale of values `16 · half..` of byte block `i` (Q8_0, Q8_16).
    #[inline(always)]
    fn byte_scale(kind: BlockKind, scales: &[f32], i: usize, half: usize) -> f32 {
        match kind {
            BlockKind::Q8_16 => scales[2 * i + half],
            _ => scales[i],
        }
    }

    /// # Safety
    /// The CPU has AVX-512F/BW; `qs`, `scales` and `out` hold the same
    /// number of blocks.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn avx512(kind: BlockKind, qs: &[u8], scales: &[f32], out: &mut [f32]) {
        let blocks = out.len() / VALUES;
        let (q, o) = (qs.as_ptr(), out.as_mut_ptr());
        let low = _mm512_set1_epi32(0x0f);
        // SAFETY (every access): block i's bytes, scales and values lie
        // inside the slices, whose lengths the caller checked.
        unsafe {
            for i in 0..blocks {
                let o = o.add(i * VALUES);
                match kind {
                    BlockKind::Q4_0 | BlockKind::Q4_1 => {
                        let bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(q.add(i * 16).cast()));
                        let (mut a, mut b) =
                            (_mm512_and_si512(bytes, low), _mm512_srli_epi32::<4>(bytes));
                        if kind == BlockKind::Q4_0 {
                            let eight = _mm512_set1_epi32(8);
                            (a, b) = (_mm512_sub_epi32(a, eight), _mm512_sub_epi32(b, eight));
                        }
                        let (d, m) = scale(kind, scales, i);
                        let d = _mm512_set1_ps(d);
                        let (mut a, mut b) = (
                            _mm512_mul_ps(_mm512_cvtepi32_ps(a), d),
                            _mm512_mul_ps(_mm512_cvtepi32_ps(b), d),
                        );
                        if let Some(m) = m {
                            let m = _mm512_set1_ps(m);
                            (a, b) = (_mm512_add_ps(a, m), _mm512_add_ps(b, m));
                        }
                        _mm512_storeu_ps(o, a);
                        _mm512_storeu_ps(o.add(16), b);
                    }
                    BlockKind::Q8_0 | BlockKind::Q8_16 => {
                        for half in 0..2 {
                            let d = _mm512_set1_ps(byte_scale(kind, scales, i, half));
                            let bytes = _mm_loadu_si128(q.add(i * 32 + half * 16).cast());
                            let v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes));
                            _mm512_storeu_ps(o.add(half * 16), _mm512_mul_ps(v, d));
                        }
                    }
                }
            }
        }
    }

    /// # Safety
    /// The CPU has AVX2; `qs`, `scales` and `out` hold the same number of
    /// blocks.
    #[target_feature(enable = "avx2")]
    pub unsafe fn avx2(kind: BlockKind, qs: &[u8], scales: &[f32], out: &mut [f32]) {
        let blocks = out.len() / VALUES;
        let (q, o) = (qs.as_ptr(), out.as_mut_ptr());
        let low = _mm256_set1_epi32(0x0f);
        // SAFETY (every access): as in `avx512`.
        unsafe {
            for i in 0..blocks {
                let o = o.add(i * VALUES);
                match kind {
                    BlockKind::Q4_0 | BlockKind::Q4_1 => {
                        let (d, m) = scale(kind, scales, i);
                        let (d, bias) = (_mm256_set1_ps(d), kind == BlockKind::Q4_0);
                        // 8 bytes at a time: values j..j+8 (low nibbles) and
                        // j+16..j+24 (high nibbles).
                        for eighth in 0..2 {
                            let bytes = _mm_loadl_epi64(q.add(i * 16 + eighth * 8).cast());
                            let bytes = _mm256_cvtepu8_epi32(bytes);
                            let halves =
                                [_mm256_and_si256(bytes, low), _mm256_srli_epi32::<4>(bytes)];
                            for (h, mut v) in halves.into_iter().enumerate() {
                                if bias {
                                    v = _mm256_sub_epi32(v, _mm256_set1_epi32(8));
                                }
                                let mut f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), d);
                                if let Some(m) = m {
                                    f = _mm256_add_ps(f, _mm256_set1_ps(m));
                                }
                                _mm256_storeu_ps(o.add(h * 16 + eighth * 8), f);
                            }
                        }
                    }
                    BlockKind::Q8_0 | BlockKind::Q8_16 => {
                        for eighth in 0..4 {
                            let d = _mm256_set1_ps(byte_scale(kind, scales, i, eighth / 2));
                            let bytes = _mm_loadl_epi64(q.add(i * 32 + eighth * 8).cast());
                            let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
                            _mm256_storeu_ps(o.add(eighth * 8), _mm256_mul_ps(v, d));
                        }
                    }
                }
            }
        }
    }
}

/// Tensor names in [`FILE`]: `{kind}/{checkpoint name}/qs` (u8 [rows, quantised
/// bytes per row]) and `.../scales` (f32 [rows, scales per row]).
fn entry_name(kind: BlockKind, weight: &str, part: &str) -> String {
    format!("{}/{weight}/{part}", kind.name())
}

/// Writes `blocks` (checkpoint name -> blocks) as `dir/`[`FILE`].
pub fn write(dir: &Path, blocks: &HashMap<String, Blocks>) -> Result<()> {
    let mut tensors = HashMap::new();
    for (name, b) in blocks {
        let (qs, scales) = b.rows(0, b.rows);
        let qs = Tensor::from_slice(qs, (b.rows, qs.len() / b.rows.max(1)), &Device::Cpu)?;
        let scales =
            Tensor::from_slice(scales, (b.rows, scales.len() / b.rows.max(1)), &Device::Cpu)?;
        tensors.insert(entry_name(b.kind, name, "qs"), qs);
        tensors.insert(entry_name(b.kind, name, "scales"), scales);
    }
    // Written whole or not at all: a half-written file would stop the
    // model from loading.
    let (path, part) = (dir.join(FILE), dir.join(format!(".{FILE}.part")));
    candle_core::safetensors::save(&tensors, &part)
        .map_err(|e| LmError::bad(&part, format!("cannot write the blocks: {e}")))?;
    std::fs::rename(&part, &path).map_err(|e| LmError::io(&path, e))
}

/// The blocks of a model folder (checkpoint name -> blocks), empty when it
/// has none. A damaged file is an error naming it (delete it and the model
/// still loads, reading f32 weights).
pub fn read(dir: &Path) -> Result<HashMap<String, Arc<Blocks>>> {
    let path = dir.join(FILE);
    if !path.exists() {
        return Ok(HashMap::new());
    }
    let bytes = std::fs::read(&path).map_err(|e| LmError::io(&path, e))?;
    let bad = |why: String| {
        LmError::bad(
            &path,
            format!(
                "{why}; delete the file (the model reads its f32 weights without it) or import the GGUF again"
            ),
        )
    };
    let mut tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| bad(format!("not a readable blocks file ({e})")))?;
    let names: Vec<String> = tensors
        .keys()
        .filter(|e| e.ends_with("/qs"))
        .cloned()
        .collect();
    let mut out = HashMap::new();
    for entry in names {
        let qs = tensors.remove(&entry).expect("listed");
        let stem = entry.trim_end_matches("/qs");
        let (kind, name) = stem
            .split_once('/')
            .and_then(|(k, n)| Some((BlockKind::parse(k)?, n)))
            .ok_or_else(|| bad(format!("unexpected entry {entry:?}")))?;
        let scales = tensors
            .remove(&format!("{stem}/scales"))
            .ok_or_else(|| bad(format!("entry {entry:?} has no scales")))?;
        let rows = qs.dim(0)?;
        let k = qs.elem_count() / rows.max(1) / kind.q_bytes() * VALUES;
        let (qs, scales) = (
            qs.flatten_all()?.to_vec1::<u8>(),
            scales.flatten_all()?.to_vec1::<f32>(),
        );
        let blocks = match (qs, scales) {
            (Ok(qs), Ok(scales)) => Blocks::new(kind, (rows, k), qs, scales),
            _ => None,
        };
        let blocks = blocks.ok_or_else(|| {
            bad(format!(
                "entry {entry:?} is not rows of {} blocks",
                kind.name()
            ))
        })?;
        out.insert(name.to_string(), Arc::new(blocks));
    }
    if let Some(extra) = tensors.keys().next() {
        return Err(bad(format!("unexpected entry {extra:?}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_core::quantized::ggml_file::qtensor_from_ggml;

    /// Every GGUF type kept, with its block size and bytes, and where its
    /// f16 scales sit in a block.
    const TYPES: [(GgmlDType, usize, usize, &[usize]); 5] = [
        (GgmlDType::Q4_0, 32, 18, &[0]),
        (GgmlDType::Q4_1, 32, 20, &[0, 2]),
        (GgmlDType::Q8_0, 32, 34, &[0]),
        (GgmlDType::Q4K, 256, 144, &[0, 2]),
        (GgmlDType::Q6K, 256, 210, &[208]),
    ];

    /// Random GGUF blocks whose f16 scales are finite (every fourth subnormal).
    fn random_blocks(size: usize, f16_at: &[usize], n_blocks: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 33) as u32
        };
        let mut bytes: Vec<u8> = (0..n_blocks * size).map(|_| next() as u8).collect();
        for (i, block) in bytes.chunks_exact_mut(size).enumerate() {
            for (f, &at) in f16_at.iter().enumerate() {
                let bits = if (i + f) % 4 == 0 {
                    (next() & 0x83ff) as u16
                } else {
                    ((next() & 0x8000) | (next() % 0x7800)) as u16
                };
                block[at..at + 2].copy_from_slice(&bits.to_le_bytes());
            }
        }
        bytes
    }

    #[test]
    fn dequantises_as_candle_does_bit_for_bit() {
        let (rows, k) = (3, 512);
        for (t, values, size, f16_at) in TYPES {
            assert!(BlockKind::keeps(t));
            let bytes = random_blocks(size, f16_at, rows * k / values, size as u64);
            let q = qtensor_from_ggml(t, &bytes, vec![rows, k], &Device::Cpu).expect("qtensor");
            let want: Vec<f32> = q
                .dequantize(&Device::Cpu)
                .and_then(|w| w.flatten_all())
                .and_then(|w| w.to_vec1())
                .expect("candle's values");
            let blocks = Blocks::from_gguf(t, (rows, k), &bytes).expect("blocks");
            for isa in crate::isa::Isa::available() {
                let way = Dequantiser::new(isa);
                let mut got = vec![f32::NAN; rows * k];
                for (j, row) in got.chunks_mut(k).enumerate() {
                    let (qs, scales) = blocks.rows(j, 1);
                    way.row(blocks.kind, qs, scales, row);
                }
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "{t:?} {isa} value {i}: {a} vs {b}"
                    );
                }
            }
            assert!(blocks.dequantise_to(&want));
            let mut other = want.clone();
            other[5] = f32::from_bits(other[5].to_bits() ^ 1);
            let fresh = Blocks::from_gguf(t, (rows, k), &bytes).expect("blocks");
            assert!(
                !fresh.dequantise_to(&other),
                "a weight one bit away is refused"
            );
        }
        assert!(!BlockKind::keeps(GgmlDType::Q5K));
        assert!(Blocks::from_gguf(GgmlDType::Q4K, (1, 32), &[0; 18]).is_none());
    }

    #[test]
    fn every_f16_converts_exactly() {
        let raw: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
        let theirs: Vec<f32> = Tensor::from_raw_buffer(&raw, DType::F16, &[1 << 16], &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec1())
            .expect("test value");
        for (h, theirs) in (0..=u16::MAX).zip(theirs) {
            let ours = f16_to_f32(h);
            if ours.is_nan() {
                assert!(theirs.is_nan());
            } else {
                assert_eq!(ours.to_bits(), theirs.to_bits(), "{h:#06x}");
            }
        }
    }

    #[test]
    fn written_blocks_read_back() {
        let tmp = tempfile::tempdir().expect("test value");
        let bytes = random_blocks(20, &[0, 2], 6, 9);
        let b = Blocks::from_gguf(GgmlDType::Q4_1, (3, 64), &bytes).expect("test value");
        let want = (b.rows(0, 3).0.to_vec(), b.rows(0, 3).1.to_vec());
        write(tmp.path(), &HashMap::from([("w.weight".to_string(), b)])).expect("test value");
        let read = read(tmp.path()).expect("test value");
        let b = &read["w.weight"];
        assert_eq!((b.kind, b.rows, b.k), (BlockKind::Q4_1, 3, 64));
        assert_eq!((b.rows(0, 3).0.to_vec(), b.rows(0, 3).1.to_vec()), want);
        std::fs::write(tmp.path().join(FILE), b"garbage").expect("test value");
        let e = super::read(tmp.path())
            .expect_err("a damaged file")
            .to_string();
        assert!(e.contains(FILE) && e.contains("delete the file"), "{e}");
    }
}
