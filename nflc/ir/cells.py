"""The cells pass: cell definitions -> :class:`CellIR`.

Edge cells (`edge * : ...`), node cells (NAS-Bench-101's `node * : ...`), DARTS's cells
(`inputs 2`, `pick K`, `output concat`, `stride 2`) and parameterized cells, which are
lowered once per argument tuple where the network places them (:func:`cell_variant`).
Every cell lowered without an error is linted (:meth:`CellIR.lint`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nflc import ops
from nflc.errors import Span, did_you_mean
from nflc.ir.checks import check_lint
from nflc.ir.context import LowerContext, to_source_span, to_span
from nflc.ir.evaluate import Local, bind_args, eval_int, expand_seq, show
from nflc.ir.model import CellIR, ChoiceIR, EdgeIR, NodeIR, PrimIR
from nflc.ir.scopes import prelude
from nflc.syntax import ast

_ID_RESERVED = set("|~+;")
_NODE_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # node op labels stand in ids as `op(0,1)`
_SETTINGS = ("channels", "inputs", "output", "pick", "stride")  # a cell's `NAME EXPR` statements


@dataclass
class Cells:
    """What the cells pass produced for one space."""

    defs: dict[str, ast.CellDef]  # every cell definition by name, parameterized ones too
    plain: dict[str, CellIR] | None  # the cells without parameters; None when one of them failed
    # parameterized cells, one per argument tuple (`c(w=16)`), added as the network places them
    variants: dict[str, CellIR] = field(default_factory=dict)
    tried: set[str] = field(default_factory=set)  # parameterized cells lowered at least once (or failed)


@dataclass
class _Form:
    """A cell's settings (its `NAME EXPR` statements), defaults where not given."""

    channels: int | None = None
    inputs: int = 1
    output: str = "sum"
    pick: int | None = None
    stride: int = 1
    pick_stmt: ast.ChannelsStmt | None = None


def lower_cells(ctx: LowerContext) -> Cells:
    out: dict[str, CellIR] = {}
    ok = True
    for cd in (i for i in ctx.sd.items if isinstance(i, ast.CellDef)):
        name = cd.name or "cell"
        if name in ctx.cell_defs:
            ctx.bag.error(f"cell '{name}' is defined twice", cd.span, "name cells to have several: 'cell normal { ... }'")
            ok = False
            continue
        ctx.cell_defs[name] = cd
        if cd.params is not None:  # lowered where it is placed, with its arguments
            names = [p.name for p in cd.params]
            dup = [p for p in cd.params if names.count(p.name) > 1]
            if dup:
                ctx.bag.error(f"parameter '{dup[0].name}' appears twice in cell '{name}'", dup[-1].span)
                ok = False
            continue
        errors = ctx.bag.error_calls
        cell = ctx.attempt(lower_cell, ctx, cd, name)
        if cell is None:
            ok = False
        else:
            if ctx.bag.error_calls == errors:
                check_lint(cell.lint(), f"cell '{name}'")
            out[name] = cell
    return Cells(ctx.cell_defs, out if ok else None)


def cell_variant(ctx: LowerContext, cells: Cells, cd: ast.CellDef, name: str, call: ast.OpCall) -> CellIR:
    """A parameterized cell lowered with the arguments of one placement (cached)."""
    assert cd.params is not None
    bound = bind_args(ctx, call, [(p.name, p.default) for p in cd.params], {}, name)
    for k, v in bound.items():
        if isinstance(v, bool) or not isinstance(v, int):
            ctx.fail(f"argument '{k}' of cell '{name}' must be a whole number, got {show(v)}", call.span)
    key = f"{name}(" + ", ".join(f"{k}={v}" for k, v in bound.items()) + ")"
    cells.tried.add(name)
    if key not in cells.variants:
        errors = ctx.bag.error_calls
        cell = ctx.attempt(lower_cell, ctx, cd, name, bound, key)
        if cell is None or ctx.bag.error_calls > errors:
            ctx.stop()
        check_lint(cell.lint(), f"cell '{key}'")
        cells.variants[key] = cell
    return cells.variants[key]


