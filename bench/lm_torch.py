#!/usr/bin/env python3
"""PyTorch baseline for crates/spectrum-lm/benches/throughput.rs: the same token
ids, batch and sample counts, with Hugging Face transformers on the CPU in f32.
Prints a JSON object with tokens per second (best of 3, after a warm-up)."""

import json
import sys
import time

import torch
import transformers

from torch_cpu import configure


def best_of(n, f):
    f()
    best = float("inf")
    for _ in range(n):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    cpu = configure()
    model_dir, ids_file = sys.argv[1], sys.argv[2]
    spec = json.load(open(ids_file))
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    sequences = torch.tensor(spec["sequences"])
    batch = spec["batch"]

    def score():
        with torch.inference_mode():
            for i in range(0, len(sequences), batch):
                ids = sequences[i:i + batch]
                logits = model(input_ids=ids).logits
                logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
                logp.gather(-1, ids[:, 1:, None])
                logits.argmax(-1)

    prompt = torch.tensor([spec["prompt"]])
    new = spec["new_tokens"]

    def generate():
        with torch.inference_mode():
            model.generate(prompt, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                           num_return_sequences=spec["samples"], max_new_tokens=new, min_new_tokens=new,
                           pad_token_id=0)

    score_s = best_of(3, score)
    gen_s = best_of(3, generate)
    print(json.dumps({
        "torch": torch.__version__, **cpu,
        "score_tokens_per_s": sequences.numel() / score_s,
        "generate_tokens_per_s": spec["samples"] * new / gen_s,
    }))


if __name__ == "__main__":
    main()
