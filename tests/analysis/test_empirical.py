"""Finite-width NNGP / NTK / curvature against independent computations.

The NTK reference is the paper's method: one backward pass per sample on a batch of one,
per-sample gradients flattened and contracted (no batching, no hooks, no factorisation).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nflc.analysis.empirical import (
    _pairwise_ntk,
    _per_sample_ntk,
    calibrate_batchnorm,
    circle_curvature,
    empirical_nngp,
    empirical_ntk,
    he_init_scales,
    weight_ntk,
)

# torch's own forward-mode AD setup (used by circle_curvature) warns about torch.jit.script.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:DeprecationWarning")


@pytest.fixture(autouse=True)
def float64_default():
    """Modules built in these tests are float64 so references agree to ~1e-12; restored after."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(saved)


def reference_ntk(module, x, output=None, scale=None) -> np.ndarray:
    scale = scale or {}
    module.eval()
    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    rows = []
    for i in range(x.shape[0]):
        out = module(x[i : i + 1]).reshape(-1)
        y = out.sum() if output == "sum" else out[0 if output is None else output]
        grads = torch.autograd.grad(y, [p for _, p in params], allow_unused=True)
        rows.append(
            torch.cat([
                (torch.zeros_like(p) if g is None else g).reshape(-1) * math.sqrt(scale.get(n, 1.0))
                for (n, p), g in zip(params, grads, strict=True)
            ])
        )
    jac = torch.stack(rows)
    return (jac @ jac.T).detach().numpy()


def mlp_with_biases() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3))


def conv_net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2, bias=False, padding_mode="reflect"),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 6, 2, padding="same", dilation=2),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(6, 1),
    )


class SkipNet(nn.Module):
    """In-place residual add, in-place ReLU, a Linear applied twice, LayerNorm, Conv1d."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 3, padding=1)
        self.inp = nn.Linear(24, 16)
        self.block = nn.Linear(16, 16)
        self.relu = nn.ReLU(inplace=True)
        self.norm = nn.LayerNorm(16)
        self.out = nn.Linear(16, 1)

    def forward(self, x):
        h = self.relu(self.inp(self.conv(x.unsqueeze(1)).flatten(1)))
        r = self.block(self.relu(self.block(h)))
        r += h
        return self.out(self.norm(r))


def test_mlp_with_biases_each_output_convention():
    net, x = mlp_with_biases(), torch.randn(7, 10)
    for output in (0, 2, "sum"):
        np.testing.assert_allclose(
            empirical_ntk(net, x, output=output), reference_ntk(net, x, output), rtol=1e-10, atol=1e-12
        )
    with pytest.raises(ValueError, match="3 outputs"):
        empirical_ntk(net, x)


def test_conv_net_with_batchnorm_and_pooling():
    net, x = conv_net(), torch.randn(5, 3, 8, 8)
    calibrate_batchnorm(net, torch.randn(16, 3, 8, 8))  # non-trivial running statistics
    assert not torch.allclose(net[1].running_var, torch.ones(8))
    np.testing.assert_allclose(empirical_ntk(net, x), reference_ntk(net, x), rtol=1e-10, atol=1e-12)


def test_skip_reuse_inplace_layernorm_conv1d():
    torch.manual_seed(2)
    net, x = SkipNet(), torch.randn(6, 6)
    np.testing.assert_allclose(empirical_ntk(net, x), reference_ntk(net, x), rtol=1e-10, atol=1e-12)


def test_param_scale_weights_each_term():
    net, x = mlp_with_biases(), torch.randn(4, 10)
    scale = {"0.weight": 0.3, "2.bias": 5.0}
    np.testing.assert_allclose(
        empirical_ntk(net, x, output=1, param_scale=scale), reference_ntk(net, x, 1, scale), rtol=1e-10
    )
    with pytest.raises(ValueError, match="no trainable parameter"):
        empirical_ntk(net, x, output=1, param_scale={"9.weight": 1.0})


def test_frozen_parameters_are_left_out():
    net, x = mlp_with_biases(), torch.randn(4, 10)
    net[2].weight.requires_grad_(False)
    np.testing.assert_allclose(empirical_ntk(net, x, output=0), reference_ntk(net, x, 0), rtol=1e-10)


@pytest.mark.parametrize("n,l,k,o", [(5, 1, 7, 3), (4, 6, 5, 2), (3, 9, 2, 11)])
def test_weight_ntk_routes_and_blocks_agree(n, l, k, o):  # noqa: E741 (l: the layers, as in the paper)
    gen = torch.Generator().manual_seed(n * l)
    u, g = torch.randn(n, l, k, generator=gen), torch.randn(n, l, o, generator=gen)
    jac = torch.einsum("nlo,nlk->nok", g, u).reshape(n, -1)
    expected = (jac @ jac.T).numpy()
    for route in (_pairwise_ntk, _per_sample_ntk):
        for block in (2**24, max(l * l, o * k)):  # one block, then the smallest blocks
            np.testing.assert_allclose(route(u, g, block).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(weight_ntk(u, g).numpy(), expected, rtol=1e-12)


def test_uncovered_modules_are_named():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.alpha = nn.Parameter(torch.ones(()))
            self.lin = nn.Linear(3, 1)

        def forward(self, x):
            return self.alpha * self.lin(x)

    with pytest.raises(ValueError, match="Scaled"):
        empirical_ntk(Scaled(), torch.randn(2, 3))
    batch_stats = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=False), nn.Linear(4, 1))
    with pytest.raises(ValueError, match="track_running_stats"):
        empirical_ntk(batch_stats, torch.randn(2, 3))
    tied = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 1))
    tied[1].weight = tied[0].weight
    with pytest.raises(ValueError, match="share a parameter"):
        empirical_ntk(tied, torch.randn(2, 3))


def test_training_flags_are_restored():
    net = conv_net()
    net.train()
    net[5].eval()
    empirical_ntk(net, torch.randn(2, 3, 8, 8))
    assert net.training and net[1].training and not net[5].training


def test_nngp_is_gram_of_readout_input():
    net, x = mlp_with_biases(), torch.randn(6, 10)
    feats = net[:-1](x).detach()
    np.testing.assert_allclose(empirical_nngp(net, x), (feats @ feats.T / 32).numpy(), rtol=1e-12)


def test_he_init_scales(mlp_builder, make_cell):
    net = mlp_builder(make_cell("2_12_121"), 64, seed=0, d_in=16)
    scales = he_init_scales(net, torch.randn(3, 16, dtype=torch.float32))
    assert scales == {
        "0.weight": 2 / 16,
        "2.edges.0_1.0.weight": 2 / 64,
        "2.edges.1_2.0.weight": 2 / 64,
        "2.edges.1_3.0.weight": 2 / 64,
        "3.weight": 1 / 64,
    }


# --- curvature ----------------------------------------------------------------------------


def _ellipse_curvature(a: np.ndarray, e0: np.ndarray, e1: np.ndarray, r: float, theta: np.ndarray):
    """Curvature of z = r A (e0 cos t + e1 sin t) in its own plane: c(t) = R (cos t, sin t)
    with [r A e0, r A e1] = Q R, so x'y'' - y'x'' = det R and kappa = |det R| / |R u'|^3."""
    _, rr = np.linalg.qr(np.stack([r * a @ e0, r * a @ e1], axis=1))
    du = np.stack([-np.sin(theta), np.cos(theta)])
    speed = np.linalg.norm(rr @ du, axis=0)
    return abs(np.linalg.det(rr)) / speed**3, speed


