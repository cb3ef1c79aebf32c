"""Cell graphs for the analysis tests, built without the parser (docs/CONTRACTS.md shape).

Two spellings of the paper's H = 3 MLP cells over ops {zero, skip, linear}:

* NB201-style ``"|linear~0|+|zero~0|linear~1|+|zero~0|zero~1|linear~2|"``: one group
  per target node 1..H listing its input edges by source;
* the paper's code ``"2_02_002"``: the same groups as digits, 0 = zero, 1 = skip,
  2 = linear (used here only to name cells the way the paper does).
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter

import networkx as nx
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import skip_init

OPS = ("zero", "skip", "linear")
_KIND = {"zero": "zero", "skip": "skip", "linear": "linear_relu"}
_PRIMS = {"zero": (), "skip": ("identity",), "linear": ("linear", "relu")}


def cell_from_groups(groups: list[list[str]], width: int = 256) -> nx.DiGraph:
    """``groups[t - 1][s]`` is the op of edge ``s -> t``."""
    cell = nx.DiGraph()
    h = len(groups)
    cell.add_nodes_from((i, {"label": f"X{i}"}) for i in range(h + 1))
    for t, group in enumerate(groups, start=1):
        assert len(group) == t, f"node {t} needs {t} inputs, got {group}"
        for s, op in enumerate(group):
            cell.add_edge(
                s,
                t,
                op=op,
                kind=_KIND[op],
                parameterized=op == "linear",
                params=width * width if op == "linear" else 0,
                kernel=None,
                prims=_PRIMS[op],
            )
    return cell


def cell_from_code(code: str) -> nx.DiGraph:
    return cell_from_groups([[OPS[int(c)] for c in group] for group in code.split("_")])


def cell_from_nb201(text: str) -> nx.DiGraph:
    groups = [[tok.split("~")[0] for tok in g.strip("|").split("|")] for g in text.split("+")]
    return cell_from_groups(groups)


def all_codes(h: int) -> list[str]:
    """Every cell of the complete H-node space, in lexicographic order of its code."""
    sizes = range(1, h + 1)
    choices = itertools.product("012", repeat=sum(sizes))
    codes = []
    for digits in choices:
        it = iter(digits)
        codes.append("_".join("".join(next(it) for _ in range(t)) for t in sizes))
    return codes


class MLPCell(nn.Module):
    """The paper's cell as a torch module: node t = sum of its incoming edges."""

    def __init__(self, cell: nx.DiGraph, width: int) -> None:
        super().__init__()
        self.h = cell.number_of_nodes() - 1
        self.inputs: dict[int, list[tuple[int, str]]] = {t: [] for t in range(1, self.h + 1)}
        self.edges = nn.ModuleDict()
        for s, t in sorted(cell.edges, key=lambda e: (e[1], e[0])):
            kind = cell.edges[s, t]["kind"]
            if kind == "zero":
                continue
            key = f"{s}_{t}"
            if kind == "skip":
                self.edges[key] = nn.Identity()
            else:  # weights are drawn by build_mlp: skip the default init
                self.edges[key] = nn.Sequential(skip_init(nn.Linear, width, width, bias=False), nn.ReLU())
            self.inputs[t].append((s, key))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for t in range(1, self.h + 1):
            out = torch.zeros_like(x)
            for s, key in self.inputs[t]:
                out = out + self.edges[key](nodes[s])
            nodes.append(out)
        return nodes[-1]


def build_mlp(cell: nx.DiGraph, width: int, seed: int, d_in: int, dtype=torch.float32) -> nn.Module:
    """stem -> cell -> readout, He-normal fan-in init, no biases (docs/THEORY.md section 1)."""
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        skip_init(nn.Linear, d_in, width, bias=False),
        nn.ReLU(),
        MLPCell(cell, width),
        skip_init(nn.Linear, width, 1, bias=False),
    ).to(dtype)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for lin in linears:
            gain = 1.0 if lin is linears[-1] else 2.0  # ReLU layers get He's factor 2
            lin.weight.normal_(0.0, (gain / lin.in_features) ** 0.5, generator=gen)
    return net


