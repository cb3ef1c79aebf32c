"""The ranking components: hand-derived values, an independent NTK / NNGP, the reduced width,
failures that are named instead of raised."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import nflc
from nflc.analysis import empirical as E
from nflc.analysis import rank_components as R
from nflc.data import canonical_inputs

ROOT = Path(__file__).resolve().parents[2]

# a small conv space (3 x 8 x 8 inputs, 4 channels): every op kind the conv components meet
TINY = """
space tiny {
    input   [3, 8, 8]
    classes 3
    width   4
    bias    false
    cell {
        nodes 3
        edge * : none | skip_connect | nor_conv_1x1 | nor_conv_3x3 | avg_pool_3x3
    }
    network = conv2d(3, width) >> batchnorm >> cell x2 >> batchnorm >> relu >> global_avg_pool >> linear(classes, bias=true)
}
"""


# ------------------------------------------------------------------ the aggregate, by hand


def test_aggregate_sums_log_normalised_ranks():
    got = R.aggregate([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0]])
    # ranks (n = 3 best): column 1 -> 1, 2, 3; column 2 -> 3, 1, 2
    want = [math.log(1 / 3) + math.log(3 / 3), math.log(2 / 3) + math.log(1 / 3), math.log(3 / 3) + math.log(2 / 3)]
    assert got == pytest.approx(want)


def test_aggregate_ties_share_their_mean_rank_and_missing_values_rank_lowest():
    got = R.aggregate([[5.0, 5.0, 1.0, float("nan")], [0.0, -math.inf, 2.0, 1.0]])
    # column 1: nan lowest (1), then 1.0 (2), the tied 5.0s share (3 + 4) / 2; column 2: -inf 1, 0 -> 2, 1 -> 3, 2 -> 4
    want = [math.log(3.5 / 4) + math.log(2 / 4), math.log(3.5 / 4) + math.log(1 / 4),
            math.log(2 / 4) + math.log(4 / 4), math.log(1 / 4) + math.log(3 / 4)]
    assert got == pytest.approx(want)


def test_aggregate_puts_flagged_architectures_last_and_checks_lengths():
    got = R.aggregate([[1.0, 2.0, 3.0]], last=[False, False, True])
    assert got[2] == -math.inf and got[1] > got[0]
    with pytest.raises(ValueError):
        R.aggregate([[1.0, 2.0], [1.0]])
    with pytest.raises(ValueError):
        R.aggregate([])


# ------------------------------------------------------------------ components from a kernel, by hand


def test_components_of_a_kernel_with_every_pair_alike():
    # Theta = a I + b 11^T (N = 4, a = 2, b = 1): eigenvalues a (x3) and a + 4b
    theta = 2.0 * np.eye(4) + np.ones((4, 4))
    assert R.convergence(theta) == pytest.approx(2 / 6)
    # Theta_n = Theta / (a + b): eigenvalues 2/3 (x3) and 6/3 -> mean 1/lambda = (3 * 1.5 + 0.5) / 4
    assert R.white_label_quadratic(theta) == pytest.approx(1.25)
    assert R.generalization(theta) == pytest.approx(-math.sqrt(1.25))
    assert R.generalization_bound(theta, 2.0) == pytest.approx(-2.0 * math.sqrt(1.25))
    # a scale does not change the scale-free components
    assert R.convergence(7 * theta) == pytest.approx(R.convergence(theta))
    assert R.generalization(7 * theta) == pytest.approx(R.generalization(theta))


def test_white_label_quadratic_is_the_mean_over_labels():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    theta = a @ a.T + 0.5 * np.eye(5)
    tn = theta / np.mean(np.diag(theta))
    # E_y[y^T Theta_n^-1 y] / N over y with E[y y^T] = I is trace(Theta_n^-1) / N
    assert R.white_label_quadratic(theta) == pytest.approx(np.trace(np.linalg.inv(tn)) / 5)


def test_degenerate_kernels_give_the_worst_values_not_errors():
    single = np.ones((3, 3))  # rank one: one direction only
    assert R.convergence(single) == 0.0 and R.generalization(single) == -math.inf
    assert R.convergence(np.zeros((3, 3))) == 0.0 and R.generalization(np.zeros((3, 3))) == -math.inf
    assert R.generalization_bound(np.eye(3), -math.inf) == -math.inf  # no input-output path
    assert R.generalization_bound(np.eye(3), 0.0) == 0.0  # no parameterized layer: the bound's term vanishes
    assert R.convergence_nngp(np.zeros((3, 3))) == 0.0


def test_convergence_nngp_is_the_pair_bound_of_the_normalised_nngp():
    k = np.array([[1.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 9.0]])
    # correlations: (0,1) 1/2, (0,2) 0, (1,2) 1/6 -> 1 - max = 1/2
    assert R.convergence_nngp(k) == pytest.approx(0.5)


# ------------------------------------------------------------------ kernels against an independent computation


def _dense_kernels(module, x):
    """Theta = J J^T from torch.func's Jacobian of the summed logits, and the readout input Gram."""
    from torch.func import functional_call, jacrev

    params = {k: v.detach() for k, v in module.named_parameters()}
    buffers = {k: v.detach() for k, v in module.named_buffers()}

    def f(p, xi):
        return functional_call(module, (p, buffers), (xi[None],)).sum()

    rows = []
    for xi in x:
        g = jacrev(f)(params, xi)
        rows.append(torch.cat([g[k].reshape(-1) for k in params]))
    j = torch.stack(rows).double()
    feats = []
    readout = [m for m in module.modules() if isinstance(m, torch.nn.Linear)][-1]
    hook = readout.register_forward_hook(lambda _m, inp, _o: feats.append(inp[0].detach()))
    with torch.no_grad():
        module(x)
    hook.remove()
    phi = feats[0].reshape(len(x), -1).double()
    return (j @ j.T).numpy(), (phi @ phi.T / phi.shape[1]).numpy()


