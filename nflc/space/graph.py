"""Architectures as networkx graphs: the cell DAG and the whole network; exporters; how a
node cell (NAS-Bench-101's) computes for one choice."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import networkx as nx

from nflc import ops
from nflc.ir.model import CellIR, SpaceIR
from nflc.space.topology import on_path_edges


def edge_table(cell: CellIR, shape: tuple[int, ...]) -> list[list[dict]]:
    """Edge attributes (docs/CONTRACTS.md) of every choice of every edge, at the cell's input shape.

    ``table[k][c]`` is the attribute dict of edge ``cell.edges[k]`` taking choice ``c``; a space
    computes it once per cell, so building one graph per architecture is cheap.
    """
    table = []
    for e, src_shape in zip(cell.edges, cell.edge_shapes(shape), strict=False):
        row = []
        for ch in e.choices:
            prims = ops.seq_bind(ch.prim_tuple(), src_shape, cell.channels)
            _, params, flops = ops.seq_cost(prims, src_shape)
            kind = ops.seq_kind(prims)
            row.append(dict(op=ch.label, kind=kind, parameterized=ops.seq_parameterized(prims),
                            params=0 if kind == "zero" else params, flops=0 if kind == "zero" else flops,
                            kernel=ops.seq_kernel(prims), prims=tuple(p.name for p in prims)))
        table.append(row)
    return table


def graph_offset(cell: CellIR) -> int:
    """Where node X0 sits in the cell's graph: 1 for a two-input cell (node 0 is then the
    cells' common source, ``in``), else 0."""
    return 1 if cell.inputs > 1 else 0


def frame_edges(cell: CellIR, shape: tuple[int, ...]) -> list[tuple[int, int, dict]]:
    """The edges a concat cell's graph adds around its own (docs/CONTRACTS.md): ``in`` to each
    input (its preprocessing, as X1's at ``shape``: relu >> conv1x1 >> batchnorm) and every
    intermediate node to ``out`` (a concatenation: an identity onto its own channels)."""
    if cell.output != "concat":
        return []
    off = graph_offset(cell)
    out = cell.nodes + off
    extra = []
    if cell.inputs > 1:
        prims = ops.preprocess_prims(cell.channels or shape[0])
        _, params, flops = ops.seq_cost(prims, shape)
        attrs = dict(op="preprocess", kind="conv", parameterized=True, params=params, flops=flops, kernel=1,
                     prims=tuple(p.name for p in prims))
        extra += [(0, k + 1, dict(attrs)) for k in range(cell.inputs)]
    for t in cell.intermediates:
        extra.append((t + off, out, dict(op="concat", kind="skip", parameterized=False, params=0, flops=0, kernel=None,
                                          prims=(), concat=True)))
    return extra


class Frame(NamedTuple):
    """Where a cell's own nodes sit in its graph, and what the graph adds around them."""

    offset: int  # the node number of X0 (:func:`graph_offset`)
    output: int  # the node number of the graph's output (XH, or a concat cell's ``out``)
    edges: list[tuple[int, int, dict]]  # :func:`frame_edges`


def cell_frame(cell: CellIR, shape: tuple[int, ...]) -> Frame:
    """The frame of ``cell``'s graph (:func:`cell_graph`) when placed on ``shape``."""
    off = graph_offset(cell)
    return Frame(off, cell.nodes - 1 + off + (cell.output == "concat"), frame_edges(cell, shape))


def cell_graph(cell: CellIR, choice: tuple[int, ...], shape: tuple[int, ...],
               table: list[list[dict]] | None = None) -> nx.DiGraph:
    """The cell DAG of one choice (docs/CONTRACTS.md): int nodes 0..H, every declared edge.

    A concat cell (DARTS's) adds its output ``out`` after the last node, fed by every
    intermediate node, and a two-input cell a source ``in`` before X0 feeding both inputs
    (:func:`frame_edges`), so paths run from node 0 to node H as in every cell.
    ``table`` is :func:`edge_table` of the cell at ``shape``, when the caller has it.
    """
    if table is None:
        table = edge_table(cell, shape)
    off = graph_offset(cell)
    g = nx.DiGraph(cell=cell.name)
    if off:
        g.add_node(0, label="in", name="in")
    g.add_nodes_from((i + off, {"label": f"X{i}", "name": name}) for i, name in enumerate(cell.node_names))
    if cell.output == "concat":
        g.add_node(cell.nodes + off, label="out", name="out")
    g.add_edges_from((e.src + off, e.dst + off, table[k][c]) for k, (e, c) in enumerate(zip(cell.edges, choice, strict=False)))
    g.add_edges_from(frame_edges(cell, shape))
    ne = len(cell.edges)
    for k, nd in enumerate(cell.node_ops):  # a node cell: every intermediate node's chosen op
        op = nd.choices[choice[ne + k]]
        g.nodes[nd.node].update(op=op.label, parameterized=node_op_parameterized(op))
    if cell.node_ops:  # an edge from X0 reaches its target through a 1x1 projection (NodeCellPlan)
        for t in g.successors(0):
            if g.edges[0, t]["kind"] != "zero":
                g.edges[0, t]["projection"] = True
    return g


