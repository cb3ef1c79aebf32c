"""The data-free score on NAS-Bench-101 and the variants its docstring reports.

    python benchmarks/bench_rank_nb101.py [../shared/data/nb101/nb101_cifar10.json]

Prints the Kendall tau (scipy) with val_accuracy of nflc's score (``architecture_score``),
of the file's proxy columns, and of the variants and diagnostics listed in
``nflc/analysis/rank_score.py`` (computed here by enumerating each cell's paths).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import networkx as nx
from scipy.stats import kendalltau, spearmanr

import nflc
from nflc.analysis.rank_score import architecture_score, node_cell_graph, rank_score
from nflc.space.graph import NodeCellPlan

REPO = Path(__file__).resolve().parents[1]
H = 6


def nb101_id(matrix: list[list[int]], labels: list[str]) -> str:
    """nflc's id of a NAS-Bench-101 (matrix, ops): a matrix of fewer than 7 vertices puts its output at X6."""
    n = len(labels)
    place = [*range(n - 1), H]
    ops = {place[v]: labels[v].replace("-", "_") for v in range(1, n - 1)}
    srcs = {t: sorted(place[i] for i in range(n) for j in range(n) if matrix[i][j] and place[j] == t) for t in range(1, H + 1)}
    return "+".join(f"{'' if t == H else ops.get(t, 'conv3x3_bn_relu')}({','.join(map(str, srcs[t]))})" for t in range(1, H + 1))


Weight = Callable[[dict], float]


def path_score(g: nx.DiGraph, t: Weight, mode: str = "share") -> float:
    """Mean path depth (``t`` per op on the path) of a node_cell_graph: ``share``: blocks of the
    concatenation weighted by their channel share (nflc's score); ``pool``: one mean over all
    paths; ``width``: as ``share`` with each op weighted by C / its width (the paper's
    a = 5/(8m) per layer), so the ``C/k``-wide blocks' depths add up."""
    live = nx.DiGraph([(u, v) for u, v in g.edges])
    if 0 not in live or H not in live or not nx.has_path(live, 0, H):
        return float("-inf")
    feeding = [b for b in live.predecessors(H) if b]
    c = sum(g.nodes[b]["channels"] for b in feeding) if feeding else 1

    def scale(v: int) -> float:
        return float(c / g.nodes[v]["channels"]) if mode == "width" and v != H else 1.0

    def depth(p: list[int]) -> float:
        return t(g.edges[0, p[1]]) * scale(p[1]) + sum(t(g.nodes[v]) * scale(v) for v in p[1:-1])

    paths = list(nx.all_simple_paths(live, 0, H))
    direct = [p for p in paths if p == [0, H]]
    if mode == "pool" or not feeding:
        return sum(map(depth, paths)) / len(paths)
    blocks = [[p for p in paths if p[-2] == b] + direct for b in feeding]
    return sum(sum(map(depth, b)) / len(b) for b in blocks) / len(blocks)


def main(path: str) -> None:
    space = nflc.load(REPO / "specs" / "nb101.nfl")
    entries = json.loads(Path(path).read_text())["architectures"]
    archs = [space.architecture(nb101_id(e["matrix"], e["ops"])) for e in entries]
    acc = [e["val_accuracy"] for e in entries]
    t0 = time.perf_counter()
    ours = [architecture_score(a) for a in archs]
    secs = (time.perf_counter() - t0) / len(archs)

    def tau(xs) -> float:
        return float(kendalltau(xs, acc).statistic)

    print(f"{len(entries)} architectures; nflc score: tau {tau(ours):.3f}, rho {spearmanr(ours, acc).statistic:.3f}, "
          f"{secs * 1e3:.2f} ms per architecture")
    for p in ("flops", "params", "synflow", "jacov", "snip", "grasp", "fisher", "grad_norm", "epe_nas", "plain", "l2_norm"):
        print(f"  proxy {p:10s} tau {tau([e[p] for e in entries]):+.3f}")

    cell = space.cell_of["module"]
    stages = [st for st in space.ir.network if st.kind == "cell"]
    graphs = [node_cell_graph(cell, a.choices["module"], (128, 32, 32), 128) for a in archs]

    def ln(a: dict) -> float:
        return math.log1p(a["params"]) if a.get("parameterized") else 0.0

    def one(a: dict) -> float:
        return 1.0 if a.get("parameterized") else 0.0

    def only(op: str, w: Weight) -> Weight:
        return lambda a: w(a) if a.get("op") == op else 0.0

    def integer_split(a) -> nx.DiGraph:  # the module's own channels (remainder to the first nodes)
        g = node_cell_graph(cell, a.choices["module"], (128, 32, 32), 128)
        plan = NodeCellPlan(cell, a.choices["module"], (128, 32, 32), 128)
        for v in plan.nodes:
            g.nodes[v]["params"] = nflc.ops.seq_cost(plan.ops[v], (plan.channels[v], 32, 32))[1]
            if "share" in g.nodes[v]:
                g.nodes[v]["share"] = plan.channels[v]
        for v in plan.projections:
            g.edges[0, v]["params"] = nflc.ops.seq_cost(plan.projection[v], (128, 32, 32))[1]
        return g

    rows = {
        "enumerated paths (= nflc)": [path_score(g, ln) for g in graphs],
        "concatenation pooled as a sum": [path_score(g, ln, "pool") for g in graphs],
        "theory depth, channel weights": [path_score(g, one) for g in graphs],
        "theory depth, pooled": [path_score(g, one, "pool") for g in graphs],
        "width factor 5/(8 n_l) per layer": [path_score(g, ln, "width") for g in graphs],
        "nine placements at their widths": [sum(rank_score(node_cell_graph(space.ir.cells[st.cell], a.choices["module"],
                                                                           tuple(st.shape_in), st.shape_out[0]))
                                                for st in stages) for a in archs],
        "integer channel split": [rank_score(integer_split(a)) for a in archs],
        "diagnostic: t of 3x3 convs only": [path_score(g, only("conv3x3_bn_relu", ln)) for g in graphs],
        "diagnostic: #3x3 per path, channel weights": [path_score(g, only("conv3x3_bn_relu", one)) for g in graphs],
        "diagnostic: #3x3 per path, pooled": [path_score(g, only("conv3x3_bn_relu", one), "pool") for g in graphs],
        "diagnostic: #3x3 per path, blocks summed": [path_score(g, only("conv3x3_bn_relu", one), "width") for g in graphs],
        "diagnostic: projections t = 0": [path_score(g, lambda a: 0.0 if a.get("op") == "projection" else ln(a))
                                          for g in graphs],
        "diagnostic: count of 3x3-conv nodes": [sum(g.nodes[v].get("op") == "conv3x3_bn_relu" for v in g if g.degree(v))
                                                for g in graphs],
        "diagnostic: count of 1x1-conv nodes": [sum(g.nodes[v].get("op") == "conv1x1_bn_relu" for v in g if g.degree(v))
                                                for g in graphs],
    }
    for name, xs in rows.items():
        print(f"  {name:45s} tau {tau(xs):+.3f}")


if __name__ == "__main__":
    from nflc.analysis.threads import script_threads

    script_threads()  # NFLC_THREADS, else the cores other jobs leave free
    main(sys.argv[1] if len(sys.argv) > 1 else str(REPO.parent / "shared" / "data" / "nb101" / "nb101_cifar10.json"))
