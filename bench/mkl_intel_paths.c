/* PyTorch's PyPI wheels do f32 matrix multiplies with oneMKL, which checks the
 * CPU's vendor and, on AMD, runs slower code paths than the CPU supports (on an
 * AMD EPYC family 26 model 2, Zen 5: 132-184 GFLOP/s against 335-411 with this).
 * Preloading this answers MKL's vendor check with "Intel", so the benches can
 * measure PyTorch at its best on AMD CPUs too (BENCHMARKS.md, 2026-12-08):
 *
 *     cc -shared -fPIC -o /tmp/libmkl_intel_paths.so bench/mkl_intel_paths.c
 *     LD_PRELOAD=/tmp/libmkl_intel_paths.so cargo bench --profile dev -p spectrum-train --bench train_throughput
 *
 * Our binaries do not use MKL; the preload changes nothing on their side. */
int mkl_serv_intel_cpu_true(void) { return 1; }
