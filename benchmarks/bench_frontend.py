"""Front-end benchmark: parse + check of every spec, and a walk over NAS-Bench-201.

    python benchmarks/bench_frontend.py [--repeat 3]

Prints, for each spec in specs/, the time to parse and check it (parse, lower to the IR,
build the Space), best of --repeat runs; then the time to enumerate all 15625 NB201
architectures with their ids, cell graphs and exact parameter counts (a fresh Space, so
nothing is cached), to count the `unique` NB201 space (8765 isomorphism classes), and to
sample the 15625^15 networks of nb201_independent.nfl. Target: a few seconds in all.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nflc
from nflc.ir.lower import compile_path

SPECS = Path(__file__).resolve().parents[1] / "specs"


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (the best is shown)")
    args = ap.parse_args()

    print("parse + check (best of", args.repeat, "runs)")
    total = 0.0
    for path in sorted(SPECS.glob("*.nfl")):
        t, prog = best_of(lambda: compile_path(path), args.repeat)
        total += t
        print(f"  {path.name:<26} {t * 1e3:8.2f} ms  spaces: {', '.join(prog.spaces)}")
    print(f"  {'all specs':<26} {total * 1e3:8.2f} ms")

    def walk():
        sp = nflc.load(SPECS / "nb201.nfl", space="nb201")
        n = params = edges = 0
        for a in sp:
            a.id
            edges += a.graph.number_of_edges()
            params += a.params
            n += 1
        return n, params, edges

    t, (n, params, edges) = best_of(walk, args.repeat)
    print(f"NB201: {n} architectures with id, cell graph and parameters: {t:.2f} s "
          f"({t / n * 1e6:.0f} us each; mean {params / n / 1e6:.3f}M parameters, {edges} edges)")

    t, count = best_of(lambda: nflc.load(SPECS / "nb201.nfl", space="nb201_unique").count(), args.repeat)
    print(f"NB201 unique: {count} isomorphism classes counted in {t:.2f} s")

    t, count = best_of(lambda: nflc.load(SPECS / "nfl_h3_budget.nfl").count(), args.repeat)
    print(f"nfl_h3_budget: {count} architectures, a width solved for each, in {t:.2f} s")

    def sample_huge():
        sp = nflc.load(SPECS / "nb201_independent.nfl")
        return sp.count(), [a.params for a in sp.sample(5, seed=1)]

    t, (count, _) = best_of(sample_huge, args.repeat)
    print(f"nb201_independent: load, count ({count:.3e}) and sample 5 with parameters in {t:.2f} s "
          "(target: under a second; tests/frontend/test_specs.py checks only the values)")


if __name__ == "__main__":
    main()
