"""nflc.encodings by value, without the shared benchmark files: against nasbench-pytorch's
own ``ModelSpec`` (NAS-Bench-101's pruning and its isomorphism-invariant graph hash), a
brute force over a small node-cell space (each graph's class representative is the first
kept member of its networkx isomorphism class), and DARTS genotypes converted by hand
(NASLib's op codes, nodes' pairs sorted by input, the `pick` digits of docs/LANGUAGE.md)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import nflc
from nflc import encodings as enc

ROOT = Path(__file__).resolve().parents[1]
model_spec = pytest.importorskip("nasbench_pytorch.model.model_spec")  # the test extra installs it
from nasbench_pytorch.model import graph_util  # noqa: E402

NB101_OPS = ["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"]


def nb101_hash(matrix, ops) -> str:
    """NAS-Bench-101's graph hash of the pruned spec (``ModelSpec.hash_spec``, whose pruned
    matrix nasbench-pytorch keeps as a tensor that ``hash_module`` cannot sum: as an array)."""
    spec = model_spec.ModelSpec(np.array(matrix), list(ops))
    labeling = [-1] + [NB101_OPS.index(op) for op in spec.ops[1:-1]] + [-2]
    return graph_util.hash_module(spec.matrix.numpy(), labeling)


def random_specs(n: int, seed: int) -> list[tuple[list[list[int]], list[str]]]:
    """Valid NAS-Bench-101 specs (output reachable, at most 9 edges after pruning), 7 x 7."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        m = [[int(j > i and rng.random() < 0.35) for j in range(7)] for i in range(7)]
        ops = ["input"] + [rng.choice(NB101_OPS) for _ in range(5)] + ["output"]
        try:
            spec = model_spec.ModelSpec(np.array(m), list(ops))
        except RuntimeError:  # nasbench-pytorch fails on a spec whose output is unreachable
            continue
        if spec.valid_spec and int(spec.matrix.sum()) <= 9 and len(spec.ops) > 2:
            out.append((m, ops))
    return out


@pytest.fixture(scope="module")
def nb101():
    return nflc.load(ROOT / "specs" / "nb101.nfl")


def test_nb101_pruning_is_nasbenchs(nb101):
    for m, ops in random_specs(40, seed=1):
        spec = model_spec.ModelSpec(np.array(m), list(ops))
        pm, po = enc.prune_nb101(m, ops)
        assert (pm, po) == (spec.matrix.tolist(), spec.ops), ("pruned spec", m, ops)


def test_nb101_class_representatives_have_nasbenchs_graph_hash(nb101):
    """The representative ``unique`` keeps is a member of the graph's class: the same
    NAS-Bench-101 hash (isomorphism-invariant, ops included), earlier or equal in index
    order, and in the space; a graph that is not its class's first member is rejected by
    `unique` yet counted in the space through its class."""
    moved = 0
    for m, ops in random_specs(25, seed=2):
        arch = nb101.architecture(enc.to_id({"matrix": m, "ops": ops}, "nb101"))
        rep = enc.class_representative(arch)
        rm, ro = enc.id_to_nb101(rep.id)
        assert nb101_hash(rm, ro) == nb101_hash(m, ops), (arch.id, rep.id)
        assert rep.index <= arch.index, (arch.id, rep.id, "the class representative comes after the graph")
        assert rep.rejection is None, (arch.id, f"the class representative {rep.id} is not in the space: {rep.rejection}")
        assert enc.not_in_space(arch) is None, (arch.id, f"not_in_space: {enc.not_in_space(arch)}")
        if rep != arch:
            moved += 1
            assert arch.rejection is not None and arch.rejection.startswith("unique")
    assert moved >= 10


# ---------------------------------------------------------------- a small node-cell space, brute force

SMALL = """
space s {
    input [3, 8, 8]
    classes 3
    bias false
    op c3 = conv2d(3) >> batchnorm >> relu
    op mp = max_pool(3)
    cell m { nodes 4  channels 4  edge * : zero | skip  node * : c3 | mp }
    network = conv2d(3, 4) >> m >> global_avg_pool >> linear(classes)
    unique
}"""


