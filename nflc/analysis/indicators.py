"""The paper's closed-form indicators (docs/THEORY.md section 3), from topology and kernels.

All use the path structure of :class:`~nflc.space.topology.Topology` (``P``, the
depths ``d_p``) and, where data enters, a normalized input Gram ``K0`` (unit diagonal)
or an NTK matrix. ``f`` is the ReLU NNGP map on correlations,
``f(rho) = (sqrt(1 - rho^2) + (pi - arccos rho) rho) / pi``, with ``f(1) = 1`` and
``f(0) = 1 / pi``; ``f^d`` is its d-fold composition.
"""

from __future__ import annotations

import math

import numpy as np

from nflc.analysis.kernels import arccos_k1, inverse_quadratic, lambda_min, path_sum
from nflc.space.topology import Topology

# Theorem 4.1's ``C`` depends on the input norm and width only, the same for every
# architecture of a space, so it cannot change a ranking: nflc uses C = 1.
JACOBIAN_CONSTANT = 1.0


def relu_correlation(rho: np.ndarray | float, depth: int = 1) -> np.ndarray:
    """``f^depth(rho)`` for correlations ``rho`` in [-1, 1] (``f^0`` is the identity)."""
    rho = np.asarray(rho, dtype=np.float64)
    one = np.ones_like(rho)
    for _ in range(depth):
        rho = arccos_k1(one, one, rho)
    return rho


def normalized_gram(x: np.ndarray) -> np.ndarray:
    """Cosine Gram ``K0`` of inputs ``x`` (N, ...); ``ValueError`` for an all-zero input."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    norms = np.linalg.norm(x, axis=1)
    if not np.all(norms > 0):
        raise ValueError("an input is all zeros: its correlation with the others is undefined")
    u = x / norms[:, None]
    k0 = u @ u.T
    np.fill_diagonal(k0, 1.0)
    return k0


def expected_jacobian_norm(topo: Topology, width: int) -> float:
    """``E||J|| ~ C sum_p exp(-5 d_p / (8 m))`` (Theorem 4.1 / Corollary 4.2), C = 1."""
    return JACOBIAN_CONSTANT * sum(n * math.exp(-5 * d / (8 * width)) for d, n in enumerate(topo.depth_counts))


def curvature(topo: Topology, width: int) -> float:
    """``kappa = 1 / E||J||`` (higher = more expressive: few, deep paths).

    A cell with no end-to-end path has a constant output, which traces no curve: 0.0
    (least expressive) instead of 1/0.
    """
    norm = expected_jacobian_norm(topo, width)
    return 1.0 / norm if norm > 0 else 0.0


def nngp_lambda_min_bound(topo: Topology, k0: np.ndarray) -> float:
    """``min_{i != j} (P - sum_p f^{d_p}(K0_ij))`` (Theorem 4.4); larger = faster convergence.

    ``K0`` must have a unit diagonal (see :func:`normalized_gram`) and ``N >= 2``.
    """
    k0 = np.asarray(k0, dtype=np.float64)
    if k0.ndim != 2 or k0.shape[0] != k0.shape[1] or k0.shape[0] < 2:
        raise ValueError(f"K0 must be a square Gram of at least 2 inputs, got shape {k0.shape}")
    if not np.allclose(np.diag(k0), 1.0, rtol=0, atol=1e-12):
        raise ValueError("K0 must have a unit diagonal; normalize it with normalized_gram")
    summed = path_sum(topo.depth_counts, k0)
    off = ~np.eye(k0.shape[0], dtype=bool)
    return float(np.min(topo.paths - summed[off]))


def ntk_generalization_bound(topo: Topology, ntk: np.ndarray, y: np.ndarray) -> float:
    """``(sum_p d_p) sqrt(y^T Theta^{-1} y / N)`` (Theorem 4.5, Eq. 8); smaller = better.

    0.0 when no path has a parameterized edge (the leading term vanishes whatever
    ``Theta`` is); ``inf`` when ``Theta`` is singular.
    """
    if topo.sum_depth == 0:
        return 0.0
    return topo.sum_depth * math.sqrt(inverse_quadratic(ntk, y) / len(np.ravel(y)))


def ntk_generalization_upper(topo: Topology, ntk: np.ndarray) -> float:
    """``(sum_p d_p) / sqrt(lambda_min(Theta))``; bounds the above when ``|y|^2 <= N``
    (labels in [-1, 1]). 0.0 when ``sum_p d_p = 0``; ``inf`` for a singular ``Theta``."""
    if topo.sum_depth == 0:
        return 0.0
    lam = lambda_min(ntk)
    return topo.sum_depth / math.sqrt(lam) if lam > 0 else math.inf
