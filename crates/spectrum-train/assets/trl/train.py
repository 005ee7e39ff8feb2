#!/usr/bin/env python3
"""Train a Spectrum Studio run with Hugging Face TRL and accelerate.

This bundle was written by `spectrum export-job`. `data/train.jsonl` holds every
micro-batch of the run, in training order, as token ids and loss masks exactly
as Spectrum Studio's own trainer renders them; `job.json` holds the run's
settings. This script feeds those micro-batches unchanged (no re-tokenising, no
shuffling, no regrouping) with the run's learning-rate schedule, then writes a
Hugging Face model folder to OUTPUT/final that `spectrum model add` takes back.

Run it through launch.sh (see README.md); `python train.py` alone trains on
one device.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer

HERE = Path(__file__).resolve().parent


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def to_dataset(rows):
    """input_ids and labels (-100 where the loss mask is 0)."""
    return Dataset.from_dict(
        {
            "input_ids": [r["input_ids"] for r in rows],
            "labels": [
                [t if m else -100 for t, m in zip(r["input_ids"], r["loss_mask"])]
                for r in rows
            ],
        }
    )


def spectrum_lr(job, t, total):
    """The learning rate of update t (1-based) of total: Spectrum Studio's
    RunSpec::lr_at (linear warm-up, then linear, cosine or no decay to 0)."""
    import math

    peak = job["learning_rate"]
    w = min(job["warmup_steps"], max(total - 1, 0))
    if t <= w:
        return peak * t / max(w, 1)
    progress = (t - w - 1) / max(total - w, 1)
    decay = job["decay"]
    if decay == "linear":
        return peak * (1.0 - progress)
    if decay == "cosine":
        return peak * 0.5 * (1.0 + math.cos(math.pi * progress))
    return peak


class SpectrumTrainer(SFTTrainer):
    """Feeds the exported micro-batches in their order, with the run's schedule."""

    def __init__(self, *args, micro_batches, job, **kwargs):
        self.micro_batches = micro_batches
        self.job = job
        super().__init__(*args, **kwargs)

    def get_train_dataloader(self):
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=self.micro_batches,
            collate_fn=self.data_collator,
        )
        return self.accelerator.prepare(loader)

    def create_scheduler(self, num_training_steps, optimizer=None):
        if self.lr_scheduler is None:
            optimizer = optimizer if optimizer is not None else self.optimizer
            job, total = self.job, self.job["total_steps"]
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda s: spectrum_lr(job, s + 1, total) / job["learning_rate"]
            )
            self._created_lr_scheduler = True
        return self.lr_scheduler


class LogFile(TrainerCallback):
    """Every log line (loss, learning rate, held-out loss) as JSON Lines."""

    def __init__(self, path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": state.global_step, **logs}) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=str(HERE / "output"), help="where checkpoints and the final model go")
    parser.add_argument("--model", help="the base model (folder or hub id); default: job.json's")
    args = parser.parse_args()

    job = json.loads((HERE / "job.json").read_text(encoding="utf-8"))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    model_ref = args.model or job["model"]

    rows = read_jsonl(HERE / "data" / "train.jsonl")
    micro_batches = []
    for i, row in enumerate(rows):
        if not micro_batches or rows[micro_batches[-1][0]]["micro"] != row["micro"]:
            micro_batches.append([])
        micro_batches[-1].append(i)
    held_path = HERE / "data" / "held_out.jsonl"
    held = read_jsonl(held_path) if held_path.exists() else []

    # The run's effective batch is micro_batch x grad_accum micro-batches per
    # update; with N processes each takes every N-th micro-batch.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    accum = job["grad_accum"]
    if accum % world:
        print(
            f"warning: grad_accum {accum} does not divide among {world} processes; "
            f"each accumulates {max(1, accum // world)} (the effective batch changes)",
            file=sys.stderr,
        )
    accum = max(1, accum // world)

    dtype = {"bf16": torch.bfloat16, "f16": torch.float16}.get(job["dtype"], torch.float32)
    use_cpu = not torch.cuda.is_available()
    if use_cpu and dtype != torch.float32:
        print("no GPU: training in float32", file=sys.stderr)
        dtype = torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_ref, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(model_ref)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    peft_config = None
    if job["method"] == "lora":
        from peft import LoraConfig

        lora = job["lora"]
        peft_config = LoraConfig(
            r=lora["rank"],
            lora_alpha=lora["alpha"],
            lora_dropout=lora["dropout"],
            target_modules=lora["targets"],
            task_type="CAUSAL_LM",
        )

    config = SFTConfig(
        output_dir=str(out / "checkpoints"),
        max_steps=job["total_steps"],
        per_device_train_batch_size=job["micro_batch"],
        per_device_eval_batch_size=job["micro_batch"],
        gradient_accumulation_steps=accum,
        learning_rate=job["learning_rate"],
        weight_decay=job["weight_decay"],
        max_grad_norm=job["max_grad_norm"],
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_epsilon=1e-8,
        logging_steps=1,
        eval_strategy="steps" if held else "no",
        eval_steps=job["eval_every"],
        save_strategy="steps",
        save_steps=job["checkpoint_every"],
        save_total_limit=job["keep_checkpoints"],
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        use_cpu=use_cpu,
        seed=job["seed"],
        report_to=[],
        max_length=None,
        packing=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        remove_unused_columns=False,
    )
    trainer = SpectrumTrainer(
        model=model,
        args=config,
        train_dataset=to_dataset(rows),
        eval_dataset=to_dataset(held) if held else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        micro_batches=micro_batches,
        job=job,
        callbacks=[LogFile(out / "log.jsonl")],
    )
    trainer.train()

    # save_model gathers ZeRO-3 shards; LoRA runs are then merged into the base.
    trained = out / "trained"
    trainer.save_model(str(trained))
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        final = out / "final"
        if peft_config is not None:
            from peft import AutoPeftModelForCausalLM

            merged = AutoPeftModelForCausalLM.from_pretrained(str(trained), dtype=dtype)
            merged = merged.merge_and_unload()
            merged.save_pretrained(str(final), safe_serialization=True)
        else:
            AutoModelForCausalLM.from_pretrained(str(trained), dtype=dtype).save_pretrained(
                str(final), safe_serialization=True
            )
        tokenizer.save_pretrained(str(final))
        print(f"done: `spectrum model add {final}` registers the trained model")


if __name__ == "__main__":
    main()
