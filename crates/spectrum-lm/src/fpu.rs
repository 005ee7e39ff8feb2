//! The floating-point mode every compute thread runs in: subnormal numbers
//! (magnitudes below `f32::MIN_POSITIVE`, about 1.2e-38) are flushed to zero.
//!
//! Training and scoring produce such values all the time: attention
//! probabilities of far-away keys, their gradients, the products of two small
//! gradients. Intel cores take a microcode assist for every subnormal operand or
//! result, a cliff of 100x or more in a matrix multiply (0.4 instead of 79
//! GFLOP/s measured on a Sapphire Rapids Xeon); ARM cores have the same cliff.
//! With the flags set, subnormal operands read as zero and subnormal results
//! become zero, at full speed. PyTorch (`torch.set_flush_denormal`) and
//! TensorFlow (on every thread of its pools) do the same; the numbers that
//! matter are unchanged (the transformers reference tests pass within 1e-4).
//!
//! [`flush_subnormals`] is the one entry point: every front end (CLI, desktop
//! app, server workers, benches, test helpers) calls it on each thread that
//! computes, and the first call reaches every thread of rayon's global pool,
//! where gemm's parallel kernels and our own row loops run, and of candle's
//! own pool, where its elementwise kernels run.

use std::sync::atomic::{AtomicU8, Ordering};

/// Sets flush-to-zero on the calling thread and, once per process, on every
/// thread of rayon's global pool (building the pool if nobody has). Cheap and
/// idempotent: call it at the start of every thread that runs model code.
pub fn flush_subnormals() {
    set_this_thread();
    // Rayon's global pool keeps its threads for the life of the process, so
    // setting them once reaches every thread it will ever run work on. Not a
    // blocking `Once`: a pool thread waiting for the broadcast may steal a job
    // that calls this again, and would then wait for itself.
    // A thread outside the pool waits for the setting to be done (it steals
    // no jobs, so it cannot be the one doing it).
    static POOL: AtomicU8 = AtomicU8::new(UNSET);
    match POOL.compare_exchange(UNSET, SETTING, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            rayon::broadcast(|_| set_this_thread());
            // Candle's elementwise kernels split over a pool of its own
            // (`candle-bp-*` threads, which inherit the mode only from a
            // creator that had it): each of its workers runs this once.
            candle_core::utils::barrier_pool().execute(|_| set_this_thread());
            POOL.store(SET, Ordering::Release);
        }
        Err(_) if rayon::current_thread_index().is_none() => {
            while POOL.load(Ordering::Acquire) != SET {
                std::thread::yield_now();
            }
        }
        Err(_) => {}
    }
}

/// The states of the pool's setting.
const UNSET: u8 = 0;
const SETTING: u8 = 1;
const SET: u8 = 2;

/// Whether subnormal results come out as zero on the calling thread, found by
/// computing them (not by reading the control register): a scalar product and
/// a small matrix product through candle's CPU kernel.
pub fn flushes_here() -> bool {
    subnormal_product() == 0.0 && kernel_product(16).is_ok_and(|c| c.iter().all(|&v| v == 0.0))
}

/// Whether every thread of rayon's global pool flushes subnormals to zero.
pub fn pool_flushes() -> bool {
    rayon::broadcast(|_| flushes_here()).into_iter().all(|f| f)
}

/// 1e-20 x 1e-20 = 1e-40, a subnormal f32, computed at run time.
fn subnormal_product() -> f32 {
    std::hint::black_box(1e-20f32) * std::hint::black_box(1e-20f32)
}

/// A x A for an `n x n` A of 1e-20s through the matrix multiply the models
/// run on: sums of 1e-40 products, about 1e-40 x n (subnormal, or normal from
/// n = 118 on) when subnormals are kept, 0 when every product is flushed.
fn kernel_product(n: usize) -> candle_core::Result<Vec<f32>> {
    let a = candle_core::Tensor::full(1e-20f32, (n, n), &candle_core::Device::Cpu)?;
    a.matmul(&a)?.flatten_all()?.to_vec1::<f32>()
}

