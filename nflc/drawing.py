"""Architectures as pictures: a cell (or the whole network) laid out left to right, ops as labels.

One drawing serves every output: :func:`draw` lays an architecture's graphs out into a
:class:`Drawing` (node boxes, edge curves as cubic Bezier control points, arrowheads and
label positions, in points), :func:`to_svg` / :func:`to_png` render it with matplotlib, and
the HTML pages (:mod:`nflc.pages`) render the same geometry with plotly in the browser.

What is drawn (``docs/CONTRACTS.md``'s graphs): every node; every edge except ``zero`` ones
(an absent edge); edges on no input-output path (dead edges) dashed and grey; a node
cell's (NAS-Bench-101's) node ops in its node's label; an architecture the space's
filters reject gets a red note saying why.

Layout: Graphviz's ``dot`` (``rankdir=LR``) through the ``graphviz`` Python package when
the ``dot`` program is installed, else a pure-Python layered layout
(``networkx.multipartite_layout`` over the topological generations, curved edges where
they skip a layer). ``NFLC_LAYOUT=graphviz|networkx`` or ``engine=`` chooses.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import networkx as nx
from pydantic import BaseModel

from nflc.errors import NflcError

if TYPE_CHECKING:
    from nflc.space import Architecture

Point = tuple[float, float]
Engine = Literal["graphviz", "networkx"]
ENGINES = ("auto", "graphviz", "networkx")

FONT_SIZE = 10.0  # points, nodes; edge labels are one point smaller
CHAR_WIDTH = 0.6 * FONT_SIZE  # a generous average glyph width: labels never overflow their box


class DrawnNode(BaseModel):
    name: str  # the graph's node, as text
    label: str  # lines separated by "\n"
    x: float  # centre, points
    y: float
    w: float  # box size, points
    h: float
    shape: Literal["box", "ellipse"]
    live: bool = True  # on some input-output path


class DrawnEdge(BaseModel):
    src: str
    dst: str
    label: str  # the op ("" where it would repeat its target's label, in a network)
    kind: str
    curve: list[Point]  # cubic Bezier: start, then (control, control, end) per piece
    head: list[Point]  # the arrowhead's triangle
    label_at: Point
    live: bool = True  # on some input-output path (dead edges are drawn dashed)


class Panel(BaseModel):
    name: str  # the cell instance, or "network"
    title: str
    width: float  # bounding box (0, 0) .. (width, height), points
    height: float
    nodes: list[DrawnNode]
    edges: list[DrawnEdge]


class Drawing(BaseModel):
    title: str  # the space and the architecture's index
    id: str  # the architecture's id
    note: str | None = None  # why the space rejects the architecture (drawn in red)
    engine: Engine
    panels: list[Panel]


# ---------------------------------------------------------------- what to draw


class _Spec(BaseModel):
    """One graph to lay out: nodes (name, label, shape, live) and the edges to draw."""

    name: str
    title: str
    nodes: list[tuple[str, str, str, bool]]
    edges: list[tuple[str, str, str, str, bool]]  # src, dst, label, kind, live


def _live_edges(g: nx.DiGraph) -> set[tuple]:
    """Edges on some path from the first node to the last (the graph's nodes are numbered
    topologically, 0 the input, the largest the output)."""
    src, dst = min(g.nodes), max(g.nodes)
    keep = nx.DiGraph((s, t) for s, t, d in g.edges(data=True) if d.get("kind") != "zero")
    if src not in keep or dst not in keep:
        return set()
    reach = nx.descendants(keep, src) | {src}
    coreach = nx.ancestors(keep, dst) | {dst}
    return {(s, t) for s, t in keep.edges if s in reach and t in coreach}


def cell_spec(g: nx.DiGraph, name: str, title: str) -> _Spec:
    """A cell graph (int nodes, ``label`` and, in node cells, ``op`` attributes) to draw."""
    live = _live_edges(g)
    live_nodes = {v for e in live for v in e}
    first, last = min(g.nodes), max(g.nodes)
    nodes = []
    for v, d in sorted(g.nodes(data=True)):
        label = str(d.get("label", f"X{v}"))
        if d.get("op"):
            label += "\n" + str(d["op"])
        boundary = v in (first, last)
        nodes.append((str(v), label, "box" if boundary else "ellipse", v in live_nodes or boundary))
    node_cell = any("op" in d for _, d in g.nodes(data=True))  # ops on nodes; an edge is only on or off
    edges = [(str(s), str(t), "" if node_cell else str(d.get("op", "")), str(d.get("kind", "")), (s, t) in live)
             for s, t, d in sorted(g.edges(data=True), key=lambda e: (e[0], e[1])) if d.get("kind") != "zero"]
    return _Spec(name=name, title=title, nodes=nodes, edges=edges)


def network_spec(g: nx.DiGraph, title: str) -> _Spec:
    """The whole network's graph (:func:`nflc.space.graph.network_graph`) to draw: a primitive
    stage shows its op in its node, so the edge into it carries no repeated label."""
    nodes = []
    for v, d in g.nodes(data=True):
        op = str(d.get("op", ""))
        label = v if op in ("", "input", "output", "cell_input", "sum", "concat") or op == v else f"{v}\n{op}"
        nodes.append((str(v), str(label), "box" if op in ("input", "output") else "ellipse", True))
    edges = []
    for s, t, d in g.edges(data=True):
        op = str(d.get("op", ""))
        label = "" if op == str(g.nodes[t].get("op")) else op
        edges.append((str(s), str(t), label, str(d.get("kind", "")), True))
    return _Spec(name="network", title=title, nodes=nodes, edges=edges)


def specs(arch: Architecture, network: bool = False) -> list[_Spec]:
    """What :func:`draw` lays out for ``arch``: its network, or each cell instance's graph."""
    if network:
        return [network_spec(arch.network_graph, "network")]
    graphs = arch.cell_graphs
    return [cell_spec(g, k, k if len(graphs) > 1 else f"cell '{k}'") for k, g in graphs.items()]


