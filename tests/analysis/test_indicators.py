"""The paper's closed-form indicators against hand-derived values and eigenvalue interlacing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nflc.analysis.indicators import (
    curvature,
    expected_jacobian_norm,
    nngp_lambda_min_bound,
    normalized_gram,
    ntk_generalization_bound,
    ntk_generalization_upper,
    relu_correlation,
)
from nflc.analysis.kernels import path_sum
from nflc.space.topology import topology


def test_relu_map_by_hand():
    assert relu_correlation(0.0) == pytest.approx(1 / math.pi, rel=1e-15)
    assert relu_correlation(1.0, depth=7) == 1.0  # fixed point, exactly
    assert relu_correlation(-1.0) == pytest.approx(0.0, abs=1e-15)  # opposite inputs never co-fire
    f_inv_pi = (math.sqrt(1 - 1 / math.pi**2) + (math.pi - math.acos(1 / math.pi)) / math.pi) / math.pi
    assert relu_correlation(0.0, depth=2) == pytest.approx(f_inv_pi, rel=1e-14)
    assert relu_correlation(0.3, depth=0) == 0.3
    # f is increasing and pulls correlations toward 1.
    rho = np.linspace(-1, 0.99, 50)
    assert np.all(np.diff(relu_correlation(rho)) > 0) and np.all(relu_correlation(rho) > rho)


def test_jacobian_norm_and_curvature_by_hand(make_cell):
    m = 256
    chain = topology(make_cell("2_02_002"))
    assert expected_jacobian_norm(chain, m) == pytest.approx(math.exp(-15 / (8 * m)), rel=1e-15)
    assert curvature(chain, m) == pytest.approx(math.exp(15 / (8 * m)), rel=1e-15)
    assert expected_jacobian_norm(topology(make_cell("1_11_111")), m) == 4.0
    dead = topology(make_cell("0_00_000"))
    assert expected_jacobian_norm(dead, m) == 0.0 and curvature(dead, m) == 0.0
    # Few deep paths curve more than many shallow ones.
    assert curvature(chain, m) > curvature(topology(make_cell("1_11_211")), m)


def test_nngp_bound_by_hand(make_cell):
    k0 = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -0.2], [0.5, -0.2, 1.0]])
    # Chain: one path of depth 3; the largest f^3 is at the largest correlation, 0.5.
    assert nngp_lambda_min_bound(topology(make_cell("2_02_002")), k0) == pytest.approx(
        1 - relu_correlation(0.5, 3), rel=1e-14
    )
    # All skip: four depth-0 paths, 4 - 4 * 0.5.
    assert nngp_lambda_min_bound(topology(make_cell("1_11_111")), k0) == pytest.approx(2.0, rel=1e-14)
    assert nngp_lambda_min_bound(topology(make_cell("0_00_000")), k0) == 0.0


def test_nngp_bound_bounds_lambda_min_of_the_path_sum_kernel(make_cell, codes):
    # The path-sum kernel has diagonal P, and lambda_min is at most that of any 2 x 2
    # principal submatrix, P - |K_ij| (Cauchy interlacing).
    x = np.random.default_rng(0).standard_normal((7, 5)) + 0.5
    k0 = normalized_gram(x)
    for code in codes(3):
        topo = topology(make_cell(code))
        lam = np.linalg.eigvalsh(path_sum(topo.depth_counts, k0))[0]
        assert lam <= nngp_lambda_min_bound(topo, k0) + 1e-12, code


def test_nngp_bound_checks_its_input(make_cell):
    topo = topology(make_cell("2_02_002"))
    with pytest.raises(ValueError, match="unit diagonal"):
        nngp_lambda_min_bound(topo, 2 * np.eye(3))
    with pytest.raises(ValueError, match="at least 2"):
        nngp_lambda_min_bound(topo, np.eye(1))


def test_normalized_gram():
    x = np.array([[3.0, 0.0], [1.0, 1.0], [0.0, -2.0]])
    np.testing.assert_allclose(
        normalized_gram(x), [[1, 1 / math.sqrt(2), 0], [1 / math.sqrt(2), 1, -1 / math.sqrt(2)], [0, -1 / math.sqrt(2), 1]]
    )
    with pytest.raises(ValueError, match="all zeros"):
        normalized_gram(np.zeros((2, 3)))


def test_generalization_bounds_by_hand(make_cell):
    chain = topology(make_cell("2_02_002"))  # sum of depths 3
    theta, y = np.diag([1.0, 4.0]), np.array([1.0, -1.0])
    assert ntk_generalization_bound(chain, theta, y) == pytest.approx(3 * math.sqrt((1 + 1 / 4) / 2))
    assert ntk_generalization_upper(chain, theta) == pytest.approx(3.0)
    singular = np.ones((2, 2))
    assert ntk_generalization_bound(chain, singular, y) == math.inf
    assert ntk_generalization_upper(chain, singular) == math.inf
    skip = topology(make_cell("1_11_111"))  # no parameterized path: the term vanishes
    assert ntk_generalization_bound(skip, singular, y) == 0.0 and ntk_generalization_upper(skip, singular) == 0.0


def test_generalization_bound_below_its_upper_form_for_sign_labels(make_cell):
    rng = np.random.default_rng(1)
    topo = topology(make_cell("2_12_121"))
    for _ in range(20):
        a = rng.standard_normal((6, 6))
        theta, y = a @ a.T + 0.1 * np.eye(6), rng.choice([-1.0, 1.0], size=6)
        assert ntk_generalization_bound(topo, theta, y) <= ntk_generalization_upper(topo, theta) * (1 + 1e-12)
