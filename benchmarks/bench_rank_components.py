"""Time and peak memory per network of each ranking component (``nflc rank --score NAME``).

    python benchmarks/bench_rank_components.py [--samples 16] [--per-space 3]

For NAS-Bench-201, -101 and DARTS (NAS-Bench-301) networks: the smallest, the median and
the largest by FLOPs among ``--per-space`` x 5 seeded samples of the space (or of the
benchmark file in ``../shared/data`` when present), each component measured in a fresh
process with one thread, so its peak resident memory (``ru_maxrss``) is its own:

* ``expressivity``: the data-free graph score (no module, no forward pass);
* ``flops``: nflc's count;
* ``kernels``: the NTK and NNGP that ``convergence``, ``generalization`` and their
  theory-literal forms all read (one measurement; each formula then takes microseconds);
* ``aggregate`` costs the three above together.

The seconds are the measurement's own (after the imports); "over interpreter" subtracts the
peak of the same process after importing torch and nflc and building the architecture, so
it is what the component itself adds. Timings on a shared machine vary by tens of percent;
the kernels' line also gives the planned working set the memory limit is checked against.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPACES = {
    "nb201": ("specs/nb201.nfl", "nb201", "nb201/nb201_cifar10.json"),
    "nb101": ("specs/nb101.nfl", None, "nb101/nb101_cifar10.json"),
    "darts": ("specs/darts.nfl", None, "nb301/nb301_cifar10.json"),
}


def child(space_key: str, arch_id: str, what: str, samples: int) -> None:
    import torch

    torch.set_num_threads(1)
    import nflc
    from nflc.analysis import rank_components as R
    from nflc.analysis.rank_score import architecture_score

    spec, name, _ = SPACES[space_key]
    sp = nflc.load(REPO / spec, space=name)
    arch = sp.architecture(arch_id)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    extra: dict = {}
    if what == "expressivity":
        architecture_score(arch)
    elif what == "flops":
        _ = arch.flops
    else:
        k = R.measure_kernels(arch, R.KernelSettings(samples=samples))
        extra = {"planned": k.peak_bytes, "constants": k.constants,
                 "convergence": R.convergence(k.ntk), "generalization": R.generalization(k.ntk)}
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak": peak, "base": base, **extra}))


def pick(space_key: str, per_space: int) -> list[tuple[str, int]]:
    """(id, flops) of the smallest, median and largest network by FLOPs of a seeded sample."""
    import nflc

    spec, name, data = SPACES[space_key]
    sp = nflc.load(REPO / spec, space=name)
    shared = REPO.parent / "shared" / "data" / data
    rng = random.Random(0)
    if shared.exists():
        from nflc.encodings import entry_id

        entries = json.loads(shared.read_text())["architectures"]
        ids = [entry_id(e) for e in rng.sample(entries, min(len(entries), 5 * per_space))]
        archs = [sp.architecture(i) for i in ids]
    else:
        archs = [a for a in sp.sample(5 * per_space, seed=0)]
    archs.sort(key=lambda a: a.flops)
    chosen = [archs[0], archs[len(archs) // 2], archs[-1]] if per_space >= 3 else archs[:per_space]
    return [(a.id, a.flops) for a in chosen]


def run(space_key: str, arch_id: str, what: str, samples: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, "--child", space_key, arch_id, what, "--samples", str(samples)],
                         capture_output=True, text=True, env=env, cwd=REPO, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=3)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--per-space", type=int, default=3)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.samples)
        return
    print(f"one thread per process, N = {args.samples} data-free inputs; seconds and peak memory per network")
    print(f"{'space':6s} {'network (FLOPs)':>16s} {'component':>13s} {'seconds':>8s} {'peak MiB':>9s} "
          f"{'over interpreter':>17s} {'planned MiB':>12s}  measured at")
    for key in SPACES:
        for arch_id, flops in pick(key, args.per_space):
            rows = {w: run(key, arch_id, w, args.samples) for w in ("expressivity", "flops", "kernels")}
            for w, r in rows.items():
                planned = f"{r['planned'] / 2**20:12.0f}" if "planned" in r else f"{'':12s}"
                print(f"{key:6s} {flops / 1e6:14.1f}M {w:>13s} {r['seconds']:8.3f} {r['peak'] / 2**20:9.0f} "
                      f"{(r['peak'] - r['base']) / 2**20:17.0f} {planned}  {r.get('constants', '')}")
            total = sum(r["seconds"] for r in rows.values())
            print(f"{key:6s} {flops / 1e6:14.1f}M {'aggregate':>13s} {total:8.3f} "
                  f"{max(r['peak'] for r in rows.values()) / 2**20:9.0f}")


if __name__ == "__main__":
    main()
