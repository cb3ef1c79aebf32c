"""A training-free, data-free ranking score for cell-based architecture spaces.

``rank_score(cell)`` ranks architectures by predicted accuracy (higher = better) from the
cell graph alone (``docs/CONTRACTS.md``): no data, no weights, no forward pass. It reads
only the structural edge attributes ``kind`` (to drop ``zero`` edges), ``parameterized``
and ``params`` (and, for node cells, the same on nodes, the ``share`` of the nodes a
concatenating output reads and the graph's ``output``; for concatenating cells the edges'
``layers`` and ``concat``); never op names, so it applies to any conv or MLP space.
``architecture_score(arch)`` scores a whole architecture (node cells through
:func:`node_cell_graph`, which adds the projections and node ops that ``arch.cell_graphs``
does not carry; concatenating cells through :func:`edge_cell_graph`, which adds each op's
layers and the real preprocessing; a network of two-input cells as a whole, step 7).

Derivation (notation of ``docs/THEORY.md`` sections 2-3, and section 7)
-----------------------------------------------------------------------
1. *Expressivity per path.* The paper's Theorem 4.1 gives the expected input-output
   Jacobian norm of a cell as ``E||J|| ~ C * sum_p exp(-a d_p)`` with ``a = 5/(8m)``
   (``m`` = width) and the curvature ``kappa = 1/||J||``. A cell node *sums* its inputs,
   so the raw sum grows with the number of paths ``P`` whatever the paths compute; the
   normalized networks we rank (NAS-Bench-201's ReLU-conv-BN ops, the readout of a
   normalized feature) remove that scale, so we compare the per-path average
   ``Jbar = (1/P) sum_p exp(-a d_p)`` and ``log kappa = -log Jbar``. In the wide limit in
   which the theory's kernels hold (``a -> 0``),
   ``log kappa = a * (1/P) sum_p d_p + O(a^2)``:
   to first order the expressivity is a positive multiple of the **mean path depth**
   ``dbar = (1/P) sum_p d_p`` (the 2022 paper's "effective depth"). ``a`` only scales the
   score, so it drops out of any ranking: no width constant is needed.
2. *Stacking.* A network stacks ``L`` cells (NAS-Bench-201: 3 stages x 5 = 15). Network
   paths are tuples of cell paths (``P**L`` of them) and their depths add, so the mean
   depth over network paths is exactly ``L * dbar`` and ``Jbar_net = Jbar_cell**L``.
   Both are monotone in the cell's value: the per-cell score ranks stacked networks
   identically, whatever ``L`` is (the fixed stem/reduction blocks add a constant).
3. *Transform weight of an edge.* The paper's ``d_p`` counts Linear+ReLU layers, all of
   one width, all alike. In a conv space ops differ in how much they transform, so each
   edge on a path contributes ``t(e) = ln(1 + params_e)`` if ``parameterized`` else ``0``:
   the log of the op's number of weights (a ``k x k`` conv ``C_in -> C_out`` with BN has
   ``k^2 C_in C_out + 2 C_out`` parameters, so ``t`` grows with the log fan-in
   ``ln(k^2 C_in)``, and a 3x3 conv transforms more than a 1x1). Constants: the ``1`` in
   ``ln(1 + params)`` makes ``t = 0`` exactly when an op has no weights; nothing else.
   Parameter-free ops (skip, average pooling, zero) carry no trainable transform: the
   theory's depth counts only parameterized layers, and pooling is a fixed linear average
   (receptive-field growth without parameters or a nonlinearity), so ``t = 0``. In a
   space of equal-width linear layers ``t`` is one constant for every parameterized
   edge, and the score ranks exactly as the paper's ``dbar``.

   The score is  ``S = (1/P) * sum_p sum_{e in p} t(e)``  over end-to-end paths ``p``
   (non-``zero`` edges from node 0 to node H), computed exactly by dynamic programming
   over nodes (path counts and depth sums), without enumerating paths.
4. *Failure modes.* No end-to-end path (``P = 0``): the output does not depend on the
   input (``Jbar = 0``, NNGP ``lambda_min = 0``): ``S = -inf`` (= ``log kappa`` of a
   zero Jacobian), below every other cell. A cell whose paths are all skip/pool-only
   transforms nothing: ``S = 0``, the lowest finite value. Adding a parameter-free
   shortcut path to a cell lowers ``S`` (it dilutes the mean: the wide, shallow side of the
   paper's trade-off); dead edges (on no end-to-end path) never change ``S``.

5. *Node cells* (NAS-Bench-101, ``docs/LANGUAGE.md`` "Node cells"). Ops sit on nodes:
   a node sums its inputs and applies its op; edges between nodes are skips (a cut to the
   first channels: no weights, ``t = 0``); an edge from X0 is a projection, a 1x1
   conv-bn-relu, i.e. a parameterized op like any other; the output concatenates the
   nodes feeding it and adds the projected input when X0 feeds it. On the computing
   graph (nodes and edges off every input-output path removed), a path
   ``0 -> v1 -> ... -> vm -> H`` passes the projection into ``v1`` (into ``H`` for the
   path ``0 -> H``) and the op of every ``vi`` once (the op acts on the node's sum, so on
   every path through the node): ``d_p = t(proj_v1) + sum_i t(op_vi)`` with the same
   ``t = ln(1 + params)``. Widths: the ``k`` nodes feeding the output share its ``C``
   channels and every other live node takes the largest of its successors', so every
   live node has ``C / k``; the score takes this exact share (the integer split gives the
   remainder to the first nodes in numbering order, which isomorphic cells do not share,
   so theirs would differ by a channel).

   *A concatenation is not a sum.* Channel block ``b`` of the output (node ``b``'s
   ``n_b = C / k`` channels) depends only on the paths through ``b``, plus the added
   projection ``0 -> H`` (its own path, in every block). Whatever reads the cell (the next
   cell's projections and convs, the final global pooling and linear map) sums over
   channels, so the normalized Jacobian of step 1 is the channel average
   ``Jbar = sum_b w_b Jbar_b`` with ``w_b = n_b / C`` and ``Jbar_b`` the per-path average
   over block ``b``'s paths. To first order ``log kappa = a * sum_b w_b dbar_b``:

       S = sum_b w_b * (1/P_b) sum_{p in b} d_p

   Pooling every path of every block into one mean (a sum of ``k`` paths) would let a
   block with many paths outweigh the others, though it owns only ``1/k`` of the
   channels. An output that sums (one block, ``w = 1``) gives step 3's formula: edge cells
   are the case ``k = 1`` and score as before. Stacking (step 2) still adds cell scores:
   the next cell reads all channels, so the weights of a network path multiply across
   cells and its expected depth is the sum of the cells'. Each cell is scored at its
   first placement's shape, as edge cells are. Exact rational weights per parameter
   count (parameter counts at a fractional width are exact rationals, see
   :func:`node_cell_graph`) make isomorphic cells score the same float.

6. *An op's layers.* The theory's ``d_p`` counts Linear+ReLU layers. An op that stacks
   several is several layers on every path through it: DARTS's ``sep_conv`` is (relu,
   depthwise k x k, pointwise 1x1, batch norm) twice, ``dil_conv`` that once. So an op
   contributes ``t(e) = sum over its layers l of ln(1 + params_l)``, a layer being a
   maximal run of its primitives between nonlinearities (``relu``) and ``params_l`` the
   run's parameters (:func:`layer_params`); a parameter-free op has no layer. Every op of
   NAS-Bench-201 (relu-conv-bn, pooling, skip) and -101 (conv-bn-relu, the projections) is
   one layer, so ``t = ln(1 + params)`` as in step 3 and their values are unchanged (bit
   for bit). The graphs of ``arch.cell_graphs`` carry an op's total parameters only:
   :func:`edge_cell_graph` adds each edge's ``layers``.

7. *Concatenating and two-input cells, stacked* (DARTS / NAS-Bench-301, ``docs/LANGUAGE.md``
   on cells). A cell has inputs X0 (the output of the cell two back) and X1 (of the cell
   before), each preprocessed to the cell's ``C`` channels (relu, 1x1 conv, batch norm, or
   after a reduction a factorized reduction: one layer each, at their own input widths);
   every intermediate node sums its two picked edges' ops; the output concatenates the
   ``k`` intermediate nodes, ``C`` channels each. In the graph (:func:`edge_cell_graph`)
   a source ``in`` feeds X0 and X1 through the preprocessing edges and every intermediate
   node feeds ``out`` through a ``concat`` edge.

   (a) *Blocks.* As in step 5, channel block ``b`` (node ``b``, share ``w_b = 1/k``: every
   node has ``C`` channels) depends only on the paths through ``b``; a node sums its
   inputs, so within the block the per-path mean of step 1 over the block's paths from the
   cell's inputs, and the cell's output is ``sum_b w_b * dbar_b``. A block that no input
   reaches is constant channels (no Jacobian) and left out; with none the cell is ``-inf``.

   (b) *Inputs.* A path enters at X0 or X1 through its preprocessing (one layer on it).
   Each input counts as **one** path: it is a normalized tensor (an earlier cell's output,
   itself a channel average of per-path means, then the preprocessing's batch norm), so
   neither input outweighs the other by the number of network paths behind it. Within a
   cell this is the graph's source ``in`` with one edge to each input.

   (c) *Stacking.* A path of cell ``k`` that enters at input ``i`` continues through the
   network paths of the tensor that input came from, so block ``b``'s mean depth is
   ``(1/N_b) sum_{p in b} (d_p + D(src_p))`` and, summing over blocks,

       D_k = c_k + alpha_k * D_{k-2} + (1 - alpha_k) * D_{k-1}

   where ``c_k`` is the cell's own score (inputs at depth 0, preprocessing included),
   ``alpha_k = sum_b w_b * n_b(X0) / N_b`` the channel-weighted share of its paths that
   enter at X0 and ``D_{k-1}``, ``D_{k-2}`` the depths of the two previous cells' outputs
   (the stem's for the first cell's inputs). Equivalently ``D`` is the expected depth of a
   network path drawn backwards from the logits: at each concatenation a block uniformly
   (its channel share), in the block one of its paths uniformly (the per-path mean), then
   on into the cell its input came from. Paths through X0 skip a cell, so ``alpha_k``
   measures how much cell ``k`` shortens the network. Every placement contributes its own
   graph: normal and reduction cells their own choices, at their own channels (``t`` at
   the placement's width; a reduction's skip from an input is a factorized reduction, a
   layer). Primitive stages add their layers (the stem's conv and batch norm one layer, the
   classifier one), so the score is the network's mean path depth from input to logits,
   ``S = D_L + t(classifier)``; these add the same constant to every architecture of a
   space. One pass over the network (:func:`_network_terms`); depths are exact forms
   ``sum_k q_k ln(1 + k)`` with rational ``q_k``, so mathematically tied networks tie.
   A network without two-input cells is scored as before (cell scores summed, steps 2-5).

Why only the expressivity term. ``rank_score_components`` also reports the paper's
convergence indicator (path-sum NNGP bound ``lambda <= sum_p (1 - f^{d_p}(rho))`` at
orthogonal inputs ``rho = 0``, the data-free choice) and generalization bound
(``sum_p d_p / sqrt(lambda)``) for the stacked network. On the NAS-Bench-201 CIFAR-10
subset (362 architectures, BN + 200 epochs, so convergence is rarely the bottleneck) both
rank *against* accuracy (Kendall tau about -0.06 and -0.55 per cell; -0.02 and -0.32 for
15 stacked cells), and so does the equal-weight product ``E * lambda / G`` (-0.36 / -0.13).
The convergence side enters the score only through the degenerate cells above and through
the per-path average. Measured there: ``S`` tau = 0.629 (rho 0.807), above the best of
twelve zero-cost proxies (nwot, tau 0.604). Variants tried, all on the same set: mean of
the theory depth (0/1 per parameterized edge) 0.616; mean with ``t = kernel`` for
parameterized edges 0.617; max depth 0.56-0.60; mean depth + ln(#paths with d>0)
0.53-0.61; log-sum-exp of depths 0.43-0.52; the paper's finite-width per-path curvature
with m = 16 0.589; receptive-field growth ``k - 1`` (pooling included) about 0.

NAS-Bench-101 (``../shared/data/nb101``, 250 architectures, CIFAR-10 validation accuracy;
step 5 chosen on the derivation above before measuring): ``S`` tau = 0.358 (rho 0.510),
**below** the file's best proxy columns, flops 0.518 and params 0.517, by 0.16, and below
synflow (0.437) by 0.08. Variants (all measured on this one file, none adopted): blocks
pooled into one path mean (a concatenation as a sum) 0.381; the theory depth (1 per
conv-bn-relu, projections included) 0.342 with channel weights, 0.363 pooled; the
paper's width factor kept per layer (``a_l = 5 / (8 n_l)``, Hanin-Nica's
``sum_l 1/n_l``: relative to ``C``, a ``C/k``-wide layer weighs ``k`` times, so the channel
weights cancel and a concatenation sums its blocks' depths) 0.335; the nine placements
summed, each at its own width, 0.358; the module's integer channel split 0.359. Where the
gap is (diagnostics read off the file, not candidates): the count of 3x3-conv nodes alone
gives 0.667, that of 1x1-conv nodes 0.04; the score with ``t`` kept only for 3x3 convs
0.641 (and the channel-weighted mean number of 3x3 convs per path 0.642, pooled 0.634,
summed over blocks 0.588). So the path and concatenation structure carries the ranking;
what fails is the transform weight: ``ln(1 + params)`` gives a 1x1 conv-bn-relu 82% of a
3x3's (``ln 16641 / ln 147713`` at 128 channels), and the theory's MLP-derived depth
counts them alike, while NAS-Bench-101's accuracy follows the spatially mixing 3x3
convs. A weight that separates them from the ops' structure alone, keeps NAS-Bench-201's
values and is not read off this file was not found (NAS-Bench-201's receptive-field
variant above ranked about 0). ``python benchmarks/bench_rank_nb101.py`` prints all of these.

NAS-Bench-301 (``../shared/data/nb301``, 362 DARTS architectures, CIFAR-10 validation
accuracy; steps 6 and 7 chosen on the derivation above before measuring): ``S`` tau =
0.187 (rho 0.275), **below** the file's best proxy columns, nwot 0.415 by 0.23 and params
0.384 by 0.20; above the other eight proxies (synflow 0.160 the best of them). Before steps 6-7 (one mean
over all paths from ``in`` to ``out``, the two cells' first placements summed) it was
0.099. Variants (all measured on this file, none adopted): ``t`` of the whole op
(``sep_conv`` one layer) 0.084; the theory depth, 1 per parameterized layer 0.187, 1 per
parameterized op 0.070; the concatenation pooled as a sum of paths 0.173; inputs weighted
by the number of network paths behind them (raw path counts instead of step 7b) 0.189,
and with the concatenation pooled 0.204; every incoming edge of a node weighing alike (each
op's output normalized by its batch norm) 0.201; X0 read from the previous cell (no
skipping) 0.198; the cells alone, inputs at depth 0, first placements summed 0.185. Where
the gap is (diagnostics read off the file, not candidates): the ops' transforms rank the
right way (``t`` summed over the cells' edges, no paths, 0.379, as params; counting
``sep_conv`` as its two layers more than doubled the score's tau), but NAS-Bench-301's accuracy
*falls* with the cells' topological depth (normal cell: number of paths from its inputs
-0.28, longest node chain -0.25, edges read from X0 or X1 +0.28), while every mean-depth
variant rises with it: the wide, shallow side of the paper's trade-off (convergence)
wins on this benchmark, which the expressivity term does not see. Likewise skip
(``t = 0``) ranks well (+0.20 by its count in the normal cell) and pooling (also
``t = 0``) badly (-0.26 max, -0.28 average). ``python benchmarks/bench_rank_nb301.py``
prints all of these, computed from the genotypes by enumerating each cell's paths.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import networkx as nx

from nflc import ops
from nflc.analysis.indicators import relu_correlation
from nflc.space.graph import NodeCellPlan, cell_graph, edge_table, graph_offset, prune_dag
from nflc.space.topology import depth_counts, edge_incidences

if TYPE_CHECKING:
    from nflc.ir.model import CellIR, SpaceIR, StageIR
    from nflc.space import Architecture

#: A depth as an exact linear form ``sum_k coef_k * ln(1 + k)`` over parameter counts ``k``:
#: mathematically equal depths are equal forms, so they give equal floats.
Lin = dict[Any, Fraction]

__all__ = ["transform_weight", "layer_params", "rank_score", "rank_score_components", "node_cell_graph",
           "edge_cell_graph", "architecture_score", "NNGP_RHO"]

#: Input correlation at which the path-sum NNGP bound is evaluated in the components:
#: orthogonal inputs, the data-free choice (random high-dimensional inputs are nearly so).
NNGP_RHO = 0.0


def transform_weight(edge: dict[str, Any]) -> float:
    """``t(e) = ln(1 + params)`` for a parameterized, non-zero edge, else ``0``."""
    if edge.get("kind") == "zero" or not edge.get("parameterized", False):
        return 0.0
    return math.log1p(max(int(edge.get("params", 0) or 0), 0))


def _transform_key(attrs: dict[str, Any]) -> int | None:
    """The edge's parameter count when it is parameterized (its ``t(e)`` is ``ln(1 + key)``)."""
    return max(int(attrs.get("params", 0) or 0), 0) if attrs.get("parameterized", False) else None


