"""`nflc analyze` with its default threads against a single-thread reference, side by side.

    python benchmarks/bench_analyze.py [--spec specs/nfl_h3.nfl] [--repeat 2] [--json PATH]

Runs, interleaved (so a busy neighbour slows every variant alike), ``--repeat`` times each:

* ``default``: the command as a user types it (``nflc analyze SPEC``): nflc picks its threads;
* ``one thread``: the single-thread numpy reference: ``OMP_NUM_THREADS=1``,
  ``OPENBLAS_NUM_THREADS=1``, ``MKL_NUM_THREADS=1`` and ``--threads 1``;
* ``all cores``: ``--threads <cores>``, what BLAS and torch do by themselves (the old default);
* ``eigh x 1458``: the analysis's former dominant work alone, one 256 x 256 eigendecomposition
  pair per architecture of the 729 (single-threaded numpy), as a yardstick of this machine's
  speed at the moment.

It prints wall seconds (the best of the repeats, and the median) and each variant's ratio
to the single-thread reference: ratios, not absolute goals, because the machine is shared.
It asserts nothing. The goal it watches: the default command within a few percent of one
thread (never the oversubscribed 3-6x), and under 10 s on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NFLC_THREADS")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_cli(spec: str, extra: list[str], env_extra: dict[str, str]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(env_extra)
    cmd = [sys.executable, "-m", "nflc.cli", "analyze", spec, *extra]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr}")
    return dt


EIGH_CODE = """
import time, numpy as np, scipy.linalg
rng = np.random.default_rng(0)
a = rng.standard_normal((256, 300)); k = a @ a.T / 300
t = time.perf_counter()
for _ in range(1458):
    scipy.linalg.eigh(k, eigvals_only=True, subset_by_index=[0, 0], check_finite=False)
    scipy.linalg.eigh(k, eigvals_only=True, subset_by_index=[255, 255], check_finite=False)
print(time.perf_counter() - t)
"""


def run_eigh() -> float:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(ONE_THREAD_ENV)
    res = subprocess.run([sys.executable, "-c", EIGH_CODE], env=env, stdout=subprocess.PIPE, text=True, check=True)
    return float(res.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="specs/nfl_h3.nfl")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the timings here")
    args = ap.parse_args()
    n = cores()
    variants = {
        "default": lambda: run_cli(args.spec, [], {}),
        "one thread": lambda: run_cli(args.spec, ["--threads", "1"], ONE_THREAD_ENV),
        f"all cores ({n})": lambda: run_cli(args.spec, ["--threads", str(n)], {}),
        "eigh x 1458": run_eigh,
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for _ in range(args.repeat):
        for name, fn in variants.items():
            times[name].append(fn())
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    ref = min(times["one thread"])
    print(f"nflc analyze {args.spec}: {n} core(s), 1-min load {load_before:.2f} before, {load_after:.2f} after; "
          f"best of {args.repeat}")
    print(f"{'variant':<18} {'best s':>8} {'median s':>9} {'/ one thread':>13}")
    for name, ts in times.items():
        print(f"{name:<18} {min(ts):>8.2f} {statistics.median(ts):>9.2f} {min(ts) / ref:>13.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps({"spec": args.spec, "cores": n, "load": [load_before, load_after],
                                         "seconds": times}, indent=1))


if __name__ == "__main__":
    main()
