"""Plotly figures of the HTML pages, as plain dicts (``{"data": [...], "layout": {...}}``).

Every point carries ``customdata[0]``: the row of its architecture in the page's table
(-1 when the table does not hold it), which the page uses to draw the architecture a
reader clicks.

The paper's Fig. 3/4 panels (P against mean depth, coloured by a score) show every
network: up to :data:`MAX_POINTS` architectures each is one marker, spread within its
(mean depth, P) cell on a sunflower spiral (deterministic, no overlap between cells);
above that, each cell is one marker sized by its number of architectures and coloured by
their mean. Architectures with no input-output path (P = 0: no mean depth) are grey
crosses at the origin, and a score that was not computed is a grey marker, so a panel
always accounts for every architecture. Colours span the 2nd to 98th percentile of the
values (stated on the colour bar), so a few outliers cannot flatten the scale.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

MAX_POINTS = 10_000  # per panel; above, one marker per (mean depth, P) cell
GOLDEN = math.pi * (3 - math.sqrt(5))
GREY = "#9a9a9a"
PERCENTILES = (2.0, 98.0)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def robust_range(values: Sequence[float]) -> tuple[float, float] | None:
    """The colour range: the 2nd and 98th percentiles of the finite values (None if none)."""
    vals = np.asarray([v for v in values if _finite(v)], dtype=float)
    if not len(vals):
        return None
    lo, hi = (float(x) for x in np.percentile(vals, PERCENTILES))
    if hi <= lo:
        lo, hi = float(vals.min()), float(vals.max())
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0) * 1e-9
    return lo, hi


def _sig(v: float) -> float:
    return float(f"{v:.6g}")


def spread(depth: Sequence[float], paths: Sequence[float]) -> tuple[list[float], list[float]]:
    """Marker positions: each (depth, P) cell's architectures on a sunflower spiral around
    the cell's centre, within 0.35 in P and 40% of the gap to the nearest other depth in
    the same P row (at most 0.12) in depth; a lone architecture sits at the centre."""
    cells: dict[tuple[float, float], list[int]] = defaultdict(list)
    for i, (d, p) in enumerate(zip(depth, paths, strict=True)):
        cells[(round(float(d), 9), float(p))].append(i)
    rows: dict[float, list[float]] = defaultdict(list)
    for d, p in cells:
        rows[p].append(d)
    half_w: dict[tuple[float, float], float] = {}
    for p, ds in rows.items():
        ds.sort()
        for k, d in enumerate(ds):
            gaps = [abs(d - o) for o in (ds[k - 1] if k else None, ds[k + 1] if k + 1 < len(ds) else None) if o is not None]
            half_w[(d, p)] = min([0.4 * g for g in gaps] + [0.12])
    x = [0.0] * len(depth)
    y = [0.0] * len(depth)
    for (d, p), members in cells.items():
        k = len(members)
        for j, i in enumerate(members):
            r = math.sqrt(j / k)
            x[i] = _sig(d + r * half_w[(d, p)] * math.cos(j * GOLDEN))
            y[i] = _sig(p + r * 0.35 * math.sin(j * GOLDEN))
    return x, y


def _colour_bar(title: str, rng: tuple[float, float]) -> dict:
    lo, hi = rng
    return {"title": {"text": f"{title}<br><sub>colour: 2nd-98th percentile<br>[{lo:.3g}, {hi:.3g}]</sub>",
                      "side": "right"}, "thickness": 12, "len": 0.9}


def _tau_text(tau_p: float | None, tau_d: float | None) -> str:
    f = lambda t: "n/a" if t is None else f"{t:+.2f}"  # noqa: E731
    return f"Kendall tau with P {f(tau_p)}, with mean depth {f(tau_d)}"


def topology_panel(name: str, values: Sequence[float | None], paths: Sequence[float], depth: Sequence[float],
                   rows: Sequence[int], ids: Sequence[str], taus: tuple[float | None, float | None],
                   aggregate: bool | None = None) -> dict:
    """One Fig. 3/4 panel: x = mean depth, y = P, colour = ``values`` (one per architecture).

    ``rows[i]``: architecture i's table row (-1: not in the table), ``ids[i]`` its id ("" to
    leave it out of the hover). ``aggregate`` (default: more than :data:`MAX_POINTS`
    architectures): one marker per (mean depth, P) cell."""
    n = len(values)
    aggregate = n > MAX_POINTS if aggregate is None else aggregate
    vals = [float(v) if v is not None and _finite(v) else math.nan for v in values]
    traces: list[dict] = []
    has_path = [i for i in range(n) if paths[i] > 0]
    rng = robust_range([vals[i] for i in has_path]) or (0.0, 1.0)  # the coloured markers' values
    no_path = [i for i in range(n) if not paths[i] > 0]
    scored = [i for i in has_path if math.isfinite(vals[i])]
    unscored = [i for i in has_path if not math.isfinite(vals[i])]
    if aggregate:
        cells: dict[tuple[float, float], list[int]] = defaultdict(list)
        for i in has_path:
            cells[(round(float(depth[i]), 9), float(paths[i]))].append(i)
        keys = sorted(cells)
        counts = [len(cells[k]) for k in keys]
        means = []
        for k in keys:
            fin = [vals[i] for i in cells[k] if math.isfinite(vals[i])]
            means.append(_sig(float(np.mean(fin))) if fin else None)
        biggest = max(counts, default=1)
        custom = []
        for k, c, m in zip(keys, counts, means, strict=True):
            fin = [vals[i] for i in cells[k] if math.isfinite(vals[i])]
            first = next((rows[i] for i in cells[k] if rows[i] >= 0), -1)
            custom.append([first, c, "n/a" if m is None else f"{m:.4g}",
                           f"{min(fin):.4g} .. {max(fin):.4g}" if fin else "not computed"])
        traces.append({
            "type": "scatter", "mode": "markers", "name": "(depth, P) cells", "x": [k[0] for k in keys],
            "y": [k[1] for k in keys], "customdata": custom,
            "marker": {"size": [7 + 23 * math.sqrt(c / biggest) for c in counts],
                       "color": [m if m is not None else rng[0] for m in means], "cmin": rng[0], "cmax": rng[1],
                       "colorscale": "Viridis", "colorbar": _colour_bar(name, rng), "line": {"width": 0.5, "color": "#333"}},
            "hovertemplate": "mean depth %{x:.3g}, P %{y}<br>%{customdata[1]} architectures<br>mean " + name
                             + " %{customdata[2]}<br>range %{customdata[3]}<extra></extra>"})
        if no_path:
            traces.append({"type": "scatter", "mode": "markers", "name": f"no input-output path ({len(no_path)})",
                           "x": [0.0], "y": [0.0], "customdata": [[next((rows[i] for i in no_path if rows[i] >= 0), -1),
                                                                    len(no_path)]],
                           "marker": {"symbol": "x", "color": GREY, "size": 12},
                           "hovertemplate": "%{customdata[1]} architectures without an input-output path<extra></extra>"})
        how = f"{n:,} architectures: one marker per (mean depth, P) cell, sized by its count, coloured by its mean"
    else:
        x, y = spread([depth[i] if paths[i] > 0 else 0.0 for i in range(n)], [paths[i] if paths[i] > 0 else 0.0 for i in range(n)])

        def pts(idx: list[int], label: str, marker: dict, colour: bool = False) -> dict:
            return {"type": "scatter", "mode": "markers", "name": label, "x": [x[i] for i in idx], "y": [y[i] for i in idx],
                    "customdata": [[rows[i], ids[i], _sig(float(depth[i])), int(paths[i]),
                                    "not computed" if not math.isfinite(vals[i]) else f"{vals[i]:.4g}"] for i in idx],
                    "marker": {**marker, **({"color": [_sig(vals[i]) for i in idx]} if colour else {})},
                    "hovertemplate": "%{customdata[1]}<br>P %{customdata[3]}, mean depth %{customdata[2]}<br>"
                                     + name + " %{customdata[4]}<extra></extra>"}

        traces.append(pts(scored, f"architectures ({len(scored)})",
                          {"size": 7, "cmin": rng[0], "cmax": rng[1], "colorscale": "Viridis",
                           "colorbar": _colour_bar(name, rng), "line": {"width": 0.4, "color": "#333"}}, colour=True))
        if unscored:
            traces.append(pts(unscored, f"not computed ({len(unscored)})", {"size": 7, "color": GREY}))
        if no_path:
            traces.append(pts(no_path, f"no input-output path ({len(no_path)})", {"size": 7, "color": GREY, "symbol": "x"}))
        how = f"{n:,} architectures, each a marker, spread within its (mean depth, P) cell"
    layout = {
        "title": {"text": f"{name}<br><sub>{_tau_text(*taus)}</sub>", "x": 0.02, "font": {"size": 14}},
        "xaxis": {"title": {"text": "mean depth"}, "zeroline": False},
        "yaxis": {"title": {"text": "paths P"}, "dtick": 1, "zeroline": False},
        "showlegend": True, "legend": {"orientation": "h", "y": -0.22, "x": 0, "font": {"size": 11}},
        "margin": {"l": 55, "r": 10, "t": 60, "b": 95}, "height": 430, "hovermode": "closest",
        "annotations": [{"text": how, "xref": "paper", "yref": "paper", "x": 0, "y": -0.36, "showarrow": False,
                         "font": {"size": 10, "color": "#555"}, "xanchor": "left"}],
    }
    return {"data": traces, "layout": layout}


def scatter(title: str, x: Sequence[float | None], y: Sequence[float | None], rows: Sequence[int], ids: Sequence[str],
            x_title: str, y_title: str, subtitle: str = "", max_points: int = MAX_POINTS, seed: int = 0,
            floor_label: str | None = None) -> dict:
    """A scatter of two per-architecture quantities (predicted vs measured, score vs
    accuracy). A pair with a missing or infinite value is not a point (a note counts
    them), except, with ``floor_label``, an x of -inf: such pairs are grey crosses left of
    every other point, under that legend. Above ``max_points`` pairs a seeded uniform
    sample of ``max_points`` is drawn (the legend says so)."""
    pairs = [i for i in range(len(x)) if _finite(x[i]) and _finite(y[i])]
    floor = [i for i in range(len(x)) if floor_label and x[i] == -math.inf and _finite(y[i])]
    left_out = len(x) - len(pairs) - len(floor)
    shown = pairs
    if len(pairs) > max_points:
        pick = np.random.default_rng(seed).choice(len(pairs), size=max_points, replace=False)
        shown = [pairs[k] for k in sorted(pick.tolist())]
    label = f"architectures ({len(shown)}" + (f" of {len(pairs)}, a uniform sample (seed {seed})" if shown is not pairs else "") + ")"
    traces = [{"type": "scatter", "mode": "markers", "name": label,
               "x": [_sig(float(x[i])) for i in shown], "y": [_sig(float(y[i])) for i in shown],  # type: ignore[arg-type]
               "customdata": [[rows[i], ids[i]] for i in shown],
               "marker": {"size": 7, "color": "#1f77b4", "opacity": 0.75, "line": {"width": 0.4, "color": "#333"}},
               "hovertemplate": "%{customdata[1]}<br>" + x_title + " %{x:.4g}<br>" + y_title + " %{y:.4g}<extra></extra>"}]
    if floor:
        xs = [float(x[i]) for i in pairs]  # type: ignore[arg-type]
        lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
        at = _sig(lo - 0.06 * ((hi - lo) or 1.0))
        traces.append({"type": "scatter", "mode": "markers", "name": f"{floor_label} ({len(floor)})",
                       "x": [at] * len(floor), "y": [_sig(float(y[i])) for i in floor],  # type: ignore[arg-type]
                       "customdata": [[rows[i], ids[i]] for i in floor],
                       "marker": {"size": 8, "color": GREY, "symbol": "x"},
                       "hovertemplate": "%{customdata[1]}<br>" + f"{floor_label}<br>{y_title}" + " %{y:.4g}<extra></extra>"})
    note = f"{left_out} without a finite value on both axes are not drawn" if left_out else ""
    layout = {
        "title": {"text": f"{title}" + (f"<br><sub>{subtitle}</sub>" if subtitle else ""), "x": 0.02, "font": {"size": 14}},
        "xaxis": {"title": {"text": x_title}}, "yaxis": {"title": {"text": y_title}},
        "showlegend": True, "legend": {"orientation": "h", "y": -0.22, "x": 0, "font": {"size": 11}},
        "margin": {"l": 60, "r": 10, "t": 60, "b": 95}, "height": 430, "hovermode": "closest",
        "annotations": ([{"text": note, "xref": "paper", "yref": "paper", "x": 0, "y": -0.36, "showarrow": False,
                          "font": {"size": 10, "color": "#555"}, "xanchor": "left"}] if note else []),
    }
    return {"data": traces, "layout": layout}
