"""The GPU checks of verification, as one short script for a session that has a device.

    python benchmarks/gpu_check.py [--out DIR] [--device cuda] [--scale 1.0]

1. Equivalence on the device: six nfl_h3 networks (every edge kind, a dead node, P = 0)
   trained 3 epochs in a population on the device and one at a time on the CPU; prints
   the largest per-epoch loss difference (round-off only: expect ~1e-6).
2. Population vs one at a time on the device, 27 networks at width 256, MNIST-5k, one
   epoch (what ``benchmarks/bench_population.py --device cuda`` measures).
3. The README's full-scale command, timed on a slice: all 729 nfl_h3 networks at width
   256 on MNIST-5k for ``ceil(2 * scale)`` epochs through ``nflc.verify.run.verify`` (the
   code ``nflc verify`` runs), extrapolated to the documented 100 epochs.

Everything is printed and written to ``DIR/gpu_check.json``. ``--device cpu --scale 0.05``
runs the same code on a CPU in about a minute (a dry run before spending device time).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import torch

import nflc
from nflc.data import load_dataset, train_test_split
from nflc.verify.population import train_population
from nflc.verify.config import make_config
from nflc.verify.run import verify
from nflc.verify.protocol import arch_seeds
from nflc.verify.train import TrainConfig, train

SPEC = Path(__file__).resolve().parents[1] / "specs" / "nfl_h3.nfl"
EDGE_KINDS = [  # every edge kind, a node with no input, the all-zero and all-linear cells
    "|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|",
    "|skip~0|+|skip~0|skip~1|+|skip~0|skip~1|skip~2|",
    "|zero~0|+|zero~0|zero~1|+|zero~0|zero~1|zero~2|",
    "|linear~0|+|zero~0|skip~1|+|zero~0|linear~1|skip~2|",
    "|zero~0|+|linear~0|zero~1|+|skip~0|zero~1|linear~2|",
    "|skip~0|+|linear~0|linear~1|+|zero~0|skip~1|linear~2|",
]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def equivalence(space, split, device: str) -> dict:
    config = TrainConfig(epochs=3, lr=0.1, batch=64, seed=0, device=device)
    mods = [space.architecture(i).to_module(seed=arch_seeds(0, i)[0], width=64) for i in EDGE_KINDS]
    seeds = [arch_seeds(0, i)[1] for i in EDGE_KINDS]
    cpu = TrainConfig(**{**config.model_dump(), "device": "cpu"})
    alone = [train(m, *split, cpu, seed=s) for m, s in zip(copy.deepcopy(mods), seeds, strict=True)]
    batched = train_population(copy.deepcopy(mods), *split, config, seeds=seeds)
    diff = max(abs(x - y) for a, b in zip(alone, batched, strict=True) for ea, eb in zip(a.history, b.history, strict=True)
               for x, y in ((ea.train_loss, eb.train_loss), (ea.test_loss, eb.test_loss)))
    same_convergence = all(a.aspects.convergence == b.aspects.convergence for a, b in zip(alone, batched, strict=True))
    return {"max_loss_diff": diff, "same_convergence_epochs": same_convergence}


def speedup(space, split, device: str, archs: int) -> dict:
    config = TrainConfig(epochs=1, lr=0.1, batch=128, seed=0, device=device)
    chosen = space.sample(archs, seed=0)
    seeds = [arch_seeds(0, a.id) for a in chosen]
    mods = [a.to_module(seed=i, width=256) for a, (i, _) in zip(chosen, seeds, strict=True)]
    train_population(copy.deepcopy(mods[:2]), *split, config, seeds=[s for _, s in seeds[:2]])  # warm up
    times = {}
    for name in ("alone", "population"):
        ms = copy.deepcopy(mods)
        sync(device)
        t0 = time.perf_counter()
        if name == "alone":
            for m, (_, s) in zip(ms, seeds, strict=True):
                train(m, *split, config, seed=s)
        else:
            train_population(ms, *split, config, seeds=[s for _, s in seeds])
        sync(device)
        times[name] = time.perf_counter() - t0
    return {"archs": archs, "width": 256, "epochs": 1, "alone_s": times["alone"], "population_s": times["population"],
            "speedup": times["alone"] / times["population"]}


def full_scale(space, device: str, epochs: int, samples: int | None, archs: int | None) -> dict:
    config = make_config(space, dataset="mnist5k", samples=samples, test_fraction=0.2, width=256, epochs=epochs,
                         lr=0.01, batch=128, seed=0, device=device, threshold=0.8)
    with tempfile.TemporaryDirectory() as tmp:
        sync(device)
        t0 = time.perf_counter()
        chosen = None if archs is None else space.sample(archs, seed=0)
        res = verify(space, chosen, config, Path(tmp) / "h3_729.sqlite", checkpoint_every=10)
        sync(device)
        seconds = time.perf_counter() - t0
    return {"archs": res.architectures, "batched": res.batched, "alone": res.alone, "diverged": len(res.diverged),
            "train_size": res.train_size, "epochs": epochs, "seconds": seconds,
            "seconds_per_100_epochs": seconds * 100 / epochs * (4000 / res.train_size)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("."))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the work (0.05 for a CPU dry run)")
    ap.add_argument("--full-archs", type=int, default=None, help="networks of the full-scale run (default: all 729)")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; use --device cpu --scale 0.05 for a dry run")
    from nflc.analysis.threads import script_threads

    script_threads()  # the CPU side (and a --device cpu dry run): NFLC_THREADS, else the cores other jobs leave free
    space = nflc.load(SPEC)
    n = max(200, int(5000 * min(args.scale, 1.0)))
    split = train_test_split(load_dataset("mnist5k", seed=0, n=n), test_fraction=0.2, seed=0)
    result = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor(),
              "torch": torch.__version__, "scale": args.scale}
    steps = [("equivalence", lambda: equivalence(space, split, args.device)),
             ("speedup", lambda: speedup(space, split, args.device, max(3, round(27 * min(args.scale * 4, 1))))),
             ("full_scale", lambda: full_scale(space, args.device, max(1, math.ceil(2 * args.scale)),
                                               None if args.scale >= 1 else n, args.full_archs))]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, run in steps:
        t0 = time.perf_counter()
        result[name] = run()
        print(f"{name} ({time.perf_counter() - t0:.1f} s): {result[name]}", flush=True)
        (args.out / "gpu_check.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
