"""NAS-Bench-101 benchmark: `nflc count specs/nb101.nfl` (423624 unique graphs).

    python benchmarks/bench_nb101.py [--repeat 3]

Prints the time to load the spec and count its architectures from a fresh Space (the node
cell enumerator walks the 2^21 edge sets with numpy, prunes them, and canonicalises each
distinct pruned graph once), then the time to sample, cost and compile one architecture.
Target: well under a minute for the count (about a second on a laptop core).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nflc

SPEC = Path(__file__).resolve().parents[1] / "specs" / "nb101.nfl"
PUBLISHED = 423624


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS and torch threads (default: as nflc analyze chooses them; NFLC_THREADS overrides)")
    args = ap.parse_args()
    from nflc.analysis.threads import script_threads

    n, why = script_threads(args.threads)
    print(f"{n} thread{'s' if n > 1 else ''} ({why})")
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        n = nflc.load(SPEC).count()
        best = min(best, time.perf_counter() - t0)
    status = "ok" if n == PUBLISHED else f"MISMATCH (published {PUBLISHED})"
    print(f"count specs/nb101.nfl: {n} in {best:.2f}s (best of {args.repeat})  {status}")
    space = nflc.load(SPEC)
    t0 = time.perf_counter()
    archs = space.sample(100, seed=0)
    params = [a.params for a in archs]
    print(f"sample 100 + exact params: {time.perf_counter() - t0:.2f}s (params {min(params):,}..{max(params):,})")
    t0 = time.perf_counter()
    archs[0].to_module()
    print(f"compile one module: {time.perf_counter() - t0:.2f}s")


if __name__ == "__main__":
    main()
