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
from nflc.ir.lower import compile_path, compile_text

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
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS and torch threads (default: as nflc analyze chooses them; NFLC_THREADS overrides)")
    args = ap.parse_args()
    from nflc.analysis.threads import script_threads

    n, why = script_threads(args.threads)
    print(f"{n} thread{'s' if n > 1 else ''} ({why})")

    print("parse + check (best of", args.repeat, "runs)")
    total = 0.0
    for path in sorted(SPECS.glob("*.nfl")):
        t, prog = best_of(lambda path=path: compile_path(path), args.repeat)
        total += t
        print(f"  {path.name:<26} {t * 1e3:8.2f} ms  spaces: {', '.join(prog.spaces)}")
    print(f"  {'all specs':<26} {total * 1e3:8.2f} ms")

    def walk():
        sp = nflc.load(SPECS / "nb201.nfl", space="nb201")
        n = params = edges = 0
        for a in sp:
            assert a.id  # computed, as nflc list does
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

    nb201 = (SPECS / "nb201.nfl").read_text().split("# The same space")[0]
    required = nb201.replace("bias    false", "bias    false\n    require paths >= 1")
    t, count = best_of(lambda: nflc.loads(required).count(), args.repeat)
    print(f"NB201 with 'require paths >= 1': {count} architectures counted in {t:.2f} s")

    h3 = (SPECS / "nfl_h3.nfl").read_text()
    consts = h3.replace("    cell {", "".join(f"    unused_{i} = {i}\n" for i in range(16_000)) + "    cell {")
    t, prog = best_of(lambda: compile_text(consts, "consts.nfl"), args.repeat)
    print(f"check of 16,000 unused constants ({len(consts) / 1e6:.2f} MB): {len(prog.warnings)} warnings in {t:.2f} s")

    big = two_megabytes(h3)
    t, prog = best_of(lambda: compile_text(big, "big.nfl"), args.repeat)
    print(f"check of a {len(big) / 1e6:.1f} MB spec ({len(prog.spaces)} spaces, {len(prog.warnings)} warnings): "
          f"{t:.2f} s")

    def sample_huge():
        sp = nflc.load(SPECS / "nb201_independent.nfl")
        return sp.count(), [a.params for a in sp.sample(5, seed=1)]

    t, (count, _) = best_of(sample_huge, args.repeat)
    print(f"nb201_independent: load, count ({count:.3e}) and sample 5 with parameters in {t:.2f} s "
          "(target: under a second; tests/frontend/test_specs.py checks only the values)")


def two_megabytes(space: str) -> str:
    """A 2 MB spec: top-level constants and ops with comments, and every 200 of them a space
    that uses one of each."""
    parts, size, i = [], 0, 0
    while size < 2_000_000:
        part = f"c{i} = {i} * 2 + 1  # constant {i}\nop o{i}(k = 3) = relu >> linear >> relu x2\n"
        if i % 200 == 0:
            part += (space.replace("space nfl_h3", f"space s{i}")
                     .replace(">> cell >>", f">> cell >> o{i} >>").replace("linear(classes)", f"linear(c{i})"))
        parts.append(part)
        size += len(part)
        i += 1
    return "".join(parts)


if __name__ == "__main__":
    main()