# The helpers reach the test modules as fixtures: test directories are not packages, so
# importing from conftest would depend on pytest's import mode.


@pytest.fixture(scope="session")
def make_cell():
    """``make_cell("2_02_002")`` or ``make_cell("|linear~0|+|...|")``."""
    return lambda text: cell_from_nb201(text) if "|" in text else cell_from_code(text)


@pytest.fixture(scope="session")
def codes():
    """``codes(h)``: every cell code of the complete H-node space."""
    return all_codes


@pytest.fixture(scope="session")
def mlp_builder():
    """``mlp_builder(cell, width, seed, d_in, dtype)``: the paper's network, He-initialised."""
    return build_mlp


# --- the compiled modules (what nflc users get) ---------------------------------------------

_SPEC = """
space mc {{
    input [{d}]
    classes 1
    width {width}
    bias false
    cell {{
        nodes {nodes}
        edge * : zero | skip | linear >> relu as linear
    }}
    network = linear(width) >> relu >> cell >> linear(classes)
}}
"""


@functools.lru_cache(maxsize=None)
def _space(d_in: int, width: int, nodes: int):
    import nflc

    return nflc.loads(_SPEC.format(d=d_in, width=width, nodes=nodes))


def compiled_mlp(cell: nx.DiGraph, width: int, seed: int, d_in: int) -> nn.Module:
    """The same network as :func:`build_mlp`, compiled by nflc from a .nfl spec."""
    h = cell.number_of_nodes() - 1
    ident = "+".join("|" + "|".join(f"{cell.edges[s, t]['op']}~{s}" for s in range(t)) + "|" for t in range(1, h + 1))
    arch = _space(d_in, width, h + 1).architecture(ident)
    return arch.to_module(seed=seed)


@pytest.fixture(scope="session")
def compiled_builder():
    """``compiled_builder(cell, width, seed, d_in)``: ``arch.to_module`` of the cell's architecture."""
    return compiled_mlp


# --- an independent reference for the exact kernels (docs/THEORY.md section 4) ------------------
#
# Written from the definitions, not from nflc.analysis.kernels: the arc-cosine moments with
# arccos (the engine uses arctan2), and the network as a sum of *features*. Every node is
# X^t = sum over features phi of c_t[phi] * phi, where the features are the stem's output
# and the output sqrt(2) relu(W X^s / sqrt(m)) of each linear edge s -> u, and c_t[phi] is
# the number of skip-only paths from the node u that phi enters to t. In the infinite-width
# limit two different features have independent weights, so E[phi(x) psi(x')] is the
# product of their means, and E[phi(x) phi(x')] = k1 of phi's input covariance. Gradients:
# P_aa = sum over sets L of linear edges of C_a[L]^2 prod_{(s->t) in L} k0(q_ss), with
# C_a[L] the number of paths a -> H whose linear edges are exactly L, and
# Theta = q_HH + sum over features phi of k0(cov_phi) * cov_phi * P_uu.