def rank_score(cell: nx.DiGraph) -> float:
    """Mean over end-to-end paths of the summed transform weights ``ln(1 + params)``.

    Higher = better predicted accuracy. ``-inf`` when the cell has no end-to-end path;
    ``0.0`` when no path contains a parameterized op. See the module docstring; a node
    cell must come as :func:`node_cell_graph` builds it, a concatenating cell as
    :func:`edge_cell_graph` does (``architecture_score`` does both); a two-input cell is
    scored with both inputs at depth 0 (its place in the network: ``architecture_score``).
    """
    if _is_layered_cell(cell):
        terms = _edge_terms(cell)
        return float("-inf") if terms is None else _value(terms[0])
    if _is_scoring_node_cell(cell):
        return _node_cell_score(cell)
    # exact integer incidences per parameter count: mathematically tied cells stay exactly
    # tied (a float running sum would break ties by rounding order)
    paths, counts = edge_incidences(cell, _transform_key)
    if paths == 0:
        return float("-inf")
    return sum(
        math.log1p(v) * (c / paths)  # c / paths is correctly rounded: equal ratios, equal floats
        for v, c in sorted(counts.items())
    ) + 0.0


# ---------------------------------------------------------------- node cells (NAS-Bench-101)
def _is_scoring_node_cell(cell: nx.DiGraph) -> bool:
    """True for a graph :func:`node_cell_graph` built; ValueError for a node cell without
    its transforms (``arch.cell_graphs`` of a node cell: ops on nodes, projections absent)."""
    # node_cell_graph's nodes carry their channels; arch.cell_graphs' node-cell nodes only
    # their op (and whether it is parameterized)
    if cell.graph.get("output") == "concat" or any("channels" in a for _, a in cell.nodes(data=True)):
        return True
    if any("op" in a for _, a in cell.nodes(data=True)):
        raise ValueError(f"cell '{cell.graph.get('cell', '?')}' is a node cell: score it with "
                         "rank_score.architecture_score(arch) or rank_score(node_cell_graph(...))")
    return False


