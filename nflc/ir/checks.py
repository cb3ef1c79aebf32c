"""The checks pass, and the checks the other passes share.

:func:`check_space` runs after the network: budgets and constraints, the space's broken
but unused constants and ops, and the warnings. :func:`check_cell_shape` is called by the
network pass where a cell is placed (only there is its input shape known).
:func:`check_lint` turns an IR lint violation into an internal error.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, cast

from nflc import ops
from nflc.errors import Span, did_you_mean
from nflc.ir.context import Abort, LowerContext, to_source_span, to_span
from nflc.ir.evaluate import const, eval_int, evaluate, shape_message, show
from nflc.ir.model import BudgetIR, CellIR, RequireIR, StageIR
from nflc.ir.scopes import check_calls, own_names
from nflc.metrics import BUDGET_METRICS, REQUIRE_METRICS
from nflc.syntax import ast


class IRLintError(AssertionError):
    """A pass produced IR that breaks the IR's invariants: a bug in nflc, not in the spec."""


def check_lint(violations: list[str], what: str) -> None:
    """Raise :class:`IRLintError` when ``violations`` (of :meth:`SpaceIR.lint` and its parts)
    is not empty; ``what`` names the IR checked."""
    if violations:
        raise IRLintError(f"internal error: the IR of {what} is malformed (a bug in nflc, please report it): "
                          + "; ".join(violations))


@dataclass
class Constraints:
    """The budgets, constraints and `unique` of a space (those without errors)."""

    budgets: list[BudgetIR]
    requires: list[RequireIR]
    unique: bool


def check_space(ctx: LowerContext, network: list[StageIR] | None) -> Constraints:
    items = ctx.sd.items
    budgets = [b for b in (ctx.attempt(_budget, ctx, b) for b in items if isinstance(b, ast.Budget)) if b]
    for scaled in [b for b in items if isinstance(b, ast.Budget) and b.scale][1:]:
        ctx.bag.error("only one budget may scale a constant", scaled.span, "keep one 'scale' budget")
    requires = [r for r in (ctx.attempt(_require, ctx, r) for r in items if isinstance(r, ast.Require)) if r]
    uniques = [u for u in items if isinstance(u, ast.Unique)]
    for extra in uniques[1:]:
        ctx.bag.warning("'unique' is given more than once", extra.span, "keep one 'unique'")
    # evaluate every constant once, so a broken unused one is still reported
    used = set(ctx.used)
    for name in own_names(ctx.sd, ctx.scope, "consts"):
        ctx.attempt(const, ctx, name, ctx.scope.consts[name].span)
    ctx.used = used
    unused = [ctx.scope.ops[name] for name in own_names(ctx.sd, ctx.scope, "ops") if name not in ctx.used]
    known = set(ctx.scope.ops) | set(ops.PRIMS) if unused else set()
    for d in unused:  # never expanded, so never checked
        check_calls(d, known, ctx.bag, set(ctx.cell_defs))
    if ctx.warn:
        _warnings(ctx, network)
    return Constraints(budgets, requires, bool(uniques))


def _budget(ctx: LowerContext, b: ast.Budget) -> BudgetIR:
    if b.metric not in BUDGET_METRICS:
        ctx.fail(f"unknown budget metric '{b.metric}'", b.metric_span,
                 did_you_mean(b.metric, BUDGET_METRICS) or "budgets are on params or flops")
    value = eval_int(ctx, b.value, "the budget", minimum=1)
    tol: int | Fraction = 0
    if b.tolerance is not None:
        t = evaluate(ctx, b.tolerance)
        if isinstance(t, bool) or t < 0:
            ctx.fail("the tolerance must be a non-negative number", b.tolerance.span)
        tol = Fraction(value) * Fraction(t) / 100 if b.percent else Fraction(t)
    if b.scale is not None:
        consts = ctx.scope.consts
        if b.scale not in consts:
            ctx.fail(f"'scale {b.scale}': no constant named '{b.scale}'", b.scale_span,
                     did_you_mean(b.scale, consts) or "scale names the constant to solve for, e.g. 'scale width'")
        if b.scale in consts and consts[b.scale].options is not None:
            ctx.fail(f"'scale {b.scale}': '{b.scale}' is a numeric choice, not a constant to solve for",
                     b.scale_span, "scale a plain constant ('width 64')")
        v = const(ctx, b.scale, b.scale_span)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            ctx.fail(f"'scale {b.scale}': the constant must be a positive whole number, got {show(v)}",
                     b.scale_span, "scale solves for a width or a count, e.g. 'width 64 ... scale width'")
        if b.cmp != "==":
            ctx.fail("'scale' solves for a target, so the budget must use '=='", b.span,
                     f"write 'budget {b.metric} == {b.value.text if isinstance(b.value, ast.Num) else '...'} +- 2% scale {b.scale}'")
        ctx.used.add(b.scale)
    metric = cast(Literal["params", "flops"], b.metric)  # one of BUDGET_METRICS (checked above)
    return BudgetIR(metric=metric, cmp=b.cmp, value=value, tolerance=tol, scale=b.scale, span=to_source_span(b.span))


def _require(ctx: LowerContext, r: ast.Require) -> RequireIR:
    if r.metric not in REQUIRE_METRICS:
        ctx.fail(f"unknown constraint metric '{r.metric}'", r.metric_span,
                 did_you_mean(r.metric, REQUIRE_METRICS) or "one of: " + ", ".join(REQUIRE_METRICS))
    v = evaluate(ctx, r.value)
    if isinstance(v, bool):
        ctx.fail("a constraint compares with a number", r.value.span)
    return RequireIR(metric=r.metric, cmp=r.cmp, value=v, span=to_source_span(r.span))


