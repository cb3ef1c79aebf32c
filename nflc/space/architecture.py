"""One architecture of a space: its id, graphs, topology, exact costs, filters and module."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

import networkx as nx

from nflc.errors import NflcError, SpaceError
from nflc.space import filters
from nflc.space import graph as graphs
from nflc.space.cost import Cost
from nflc.space.ids import cell_id
from nflc.space.radix import decode
from nflc.space.topology import Topology

if TYPE_CHECKING:  # the space holds its architectures; only the type is needed here
    from torch import nn

    from nflc.space.space import Space


class Architecture:
    """One architecture of a space: its id, graphs, exact costs, and torch module."""

    def __init__(self, space: Space, index: int):
        self.space = space
        self.index = index
        digits = decode(index, space.radices)
        self.choices: dict[str, tuple[int, ...]] = {}
        pos = len(space.numeric_radices)
        # the value of every numeric choice (`c in {8, 16}`)
        # the numeric choices' digits come first, then the cells'
        self.numeric: dict[str, int] = {k: vs[d] for (k, vs), d in zip(space.numeric.items(), digits, strict=False)}
        self.numeric_digits = tuple(digits[:pos])
        for k in space.instances:  # per edge (then node op): `pick` cells expand their per-node digits
            n = len(space.edge_radices[k])
            self.choices[k] = space.cell_of[k].expand(tuple(digits[pos : pos + n]))
            pos += n

    # identity
    @functools.cached_property
    def id(self) -> str:
        return self.space.format_id(self.choices, tuple(self.numeric.values()))

    def __repr__(self) -> str:
        return f"<Architecture {self.space.name}#{self.index} {self.id}>"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Architecture) and other.space is self.space and other.index == self.index

    def __hash__(self) -> int:
        return hash((id(self.space), self.index))

    def cell_index(self, instance: str) -> int:
        """The index of this architecture's choice of ``instance``'s cell (:meth:`Space.cell`)."""
        return self.space.cell(self.space.cell_of[instance].name).index(self.choices[instance])

    # graphs
    @property
    def cell_graphs(self) -> dict[str, nx.DiGraph]:
        """The cell DAG of every cell instance (docs/CONTRACTS.md)."""
        if self.space.numeric and self.constants_override:  # shapes and costs at this architecture's values
            ir = self.space.lowered(self.constants_override)
            shapes: dict[str | None, tuple[int, ...]] = {}
            for st in ir.network:
                if st.kind == "cell":
                    shapes.setdefault(st.instance, tuple(st.shape_in))
            return {k: graphs.cell_graph(ir.cells[ir.instance_cell[k]], self.choices[k], shapes[k])
                    for k in self.space.instances}
        return {k: self.space.cell_graph(self.space.cell_of[k].name, self.cell_index(k)) for k in self.space.instances}

    @property
    def graph(self) -> nx.DiGraph:
        """The cell DAG (nodes X0..XH, edge attribute ``op``) of a single-cell architecture."""
        gs = self.cell_graphs
        if len(gs) != 1:
            raise SpaceError(f"architecture has {len(gs)} cell instances; use arch.cell_graphs or arch.network_graph")
        return next(iter(gs.values()))

    @property
    def network_graph(self) -> nx.DiGraph:
        return graphs.network_graph(self.space.lowered(self.constants_override), self.cell_graphs)

    def topology(self, instance: str | None = None) -> Topology:
        """Topology (paths, depths, dead edges) of one cell instance (the only one by default)."""
        k = instance or self._only_instance()
        return self.space.cell_topology(self.space.cell_of[k].name, self.cell_index(k))

    def _only_instance(self) -> str:
        if len(self.space.instances) != 1:
            raise SpaceError("this architecture has several cell instances; name one")
        return self.space.instances[0]

    def dead_edges(self) -> dict[str, set[int]]:
        """Indices (in the cell's edge list) of dead edges, per instance."""
        out = {}
        for k in self.space.instances:
            cell = self.space.cell_of[k]
            dead = set(self.space.cell_topology(cell.name, self.cell_index(k)).dead_edges)
            off = graphs.graph_offset(cell)
            out[k] = {i for i, e in enumerate(cell.edges) if (e.src + off, e.dst + off) in dead}
        return out

    # costs
    def cost(self, prune: bool | None = None, overrides: dict[str, int] | None = None) -> Cost:
        prune = self.space.ir.prune if prune is None else prune
        model = self.space.cost_model(self.constants_override if overrides is None else {**self.numeric, **overrides})
        return model.cost(self.choices, self.dead_edges() if prune else None)

    @property
    def params(self) -> int:
        """Exact trainable parameters (dead edges counted unless the space prunes them)."""
        return self.cost().params

    @property
    def flops(self) -> int:
        """Multiply-accumulates of one forward pass of one input."""
        return self.cost().flops

    # width solving and filters
    @functools.cached_property
    def _solved(self) -> tuple[dict[str, int], filters.Rejection | None]:
        view = self.space.filters_at(self.numeric_digits)
        b = view.scale_budget
        if b is None or b.scale is None:
            return {}, None
        name = b.scale

        def metric_at(w: int) -> int | None:
            try:
                c = self.cost(overrides={name: w})
            except (NflcError, ValueError):  # a width at which the network is ill-formed (e.g. too narrow)
                return None
            return c.params if b.metric == "params" else c.flops

        return filters.solve_scale(b, view.ir.constants[name], metric_at)

    @property
    def constants_override(self) -> dict[str, int]:
        """This architecture's numeric choices and the constants solved for it (``scale
        width``); empty when it has neither (the space's own IR is then its IR)."""
        if not self.numeric:
            return self._solved[0]
        return {**self.numeric, **self._solved[0]}

    @property
    def constants(self) -> dict[str, int]:
        return {**self.space.ir.constants, **self.constants_override}

    @property
    def width(self) -> int | None:
        return self.constants.get("width")

    @functools.cached_property
    def rejected_by(self) -> filters.Rejection | None:
        """Why the space's filters drop this architecture (:class:`nflc.space.filters.Rejection`),
        or None if it is in the space."""
        sp = self.space
        if not (sp.cell_filters or sp.net_filters):  # no filter (NATS-Bench's 32,768 sizes): nothing to lower
            return None
        view = sp.filters_at(self.numeric_digits)  # the filters at this architecture's numeric values
        for k in sp.instances:
            cs = view.cells[sp.cell_of[k].name]
            i = self.cell_index(k)
            rejection = cs.rejection(i)
            if rejection:
                return rejection
            rep = cs.representative(i) if sp.ir.unique else i
            if rep != i:
                return filters.Rejection("unique", cell=cs.name, detail=cell_id(cs.ir, cs.choice(rep)))
        _, rejection = self._solved
        if rejection:
            return rejection
        if not sp.net_filters:
            return None
        c = self.cost()
        return filters.network_rejection(c.params, c.flops, view.ir.budgets, view.ir.requires)

    @property
    def rejection(self) -> str | None:
        """Why the space's filters drop this architecture, in words, or None if it is in the space."""
        rejection = self.rejected_by
        return None if rejection is None else str(rejection)

    # backends
    def to_module(self, seed: int = 0, prune: bool | None = None, bias: bool | None = None, init: str | None = None,
                  width: int | None = None) -> nn.Module:
        """A ``torch.nn.Module`` of exactly this architecture (see :mod:`nflc.backends.torch`);
        options override the spec's (see :meth:`Space.with_options`). ``width``: build it at
        that width instead (the spec lowered again with ``width = W``, :meth:`Space.at_width`:
        the same id, the same seeded initialisation); None or the space's own width: its own."""
        if width is not None and width != self.space.ir.constants.get("width"):
            return self.space.at_width(width).architecture(self.index).to_module(seed, prune, bias, init)
        check_allocatable(self.params, f"#{self.index} of space '{self.space.name}'")
        arch = self
        if any(v is not None for v in (prune, bias, init)):
            arch = self.space.with_options(bias=bias, prune=prune, init=init).architecture(self.index)
        from nflc.backends.torch import compile_network  # torch: imported only when a module is built

        ir = arch.space.lowered(arch.constants_override)
        return compile_network(ir, arch.choices, arch.dead_edges() if ir.prune else None, arch.id, seed)


def available_memory() -> int | None:
    """Bytes of memory free for a new module (None where the platform does not say)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_allocatable(params: int, what: str, bytes_per_param: int = 4) -> None:
    """Refuse, before allocating, a module whose float32 parameters alone need more memory
    than is free (a width of 10**9 would otherwise hang or be killed)."""
    need = params * bytes_per_param
    free = available_memory()
    if free is not None and need > free:
        raise SpaceError(f"a module of {what} would have {params:,} parameters ({need / 2**30:,.1f} GiB as float32), "
                         f"more than the {free / 2**30:,.1f} GiB of memory free", hint="lower the width")
