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
    dims: (usize, usize, usize),
    a: Operand,
    b: Operand,
    scale: f32,
    add: bool,
) {
    let threads = threads_for(dims);
    // SAFETY: `out` is exclusively borrowed (so aliases neither operand) and
    // initialised for its length.
    unsafe {
        product(
            out.as_mut_ptr(),
            out.len(),
            ld_out,
            dims,
            a,
            b,
            scale,
            add,
            threads,
        )
    }
}

/// `scale · a b` [m, n] as a new vector whose elements are written once: not
/// zeroed first (a serial pass over the memory that the other threads wait
/// out), since gemm, told not to read its output, writes every element.
#[allow(unsafe_code)]
pub(super) fn gemm_new(
    dims: (usize, usize, usize),
    a: Operand,
    b: Operand,
    scale: f32,
) -> Vec<f32> {
    new_product(dims, a, b, scale, threads_for(dims))
}

/// [`gemm_new`] on the threads given.
#[allow(unsafe_code)]
fn new_product(
    dims: (usize, usize, usize),
    a: Operand,
    b: Operand,
    scale: f32,
    threads: gemm::Parallelism,
) -> Vec<f32> {
    let len = dims.0 * dims.1;
    let mut out = Vec::with_capacity(len);
    // SAFETY: the spare capacity holds `len` elements, is owned here (so
    // aliases neither operand), and without `add` gemm never reads its output
    // and writes each of its m x n elements (zeros when k is 0), so all `len`
    // are initialised when the length is set.
    unsafe {
        let dst = out.spare_capacity_mut().as_mut_ptr().cast::<f32>();
        product(dst, len, dims.1, dims, a, b, scale, false, threads);
        out.set_len(len);
    }
    out
}

/// The side at or under which a product is "skinny": a LoRA adapter's rank
/// (or two ranks side by side), as in `x Aᵀ` [rows, r], `∂B` [out, r] and
/// `∂A` [r, in].
const SKINNY_SIDE: usize = 32;

/// The most multiply-adds of a skinny product run on the calling thread: the
/// largest of a LoRA step's (1536 x 16 x 1024) and then some; a few rows
/// through a vocabulary-sized head (8 x 49,152 x 576) stay on the pool.
const SKINNY_WORK: usize = 1 << 25;

/// The compute threads (rayon's), asked once: candle reads the environment
/// and /proc/cpuinfo at every call (tens of microseconds; the decoding
/// attention multiplies per head).
fn pool_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(candle_core::utils::get_num_threads)
}

