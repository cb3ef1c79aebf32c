"""Population training against one-at-a-time training, side by side in one run.

    python benchmarks/bench_population.py [--archs 27] [--widths 256,64,16] [--epochs 2] [--rounds 3] [--threads N]
                                          [--dataset mnist5k|mnist1d|digits]

For each width: a seeded sample of ``--archs`` nfl_h3 architectures (the stem re-declared
for the dataset's input size), MNIST-5k (4000 train / 1000 test) by default, the paper's
protocol (SGD, lr 0.1, batch 128) with every per-epoch full-pass evaluation included.
One-at-a-time is :func:`nflc.verify.train.train` on each compiled module (what
``run_training`` does); population is :func:`train_population` on the same modules and
seeds (a sweep's: one data order for all). The two are timed alternately,
``--rounds`` times, so background load hits both alike; the median of each is reported
with the speedup and the per-epoch losses' largest and median difference between the two
(the same numbers up to float round-off, which SGD at lr 0.1 can amplify in an unlucky
member to ~1e-3 within an epoch; the tests check equality where it cannot).

Both do the same matmuls, so no batching can beat the arithmetic: the ``ceiling`` column
is the one-at-a-time time over the time those matmuls take at this machine's best
measured matmul rate (matmul FLOPs counted by ``torch.utils.flop_counter`` on one
training step and one evaluation pass of each network). On a CPU, where one network's
matmuls already run near that rate, the ceiling is low at the space's width 256 and rises
as networks narrow and per-step overhead dominates; on a GPU one small network leaves the
device mostly idle and the ceiling is far higher.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import nflc
from nflc.data import load_dataset, train_test_split
from nflc.verify.population import train_population
from nflc.verify.protocol import arch_seeds
from nflc.verify.train import TrainConfig, train

SPEC = Path(__file__).resolve().parents[1] / "specs" / "nfl_h3.nfl"


def matmul_peak(seconds: float = 0.5) -> float:
    """The best matmul rate (FLOP/s) measured here over a few shapes, big and network-sized."""
    best = 0.0
    for m, k, n in ((2048, 2048, 2048), (1024, 1024, 1024), (128, 784, 4096), (256, 256, 4096)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        a @ b
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 4:
            a @ b
            reps += 1
        best = max(best, 2 * m * k * n * reps / (time.perf_counter() - t0))
    return best


def matmul_flops(module: torch.nn.Module, train_set, test_set, epochs: int, batch: int) -> float:
    """Matmul FLOPs of ``epochs`` epochs of training one network: forward and backward per
    training row, a forward per evaluated row (both linear in rows)."""
    x = train_set.x[:batch]
    step = FlopCounterMode(display=False)
    with step:
        F.cross_entropy(module(x), train_set.y[:batch]).backward()
    module.zero_grad(set_to_none=True)
    forward = FlopCounterMode(display=False)
    with forward, torch.no_grad():
        module(x)
    per_epoch = (len(train_set) * step.get_total_flops()
                 + (len(train_set) + len(test_set)) * forward.get_total_flops()) / batch
    return epochs * per_epoch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=27)
    ap.add_argument("--widths", default="256,64,16")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: as nflc analyze chooses them; NFLC_THREADS overrides)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dataset", default="mnist5k", help="mnist5k (784 inputs), mnist1d (40) or digits (64)")
    args = ap.parse_args()
    from nflc.analysis.threads import script_threads

    n_threads, why = script_threads(args.threads)
    print(f"{n_threads} thread{'s' if n_threads > 1 else ''} ({why})")

    space = nflc.load(SPEC)
    archs = space.sample(args.archs, seed=0)
    data = load_dataset(args.dataset, seed=0)
    d = math.prod(data.x.shape[1:])
    if d != 784:  # the same cells on a smaller input: the space's stem re-declared for it
        space = nflc.loads(SPEC.read_text().replace("input   [784]", f"input   [{d}]"))
        archs = [space.architecture(a.id) for a in archs]
    train_set, test_set = train_test_split(data, test_fraction=0.2, seed=0)
    config = TrainConfig(epochs=args.epochs, lr=0.1, batch=128, seed=0, device=args.device)
    peak = matmul_peak() if args.device == "cpu" else None
    print(f"{len(archs)} nfl_h3 architectures, {args.dataset} {len(train_set)}/{len(test_set)}, {args.epochs} epochs, "
          f"batch 128, device {args.device}, {torch.get_num_threads()} torch thread(s), {args.rounds} rounds"
          + (f"; best matmul rate here {peak / 1e9:.0f} GFLOP/s" if peak else ""))
    print(f"{'width':>6} {'one-at-a-time s':>16} {'population s':>13} {'speedup':>8} {'ceiling':>8} "
          f"{'GFLOP':>7} {'|loss diff| max':>16} {'median':>9}")
    for width in (int(w) for w in args.widths.split(",")):
        seeds = [arch_seeds(config.seed, a.id) for a in archs]
        modules = [a.to_module(seed=init, width=width) for a, (init, _) in zip(archs, seeds, strict=True)]
        flops = sum(matmul_flops(copy.deepcopy(m), train_set, test_set, args.epochs, config.batch) for m in modules)
        alone_times, pop_times = [], []
        for _ in range(args.rounds):
            mods = copy.deepcopy(modules)
            t0 = time.perf_counter()
            alone = [train(m, train_set, test_set, config, seed=s) for m, (_, s) in zip(mods, seeds, strict=True)]
            alone_times.append(time.perf_counter() - t0)
            mods = copy.deepcopy(modules)
            t0 = time.perf_counter()
            batched = train_population(mods, train_set, test_set, config, seeds=[s for _, s in seeds])
            pop_times.append(time.perf_counter() - t0)
        diffs = [abs(x - y) for ra, rb in zip(alone, batched, strict=True) for ea, eb in zip(ra.history, rb.history, strict=True)
                 for x, y in ((ea.train_loss, eb.train_loss), (ea.test_loss, eb.test_loss))]
        a, p = statistics.median(alone_times), statistics.median(pop_times)
        ceiling = f"{a / (flops / peak):>7.1f}x" if peak else f"{'-':>8}"
        print(f"{width:>6} {a:>16.2f} {p:>13.2f} {a / p:>7.2f}x {ceiling} {flops / 1e9:>7.0f} "
              f"{max(diffs):>16.1e} {statistics.median(diffs):>9.1e}", flush=True)


if __name__ == "__main__":
    main()
