#!/usr/bin/env python3
"""Records reference values of the evaluation metrics, computed with SciPy and
NumPy on random inputs, for crates/spectrum-eval/tests/scipy.rs.

    bench/.venv/bin/pip install scipy      # once
    bench/.venv/bin/python scripts/record_metric_reference.py \\
        crates/spectrum-eval/tests/reference/metrics.json

Conventions (METHOD.md §4.2): natural logs; SciPy's `jensenshannon` is the JS
*distance*, so it is squared; the alignment metrics compare the target and the
model distribution after adding 1e-6 to both and renormalising; Wasserstein-1
puts ordinal options at positions 0, 1, 2...; ECE uses 10 equal-count bins
cut like numpy.array_split over predictions sorted by confidence."""

import json
import sys

import numpy as np
import scipy
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, sem, wasserstein_distance


def smooth(p):
    p = np.asarray(p, dtype=np.float64) + 1e-6
    return p / p.sum()


def finite(x):
    return float(x) if np.isfinite(x) else None


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(20261127)
    pairs, alignments, eces, means = [], [], [], []
    for case in range(40):
        n = int(rng.integers(2, 9))
        p = rng.dirichlet(np.full(n, 0.7))
        q = rng.dirichlet(np.full(n, 0.7))
        if case % 5 == 0:
            p[rng.integers(n)] = 0.0  # a zero in the target
            p /= p.sum()
        pairs.append({
            "p": p.tolist(), "q": q.tolist(),
            "js": float(jensenshannon(p, q) ** 2),
            "kl": float(entropy(p, q)),
            # Infinite where the target has a zero (JSON has no infinity: null).
            "reverse_kl": finite(entropy(q, p)),
            "tv": float(0.5 * np.abs(p - q).sum()),
            "cross_entropy": float(entropy(p) + entropy(p, q)),
            "wasserstein": float(wasserstein_distance(np.arange(n), np.arange(n), p, q)),
        })
    for case in range(40):
        n = int(rng.integers(2, 9))
        logprobs = rng.normal(-4.0, 3.0, n)
        target = rng.dirichlet(np.full(n, 1.0))
        p = np.exp(logprobs)
        q = p / p.sum()
        ts, qs = smooth(target), smooth(q)
        alignments.append({
            "logprobs": logprobs.tolist(), "target": target.tolist(),
            "coverage": float(p.sum()), "q": q.tolist(),
            "js": float(jensenshannon(ts, qs) ** 2),
            "kl": float(entropy(ts, qs)),
            "reverse_kl": float(entropy(qs, ts)),
            "tv": float(0.5 * np.abs(ts - qs).sum()),
            "cross_entropy": float(entropy(ts) + entropy(ts, qs)),
            "mode_match": bool(np.argmax(q) == np.argmax(target)),
            "wasserstein": float(wasserstein_distance(np.arange(n), np.arange(n), ts, qs)),
        })
    for case in range(10):
        n = int(rng.integers(1, 60))
        conf = rng.uniform(0, 1, n)
        correct = rng.uniform(0, 1, n) < conf ** (0.5 + case / 5)
        order = np.argsort(conf, kind="stable")
        bins = np.array_split(order, min(10, n))
        ece = sum(len(b) / n * abs(correct[b].mean() - conf[b].mean()) for b in bins)
        eces.append({"confidence": conf.tolist(), "correct": correct.tolist(), "ece": float(ece)})
    for case in range(10):
        xs = rng.normal(3.0, 2.0, int(rng.integers(2, 30)))
        means.append({"xs": xs.tolist(), "mean": float(xs.mean()), "se": float(sem(xs))})
    json.dump({
        "scipy": scipy.__version__, "numpy": np.__version__,
        "pairs": pairs, "alignments": alignments, "ece": eces, "mean_se": means,
    }, open(out, "w"), indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