# ---------------------------------------------------------------- layout


def layout_engine(prefer: str | None = None) -> Engine:
    """The layout used: ``graphviz`` when the ``dot`` program and the ``graphviz`` package are
    present, else ``networkx``; ``prefer`` (or ``NFLC_LAYOUT``) picks one, ``graphviz``
    without ``dot`` being an error."""
    prefer = prefer or os.environ.get("NFLC_LAYOUT") or "auto"
    if prefer not in ENGINES:
        raise NflcError(f"unknown layout '{prefer}'", hint="auto, graphviz or networkx")
    if prefer == "networkx":
        return "networkx"
    available = shutil.which("dot") is not None
    if available:
        try:
            import graphviz  # noqa: F401
        except ImportError:
            available = False
    if prefer == "graphviz" and not available:
        raise NflcError("layout 'graphviz' needs Graphviz's 'dot' program and the 'graphviz' Python package",
                        hint="apt-get install graphviz (and pip install graphviz), or use the networkx layout")
    return "graphviz" if available else "networkx"


def _box(label: str, shape: str) -> tuple[float, float]:
    lines = label.split("\n")
    w = max(len(s) for s in lines) * CHAR_WIDTH + (22 if shape == "ellipse" else 14)
    return max(w, 40.0), 12.0 * len(lines) + 12


def _arrowhead(tail: Point, tip: Point, length: float = 8.0, half: float = 3.5) -> list[Point]:
    dx, dy = tip[0] - tail[0], tip[1] - tail[1]
    n = math.hypot(dx, dy) or 1.0
    ux, uy = dx / n, dy / n
    bx, by = tip[0] - ux * length, tip[1] - uy * length
    return [tip, (bx - uy * half, by + ux * half), (bx + uy * half, by - ux * half)]


def _dot_source(spec: _Spec, key: str) -> str:
    q = json.dumps  # a JSON string is a valid DOT string (both escape " and \)
    lines = [f"digraph {q(key)} {{", "rankdir=LR; nodesep=0.25; ranksep=0.45;",
             f'node [fontname="Helvetica" fontsize={FONT_SIZE:g} margin="0.08,0.04"];',
             f'edge [fontname="Helvetica" fontsize={FONT_SIZE - 1:g} arrowsize=0.7];']
    ids = {name: f"n{i}" for i, (name, *_) in enumerate(spec.nodes)}
    for name, label, shape, _ in spec.nodes:
        w, h = _box(label, shape)
        lines.append(f"{ids[name]} [label={q(label)} shape={shape} width={w / 72:.3f} height={h / 72:.3f} fixedsize=true];")
    for s, t, label, _, _ in spec.edges:
        lines.append(f"{ids[s]} -> {ids[t]} [label={q(label)}];")
    lines.append("}")
    return "\n".join(lines)