def node_op_parameterized(choice: Any) -> bool:
    """Whether a node cell's op choice (an IR choice) is a parameterized layer."""
    return ops.seq_parameterized(choice.prim_tuple())



def network_graph(ir: SpaceIR, cell_graphs: dict[str, nx.DiGraph]) -> nx.DiGraph:
    """The whole network: one node per primitive stage and per cell node, in order.

    Node names (stable keys) are ``"input"``, ``"%i"`` for stage i, and ``"%i.Xk"`` for node
    k of the cell placed at stage i; each node's ``label`` says the same for a reader:
    ``"conv2d #0"`` (the primitive and its stage), ``"module[2].X3: conv3x3_bn_relu"`` (the
    cell instance, which of its placements, the node, and a node cell's chosen op, also in
    ``node_op``). Edges carry the op that maps their source to their target.
    """
    g = nx.DiGraph(space=ir.name)
    g.add_node("input", op="input", shape=list(ir.input_shape), label="input")
    prev = "input"
    prev_cell_input: str | None = None
    placed: dict[str, int] = {}  # placements of each cell instance so far
    for i, st in enumerate(ir.network):
        if st.kind == "prim":
            node = f"%{i}"
            g.add_node(node, op=str(st.prim), shape=st.shape_out, params=st.params,
                       label=f"{getattr(st.prim, 'name', st.prim)} #{i}")
            g.add_edge(prev, node, op=str(st.prim))
            prev = node
            continue
        assert st.instance is not None and st.cell is not None  # a cell stage names its instance
        cg = cell_graphs[st.instance]
        h = cg.number_of_nodes() - 1
        cell = ir.cells[st.cell]
        off = graph_offset(cell)
        node_shape = cell.node_shapes(st.shape_in)
        name = {k: f"%{i}.{cg.nodes[k].get('label', f'X{k}')}" for k in cg.nodes}
        two = off == 1  # a two-input cell: X0 from the last cell's input
        placed[st.instance] = placed.get(st.instance, 0) + 1
        for k in cg.nodes:
            if two and k == 0:
                continue
            x = k - off  # the cell's own node number (X0 ..), or the output past them
            op = "cell_input" if x < cell.inputs else "concat" if x == cell.nodes else "sum"
            shape = list(node_shape[x]) if x < cell.nodes else st.shape_out
            label = f"{st.instance}[{placed[st.instance]}].{cg.nodes[k].get('label', f'X{k}')}"
            node_op = cg.nodes[k].get("op")  # a node cell's chosen op
            g.add_node(name[k], op=op, shape=shape, cell=st.cell,
                       label=label + (f": {node_op}" if node_op else ""), **({"node_op": node_op} if node_op else {}))
        if two:
            assert st.shape_prev is not None
            for k, (src, prims, at) in enumerate(zip((prev_cell_input or prev, prev), st.preprocess,
                                                     (st.shape_prev, st.shape_in), strict=True)):
                params = ops.seq_cost(tuple(p.to_prim() for p in prims), tuple(at))[1]
                g.add_edge(src, name[k + 1], op="preprocess", params=params)
        else:
            g.add_edge(prev, name[0], op="skip")
        for s, t, a in cg.edges(data=True):
            if a["kind"] != "zero" and not (two and s == 0):
                g.add_edge(name[s], name[t], op=a["op"], kind=a["kind"])
        prev_cell_input = prev
        prev = name[h]
    g.add_node("output", op="output", shape=list(ir.output_shape), label="output")
    g.add_edge(prev, "output", op="skip")
    return g


def _scalar_attrs(g: nx.DiGraph) -> nx.DiGraph:
    """A copy whose attributes are strings/numbers (GraphML allows nothing else)."""
    h = nx.DiGraph()
    fix = lambda d: {k: (v if isinstance(v, (int, float, str)) and not isinstance(v, bool) else  # noqa: E731
                         str(v).lower() if isinstance(v, bool) else json.dumps(v)) for k, v in d.items() if v is not None}
    h.add_nodes_from((n, fix(d)) for n, d in g.nodes(data=True))
    h.add_edges_from((s, t, fix(d)) for s, t, d in g.edges(data=True))
    return h


