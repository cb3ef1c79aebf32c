"""The metrics a space's filters name: one registry for the compiler and the space.

``require METRIC CMP VALUE`` and ``budget METRIC ...`` name a metric of this table. The
compiler (:mod:`nflc.ir.checks`) checks the names against it; the space
(:mod:`nflc.space`) evaluates it: a *cell* metric on every cell of an architecture, from
the cell's path structure (:class:`CellPaths`), a *network* metric on the whole network's
exact cost. Adding a metric is one entry here.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Callable, Literal, NamedTuple


class CellPaths(NamedTuple):
    """What a cell metric is computed from (:mod:`nflc.space.topology`'s dynamic programmes).

    ``depth_counts[k]``: end-to-end paths with ``k`` parameterized edges; ``live``: the
    cell's own non-zero edges ``(s, t)`` on some end-to-end path (the edges the graph's
    frame adds left out); ``dead``: the non-zero edges on none (the frame's included)."""

    depth_counts: tuple[int, ...]
    live: tuple[tuple[int, int], ...]
    dead: int


@dataclass(frozen=True)
class Metric:
    name: str
    doc: str  # what it measures (error hints, docs/LANGUAGE.md)
    scope: Literal["cell", "network"]
    of: Callable[[CellPaths], int | float] | None = None  # a cell metric's value


def _depths(c: CellPaths) -> list[int]:
    return [k for k, n in enumerate(c.depth_counts) if n]


def _mean_depth(c: CellPaths) -> float:
    paths = sum(c.depth_counts)
    return sum(k * n for k, n in enumerate(c.depth_counts)) / paths if paths else 0.0


METRICS: dict[str, Metric] = {m.name: m for m in [
    Metric("paths", "end-to-end paths P of every cell", "cell", lambda c: sum(c.depth_counts)),
    Metric("depth", "largest path depth (parameterized edges on a path) of every cell", "cell",
           lambda c: max(_depths(c), default=0)),
    Metric("min_depth", "smallest path depth of every cell", "cell", lambda c: min(_depths(c), default=0)),
    Metric("mean_depth", "mean path depth of every cell", "cell", _mean_depth),
    Metric("skip_paths", "paths with no parameterized edge, in every cell", "cell",
           lambda c: c.depth_counts[0] if c.depth_counts else 0),
    Metric("dead_edges", "non-zero edges on no input-to-output path, in every cell", "cell", lambda c: c.dead),
    Metric("edges", "non-zero edges on some input-to-output path (the computing graph's), in every cell", "cell",
           lambda c: len(c.live)),
    Metric("in_degree", "the most edges of the computing graph into one node (the output of a concat cell aside), "
           "in every cell", "cell", lambda c: max(collections.Counter(t for _, t in c.live).values(), default=0)),
    Metric("params", "parameters of the whole network", "network"),
    Metric("flops", "multiply-accumulates of the whole network", "network"),
]}

REQUIRE_METRICS = {name: m.doc for name, m in METRICS.items()}  # what `require` may name
NETWORK_METRICS = tuple(name for name, m in METRICS.items() if m.scope == "network")
BUDGET_METRICS = NETWORK_METRICS  # what `budget` may name


_CELL_METRICS = [(name, m.of) for name, m in METRICS.items() if m.of is not None]


def cell_metrics(paths: CellPaths) -> dict[str, int | float]:
    """Every cell metric of one cell."""
    return {name: of(paths) for name, of in _CELL_METRICS}
