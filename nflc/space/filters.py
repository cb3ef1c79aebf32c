"""A space's filters: budgets, ``require`` and ``unique``, and why each drops an architecture.

A filter's verdict is a :class:`Rejection`: which statement (``kind``), on which metric, the
comparison, the bound and the value found; ``str()`` gives the message ``nflc list
--rejected`` prints. The metrics themselves are :mod:`nflc.metrics`'s registry.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Literal, Mapping, Sequence

from nflc.errors import Diagnostic, Span
from nflc.ir.evaluate import show
from nflc.ir.model import BudgetIR, RequireIR, SpaceIR
from nflc.metrics import NETWORK_METRICS

Comparison = Literal["<=", ">=", "==", "!=", "<", ">"]
Number = int | float | Fraction  # bounds and tolerances are exact (int, Fraction); some metrics are floats
COMPARE: dict[str, Callable[[Number, Number], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "==": operator.eq, "!=": operator.ne}


def _num(v: Number | None) -> str:
    """A bound or value in a message: ints with thousands separators, exact fractions as
    the spec writes them (never rounded through a float: 2**53 + 1 stays 9,007,199,254,740,993)."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, Fraction):
        return f"{v.numerator:,}" if v.denominator == 1 else show(v)
    return f"{v:g}"


@dataclass(frozen=True)
class Rejection:
    """Why the filters drop an architecture.

    ``kind``: ``"budget"``, ``"require"``, ``"unique"`` (an earlier cell choice computes the
    same function: ``detail`` is its id) or ``"no_path"`` (a node cell whose output no
    path reaches). ``cell``: the cell a per-cell filter judged. A budget that solves a
    constant (``scale width``) and finds no value in tolerance says why in ``detail``.
    """

    kind: Literal["budget", "require", "unique", "no_path"]
    metric: str | None = None
    comparison: str | None = None
    bound: Number | None = None
    value: Number | None = None
    cell: str | None = None
    detail: str | None = None
    tolerance: Number | None = None  # a scaled budget's, when the nearest value misses it

    def __str__(self) -> str:
        if self.kind == "unique":
            return f"unique: cell is isomorphic to the earlier {self.detail}"
        if self.kind == "no_path":
            return f"node cell '{self.cell}' has no input-output path (its output would be undefined)"
        if self.kind == "budget":
            head = f"budget {self.metric} {self.comparison} {_num(self.bound)}"
            if self.tolerance is not None:
                head += f" +- {_num(self.tolerance)}"
            return f"{head}: {self.detail}" if self.detail else f"{head}: has {_num(self.value)}"
        if self.cell is not None:
            return (f"require {self.metric} {self.comparison} {_num(self.bound)}: cell '{self.cell}' has "
                    f"{self.metric} = {_num(self.value)}")
        return f"require {self.metric} {self.comparison} {_num(self.bound)}: has {_num(self.value)}"


@dataclass(frozen=True)
class Rejected:
    """An architecture the filters drop (by raw index), and why."""

    index: int
    rejection: Rejection

    @property
    def reason(self) -> str:
        return str(self.rejection)


def is_cell_require(r: RequireIR) -> bool:
    """Whether a `require` judges every cell (a cell metric), not the whole network."""
    return r.metric not in NETWORK_METRICS


def cell_rejection(cell: str, requires: Sequence[RequireIR], values: Mapping[str, Number]) -> Rejection | None:
    """The first cell `require` that the cell's metric ``values`` fail, or None."""
    for r in requires:
        v = values[r.metric]
        if not COMPARE[r.cmp](v, r.value):
            return Rejection("require", r.metric, r.cmp, r.value, v, cell=cell)
    return None


def network_rejection(params: int, flops: int, budgets: Sequence[BudgetIR], requires: Sequence[RequireIR]) -> Rejection | None:
    """The first budget, then network `require`, that a network of this cost fails, or None."""
    values = {"params": params, "flops": flops}
    for b in budgets:
        v = values[b.metric]
        ok = abs(v - b.value) <= b.tolerance if b.cmp == "==" else COMPARE[b.cmp](v, b.value)
        if not ok:
            return Rejection("budget", b.metric, b.cmp, b.value, v)
    for r in requires:
        if r.metric in NETWORK_METRICS and not COMPARE[r.cmp](values[r.metric], r.value):
            return Rejection("require", r.metric, r.cmp, r.value, values[r.metric])
    return None


def solve_scale(b: BudgetIR, base: int, metric_at: Callable[[int], int | None]) -> tuple[dict[str, int], Rejection | None]:
    """The integer value of the constant ``b.scale`` (``base`` in the spec) whose cost
    ``metric_at(value)`` is nearest the budget's target, and a rejection when it is out of
    tolerance. ``metric_at`` is None where the network cannot be built."""
    name = b.scale
    assert name is not None  # a scaling budget names its constant

    def miss(detail: str, value: int | None = None, tolerance: Number | None = None) -> Rejection:
        return Rejection("budget", b.metric, "==", b.value, value, detail=detail, tolerance=tolerance)

    # The search doubles up to the target itself (issue #28: it once stopped at 2**40 without
    # a word): every op the constant widens costs at least one parameter (or multiply-add) per
    # unit, so no larger value can come nearer; a cost that does not grow is named below.
    limit = max(base, 1, b.value + math.ceil(b.tolerance)) * 2
    lo, hi = 1, max(base, 1)
    while (m := metric_at(hi)) is not None and m < b.value and hi < limit:
        lo, hi = hi, hi * 2
    if metric_at(hi) is None:
        return {}, miss(f"the network cannot be built at {name} = {hi}")
    while hi - lo > 1:  # smallest w with metric(w) >= target
        mid = (lo + hi) // 2
        m = metric_at(mid)
        if m is not None and m >= b.value:
            hi = mid
        else:
            lo = mid
    cands = [(abs(m - b.value), w, m) for w in {lo, hi} if (m := metric_at(w)) is not None]
    if not cands:
        return {}, miss(f"no {name} builds the network")
    dist, w, m = min(cands)
    if dist > b.tolerance:
        if m < b.value and w == hi:
            return {name: w}, miss(f"no {name} up to {w:,} reaches it (searched 1 to {w:,}; the cost does not grow "
                                   f"with {name}): {name} = {w} gives {m:,}", m, b.tolerance)
        return {name: w}, miss(f"the nearest {name} = {w} gives {m:,}", m, b.tolerance)
    return {name: w}, None


def reject_all_warning(ir: SpaceIR, raw_count: int, first: Rejection) -> Diagnostic:
    """The warning that a space's filters drop every architecture, at the statement that
    dropped the first one."""
    stmts: Sequence[BudgetIR | RequireIR] = (ir.budgets if first.kind == "budget" else
                                             ir.requires if first.kind == "require" else [])
    span = next((b.span for b in stmts if b.metric == first.metric), None)
    return Diagnostic("warning", f"the filters of space '{ir.name}' reject all {raw_count:,} architectures "
                      f"(the first: {first})",
                      Span(span.file, span.line, span.column, span.end_line, span.end_column) if span else None,
                      f"loosen the filters; 'nflc list {ir.file} --rejected' shows why each architecture is dropped")
