#!/usr/bin/env bash
# Compile-checks the CUDA build (`--features cuda`) on a machine without a GPU
# or a CUDA toolkit: fetches NVIDIA's nvcc, headers and libdevice from PyPI
# (CUDA 13.0 wheels, ~150 MB, once) into target/cuda-toolkit, then runs
# `cargo check` with the feature, which also compiles candle's CUDA kernels.
# It proves the code and the feature wiring build; running on a GPU needs a
# machine with one (see the README's "GPUs" section).
#
#   scripts/cuda-check.sh            # spectrum-cli with --features cuda
#   scripts/cuda-check.sh -p spectrum-studio
set -euo pipefail
cd "$(dirname "$0")/.."

toolkit="$PWD/target/cuda-toolkit"
cuda="$toolkit/nvidia/cu13"
if [ ! -x "$cuda/bin/nvcc" ] || [ ! -f "$cuda/include/crt/host_config.h" ]; then
    echo "== fetching nvcc and the CUDA headers from PyPI into $toolkit"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$toolkit" \
        "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-nvvm==13.0.*" \
        "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*"
fi
export CUDA_HOME="$cuda" CUDA_PATH="$cuda" PATH="$cuda/bin:$PATH"
# No GPU to ask: build the kernels for Hopper (any sm_80+ would do for a check).
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
nvcc --version | tail -1

args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-p spectrum-cli)
echo "== cargo check ${args[*]} --features cuda"
cargo check --locked "${args[@]}" --features cuda