def lower_cell(ctx: LowerContext, cd: ast.CellDef, name: str, local: Local | None = None,
               variant: str | None = None) -> CellIR:
    local = local or {}
    if not cd.nodes:
        ctx.fail(f"cell '{name}' does not say how many nodes it has", cd.span, "add 'nodes 4' (X0 input .. X3 output)")
    if len(cd.nodes) > 1:
        ctx.fail(f"cell '{name}' declares its nodes twice", cd.nodes[1].span)
    ns = cd.nodes[0]
    if ns.names is not None:
        names = list(ns.names)
        dup = [n for n in names if names.count(n) > 1]
        if dup:
            ctx.fail(f"node '{dup[0]}' is named twice", ns.span)
    else:
        assert ns.count is not None  # `nodes N` or `nodes [names]`
        n = eval_int(ctx, ns.count, "the node count", local, minimum=2)
        if n > 64:
            ctx.fail(f"a cell of {n} nodes is too large (at most 64)", ns.span)
        names = [f"X{i}" for i in range(n)]
    n = len(names)
    if n < 2:
        ctx.fail("a cell needs at least 2 nodes (input and output)", ns.span)
    form = _settings(ctx, cd, name, local, n)
    inputs = form.inputs
    concat = form.output == "concat"
    edges: dict[tuple[int, int], EdgeIR] = {}
    explicit: dict[tuple[int, int], Span] = {}
    for es in cd.edges:
        choices = ctx.attempt(lower_choices, ctx, es, local)
        if es.src is None or es.dst is None:
            pairs = [(s, t) for t in range(inputs, n) for s in range(t)]
        else:
            s = ctx.attempt(_node_index, ctx, es.src, names)
            t = ctx.attempt(_node_index, ctx, es.dst, names)
            if s is None or t is None:
                continue
            if t < inputs:
                ctx.bag.error(f"edge {es.src.value} -> {es.dst.value} ends at an input of cell '{name}'", es.span,
                              f"X0..X{inputs - 1} are the cell's inputs; edges end at X{inputs}..X{n - 1}")
                continue
            if s >= t:
                ctx.bag.error(f"edge {es.src.value} -> {es.dst.value} does not go forward", es.span,
                              "edges go from an earlier node to a later one (the cell is a DAG in node order)")
                continue
            pairs = [(s, t)]
            if (s, t) in explicit:
                ctx.bag.warning(f"edge {s} -> {t} is given again; the later statement wins", es.span)
            explicit[(s, t)] = es.span
        if choices is None:
            continue
        for s, t in pairs:
            edges[(s, t)] = EdgeIR(src=s, dst=t, choices=choices, span=to_source_span(es.span))
    if not cd.edges:
        ctx.bag.warning(f"cell '{name}' has no edges: its output is always zero", cd.span)
    node_ops = _lower_node_ops(ctx, cd, name, names, local, edges) if cd.node_ops else []
    clash = "inputs 2" if inputs > 1 else "output concat" if concat else "pick" if form.pick is not None else \
        "stride 2" if form.stride > 1 else None
    if node_ops and clash:
        ctx.fail(f"node cell '{name}' cannot also have '{clash}'", cd.node_ops[0].span,
                 "node cells (NAS-Bench-101's) and DARTS's cells are separate forms")
    errors = ctx.bag.error_calls  # pick's and stride's mistakes are all reported, then the cell stops
    if form.pick is not None:
        _pick_edges(ctx, name, names, form, edges)
    if form.stride > 1:
        halved: set[tuple] = set()  # ops already reported as unable to halve (one error each)
        edges = {k: _strided(ctx, e, inputs, name, halved) for k, e in edges.items()}
    if ctx.bag.error_calls > errors:
        ctx.stop()
    return CellIR(name=variant or name, nodes=n, node_names=names,
                  edges=[edges[k] for k in sorted(edges, key=lambda st: (st[1], st[0]))], span=to_source_span(cd.span),
                  channels=form.channels, definition=name if variant else None, node_ops=node_ops,
                  inputs=inputs, output="concat" if concat else "sum", pick=form.pick, stride=form.stride)


