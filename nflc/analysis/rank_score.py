"""A training-free, data-free ranking score for cell-based architecture spaces.

``rank_score(cell)`` ranks architectures by predicted accuracy (higher = better) from the
cell graph alone (``docs/CONTRACTS.md``): no data, no weights, no forward pass. It reads
only the structural edge attributes ``kind`` (to drop ``zero`` edges), ``parameterized``
and ``params``; never op names, so it applies to any conv or MLP space.

Derivation (notation of ``THEORY.md`` sections 2-3)
----------------------------------------------------
1. *Expressivity per path.* The paper's Theorem 4.1 gives the expected input-output
   Jacobian norm of a cell as ``E||J|| ~ C * sum_p exp(-a d_p)`` with ``a = 5/(8m)``
   (``m`` = width) and the curvature ``kappa = 1/||J||``. A cell node *sums* its inputs,
   so the raw sum grows with the number of paths ``P`` whatever the paths compute; the
   normalized networks we rank (NAS-Bench-201's ReLU-conv-BN ops, the readout of a
   normalized feature) remove that scale, so we compare the per-path average
   ``Jbar = (1/P) sum_p exp(-a d_p)`` and ``log kappa = -log Jbar``. In the wide limit in
   which the theory's kernels hold (``a -> 0``),
   ``log kappa = a * (1/P) sum_p d_p + O(a^2)``:
   to first order the expressivity is a positive multiple of the **mean path depth**
   ``dbar = (1/P) sum_p d_p`` (the 2022 paper's "effective depth"). ``a`` only scales the
   score, so it drops out of any ranking: no width constant is needed.
2. *Stacking.* A network stacks ``L`` cells (NAS-Bench-201: 3 stages x 5 = 15). Network
   paths are tuples of cell paths (``P**L`` of them) and their depths add, so the mean
   depth over network paths is exactly ``L * dbar`` and ``Jbar_net = Jbar_cell**L``.
   Both are monotone in the cell's value: the per-cell score ranks stacked networks
   identically, whatever ``L`` is (the fixed stem/reduction blocks add a constant).
3. *Transform weight of an edge.* The paper's ``d_p`` counts Linear+ReLU layers, all of
   one width, all alike. In a conv space ops differ in how much they transform, so each
   edge on a path contributes ``t(e) = ln(1 + params_e)`` if ``parameterized`` else ``0``:
   the log of the op's number of weights (a ``k x k`` conv ``C_in -> C_out`` with BN has
   ``k^2 C_in C_out + 2 C_out`` parameters, so ``t`` grows with the log fan-in
   ``ln(k^2 C_in)``, and a 3x3 conv transforms more than a 1x1). Constants: the ``1`` in
   ``ln(1 + params)`` makes ``t = 0`` exactly when an op has no weights; nothing else.
   Parameter-free ops (skip, average pooling, zero) carry no trainable transform: the
   theory's depth counts only parameterized layers, and pooling is a fixed linear average
   (receptive-field growth without parameters or a nonlinearity), so ``t = 0``. In a
   space of equal-width linear layers ``t`` is one constant for every parameterized
   edge, and the score ranks exactly as the paper's ``dbar``.

   The score is  ``S = (1/P) * sum_p sum_{e in p} t(e)``  over end-to-end paths ``p``
   (non-``zero`` edges from node 0 to node H), computed exactly by dynamic programming
   over nodes (path counts and depth sums), without enumerating paths.
4. *Failure modes.* No end-to-end path (``P = 0``): the output does not depend on the
   input (``Jbar = 0``, NNGP ``lambda_min = 0``): ``S = -inf`` (= ``log kappa`` of a
   zero Jacobian), below every other cell. A cell whose paths are all skip/pool-only
   transforms nothing: ``S = 0``, the lowest finite value. Adding a parameter-free
   shortcut path to a cell lowers ``S`` (it dilutes the mean: the wide, shallow side of the
   paper's trade-off); dead edges (on no end-to-end path) never change ``S``.

Why only the expressivity term. ``rank_score_components`` also reports the paper's
convergence indicator (path-sum NNGP bound ``lambda <= sum_p (1 - f^{d_p}(rho))`` at
orthogonal inputs ``rho = 0``, the data-free choice) and generalization bound
(``sum_p d_p / sqrt(lambda)``) for the stacked network. On the NAS-Bench-201 CIFAR-10
subset (362 architectures, BN + 200 epochs, so convergence is rarely the bottleneck) both
rank *against* accuracy (Kendall tau about -0.06 and -0.55 per cell; -0.02 and -0.32 for
15 stacked cells), and so does the equal-weight product ``E * lambda / G`` (-0.36 / -0.13).
The convergence side enters the score only through the degenerate cells above and through
the per-path average. Measured there: ``S`` tau = 0.629 (rho 0.807), above the best of
twelve zero-cost proxies (nwot, tau 0.604). Variants tried, all on the same set: mean of
the theory depth (0/1 per parameterized edge) 0.616; mean with ``t = kernel`` for
parameterized edges 0.617; max depth 0.56-0.60; mean depth + ln(#paths with d>0)
0.53-0.61; log-sum-exp of depths 0.43-0.52; the paper's finite-width per-path curvature
with m = 16 0.589; receptive-field growth ``k - 1`` (pooling included) about 0.
"""

