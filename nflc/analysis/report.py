"""The no-free-lunch report of a space: per-aspect winners, the Pareto front, and how
each aspect's score ranks against topology (Kendall tau with P and mean depth).

One report for both readings: ``nflc analyze`` (predicted scores, millions of rows) and
``nflc report`` (measured ones) call :func:`nfl_report` on columns. (The list-based
version it replaced stays in the tests, as their oracle: tests/analysis/report_oracle.py.)"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel
from scipy.stats import kendalltau

ASPECTS = ("expressivity", "convergence", "generalization")


class Tau(BaseModel):
    tau: float | None  # None when undefined (a constant column)
    p_value: float | None
    n: int


class NflReport(BaseModel):
    winners: dict[str, list[str]]  # aspect -> ids with the best score (ties kept)
    one_wins_all: bool
    all_three_winners: list[str]  # ids best in every aspect (empty: no free lunch)
    pareto_front: list[str]  # ids no other architecture beats in all three aspects
    kendall: dict[str, dict[str, Tau]]  # aspect -> {"paths": ..., "mean_depth": ...}
    left_out: list[str] = []  # ids with no input-output path: constant output, undefined depth
    missing: list[str] = []  # aspects not computed for every architecture (NaN scores): no verdict
    winner_groups: dict[str, int] = {}  # aspect -> distinct computing graphs among its winners
    pareto_groups: int | None = None  # distinct computing graphs on the Pareto front
    verdict: str
    notes: list[str] = []  # what the reader must know to weigh the verdict (caveats)


# Below this many architectures a verdict and a Kendall tau say little: tau over 10 points
# has a 95% interval about +-0.5 wide.
MIN_VERDICT_N = 10


def caveats(n: int, trivially_general: int = 0) -> list[str]:
    """Notes that qualify a report over ``n`` architectures with an input-output path, of
    which ``trivially_general`` have no parameterized layer on any path (predictions only)."""
    notes = []
    if 0 < n < MIN_VERDICT_N:
        # the normal approximation of tau's spread (one architecture has no tau at all)
        half = 1.96 * math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1))) if n > 1 else 1.0
        notes.append(f"only {n} architecture(s) with an input-output path: too few for the winners, the front or a "
                     f"Kendall tau to say much (tau's 95% interval is about +-{min(half, 1.0):.2f} wide); "
                     f"use at least {MIN_VERDICT_N}")
    if trivially_general:
        notes.append(f"{trivially_general} architecture(s) have no parameterized layer on any cell path (the stem and "
                     "the readout alone carry their input to the output): the generalization bound's leading term "
                     "(sum_p d_p) is 0 for them, the best possible, so they tie as its winners, and their "
                     "expressivity (total path depth 0) is the lowest")
    return notes


def kendall(a: ArrayLike, b: ArrayLike) -> Tau:
    """Kendall's tau of two columns over the pairs where both are finite (None when a column
    is constant there, or fewer than two pairs are left)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"kendall: columns of {x.shape} and {y.shape} values")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(ok.sum())
    if n < 2 or np.unique(x).size < 2 or np.unique(y).size < 2:
        return Tau(tau=None, p_value=None, n=n)
    res = kendalltau(x, y)
    return Tau(tau=float(res.statistic), p_value=float(res.pvalue), n=n)


def winner_mask(s: np.ndarray) -> np.ndarray:
    """The best score's rows (higher is better; NaN is no score), ties to 1e-9 relative:
    scores computed in float64 from the same formulas are equal up to round-off."""
    valid = ~np.isnan(s)
    if not valid.any():
        return np.zeros(len(s), dtype=bool)
    best = s[valid].max()
    with np.errstate(invalid="ignore"):
        close = (s == best) | (np.isfinite(s) & np.isfinite(best)
                               & (np.abs(s - best) <= 1e-9 * np.maximum(np.maximum(np.abs(s), abs(best)), 1e-300)))
    return np.asarray(valid & close, dtype=bool)


def pareto_mask(vectors: ArrayLike, block: int = 1024) -> np.ndarray:
    """Rows no other row dominates (at least as high everywhere, higher somewhere), for
    millions of rows of three scores. A row with a NaN neither dominates nor is dominated
    (every comparison with NaN is false): it is on the front.

    Identical rows are merged; the distinct ones sorted in descending lexicographic order,
    where only an earlier row can dominate a later one, and a row is dominated exactly when
    an earlier one is at least as high in the other two scores; checked a block at a time
    against the front so far and within the block."""
    v = np.asarray(vectors, dtype=np.float64) + 0.0  # -0.0 -> 0.0: equal values, equal rows
    mask = np.asarray(np.isnan(v).any(axis=1) if v.ndim == 2 else np.zeros(len(v)), dtype=bool)
    rows = np.flatnonzero(~mask)
    v = v[rows]
    n = len(v)
    if n == 0:
        return mask
    order = np.lexsort(tuple(-v[:, k] for k in range(v.shape[1] - 1, -1, -1)))
    sv = v[order]
    new = np.ones(n, dtype=bool)
    new[1:] = np.any(sv[1:] != sv[:-1], axis=1)
    uniq = sv[new]
    uid = np.cumsum(new) - 1  # distinct row of each sorted row
    rest = uniq[:, 1:]
    keep = np.zeros(len(uniq), dtype=bool)
    front = np.zeros((0, rest.shape[1]))
    for s in range(0, len(uniq), block):
        blk = rest[s:s + block]
        dom = np.zeros(len(blk), dtype=bool)
        for f in range(0, len(front), 4 * block):
            fr = front[f:f + 4 * block]
            dom |= np.all(fr[None, :, :] >= blk[:, None, :], axis=2).any(axis=1)
        within = np.all(blk[None, :, :] >= blk[:, None, :], axis=2)  # [i, j]: row j at least as high as row i
        dom |= np.tril(within, k=-1).any(axis=1)
        keep[s:s + block] = ~dom
        front = np.concatenate([front, blk[~dom]])
    kept = np.empty(n, dtype=bool)
    kept[order] = keep[uid]
    mask[rows] = kept
    return mask