def _settings(ctx: LowerContext, cd: ast.CellDef, name: str, local: Local, n: int) -> _Form:
    """The `NAME EXPR` statements of a cell: channels, inputs, output, pick, stride."""
    seen: dict[str, ast.ChannelsStmt] = {}
    form = _Form()
    for st in cd.channels:
        if st.keyword not in _SETTINGS:
            ctx.fail(f"unknown cell statement '{st.keyword}'", st.keyword_span,
                     did_you_mean(st.keyword, [*_SETTINGS, "nodes", "edge", "node"]) or
                     "a cell has 'nodes', 'edge', 'node', 'channels', 'inputs', 'output', 'pick' and 'stride' statements")
        if st.keyword in seen:
            ctx.fail(f"cell '{name}' declares its {st.keyword} twice", st.span, f"keep one '{st.keyword}'")
        seen[st.keyword] = st
        if st.keyword == "output":
            how = st.value.name if isinstance(st.value, ast.Ref) else None
            if how not in ("sum", "concat"):
                ctx.fail("a cell's output is 'sum' (its last node) or 'concat' (all intermediate nodes)",
                         st.value.span, "write 'output concat'")
            form.output = how
        elif st.keyword == "channels":
            form.channels = eval_int(ctx, st.value, "a cell's channels", local, minimum=1)
        else:
            setattr(form, st.keyword, eval_int(ctx, st.value, f"a cell's {st.keyword}", local, minimum=1))
    if form.inputs > 2:
        ctx.fail(f"cell '{name}' has {form.inputs} inputs; a cell takes one input or two (DARTS's: the outputs "
                 "of the two cells before it)", seen["inputs"].value.span, "write 'inputs 2'")
    if form.inputs == 2:  # both missing settings at once
        if form.output != "concat":
            ctx.bag.error(f"two-input cell '{name}' needs 'output concat'", seen["inputs"].span,
                          "add 'output concat': the output concatenates its intermediate nodes, as DARTS's cells do")
        if form.channels is None:
            ctx.bag.error(f"two-input cell '{name}' needs 'channels'", seen["inputs"].span,
                          "add 'channels c': both inputs are preprocessed to c channels")
        if form.output != "concat" or form.channels is None:
            ctx.stop()
    if form.stride not in (1, 2):
        ctx.fail(f"stride {form.stride}: a cell's stride is 1 or 2 (a reduction cell)", seen["stride"].value.span)
    if form.pick is not None and form.output != "concat":
        ctx.fail("'pick' chooses the inputs of intermediate nodes of a cell with 'output concat'",
                 seen["pick"].span, "add 'output concat'")
    if form.stride > 1 and form.output != "concat":
        ctx.fail("'stride 2' halves a cell whose output concatenates its nodes", seen["stride"].span,
                 "add 'output concat'")
    first = form.inputs
    if n - first < 1:
        ctx.fail(f"cell '{name}' has {n} nodes and {first} inputs: no intermediate node", cd.nodes[0].span,
                 f"raise 'nodes' to at least {first + 1}")
    form.pick_stmt = seen.get("pick")
    return form


def _pick_edges(ctx: LowerContext, name: str, names: list[str], form: _Form,
                edges: dict[tuple[int, int], EdgeIR]) -> None:
    """A `pick K` cell: check every intermediate node has K candidate edges, and put an
    implicit `zero` (not picked) first on each edge, so edge choices index as elsewhere."""
    k, stmt = form.pick, form.pick_stmt
    assert k is not None and stmt is not None
    for t in range(form.inputs, len(names)):
        have = sum(1 for (_, d) in edges if d == t)
        if have < k:
            ctx.bag.error(f"node {names[t]} of cell '{name}' has {have} incoming edge{'s' * (have != 1)} but picks {k}",
                          stmt.span, f"lower 'pick' to {have} or give node {names[t]} more edges")
    zeros: dict[tuple[str, Span | None], list[tuple[int, int]]] = {}  # each written `zero` choice -> its edges
    for key, e in edges.items():
        zero = [c for c in e.choices if any(p.name == "zero" for p in c.prim_tuple())]
        if zero:
            zeros.setdefault((zero[0].label, to_span(zero[0].span) or stmt.span), []).append(key)
        none = ChoiceIR(label="none", prims=[PrimIR(name="zero")], span=e.span)
        edges[key] = e.model_copy(update={"choices": [none, *e.choices]})
    for (label, span), keys in zeros.items():
        more = f" (and {len(keys) - 1} more edge{'s' * (len(keys) > 2)})" if len(keys) > 1 else ""
        ctx.bag.error(f"edge {keys[0][0]} -> {keys[0][1]}{more} of cell '{name}' offers '{label}', which is no edge; "
                      "with 'pick' an edge is absent when its node does not pick it", span, "leave zero out of the choices")


