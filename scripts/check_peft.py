#!/usr/bin/env python3
"""Checks our PEFT export with `peft` itself and records the reference the
Rust test (crates/spectrum-train/tests/peft.rs) compares against.

    cargo run -p spectrum-train --example peft_fixture -- target/tmp/peft-fixture
    bench/.venv/bin/python scripts/check_peft.py target/tmp/peft-fixture \\
        crates/spectrum-train/tests/reference/peft.json

Loads the base model with transformers, applies the exported adapter with
peft (PeftModel.from_pretrained), and loads our merged export with
transformers; the logits must agree. Writes the peft logits and the SHA-256 of
the adapter file that peft loaded."""

import hashlib
import json
import sys

import peft
import torch
import transformers


def main():
    fixture, out = sys.argv[1], sys.argv[2]
    ids = torch.tensor(json.load(open(f"{fixture}/ids.json")))
    base = transformers.AutoModelForCausalLM.from_pretrained(f"{fixture}/base", dtype=torch.float32)
    adapted = peft.PeftModel.from_pretrained(base, f"{fixture}/adapter")
    adapted.eval()
    merged = transformers.AutoModelForCausalLM.from_pretrained(f"{fixture}/merged", dtype=torch.float32)
    merged.eval()
    with torch.no_grad():
        via_peft = adapted(input_ids=ids).logits
        via_merged = merged(input_ids=ids).logits
    diff = (via_peft - via_merged).abs().max().item()
    print(f"max |peft - our merged| = {diff:.2e}")
    assert diff < 1e-4, diff
    with adapted.disable_adapter(), torch.no_grad():
        base_logits = adapted(input_ids=ids).logits
    change = (via_peft - base_logits).abs().max().item()
    print(f"max |peft - base| = {change:.2e} (the adapter changes the model)")
    assert change > 1e-3, change
    sha = hashlib.sha256(open(f"{fixture}/adapter/adapter_model.safetensors", "rb").read()).hexdigest()
    json.dump({
        "transformers": transformers.__version__, "peft": peft.__version__,
        "adapter_sha256": sha, "ids": ids.tolist(),
        "logits": via_peft.tolist(),
    }, open(out, "w"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