def _points(text: str) -> list[Point]:
    return [(float(a), float(b)) for a, b in (p.split(",")[-2:] for p in text.split())]


def _graphviz_panels(specs_: Sequence[_Spec]) -> list[Panel]:
    """Every spec laid out by one ``dot`` run (each graph takes about a millisecond)."""
    import graphviz  # graphviz: optional, used when installed

    src = "\n".join(_dot_source(s, f"g{i}") for i, s in enumerate(specs_))
    raw = graphviz.pipe("dot", "json0", src.encode()).decode()
    dec, pos, docs = json.JSONDecoder(), 0, []
    while True:
        while pos < len(raw) and raw[pos].isspace():
            pos += 1
        if pos >= len(raw):
            break
        doc, pos = dec.raw_decode(raw, pos)
        docs.append(doc)
    panels = []
    for spec, doc in zip(specs_, docs, strict=True):
        _, _, width, height = (float(v) for v in doc["bb"].split(","))
        objs = doc.get("objects", [])
        nodes = []
        for (name, label, shape, live), o in zip(spec.nodes, objs, strict=True):
            (x, y), = _points(o["pos"])
            nodes.append(DrawnNode(name=name, label=label, x=x, y=y, w=float(o["width"]) * 72, h=float(o["height"]) * 72,
                                   shape=shape, live=live))  # type: ignore[arg-type]
        edges = []
        for (s, t, label, kind, live), e in zip(spec.edges, doc.get("edges", []), strict=True):
            tokens = e["pos"].split()
            tip = next((_points(p)[0] for p in tokens if p.startswith("e,")), None)
            curve = _points(" ".join(p for p in tokens if not p.startswith(("e,", "s,"))))
            head = _arrowhead(curve[-1], tip) if tip is not None else []
            if tip is None:
                tip = curve[-1]
            lp = _points(e["lp"])[0] if "lp" in e else _bezier_at(curve, 0.5)
            edges.append(DrawnEdge(src=s, dst=t, label=label, kind=kind, curve=curve, head=head, label_at=lp, live=live))
        panels.append(Panel(name=spec.name, title=spec.title, width=width, height=height, nodes=nodes, edges=edges))
    return panels