def _strided(ctx: LowerContext, e: EdgeIR, inputs: int, name: str, reported: set) -> EdgeIR:
    """A reduction cell's edge: from an input, the op's first primitive with a stride gets 2.
    An op that cannot halve is an error, once per op written in the spec (``reported``)."""
    if e.src >= inputs:
        return e
    out = []
    for c in e.choices:
        prims = list(c.prims)
        if any(p.name == "zero" for p in prims):
            out.append(c)
            continue
        at = next((i for i, p in enumerate(prims) if any(ps.name == "stride" for ps in ops.PRIMS[p.name].params)), None)
        if at is None or prims[at].args.get("stride", 1) != 1:
            why = "has no primitive that takes a stride" if at is None else "already has a stride"
            span = to_span(c.span) or to_span(e.span)
            if (c.label, span) not in reported:
                reported.add((c.label, span))
                ctx.bag.error(f"op '{c.label}' on edge {e.src} -> {e.dst} of reduction cell '{name}' {why}, so it "
                              "cannot halve the cell's input", span,
                              "DARTS halves a skip with factorized_reduce: 'factorized_reduce as skip_connect'")
            out.append(c)
            continue
        prims[at] = PrimIR(name=prims[at].name, args={**prims[at].args, "stride": 2})
        out.append(c.model_copy(update={"prims": prims}))
    return e.model_copy(update={"choices": out})


def _lower_node_ops(ctx: LowerContext, cd: ast.CellDef, name: str, names: list[str], local: Local,
                    edges: dict[tuple[int, int], EdgeIR]) -> list[NodeIR]:
    """`node * : ...` statements: the op choices of a node cell's intermediate nodes."""
    n = len(names)
    found: dict[int, NodeIR] = {}
    ok = True
    for ns in cd.node_ops:
        if ns.keyword != "node":
            ctx.fail(f"unknown cell statement '{ns.keyword}'", ns.keyword_span,
                     did_you_mean(ns.keyword, ["node", "nodes", "edge"]) or
                     "a cell has 'nodes', 'edge', 'node' and 'channels' statements")
        if n < 3:
            ctx.fail(f"cell '{name}' has no intermediate node to choose an op", ns.span,
                     "a node cell needs at least 3 nodes (input, intermediates, output)")
        if ns.node is None:
            targets = list(range(1, n - 1))
        else:
            t = ctx.attempt(_node_index, ctx, ns.node, names)
            if t is None:
                ok = False
                continue
            if t in (0, n - 1):
                ctx.bag.error(f"node {ns.node.value} is the cell's {'input' if t == 0 else 'output'}; only "
                              "intermediate nodes choose an op", ns.node.span,
                              f"choose ops for nodes 1..{n - 2}, or 'node * : ...' for all of them")
                ok = False
                continue
            targets = [t]
        choices = ctx.attempt(lower_choices, ctx, ns, local)
        if choices is None:
            ok = False
            continue
        bad = [c for c in choices if not _NODE_LABEL.fullmatch(c.label)]
        if bad:
            ctx.bag.error(f"the node op '{bad[0].label}' cannot name itself in architecture ids", to_span(bad[0].span),
                          f"give it a name: '{bad[0].label} as NAME'")
            ok = False
            continue
        for c in choices:
            if any(p.name == "zero" for p in c.prim_tuple()):
                ctx.bag.error(f"node op '{c.label}' is zero: a node cell's nodes always compute", to_span(c.span),
                              "leave a node out by its edges (they are 'zero | skip')")
                ok = False
        for t in targets:
            found[t] = NodeIR(node=t, choices=choices, span=to_source_span(ns.span))
    for (s, t), e in sorted(edges.items()):
        for c in e.choices:
            if any(p.name not in ("zero", "skip") for p in c.prim_tuple()) or len(c.prims) > 1:
                ctx.bag.error(f"edge {s} -> {t} of node cell '{name}' applies '{c.label}'; in a node cell an "
                              "edge only exists or not", to_span(c.span) or to_span(e.span),
                              "write 'edge * : zero | skip' and put the ops on the nodes: 'node * : ...'")
                ok = False
                break
        if [c.prim_tuple()[0].name for c in e.choices] not in (["zero"], ["skip"], ["zero", "skip"]):
            if ok:
                ctx.bag.error(f"edge {s} -> {t} of node cell '{name}' must be 'zero', 'skip' or 'zero | skip' "
                              "(in this order)", to_span(e.span))
            ok = False
    missing = [t for t in range(1, n - 1) if t not in found]
    if ok and missing:
        ctx.fail(f"node {names[missing[0]]} of node cell '{name}' chooses no op", cd.span,
                 "give every intermediate node its ops: 'node * : ...'")
    if not ok:
        ctx.stop()
    return [found[t] for t in range(1, n - 1)]


