"""PyTorch's CPU settings for the baselines. A baseline must be PyTorch at its
best: by default (`SPECTRUM_TORCH_SETTINGS` unset or `best`) subnormal
results are flushed to zero (`torch.set_flush_denormal`; Intel cores slow
down many times on them, as ours did), it uses one thread per core the
process may run on, and on AMD CPUs oneMKL (which does PyTorch's f32 matrix
multiplies) runs the code paths it runs on Intel's: it checks the CPU's
vendor and takes slower ones on AMD (on an AMD EPYC family 26 model 2, 2x
slower). `SPECTRUM_TORCH_SETTINGS=default` leaves PyTorch as it starts, so
the benches can print both where they differ."""

import os
import subprocess
import sys
import tempfile

import torch

_SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mkl_intel_paths.c")


def _on_amd():
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.split(":")[-1].strip() == "AuthenticAMD" for line in f if line.startswith("vendor_id"))
    except OSError:
        return False


def _mkl_intel_paths():
    """On an AMD CPU, re-executes this process with `mkl_intel_paths.c`
    preloaded (compiled once with `cc`), unless it already is; returns
    whether it is. Without a C compiler it says so and goes on without."""
    if not _on_amd() or not torch.backends.mkl.is_available():
        return False
    lib = os.path.join(tempfile.gettempdir(), "spectrum-mkl-intel-paths.so")
    preloaded = os.environ.get("LD_PRELOAD", "").split(":")
    if lib in preloaded:
        return True
    if not os.path.exists(lib):
        part = f"{lib}.{os.getpid()}"
        try:
            subprocess.run(["cc", "-shared", "-fPIC", "-o", part, _SHIM], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"torch_cpu: could not build {_SHIM} ({e}); oneMKL keeps its AMD code paths", file=sys.stderr)
            return False
        os.replace(part, lib)
    env = dict(os.environ, LD_PRELOAD=":".join([lib] + [p for p in preloaded if p]))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def configure():
    """Applies the settings; returns what was applied, for the JSON output."""
    settings = os.environ.get("SPECTRUM_TORCH_SETTINGS", "best")
    if settings not in ("best", "default"):
        raise SystemExit(f"SPECTRUM_TORCH_SETTINGS={settings!r}: use best or default")
    mkl_intel_paths = False
    if settings == "best":
        mkl_intel_paths = _mkl_intel_paths()
        if not torch.set_flush_denormal(True):
            raise SystemExit("this CPU cannot flush subnormals (no SSE3): run with SPECTRUM_TORCH_SETTINGS=default")
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    return {"settings": settings, "threads": torch.get_num_threads(), "mkl_intel_paths": mkl_intel_paths}
