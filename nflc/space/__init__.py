"""Spaces of architectures, one module per job:

- :mod:`~nflc.space.space`: :class:`Space` (counting, enumeration, sampling, lookup);
- :mod:`~nflc.space.architecture`: :class:`Architecture` (id, graphs, costs, module);
- :mod:`~nflc.space.cell`: :class:`CellSpace`, one cell's choices and per-cell filters;
- :mod:`~nflc.space.filters`: budgets, ``require``, ``unique`` and :class:`Rejection`;
- :mod:`~nflc.space.canonical` (and :mod:`~nflc.space.labelled_dags`): the computing
  graph's canonical form;
- :mod:`~nflc.space.topology`: paths, depths and dead edges of a cell;
- :mod:`~nflc.space.graph`: cell and network graphs, exporters, node-cell plans;
- :mod:`~nflc.space.cost`: exact parameter and FLOP counts;
- :mod:`~nflc.space.ids`: architecture ids; :mod:`~nflc.space.radix`: mixed-radix indices.
"""

from nflc.space.architecture import Architecture, available_memory, check_allocatable
from nflc.space.cell import ENUMERATION_LIMIT, CellSpace
from nflc.space.filters import Rejected, Rejection
from nflc.space.space import Space

__all__ = ["Architecture", "CellSpace", "ENUMERATION_LIMIT", "Rejected", "Rejection", "Space", "available_memory",
           "check_allocatable"]
