"""`nflc verify` with its default threads against `--threads 1`, side by side in one run.

    python benchmarks/bench_verify_threads.py [--rounds 2] [--json PATH]

Each run is a fresh `nflc verify` process with a new database, so both variants pay the
same start-up; the variants alternate (default, one thread, all cores, then the reverse
order, ...) so a change in the machine's load hits all of them. ``--threads <cores>`` is
what torch and BLAS do by themselves, verify's default before it chose its threads. Two workloads:

* ``mlp``: 8 sampled nfl_h3 networks at width 256 on 1000 MNIST-5k images, 2 epochs,
  one at a time (``--no-population``), as the issue that asked for this measured it;
* ``conv``: 2 sampled NAS-Bench-201 networks on 300 images of the shipped 3x32x32 set, 1 epoch.

Before nflc chose verify's threads, its default was torch's (one per core): on a busy
2-core machine 58.7 / 65.7 s against 20.2 / 19.7 s with ``--threads 1``. The goal: the
default within 1.5x of one thread on a busy machine (and faster on an idle one). It prints
each run's seconds, the machine's load, and the ratio of medians; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NFLC_THREADS")

WORKLOADS = {
    "mlp": [str(ROOT / "specs" / "nfl_h3.nfl"), "--archs", "sample:8", "--samples", "1000", "--epochs", "2",
            "--width", "256", "--no-population"],
    "conv": [str(ROOT / "specs" / "nb201.nfl"), "--space", "nb201", "--archs", "sample:2", "--samples", "300",
             "--epochs", "1"],
}


def run(args: list[str], extra: list[str], tmp: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}  # as a user's shell
    db = Path(tempfile.mkdtemp(dir=tmp)) / "r.sqlite"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nflc.cli", "verify", *args, *extra, "--quiet", "--db", str(db)],
                          env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"nflc verify failed:\n{proc.stdout}\n{proc.stderr}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2, help="runs of each variant per workload")
    ap.add_argument("--workloads", default="mlp,conv")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    variants = {"default": [], "--threads 1": ["--threads", "1"], f"--threads {cpus}": ["--threads", str(cpus)]}
    result: dict = {"cpus": cpus, "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.workloads.split(","):
            times: dict[str, list[float]] = {v: [] for v in variants}
            order = [v for r in range(args.rounds) for v in (list(variants) if r % 2 == 0 else list(variants)[::-1])]
            for v in order:
                load = os.getloadavg()[0]
                t = run(WORKLOADS[name], variants[v], Path(tmp))
                times[v].append(t)
                print(f"{name:5s} {v:12s} {t:7.1f} s   (1-minute load before: {load:.1f})", flush=True)
            one = statistics.median(times["--threads 1"])
            ratios = {v: statistics.median(ts) / one for v, ts in times.items()}
            print(f"{name:5s} " + ", ".join(f"{v} / one thread: {r:.2f}x" for v, r in ratios.items() if v != "--threads 1")
                  + " (medians)")
            result[name] = {"times": times, "ratios": ratios}
    result["load_after"] = os.getloadavg()[0]
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
