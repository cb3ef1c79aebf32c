"""The data-free score on NAS-Bench-301 (DARTS) and the variants its docstring reports.

    python benchmarks/bench_rank_nb301.py [../shared/data/nb301/nb301_cifar10.json]

Prints the Kendall tau (scipy) with val_accuracy of nflc's score (``architecture_score``),
of the file's proxy columns, and of the variants and diagnostics listed in
``nflc/analysis/rank_score.py`` (step 7). The variants are computed here from the files'
genotypes alone: DARTS's network written out by hand (its channels, preprocessing and the
ops' parameter counts), each cell's paths enumerated with networkx, the network composed
in floats; the row of the chosen variant must equal nflc's score (checked).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

import networkx as nx
from scipy.stats import kendalltau, spearmanr

import nflc
from nflc.analysis.rank_score import architecture_score
from nflc.encodings import entry_id

REPO = Path(__file__).resolve().parents[1]
C = 32  # NAS-Bench-301's initial channels
CELLS = [("normal", C), ("normal", C), ("reduce", 2 * C), ("normal", 2 * C), ("normal", 2 * C), ("reduce", 4 * C),
         ("normal", 4 * C), ("normal", 4 * C)]
STEM = 3 * 9 * 3 * C + 2 * 3 * C  # conv 3x3, 3 -> 96, and its batch norm: one layer
HEAD = 4 * 4 * C * 10 + 10  # global pooling, linear 512 -> 10 with a bias
PROXIES = ("nwot", "params", "l2_norm", "flops", "synflow", "grasp", "grad_norm", "snip", "epe_nas", "jacov", "fisher",
           "plain")


def op_layers(op: str, c: int, reduction_input: bool) -> list[int]:
    """Parameter counts of an op's layers at ``c`` channels (NAS-Bench-301's ops: batch norms without affine)."""
    k = int(op[-1]) if op[-1].isdigit() else 0
    if op.startswith("sep_conv"):
        return [k * k * c + c * c] * 2  # (relu, depthwise, pointwise, bn) twice
    if op.startswith("dil_conv"):
        return [k * k * c + c * c]
    if op == "skip_connect":
        return [c * c] if reduction_input else []  # factorized_reduce (two 1x1 convs c -> c/2) in a reduction
    return []  # pooling, then a batch norm without parameters


def ln_weight(layers: list[int]) -> float:
    return sum(math.log1p(n) for n in layers)


T = {
    "layers": ln_weight,  # nflc's: ln(1 + params) per layer
    "op": lambda ls: math.log1p(sum(ls)) if ls else 0.0,  # ln(1 + params) of the whole op
    "theory": lambda ls: float(len(ls)),  # the paper's depth: parameterized layers
    "theory_op": lambda ls: 1.0 if ls else 0.0,  # one per parameterized op
}


def cell_paths(pairs: list, c: int, reduction: bool, t) -> dict[int, list[tuple[int, float]]]:
    """Per intermediate node 2..5: its paths from the inputs as (input, depth in the cell without preprocessing)."""
    g = nx.MultiDiGraph()
    g.add_nodes_from(range(6))
    for j, (op, src) in enumerate(pairs):
        g.add_edge(src, 2 + j // 2, w=t(op_layers(op, c, reduction and src < 2)))
    out = {}
    for b in range(2, 6):
        out[b] = [(o, sum(g.edges[u, v, k]["w"] for u, v, k in path))
                  for o in (0, 1) for path in nx.all_simple_edge_paths(g, o, b)]
    return out


def network_score(genotype: dict, t_mode: str = "layers", concat: str = "share", mass: str = "unit",
                  net: str = "dp", node: str = "paths") -> float:
    """The network's mean path depth, as rank_score.py step 7 defines it and as its variants change it."""
    t = T[t_mode]
    depth = {"stem": t([STEM])}
    tmass = {"stem": 1.0}
    prev_prev, prev, c_pp, c_p = "stem", "stem", 3 * C, 3 * C
    for k, (kind, c) in enumerate(CELLS):
        pre = [t([c_pp * c + 2 * c]), t([c_p * c + 2 * c])]  # X0: relu-conv1x1-bn or factorized_reduce; X1
        src = [prev_prev if net != "chain" else prev, prev]
        d_in = [depth[src[0]] + pre[0], depth[src[1]] + pre[1]]
        m_in = [tmass[src[0]], tmass[src[1]]] if mass == "paths" else [1.0, 1.0]
        pairs = genotype[kind]
        if node == "branch":  # every incoming edge weighs alike (each op's output normalized)
            d = {0: d_in[0], 1: d_in[1]}
            for j in range(4):
                (op1, s1), (op2, s2) = pairs[2 * j], pairs[2 * j + 1]
                r = kind == "reduce"
                d[2 + j] = (d[s1] + t(op_layers(op1, c, r and s1 < 2)) + d[s2] + t(op_layers(op2, c, r and s2 < 2))) / 2
            depth[k], tmass[k] = sum(d[b] for b in range(2, 6)) / 4, 1.0
        else:
            paths = cell_paths(pairs, c, kind == "reduce", t)
            blocks = [[(m_in[o], d_in[o] + dd) for o, dd in paths[b]] for b in range(2, 6)]
            if concat == "share":
                depth[k] = sum(sum(m * x for m, x in bl) / sum(m for m, _ in bl) for bl in blocks) / 4
                tmass[k] = sum(sum(m for m, _ in bl) for bl in blocks) / 4
            else:
                flat = [p for bl in blocks for p in bl]
                depth[k] = sum(m * x for m, x in flat) / sum(m for m, _ in flat)
                tmass[k] = sum(m for m, _ in flat)
        prev_prev, prev, c_pp, c_p = prev, k, c_p, 4 * c
    return depth[len(CELLS) - 1] + t([HEAD])


