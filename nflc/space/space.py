"""Spaces of architectures: exact counting, enumeration, sampling, lookup by id.

An architecture is one choice per edge of every cell instance. Its raw *index* is its
position in the full product of choices (instances in network order, edges in (dst, src)
order, the last edge varying fastest), so ``space.architecture(i)`` is O(1) and counting an
unfiltered space never enumerates it. Filters (budgets, ``require``, ``unique``) keep the
raw order; filters that look at one cell at a time (``require`` on topology, ``unique``)
factor over instances (:class:`nflc.space.cell.CellSpace`), so filtered spaces of any size
still count exactly.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import random
import re
from typing import Any, Callable, Iterator

import networkx as nx

from nflc.errors import Diagnostic, SpaceError
from nflc.ir.lower import SpaceSource, relower
from nflc.ir.model import SpaceIR
from nflc.ir.options import apply_options
from nflc.space import ids
from nflc.space.architecture import Architecture
from nflc.space.cell import ENUMERATION_LIMIT, CellSpace
from nflc.space.cost import CostModel
from nflc.space.filters import Rejected, is_cell_require, reject_all_warning
from nflc.space.radix import encode, radix_product
from nflc.space.select import select
from nflc.space.topology import Topology
from nflc.space.values import ValueFilters, filters_at_values, nth_candidate, share_cells


def _instance_cache(maxsize: int | None = None) -> Callable[[Callable], Callable]:
    """``functools.lru_cache`` for a method, one cache per instance: a class-level
    ``lru_cache`` would keep every Space it ever saw alive (ruff B019). The cache lives in
    the instance's ``__dict__`` (dropped when pickling, see ``Space.__getstate__``)."""

    def decorate(fn: Callable) -> Callable:
        slot = f"_cache_{fn.__name__}"

        @functools.wraps(fn)
        def cached(self: Any, *args: Any) -> Any:
            cache = self.__dict__.get(slot)
            if cache is None:
                cache = self.__dict__[slot] = functools.lru_cache(maxsize=maxsize)(functools.partial(fn, self))
            return cache(*args)

        return cached

    return decorate


REJECTION_WALK = 50_000  # architectures `nflc list --rejected` examines (an NB201 x15 one takes 200 us)
MAX_VALUE_TUPLES = 100_000  # combinations of numeric values nflc lowers to apply filters that may use them


