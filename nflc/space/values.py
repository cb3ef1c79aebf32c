"""A space's filters at each combination of its numeric choices' values (issue #28).

A `require` or `budget` bound, a constant defined from a numeric choice, or an op's width
inside a cell may use a numeric choice, so each architecture is judged with the filters as
they read at its own values: the space lowered there. Cells whose filters have the same
effect at two values (:meth:`CellSpace.effect_key`) share one :class:`CellSpace`, so each
distinct effect is walked once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nflc.errors import SpaceError
from nflc.ir.model import BudgetIR, SpaceIR
from nflc.space.cell import CellSpace
from nflc.space.filters import is_cell_require
from nflc.space.radix import decode, encode

if TYPE_CHECKING:  # the space holds its filters; only the type is needed here
    from nflc.space.space import Space


@dataclass(frozen=True)
class ValueFilters:
    """A space's filters at one combination of its numeric values. ``ir``: the space lowered
    at those values; ``cells``: each placed cell (by its name at the first values) with its
    per-cell filters; ``key``: their effect (equal keys keep the same architectures)."""

    ir: SpaceIR
    cells: dict[str, CellSpace]
    key: tuple

    @property
    def scale_budget(self) -> BudgetIR | None:
        return next((b for b in self.ir.budgets if b.scale), None)


def filters_at_values(space: Space, digits: tuple[int, ...]) -> ValueFilters:
    """The filters of ``space`` at the values of the numeric digits ``digits``."""
    values = {k: vs[d] for (k, vs), d in zip(space.numeric.items(), digits, strict=True)}
    ir = space.lowered(values)
    # keyed by the cell's name at the first values: a parameterized cell's variant is named
    # by its arguments (`n(w=4)`), which a numeric choice may change
    placed: dict[str, tuple[str, tuple[int, ...]]] = {}
    for st in ir.network:
        if st.kind == "cell" and st.instance is not None:
            placed.setdefault(space.cell_of[st.instance].name, (ir.instance_cell[st.instance], tuple(st.shape_in)))
    requires = [r for r in ir.requires if is_cell_require(r)]
    cells = {name: CellSpace(ir.cells[cell], shape, requires, ir.unique) for name, (cell, shape) in placed.items()}
    for name, cs in cells.items():
        if cs.radices != space.cell(name).radices:  # lowering checks this; an index relies on it
            shown = ", ".join(f"{k} = {v}" for k, v in values.items())
            raise SpaceError(f"cell '{name}' has another number of choices at {shown} than at the numeric choices' "
                             "first values", hint="a numeric choice may set widths and bounds, not how many nodes "
                             "or edges a cell has")
    return share_cells(space, ir, cells)


def share_cells(space: Space, ir: SpaceIR, cells: dict[str, CellSpace]) -> ValueFilters:
    """:class:`ValueFilters` whose cells are the space's shared one per filter effect."""
    shared = {}
    for name, cs in cells.items():
        shared[name] = space.cell_effects.setdefault(cs.effect_key(), cs) if space.cell_filters and space.numeric else cs
    return ValueFilters(ir, shared, tuple(id(shared[n]) for n in sorted(shared)))


def nth_candidate(blocks: list, j: int, inst_radix: list[int]) -> int:
    """The raw index of candidate ``j`` (in order) of ``blocks``: (digits, valid choices per
    instance, their number) per combination of numeric values."""
    for digits, valid, size in blocks:
        if j < size:
            combo = decode(j, [len(v) for v in valid])
            return encode(digits + tuple(v[d] for v, d in zip(valid, combo, strict=True)), inst_radix)
        j -= size
    raise IndexError(j)