def computing_graph(edges: list[tuple[int, int]], labels: tuple[int, ...]) -> nx.DiGraph | None:
    g = nx.DiGraph(edges)
    if 0 not in g or 3 not in g or not nx.has_path(g, 0, 3):
        return None
    live = {e for p in nx.all_simple_paths(g, 0, 3) for e in zip(p, p[1:], strict=False)}
    out = nx.DiGraph()
    out.add_edges_from(live)
    for v in out:
        out.nodes[v]["role"] = "in" if v == 0 else "out" if v == 3 else ("c3", "mp")[labels[v - 1]]
    return out


def test_every_graphs_class_representative_is_its_classes_first_member():
    sp = nflc.loads(SMALL)
    pairs = [(s, t) for t in range(1, 4) for s in range(t)]
    nm = nx.algorithms.isomorphism.categorical_node_match("role", None)
    firsts: list[tuple[nx.DiGraph, str]] = []
    expected = {}
    for bits in itertools.product((0, 1), repeat=6):  # zero before skip, (dst, src) order
        edges = [e for e, b in zip(pairs, bits, strict=True) if b]
        for labels in itertools.product((0, 1), repeat=2):  # node 1 most significant
            ident = "+".join(f"{('c3', 'mp')[labels[t - 1]] if t < 3 else ''}({','.join(str(s) for s, tt in edges if tt == t)})"
                             for t in range(1, 4))
            g = computing_graph(edges, labels)
            if g is None:
                continue
            first = next((f for other, f in firsts if nx.is_isomorphic(g, other, node_match=nm)), None)
            if first is None:
                firsts.append((g, ident))
                first = ident
            expected[ident] = first
    assert len(firsts) == sp.count()
    for ident, first in expected.items():
        arch = sp.architecture(ident)
        assert enc.class_representative(arch).id == first, (ident, "class representative")
        assert enc.not_in_space(arch) is None, (ident, f"not_in_space: {enc.not_in_space(arch)}")
        assert (arch.rejection is None) == (ident == first), ident


# ---------------------------------------------------------------- DARTS by hand

GENOTYPE = {
    "normal": [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
               ("skip_connect", 0), ("dil_conv_3x3", 2), ("avg_pool_3x3", 4), ("max_pool_3x3", 3)],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
               ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("dil_conv_5x5", 4)],
    "reduce_concat": [2, 3, 4, 5],
}
NORMAL_ID = "|sep_conv_3x3~0|sep_conv_3x3~1|+|skip_connect~0|sep_conv_3x3~1|+|skip_connect~0|dil_conv_3x3~2|" \
            "+|max_pool_3x3~3|avg_pool_3x3~4|"
REDUCE_ID = "|max_pool_3x3~0|max_pool_3x3~1|+|max_pool_3x3~1|skip_connect~2|+|max_pool_3x3~0|skip_connect~2|" \
            "+|skip_connect~2|dil_conv_5x5~4|"
# NASLib's codes: max_pool_3x3 0, avg_pool_3x3 1, skip_connect 2, sep_conv_3x3 3, sep_conv_5x5 4, dil_conv_3x3 5, dil_conv_5x5 6
COMPACT = [[[1, 3], [0, 3], [0, 2], [1, 3], [0, 2], [2, 5], [4, 1], [3, 0]],
           [[0, 0], [1, 0], [2, 2], [1, 0], [0, 0], [2, 2], [2, 2], [4, 6]]]


def pick_digit(edges: list[tuple[int, int]], n_inputs: int) -> int:
    """A node's digit (docs/LANGUAGE.md): its 2-subsets of inputs 0..n-1 in lexicographic
    order, 49 op pairs each, the first picked edge's op the more significant."""
    (a, op_a), (b, op_b) = sorted(edges)
    subsets = list(itertools.combinations(range(n_inputs), 2))
    return subsets.index((a, b)) * 49 + op_a * 7 + op_b