class Space:
    """A lowered space: the set of architectures a .nfl `space` block describes."""

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_cache_")}

    def __init__(self, ir: SpaceIR, source: SpaceSource | None = None, warnings: list | None = None,
                 options: dict | None = None):
        self.base_ir = ir
        self.options = {k: v for k, v in (options or {}).items() if v is not None}
        ir = apply_options(ir, **self.options) if self.options else ir
        self.ir = ir
        self.name = ir.name
        self.source = source
        self.warnings = list(warnings or [])
        self.instances = list(ir.instances)
        self.cell_of = {k: ir.cells[ir.instance_cell[k]] for k in self.instances}
        self.cell_shape: dict[str | None, tuple[int, ...]] = {}
        for st in ir.network:
            if st.kind == "cell":
                self.cell_shape.setdefault(st.instance, tuple(st.shape_in))
        self.edge_radices = {k: self.cell_of[k].radices() for k in self.instances}  # edges, then node ops
        # numeric choices come first in an index (declaration order), then the cells' edges
        self.numeric: dict[str, list[int]] = {k: list(v) for k, v in ir.numeric.items()}
        self.numeric_radices = [len(v) for v in self.numeric.values()]
        self.radices = self.numeric_radices + [r for k in self.instances for r in self.edge_radices[k]]
        self._cost_models: dict[tuple, CostModel] = {(): CostModel(ir)}
        scaled = [b for b in ir.budgets if b.scale]
        if len(scaled) > 1:
            raise SpaceError("only one budget may scale a constant", hint="keep one 'scale' budget")
        self.scale_budget = scaled[0] if scaled else None
        self.cell_requires = [r for r in ir.requires if is_cell_require(r)]
        self.cell_filters = bool(ir.unique or self.cell_requires or any(c.is_node_cell for c in self.cell_of.values()))
        self.net_filters = bool(ir.budgets or len(self.cell_requires) < len(ir.requires))
        self.cell_effects: dict[tuple, CellSpace] = {}  # one CellSpace per distinct filter effect

    # ---------------------------------------------------------------- cells
    def cell(self, name: str) -> CellSpace:
        """The space's cell ``name``, at the input shape of its first placement, with the
        space's per-cell filters: its choices, graphs, topology and which choices pass."""
        cells = self.__dict__.setdefault("_cache_cells", {})  # a plain dict: every architecture asks
        cs = cells.get(name)
        if cs is None:
            shape = next((self.cell_shape[k] for k in self.instances if self.cell_of[k].name == name), None)
            if shape is None:
                raise KeyError(name)  # a cell the network does not place
            cs = cells[name] = CellSpace(self.ir.cells[name], shape, self.cell_requires, self.ir.unique)
        return cs

    def cell_count(self, cell: str) -> int:
        return radix_product(self.ir.cells[cell].radices())

    @_instance_cache(maxsize=65536)
    def cell_graph(self, cell: str, i: int) -> nx.DiGraph:
        """:meth:`CellSpace.graph`, remembered (the space's architectures share them)."""
        return self.cell(cell).graph(i)

    @_instance_cache(maxsize=65536)
    def cell_topology(self, cell: str, i: int) -> Topology:
        """:meth:`CellSpace.topology`, remembered."""
        return self.cell(cell).topology(i)

    def cell_metrics(self, cell: str, i: int) -> dict[str, int | float]:
        """The `require` metrics of one cell choice (docs/LANGUAGE.md)."""
        return self.cell(cell).metrics(i)

    # ---------------------------------------------------------------- filters at numeric values
    def value_digits(self) -> Iterator[tuple[int, ...]]:
        """Every combination of the numeric choices' digits, in index order (one empty tuple
        when the space has none)."""
        if radix_product(self.numeric_radices) > MAX_VALUE_TUPLES:
            raise SpaceError(f"space '{self.name}' has {radix_product(self.numeric_radices):,} combinations of numeric "
                             f"values; its filters are judged at each, which nflc refuses above {MAX_VALUE_TUPLES:,}",
                             hint="use fewer values per numeric choice")
        return itertools.product(*(range(r) for r in self.numeric_radices))

    def filters_at(self, digits: tuple[int, ...]) -> ValueFilters:
        """The space's filters at the numeric choices' values of ``digits`` (:class:`ValueFilters`)."""
        found = self.__dict__.setdefault("_cache_filters_at", {})
        view = found.get(digits)
        if view is None:
            if len(found) > 4096:  # many numeric values: the cells stay shared in self.cell_effects
                found.clear()
            view = found[digits] = self._filters_at(digits)
        return view

    def _filters_at(self, digits: tuple[int, ...]) -> ValueFilters:
        if not any(digits):  # the first values: the space's own IR and cells
            return share_cells(self, self.ir, {c.name: self.cell(c.name) for c in self.cell_of.values()})
        return filters_at_values(self, digits)

    def _valid_at(self, digits: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The choices each instance's cell may take under the per-cell filters at ``digits``."""
        view = self.filters_at(digits)
        return [view.cells[self.cell_of[k].name].valid for k in self.instances]

    def _candidate_count(self) -> int:
        """Architectures whose every cell passes the per-cell filters at its values (each
        distinct filter effect counted once, times how many value tuples have it)."""
        per_effect: dict[tuple, int] = {}
        total = 0
        for digits in self.value_digits():
            key = self.filters_at(digits).key
            n = per_effect.get(key)
            if n is None:
                n = per_effect[key] = math.prod(len(v) for v in self._valid_at(digits))
            total += n
        return total

    # ---------------------------------------------------------------- counting
    def raw_count(self) -> int:
        """Architectures before any filter (budgets, require, unique)."""
        return radix_product(self.radices)

    def count(self) -> int:
        """Exact number of architectures that pass every filter."""
        if not self.net_filters:
            if not self.cell_filters:
                return self.raw_count()
            return self._candidate_count()
        if self.raw_count() > ENUMERATION_LIMIT:
            raise SpaceError(
                f"space '{self.name}' has {self.raw_count():.3e} architectures before its budgets; counting them under "
                "a whole-network budget needs enumeration, which nflc refuses above "
                f"{ENUMERATION_LIMIT:,}", hint="estimate with 'nflc list --sample K' or drop the budget")
        return sum(1 for _ in self)

    def __iter__(self) -> Iterator[Architecture]:
        for index in self._candidate_indices():
            arch = Architecture(self, index)
            if arch.rejected_by is None:
                yield arch

    def _candidate_indices(self) -> Iterator[int]:
        """Raw indices in order whose every cell passes the per-cell filters at its values."""
        if not self.cell_filters:
            yield from range(self.raw_count())
            return
        inst_radix = self.numeric_radices + [radix_product(self.edge_radices[k]) for k in self.instances]
        for digits in self.value_digits():
            for combo in itertools.product(*self._valid_at(digits)):
                yield encode(digits + combo, inst_radix)

    def filters_reject_all(self, walk_limit: int = 20_000) -> Diagnostic | None:
        """A warning when the space's filters drop every architecture, or None: when some
        architecture passes, or when finding one would walk more than ``walk_limit``."""
        if not (self.cell_filters or self.net_filters):
            return None
        if self.cell_filters:
            candidates = self._candidate_count()
        else:
            candidates = self.raw_count()
        if candidates:
            if not self.net_filters or candidates > walk_limit or next(iter(self), None) is not None:
                return None
        return reject_all_warning(self.ir, self.raw_count(), next(self.rejections(limit=1)).rejection)

    def rejections(self, limit: int | None = None, walk_limit: int = REJECTION_WALK) -> Iterator[Rejected]:
        """Architectures the filters drop, with the reason (in raw order), found by examining
        at most ``walk_limit`` architectures (then a SpaceError says how far it got)."""
        if limit is not None and limit <= 0:
            return
        if not (self.cell_filters or self.net_filters):  # nothing can be rejected: no walk (DARTS has 10^18)
            return
        n = 0
        for index in range(self.raw_count()):
            if index >= walk_limit:
                raise SpaceError(f"stopped after examining {walk_limit:,} of the {self.raw_count():,} architectures of "
                                 f"space '{self.name}' ({n:,} rejected among them)",
                                 hint="the filters reject few of them; list fewer with --limit N")
            rejection = Architecture(self, index).rejected_by
            if rejection is not None:
                yield Rejected(index, rejection)
                n += 1
                if limit is not None and n >= limit:
                    return

    # ---------------------------------------------------------------- lookup and sampling
    def architecture(self, ident: str | int) -> Architecture:
        """An architecture by its id string or raw index (``nflc list`` shows both)."""
        if isinstance(ident, bool):
            raise SpaceError(f"not an architecture id: {ident!r}")
        if isinstance(ident, str) and ids.ASCII_INT.fullmatch(ident.strip()) and \
                len(ident.strip().lstrip("0")) > len(str(self.raw_count())):  # too long to be an index (or to be int()ed)
            raise SpaceError(f"index {ident.strip()[:20]}... ({len(ident.strip()):,} digits) is out of range: space "
                             f"'{self.name}' has indices 0..{self.raw_count() - 1}")
        if isinstance(ident, int) or (isinstance(ident, str) and ids.ASCII_INT.fullmatch(ident.strip())):
            index = int(ident)
            if not 0 <= index < self.raw_count():
                raise SpaceError(f"index {index} is out of range: space '{self.name}' has indices 0..{self.raw_count() - 1}")
            return Architecture(self, index)
        if not isinstance(ident, str):
            raise SpaceError(f"an architecture id is a string or an integer, not {type(ident).__name__}")
        if re.fullmatch(r"\s*-[0-9]+\s*", ident):
            raise SpaceError(f"index {ident.strip()} is out of range: space '{self.name}' has indices 0..{self.raw_count() - 1}")
        return Architecture(self, self.parse_id(ident))

    def select(self, spec: str | None, seed: int = 0) -> list[Architecture] | None:
        """``all`` (None: the whole space), ``sample:K`` or ``ID,ID,...``: :func:`nflc.space.select.select`."""
        return select(self, spec, seed)

    def sample(self, k: int, seed: int = 0, max_tries: int = 100_000) -> list[Architecture]:
        """k distinct architectures drawn uniformly from the filtered space (seeded).

        Draws raw indices uniformly without materialising the space and keeps those that
        pass the filters, which is uniform over the filtered space.
        """
        if k < 0:
            raise SpaceError("the sample size must be non-negative")
        rng = random.Random(seed)
        if not self.net_filters and any(self.cell(self.cell_of[n].name).node_enumeration is not None
                                        for n in self.instances):
            # node cells keep a tiny share of their raw choices (NAS-Bench-101: 1 in 1,200):
            # draw from the product of the kept cells, which is uniform over the filtered space
            inst_radix = self.numeric_radices + [radix_product(self.edge_radices[k]) for k in self.instances]
            blocks = [(digits, valid, math.prod(len(v) for v in valid))
                      for digits in self.value_digits() for valid in [self._valid_at(digits)]]
            n_valid = sum(size for _, _, size in blocks)
            if k > n_valid:
                raise SpaceError(f"asked for {k} architectures but space '{self.name}' has only {n_valid}")
            return [Architecture(self, nth_candidate(blocks, j, inst_radix)) for j in rng.sample(range(n_valid), k)]
        total = self.raw_count()
        seen: set[int] = set()
        out: list[Architecture] = []
        tries = 0
        while len(out) < k:
            if len(seen) >= total:
                break
            tries += 1
            if tries > max_tries + 50 * k:
                raise SpaceError(f"only {len(out)} of {k} samples passed the filters after {tries - 1} draws",
                                 hint="the filters keep very few architectures; enumerate with 'nflc list' instead")
            i = rng.randrange(total)
            if i in seen:
                continue
            seen.add(i)
            a = Architecture(self, i)
            if a.rejected_by is None:
                out.append(a)
        if len(out) < k:
            raise SpaceError(f"asked for {k} architectures but space '{self.name}' has only {len(out)}")
        return out

    # ---------------------------------------------------------------- ids (nflc.space.ids)
    def format_id(self, choices: dict[str, tuple[int, ...]], numeric: tuple[int, ...] = ()) -> str:
        return ids.format_id(self, choices, numeric)

    def parse_id(self, text: str) -> int:
        """Raw index of an id string: the numeric choices' values joined by ':' (when the
        space has numeric choices), then NAS-Bench-201's form per cell, ';' between parts."""
        return ids.parse_id(self, text)

    def example_id(self) -> str:
        return ids.example_id(self)

    # ---------------------------------------------------------------- costs and variants
    def cost_model(self, overrides: dict[str, int] | None = None) -> CostModel:
        # a value the space's own IR already has needs no lowering (numeric choices at their first value)
        key = tuple(sorted((k, v) for k, v in (overrides or {}).items() if self.ir.constants.get(k) != v))
        if key not in self._cost_models:
            if len(self._cost_models) > 4096:  # numeric choices: one lowering per value tuple
                self._cost_models = {(): self._cost_models[()]}
            if self.source is None:
                raise SpaceError("this space was built without its source; it cannot be re-lowered at another width")
            ir = relower(self.source, dict(key))
            ir = apply_options(ir, **self.options) if self.options else ir  # a fresh IR: no copy needed
            self._cost_models[key] = CostModel(ir)
        return self._cost_models[key]

    @functools.cached_property
    def spec_hash(self) -> str:
        """SHA-256 of the space's meaning (its IR without source positions): comments and
        formatting do not change it; any op, edge, constant or option does."""

        def strip(o: Any) -> Any:
            if isinstance(o, dict):
                return {k: strip(v) for k, v in o.items() if k != "span" and k != "file"}
            if isinstance(o, list):
                return [strip(v) for v in o]
            return o

        text = json.dumps(strip(self.ir.model_dump()), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def with_options(self, bias: bool | None = None, prune: bool | None = None, init: str | None = None) -> Space:
        """The same space with its bias / prune / init options changed (a new Space)."""
        opts = {**self.options, **{k: v for k, v in {"bias": bias, "prune": prune, "init": init}.items() if v is not None}}
        return Space(self.base_ir, self.source, self.warnings, opts)

    @_instance_cache(maxsize=16)
    def at_width(self, width: int) -> Space:
        """The same space lowered again with its ``width`` constant set to ``width``: its
        architecture of the same index has the same id (:meth:`Architecture.to_module`)."""
        return Space(self.lowered({"width": width}), self.source, self.warnings)

    def lowered(self, overrides: dict[str, int] | None = None) -> SpaceIR:
        return self.cost_model(overrides).ir

    def __repr__(self) -> str:
        return f"<Space {self.name}: {self.raw_count()} architectures before filters>"
