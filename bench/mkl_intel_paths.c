/* PyTorch's PyPI wheels do f32 matrix multiplies with oneMKL, which checks the
 * CPU's vendor and, on AMD, runs slower code paths than the CPU supports (on an
 * AMD EPYC family 26 model 2, Zen 5: 132-184 GFLOP/s against 335-411 with this).
 * Preloaded, this answers MKL's vendor check with "Intel", so the benches
 * measure PyTorch at its best on AMD CPUs too (BENCHMARKS.md, 2026-12-08):
 * bench/torch_cpu.py compiles it with `cc` and re-executes the PyTorch side
 * with it in LD_PRELOAD (its "best" settings; "default" runs without). By hand:
 *
 *     cc -shared -fPIC -o /tmp/libmkl_intel_paths.so bench/mkl_intel_paths.c
 *     LD_PRELOAD=/tmp/libmkl_intel_paths.so python3 -c 'import torch; ...'
 */
int mkl_serv_intel_cpu_true(void) { return 1; }