thread_local! {
    /// Set while this thread runs one share of work already split across the
    /// pool ([`share`]).
    static IN_SHARE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `work` as one thread's share of work split across the pool (such as
/// attention's units, one per sequence and key head): its products run on
/// this thread instead of being split again.
pub(super) fn share<R>(work: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_SHARE.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(IN_SHARE.with(|s| s.replace(true)));
    work()
}

/// Where a product of `dims` (m, n, k) runs: on the calling thread when it
/// is one share of work already split across the pool ([`share`]) or when
/// the pool has one thread; on the calling
/// thread too when the output has a skinny side (and the product is no
/// bigger than a LoRA step's) on a machine of two compute threads, where
/// handing it to the pool (waking its threads, splitting [1024, 16] across
/// two) took 1.31x as long over a step's such products, 0.92-2.24x by shape
/// (`cargo bench -p spectrum-lm --bench lora_products`, AMD EPYC family 25
/// model 1, Zen 3; 1.30x on family 26 model 2, Zen 5); with more threads
/// (not yet measured) the pool.
fn threads_for((m, n, k): (usize, usize, usize)) -> gemm::Parallelism {
    let threads = pool_threads();
    let skinny = m.min(n) <= SKINNY_SIDE && m * n * k <= SKINNY_WORK;
    let skinny_here = skinny && threads <= 2;
    if IN_SHARE.with(std::cell::Cell::get) || threads < 2 || skinny_here {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(threads)
    }
}

/// `a b` for row-major `a` [m, k] and `b` [k, n], on the calling thread or
/// split over the compute pool as asked (not as [`threads_for`] would
/// choose): for the benchmark that compares the two.
pub fn matmul_placed(a: &[f32], b: &[f32], dims: (usize, usize, usize), on_pool: bool) -> Vec<f32> {
    let threads = match pool_threads() {
        n @ 2.. if on_pool => gemm::Parallelism::Rayon(n),
        _ => gemm::Parallelism::None,
    };
    new_product(dims, op(a), op(b), 1.0, threads)
}

/// The product behind [`gemm_ld`] and [`gemm_new`].
///
/// # Safety
/// `out` is valid for writes of `len` values (and for reads, with `add`) and
/// aliases neither operand.
#[allow(unsafe_code, clippy::too_many_arguments)]
unsafe fn product(
    out: *mut f32,
    len: usize,
    ld_out: usize,
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: Operand,
    scale: f32,
    add: bool,
    parallelism: gemm::Parallelism,
) {
    let (a_rs, a_cs, a_reach) = a.layout(m, k);
    let (b_rs, b_cs, b_reach) = b.layout(k, n);
    let out_reach = if m == 0 || n == 0 {
        0
    } else {
        (m - 1) * ld_out + n
    };
    assert!(
        ld_out >= n && len >= out_reach && a.values.len() >= a_reach && b.values.len() >= b_reach,
        "gemm: operands smaller than [{m}, {k}] x [{k}, {n}]"
    );
    // SAFETY: the operands hold at least the elements the strides reach
    // (checked above), and `out` is valid as the caller promises.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A product computed on the calling thread equals the same product split
    /// over the pool, bit for bit (each element one thread's dot product in
    /// the same order), for the skinny shapes of a LoRA step and a square one.
    #[test]
    fn where_a_product_runs_does_not_change_it() {
        crate::fpu::flush_subnormals();
        for (m, n, k) in [
            (1024, 16, 576),
            (16, 576, 1024),
            (576, 16, 1024),
            (200, 300, 64),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 * 0.01).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 * 0.01).collect();
            let here = matmul_placed(&a, &b, (m, n, k), false);
            let pool = matmul_placed(&a, &b, (m, n, k), true);
            assert!(here == pool, "{m} x {n} x {k}");
        }
    }

    /// A product big enough to split is split across the pool when called
    /// from a pool thread (a training step, scoring and decoding run on one),
    /// but not inside one share of work already split ([`share`]), and after
    /// a share it is again.
    #[test]
    fn products_split_unless_already_one_share_of_split_work() {
        let split = |dims| matches!(threads_for(dims), gemm::Parallelism::Rayon(_));
        let big = (1024, 576, 576);
        let seen = crate::ops::on_pool(|| (split(big), share(|| split(big)), split(big)));
        let threads = pool_threads() >= 2;
        assert_eq!(seen, (threads, false, threads));
        // A LoRA adapter's skinny product stays on the calling thread on two threads.
        assert_eq!(
            crate::ops::on_pool(|| split((1024, 16, 576))),
            pool_threads() > 2
        );
    }

    /// A new output equals the product accumulated into zeros, for shapes
    /// that take gemm's general, matrix-vector and empty-depth paths.
    #[test]
    fn a_new_output_is_the_whole_product() {
        for (m, n, k) in [(37, 29, 53), (1, 40, 17), (40, 1, 17), (5, 7, 0), (0, 3, 2)] {
            let a: Vec<f32> = (0..k * m).map(|i| (i % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.5).collect();
            let mut zeroed = vec![0f32; m * n];
            gemm(&mut zeroed, (m, n, k), op_t(&a), op(&b), 0.5, true);
            let new = gemm_new((m, n, k), op_t(&a), op(&b), 0.5);
            assert_eq!(new, zeroed, "{m} x {n} x {k}");
        }
    }
}