def _bezier_at(curve: list[Point], t: float) -> Point:
    """The point at parameter ``t`` (0..1 over all pieces) of a cubic Bezier chain."""
    pieces = max(1, (len(curve) - 1) // 3)
    k = min(int(t * pieces), pieces - 1)
    u = t * pieces - k
    p0, p1, p2, p3 = curve[3 * k: 3 * k + 4]
    c = [(1 - u) ** 3, 3 * u * (1 - u) ** 2, 3 * u * u * (1 - u), u ** 3]
    return (sum(w * p[0] for w, p in zip(c, (p0, p1, p2, p3), strict=True)),
            sum(w * p[1] for w, p in zip(c, (p0, p1, p2, p3), strict=True)))


def _networkx_panel(spec: _Spec) -> Panel:
    """Layers = topological generations (longest path from a source), placed by
    ``networkx.multipartite_layout``; an edge that skips layers bends away from the nodes
    it passes, alternately above and below."""
    g = nx.DiGraph()
    g.add_nodes_from(name for name, *_ in spec.nodes)
    g.add_edges_from((s, t) for s, t, *_ in spec.edges)
    layer = {v: i for i, gen in enumerate(nx.topological_generations(g)) for v in gen}
    nx.set_node_attributes(g, layer, "layer")
    pos = nx.multipartite_layout(g, subset_key="layer", align="vertical")
    size = {name: _box(label, shape) for name, label, shape, _ in spec.nodes}
    n_layers = max(layer.values()) + 1
    col_w = [max(size[v][0] for v in g if layer[v] == k) for k in range(n_layers)]
    longest = max([len(lbl) for _, _, lbl, _, _ in spec.edges] + [0])
    gap = max(60.0, longest * (CHAR_WIDTH - 0.6) + 24)
    x_at = [0.0] * n_layers
    for k in range(1, n_layers):
        x_at[k] = x_at[k - 1] + (col_w[k - 1] + col_w[k]) / 2 + gap
    per_layer = max(sum(1 for v in g if layer[v] == k) for k in range(n_layers))
    ys = sorted({round(p[1], 9) for p in pos.values()})
    step = min((b - a for a, b in zip(ys, ys[1:], strict=False)), default=1.0) or 1.0
    y_scale = 70.0 / step if per_layer > 1 else 1.0
    margin = 30.0
    coords = {v: (x_at[layer[v]] + col_w[0] / 2 + margin, pos[v][1] * y_scale) for v in g}
    bend = 0
    edges: list[DrawnEdge] = []
    for s, t, label, kind, live in spec.edges:
        (x0, y0), (x1, y1) = coords[s], coords[t]
        x0 += size[s][0] / 2
        x1 -= size[t][0] / 2
        dx, dy = x1 - x0, y1 - y0
        n = math.hypot(dx, dy) or 1.0
        nx_, ny_ = -dy / n, dx / n  # unit normal
        off = 0.0
        between = [v for v in g if layer[s] < layer[v] < layer[t]]
        if between:  # bend away from the nodes of the layers it skips (their mean side)
            bend += 1
            side = sum((coords[v][0] - x0) * nx_ + (coords[v][1] - y0) * ny_ for v in between)
            sign = -1.0 if side > 0 else 1.0 if side < 0 else (1.0 if bend % 2 else -1.0)
            off = sign * (30.0 + 14.0 * (layer[t] - layer[s]))
        c1 = (x0 + dx / 3 + nx_ * off, y0 + dy / 3 + ny_ * off)
        c2 = (x0 + 2 * dx / 3 + nx_ * off, y0 + 2 * dy / 3 + ny_ * off)
        tip = (x1, y1)
        back = _arrowhead(c2, tip)[1:]
        end = ((back[0][0] + back[1][0]) / 2, (back[0][1] + back[1][1]) / 2)
        curve = [(x0, y0), c1, c2, end]
        mid = _bezier_at(curve, 0.5)
        edges.append(DrawnEdge(src=s, dst=t, label=label, kind=kind, curve=curve, head=_arrowhead(c2, tip),
                               label_at=(mid[0], mid[1] + 7), live=live))
    nodes = [DrawnNode(name=name, label=label, x=coords[name][0], y=coords[name][1], w=size[name][0], h=size[name][1],
                       shape=shape, live=live) for name, label, shape, live in spec.nodes]  # type: ignore[arg-type]
    # shift into (0, 0) .. (width, height) with a margin around nodes, curves and labels
    xs = [b.x - b.w / 2 for b in nodes] + [b.x + b.w / 2 for b in nodes]
    ys_ = [b.y - b.h / 2 for b in nodes] + [b.y + b.h / 2 for b in nodes]
    for e in edges:
        half = len(e.label) * CHAR_WIDTH / 2
        xs += [p[0] for p in e.curve] + [e.label_at[0] - half, e.label_at[0] + half]
        ys_ += [p[1] for p in e.curve] + [e.label_at[1] + 8]
    x_min, y_min = min(xs) - 8, min(ys_) - 8
    shift = lambda p: (p[0] - x_min, p[1] - y_min)  # noqa: E731
    for b in nodes:
        b.x, b.y = shift((b.x, b.y))
    for e in edges:
        e.curve = [shift(p) for p in e.curve]
        e.head = [shift(p) for p in e.head]
        e.label_at = shift(e.label_at)
    return Panel(name=spec.name, title=spec.title, width=max(xs) - x_min + 8, height=max(ys_) - y_min + 8,
                 nodes=nodes, edges=edges)


def layout(specs_: Sequence[_Spec], engine: str | None = None) -> tuple[Engine, list[Panel]]:
    """Lay every spec out with the chosen engine (one ``dot`` run for all of them)."""
    chosen = layout_engine(engine)
    if not specs_:
        return chosen, []
    if chosen == "graphviz":
        return chosen, _graphviz_panels(specs_)
    return chosen, [_networkx_panel(s) for s in specs_]


def title_of(arch: Architecture) -> str:
    return f"{arch.space.name} #{arch.index}"


def draw(arch: Architecture, network: bool = False, engine: str | None = None) -> Drawing:
    """The drawing of one architecture: each cell instance's graph, or (``network``) the
    whole network; a rejected architecture carries the reason in ``note``."""
    chosen, panels = layout(specs(arch, network), engine)
    note = f"rejected by space '{arch.space.name}': {arch.rejection}" if arch.rejection is not None else None
    return Drawing(title=title_of(arch), id=arch.id, note=note, engine=chosen, panels=panels)


# ---------------------------------------------------------------- rendering (matplotlib)

EDGE_COLOURS = {"skip": "#1f77b4", "linear_relu": "#d62728", "linear": "#d62728", "conv": "#2ca02c", "pool": "#9467bd"}
DEAD = "#aaaaaa"


def gid(kind: str, panel: str, *names: str) -> str:
    """The SVG element id of a drawn node or edge: ``node:PANEL:NAME``, ``edge:PANEL:SRC->DST``."""
    return f"{kind}:{panel}:" + "->".join(names)


def _render(drawing: Drawing, fmt: str) -> bytes:
    import matplotlib  # matplotlib: loaded only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib: loaded only when a figure is drawn
    from matplotlib.patches import Ellipse, FancyBboxPatch, PathPatch, Polygon  # matplotlib: loaded only when a figure is drawn
    from matplotlib.path import Path as MPath  # matplotlib: loaded only when a figure is drawn

    head_h = 38.0 + (16.0 if drawing.note else 0.0)
    title_h = 18.0
    name, ident = drawing.title, drawing.id
    width = max([p.width for p in drawing.panels] + [len(name) * 7.5, len(ident) * 5.6, len(drawing.note or "") * 6.2,
                                                       200.0]) + 16
    height = head_h + sum(p.height + title_h for p in drawing.panels) + 8
    scale = 1.0 if fmt == "svg" else 1.5  # a PNG a little larger than the points
    fig = plt.figure(figsize=(width / 72 * scale, height / 72 * scale))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    fs = FONT_SIZE * scale
    ax.text(8, height - 12, name, fontsize=fs + 1, fontweight="bold", va="center", gid="title")
    ax.text(8, height - 28, ident, fontsize=fs - 1, family="DejaVu Sans Mono", va="center", gid="id")
    if drawing.note:
        ax.text(8, height - 44, drawing.note, fontsize=fs, color="#c00000", va="center", gid="rejected")
    top = height - head_h
    for panel in drawing.panels:
        ax.text(8, top - title_h / 2, panel.title, fontsize=fs, style="italic", va="center", gid=f"panel:{panel.name}")
        y0 = top - title_h - panel.height
        x0 = 8.0
        at = lambda p: (p[0] + x0, p[1] + y0)  # noqa: E731, B023
        for e in panel.edges:
            colour = EDGE_COLOURS.get(e.kind, "#333333") if e.live else DEAD
            pts = [at(p) for p in e.curve]
            codes = [MPath.MOVETO] + [MPath.CURVE4] * (len(pts) - 1)
            ax.add_patch(PathPatch(MPath(pts, codes), fill=False, edgecolor=colour, lw=1.3,
                                   linestyle="-" if e.live else "--", gid=gid("edge", panel.name, e.src, e.dst)))
            if e.head:
                ax.add_patch(Polygon([at(p) for p in e.head], closed=True, color=colour, lw=0))
            if e.label:
                ax.text(*at(e.label_at), e.label, fontsize=fs - 1, ha="center", va="center", color=colour,
                        gid=gid("edge-label", panel.name, e.src, e.dst))
        for n in panel.nodes:
            cx, cy = at((n.x, n.y))
            style: dict[str, Any] = dict(facecolor="#ffffff" if n.live else "#eeeeee",
                                         edgecolor="#222222" if n.live else DEAD, lw=1.1, gid=gid("node", panel.name, n.name))
            if n.shape == "ellipse":
                ax.add_patch(Ellipse((cx, cy), n.w, n.h, **style))
            else:
                ax.add_patch(FancyBboxPatch((cx - n.w / 2 + 3, cy - n.h / 2 + 3), n.w - 6, n.h - 6,
                                            boxstyle="round,pad=3", **style))
            ax.text(cx, cy, n.label, fontsize=fs, ha="center", va="center", linespacing=1.1,
                    color="#000000" if n.live else "#777777", gid=gid("node-label", panel.name, n.name))
        top = y0
    buf = io.BytesIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "nflc", "font.family": "DejaVu Sans"}):
        # marked as nflc's (nflc.outputs tells its own files from others by it)
        fig.savefig(buf, format=fmt, dpi=100,
                    metadata={"Date": None, "Creator": "nflc"} if fmt == "svg" else {"Software": "nflc"})
    plt.close(fig)
    return buf.getvalue()


def to_svg(drawing: Drawing) -> str:
    """SVG text; nodes and edges are groups with ids from :func:`gid`, labels are text."""
    return _render(drawing, "svg").decode()


def to_png(drawing: Drawing) -> bytes:
    return _render(drawing, "png")