def _node_index(ctx: LowerContext, ref: ast.NodeRef, names: list[str]) -> int:
    n = len(names)
    if isinstance(ref.value, int):
        if not 0 <= ref.value < n:
            ctx.fail(f"node {ref.value} is out of range: this cell has nodes 0..{n - 1}", ref.span,
                     f"raise 'nodes' to {ref.value + 1} or use a node below {n}")
        return ref.value
    if ref.value in names:
        return names.index(ref.value)
    if ref.value[:1].isdigit():
        ctx.fail(f"node '{ref.value}' is not a node number", ref.span, f"nodes are numbered 0..{n - 1}")
    if ref.value.startswith("X") and ref.value[1:].isdigit():
        return _node_index(ctx, ast.NodeRef(int(ref.value[1:]), ref.span), names)
    ctx.fail(f"unknown node '{ref.value}'", ref.span, did_you_mean(ref.value, names) or f"nodes are {', '.join(names)}")


def lower_choices(ctx: LowerContext, es: ast.EdgeStmt | ast.NodeStmt, local: Local | None = None) -> list[ChoiceIR]:
    """The op choices of an edge or node statement, with their labels and aliases."""
    out: list[ChoiceIR] = []
    seen: dict[str, Span] = {}
    ok = True
    for item in es.choices:
        prims = ctx.attempt(expand_seq, ctx, item.op, dict(local or {}), ())
        if prims is None:
            ok = False
            continue
        label = item.label or item.op.text
        if label in seen:
            ctx.bag.error(f"the choice '{label}' appears twice on this edge", item.span,
                          "remove the duplicate, or tell them apart with 'as NAME'")
            ok = False
            continue
        if _ID_RESERVED & set(label):
            ctx.bag.error(f"the choice '{label}' cannot name itself in architecture ids (it contains one of | ~ + ;)",
                          item.span, f"give it a name: '{item.op.text} as NAME'")
            ok = False
            continue
        seen[label] = item.span
        out.append(ChoiceIR(label=label, prims=[PrimIR(name=p.name, args=dict(p.args)) for p in prims],
                            aliases=_aliases(ctx, label, prims), span=to_source_span(item.span)))
    if not ok:
        ctx.stop()
    return out


def _aliases(ctx: LowerContext, label: str, prims: tuple[ops.Prim, ...]) -> list[str]:
    """The other names an id may use for a choice: the prelude ops (and zero, skip) it equals."""
    names = []
    for name in (d.name for d in prelude()):
        d = ctx.scope.ops[name]
        if ctx.scope.op_origin.get(name) == "prelude" and name != label and not d.params:
            if ctx.attempt(expand_seq, ctx, d.body, {}, ()) == prims:
                names.append(name)
    for builtin in ("zero", "skip"):
        if builtin != label and prims == (ops.Prim(builtin),):
            names.append(builtin)
    return names
