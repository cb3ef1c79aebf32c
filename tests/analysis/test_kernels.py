"""Exact infinite-width kernels: hand-derived values, the closed-form P identity, space
sharing, summaries, and Monte Carlo estimates of wide torch networks (the key evidence)."""

from __future__ import annotations

import functools
import math
import random
from collections import Counter

import networkx as nx
import numpy as np
import pytest
import torch
from torch import nn

from nflc.analysis.empirical import empirical_nngp, empirical_ntk, he_init_scales
from nflc.analysis.kernels import (
    arccos_k1,
    cell_kernels,
    cell_moments,
    condition_number,
    inverse_quadratic,
    lambda_min,
    path_sum_nngp,
    space_kernels,
)


def orthonormal_inputs(n: int, d: int) -> np.ndarray:
    """n orthogonal inputs with |x|^2 = d, so q_in = I."""
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((d, n)))
    return math.sqrt(d) * q.T


F_OF_1_OVER_PI = (math.sqrt(1 - 1 / math.pi**2) + (math.pi - math.acos(1 / math.pi)) / math.pi) / math.pi
K0_OF_1_OVER_PI = (math.pi - math.acos(1 / math.pi)) / math.pi


# --- hand-derived values --------------------------------------------------------------------


def test_single_linear_edge_by_hand(make_cell):
    # q_in = I; stem: q_00 = k1(I) = 1 on the diagonal, 1/pi off it. One linear edge:
    # K = f(q_00); Theta = K + k0(q_in) q_in P_00 + k0(q_00) q_00 P_11, P_11 = 1,
    # P_00 = k0(q_00): diagonal 1 + 1 + 1 = 3 (three layers), off-diagonal
    # f(1/pi) + 0 + k0(1/pi) / pi.
    k = cell_kernels(make_cell("2"), orthonormal_inputs(3, 8))
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(np.diag(k.nngp), 1.0, rtol=1e-14)
    np.testing.assert_allclose(k.nngp[off], F_OF_1_OVER_PI, rtol=1e-14)
    np.testing.assert_allclose(np.diag(k.ntk), 3.0, rtol=1e-14)
    np.testing.assert_allclose(k.ntk[off], F_OF_1_OVER_PI + K0_OF_1_OVER_PI / math.pi, rtol=1e-14)


def test_all_skip_cell_by_hand(make_cell):
    # X3 = 4 X0 (four skip-only paths): K = 16 q_00, g^0 = 4 g^3 so P_00 = 16 and
    # Theta = 16 q_00 + 16 k0(q_in) q_in: diagonal 32.
    x = orthonormal_inputs(4, 8)
    k = cell_kernels(make_cell("1_11_111"), x)
    np.testing.assert_allclose(np.diag(k.nngp), 16.0, rtol=1e-14)
    np.testing.assert_allclose(k.nngp[0, 1], 16 / math.pi, rtol=1e-14)
    np.testing.assert_allclose(np.diag(k.ntk), 32.0, rtol=1e-14)
    np.testing.assert_allclose(k.ntk[0, 1], 16 / math.pi, rtol=1e-14)  # q_in = 0 off-diagonal
    np.testing.assert_allclose(cell_moments(make_cell("1_11_111"), x).mu[3], 4 / math.sqrt(math.pi))


@pytest.mark.parametrize("h", [1, 2, 5])
def test_relu_chain_ntk_diagonal_counts_layers(h):
    # A chain of h linear edges on |x|^2 = d: every layer adds 1 to the diagonal.
    cell = nx.DiGraph()
    cell.add_nodes_from(range(h + 1))
    for t in range(1, h + 1):
        for s in range(t):
            kind = "linear_relu" if s == t - 1 else "zero"
            cell.add_edge(s, t, kind=kind, parameterized=kind != "zero")
    k = cell_kernels(cell, orthonormal_inputs(3, 8))
    np.testing.assert_allclose(np.diag(k.ntk), h + 2, rtol=1e-14)


