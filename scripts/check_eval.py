#!/usr/bin/env python3
"""Scores the evaluation fixture with Hugging Face transformers and SciPy, and
records the values crates/spectrum-eval/tests/transformers.rs compares our
evaluation against (within 1e-4).

    cargo run -p spectrum-eval --example eval_fixture -- target/tmp/eval-fixture
    bench/.venv/bin/python scripts/check_eval.py target/tmp/eval-fixture \\
        crates/spectrum-eval/tests/reference/transformers.json

Independent of our code paths: every output's loss is the sum of token NLLs
over its span from one full forward pass; every option's log-probability
comes from a separate forward pass over prompt + option (no KV cache), the
way lm-evaluation-harness scores choices. Metrics follow METHOD.md §4.2."""

import json
import sys

import numpy as np
import torch
import transformers
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, wasserstein_distance


def logprobs(model, ids):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits, dim=-1)
    return lp


def smooth(p):
    p = np.asarray(p, dtype=np.float64) + 1e-6
    return p / p.sum()


def main():
    fixture, out = sys.argv[1], sys.argv[2]
    data = json.load(open(f"{fixture}/fixture.json"))
    model = transformers.AutoModelForCausalLM.from_pretrained(f"{fixture}/model", dtype=torch.float32)
    model.eval()
    sequences = []
    for s in data["sequences"]:
        lp = logprobs(model, s["ids"])
        outputs = []
        for o in s["outputs"]:
            if not o["loss"]:
                outputs.append({"index": o["index"], "loss": None, "acc": None})
                continue
            rows = range(o["start"] - 1, o["end"] - 1)
            targets = s["ids"][o["start"]:o["end"]]
            loss = -sum(lp[r, t].item() for r, t in zip(rows, targets))
            acc = int(all(lp[r].argmax().item() == t for r, t in zip(rows, targets)))
            outputs.append({"index": o["index"], "loss": loss, "acc": acc})
        sequences.append({"format": s["format"], "id": s["id"], "outputs": outputs})
    items = []
    for it in data["items"]:
        option_lp = []
        for option in it["options"]:
            ids = it["prompt"] + option
            lp = logprobs(model, ids)
            n = len(it["prompt"])
            option_lp.append(sum(lp[n - 1 + i, t].item() for i, t in enumerate(option)))
        p = np.exp(np.array(option_lp))
        q = p / p.sum()
        t, qs = smooth(it["target"]), smooth(q)
        n = len(q)
        items.append({
            "format": it["format"], "id": it["id"], "logprobs": option_lp,
            "p": p.tolist(), "coverage": float(p.sum()), "q": q.tolist(),
            "js": float(jensenshannon(t, qs) ** 2), "kl": float(entropy(t, qs)),
            "reverse_kl": float(entropy(qs, t)), "tv": float(0.5 * np.abs(t - qs).sum()),
            "cross_entropy": float(entropy(t) + entropy(t, qs)),
            "mode_match": bool(np.argmax(q) == np.argmax(it["target"])),
            "wasserstein": float(wasserstein_distance(np.arange(n), np.arange(n), t, qs)) if it["ordinal"] else None,
        })
    json.dump({"transformers": transformers.__version__, "torch": torch.__version__,
               "sequences": sequences, "items": items}, open(out, "w"), indent=1)
    print(f"wrote {out}: {len(sequences)} sequences, {len(items)} items")


if __name__ == "__main__":
    main()