def nfl_report(ids: Union[Sequence[str], Callable[[int], str]], scores: Mapping[str, ArrayLike], paths: ArrayLike,
               mean_depth: ArrayLike, groups: ArrayLike | None = None, complete: bool = False,
               sum_depth: ArrayLike | None = None) -> NflReport:
    """The report over architectures with at least one input-output path, on columns (a
    row per architecture, in order); ``ids``: the rows' ids, or a function from a row to
    its id, called only for the architectures the report names.

    Those without a path compute a constant: they cannot fit anything, their mean depth is
    0/0, and the generalization bound's leading term is trivially 0, so counting them
    would only add ties; they are listed in ``left_out``. ``sum_depth`` (the total path
    depths) lets the caveats count the networks without a parameterized path.

    ``groups``: a key per architecture, equal for architectures that compute the same
    function (:mod:`nflc.analysis.groups`); the report then also counts distinct groups
    among the winners and on the Pareto front.

    An aspect not computed (NaN) for any architecture has no winners, and then there is
    no Pareto front and no verdict. With ``complete=True`` (predictions, which either
    exist for every architecture or were not computed: ``--measure none`` on networks
    outside the exact family) that holds as soon as one architecture lacks a score: a
    comparison that leaves out the architectures it could not score would not be one.
    Measured reports leave a missing value out of the statistics instead.
    """
    id_of: Callable[[int], str] = ids if callable(ids) else list(ids).__getitem__
    p = np.asarray(paths, dtype=np.float64)
    keep = np.flatnonzero(p > 0)
    left = [id_of(int(i)) for i in np.flatnonzero(~(p > 0))]
    trivial = int(np.sum(np.asarray(sum_depth)[keep] == 0)) if sum_depth is not None else 0
    notes = caveats(len(keep), trivial)
    if not len(keep):
        return NflReport(winners={a: [] for a in ASPECTS}, one_wins_all=False, all_three_winners=[], pareto_front=[],
                         kendall={}, left_out=left, verdict="no architecture has an input-output path")
    sc = {a: np.asarray(scores[a], dtype=np.float64)[keep] for a in ASPECTS}
    grp = np.asarray(groups)[keep] if groups is not None else None
    depth = np.asarray(mean_depth, dtype=np.float64)[keep]
    kt = {a: {"paths": kendall(sc[a], p[keep]), "mean_depth": kendall(sc[a], depth)} for a in ASPECTS}
    missing = [a for a in ASPECTS if (np.isnan(sc[a]).any() if complete else np.isnan(sc[a]).all())]
    masks = {a: (np.zeros(len(keep), dtype=bool) if a in missing else winner_mask(sc[a])) for a in ASPECTS}
    win = {a: [id_of(int(keep[i])) for i in np.flatnonzero(m)] for a, m in masks.items()}
    win_groups = {a: int(np.unique(grp[m]).size) for a, m in masks.items()} if grp is not None else {}
    if missing:
        n_missing = {a: int(np.isnan(sc[a]).sum()) for a in missing}
        what = "; ".join(f"{a} for {n_missing[a]} of {len(keep)}" for a in missing)
        return NflReport(winners=win, one_wins_all=False, all_three_winners=[], pareto_front=[], kendall=kt,
                         left_out=left, missing=missing, winner_groups=win_groups, notes=notes,
                         verdict=f"no verdict: scores not computed ({what} architectures)"
                                 + ("; the exact kernels do not apply and --measure none skips the finite-width ones"
                                    if complete else ""))
    both = masks[ASPECTS[0]] & masks[ASPECTS[1]] & masks[ASPECTS[2]]
    common = [id_of(int(keep[i])) for i in np.flatnonzero(both)]
    front_mask = pareto_mask(np.stack([sc[a] for a in ASPECTS], axis=1))
    front = [id_of(int(keep[i])) for i in np.flatnonzero(front_mask)]
    front_groups = int(np.unique(grp[front_mask]).size) if grp is not None else None
    if common:
        verdict = f"free lunch: {common[0]} is best in all three aspects"
    else:
        distinct = f" ({front_groups} distinct computing graph(s))" if front_groups is not None else ""
        verdict = (f"no free lunch: no architecture is best in all three aspects; "
                   f"{len(front)} architecture(s){distinct} are Pareto-optimal")
    return NflReport(winners=win, one_wins_all=bool(common), all_three_winners=common, pareto_front=front,
                     kendall=kt, left_out=left, winner_groups=win_groups, pareto_groups=front_groups, verdict=verdict,
                     notes=notes)
