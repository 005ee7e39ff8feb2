//! The one matrix multiply the custom ops call directly (gemm crate), over
//! row-major f32 operands, optionally transposed, accumulating into the output.

/// A row-major f32 matrix operand of [`gemm`]: `values` [rows, cols], or its
/// transpose when `t`; its stored rows `ld` values apart (0: as many as it
/// has columns, the rows packed).
#[derive(Clone, Copy)]
pub(super) struct Operand<'a> {
    values: &'a [f32],
    t: bool,
    ld: usize,
}

pub(super) fn op(values: &[f32]) -> Operand<'_> {
    Operand {
        values,
        t: false,
        ld: 0,
    }
}

pub(super) fn op_t(values: &[f32]) -> Operand<'_> {
    Operand {
        values,
        t: true,
        ld: 0,
    }
}

impl Operand<'_> {
    /// The same operand read from a wider matrix: its stored rows `ld` apart
    /// (a block of columns).
    pub(super) fn ld(self, ld: usize) -> Self {
        Operand { ld, ..self }
    }

    /// (row, column) strides of the logical [rows, cols] operand, and the
    /// values it reaches.
    fn layout(&self, rows: usize, cols: usize) -> (usize, usize, usize) {
        let (stored_rows, stored_cols) = if self.t { (cols, rows) } else { (rows, cols) };
        let ld = if self.ld == 0 { stored_cols } else { self.ld };
        assert!(
            ld >= stored_cols,
            "gemm: rows {ld} apart, {stored_cols} wide"
        );
        let reach = if rows == 0 || cols == 0 {
            0
        } else {
            (stored_rows - 1) * ld + stored_cols
        };
        if self.t {
            (1, ld, reach)
        } else {
            (ld, 1, reach)
        }
    }
}

/// `out [m, n] = scale · a b` (or `+=` with `add`), for `a` [m, k] and `b`
/// [k, n] as [`Operand`]s: candle's matrix multiply (the `gemm` crate) called
/// directly, so that products accumulate into one output without a zeroed
/// temporary and a separate sum. Threaded, unless called from work that is
/// already split across the thread pool.
pub(super) fn gemm(
    out: &mut [f32],
    dims: (usize, usize, usize),
    a: Operand,
    b: Operand,
    scale: f32,
    add: bool,
) {
    gemm_ld(out, dims.1, dims, a, b, scale, add)
}

/// [`gemm`] into a block of columns of a wider output: its rows `ld_out` apart.
#[allow(unsafe_code)]
pub(super) fn gemm_ld(
    out: &mut [f32],
    ld_out: usize,
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: Operand,
    scale: f32,
    add: bool,
) {
    // Asked once: candle reads the environment and /proc/cpuinfo at every call
    // (tens of microseconds; the decoding attention multiplies per head).
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let parallelism = if rayon::current_thread_index().is_some() {
        gemm::Parallelism::None
    } else {
        match *THREADS.get_or_init(candle_core::utils::get_num_threads) {
            threads @ 2.. => gemm::Parallelism::Rayon(threads),
            _ => gemm::Parallelism::None,
        }
    };
    let (a_rs, a_cs, a_reach) = a.layout(m, k);
    let (b_rs, b_cs, b_reach) = b.layout(k, n);
    let out_reach = if m == 0 || n == 0 {
        0
    } else {
        (m - 1) * ld_out + n
    };
    assert!(
        ld_out >= n
            && out.len() >= out_reach
            && a.values.len() >= a_reach
            && b.values.len() >= b_reach,
        "gemm: operands smaller than [{m}, {k}] x [{k}, {n}]"
    );
    // SAFETY: the slices hold at least the elements the strides reach (checked
    // above), `out` is exclusively borrowed and does not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            ld_out as isize,
            add,
            a.values.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.values.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        )
    }
}