def test_dead_nodes_have_zero_statistics_and_no_nan(make_cell):
    # Node 1 has no input; 1->2 is linear from a zero node: relu(W 0) = 0, k0 = 0.
    x = np.random.default_rng(1).standard_normal((5, 7))
    mom = cell_moments(make_cell("0_22_002"), x)
    assert not np.any(mom.mu[1]) and not np.any(mom.q[1, 1]) and not np.any(mom.k0[1])
    q_in = x @ x.T / 7
    d = np.diag(q_in)
    q00 = arccos_k1(d[:, None], d[None, :], q_in)
    d0 = np.diag(q00)
    np.testing.assert_allclose(mom.q[2, 2], arccos_k1(d0[:, None], d0[None, :], q00), rtol=1e-14)
    for code in ("0_00_000", "0_22_002", "2_02_100", "0_20_001"):
        k = cell_kernels(make_cell(code), x)
        assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))
    zero = cell_kernels(make_cell("0_00_000"), x)
    assert not np.any(zero.nngp) and not np.any(zero.ntk)


def test_single_path_cells_equal_the_path_sum(make_cell):
    # With one path there are no cross terms: the paper's approximation is exact.
    x = np.random.default_rng(2).standard_normal((6, 9))
    for code in ("2_02_002", "1_01_001", "2_00_100"):
        np.testing.assert_allclose(path_sum_nngp(make_cell(code), x), cell_kernels(make_cell(code), x).nngp, rtol=1e-13)


def test_unsupported_kind_names_the_edge(make_cell):
    cell = make_cell("2_12_121")
    cell.edges[1, 3].update(kind="conv", op="nor_conv_3x3")
    with pytest.raises(ValueError, match=r"edge \(1, 3\) has kind 'conv' \(op 'nor_conv_3x3'\)"):
        cell_kernels(cell, np.ones((2, 3)))


# --- correlated inputs: closed forms and a reference derived in the tests -----------------
#
# Orthonormal inputs hide every term multiplied by an off-diagonal q_in (the stem's
# k0(q_in) q_in P_00 is then diagonal), and unit norms hide the diagonal's role in the
# arc-cosine maps. These inputs are correlated both ways and of unequal norms.


def correlated_inputs(n: int = 5, d: int = 7, seed: int = 11) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) + 0.8 * rng.standard_normal(d)  # a shared direction
    return x * np.linspace(0.5, 3.0, n)[:, None]


def test_correlated_inputs_are_neither_orthogonal_nor_normalized(ref):
    q = ref.input_gram(correlated_inputs())
    off = q[~np.eye(len(q), dtype=bool)]
    assert np.all(np.abs(off) > 1e-3) and off.min() < 0 < off.max()
    assert np.ptp(np.diag(q)) > 1.0


def test_reference_moments_are_the_gaussian_expectations(ref):
    """k1, k0 and m1 of the reference against 2 E[relu relu], 2 E[1 1] and sqrt(2) E[relu]
    integrated numerically over the bivariate normal."""
    from scipy import integrate

    for a, b, c in [(1.0, 1.0, 0.3), (2.0, 0.5, -0.6), (3.0, 1.2, 1.7), (0.7, 2.5, 0.0)]:
        det = a * b - c * c
        norm = 1 / (2 * math.pi * math.sqrt(det))

        def density(v, u, norm=norm, a=a, b=b, c=c, det=det):
            return norm * math.exp(-0.5 * (b * u * u - 2 * c * u * v + a * v * v) / det)

        both = integrate.dblquad(lambda v, u: u * v * density(v, u), 0, np.inf, 0, np.inf, epsabs=1e-12)[0]
        quadrant = integrate.dblquad(density, 0, np.inf, 0, np.inf, epsabs=1e-12)[0]
        assert ref.k1(a, b, c) == pytest.approx(2 * both, rel=1e-7)
        assert ref.k0(a, b, c) == pytest.approx(2 * quadrant, rel=1e-7)
        mean = integrate.quad(lambda u, a=a: u * math.exp(-u * u / (2 * a)) / math.sqrt(2 * math.pi * a), 0, np.inf)[0]
        assert ref.m1(a) == pytest.approx(math.sqrt(2) * mean, rel=1e-9)