def to_dot(g: nx.DiGraph, name: str = "arch") -> str:
    """Graphviz DOT text (written here: pydot/pygraphviz are heavy optional dependencies).
    A node cell's nodes show their chosen op (``X2: conv3x3_bn_relu``, and ``op=``)."""
    q = lambda s: '"' + str(s).replace('"', '\\"') + '"'  # noqa: E731
    lines = [f"digraph {q(name)} {{", "  rankdir=LR;"]
    cell = "cell" in g.graph  # a cell graph: a node's "op" is a node cell's op
    for n, d in g.nodes(data=True):
        label = str(d.get("label", n))
        op = d.get("op") if cell else d.get("node_op")
        if cell and op:
            label = f"{label}: {op}"
        lines.append(f"  {q(n)} [label={q(label)}" + (f" op={q(op)}" if op else "") + "];")
    for s, t, d in g.edges(data=True):
        style = ' style="dashed"' if d.get("kind") == "zero" else ""
        lines.append(f"  {q(s)} -> {q(t)} [label={q(d.get('op', ''))}{style}];")
    lines.append("}")
    return "\n".join(lines)


def to_graphml(g: nx.DiGraph) -> str:
    return "\n".join(nx.generate_graphml(_scalar_attrs(g)))


def to_json(g: nx.DiGraph) -> str:
    return json.dumps(nx.node_link_data(g, edges="edges"), indent=2, default=list)


# ---------------------------------------------------------------- node-labelled DAG cells (NAS-Bench-101)
def dag_pairs(nodes: int) -> list[tuple[int, int]]:
    """The forward pairs ``(src, dst)`` of a cell of ``nodes`` nodes in (dst, src) order."""
    return [(s, d) for d in range(1, nodes) for s in range(d)]


def prune_dag(nodes: int, edges: Any) -> tuple[set[int], list[tuple[int, int]]]:
    """NAS-Bench-101's pruning: the nodes and edges on some path from node 0 to the last node.

    Returns ``(live nodes, live edges)``; both empty when the output is not reachable.
    """
    edges = sorted(edges, key=lambda e: (e[1], e[0]))
    live = on_path_edges(edges, nodes - 1)
    if not live:
        return set(), []
    vs = {0, nodes - 1} | {v for e in live for v in e}
    return vs, list(live)


class NodeCellPlan:
    """How a node cell computes for one choice (NAS-Bench-101's ``Cell``, on the pruned graph).

    ``nodes``: the live intermediate nodes in order; ``inputs[t]``: the live sources of node
    ``t`` (a live node or the output ``H``); ``channels[t]``: node ``t``'s channels (the
    output's channels split among the nodes feeding it, the remainder one each to the first
    ones; other nodes the largest of their successors', as ``compute_vertex_channels``);
    ``ops[t]``: node ``t``'s op bound at its shape; ``projections``: the targets of edges from
    X0, each a 1x1 conv (no bias) - batchnorm - relu from the cell's input to the target's
    channels, in order (the output last).
    """

    def __init__(self, cell: CellIR, choice: tuple[int, ...], shape_in: Any, c_out: int) -> None:
        h = cell.nodes - 1
        ne = len(cell.edges)
        edges = [(e.src, e.dst) for e, d in zip(cell.edges, choice, strict=False) if e.choices[d].prim_tuple()[0].name != "zero"]
        alive, live = prune_dag(cell.nodes, edges)
        if not live:
            raise ValueError(f"node cell '{cell.name}' has no input-output path")
        self.h = h
        self.nodes = sorted(alive - {0, h})
        self.inputs = {t: [s for s, d in live if d == t] for t in [*self.nodes, h]}
        feeding = [t for t in self.nodes if t in self.inputs[h]]
        ch = {h: c_out}
        if feeding:
            base, extra = divmod(c_out, len(feeding))
            for i, t in enumerate(feeding):
                ch[t] = base + (1 if i < extra else 0)
        for t in reversed(self.nodes):
            if t not in ch:
                ch[t] = max(ch[d] for s, d in live if s == t and d != h)
        self.channels = ch
        hw = tuple(shape_in[1:])
        self.shape_in = tuple(shape_in)
        self.ops = {}
        for k, nd in enumerate(cell.node_ops):
            if nd.node in alive:
                self.ops[nd.node] = ops.seq_bind(nd.choices[choice[ne + k]].prim_tuple(), (ch[nd.node], *hw), ch[nd.node])
        self.projections = [t for t in [*self.nodes, h] if 0 in self.inputs[t]]
        project = (ops.Prim("conv2d", (("k", 1), ("stride", 1), ("padding", 0), ("bias", False))), ops.Prim("batchnorm"),
                   ops.Prim("relu"))
        self.projection = {t: ops.seq_bind(project, self.shape_in, ch[t]) for t in self.projections}

    def cost(self) -> tuple[int, int]:
        """(parameters, FLOPs) of the cell."""
        params = flops = 0
        hw = self.shape_in[1:]
        for t, prims in self.ops.items():
            _, p, f = ops.seq_cost(prims, (self.channels[t], *hw))
            params, flops = params + p, flops + f
        for prims in self.projection.values():
            _, p, f = ops.seq_cost(prims, self.shape_in)
            params, flops = params + p, flops + f
        return params, flops