def _warnings(ctx: LowerContext, network: list[StageIR] | None) -> None:
    scope, bag = ctx.scope, ctx.bag
    for name in own_names(ctx.sd, scope, "ops"):
        if name not in ctx.used:
            bag.warning(f"op '{name}' is defined but never used", scope.ops[name].name_span)
    for name in own_names(ctx.sd, scope, "consts"):
        if name not in ctx.used:
            bag.warning(f"constant '{name}' is defined but never used", scope.consts[name].span)
    for name, cd in ctx.cell_defs.items():
        if name in scope.ops:  # the network's `name` is the op: `op cell = relu` hides the cell
            d = scope.ops[name]
            where = cd.span if scope.op_origin[name] == "prelude" else d.name_span
            bag.warning(f"op '{name}' hides the cell '{name}': the network's '{name}' is the op, so the cell "
                        "is never placed", where, "rename the op or the cell")
        elif name in ops.PRIMS:
            bag.warning(f"cell '{name}' shadows the builtin op '{name}': the network's '{name}' is the cell",
                        cd.span, f"rename the cell, e.g. 'cell my_{name}'")
        elif network is not None and name not in ctx.used:
            bag.warning(f"cell '{name}' is defined but the network never uses it", cd.span)
    if network and "classes" in ctx.const_values:
        k = ctx.const_values["classes"]
        if network[-1].shape_out != [k]:
            net = next(i for i in ctx.sd.items if isinstance(i, ast.NetworkDef))
            bag.warning(f"the network ends in shape {network[-1].shape_out}, not [classes] = [{k}]", net.span,
                        "end it with 'linear(classes)'")


# ------------------------------------------------------------------ a cell placed at a shape


def check_cell_shape(ctx: LowerContext, checked: dict[tuple[str, tuple[int, ...]], bool], cell: CellIR,
                     shape: tuple[int, ...], span: Span) -> None:
    """Check that every op of ``cell`` takes the shape of its node when the cell's input has
    ``shape`` (once per cell and shape: ``checked`` remembers the outcome)."""
    key = (cell.name, tuple(shape))
    ok = checked.get(key)
    if ok is None:
        try:
            _check_cell_shape_once(ctx, cell, shape, span)
            ok = checked[key] = True
        except Abort:
            ok = checked[key] = False
    if not ok:
        ctx.stop()


def _check_cell_shape_once(ctx: LowerContext, cell: CellIR, shape: tuple[int, ...], span: Span) -> None:
    bad = False
    if cell.is_node_cell:  # node ops keep the node's shape (its channels vary per architecture)
        if len(shape) != 3:
            ctx.fail(f"node cell '{cell.name}' needs an image-shaped input [channels, height, width], "
                     f"got {list(shape)}", span)
        seen: set[object] = set()
        for nd in cell.node_ops:
            for c in nd.choices:
                if c.span in seen:  # `node *` shares its choices: each is reported once
                    continue
                seen.add(c.span)
                where = to_span(c.span) or span
                for inner in (tuple(cell.node_shapes(shape)[-1]), (1, *shape[1:])):
                    try:
                        out = ops.seq_cost(c.prim_tuple(), inner, inner[0])[0]
                    except ops.ShapeError as exc:
                        msg, hint = shape_message(exc, inner)
                        ctx.bag.error(f"node op '{c.label}' in cell '{cell.name}' cannot take {list(inner)}: {msg}",
                                      where, hint)
                        bad = True
                        break
                    if tuple(out) != inner:
                        ctx.bag.error(f"node op '{c.label}' in cell '{cell.name}' changes the shape {list(inner)} "
                                      f"-> {list(out)}", where, "a node op must keep its node's shape, whose "
                                      "channels vary per architecture: leave 'out' to default to them")
                        bad = True
                        break
        if bad:
            ctx.stop()
        return
    nodes = cell.node_shapes(shape)
    reported: set[tuple[object, ...]] = set()
    for e in cell.edges:
        src, want = nodes[e.src], nodes[e.dst]
        for c in e.choices:  # `edge *` shares its choices: each is reported once
            where = to_span(c.span) or span
            prims = c.prim_tuple()
            if any(p.name == "zero" for p in prims):
                continue  # contributes nothing, of whatever shape the node has
            key = (c.span, src)
            if key in reported:
                continue
            try:
                out = ops.seq_cost(prims, tuple(src), cell.channels)[0]
            except ops.ShapeError as exc:
                msg, hint = shape_message(exc, src)
                what = "the cell's shape" if src == nodes[0] else f"node X{e.src}'s shape"
                ctx.bag.error(f"op '{c.label}' in cell '{cell.name}' cannot take {what} {list(src)}: {msg}", where, hint)
                reported.add(key)
                bad = True
                continue
            if cell.channels is not None and list(out) != list(want):
                reported.add(key)
                ctx.bag.error(f"op '{c.label}' on edge {e.src} -> {e.dst} of cell '{cell.name}' gives {list(out)} "
                              f"from {list(src)}, but node X{e.dst} has shape {list(want)}", where,
                              f"every non-zero edge into a node must give the node's shape ({cell.channels} "
                              "channels, the cell's 'channels'); leave 'out' to default to it")
                bad = True
                continue
            if cell.channels is None and list(out) != list(want):
                # nodes keep the cell's shape (halved past a reduction cell's inputs)
                what = f"gives {list(out)} from {list(src)}, but node X{e.dst} has shape {list(want)}" \
                    if cell.stride > 1 else f"changes the shape {list(shape)} -> {list(out)}"
                ctx.bag.error(f"op '{c.label}' in cell '{cell.name}' {what}",
                              where, "cell nodes are sums of their edges, so every edge op must keep the shape")
                bad = True
    if bad:
        ctx.stop()