from __future__ import annotations

import math
from typing import Any

import networkx as nx

from nflc.analysis.indicators import relu_correlation
from nflc.analysis.topology import depth_counts, edge_incidences

__all__ = ["transform_weight", "rank_score", "rank_score_components", "NNGP_RHO"]

#: Input correlation at which the path-sum NNGP bound is evaluated in the components:
#: orthogonal inputs, the data-free choice (random high-dimensional inputs are nearly so).
NNGP_RHO = 0.0


def transform_weight(edge: dict[str, Any]) -> float:
    """``t(e) = ln(1 + params)`` for a parameterized, non-zero edge, else ``0``."""
    if edge.get("kind") == "zero" or not edge.get("parameterized", False):
        return 0.0
    return math.log1p(max(int(edge.get("params", 0) or 0), 0))


def _transform_key(attrs: dict[str, Any]) -> int | None:
    """The edge's parameter count when it is parameterized (its ``t(e)`` is ``ln(1 + key)``)."""
    return max(int(attrs.get("params", 0) or 0), 0) if attrs.get("parameterized", False) else None


def rank_score(cell: nx.DiGraph) -> float:
    """Mean over end-to-end paths of the summed transform weights ``ln(1 + params)``.

    Higher = better predicted accuracy. ``-inf`` when the cell has no end-to-end path;
    ``0.0`` when no path contains a parameterized op. See the module docstring.
    """
    # exact integer incidences per parameter count: mathematically tied cells stay exactly
    # tied (a float running sum would break ties by rounding order)
    paths, counts = edge_incidences(cell, _transform_key)
    if paths == 0:
        return float("-inf")
    return sum(
        math.log1p(v) * (c / paths)  # c / paths is correctly rounded: equal ratios, equal floats
        for v, c in sorted(counts.items())
    ) + 0.0


def _convolve(a: list[float], b: list[float]) -> list[float]:
    out = [0.0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        if x:
            for j, y in enumerate(b):
                out[i + j] += x * y
    return out


def rank_score_components(cell: nx.DiGraph, n_cells: int = 1) -> dict[str, float]:
    """The score and the paper's three aspects, for ``n_cells`` stacked copies of ``cell``.

    Keys: ``score`` (= ``rank_score(cell)``, independent of ``n_cells``); ``paths``
    (cell ``P``); ``log_paths`` (``n_cells * ln P``, network paths multiply);
    ``skip_only_paths`` (cell paths with theory depth 0); ``mean_depth`` (theory depth
    ``dbar``, times ``n_cells``); ``expressivity`` (``score * n_cells``: mean transform
    depth of the network, higher = more expressive); ``convergence`` (path-sum NNGP bound
    ``sum over network paths of 1 - f^D(rho)`` at ``rho = NNGP_RHO``, higher = faster);
    ``generalization`` (``sum D / sqrt(convergence)``, lower = smaller gap; ``inf`` when
    there is no path). Path-sum forms drop cross-path terms, as the paper's do.
    """
    if n_cells < 1:
        raise ValueError("n_cells must be >= 1")
    score = rank_score(cell)
    hist = [float(c) for c in depth_counts(cell)]
    P = sum(hist)
    net = [1.0]
    for _ in range(n_cells):
        net = _convolve(net, hist) if hist else []
    lam = 0.0
    r = NNGP_RHO
    depth_sum = 0.0
    for D, c in enumerate(net):
        if D > 0:
            r = float(relu_correlation(r))
        lam += c * (1.0 - r)
        depth_sum += c * D
    return {
        "score": score,
        "paths": float(P),
        "log_paths": n_cells * math.log(P) if P > 0 else float("-inf"),
        "skip_only_paths": float(hist[0]) if hist else 0.0,
        "mean_depth": n_cells * sum(d * c for d, c in enumerate(hist)) / P if P > 0 else 0.0,
        "expressivity": n_cells * score,
        "convergence": lam,
        "generalization": depth_sum / math.sqrt(lam) if lam > 0 else float("inf"),
    }
