"""Kernel timings, side by side in one run.

(a) exact infinite-width NNGP + NTK of all 729 cells of the paper's H = 3 space at
    N = 256 inputs of dimension 784, with and without prefix sharing;
(b) the factorised finite-width NTK against the paper's one-backward-per-sample loop on
    one network (784 -> 256 stem, fully connected H = 3 cell of Linear+ReLU edges at
    width 256, scalar readout), N = 256: speed ratio and the largest difference.

Run: ``PYTHONPATH=. python benchmarks/bench_kernels.py``. The cells and the module are
built by hand here (the paper's space, He-normal init); nothing is trained.
"""

from __future__ import annotations

import itertools
import time

import networkx as nx
import numpy as np
import torch
from torch import nn

from nflc.analysis.empirical import empirical_ntk
from nflc.analysis.kernels import cell_kernels, lambda_min, space_kernels

N, D, WIDTH, SEED = 256, 784, 256, 0
KINDS = ("zero", "skip", "linear_relu")


def h3_cells() -> list[nx.DiGraph]:
    """All 3**6 cells, enumerated with the edges into earlier nodes varying slowest."""
    pairs = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    cells = []
    for kinds in itertools.product(KINDS, repeat=len(pairs)):
        cell = nx.DiGraph()
        cell.add_nodes_from(range(4))
        for (s, t), kind in zip(pairs, kinds):
            cell.add_edge(s, t, kind=kind, op=kind, parameterized=kind == "linear_relu")
        cells.append(cell)
    return cells


class FullCellMLP(nn.Module):
    """stem -> cell with every edge Linear+ReLU -> readout; node t = sum of edges into it."""

    def __init__(self, d: int, width: int, h: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(d, width, bias=False), nn.ReLU())
        self.edges = nn.ModuleDict({
            f"{s}_{t}": nn.Sequential(nn.Linear(width, width, bias=False), nn.ReLU())
            for t in range(1, h + 1) for s in range(t)
        })
        self.h = h
        self.readout = nn.Linear(width, 1, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                gain = 1.0 if m is self.readout else 2.0
                nn.init.normal_(m.weight, 0.0, (gain / m.in_features) ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [self.stem(x)]
        for t in range(1, self.h + 1):
            nodes.append(sum(self.edges[f"{s}_{t}"](nodes[s]) for s in range(t)))
        return self.readout(nodes[-1])


def per_sample_ntk(module: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The paper's method: one backward pass per sample, Theta = J J^T."""
    params = [p for p in module.parameters() if p.requires_grad]
    rows = []
    for i in range(x.shape[0]):
        grads = torch.autograd.grad(module(x[i : i + 1]).sum(), params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    jac = torch.stack(rows)
    return (jac @ jac.T).double().numpy()


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench_exact() -> None:
    x = np.random.default_rng(SEED).standard_normal((N, D))
    cells = h3_cells()
    t_shared, kernels = best_of(lambda: list(space_kernels(cells, x)), 1)
    t_alone, _ = best_of(lambda: [cell_kernels(c, x) for c in cells], 1)
    start = time.perf_counter()
    lams = [(lambda_min(k.nngp), lambda_min(k.ntk)) for k in kernels]
    t_eig = time.perf_counter() - start
    print(f"(a) exact NNGP+NTK, {len(cells)} H=3 cells, N={N}, d={D}, float64")
    print(f"    space_kernels (prefix sharing): {t_shared:7.2f} s  ({1e3 * t_shared / len(cells):.1f} ms/cell)")
    print(f"    cell_kernels one by one:        {t_alone:7.2f} s")
    print(f"    lambda_min of both kernels:     {t_eig:7.2f} s  (eigvalsh, reported separately)")
    best = max(range(len(cells)), key=lambda i: lams[i][0])
    print(f"    largest lambda_min(NNGP) {lams[best][0]:.4f}, its NTK lambda_min {lams[best][1]:.4f}")


def bench_empirical() -> None:
    torch.manual_seed(SEED)
    module = FullCellMLP(D, WIDTH)
    x = torch.randn(N, D)
    empirical_ntk(module, x[:8])  # warm-up
    t_fast, fast = best_of(lambda: empirical_ntk(module, x), 5)
    t_loop, slow = best_of(lambda: per_sample_ntk(module, x), 1)
    diff = np.abs(fast - slow).max()
    print(f"(b) finite-width NTK, MLP 784->256, H=3 cell (6 Linear+ReLU edges), N={N}, float32 module")
    print(f"    factorised (1 forward + 1 backward): {1e3 * t_fast:8.1f} ms")
    print(f"    per-sample backward loop (paper):    {1e3 * t_loop:8.1f} ms")
    print(f"    speed ratio {t_loop / t_fast:.0f}x; max |diff| {diff:.3g} "
          f"(max |Theta| {np.abs(slow).max():.3g}, relative {diff / np.abs(slow).max():.2g})")


if __name__ == "__main__":
    bench_exact()
    bench_empirical()