@pytest.mark.parametrize("arch_id", [
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|",
    "|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|",
])
def test_finite_kernels_match_torch_func_dense_jacobians(arch_id):
    sp = nflc.loads(TINY)
    arch = sp.architecture(arch_id)
    settings = R.KernelSettings(samples=6, seed=3, width=None, precision="float64")
    k = R.measure_kernels(arch, settings)
    assert k.source == "finite-width" and k.ntk.shape == (6, 6)
    # the same module, initialised and calibrated the same way, differentiated densely
    module = arch.to_module(seed=3).double()
    x = canonical_inputs(6, 3 * 8 * 8, seed=3).reshape(6, 3, 8, 8).double()
    E.calibrate_batchnorm(module, x)
    module.eval()
    theta, nngp = _dense_kernels(module, x)
    assert k.ntk == pytest.approx(theta, rel=1e-8, abs=1e-10)
    assert k.nngp == pytest.approx(nngp, rel=1e-8, abs=1e-12)
    ev = np.linalg.eigvalsh(theta)
    assert R.convergence(k.ntk) == pytest.approx(ev[0] / ev[-1], rel=1e-6)
    tn = theta / np.mean(np.diag(theta))
    assert R.generalization(k.ntk) == pytest.approx(-math.sqrt(np.trace(np.linalg.inv(tn)) / 6), rel=1e-6)


def test_exact_kernels_for_the_papers_mlp_skeleton():
    sp = nflc.load(ROOT / "specs" / "nfl_h3.nfl")
    arch = sp.architecture("|linear~0|+|linear~0|skip~1|+|zero~0|linear~1|linear~2|")
    k = R.measure_kernels(arch, R.KernelSettings(samples=5))
    assert k.source == "exact" and k.peak_bytes == 0
    # orthonormal inputs: every pair alike, so the exact kernels are a I + b 11^T
    off = k.ntk[~np.eye(5, dtype=bool)]
    assert np.ptp(off) < 1e-12 * abs(off[0]) and np.ptp(np.diag(k.ntk)) < 1e-12 * k.ntk[0, 0]
    a, b = k.ntk[0, 0] - off[0], off[0]
    assert R.convergence(k.ntk) == pytest.approx(a / (a + 5 * b))


# ------------------------------------------------------------------ the reduced width


def test_kernel_space_scales_the_channel_constants():
    nb201 = nflc.load(ROOT / "specs" / "nb201.nfl", space="nb201")
    nb101 = nflc.load(ROOT / "specs" / "nb101.nfl")
    darts = nflc.load(ROOT / "specs" / "darts.nfl")
    assert R.channel_constants(nb201) == {"width": 16}
    assert R.channel_constants(nb101) == {"stem": 128}
    assert R.channel_constants(darts) == {"c": 32}
    assert R.kernel_space(nb201, 16)[1] == {}  # the first cell reads 16 channels already
    assert R.kernel_space(nb101, 16)[1] == {"stem": 16}
    assert R.kernel_space(darts, 16)[1] == {"c": 5}  # the first cell reads 3c = 96 channels: c * 16 / 96
    assert R.kernel_space(nb101, None)[1] == {} and R.kernel_space(nb201, 64)[1] == {}  # never up
    small, over = R.kernel_space(nb101, 16)
    arch = nb101.architecture("conv1x1_bn_relu(0)+conv3x3_bn_relu()+conv3x3_bn_relu(0,2)+maxpool3x3(1,2,3)+conv3x3_bn_relu(0,4)+(0,1,5)")
    assert small.architecture(arch.id).params < arch.params


# ------------------------------------------------------------------ failures are named, not raised


def test_a_network_over_the_memory_limit_is_a_kernel_failure():
    sp = nflc.loads(TINY)
    arch = sp.architecture("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|")
    with pytest.raises(R.KernelFailure, match="over the memory limit"):
        R.measure_kernels(arch, R.KernelSettings(samples=4, memory=4096))