@pytest.mark.parametrize("h", [1, 2, 3, 5])
def test_relu_chain_is_the_arccos_recursion_on_correlated_inputs(h, ref):
    """A chain of h linear edges is an MLP of h + 1 ReLU layers: Sigma' = k1(Sigma),
    Theta' = Sigma' + k0(Sigma) Theta from Sigma = Theta = q_in (the stem's weights enter
    through k0(q_in) q_in)."""
    x = correlated_inputs()
    cell = nx.DiGraph()
    cell.add_nodes_from(range(h + 1))
    for t in range(1, h + 1):
        for s in range(t):
            cell.add_edge(s, t, kind="linear_relu" if s == t - 1 else "zero")
    nngp, ntk = ref.chain(x, h + 1)
    k = cell_kernels(cell, x)
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(k.ntk, ntk, rtol=1e-12, atol=1e-14)


def test_sibling_edges_by_hand(make_cell, ref):
    """Two edges into one node, with the cross terms of their non-zero means.

    "1_22": X1 = X0, X2 = A(X0) + B(X1) with independent A, B: q_22 = 2 k1(q_00) + 2 m m'
    (m = m1(q_00(x, x))); g^0 reaches the readout through A and through B: P_00 =
    2 k0(q_00); Theta = q_22 + k0(q_in) q_in P_00 + 2 k0(q_00) q_00.
    "2_12": X1 = A(X0), X2 = X0 + B(X1): q_22 = q_00 + k1(q_11) + mu_0 n' + n mu_0'
    (n = m1(q_11(x, x)), mu_0 = m1(q_in(x, x))); P_11 = k0(q_11), P_00 = 1 + k0(q_00) k0(q_11);
    Theta = q_22 + k0(q_in) q_in P_00 + k0(q_00) q_00 P_11 + k0(q_11) q_11.
    """
    x = correlated_inputs()
    q_in = ref.input_gram(x)
    q00 = ref.k1_gram(q_in)
    mu0 = ref.m1(np.diag(q_in))
    m = ref.m1(np.diag(q00))

    k = cell_kernels(make_cell("1_22"), x)
    q22 = 2 * ref.k1_gram(q00) + 2 * np.outer(m, m)
    np.testing.assert_allclose(k.nngp, q22, rtol=1e-12)
    np.testing.assert_allclose(
        k.ntk, q22 + ref.k0_gram(q_in) * q_in * 2 * ref.k0_gram(q00) + 2 * ref.k0_gram(q00) * q00, rtol=1e-12)

    k = cell_kernels(make_cell("2_12"), x)
    q11 = ref.k1_gram(q00)
    n = ref.m1(np.diag(q11))
    q22 = q00 + ref.k1_gram(q11) + np.outer(mu0, n) + np.outer(n, mu0)
    p00 = 1 + ref.k0_gram(q00) * ref.k0_gram(q11)
    np.testing.assert_allclose(k.nngp, q22, rtol=1e-12)
    np.testing.assert_allclose(
        k.ntk,
        q22 + ref.k0_gram(q_in) * q_in * p00 + ref.k0_gram(q00) * q00 * ref.k0_gram(q11) + ref.k0_gram(q11) * q11,
        rtol=1e-12)


def test_every_h3_cell_and_h4_sample_matches_the_feature_expansion(make_cell, codes, ref):
    """The engine (pairwise node moments) against the reference (sums of independent
    features, path enumeration for the gradients) on correlated inputs."""
    x = correlated_inputs(n=4, d=6, seed=12)
    for code in codes(3) + random.Random(2).sample(codes(4), 60):
        cell = make_cell(code)
        k = cell_kernels(cell, x)
        nngp, ntk = ref.cell(cell, x)
        np.testing.assert_allclose(k.nngp, nngp, rtol=1e-11, atol=1e-13, err_msg=code)
        np.testing.assert_allclose(k.ntk, ntk, rtol=1e-11, atol=1e-13, err_msg=code)


# --- closed-form P identity -----------------------------------------------------------------


