#!/usr/bin/env python3
"""PyTorch baseline for crates/spectrum-train/benches/train_throughput.rs: the
same token ids, loss masks and micro-batch, with transformers (+ peft for LoRA)
on the CPU in f32: forward, mean cross-entropy over the loss tokens, backward,
gradient clipping to 1.0, AdamW. One warm-up step, then the timed steps.

    python bench/train_torch.py MODEL_DIR BATCH_JSON lora|full|lora-bf16

`lora-bf16` is LoRA with PyTorch's bf16 products on the CPU (oneDNN, on AMX
where the CPU has it), the counterpart of our `frozen_matmul: bf16`:
`SPECTRUM_TORCH_BF16=matmul` (the default) keeps the model in f32 and lets f32
matrix multiplies compute in bf16 (`torch.backends.mkldnn.matmul.fp32_precision
= "bf16"`, or `set_float32_matmul_precision("medium")` on older versions);
`autocast` runs the forward pass under `torch.autocast("cpu", bfloat16)`.

Prints a JSON object: tokens per second, page faults per step and peak
resident memory (MiB). bench/torch_cpu.py sets PyTorch's CPU settings."""

import contextlib
import json
import os
import resource
import sys
import time

import torch
import transformers

from torch_cpu import configure


def main():
    cpu = configure()
    model_dir, batch_file, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    bf16 = None
    if mode.endswith("-bf16"):
        mode, bf16 = mode.removesuffix("-bf16"), os.environ.get("SPECTRUM_TORCH_BF16", "matmul")
        if bf16 == "matmul":
            mkldnn_matmul = getattr(torch.backends.mkldnn, "matmul", None)
            if mkldnn_matmul is not None and hasattr(mkldnn_matmul, "fp32_precision"):
                mkldnn_matmul.fp32_precision = "bf16"
            else:
                torch.set_float32_matmul_precision("medium")
        elif bf16 != "autocast":
            raise SystemExit(f"SPECTRUM_TORCH_BF16={bf16!r}: use matmul or autocast")
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 == "autocast" else contextlib.nullcontext
    spec = json.load(open(batch_file))
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if mode == "lora":
        import peft

        lora = spec["lora"]
        config = peft.LoraConfig(r=lora["rank"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                                 target_modules=lora["targets"], task_type="CAUSAL_LM")
        model = peft.get_peft_model(model, config)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    ids = torch.tensor(spec["ids"])
    loss_mask = torch.tensor(spec["loss"])
    # Token p is predicted by position p - 1; positions without loss get -100.
    labels = torch.where(loss_mask, ids, torch.full_like(ids, -100))

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            logits = model(input_ids=ids).logits
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for _ in range(spec["steps"]):
        step()
    secs = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps({
        "torch": torch.__version__, **cpu, "bf16": bf16,
        "tokens_per_s": spec["steps"] * ids.numel() / secs,
        "faults_per_step": faults / spec["steps"],
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
