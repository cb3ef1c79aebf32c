"""Figures: the paper's Fig. 3/4 panels (P against mean depth, coloured by a score)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

Row = tuple[str, dict[str, Sequence[Optional[float]]]]


def topology_grid(path: str | Path, paths: Sequence[float], mean_depth: Sequence[float], rows: Sequence[Row],
                  title: str) -> dict[tuple[str, str], tuple[Optional[float], Optional[float]]]:
    """One row of panels per ``(row label, {panel name: values})``: x = mean depth, y = P,
    colour = value, and each panel's Kendall tau of the value with P and with the mean
    depth in its legend (architectures with P > 0 and a finite value, as in the reports).
    Returns those taus, ``{(row label, panel name): (tau with P, tau with mean depth)}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from nflc.analysis.report import kendall

    drawn: dict[tuple[str, str], tuple[Optional[float], Optional[float]]] = {}
    cols = max(len(values) for _, values in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(4.4 * cols, 3.8 * len(rows)), squeeze=False)
    for r, (label, values) in enumerate(rows):
        for c, (name, vals) in enumerate(values.items()):
            ax = axes[r][c]
            pts = [(d, p, v) for d, p, v in zip(mean_depth, paths, vals, strict=True)
                   if p > 0 and v is not None and math.isfinite(v)]
            sc = ax.scatter([q[0] for q in pts], [q[1] for q in pts], c=[q[2] for q in pts], cmap="viridis", s=18,
                            alpha=0.8)
            fig.colorbar(sc, ax=ax)
            taus = [kendall([q[2] for q in pts], [q[i] for q in pts]).tau for i in (1, 0)]
            drawn[(label, name)] = (taus[0], taus[1])
            text = [f"tau with {k} = {'n/a' if t is None else f'{t:+.2f}'}" for k, t in zip(("P", "mean depth"), taus, strict=True)]
            ax.legend([Line2D([], [], linestyle="none")] * 2, text, loc="upper right", fontsize=8, handlelength=0,
                      framealpha=0.8)
            ax.set_xlabel("mean depth")
            ax.set_ylabel("paths P")
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.set_title(f"{label}: {name}" if label else name, fontsize=10)
        for c in range(len(values), cols):
            axes[r][c].set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn


def topology_panels(path: str | Path, paths: Sequence[float], mean_depth: Sequence[float],
                    values: dict[str, Sequence[Optional[float]]], title: str) -> dict[str, tuple]:
    """One row of :func:`topology_grid` panels; returns ``{panel name: (tau with P, tau with mean depth)}``."""
    return {name: taus for (_, name), taus in topology_grid(path, paths, mean_depth, [("", values)], title).items()}
