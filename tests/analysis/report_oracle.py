"""The test oracle of the no-free-lunch report: the list-based version
:func:`nflc.analysis.report.nfl_report` (columns, numpy) replaced, written for clarity
over speed; the tests check the one against the other."""

from __future__ import annotations

import math
from typing import Sequence

from nflc.analysis.report import ASPECTS, NflReport, Tau, caveats


def kendall(a: Sequence[float], b: Sequence[float]) -> Tau:
    from scipy.stats import kendalltau

    pairs = [(x, y) for x, y in zip(a, b, strict=True) if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 2 or len({x for x, _ in pairs}) < 2 or len({y for _, y in pairs}) < 2:
        return Tau(tau=None, p_value=None, n=len(pairs))
    res = kendalltau([x for x, _ in pairs], [y for _, y in pairs])
    return Tau(tau=float(res.statistic), p_value=float(res.pvalue), n=len(pairs))


def _rel_close(a: float, b: float) -> bool:
    # scores computed in float64 from the same formulas: ties are equal up to round-off
    return a == b or (math.isfinite(a) and math.isfinite(b) and abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-300))


def winners(ids: Sequence[str], scores: Sequence[float]) -> list[str]:
    finite = [s for s in scores if not math.isnan(s)]
    if not finite:
        return []
    best = max(finite)
    return [i for i, s in zip(ids, scores, strict=True) if not math.isnan(s) and _rel_close(s, best)]


def pareto_front(ids: Sequence[str], vectors: Sequence[Sequence[float]]) -> list[str]:
    """Ids of the non-dominated score vectors (higher is better in every coordinate)."""
    front = []
    order = sorted(range(len(ids)), key=lambda i: tuple(-v for v in vectors[i]))
    kept: list[Sequence[float]] = []
    for i in order:
        v = vectors[i]
        if any(all(w[k] >= v[k] for k in range(len(v))) and any(w[k] > v[k] for k in range(len(v))) for w in kept):
            continue
        kept.append(v)
        front.append(ids[i])
    return sorted(front, key=ids.index)


def list_report(ids: Sequence[str], scores: dict[str, Sequence[float]], paths: Sequence[float],
               mean_depth: Sequence[float], groups: Sequence | None = None, complete: bool = False) -> NflReport:
    """The report over architectures with at least one input-output path.

    Those without one compute a constant: they cannot fit anything, their mean depth is
    0/0, and the generalization bound's leading term is trivially 0, so counting them
    would only add ties; they are listed in ``left_out``.

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
    keep = [i for i, p in enumerate(paths) if p > 0]
    left = [ids[i] for i, p in enumerate(paths) if not p > 0]
    notes = caveats(len(keep))
    ids = [ids[i] for i in keep]
    scores = {a: [scores[a][i] for i in keep] for a in scores}
    paths = [paths[i] for i in keep]
    mean_depth = [mean_depth[i] for i in keep]
    grp = [groups[i] for i in keep] if groups is not None else None
    if not ids:
        return NflReport(winners={a: [] for a in ASPECTS}, one_wins_all=False, all_three_winners=[], pareto_front=[],
                         kendall={}, left_out=left, verdict="no architecture has an input-output path")
    kt = {a: {"paths": kendall(scores[a], paths), "mean_depth": kendall(scores[a], mean_depth)} for a in ASPECTS}
    missing = [a for a in ASPECTS if (any if complete else all)(math.isnan(v) for v in scores[a])]
    win = {a: [] if a in missing else winners(ids, scores[a]) for a in ASPECTS}
    pos = {k: i for i, k in enumerate(ids)}
    count_groups = (lambda chosen: len({grp[pos[k]] for k in chosen})) if grp is not None else None
    win_groups = {a: count_groups(w) for a, w in win.items()} if count_groups else {}
    if missing:
        n = {a: sum(math.isnan(v) for v in scores[a]) for a in missing}
        what = "; ".join(f"{a} for {n[a]} of {len(ids)}" for a in missing)
        return NflReport(winners=win, one_wins_all=False, all_three_winners=[], pareto_front=[], kendall=kt,
                         left_out=left, missing=missing, winner_groups=win_groups, notes=notes,
                         verdict=f"no verdict: scores not computed ({what} architectures)"
                                 + ("; the exact kernels do not apply and --measure none skips the finite-width ones"
                                    if complete else ""))
    common = sorted(set(win[ASPECTS[0]]).intersection(*map(set, (win[a] for a in ASPECTS[1:]))), key=lambda i: pos[i])
    vectors = [tuple(scores[a][i] for a in ASPECTS) for i in range(len(ids))]
    front = pareto_front(ids, vectors)
    front_groups = count_groups(front) if count_groups else None
    if common:
        verdict = f"free lunch: {common[0]} is best in all three aspects"
    else:
        distinct = f" ({front_groups} distinct computing graph(s))" if front_groups is not None else ""
        verdict = (f"no free lunch: no architecture is best in all three aspects; "
                   f"{len(front)} architecture(s){distinct} are Pareto-optimal")
    return NflReport(winners=win, one_wins_all=bool(common), all_three_winners=common, pareto_front=front,
                     kendall=kt, left_out=left, winner_groups=win_groups, pareto_groups=front_groups, verdict=verdict,
                     notes=notes)
