"""The network pass: the macro network -> stages (:data:`~nflc.ir.model.StageIR`) and cell instances.

Walks the network expression with its shape: primitive ops are bound and costed, cells are
placed (checked at that shape, parameterized ones lowered for their arguments), repeats
decide which placements share one choice, and two-input cells get DARTS's preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nflc import ops
from nflc.errors import Span, did_you_mean
from nflc.ir.cells import Cells, cell_variant
from nflc.ir.checks import check_cell_shape
from nflc.ir.context import MAX_NESTING, MAX_STAGES, LowerContext, to_source_span
from nflc.ir.evaluate import check_repeat, expand_call, shape_message
from nflc.ir.model import CellIR, CellStage, PrimIR, PrimStage, StageIR
from nflc.syntax import ast

Shape = tuple[int, ...]
# None: every placement of a cell shares one choice (the default); ("independent",): every
# placement chooses on its own; ("shared", k): placements in shared scope k (a `shared`
# repeat inside an `independent` one) share one choice, apart from the placements outside it
Mode = tuple[Any, ...] | None


@dataclass
class Network:
    """The network pass's result."""

    stages: list[StageIR]
    instances: dict[str, str]  # choice-carrying cell instance -> the cell it places, in network order


def lower_network(ctx: LowerContext, input_shape: Shape | None, cells: Cells) -> Network | None:
    """The space's network (None after an error, or when the input or a cell failed)."""
    sd = ctx.sd
    nets = [i for i in sd.items if isinstance(i, ast.NetworkDef)]
    if not nets:
        ctx.bag.error(f"space '{sd.name}' has no network", sd.span,
                      "add e.g. 'network = flatten >> linear(width) >> relu >> cell >> linear(classes)'")
    for extra in nets[1:]:
        ctx.bag.error("network is defined twice", extra.span, "keep one 'network = ...'")
    if not nets or input_shape is None or cells.plain is None:
        return None
    net = ctx.attempt(_Walk(ctx, cells, cells.plain).run, nets[0], input_shape)
    if net is None and not ctx.overrides:  # (a lowering again at other constants reports its first error only)
        _lower_unplaced(ctx, cells, nets[0].body)
    return net


def _lower_unplaced(ctx: LowerContext, cells: Cells, body: ast.OpTerm) -> None:
    """After the walk stopped at an error: the parameterized cells it did not reach, lowered
    with their first placement's arguments, so their own mistakes are reported in the same
    run (a cell's arguments come from constants, not from the shapes the walk computes)."""
    todo: list[ast.OpTerm] = [body]
    first: dict[str, ast.OpCall] = {}
    while todo:
        t = todo.pop(0)
        if isinstance(t, ast.OpSeq):
            todo[:0] = t.items
        elif isinstance(t, ast.Repeat):
            todo.insert(0, t.body)
        elif t.name in cells.defs and cells.defs[t.name].params is not None and t.name not in ctx.scope.ops:
            first.setdefault(t.name, t)
    for name, call in first.items():
        if name not in cells.tried:
            ctx.attempt(cell_variant, ctx, cells, cells.defs[name], name, call)