def closed_form_p(cell: nx.DiGraph, k0: tuple[np.ndarray, ...]) -> dict[tuple[int, int], np.ndarray]:
    """P_ab = sum over sequences L of linear edges of C_a[L] C_b[L] prod_{(s,t) in L} k0(q_ss),
    C_a[L] = number of paths a -> H whose linear edges are exactly L (by enumeration)."""
    h = cell.number_of_nodes() - 1
    live = nx.DiGraph([(s, t) for s, t, k in cell.edges(data="kind") if k != "zero"])
    live.add_nodes_from(range(h + 1))
    counts = []
    for a in range(h + 1):
        paths = [[h]] if a == h else nx.all_simple_paths(live, a, h)
        counts.append(Counter(
            tuple(e for e in zip(p, p[1:], strict=False) if cell.edges[e]["kind"] == "linear_relu") for p in paths
        ))
    p = {}
    for a in range(h + 1):
        for b in range(a, h + 1):
            total = 0.0
            for seq, ca in counts[a].items():
                term = ca * counts[b][seq]
                for s, _ in seq:
                    term = term * k0[s]
                total = total + term
            p[a, b] = total
    return p


def _check_closed_form(cell: nx.DiGraph, x: np.ndarray) -> None:
    mom = cell_moments(cell, x)
    for key, value in closed_form_p(cell, mom.k0).items():
        np.testing.assert_allclose(mom.p[key], np.broadcast_to(value, mom.p[key].shape), rtol=1e-12, atol=1e-14)


def test_backward_recursion_matches_closed_form_h3(make_cell, codes):
    x = np.random.default_rng(3).standard_normal((4, 5))
    for code in codes(3):
        _check_closed_form(make_cell(code), x)


def test_backward_recursion_matches_closed_form_h4_sample(make_cell, codes):
    x = np.random.default_rng(4).standard_normal((4, 5))
    for code in random.Random(0).sample(codes(4), 300) + ["1_11_111_1111", "1_11_002_0002"]:
        _check_closed_form(make_cell(code), x)


# --- space sharing, summaries --------------------------------------------------------------


def test_space_kernels_equal_cell_kernels(make_cell, codes):
    x = np.random.default_rng(5).standard_normal((6, 10))
    cells = [make_cell(c) for c in codes(3)]
    shuffled = random.Random(1).sample(cells, len(cells))
    for batch, cache in ((cells, 512 * 2**20), (shuffled, 3 * 6 * 6 * 8 * 5)):  # 2nd: evicting
        for cell, shared in zip(batch, space_kernels(batch, x, cache_bytes=cache), strict=True):
            alone = cell_kernels(cell, x)
            np.testing.assert_array_equal(shared.nngp, alone.nngp)
            np.testing.assert_array_equal(shared.ntk, alone.ntk)


def test_kernels_are_symmetric_psd_float64(make_cell, codes):
    x = np.random.default_rng(6).standard_normal((8, 12))
    for code, k in zip(codes(3), space_kernels([make_cell(c) for c in codes(3)], x), strict=True):
        for mat in (k.nngp, k.ntk):
            assert mat.dtype == np.float64
            np.testing.assert_allclose(mat, mat.T, rtol=1e-13, atol=1e-15)
            assert np.linalg.eigvalsh(mat)[0] >= -1e-12 * max(1.0, abs(mat).max()), code


def test_summaries_by_hand():
    k = np.diag([1.0, 4.0])
    assert lambda_min(k) == 1.0 and condition_number(k) == 4.0
    assert inverse_quadratic(k, np.array([1.0, 2.0])) == pytest.approx(2.0)
    singular = np.ones((3, 3))  # rank one
    assert lambda_min(singular) == 0.0
    assert condition_number(singular) == math.inf
    assert inverse_quadratic(singular, np.ones(3)) == math.inf
    assert inverse_quadratic(singular, np.zeros(3)) == 0.0
    zero = np.zeros((2, 2))
    assert lambda_min(zero) == 0.0 and condition_number(zero) == math.inf


# --- Monte Carlo ----------------------------------------------------------------------------


def monte_carlo(build, cell, x: np.ndarray, width: int, seeds: range) -> tuple[np.ndarray, np.ndarray]:
    """NNGP and NTK samples ``(S, N, N)`` over seeds of finite networks ``build(cell, width, seed)``.

    NNGP: Gram of the readout input / width. NTK: Jacobian contraction of the scalar
    output (``empirical_ntk``, checked against per-sample backprop in test_empirical), each
    weight weighted by its He init variance: the NTK parameterization the exact kernels
    describe (a standard-parameterized module's own NTK differs layer by layer).
    """
    xt = torch.tensor(x, dtype=torch.float32)
    nngp, ntk = [], []
    for seed in seeds:
        net = build(cell, width, seed)
        nngp.append(empirical_nngp(net, xt))
        ntk.append(empirical_ntk(net, xt, param_scale=he_init_scales(net, xt)))
    return np.array(nngp), np.array(ntk)


