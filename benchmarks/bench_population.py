"""Population training against one-at-a-time training, side by side in one run.

    python benchmarks/bench_population.py [--archs 27] [--widths 256,64,16] [--epochs 2] [--rounds 3] [--threads N]

For each width: a seeded sample of ``--archs`` nfl_h3 architectures, MNIST-5k (4000 train
/ 1000 test), the paper's protocol (SGD, lr 0.1, batch 128) with every per-epoch full-pass
evaluation included. One-at-a-time is :func:`nflc.verify.train.train` on each compiled
module (what ``run_sweep`` does); population is :func:`train_population` on the same
modules and seeds. The two are timed alternately, ``--rounds`` times, so background load
hits both alike; the median of each is reported with the speedup, and the largest
difference between the two runs' per-epoch losses (they compute the same numbers up to
float round-off).

What to expect on a CPU: both do the same arithmetic, and one-at-a-time already runs its
matmuls near the core's speed (at width 256 the 784 x 256 stem dominates, and a single
network's weights stay in cache between steps, which a population's do not), so batching
only saves per-step overhead: measured on the project's 2-core machine with one thread,
0.9-1.4x (width 256: ~1x; width 16: ~1.4x). With torch's default 2 threads on a loaded
machine, where small per-network matmuls suffer most from contended threads, 2.4-3x. The
large gain is on a GPU, where one small network leaves the device mostly idle.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch

import nflc
from nflc.data import load_dataset, train_test_split
from nflc.verify.population import train_population
from nflc.verify.run import module_builder
from nflc.verify.sweep import arch_seeds
from nflc.verify.train import TrainConfig, train

SPEC = Path(__file__).resolve().parents[1] / "specs" / "nfl_h3.nfl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=27)
    ap.add_argument("--widths", default="256,64,16")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    space = nflc.load(SPEC)
    archs = space.sample(args.archs, seed=0)
    train_set, test_set = train_test_split(load_dataset("mnist5k", seed=0), test_fraction=0.2, seed=0)
    config = TrainConfig(epochs=args.epochs, lr=0.1, batch=128, seed=0, device=args.device)
    print(f"{len(archs)} nfl_h3 architectures, MNIST-5k {len(train_set)}/{len(test_set)}, {args.epochs} epochs, "
          f"batch 128, device {args.device}, {torch.get_num_threads()} torch thread(s), {args.rounds} rounds")
    print(f"{'width':>6} {'one-at-a-time s':>16} {'population s':>13} {'speedup':>8} {'max |loss diff|':>16}")
    for width in (int(w) for w in args.widths.split(",")):
        build = module_builder(space, width)
        seeds = [arch_seeds(config.seed, a.id) for a in archs]
        modules = [build(a, init) for a, (init, _) in zip(archs, seeds)]
        alone_times, pop_times = [], []
        for _ in range(args.rounds):
            mods = copy.deepcopy(modules)
            t0 = time.perf_counter()
            alone = [train(m, train_set, test_set, config, seed=s) for m, (_, s) in zip(mods, seeds)]
            alone_times.append(time.perf_counter() - t0)
            mods = copy.deepcopy(modules)
            t0 = time.perf_counter()
            batched = train_population(mods, train_set, test_set, config, seeds=[s for _, s in seeds])
            pop_times.append(time.perf_counter() - t0)
        diff = max(abs(x - y) for ra, rb in zip(alone, batched) for ea, eb in zip(ra.history, rb.history)
                   for x, y in ((ea.train_loss, eb.train_loss), (ea.test_loss, eb.test_loss)))
        a, p = statistics.median(alone_times), statistics.median(pop_times)
        print(f"{width:>6} {a:>16.2f} {p:>13.2f} {a / p:>7.2f}x {diff:>16.2e}", flush=True)


if __name__ == "__main__":
    main()
