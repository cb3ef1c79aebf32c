"""Torch backend benchmark: compile times, and forward latency against hand-written modules.

    python benchmarks/bench_backend.py [--runs 200] [--nb201-sample 1000] [--threads 1]

Prints the time to compile all 729 nfl_h3 architectures and a seeded sample of NB201
ones, then the forward latency (eval mode, no_grad, median of many runs, the two modules
timed alternately so that background load hits both alike) of a compiled network against
a hand-written ``nn.Module`` of the same architecture with the same weights, and their
ratio (target: <= 1.1). One intra-op thread by default: on a small shared machine,
OpenMP barriers waiting for a descheduled thread make multi-threaded timings erratic.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import nflc

SPECS = Path(__file__).resolve().parents[1] / "specs"
NB201_BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


# ------------------------------------------------------------------ hand-written references
class HandH3(nn.Module):
    """nfl_h3's fully connected all-linear cell, written out by hand."""

    def __init__(self, d: int = 784, m: int = 256, classes: int = 10):
        super().__init__()
        self.stem = nn.Linear(d, m, bias=False)
        self.l01, self.l02, self.l12, self.l03, self.l13, self.l23 = (nn.Linear(m, m, bias=False) for _ in range(6))
        self.readout = nn.Linear(m, classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = F.relu(self.stem(x.flatten(1)))
        x1 = F.relu(self.l01(x0))
        x2 = F.relu(self.l02(x0)) + F.relu(self.l12(x1))
        x3 = F.relu(self.l03(x0)) + F.relu(self.l13(x1)) + F.relu(self.l23(x2))
        return self.readout(x3)


def relu_conv_bn(c: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))


class HandCell(nn.Module):
    """NB201_BEST's cell: x1 = c(x0); x2 = c(x0) + c(x1); x3 = x0 + c(x1) + c(x2)."""

    def __init__(self, c: int):
        super().__init__()
        self.c01, self.c02, self.c12, self.c13, self.c23 = (relu_conv_bn(c) for _ in range(5))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x1 = self.c01(x0)
        x2 = self.c02(x0) + self.c12(x1)
        return x0 + self.c13(x1) + self.c23(x2)


class HandResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out))
        self.conv_b = nn.Sequential(nn.ReLU(), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.down = nn.Sequential(nn.AvgPool2d(2, 2, 0), nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(x) + self.conv_b(self.conv_a(x))


class HandNB201(nn.Module):
    """NAS-Bench-201's TinyNetwork for NB201_BEST, written out by hand."""

    def __init__(self, c: int = 16, classes: int = 10):
        super().__init__()
        body: list[nn.Module] = [nn.Conv2d(3, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)]
        for stage, width in enumerate((c, 2 * c, 4 * c)):
            if stage:
                body.append(HandResBlock(width // 2, width))
            body += [HandCell(width) for _ in range(5)]
        self.body = nn.Sequential(*body)
        self.head = nn.BatchNorm2d(4 * c)
        self.classifier = nn.Linear(4 * c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.head(self.body(x)))
        return self.classifier(x.mean(dim=(2, 3)))


def copy_state(src: nn.Module, dst: nn.Module) -> None:
    """Copy src's tensors into dst by registration order (the shapes must agree one by one)."""
    a, b = src.state_dict(), dst.state_dict()
    assert len(a) == len(b), (len(a), len(b))
    for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True):
        assert va.shape == vb.shape, (ka, kb, va.shape, vb.shape)
        vb.copy_(va)


# ------------------------------------------------------------------ measurements
def time_compile(archs) -> float:
    t = time.perf_counter()
    for a in archs:
        a.to_module(seed=0)
    return time.perf_counter() - t


def latency(compiled: nn.Module, hand: nn.Module, x: torch.Tensor, runs: int,
            clock=time.perf_counter) -> tuple[float, float]:
    """Median seconds per forward of each, measured alternately with ``clock``."""
    compiled.eval()
    hand.eval()
    times = {0: [], 1: []}
    with torch.no_grad():
        for m in (compiled, hand):
            for _ in range(max(3, runs // 20)):
                m(x)
        for i in range(runs):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            for k in order:
                m = compiled if k == 0 else hand
                t = clock()
                m(x)
                times[k].append(clock() - t)
    return statistics.median(times[0]), statistics.median(times[1])


def compare(name: str, compiled: nn.Module, hand: nn.Module, x: torch.Tensor, runs: int) -> float:
    copy_state(compiled, hand)
    compiled.eval()
    hand.eval()
    with torch.no_grad():
        diff = (compiled(x) - hand(x)).abs().max().item()
    assert diff < 1e-4, f"{name}: the hand-written module computes something else (max |diff| {diff:.2e})"
    tc, th = latency(compiled, hand, x, runs)
    ratio = tc / th
    # the noise floor: the hand-written module against a copy of itself, timed the same way
    ta, tb = latency(hand, copy.deepcopy(hand), x, runs)
    print(f"{name}: compiled {tc * 1e3:.3f} ms, hand-written {th * 1e3:.3f} ms, ratio {ratio:.3f}"
          f" ({'ok' if ratio <= 1.1 else 'above the 1.1 target'}; hand vs its own copy: {ta / tb:.3f})")
    if torch.get_num_threads() == 1:  # CPU time of this thread: blind to time spent descheduled
        cc, ch = latency(compiled, hand, x, runs, clock=time.thread_time)
        print(f"{' ' * len(name)}  thread CPU time: compiled {cc * 1e3:.3f} ms, hand-written {ch * 1e3:.3f} ms,"
              f" ratio {cc / ch:.3f}")
    return ratio


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="timed forward passes per module")
    ap.add_argument("--nb201-sample", type=int, default=1000, help="NB201 architectures to compile")
    ap.add_argument("--seed", type=int, default=0, help="seed of the NB201 sample")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--nb201-batch", type=int, default=16, help="batch size of the NB201 forward")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    h3 = nflc.load(SPECS / "nfl_h3.nfl")
    nb = nflc.load(SPECS / "nb201.nfl", space="nb201")
    archs = list(h3)
    t = time_compile(archs)
    print(f"compile nfl_h3: {len(archs)} modules in {t:.2f} s ({t / len(archs) * 1e3:.1f} ms each)")
    sample = nb.sample(args.nb201_sample, seed=args.seed)
    t = time_compile(sample)
    print(f"compile nb201:  {len(sample)} modules in {t:.2f} s ({t / len(sample) * 1e3:.1f} ms each)")

    full = h3.architecture("|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|")
    compare("nfl_h3 all-linear cell, width 256, batch 128", full.to_module(seed=0), HandH3(),
            torch.randn(128, 784), args.runs)
    compare(f"nb201 best cell network, batch {args.nb201_batch}", nb.architecture(NB201_BEST).to_module(seed=0),
            HandNB201(), torch.randn(args.nb201_batch, 3, 32, 32), max(20, args.runs // 4))


if __name__ == "__main__":
    main()