def test_linear_network_traces_an_ellipse():
    torch.manual_seed(3)
    d, k = 9, 5
    net = nn.Sequential(nn.Linear(d, k, bias=False), nn.Linear(k, 1, bias=False))
    u0, u1 = torch.randn(d), torch.randn(d)
    res = circle_curvature(net, u0, u1, n_points=16)
    e0 = (u0 / u0.norm()).numpy()
    e1 = (u1 - (u1 @ u0) / (u0 @ u0) * u0).numpy()
    e1 /= np.linalg.norm(e1)
    kappa, speed = _ellipse_curvature(net[0].weight.detach().numpy(), e0, e1, math.sqrt(d), res.theta)
    np.testing.assert_allclose(res.kappa, kappa, rtol=1e-9)
    np.testing.assert_allclose(res.speed, speed, rtol=1e-9)
    # A scalar output is a curve in R^1: no curvature.
    np.testing.assert_allclose(circle_curvature(net, u0, u1, target="output").kappa, 0.0, atol=1e-9)


def test_identity_network_traces_the_input_circle():
    d = 16
    net = nn.Sequential(nn.Identity(), nn.Linear(d, 1, bias=False))
    res = circle_curvature(net, torch.randn(d), torch.randn(d), n_points=8)
    np.testing.assert_allclose(res.kappa, 1 / math.sqrt(d), rtol=1e-12)  # radius sqrt(N0)
    assert res.length == pytest.approx(2 * math.pi * math.sqrt(d))


def test_smooth_network_matches_finite_differences():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 1))
    u0, u1 = torch.randn(4), torch.randn(4)
    res = circle_curvature(net, u0, u1, n_points=12)
    e0 = u0 / u0.norm()
    e1 = u1 - (u1 @ e0) * e0
    e1 = e1 / e1.norm()

    def z(t):
        x = 2.0 * (torch.cos(t)[:, None] * e0 + torch.sin(t)[:, None] * e1)
        return net[:-1](x).detach().numpy()

    t, h = torch.tensor(res.theta), 1e-4
    v = (z(t + h) - z(t - h)) / (2 * h)
    a = (z(t + h) - 2 * z(t) + z(t - h)) / h**2
    vv, aa, va = (v * v).sum(1), (a * a).sum(1), (v * a).sum(1)
    np.testing.assert_allclose(res.kappa, np.sqrt(vv * aa - va**2) / vv**1.5, rtol=1e-5)


def test_parallel_directions_are_rejected():
    net = nn.Sequential(nn.Linear(3, 1))
    u = torch.randn(3)
    with pytest.raises(ValueError, match="parallel"):
        circle_curvature(net, u, 2 * u)