def _key(attrs: dict[str, Any]) -> Fraction | None:
    """An op's parameter count when it is parameterized (its transform is ``ln(1 + key)``)."""
    if attrs.get("kind") == "zero" or not attrs.get("parameterized", False):
        return None
    return Fraction(attrs.get("params", 0) or 0)


def _add(acc: dict[Fraction, int], other: dict[Fraction, int]) -> None:
    for k, c in other.items():
        acc[k] = acc.get(k, 0) + c


def _node_cell_score(cell: nx.DiGraph) -> float:
    """:func:`rank_score` of a graph with node transforms and a concatenating output."""
    coef = _node_cell_terms(cell)
    return float("-inf") if coef is None else _value(coef)


def _value(coef: Lin) -> float:
    """The float of an exact depth form, summed in a fixed order (equal forms, equal floats)."""
    return sum(math.log1p(k) * float(c) for k, c in sorted(coef.items())) + 0.0


def _node_cell_terms(cell: nx.DiGraph) -> Lin | None:
    """The score of a :func:`node_cell_graph` as an exact form (None: no input-output path).

    Exact rational weights per parameter count (as for edge cells), so isomorphic cells,
    whose path incidences are equal multisets, get equal floats."""
    h = max(cell.nodes)
    n = dict.fromkeys(cell.nodes, 0)
    n[0] = 1
    inc: dict[int, dict[Fraction, int]] = {v: {} for v in cell.nodes}  # transform incidences, paths 0 -> v
    live = [(s, t, a) for s, t, a in sorted(cell.edges(data=True), key=lambda e: (e[1], e[0])) if a.get("kind") != "zero"]
    for v in range(1, h):
        for s, _, a in (e for e in live if e[1] == v):
            n[v] += n[s]
            _add(inc[v], inc[s])
            if (k := _key(a)) is not None and n[s]:
                inc[v][k] = inc[v].get(k, 0) + n[s]
        if (k := _key(cell.nodes[v])) is not None and n[v]:
            inc[v][k] = inc[v].get(k, 0) + n[v]  # the node's op: once on every path through it

    def into_output(sources: list[tuple[int, dict]]) -> tuple[int, dict[Fraction, int]]:
        paths, out = 0, dict[Fraction, int]()
        for s, a in sources:
            paths += n[s]
            _add(out, inc[s])
            if (k := _key(a)) is not None and n[s]:
                out[k] = out.get(k, 0) + n[s]
        return paths, out

    ins = [(s, a) for s, t, a in live if t == h and n[s]]
    concat = cell.graph.get("output") == "concat"
    blocks = [(s, a) for s, a in ins if concat and "share" in cell.nodes[s]]
    added = [(s, a) for s, a in ins if not (concat and "share" in cell.nodes[s])]
    # a concatenation: each block of channels averages its own paths, the added ones with it
    groups = [(Fraction(cell.nodes[s]["share"]), [(s, a), *added]) for s, a in blocks] or [(Fraction(1), added)]
    total = sum(w for w, _ in groups)
    coef: dict[Fraction, Fraction] = {}
    for w, sources in groups:
        paths, counts = into_output(sources)
        if paths == 0:
            return None
        for k, c in counts.items():
            coef[k] = coef.get(k, Fraction(0)) + w / total * Fraction(c, paths)
    return coef


