#!/usr/bin/env bash
# Issue 21's GPU checks (items 5-7) in one prepared session. Not yet run: no
# GPU machine has been lent to this project so far.
#
#   scripts/gpu-session.sh prepare   # here, without a GPU: build the CUDA binaries
#   scripts/gpu-session.sh run       # on the GPU machine (the device tool's `run`,
#                                    # carrying target/gpu-carry): measure, write $OUT
#
# `prepare` fetches nvcc from PyPI (as scripts/cuda-check.sh does), builds the
# `spectrum` CLI and the train bench with --features cuda for compute
# capability 9.0 (H100/H200; set CUDA_COMPUTE_CAP otherwise), strips them and
# copies them into target/gpu-carry (the device tool carries at most 64 MiB:
# no model weights travel; the bench builds random weights of published
# shapes on the device, spectrum_lm::shapes).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
prepare)
    scripts/cuda-check.sh -p spectrum-cli >/dev/null   # fetches the toolkit once
    cuda="$PWD/target/cuda-toolkit/nvidia/cu13"
    export CUDA_HOME="$cuda" CUDA_PATH="$cuda" PATH="$cuda/bin:$PATH"
    export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
    cargo build --locked --release -p spectrum-cli --features cuda
    cargo bench --locked -p spectrum-train --bench train_throughput --features spectrum-lm/cuda --no-run
    cargo test --locked --release -p spectrum-train --test train --features spectrum-lm/cuda --no-run
    mkdir -p target/gpu-carry
    cp target/release/spectrum target/gpu-carry/
    bench=$(ls -t target/release/deps/train_throughput-* | grep -v '\.d$' | head -1)
    cp "$bench" target/gpu-carry/train_throughput
    tests=$(ls -t target/release/deps/train-* | grep -v '\.d$' | head -1)
    cp "$tests" target/gpu-carry/train_tests
    strip target/gpu-carry/*
    du -sh target/gpu-carry
    ;;
run)
    out="${OUT:-target/gpu-out}"
    mkdir -p "$out"
    carry=target/gpu-carry
    nvidia-smi | tee "$out/nvidia-smi.txt"
    "$carry/spectrum" system | tee "$out/system.txt"
    # Item 5: the composed-path training test on the GPU (f32 and bf16)
    # against the CPU's fused kernels, step by step.
    SPECTRUM_TEST_DEVICE=cuda:0 timeout 180 "$carry/train_tests" \
        the_composed_gpu_path --nocapture 2>&1 | tee "$out/composed-on-cuda.txt" || true
    # Item 6: tokens/s, MFU (over the H100/H200's 989 TFLOPS dense bf16) and
    # peak GPU memory at 1,024 tokens per sequence, with and without
    # checkpointing: LoRA and full fine-tuning of the 0.5B shape, then LoRA of
    # the larger shapes (memory mode: ours only).
    export SPECTRUM_BENCH_TMP="$PWD/target/bench-tmp"
    export SPECTRUM_BENCH_DEVICE=cuda:0 SPECTRUM_BENCH_MEMORY=1 SPECTRUM_BENCH_LENGTH=1024 \
        SPECTRUM_BENCH_PEAK_TFLOPS="${SPECTRUM_BENCH_PEAK_TFLOPS:-989}"
    for shape in qwen2.5-0.5b qwen2.5-1.5b qwen2.5-7b; do
        modes=lora,lora-ckpt
        [ "$shape" = qwen2.5-0.5b ] && modes=lora,lora-ckpt,full,full-ckpt
        SPECTRUM_BENCH_SHAPE=$shape SPECTRUM_BENCH_MODES=$modes \
            timeout 240 "$carry/train_throughput" 2>&1 | tee "$out/train-$shape.txt" || true
    done
    ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
