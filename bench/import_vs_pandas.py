#!/usr/bin/env python3
"""Import benchmark: `spectrum import` against `pandas.read_json(lines=True)`.

Generates a JSONL file of N Spectrum sequences (messages rows, deterministic),
then runs both on the same file, one after the other, and prints sequences per
second, peak memory (max RSS of the process) and the ratios. A second, smaller
file shows that spectrum's memory stays flat as the file grows.

    bench/import_vs_pandas.py            # 1,000,000 sequences (builds release, installs pandas)
    bench/import_vs_pandas.py --rows 100000
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv"
DATA = ROOT / "bench" / "data"

TASKS = [
    ("coinflip", "Flip a coin that lands heads {p}% of the time.", lambda r: r.choice(["heads", "tails"]), None),
    ("die", "Roll a fair {p}-sided die.", lambda r: str(r.randint(1, 6)), None),
    ("us_state", "Name a US state.", lambda r: r.choice(["Ohio", "Texas", "Maine", "Utah", "Iowa", "New York"]), None),
    ("sum_of_dice", "Roll the dice in each input and report the total.", lambda r: str(r.randint(2, 12)), lambda r: f"{r.randint(1, 3)}d6"),
]


def generate(path: Path, rows: int) -> None:
    rng = random.Random(42)
    with path.open("w") as out:
        for i in range(rows):
            name, description, output, make_input = TASKS[i % len(TASKS)]
            messages = []
            if rng.random() < 0.8:
                messages.append({"role": "description", "content": description.format(p=rng.randint(10, 90))})
            for _ in range(rng.randint(2, 12)):
                if make_input:
                    messages.append({"role": "input", "content": make_input(rng)})
                messages.append({"role": "output", "content": output(rng)})
            out.write(json.dumps({"task": name, "messages": messages, "id": i}) + "\n")


def measure(cmd: list[str], env=None) -> tuple[float, int, str]:
    """Runs cmd; returns (wall seconds, peak RSS in MiB, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    stdout = proc.stdout.read()
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}):\n{stderr}")
    return wall, usage.ru_maxrss // 1024, stdout


PANDAS = """
import sys, time
import pandas as pd
start = time.perf_counter()
frame = pd.read_json(sys.argv[1], lines=True)
print(time.perf_counter() - start, len(frame))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000, help="rows of the file that shows memory stays flat")
    parser.add_argument("--bin", type=Path, help="spectrum binary (default: build target/release/spectrum)")
    args = parser.parse_args()

    if args.bin is None:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "spectrum-cli"], cwd=ROOT, check=True)
        args.bin = ROOT / "target" / "release" / "spectrum"
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "pandas"], check=True)

    DATA.mkdir(parents=True, exist_ok=True)
    files = {}
    for rows in sorted({args.small, args.rows}):
        path = DATA / f"sequences-{rows}.jsonl"
        if not path.exists():
            print(f"generating {path} ...", file=sys.stderr)
            generate(path, rows)
        files[rows] = path

    def spectrum(rows: int) -> tuple[float, int]:
        with tempfile.TemporaryDirectory() as store_dir:
            wall, rss, _ = measure([str(args.bin), "--store", f"{store_dir}/store.sqlite3", "import", str(files[rows])])
        return wall, rss

    small_wall, small_rss = spectrum(args.small)
    ours_wall, ours_rss = spectrum(args.rows)
    pandas_total, pandas_rss, out = measure([str(python), "-c", PANDAS, str(files[args.rows])])
    pandas_read = float(out.split()[0])

    size_mb = files[args.rows].stat().st_size / 2**20
    print(f"\nImport of {args.rows:,} sequences ({size_mb:,.0f} MiB of JSONL), {os.cpu_count()} CPUs\n")
    print(f"{'':34} {'seconds':>9} {'seq/s':>12} {'peak MiB':>9}")
    print(f"{'spectrum import (into SQLite)':34} {ours_wall:9.2f} {args.rows / ours_wall:12,.0f} {ours_rss:9,}")
    print(f"{'pandas.read_json(lines=True)':34} {pandas_read:9.2f} {args.rows / pandas_read:12,.0f} {pandas_rss:9,}")
    print(f"\nspeed:  spectrum is {pandas_read / ours_wall:.1f}x pandas (target >= 3x; pandas timed without its start-up)")
    print(f"memory: spectrum uses {ours_rss / pandas_rss:.3f} of pandas' peak (target < 0.2)")
    print(f"flat:   spectrum's peak is {small_rss:,} MiB for {args.small:,} rows and {ours_rss:,} MiB for {args.rows:,}")


if __name__ == "__main__":
    main()
