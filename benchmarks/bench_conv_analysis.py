"""Finite-width analysis of conv networks: time and peak memory per network.

    python benchmarks/bench_conv_analysis.py [--samples 64] [--networks 8] [--darts 2] [--darts-samples 16]
                                             [--precision float32] [--memory 512M] [--compare] [--json PATH]

Each network runs in its own process (one thread, ``OMP_NUM_THREADS=1``), so its peak
resident memory (``ru_maxrss``) is its own: the interpreter with torch and nflc loaded
(``base``), then ``peak`` after building the module and measuring its NNGP and NTK as
``nflc analyze`` does (``nflc.analysis.analyze._finite_kernels``, data-free inputs).
``plan`` is what the streaming plan predicted for the measurement (``peak_bytes`` plus the
parameters; ``--memory`` bounds it), ``increase`` what it took (peak - base).

Networks: the largest NAS-Bench-201 network (every edge nor_conv_3x3), then ``--networks``
sampled ones (seed 0), then ``--darts`` DARTS networks at ``--darts-samples`` inputs.
``--compare`` also measures the first two NB201 networks in float64 and prints how far the
float32 indicators are from them. At the end: the estimate ``nflc analyze`` prints before
the work (:func:`nflc.analysis.analyze.estimate_finite`) for the NB201 networks, next to
the measured total. It asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"

CHILD = r"""
import json, resource, sys, time
spec, space, ident, n, precision, memory = sys.argv[1:7]
import torch, numpy as np, nflc
from nflc.analysis.analyze import FiniteSettings, _finite_kernels, _finite_plan, analysis_inputs
sp = nflc.load(spec, space=space)
arch = sp.architecture(ident)
x, _, _ = analysis_inputs(sp, "none", int(n), 0)
settings = FiniteSettings(precision=precision, memory=int(memory))
torch.set_num_threads(1)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
k = _finite_kernels(arch, x, None, 0, settings)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
plan, params = _finite_plan(arch, x, 0, settings)
print(json.dumps({"id": arch.id, "params": arch.params, "flops": arch.flops, "seconds": seconds, "base": base,
                  "peak": peak, "plan": plan.peak_bytes + params, "chunk": plan.chunk, "block": plan.block,
                  "passes": plan.passes, "kernels": {"nngp": k["nngp"], "ntk": k["ntk"]}}))
"""


def measure(spec: str, space: str, ident: str, n: int, precision: str, memory: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", CHILD, spec, space, ident, str(n), precision, str(memory)], cwd=ROOT,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise SystemExit(f"measuring {ident} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def mb(b: float) -> str:
    return f"{b / 2**20:,.0f}"


def table(title: str, rows: list[dict]) -> None:
    print(title)
    print(f"{'s':>6} {'base MiB':>9} {'peak MiB':>9} {'increase':>9} {'plan MiB':>9} {'chunk':>6} {'block':>6} "
          f"{'passes':>6} {'params':>10}  id")
    for r in rows:
        print(f"{r['seconds']:>6.2f} {mb(r['base']):>9} {mb(r['peak']):>9} {mb(r['peak'] - r['base']):>9} "
              f"{mb(r['plan']):>9} {r['chunk']:>6} {r['block']:>6} {r['passes']:>6.2f} {r['params']:>10,}  {r['id']}")


def parse_memory(text: str) -> int:
    t = text.upper().rstrip("B")
    mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(t[-1:])
    return int(float(t[:-1] if mult else t) * (mult or 2**20))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--networks", type=int, default=8, help="sampled NB201 networks besides the largest")
    ap.add_argument("--darts", type=int, default=2, help="sampled DARTS networks (0: none)")
    ap.add_argument("--darts-samples", type=int, default=16)
    ap.add_argument("--precision", default="float32", choices=("float32", "float64"))
    ap.add_argument("--memory", default="512M")
    ap.add_argument("--compare", action="store_true", help="also float64 on two networks: the indicators' differences")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    memory = parse_memory(args.memory)

    import nflc

    nb = nflc.load(ROOT / "specs" / "nb201.nfl", space="nb201")
    ids = [ALL_CONV] + [a.id for a in nb.sample(args.networks, seed=0)]
    start = time.perf_counter()
    rows = [measure("specs/nb201.nfl", "nb201", i, args.samples, args.precision, memory) for i in ids]
    wall = time.perf_counter() - start
    table(f"NAS-Bench-201, N = {args.samples} data-free inputs, {args.precision}, --memory {args.memory}, one thread",
          rows)
    sampled = rows[1:]
    if sampled:
        secs = sorted(r["seconds"] for r in sampled)
        print(f"sampled networks: median {secs[len(secs) // 2]:.2f} s, max {secs[-1]:.2f} s; largest peak "
              f"{mb(max(r['peak'] for r in rows))} MiB ({mb(max(r['peak'] - r['base'] for r in rows))} MiB over the "
              f"interpreter)")
    out = {"samples": args.samples, "precision": args.precision, "memory": memory, "nb201": rows, "wall": wall}

    if args.compare:
        print("float32 against float64 (relative difference of each indicator):")
        for r in rows[:2]:
            r64 = measure("specs/nb201.nfl", "nb201", r["id"], args.samples, "float64", memory)
            diffs = {f"{k}.{q}": abs(r["kernels"][k][q] - r64["kernels"][k][q]) / max(abs(r64["kernels"][k][q]), 1e-300)
                     for k in ("nngp", "ntk") for q in ("lambda_min", "lambda_max", "pair_bound")}
            print(f"  float64 {r64['seconds']:.2f} s, peak {mb(r64['peak'])} MiB; "
                  + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()) + f"  {r['id']}")
            out.setdefault("compare", []).append({"id": r["id"], "float64": r64, "relative": diffs})

    if args.darts:
        dn = nflc.load(ROOT / "specs" / "darts.nfl", space="darts")
        drows = [measure("specs/darts.nfl", "darts", a.id, args.darts_samples, args.precision, memory)
                 for a in dn.sample(args.darts, seed=0)]
        table(f"DARTS, N = {args.darts_samples}", drows)
        out["darts"] = drows

    from nflc.analysis.analyze import FiniteSettings, analysis_inputs, estimate_finite
    from nflc.analysis.threads import limit_threads

    x, _, _ = analysis_inputs(nb, "none", args.samples, 0)
    archs = [nb.architecture(i) for i in ids]
    with limit_threads(1):  # as the measurements ran
        est = estimate_finite(archs, x, 0, settings=FiniteSettings(precision=args.precision, memory=memory))
    measured = sum(r["seconds"] for r in rows)
    print(f"estimate before the work for these {len(archs)} NB201 networks: "
          + (f"{est.seconds:.1f} s" if est.seconds is not None else "not timed")
          + f" (measured {measured:.1f} s), {mb(est.bytes_per_network)} MiB for the largest "
            f"(measured increase {mb(rows[0]['peak'] - rows[0]['base'])} MiB)")
    out["estimate"] = est.model_dump()
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