#[cfg(target_arch = "x86_64")]
fn set_this_thread() {
    // MXCSR bit 15 is FTZ (subnormal results become zero), bit 6 is DAZ
    // (subnormal operands are read as zero). SSE and AVX instructions, which
    // all f32/f64 code on x86-64 uses, obey it; x87 is not used.
    const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);
    let mut csr: u32 = 0;
    #[allow(unsafe_code)]
    // SAFETY: `stmxcsr`/`ldmxcsr` read and write the calling thread's own
    // control register through a stack slot we own; they touch no other
    // memory. Rust documents a non-default floating-point environment as
    // undefined behaviour because LLVM assumes the default one: the concrete
    // consequence is that a subnormal value LLVM folds at compile time may
    // differ from the zero the same expression gives at run time. Nothing in
    // this program derives memory accesses from float results (indices are
    // integer arithmetic; float-to-int casts saturate), and every result this
    // changes is below 1.2e-38; the test suite runs with the flags set.
    unsafe {
        std::arch::asm!(
            "stmxcsr [{p}]",
            "or dword ptr [{p}], {bits:e}",
            "ldmxcsr [{p}]",
            p = in(reg) &raw mut csr,
            bits = in(reg) FTZ_DAZ,
            options(nostack),
        );
    }
}

#[cfg(target_arch = "aarch64")]
fn set_this_thread() {
    // FPCR bit 24 is FZ: subnormal operands and results are zero (NEON and
    // scalar f32/f64).
    const FZ: u64 = 1 << 24;
    #[allow(unsafe_code)]
    // SAFETY: as for x86-64 above: reads and writes the calling thread's own
    // control register, touches no memory; the only effect is that values
    // below f32::MIN_POSITIVE become zero.
    unsafe {
        std::arch::asm!(
            "mrs {t}, fpcr",
            "orr {t}, {t}, {fz}",
            "msr fpcr, {t}",
            t = out(reg) _,
            fz = in(reg) FZ,
            options(nomem, nostack),
        );
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn set_this_thread() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnormal_products_are_zero_on_the_caller_and_every_pool_thread() {
        flush_subnormals();
        assert!(flushes_here());
        assert!(pool_flushes());
        // Work stealing: a product computed inside nested rayon work lands on
        // whatever worker runs it.
        let products: Vec<f32> =
            rayon::iter::ParallelIterator::collect(rayon::iter::ParallelIterator::map(
                rayon::iter::IntoParallelIterator::into_par_iter(0..64),
                |_| subnormal_product(),
            ));
        assert!(products.iter().all(|&p| p == 0.0), "{products:?}");
        // Ordinary small numbers are untouched.
        let normal = std::hint::black_box(1e-18f32) * std::hint::black_box(1e-18f32);
        assert!(normal > 0.0 && normal.is_normal());
    }

    #[test]
    fn the_matrix_multiply_kernels_flush_on_the_caller_and_on_every_worker() {
        flush_subnormals();
        // Large enough for gemm to split the product across the pool.
        assert!(
            kernel_product(512)
                .expect("matmul")
                .iter()
                .all(|&v| v == 0.0)
        );
        // Each worker running the kernel itself.
        for products in rayon::broadcast(|_| kernel_product(16).expect("matmul")) {
            assert!(products.iter().all(|&v| v == 0.0), "{products:?}");
        }
    }

    #[test]
    fn candle_elementwise_kernels_flush_on_every_thread_they_split_over() {
        flush_subnormals();
        // Large enough for candle to split the product over its own pool
        // (64Ki elements and up, in chunks of 16Ki).
        let tiny = candle_core::Tensor::full(1e-20f32, 1 << 20, &candle_core::Device::Cpu)
            .expect("tensor");
        let mut products = Vec::new();
        for _ in 0..20 {
            let squares = (&tiny * &tiny).expect("mul");
            products.extend(squares.to_vec1::<f32>().expect("values"));
        }
        let kept = products.iter().filter(|&&v| v != 0.0).count();
        assert_eq!(
            kept,
            0,
            "{kept} of {} products kept as subnormals",
            products.len()
        );
    }

    #[test]
    fn a_thread_of_its_own_flushes_once_it_asks() {
        let flushed = std::thread::spawn(|| {
            flush_subnormals();
            flushes_here()
        })
        .join()
        .expect("thread");
        assert!(flushed);
    }
}