def _interpolate(xs: list[int], ys: list[int], x: Fraction) -> Fraction:
    """The polynomial of degree < len(xs) through ``(xs, ys)`` at ``x`` (Lagrange, exact)."""
    out = Fraction(0)
    for i, (xi, yi) in enumerate(zip(xs, ys, strict=True)):
        term = Fraction(yi)
        for j, xj in enumerate(xs):
            if j != i:
                term *= (x - xj) / Fraction(xi - xj)
        out += term
    return out


def node_cell_graph(cell: CellIR, choice: tuple[int, ...], shape_in: tuple[int, ...], c_out: int) -> nx.DiGraph:
    """The scoring graph of a node cell placed on ``shape_in`` with ``c_out`` output channels.

    Nodes ``0 .. H``; only the computing graph (``graph.NodeCellPlan``'s pruned nodes and
    edges) has edges. Every live intermediate node carries its op's ``parameterized`` and
    ``params`` and its ``channels``; the nodes feeding the output a ``share`` (their
    channels); edges from X0 are the 1x1 projections (``kind`` ``"conv"``, their
    ``params``); the graph has ``output = "concat"``. Channels are the exact shares
    ``c_out / k`` of the ``k`` nodes feeding the output (every live node then has them):
    the integer split gives the remainder to the first nodes in numbering order, which
    isomorphic cells do not share. Parameter counts at a fractional width come from the
    plan at the widths ``n, n + 1, n + 2`` (output ``k * n``, every share exact),
    interpolated by the quadratic through them: exact for convolutions, linear maps and
    batch norm at the node's width (``a n**2 + b n``) and projections (``b n``).
    """
    h = cell.nodes - 1
    g = nx.DiGraph(cell=cell.name, output="concat")
    g.add_nodes_from((v, {"label": f"X{v}"}) for v in range(h + 1))
    ne = len(cell.edges)
    if not prune_dag(cell.nodes, [(e.src, e.dst) for e, c in zip(cell.edges, choice[:ne], strict=True)
                                  if e.choices[c].prim_tuple()[0].name != "zero"])[1]:
        return g  # no input-output path: no edges, the score is -inf
    plan = NodeCellPlan(cell, choice, shape_in, c_out)
    k = sum(1 for t in plan.inputs[h] if t != 0)
    hw = tuple(shape_in[1:])
    x = Fraction(c_out, k) if k else Fraction(c_out)
    if k:
        n0 = max(1, c_out // k)
        plans = [NodeCellPlan(cell, choice, shape_in, k * m) for m in (n0, n0 + 1, n0 + 2)]
        xs = [n0, n0 + 1, n0 + 2]
    else:  # only the projection feeds the output: its width is c_out exactly
        plans, xs = [plan], [c_out]

    def at_x(cost: Any) -> Fraction:
        ys = [cost(p) for p in plans]
        return _interpolate(xs, ys, x) if len(xs) > 1 else Fraction(ys[0])

    labels = {nd.node: nd.choices[choice[ne + i]].label for i, nd in enumerate(cell.node_ops)}
    for t in plan.nodes:
        prims = plan.ops[t]
        g.nodes[t].update(op=labels[t],
                          parameterized=ops.seq_parameterized(prims), channels=x,
                          params=at_x(lambda p, t=t: ops.seq_cost(p.ops[t], (p.channels[t], *hw))[1]))
        if t in plan.inputs[h]:
            g.nodes[t]["share"] = x
    for t, srcs in plan.inputs.items():
        for s in srcs:
            if s == 0:
                params = at_x(lambda p, t=t: ops.seq_cost(p.projection[t], tuple(shape_in))[1])
                g.add_edge(0, t, op="projection", kind="conv", parameterized=True, params=params)
            else:
                g.add_edge(s, t, op="skip", kind="skip", parameterized=False, params=0)
    return g


# ---------------------------------------------------------------- concatenating and two-input cells (DARTS)
def layer_params(prims: tuple[ops.Prim, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The parameter counts of an op's layers (step 6 of the derivation) at input ``shape``.

    A layer is a maximal run of primitives between nonlinearities (``relu``); DARTS's
    ``sep_conv`` is two (relu, depthwise, pointwise, batch norm, twice); layers without
    parameters are left out, so a parameter-free op has none and ``zero`` none. An op of one
    layer (every op of NAS-Bench-201 and -101) gives ``(params,)``: its ``t`` is unchanged."""
    layers: list[int] = []
    run = 0
    for p in prims:
        p = ops.bind(p, shape)  # a no-op for bound primitives
        spec = ops.PRIMS[p.name]
        if p.name == "zero":
            return ()
        if p.name == "relu":
            layers.append(run)
            run = 0
        elif p.name == "sep_conv":
            k, c = int(p.arg("k")), shape[0]
            first = k * k * c + c * c + (2 * c if p.arg("affine") else 0)
            layers.append(run)
            layers.append(first)
            run = spec.n_params(p, shape) - first
        else:
            run += spec.n_params(p, shape)
        shape = spec.shape(p, shape)
    layers.append(run)
    return tuple(n for n in layers if n > 0)


_TABLES: dict[tuple[int, tuple[int, ...]], tuple[CellIR, list[list[dict]], list[list[tuple[int, ...]]]]] = {}


def _tables(cell: CellIR, shape: tuple[int, ...]) -> tuple[list[list[dict]], list[list[tuple[int, ...]]]]:
    """``graph.edge_table`` of the cell at ``shape`` and the layers of every edge choice
    (``()`` for a zero edge), computed once per cell and shape."""
    key = (id(cell), tuple(shape))
    hit = _TABLES.get(key)
    if hit is not None and hit[0] is cell:
        return hit[1], hit[2]
    layers = []
    for e, src in zip(cell.edges, cell.edge_shapes(tuple(shape)), strict=True):
        row: list[tuple[int, ...]] = []
        for ch in e.choices:
            prims = ops.seq_bind(ch.prim_tuple(), src, cell.channels)
            row.append(() if ops.seq_kind(prims) == "zero" else layer_params(prims, src))
        layers.append(row)
    if len(_TABLES) > 256:
        _TABLES.clear()
    _TABLES[key] = (cell, edge_table(cell, shape), layers)
    return _TABLES[key][1], layers


def edge_cell_graph(cell: CellIR, choice: tuple[int, ...], stage: StageIR) -> nx.DiGraph:
    """The scoring graph of an edge cell placed at ``stage`` (a concatenating one: DARTS's).

    ``arch.cell_graphs``'s graph of the cell (``graph.cell_graph``: a two-input cell's source
    ``in`` feeding X0 and X1 through their preprocessing, every intermediate node feeding
    ``out`` through an edge with ``concat=True``) at the stage's input shape, with every
    edge's ``layers`` (:func:`layer_params`) and, for a two-input cell, the preprocessing the
    stage applies: X0's (from the input of the cell before: a 1x1 convolution or, after a
    reduction, a factorized reduction) and X1's, at their own shapes; the graph has
    ``inputs`` (1 or 2) and ``output`` (``"concat"`` or ``"sum"``).
    """
    shape = tuple(stage.shape_in)
    table, layers = _tables(cell, shape)
    g = cell_graph(cell, choice, shape, table=table)
    g.graph.update(inputs=cell.inputs, output=cell.output)
    off = graph_offset(cell)
    for k, (e, c) in enumerate(zip(cell.edges, choice, strict=False)):
        g.edges[e.src + off, e.dst + off]["layers"] = layers[k][c]
    for _, _, a in g.edges(data=True):
        if a.get("concat"):
            a["layers"] = ()
    if cell.inputs > 1:
        for x, (prims, at) in enumerate(zip(stage.preprocess, (stage.shape_prev, stage.shape_in), strict=True)):
            bound = tuple(q.to_prim() for q in prims)
            a = g.edges[0, x + 1]
            a.update(params=ops.seq_cost(bound, tuple(at or shape))[1], layers=layer_params(bound, tuple(at or shape)),
                     prims=tuple(q.name for q in bound))
    return g


def _is_layered_cell(cell: nx.DiGraph) -> bool:
    """True for a graph of :func:`edge_cell_graph` (edges with ``layers``); ValueError for a
    concatenating cell without them (``arch.cell_graphs``'s graph)."""
    edges = [a for _, _, a in cell.edges(data=True)]
    if not any(a.get("concat") for a in edges):
        return any("layers" in a for a in edges)
    if any("layers" not in a for _, _, a in cell.edges(data=True) if a.get("kind") != "zero"):
        raise ValueError(f"cell '{cell.graph.get('cell', '?')}' concatenates its nodes: score it with "
                         "rank_score.architecture_score(arch) or rank_score(edge_cell_graph(...)), whose edges "
                         "carry their layers and a two-input cell its own preprocessing")
    return True


def _add_lin(acc: Lin, other: Lin, times: Fraction | int = 1) -> None:
    for k, c in other.items():
        acc[k] = acc.get(k, Fraction(0)) + times * c


def _edge_terms(cell: nx.DiGraph) -> tuple[Lin, tuple[Fraction, ...]] | None:
    """``(c, alpha)``: the cell's output depth is ``c + sum_i alpha_i * D_i`` when its input
    ``i`` has depth ``D_i`` (``sum_i alpha_i = 1``); None when no input reaches the output.

    A graph of :func:`edge_cell_graph`. Each input is one path (a normalized tensor);
    ``n[v][i]`` counts the paths from input ``i`` to node ``v``, ``S[v]`` sums their depths in
    the cell (each edge's layers, a two-input cell's preprocessing included). A block ``b``
    of the concatenation has depth ``(S[b] + sum_i n[b][i] D_i) / N_b``, the output the
    mean over the blocks reached from an input (equal channel shares)."""
    m = int(cell.graph.get("inputs", 1))
    h = max(cell.nodes)
    n: dict[int, list[int]] = {v: [0] * m for v in cell.nodes}
    depth: dict[int, Lin] = {v: {} for v in cell.nodes}
    if m == 1:
        n[0][0] = 1
    else:  # node 0 is the source 'in'; X0 .. X(m-1) are nodes 1 .. m, each one path through its preprocessing
        for i in range(m):
            n[i + 1][i] = 1
            depth[i + 1] = _layers_form(cell.edges[0, i + 1]["layers"])
    blocks = []
    for s, t in sorted(cell.edges, key=lambda e: (e[1], e[0])):
        a = cell.edges[s, t]
        if a.get("kind") == "zero" or (m > 1 and s == 0):
            continue
        if a.get("concat"):
            blocks.append(s)
            continue
        paths = sum(n[s])
        if not paths:
            continue
        n[t] = [x + y for x, y in zip(n[t], n[s], strict=True)]
        _add_lin(depth[t], depth[s])
        for k in a["layers"]:
            depth[t][k] = depth[t].get(k, Fraction(0)) + paths
    ends = [b for b in blocks if sum(n[b])] if blocks else ([h] if sum(n[h]) else [])
    if not ends:
        return None
    c: Lin = {}
    alpha = [Fraction(0)] * m
    for b in ends:
        w = Fraction(1, len(ends) * sum(n[b]))
        _add_lin(c, depth[b], w)
        for i in range(m):
            alpha[i] += w * n[b][i]
    return c, tuple(alpha)


def _layers_form(layers: tuple[int, ...]) -> Lin:
    out: Lin = {}
    for k in layers:
        out[k] = out.get(k, Fraction(0)) + 1
    return out


def _network_terms(arch: Architecture, ir: SpaceIR) -> Lin | None:
    """The network's mean path depth (step 7) as an exact form: one pass over its stages.

    ``cur`` is the depth of the tensor flowing between stages, ``before`` the depth of the
    previous cell's input (a two-input cell's X0). A primitive stage adds its layers (runs
    of consecutive primitives between nonlinearities are one layer, as inside an op); a cell
    maps its inputs' depths through :func:`_edge_terms` (a node cell adds its score). None
    when a cell has no input-output path."""
    cur: Lin = {}
    before: Lin | None = None
    run: list[ops.Prim] = []
    run_shape: tuple[int, ...] = ()

    def flush() -> None:
        if run:
            _add_lin(cur, _layers_form(layer_params(tuple(run), run_shape)))
            run.clear()

    for st in ir.network:
        if st.kind == "prim":
            assert st.prim is not None  # a primitive stage names its primitive
            p = st.prim.to_prim()
            if p.name == "relu":
                flush()
            if not run:
                run_shape = tuple(st.shape_in)
            run.append(p)
            continue
        flush()
        assert st.cell is not None and st.instance is not None  # a cell stage names its cell
        cell = ir.cells[st.cell]
        choice = arch.choices[st.instance]
        out: Lin = dict(cur)
        if cell.is_node_cell:
            terms = _node_cell_terms(node_cell_graph(cell, choice, tuple(st.shape_in), st.shape_out[0]))
            if terms is None:
                return None
            _add_lin(out, terms)
        else:
            found = _edge_terms(edge_cell_graph(cell, choice, st))
            if found is None:
                return None
            c, alpha = found
            inputs = [before if before is not None else cur, cur] if cell.inputs > 1 else [cur]
            out = dict(c)
            for a, d in zip(alpha, inputs, strict=True):
                _add_lin(out, d, a)
        before, cur = cur, out
    flush()
    return cur


def architecture_score(arch: Architecture) -> float:
    """The score of an architecture; ``-inf`` when a cell has no input-output path.

    A network of two-input cells (DARTS): the mean path depth of the whole network
    (:func:`_network_terms`, step 7). Otherwise :func:`rank_score` summed over the cell
    instances, each at the shape of its first placement (``arch.cell_graphs``); node cells
    through :func:`node_cell_graph`, concatenating cells and cells with an op of several
    layers through :func:`edge_cell_graph`."""
    sp = arch.space
    ir = sp.lowered(arch.constants_override) if sp.numeric and arch.constants_override else sp.ir
    if any(st.kind == "cell" and ir.cells[st.cell].inputs > 1 for st in ir.network if st.cell is not None):
        terms = _network_terms(arch, ir)
        return float("-inf") if terms is None else _value(terms)
    graphs = None
    total = 0.0
    for k in sp.instances:
        cell = ir.cells[ir.instance_cell[k]]
        st = next(s for s in ir.network if s.kind == "cell" and s.instance == k)
        if cell.is_node_cell:
            g = node_cell_graph(cell, arch.choices[k], tuple(st.shape_in), st.shape_out[0])
        elif cell.output == "concat" or any(len(ls) > 1 for row in _tables(cell, tuple(st.shape_in))[1] for ls in row):
            g = edge_cell_graph(cell, arch.choices[k], st)  # its ops' layers (one-layer ops: the same value)
        else:
            graphs = arch.cell_graphs if graphs is None else graphs
            g = graphs[k]
        total += rank_score(g)
    return total


def _convolve(a: list[float], b: list[float]) -> list[float]:
    out = [0.0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        if x:
            for j, y in enumerate(b):
                out[i + j] += x * y
    return out


def rank_score_components(cell: nx.DiGraph, n_cells: int = 1) -> dict[str, float]:
    """The score and the paper's three aspects, for ``n_cells`` stacked copies of ``cell``.

    Keys: ``score`` (= ``rank_score(cell)``, independent of ``n_cells``); ``paths``
    (cell ``P``); ``log_paths`` (``n_cells * ln P``, network paths multiply);
    ``skip_only_paths`` (cell paths with theory depth 0); ``mean_depth`` (theory depth
    ``dbar``, times ``n_cells``); ``expressivity`` (``score * n_cells``: mean transform
    depth of the network, higher = more expressive); ``convergence`` (path-sum NNGP bound
    ``sum over network paths of 1 - f^D(rho)`` at ``rho = NNGP_RHO``, higher = faster);
    ``generalization`` (``sum D / sqrt(convergence)``, lower = smaller gap; ``inf`` when
    there is no path). Path-sum forms drop cross-path terms, as the paper's do.
    """
    if n_cells < 1:
        raise ValueError("n_cells must be >= 1")
    if _is_layered_cell(cell) or _is_scoring_node_cell(cell):
        raise ValueError("the components are defined for edge cells whose output sums; this cell has only rank_score")
    score = rank_score(cell)
    hist = [float(c) for c in depth_counts(cell)]
    P = sum(hist)
    net = [1.0]
    for _ in range(n_cells):
        net = _convolve(net, hist) if hist else []
    lam = 0.0
    r = NNGP_RHO
    depth_sum = 0.0
    for D, c in enumerate(net):
        if D > 0:
            r = float(relu_correlation(r))
        lam += c * (1.0 - r)
        depth_sum += c * D
    return {
        "score": score,
        "paths": float(P),
        "log_paths": n_cells * math.log(P) if P > 0 else float("-inf"),
        "skip_only_paths": float(hist[0]) if hist else 0.0,
        "mean_depth": n_cells * sum(d * c for d, c in enumerate(hist)) / P if P > 0 else 0.0,
        "expressivity": n_cells * score,
        "convergence": lam,
        "generalization": depth_sum / math.sqrt(lam) if lam > 0 else float("inf"),
    }
