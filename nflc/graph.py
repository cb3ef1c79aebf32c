"""Architectures as networkx graphs: the cell DAG and the whole network; exporters."""

from __future__ import annotations

import json

import networkx as nx

from nflc import ops
from nflc.ir.model import CellIR, SpaceIR


def on_path_edges(edges, h: int) -> tuple:
    """The edges on some path from node 0 to node ``h`` (the *live* edges), in their order.

    ``edges``: tuples whose first two items are source and target, sorted by target, then
    source (a topological order of a cell, whose nodes are numbered topologically), with
    the ``zero`` edges already left out. In a DAG an edge lies on an input-output path iff
    the input reaches its source and its target reaches the output: one forward and one
    backward pass (the space's enumeration calls this per architecture, so no graph object).
    """
    reach, coreach = {0}, {h}
    for e in edges:
        if e[0] in reach:
            reach.add(e[1])
    for e in reversed(edges):
        if e[1] in coreach:
            coreach.add(e[0])
    return tuple(e for e in edges if e[0] in reach and e[1] in coreach)


def depth_counts(edges, h: int) -> tuple[int, ...]:
    """``counts[k]`` = end-to-end paths (node 0 to node ``h``) with ``k`` parameterized edges.

    ``edges``: ``(source, target, parameterized)`` sorted by target, then source, the zero
    edges left out (as for :func:`on_path_edges`). One dynamic programme over the
    topological order (``counts[t][k]`` = paths ``0 -> t`` with ``k`` parameterized edges):
    paths are never enumerated, though there can be ``2**(h-1)`` of them.
    """
    counts: list[list[int]] = [[] for _ in range(h + 1)]
    counts[0] = [1]
    for s, t, parameterized in edges:
        src, acc = counts[s], counts[t]
        if not src:
            continue
        shift = 1 if parameterized else 0
        if len(acc) < len(src) + shift:
            acc.extend([0] * (len(src) + shift - len(acc)))
        for k, n in enumerate(src):
            acc[k + shift] += n
    out = counts[h]
    while out and out[-1] == 0:
        out.pop()
    return tuple(out)


def edge_table(cell: CellIR, shape: tuple[int, ...]) -> list[list[dict]]:
    """Edge attributes (docs/CONTRACTS.md) of every choice of every edge, at the cell's input shape.

    ``table[k][c]`` is the attribute dict of edge ``cell.edges[k]`` taking choice ``c``; a space
    computes it once per cell, so building one graph per architecture is cheap.
    """
    table = []
    for e, src_shape in zip(cell.edges, cell.edge_shapes(shape)):
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


def cell_graph(cell: CellIR, choice: tuple[int, ...], shape: tuple[int, ...],
               table: list[list[dict]] | None = None) -> nx.DiGraph:
    """The cell DAG of one choice (docs/CONTRACTS.md): int nodes 0..H, every declared edge.

    ``table`` is :func:`edge_table` of the cell at ``shape``, when the caller has it.
    """
    if table is None:
        table = edge_table(cell, shape)
    g = nx.DiGraph(cell=cell.name)
    g.add_nodes_from((i, {"label": f"X{i}", "name": name}) for i, name in enumerate(cell.node_names))
    g.add_edges_from((e.src, e.dst, table[k][c]) for k, (e, c) in enumerate(zip(cell.edges, choice)))
    return g


def network_graph(ir: SpaceIR, cell_graphs: dict[str, nx.DiGraph]) -> nx.DiGraph:
    """The whole network: one node per primitive stage and per cell node, in order.

    Node names are ``"input"``, ``"%i"`` for stage i, and ``"%i.Xk"`` for node k of the cell
    placed at stage i; edges carry the op that maps their source to their target.
    """
    g = nx.DiGraph(space=ir.name)
    g.add_node("input", op="input", shape=list(ir.input_shape))
    prev = "input"
    for i, st in enumerate(ir.network):
        if st.kind == "prim":
            node = f"%{i}"
            g.add_node(node, op=str(st.prim), shape=st.shape_out, params=st.params)
            g.add_edge(prev, node, op=str(st.prim))
            prev = node
            continue
        cg = cell_graphs[st.instance]
        h = cg.number_of_nodes() - 1
        for k in cg.nodes:
            g.add_node(f"%{i}.X{k}", op="sum" if k else "cell_input", shape=st.shape_out if k else st.shape_in,
                       cell=st.cell)
        g.add_edge(prev, f"%{i}.X0", op="skip")
        for s, t, a in cg.edges(data=True):
            if a["kind"] != "zero":
                g.add_edge(f"%{i}.X{s}", f"%{i}.X{t}", op=a["op"], kind=a["kind"])
        prev = f"%{i}.X{h}"
    g.add_node("output", op="output", shape=list(ir.output_shape))
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
    """Graphviz DOT text (written here: pydot/pygraphviz are heavy optional dependencies)."""
    q = lambda s: '"' + str(s).replace('"', '\\"') + '"'  # noqa: E731
    lines = [f"digraph {q(name)} {{", "  rankdir=LR;"]
    for n, d in g.nodes(data=True):
        lines.append(f"  {q(n)} [label={q(d.get('label', n))}];")
    for s, t, d in g.edges(data=True):
        style = ' style="dashed"' if d.get("kind") == "zero" else ""
        lines.append(f"  {q(s)} -> {q(t)} [label={q(d.get('op', ''))}{style}];")
    lines.append("}")
    return "\n".join(lines)


def to_graphml(g: nx.DiGraph) -> str:
    return "\n".join(nx.generate_graphml(_scalar_attrs(g)))


def to_json(g: nx.DiGraph) -> str:
    return json.dumps(nx.node_link_data(g, edges="edges"), indent=2, default=list)