MC_CELLS = [
    "1_11_111",  # all skip
    "2_02_100",  # dead edges 0->1, 1->2
    "0_22_002",  # node 1 has no input
    "0_00_000",  # no path: both kernels vanish
    "1_11_002",  # skip reaches the linear edge through skip-only paths
    "2_02_002",  # all-linear chain
    "2_22_222",  # fully connected, all linear
    "2_12_121",
    "1_21_112",
    "2_12_101_1212",  # H = 4
]
MC_D, MC_N, MC_WIDTH, MC_SEEDS = 16, 6, 1024, range(64)


@pytest.fixture(scope="module")
def mc_inputs():
    return np.random.default_rng(7).standard_normal((MC_N, MC_D))


@pytest.fixture(scope="module")
def build(compiled_builder):
    # the compiled modules users get from nflc (arch.to_module), not a hand-written copy
    return functools.partial(compiled_builder, d_in=MC_D)


def test_compiled_module_is_the_hand_written_network(make_cell, mlp_builder, compiled_builder, mc_inputs):
    """Same architecture, same function class: both initialise W ~ N(0, gain / fan_in)."""
    cell = make_cell("1_21_112")
    x = torch.tensor(mc_inputs, dtype=torch.float32)
    a, b = compiled_builder(cell, 64, 0, MC_D), mlp_builder(cell, 64, 0, MC_D)
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())
    # copy the hand-written weights into the compiled module in module order: same outputs
    with torch.no_grad():
        for pa, pb in zip([m.weight for m in a.modules() if isinstance(m, nn.Linear)],
                          [m.weight for m in b.modules() if isinstance(m, nn.Linear)], strict=True):
            pa.copy_(pb)
    torch.testing.assert_close(a(x), b(x))


def _assert_within_se(samples: np.ndarray, exact: np.ndarray, n_se: float = 5.0) -> None:
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / math.sqrt(len(samples))
    slack = n_se * se + 1e-9 * max(1.0, abs(exact).max())  # exact zeros have zero spread
    worst = np.max(np.abs(mean - exact) / slack)
    assert worst <= 1.0, f"off by {worst * n_se:.1f} standard errors"


@pytest.mark.parametrize("code", MC_CELLS)
def test_exact_kernels_match_monte_carlo(code, make_cell, build, mc_inputs):
    cell = make_cell(code)
    nngp, ntk = monte_carlo(build, cell, mc_inputs, MC_WIDTH, MC_SEEDS)
    exact = cell_kernels(cell, mc_inputs)
    _assert_within_se(nngp, exact.nngp)
    _assert_within_se(ntk, exact.ntk)


def test_monte_carlo_rejects_the_path_sum_approximation(make_cell, build, mc_inputs):
    # The same evidence that accepts the exact kernel rejects the paper's approximation
    # on a cell with skip connections (the MC test has the power to see the difference).
    cell = make_cell("1_11_002")
    nngp, _ = monte_carlo(build, cell, mc_inputs, MC_WIDTH, MC_SEEDS)
    with pytest.raises(AssertionError, match="standard errors"):
        _assert_within_se(nngp, path_sum_nngp(cell, mc_inputs))


@pytest.mark.parametrize("code", ["1_11_002", "2_22_222"])
def test_monte_carlo_error_shrinks_with_width(code, make_cell, build, mc_inputs):
    # Per network the kernel fluctuates with variance O(1/m): 8x the width should cut the
    # RMS error by about sqrt(8) = 2.8.
    cell = make_cell(code)
    exact = cell_kernels(cell, mc_inputs)
    errors = {}
    for width in (256, 2048):
        nngp, ntk = monte_carlo(build, cell, mc_inputs, width, range(16))
        errors[width] = [
            math.sqrt(np.mean((s - e) ** 2) / np.mean(e**2)) for s, e in ((nngp, exact.nngp), (ntk, exact.ntk))
        ]
    for small, large in zip(errors[256], errors[2048], strict=True):
        assert large < small / 2, errors