def cell_index(pairs: list[tuple[str, int]]) -> int:
    ops = list(enc.DARTS_OPS)  # specs/darts.nfl lists the edge ops in NASLib's code order
    index = 0
    for node in range(4):
        n_inputs = node + 2
        radix = len(list(itertools.combinations(range(n_inputs), 2))) * 49
        digit = pick_digit([(s, ops.index(op)) for op, s in pairs[2 * node: 2 * node + 2]], n_inputs)
        index = index * radix + digit
    return index


def test_a_darts_genotype_by_hand():
    assert enc.genotype_to_id(GENOTYPE) == f"{NORMAL_ID};{REDUCE_ID}"
    assert enc.genotype_to_compact(GENOTYPE) == COMPACT
    assert enc.to_id(COMPACT, "compact") == f"{NORMAL_ID};{REDUCE_ID}"
    canonical = enc.canonical_genotype(GENOTYPE)
    assert canonical["normal"][:2] == [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]], "canonical genotype: pairs by input"
    assert canonical["normal"][6:] == [["max_pool_3x3", 3], ["avg_pool_3x3", 4]], "canonical genotype: pairs by input"

    assert enc.id_to_genotype(f"{NORMAL_ID};{REDUCE_ID}") == canonical


def test_a_darts_genotypes_index_by_hand():
    darts = nflc.load(ROOT / "specs" / "darts.nfl")
    per_cell = 180 * 7**8
    normal, reduce = cell_index(GENOTYPE["normal"]), cell_index(GENOTYPE["reduce"])
    assert darts.raw_count() == per_cell**2
    want = normal * per_cell + reduce
    assert enc.convert(GENOTYPE, "genotype", "id") == f"{NORMAL_ID};{REDUCE_ID}"
    a = darts.architecture(f"{NORMAL_ID};{REDUCE_ID}")
    assert a.index == want, "index of the genotype"
    assert darts.architecture(want).id == f"{NORMAL_ID};{REDUCE_ID}"
    # the last choice of each node: its last 2-subset with dil_conv_5x5 on both edges
    last = darts.architecture(per_cell**2 - 1)
    assert last.id.split(";")[0] == "|dil_conv_5x5~0|dil_conv_5x5~1|+|dil_conv_5x5~1|dil_conv_5x5~2|" \
                                    "+|dil_conv_5x5~2|dil_conv_5x5~3|+|dil_conv_5x5~3|dil_conv_5x5~4|"


def test_nb201_op_indices_of_every_cell_by_hand():
    """NASLib's six codes in its edge order (0,1), (0,2), (0,3), (1,2), (1,3), (2,3) with
    codes skip_connect 0, none 1, nor_conv_3x3 2, nor_conv_1x1 3, avg_pool_3x3 4."""
    names = ["skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3"]
    naslib_edges = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    sp = nflc.load(ROOT / "specs" / "nb201.nfl", space="nb201")
    rng = random.Random(4)
    for _ in range(200):
        codes = [rng.randrange(5) for _ in range(6)]
        op = dict(zip(naslib_edges, (names[c] for c in codes), strict=True))
        text = "+".join("|" + "|".join(f"{op[(s, t)]}~{s}" for s in range(t)) + "|" for t in (1, 2, 3))
        assert enc.op_indices_to_nb201(codes) == text
        assert enc.nb201_to_op_indices(text) == codes
        assert sp.architecture(enc.to_id(codes, "op_indices")).id == text


def test_nb101_naslib_tuple_by_hand():
    m = [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    ops = ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]
    assert enc.nb101_to_naslib_tuple(m, ops) == [0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 4, 2, 1]
    ident = enc.nb101_to_id(m, ops)
    # vertex i is X_i, the output X6; nodes 3..5 have no edges and the first op
    assert ident == "conv3x3_bn_relu(0)+maxpool3x3(0)+conv3x3_bn_relu()+conv3x3_bn_relu()+conv3x3_bn_relu()+(1,2)"
