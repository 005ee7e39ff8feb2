"""PyTorch's CPU settings for the baselines. A baseline must be PyTorch at its
best: by default (`SPECTRUM_TORCH_SETTINGS` unset or `best`) subnormal
results are flushed to zero (`torch.set_flush_denormal`; Intel cores slow
down many times on them, as ours did) and it uses one thread per core the
process may run on. `SPECTRUM_TORCH_SETTINGS=default` leaves PyTorch as it
starts, so the benches can print both where they differ."""

import os

import torch


def configure():
    """Applies the settings; returns what was applied, for the JSON output."""
    settings = os.environ.get("SPECTRUM_TORCH_SETTINGS", "best")
    if settings not in ("best", "default"):
        raise SystemExit(f"SPECTRUM_TORCH_SETTINGS={settings!r}: use best or default")
    if settings == "best":
        if not torch.set_flush_denormal(True):
            raise SystemExit("this CPU cannot flush subnormals (no SSE3): run with SPECTRUM_TORCH_SETTINGS=default")
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    return {"settings": settings, "threads": torch.get_num_threads()}
