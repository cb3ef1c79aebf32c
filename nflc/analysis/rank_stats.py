"""Bootstrap confidence intervals for rank correlations, and whether one column's lead is real.

Resampling the ``n`` architectures with replacement is the same as drawing multiplicities
``w ~ Multinomial(n, 1/n)``. Kendall's tau-b of a resample is then
``sum_{i<j} w_i w_j sx_ij sy_ij / sqrt(sum w_i w_j |sx_ij| * sum w_i w_j |sy_ij|)`` over
distinct architectures (``sx_ij = sign(x_i - x_j)``; copies of one architecture are ties in
both columns, so they drop out exactly as in tau-b), and Spearman's rho is the weighted
Pearson correlation of the average ranks ``sum_j w_j [x_j < x_i] + (sum_j w_j [x_j = x_i] + 1) / 2``.
Both are a few matrix products for all resamples at once, the same numbers as scipy on the
resampled data (the tests check it). Above :data:`DENSE_MAX` architectures (the ``n x n``
matrices would take too much memory) each resample goes through scipy instead, with fewer
resamples.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel
from scipy.stats import kendalltau, spearmanr

__all__ = ["DENSE_MAX", "Interval", "Lead", "bootstrap", "lead", "orderable"]

DENSE_MAX = 2500
SCIPY_RESAMPLES = 200  # resamples above DENSE_MAX


class Interval(BaseModel):
    low: float
    high: float


class Lead(BaseModel):
    """``score``'s Kendall tau minus ``other``'s, and the bootstrap interval of the difference
    (both on the same resamples); ``beyond``: the interval excludes 0."""

    score: str
    other: str
    difference: float
    interval: Interval
    beyond: bool


def orderable(v: np.ndarray) -> np.ndarray:
    """NaN and infinities mapped into the finite range, keeping the order a ranking uses:
    ``-inf`` and NaN (no value) below every finite value, ``+inf`` above."""
    v = np.asarray(v, dtype=np.float64)
    fin = v[np.isfinite(v)]
    lo, hi = (fin.min(), fin.max()) if len(fin) else (0.0, 0.0)
    out = np.where(np.isnan(v) | (v == -np.inf), lo - 1.0, v)
    return np.where(out == np.inf, hi + 1.0, out)


def _weights(n: int, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def _tau_dense(x: np.ndarray, ay: np.ndarray, sy: np.ndarray, w: np.ndarray) -> np.ndarray:
    sx = np.sign(x[:, None] - x[None, :])
    num = np.einsum("bi,bi->b", w @ (sx * sy), w)
    tx = np.einsum("bi,bi->b", w @ np.abs(sx), w)
    ty = np.einsum("bi,bi->b", w @ ay, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / np.sqrt(tx * ty)


def _avg_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    less = (x[None, :] < x[:, None]).astype(np.float64)  # [i, j] = x_j < x_i
    same = (x[None, :] == x[:, None]).astype(np.float64)
    return w @ less.T + (w @ same.T + 1.0) / 2.0


def _weighted_pearson(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    tot = w.sum(axis=1, keepdims=True)
    ma, mb = (w * a).sum(1, keepdims=True) / tot, (w * b).sum(1, keepdims=True) / tot
    cov = (w * (a - ma) * (b - mb)).sum(1)
    va, vb = (w * (a - ma) ** 2).sum(1), (w * (b - mb) ** 2).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.sqrt(va * vb)


def bootstrap(columns: Mapping[str, np.ndarray], acc: np.ndarray, resamples: int = 1000,
              seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Per column, Kendall's tau and Spearman's rho against ``acc`` on each of the same
    resamples of the architectures: ``(taus, rhos, resamples)`` (NaN where a resample leaves a
    column constant). Columns go through :func:`orderable` first."""
    acc = np.asarray(acc, dtype=np.float64)
    n = len(acc)
    cols = {k: orderable(v) for k, v in columns.items()}
    if n > DENSE_MAX:
        resamples = min(resamples, SCIPY_RESAMPLES)
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(resamples, n))
        taus = {k: np.array([kendalltau(v[i], acc[i]).statistic for i in idx]) for k, v in cols.items()}
        rhos = {k: np.array([spearmanr(v[i], acc[i]).statistic for i in idx]) for k, v in cols.items()}
        return taus, rhos, resamples
    w = _weights(n, resamples, seed)
    sy = np.sign(acc[:, None] - acc[None, :])
    ay = np.abs(sy)
    ry = _avg_ranks(acc, w)
    taus, rhos = {}, {}
    for k, v in cols.items():
        taus[k] = _tau_dense(v, ay, sy, w)
        rhos[k] = _weighted_pearson(_avg_ranks(v, w), ry, w)
    return taus, rhos, resamples


def interval(values: np.ndarray, level: float = 0.95) -> Interval:
    """The percentile interval of the resampled values (NaN resamples left out)."""
    v = values[np.isfinite(values)]
    if not len(v):
        return Interval(low=float("nan"), high=float("nan"))
    a = (1 - level) / 2 * 100
    lo, hi = np.percentile(v, [a, 100 - a])
    return Interval(low=float(lo), high=float(hi))


def lead(score: str, other: str, tau_score: float, tau_other: float, taus: Mapping[str, np.ndarray]) -> Lead:
    """``score``'s lead over ``other`` with the interval of the paired bootstrap difference."""
    ci = interval(taus[score] - taus[other])
    return Lead(score=score, other=other, difference=tau_score - tau_other, interval=ci,
                beyond=bool(ci.low > 0 or ci.high < 0))
