"""Architectures that compute the same function: one group per computing graph.

Two architectures of a space compute the same function when every cell placement has the
same *computing graph*: the cell with its zero edges and dead edges (on no input-output
path) removed, up to a renumbering of the intermediate nodes, edges matched by the
primitive ops they apply. That is the relation the space's ``unique`` filter keeps one
member of (:meth:`nflc.space.Space._iso_representative`), so the groups here are exactly
the architectures ``unique`` would merge. Architectures whose width the space solves for
a budget (``scale width``) are grouped only with those solved to the same constants: a
dead edge can change the width.

Members of a group have the same topology, the same exact kernels and the same predicted
scores; they differ in dead edges, and so (unless the space prunes them) in parameters.
"""

from __future__ import annotations

from typing import Hashable, Sequence

from nflc.errors import NflcError
from nflc.graph import on_path_edges


def _live_key(arch, instance: str) -> tuple:
    """Fallback for cells too large to walk: the live edges themselves (no renumbering)."""
    g = arch.space.cell_graph(arch.space.cell_of[instance].name, arch.cell_index(instance))
    h = max(g.nodes)
    edges = sorted(((s, t, a["op"]) for s, t, a in g.edges(data=True) if a["kind"] != "zero"),
                   key=lambda e: (e[1], e[0]))
    return ("live", on_path_edges(edges, h))


def function_key(arch) -> Hashable:
    """A key equal for two architectures of one space exactly when they compute the same function."""
    sp = arch.space
    parts = []
    for k in sp.instances:
        cell = sp.cell_of[k].name
        try:
            parts.append(sp._iso_representative(cell)[arch.cell_index(k)])
        except NflcError:  # a cell with too many choices to walk: compare live edges as they are
            parts.append(_live_key(arch, k))
    return tuple(parts), tuple(sorted(arch.constants_override.items()))


def representatives(archs: Sequence) -> list[int]:
    """For each architecture, the position (in ``archs``) of its group's representative:
    the member with the fewest parameters (no dead parameterized edges where the others
    have them), the first one in order among equals."""
    best: dict[Hashable, int] = {}
    keys = [function_key(a) for a in archs]
    params = [a.params for a in archs]
    for i, key in enumerate(keys):
        j = best.get(key)
        if j is None or params[i] < params[j]:
            best[key] = i
    return [best[key] for key in keys]