def first_placements(genotype: dict, t_mode: str = "layers", concat: str = "share") -> float:
    """The cells scored alone (both inputs at depth 0, first placement) and summed: no network."""
    t = T[t_mode]
    total = 0.0
    for kind, c, c_in in (("normal", C, 3 * C), ("reduce", 2 * C, 4 * C)):
        pre = t([c_in * c + 2 * c])
        paths = cell_paths(genotype[kind], c, kind == "reduce", t)
        if concat == "share":
            total += sum(sum(pre + d for _, d in paths[b]) / len(paths[b]) for b in range(2, 6)) / 4
        else:
            flat = [pre + d for b in range(2, 6) for _, d in paths[b]]
            total += sum(flat) / len(flat)
    return total


def main(path: str) -> None:
    space = nflc.load(REPO / "specs" / "darts.nfl")
    entries = json.loads(Path(path).read_text())["architectures"]
    archs = [space.architecture(entry_id(e)) for e in entries]
    acc = [e["val_accuracy"] for e in entries]
    t0 = time.perf_counter()
    ours = [architecture_score(a) for a in archs]
    secs = (time.perf_counter() - t0) / len(archs)

    def tau(xs) -> float:
        return float(kendalltau(xs, acc).statistic)

    genos = [e["genotype"] for e in entries]
    chosen = [network_score(g) for g in genos]
    worst = max(abs(x - y) for x, y in zip(ours, chosen, strict=True))
    assert worst < 1e-9, f"nflc's score and the enumerated reference differ by {worst}"
    print(f"{len(entries)} architectures; nflc score: tau {tau(ours):.3f}, rho {spearmanr(ours, acc).statistic:.3f}, "
          f"{secs * 1e3:.2f} ms per architecture (equal to the enumerated reference within {worst:.1e})")
    for p in PROXIES:
        print(f"  proxy {p:10s} tau {tau([e[p] for e in entries]):+.3f}")

    rows = {
        "network, channel shares, t per layer (= nflc)": chosen,
        "t of the whole op (sep_conv one layer)": [network_score(g, "op") for g in genos],
        "theory depth: 1 per parameterized layer": [network_score(g, "theory") for g in genos],
        "theory depth: 1 per parameterized op": [network_score(g, "theory_op") for g in genos],
        "concatenation pooled as a sum": [network_score(g, concat="pool") for g in genos],
        "inputs weighted by their network paths": [network_score(g, mass="paths") for g in genos],
        "pooled and weighted by network paths": [network_score(g, concat="pool", mass="paths") for g in genos],
        "pooled, network paths, t of the op": [network_score(g, "op", "pool", "paths") for g in genos],
        "every incoming edge alike (ops normalized)": [network_score(g, node="branch") for g in genos],
        "X0 read from the previous cell (no skip)": [network_score(g, net="chain") for g in genos],
        "cells alone, first placements summed": [first_placements(g) for g in genos],
        "cells alone, pooled, t of the op (before)": [first_placements(g, "op", "pool") for g in genos],
    }
    for name, xs in rows.items():
        print(f"  {name:48s} tau {tau(xs):+.3f}")

    def count(g: dict, kind: str, op: str) -> int:
        return Counter(o for o, _ in g[kind])[op]

    def chain(g: dict, kind: str) -> int:  # the longest node chain from the inputs
        d = {0: 0, 1: 0}
        for j in range(4):
            d[2 + j] = 1 + max(d[g[kind][2 * j][1]], d[g[kind][2 * j + 1][1]])
        return max(d.values())

    def n_paths(g: dict, kind: str) -> int:
        return sum(len(v) for v in cell_paths(g[kind], C, False, T["theory"]).values())

    diagnostics = {
        "sum of t over the cells' edges (no paths)": [sum(ln_weight(op_layers(o, c, kind == "reduce" and s < 2))
                                                          for kind, c in CELLS for o, s in g[kind]) for g in genos],
        "normal cell: paths from the inputs": [n_paths(g, "normal") for g in genos],
        "normal cell: longest chain": [chain(g, "normal") for g in genos],
        "normal cell: edges from X0 or X1": [sum(s < 2 for _, s in g["normal"]) for g in genos],
        **{f"normal cell: number of {op}": [count(g, "normal", op) for g in genos]
           for op in ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "skip_connect", "max_pool_3x3",
                      "avg_pool_3x3")},
    }
    for name, xs in diagnostics.items():
        print(f"  diagnostic: {name:36s} tau {tau(xs):+.3f}")


if __name__ == "__main__":
    from nflc.analysis.threads import script_threads

    script_threads()  # NFLC_THREADS, else the cores other jobs leave free
    main(sys.argv[1] if len(sys.argv) > 1 else str(REPO.parent / "shared" / "data" / "nb301" / "nb301_cifar10.json"))
