"""Figures: the paper's Fig. 3/4 panels (P against mean depth, coloured by a score)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def topology_panels(path: str | Path, paths: Sequence[float], mean_depth: Sequence[float],
                    values: dict[str, Sequence[float]], title: str) -> None:
    """One scatter panel per entry of ``values``: x = mean depth, y = P, colour = value."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(values), figsize=(4.2 * len(values), 3.6), squeeze=False)
    for ax, (name, vals) in zip(axes[0], values.items()):
        pts = [(d, p, v) for d, p, v in zip(mean_depth, paths, vals) if p > 0 and v is not None and math.isfinite(v)]
        sc = ax.scatter([q[0] for q in pts], [q[1] for q in pts], c=[q[2] for q in pts], cmap="viridis", s=18,
                        alpha=0.8)
        fig.colorbar(sc, ax=ax)
        ax.set_xlabel("mean depth")
        ax.set_ylabel("paths P")
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