class ArcCosReference:
    """Arc-cosine moments, ReLU-chain recursions and DAG kernels, by the definitions."""

    @staticmethod
    def _cos_angle(a, b, c):
        sab = np.sqrt(np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.clip(np.where(sab > 0, c / np.where(sab > 0, sab, 1.0), 0.0), -1.0, 1.0)
        return sab, cos, np.arccos(cos)

    @classmethod
    def k1(cls, a, b, c):
        """2 E[relu(u) relu(u')] = sqrt(AB) (sin t + (pi - t) cos t) / pi."""
        sab, cos, t = cls._cos_angle(a, b, c)
        return sab * (np.sin(t) + (np.pi - t) * cos) / np.pi

    @classmethod
    def k0(cls, a, b, c):
        """2 E[1(u > 0) 1(u' > 0)] = (pi - t) / pi; 0 for a zero variance."""
        sab, _, t = cls._cos_angle(a, b, c)
        return np.where(sab > 0, (np.pi - t) / np.pi, 0.0)

    @staticmethod
    def m1(a):
        """sqrt(2) E[relu(u)] = sqrt(A / pi)."""
        return np.sqrt(np.asarray(a, dtype=np.float64) / np.pi)

    @classmethod
    def k1_gram(cls, q):
        d = np.diag(q)
        return cls.k1(d[:, None], d[None, :], q)

    @classmethod
    def k0_gram(cls, q):
        d = np.diag(q)
        return cls.k0(d[:, None], d[None, :], q)

    @staticmethod
    def input_gram(x):
        x = np.asarray(x, dtype=np.float64)
        return x @ x.T / x.shape[1]

    @classmethod
    def chain(cls, x, layers: int):
        """NNGP and NTK of ``layers`` ReLU layers (stem included) and a linear readout, by
        the textbook recursions: Sigma_1 = Theta_1 = q_in, Sigma' = k1(Sigma),
        Theta' = Sigma' + k0(Sigma) * Theta."""
        sigma = theta = cls.input_gram(x)
        for _ in range(layers):
            sigma, theta = cls.k1_gram(sigma), cls.k1_gram(sigma) + cls.k0_gram(sigma) * theta
        return sigma, theta

    @classmethod
    def cell(cls, cell: nx.DiGraph, x):
        """(NNGP, NTK) of stem -> cell -> readout by the feature expansion above."""
        h = max(cell.nodes)
        kind = {(s, t): k for s, t, k in cell.edges(data="kind") if k != "zero"}
        skip_paths = np.eye(h + 1, dtype=np.int64)  # [u, t]: skip-only paths u -> t
        for t in range(h + 1):
            for (s, tt), k in kind.items():
                if tt == t and k == "skip":
                    skip_paths[:, t] += skip_paths[:, s]
        q_in = cls.input_gram(x)
        feats = []  # (entry node u, input covariance, E[phi phi'], mean of phi)
        q_node = {}  # q_tt

        def add(u, cov):
            feats.append((u, cov, cls.k1_gram(cov), cls.m1(np.diag(cov))))

        for t in range(h + 1):
            if t == 0:
                add(0, q_in)
            for (s, tt), k in sorted(kind.items()):
                if tt == t and k == "linear_relu":
                    add(t, q_node[s])
            q = np.zeros_like(q_in)
            for i, (u, _, second, mean) in enumerate(feats):
                for j, (v, _, _, mean_v) in enumerate(feats):
                    coeff = skip_paths[u, t] * skip_paths[v, t]
                    if coeff:
                        q = q + coeff * (second if i == j else np.outer(mean, mean_v))
            q_node[t] = q
        live = nx.DiGraph(list(kind))
        live.add_nodes_from(range(h + 1))
        p_node = {}
        for a in range(h + 1):
            by_linear = Counter(
                tuple(e for e in zip(path, path[1:], strict=False) if kind[e] == "linear_relu")
                for path in ([[h]] if a == h else nx.all_simple_paths(live, a, h))
            )
            total = np.zeros_like(q_in)
            for seq, count in by_linear.items():
                term = np.full_like(q_in, float(count * count))
                for s, _ in seq:
                    term = term * cls.k0_gram(q_node[s])
                total = total + term
            p_node[a] = total
        ntk = q_node[h].copy()
        for u, cov, _, _ in feats:
            ntk = ntk + cls.k0_gram(cov) * cov * p_node[u]
        return q_node[h], ntk


@pytest.fixture(scope="session")
def ref():
    """:class:`ArcCosReference`: exact kernels by the definitions, for comparison."""
    return ArcCosReference
