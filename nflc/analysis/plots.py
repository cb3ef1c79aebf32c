"""Figures: the paper's Fig. 3/4 panels (P against mean depth, coloured by a score).

Many architectures share one (mean depth, P) cell of the grid (about 30 of the 729 H = 3
cells sit at depth 0, P = 1), so each panel spreads a cell's networks over a small grid
around its point (:func:`spread`, ordered by value so the cell shows its own range)
instead of drawing them on top of each other; every network stays visible. Colours run
between the 2nd and 98th percentiles of the panel's values (outliers take the end colours),
and the colour bar says so; the Kendall taus are written under each panel, not in a legend
box over the points.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from nflc.outputs import atomic_path

Row = tuple[str, dict[str, Sequence[Optional[float]]]]
Values = Sequence[float] | np.ndarray  # a column of numbers, as a list or an array

CLIP_PERCENTILES = (2.0, 98.0)  # the colour scale's range: outliers do not stretch it


def spread(xs: Values, ys: Values, values: Values, dx: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions that keep every point of a shared ``(x, y)`` visible: the ``k`` points of a
    cell are laid on a ``ceil(sqrt(k))``-column grid within ``+-dx``, ``+-dy`` of it, in the
    order of their values (deterministic: no random jitter)."""
    cells: dict[tuple[float, float], list[int]] = defaultdict(list)
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        cells[(x, y)].append(i)
    px, py = np.asarray(xs, dtype=float).copy(), np.asarray(ys, dtype=float).copy()
    for members in cells.values():
        k = len(members)
        if k == 1:
            continue
        cols = math.ceil(math.sqrt(k))
        rows = math.ceil(k / cols)
        for slot, i in enumerate(sorted(members, key=lambda j: (values[j], j))):
            r, c = divmod(slot, cols)
            px[i] += (2 * (c + 0.5) / cols - 1) * dx
            py[i] += (2 * (r + 0.5) / rows - 1) * dy
    return px, py


def colour_range(values: Values) -> tuple[float, float]:
    """The colour scale's ends: the 2nd and 98th percentiles (the whole range when they coincide)."""
    v = np.asarray(values, dtype=float)
    lo, hi = (float(q) for q in np.percentile(v, CLIP_PERCENTILES))
    if not hi > lo:
        lo, hi = float(v.min()), float(v.max())
    return lo, hi


def _ordinal(q: float) -> str:
    n = int(q)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{q:g}{suffix}"


def _min_gap(values: Values) -> float:
    distinct = sorted(set(values))
    gaps = [b - a for a, b in zip(distinct, distinct[1:], strict=False)]
    return min(gaps) if gaps else 1.0


def topology_grid(path: str | Path, paths: Sequence[float], mean_depth: Sequence[float], rows: Sequence[Row],
                  title: str) -> dict[tuple[str, str], tuple[Optional[float], Optional[float]]]:
    """One row of panels per ``(row label, {panel name: values})``: x = mean depth, y = P,
    colour = value, every network drawn (:func:`spread`), and each panel's Kendall tau of
    the value with P and with the mean depth under it (architectures with P > 0 and a
    finite value, as in the reports). Returns those taus,
    ``{(row label, panel name): (tau with P, tau with mean depth)}``."""
    import matplotlib  # matplotlib: loaded only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib: loaded only when a figure is drawn
    from matplotlib.colors import LogNorm, Normalize  # matplotlib: loaded only when a figure is drawn

    from nflc.analysis.report import kendall  # lazy: loads scipy

    drawn: dict[tuple[str, str], tuple[Optional[float], Optional[float]]] = {}
    cols = max(len(values) for _, values in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(4.8 * cols, 4.3 * len(rows)), squeeze=False)
    for r, (label, values) in enumerate(rows):
        for c, (name, vals) in enumerate(values.items()):
            ax = axes[r][c]
            pts = [(d, p, v) for d, p, v in zip(mean_depth, paths, vals, strict=True)
                   if p > 0 and v is not None and math.isfinite(v)]
            taus = [kendall([q[2] for q in pts], [q[i] for q in pts]).tau for i in (1, 0)]
            drawn[(label, name)] = (taus[0], taus[1])
            ax.set_title(f"{label}: {name}" if label else name, fontsize=10)
            text = ", ".join(f"tau with {k} {'n/a' if t is None else f'{t:+.2f}'}"
                             for k, t in zip(("P", "mean depth"), taus, strict=True))
            ax.set_xlabel(f"mean depth\n{text} ({len(pts)} networks)", fontsize=9)
            ax.set_ylabel("paths P")
            ax.yaxis.get_major_locator().set_params(integer=True)
            if not pts:
                continue
            d, p, v = (np.array([q[i] for q in pts], dtype=float) for i in range(3))
            x, y = spread(d, p, v, dx=0.4 * _min_gap(d), dy=0.32)
            lo, hi = colour_range(v)
            # values over more than a decade (losses near zero): a log colour scale shows their order
            log = lo > 0 and hi / lo > 10
            norm = LogNorm(lo, hi) if log else Normalize(lo, hi)
            sc = ax.scatter(x, y, c=np.clip(v, lo, hi), cmap="viridis", norm=norm, s=9, linewidths=0)
            bar = fig.colorbar(sc, ax=ax, extend="both" if (v.min() < lo or v.max() > hi) else "neither")
            bar.set_label(f"{'log ' if log else ''}colour: {_ordinal(CLIP_PERCENTILES[0])}-"
                          f"{_ordinal(CLIP_PERCENTILES[1])} percentile", fontsize=8)
        for c in range(len(values), cols):
            axes[r][c].set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
    return drawn


def save_png(fig: Any, path: str | Path) -> None:
    """Save ``fig`` as a PNG marked as nflc's (Software: nflc), replacing ``path`` atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png", metadata={"Software": "nflc"})


def topology_panels(path: str | Path, paths: Sequence[float], mean_depth: Sequence[float],
                    values: dict[str, Sequence[Optional[float]]], title: str) -> dict[str, tuple]:
    """One row of :func:`topology_grid` panels; returns ``{panel name: (tau with P, tau with mean depth)}``."""
    return {name: taus for (_, name), taus in topology_grid(path, paths, mean_depth, [("", values)], title).items()}
