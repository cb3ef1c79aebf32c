"""Kernel timings, side by side in one run.

(a) exact infinite-width NNGP + NTK of all 729 cells of the paper's H = 3 space at
    N = 256 inputs of dimension 784, with and without prefix sharing;
(b) the factorised finite-width NTK against the paper's one-backward-per-sample loop on
    one network (784 -> 256 stem, fully connected H = 3 cell of Linear+ReLU edges at
    width 256, scalar readout), N = 256: speed ratio and the largest difference.

Run: ``python benchmarks/bench_kernels.py [--threads N]``. The cells and the module come
from ``specs/nfl_h3.nfl`` (compiled by nflc); nothing is trained. Threads as ``nflc analyze``
chooses them (``--threads``, ``NFLC_THREADS``, else the cores other jobs leave free, one per
256 inputs): BLAS's default of one per core took 863 s instead of seconds on a busy machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import networkx as nx
import numpy as np
import torch
from torch import nn

import nflc

from nflc.analysis.empirical import empirical_ntk
from nflc.analysis.kernels import cell_kernels, lambda_min, space_kernels
from nflc.analysis.threads import script_threads

N, D, WIDTH, SEED = 256, 784, 256, 0


SPEC = Path(__file__).resolve().parents[1] / "specs" / "nfl_h3.nfl"
FULL = "|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|"


def h3_cells() -> list[nx.DiGraph]:
    """All 3**6 cell graphs of specs/nfl_h3.nfl, in the space's enumeration order."""
    return [a.graph for a in nflc.load(SPEC)]


def full_cell_module() -> nn.Module:
    """The compiled nfl_h3 network whose cell has every edge Linear+ReLU (width 256)."""
    return nflc.load(SPEC).architecture(FULL).to_module(seed=SEED)


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
    module = full_cell_module()
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(SEED))
    empirical_ntk(module, x[:8], output="sum")  # warm-up
    t_fast, fast = best_of(lambda: empirical_ntk(module, x, output="sum", dtype=torch.float32), 5)
    t_fast64, _ = best_of(lambda: empirical_ntk(module, x, output="sum"), 3)
    t_loop, slow = best_of(lambda: per_sample_ntk(module, x), 1)
    diff = np.abs(fast - slow).max()
    print(f"(b) finite-width NTK of the compiled nfl_h3 network {FULL} (784->256, 6 Linear+ReLU edges, "
          f"10 outputs summed), N={N}, float32 module")
    print(f"    factorised (1 forward + 1 backward): {1e3 * t_fast:8.1f} ms  (float64 contractions: {1e3 * t_fast64:.1f} ms)")
    print(f"    per-sample backward loop (paper):    {1e3 * t_loop:8.1f} ms")
    print(f"    speed ratio {t_loop / t_fast:.0f}x; max |diff| {diff:.3g} "
          f"(max |Theta| {np.abs(slow).max():.3g}, relative {diff / np.abs(slow).max():.2g})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS and torch threads (default: as nflc analyze chooses them; NFLC_THREADS overrides)")
    n, why = script_threads(ap.parse_args().threads, rows=N)
    print(f"{n} thread{'s' if n > 1 else ''} ({why})")
    bench_exact()
    bench_empirical()
