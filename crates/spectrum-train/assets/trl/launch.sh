#!/usr/bin/env bash
# Launches train.py with accelerate. Pick the setup with ACCELERATE_CONFIG:
#   accelerate/cpu.yaml        one process on the CPU (a check before the cluster)
#   accelerate/multi_gpu.yaml  data parallel on the GPUs of this machine (the default)
#   accelerate/zero3.yaml      DeepSpeed ZeRO-3: parameters, gradients and optimiser
#                              state sharded over every GPU (models that do not fit one)
# Several machines: run this on each with the same config and
#   --num_machines M --machine_rank R --main_process_ip HOST --main_process_port 29500
# (put them in ACCELERATE_ARGS). Arguments after `--` go to train.py.
set -euo pipefail
cd "$(dirname "$0")"
config="${ACCELERATE_CONFIG:-accelerate/multi_gpu.yaml}"
# shellcheck disable=SC2086
exec accelerate launch --config_file "$config" ${ACCELERATE_ARGS:-} train.py "$@"