class _Walk:
    """One walk over a network expression (the state its recursion shares)."""

    def __init__(self, ctx: LowerContext, cells: Cells, plain: dict[str, CellIR]):
        self.ctx, self.cells, self.plain = ctx, cells, plain
        self.stages: list[StageIR] = []
        self.instances: dict[str, str] = {}
        self.scopes: dict[tuple[int, str], str] = {}  # (shared scope, cell) -> its instance
        self.n_scopes = 0
        self.prev_cell_input: Shape | None = None  # a two-input cell's X0: the previous cell's input
        self.shapes_checked: dict[tuple[str, Shape], bool] = {}  # (cell, input shape) -> passed

    def run(self, net: ast.NetworkDef, input_shape: Shape) -> Network:
        self.visit(net.body, tuple(input_shape), None)
        return Network(self.stages, self.instances)

    def visit(self, term: ast.OpTerm, shape: Shape, mode: Mode) -> Shape:
        ctx = self.ctx
        ctx.depth += 1
        try:
            if ctx.depth > MAX_NESTING:
                ctx.fail(f"the network nests more than {MAX_NESTING:,} levels deep", term.span, "flatten the expression")
            return self.visit_term(term, shape, mode)
        finally:
            ctx.depth -= 1

    def visit_term(self, term: ast.OpTerm, shape: Shape, mode: Mode) -> Shape:
        ctx, stages = self.ctx, self.stages
        if isinstance(term, ast.OpSeq):
            for t in term.items:
                shape = self.visit(t, shape, mode)
            return shape
        if isinstance(term, ast.Repeat):
            check_repeat(ctx, term)
            if term.mode is not None and not _mentions_cell(term.body, ctx.cell_defs):
                ctx.fail(f"'{term.mode}' repeats need a cell to repeat", term.span,
                         f"'{term.mode}' says whether cell placements share their choice; drop it here")
            if term.mode == "independent":
                mode = ("independent",)
            elif term.mode == "shared" and mode is not None:
                mode = ("shared", self.n_scopes)
                self.n_scopes += 1
            for _ in range(term.count):
                shape = self.visit(term.body, shape, mode)
                if len(stages) > MAX_STAGES:
                    ctx.fail(f"the network has more than {MAX_STAGES:,} stages", term.span, "lower the repeat count")
            return shape
        name = term.name
        if name in ctx.cell_defs and name not in ctx.scope.ops:
            return self.place(term, shape, mode)
        if name == "cell" and not ctx.cell_defs:
            ctx.fail("the network uses 'cell' but the space defines no cell", term.span,
                     "add 'cell { nodes 4  edge * : zero | skip | linear }'")
        if name not in ctx.scope.ops and name not in ops.PRIMS and name not in ctx.cell_defs:
            cands = list(ctx.cell_defs) + list(ctx.scope.ops) + list(ops.PRIMS)
            ctx.fail(f"unknown op or cell '{name}'", term.span, did_you_mean(name, cands))
        for p in expand_call(ctx, term, {}, ()):
            p = ops.bind(p, shape)
            try:
                out_shape, params, flops = ops.seq_cost((p,), shape)
            except ops.ShapeError as exc:
                msg, hint = shape_message(exc, shape)
                ctx.fail(msg, term.span, hint)
            stages.append(PrimStage(prim=PrimIR(name=p.name, args=dict(p.args)), shape_in=list(shape),
                                    shape_out=list(out_shape), params=params, flops=flops, span=to_source_span(term.span)))
            if len(stages) > MAX_STAGES:
                ctx.fail(f"the network has more than {MAX_STAGES:,} stages", term.span, "lower its repeat counts")
            shape = out_shape
        return shape

    def place(self, term: ast.OpCall, shape: Shape, mode: Mode) -> Shape:
        """A placement of a cell: its instance, its shape check, its stage."""
        ctx, name, instances = self.ctx, term.name, self.instances
        cd = ctx.cell_defs[name]
        if cd.params is None and term.has_parens:
            ctx.fail(f"cell '{name}' takes no arguments", term.span,
                     f"give it parameters to take some: 'cell {name}(c) {{ ... }}'")
        ctx.used.add(name)
        if cd.params is None:
            if name not in self.plain:  # its own errors are reported
                ctx.stop()
            cell = self.plain[name]
        else:
            cell = cell_variant(ctx, self.cells, cd, name, term)
        if mode is None:
            inst = name
        elif mode[0] == "shared" and (mode[1], name) in self.scopes:
            inst = self.scopes[mode[1], name]
        else:
            inst = f"{name}#{len(instances)}"
            if mode[0] == "shared":
                self.scopes[mode[1], name] = inst
        if inst in instances and instances[inst] != cell.name:
            first = self.cells.variants.get(instances[inst]) or self.plain[instances[inst]]
            if first.choice_structure() != cell.choice_structure():
                ctx.fail(f"the placements of cell '{name}' share one choice but their edges differ "
                         f"({instances[inst]} and {cell.name}: nodes, edges, ops or pick)", term.span,
                         "keep the node count, the edges and 'pick' independent of the cell's arguments, or "
                         "place them in an 'independent' repeat")
        instances.setdefault(inst, cell.name)
        check_cell_shape(ctx, self.shapes_checked, cell, shape, term.span)
        out_shape = cell.output_shape(shape)
        extra = _preprocess(ctx, cell, self.prev_cell_input or shape, shape, term.span) if cell.inputs > 1 else {}
        self.stages.append(CellStage(cell=cell.name, instance=inst, shape_in=list(shape),
                                     shape_out=list(out_shape), span=to_source_span(term.span), **extra))
        self.prev_cell_input = shape
        return out_shape


def _preprocess(ctx: LowerContext, cell: CellIR, prev: Shape, shape: Shape, span: Span) -> dict[str, Any]:
    """DARTS's preprocessing of a two-input cell's inputs to its channels: X1 (its input)
    relu >> conv1x1 >> batchnorm; X0 (the previous cell's input) the same when its map
    has X1's size, a stride-2 factorized_reduce when it is twice as large."""
    c = cell.channels
    assert c is not None  # a two-input cell has channels (the cells pass checks)
    prev, shape = tuple(prev), tuple(shape)
    if len(shape) != 3 or len(prev) != 3:
        ctx.fail(f"two-input cell '{cell.name}' needs image-shaped inputs [channels, height, width], got "
                 f"{list(shape)}", span)
    conv = ops.preprocess_prims(c)
    if prev[1:] == shape[1:]:
        pre0 = conv
    elif prev[1:] == tuple(2 * n for n in shape[1:]):
        pre0 = ops.preprocess_prims(c, halve=True)
    else:
        ctx.fail(f"cell '{cell.name}' takes X0 from the input of the cell before it, {list(prev)}, whose map is "
                 f"neither its input's {list(shape)} nor twice as large", span,
                 "between two-input cells only a reduction (halving) may change the map size")
    params = flops = 0
    pre = []
    for prims, at in ((pre0, prev), (conv, shape)):
        try:
            out, p, f = ops.seq_cost(prims, at)
        except ops.ShapeError as exc:
            msg, hint = shape_message(exc, at)
            ctx.fail(f"preprocessing an input of cell '{cell.name}': {msg}", span, hint)
        assert out == (c, *shape[1:])
        params, flops = params + p, flops + f
        pre.append([PrimIR(name=q.name, args=dict(q.args)) for q in prims])
    return {"shape_prev": list(prev), "preprocess": pre, "params": params, "flops": flops}


def _mentions_cell(term: ast.OpTerm, cells: dict[str, ast.CellDef]) -> bool:
    todo = [term]
    while todo:
        t = todo.pop()
        if isinstance(t, ast.OpSeq):
            todo.extend(t.items)
        elif isinstance(t, ast.Repeat):
            todo.append(t.body)
        elif t.name in cells:
            return True
    return False
