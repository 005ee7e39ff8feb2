//! The one matrix multiply the custom ops call directly (gemm crate), over
//! row-major f32 operands, optionally transposed, accumulating into the output.

/// A row-major f32 matrix operand of [`gemm`]: `values` [rows, cols], or its
/// transpose when `t`.
#[derive(Clone, Copy)]
pub(super) struct Operand<'a> {
    values: &'a [f32],
    t: bool,
}

pub(super) fn op(values: &[f32]) -> Operand<'_> {
    Operand { values, t: false }
}

pub(super) fn op_t(values: &[f32]) -> Operand<'_> {
    Operand { values, t: true }
}

/// `out [m, n] = scale · a b` (or `+=` with `add`), for `a` [m, k] and `b`
/// [k, n] as [`Operand`]s: candle's matrix multiply (the `gemm` crate) called
/// directly, so that products accumulate into one output without a zeroed
/// temporary and a separate sum. Threaded, unless called from work that is
/// already split across the thread pool.
#[allow(unsafe_code)]
pub(super) fn gemm(
    out: &mut [f32],
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
    assert!(
        out.len() >= m * n && a.values.len() >= m * k && b.values.len() >= k * n,
        "gemm: operands smaller than [{m}, {k}] x [{k}, {n}]"
    );
    // Strides (row, column) of the logical [m, k] and [k, n] operands.
    let (a_rs, a_cs) = if a.t { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if b.t { (1, k) } else { (n, 1) };
    // SAFETY: the slices hold at least the elements the strides reach (checked
    // above), `out` is exclusively borrowed and does not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
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
