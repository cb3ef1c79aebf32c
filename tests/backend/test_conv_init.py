"""Initialisation of convolutions, batch norms and DARTS's ops against closed forms.

He-normal draws a weight with standard deviation ``gain / sqrt(fan_in)``, ``fan_in = k^2
C_in / groups`` (a depthwise convolution's is ``k^2``), gain sqrt(2) for a layer a ReLU
directly follows and 1 otherwise (docs/THEORY.md section 1, the backend's docstring);
Xavier uses ``fan_out = k^2 C_out``. The layers are large enough that the sample standard
deviation (relative standard error ``1 / sqrt(2 n)``) tells a right fan-in from a wrong one
by many standard errors. Batch norms start as the identity: weight 1, bias 0, running mean
0, running variance 1; without ``affine`` they have no weight."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import nflc

SPEC = """
space i {
    input [16, 12, 12]
    classes 3
    bias false
    INIT
    network = conv2d(3, 64) >> relu >> conv2d(5, 48) >> batchnorm >> sep_conv(3) >> dil_conv(5, 32)
           >> factorized_reduce(64, stride=2) >> resblock(64) >> conv2d(1, 40) >> batchnorm(affine=false)
           >> global_avg_pool >> linear(classes)
}"""

# every conv / linear in module order: (C_in / groups, k, C_out, gain) by the docs' rules
LAYERS = [
    ("conv2d(3, 64) >> relu", 16, 3, 64, math.sqrt(2)),
    ("conv2d(5, 48) >> batchnorm", 64, 5, 48, 1.0),
    ("sep_conv depthwise 1", 1, 3, 48, 1.0),
    ("sep_conv pointwise 1", 48, 1, 48, 1.0),
    ("sep_conv depthwise 2", 1, 3, 48, 1.0),
    ("sep_conv pointwise 2", 48, 1, 48, 1.0),
    ("dil_conv depthwise", 1, 5, 48, 1.0),
    ("dil_conv pointwise", 48, 1, 32, 1.0),
    ("factorized_reduce conv_1", 32, 1, 32, 1.0),
    ("factorized_reduce conv_2", 32, 1, 32, 1.0),
    ("resblock conv_a", 64, 3, 64, 1.0),
    ("resblock conv_b", 64, 3, 64, 1.0),
    ("conv2d(1, 40) >> batchnorm", 64, 1, 40, 1.0),
    ("readout", 40, 1, 3, 1.0),
]


def module(init: str = "", seed: int = 0) -> nn.Module:
    sp = nflc.loads(SPEC.replace("INIT", init))
    return sp.architecture(0).to_module(seed=seed)


def weighted(m: nn.Module) -> list[nn.Module]:
    return [x for x in m.modules() if isinstance(x, (nn.Conv2d, nn.Linear))]


def assert_std(w: torch.Tensor, want: float, what: str, sigmas: float = 5.0) -> None:
    n = w.numel()
    got = w.std().item()
    assert abs(got / want - 1) < sigmas / math.sqrt(2 * n), f"{what}: std {got:.5f}, closed form {want:.5f} ({n} weights)"
    assert abs(w.mean().item()) < sigmas * want / math.sqrt(n), f"{what}: mean {w.mean().item():.5f}"


def test_the_layers_are_the_ones_the_closed_forms_describe():
    m = module()
    shapes = [tuple(x.weight.shape) for x in weighted(m)]
    want = [(c_out, c_in, k, k) if name != "readout" else (c_out, c_in) for name, c_in, k, c_out, _ in LAYERS]
    assert shapes == want
    fr = [x for x in m.modules() if type(x).__name__ == "FactorizedReduce"]
    assert len(fr) == 1 and fr[0].conv_1.stride == (2, 2)


def test_he_normal_conv_fan_in_is_k_squared_input_channels_over_groups():
    m = module()
    for (name, c_in, k, _, gain), layer in zip(LAYERS, weighted(m), strict=True):
        assert_std(layer.weight.detach(), gain / math.sqrt(k * k * c_in), f"{name} (fan_in {k * k * c_in})")


@pytest.mark.parametrize("scheme", ["he_uniform", "xavier_normal", "xavier_uniform", "torch_default"])
def test_other_schemes_use_the_conv_fans(scheme):
    m = module(f"init {scheme}")
    for (name, c_in, k, c_out, gain), layer in zip(LAYERS, weighted(m), strict=True):
        fan_in, fan_out = k * k * c_in, k * k * c_out
        std = {"he_uniform": gain / math.sqrt(fan_in), "xavier_normal": gain * math.sqrt(2 / (fan_in + fan_out)),
               "xavier_uniform": gain * math.sqrt(2 / (fan_in + fan_out)), "torch_default": 1 / math.sqrt(3 * fan_in)}[scheme]
        w = layer.weight.detach()
        assert_std(w, std, f"{scheme} {name}")
        if scheme != "xavier_normal":  # uniform on [-sqrt(3) std, sqrt(3) std]
            assert w.abs().max().item() <= math.sqrt(3) * std * (1 + 1e-6), f"{scheme} {name}: beyond the bound"
            assert w.abs().max().item() >= 0.9 * math.sqrt(3) * std, f"{scheme} {name}: far inside the bound"


def test_batch_norms_start_as_the_identity():
    m = module()
    norms = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    # conv2d(5) bn, sep_conv's two, dil_conv's, factorized_reduce's, resblock's two, the last (not affine)
    assert [x.num_features for x in norms] == [48, 48, 48, 32, 64, 64, 64, 40]
    for x in norms[:-1]:
        assert x.affine and torch.equal(x.weight.detach(), torch.ones(x.num_features)), "batchnorm weight"
        assert torch.equal(x.bias.detach(), torch.zeros(x.num_features)), "batchnorm bias"
    assert norms[-1].weight is None and norms[-1].bias is None
    for x in norms:
        assert torch.equal(x.running_mean, torch.zeros(x.num_features)), "running mean"
        assert torch.equal(x.running_var, torch.ones(x.num_features)), "running variance"
        assert int(x.num_batches_tracked) == 0


def test_factorized_reduce_is_two_shifted_strided_projections_then_the_identity_norm():
    """At initialisation in eval mode the batch norm is the identity (up to its eps), so the
    op is relu, then conv_1 on the even pixels and conv_2 on the odd ones, concatenated:
    written here as two matrix products on the sub-sampled maps."""
    m = module()
    fr = next(x for x in m.modules() if type(x).__name__ == "FactorizedReduce").eval()
    x = torch.randn(2, 32, 6, 6, generator=torch.Generator().manual_seed(4))
    w1, w2 = fr.conv_1.weight.detach()[:, :, 0, 0], fr.conv_2.weight.detach()[:, :, 0, 0]
    r = torch.relu(x)
    even, odd = r[:, :, 0::2, 0::2], r[:, :, 1::2, 1::2]
    want = torch.cat([torch.einsum("oc,nchw->nohw", w1, even), torch.einsum("oc,nchw->nohw", w2, odd)], dim=1)
    with torch.no_grad():
        got = fr(x)
    torch.testing.assert_close(got, want / math.sqrt(1 + fr.bn.eps), rtol=1e-5, atol=1e-6,
                               msg="factorized_reduce: conv_1 on the even pixels, conv_2 on the odd ones")


def test_darts_ops_of_nas_bench_301_initialise_alike():
    """specs/darts.nfl's cells use sep_conv, dil_conv and factorized_reduce without affine
    batch norms: no norm weights, convolution weights by the same fan-in rule."""
    from pathlib import Path

    sp = nflc.load(Path(__file__).resolve().parents[2] / "specs" / "darts.nfl")
    a = sp.architecture("|sep_conv_5x5~0|dil_conv_5x5~1|+|sep_conv_3x3~0|dil_conv_3x3~2|+|skip_connect~0|sep_conv_5x5~1|"
                        "+|sep_conv_5x5~1|sep_conv_5x5~2|;|sep_conv_5x5~0|dil_conv_5x5~1|+|sep_conv_3x3~0|dil_conv_3x3~2|"
                        "+|skip_connect~0|sep_conv_5x5~1|+|sep_conv_5x5~1|sep_conv_5x5~2|")
    m = a.to_module(seed=1)
    checked = 0
    for name, layer in m.named_modules():
        if isinstance(layer, nn.Conv2d) and layer.weight.numel() >= 2000:
            k = layer.kernel_size[0]
            fan_in = layer.in_channels // layer.groups * k * k
            assert_std(layer.weight.detach(), 1 / math.sqrt(fan_in), f"{name} (fan_in {fan_in})")
            checked += layer.groups > 1
    assert checked >= 10  # depthwise convolutions of sep_conv and dil_conv among them
    cell_norms = [x for n, x in m.named_modules() if isinstance(x, nn.BatchNorm2d) and ".edges." in n]
    assert cell_norms and all(x.weight is None for x in cell_norms)


CELL_SPEC = """
space c {
    input [8, 10, 10]
    classes 3
    bias BIAS
    INIT
    cell {
        nodes 3
        edge * : zero | conv2d(3, 40) >> relu as cr | relu >> conv2d(3, 40) >> batchnorm as rcb
    }
    network = conv2d(3, 40) >> batchnorm >> cell >> global_avg_pool >> linear(classes)
}"""


def test_convolutions_on_cell_edges_get_the_gain_of_their_own_sequence():
    """`conv2d >> relu` on an edge: gain sqrt(2); `relu >> conv2d >> batchnorm`: gain 1; every
    fan-in 9 * 40 (the stem's 9 * 8)."""
    sp = nflc.loads(CELL_SPEC.replace("BIAS", "false").replace("INIT", ""))
    m = sp.architecture("|cr~0|+|rcb~0|cr~1|").to_module(seed=2)
    convs = [(n, x) for n, x in m.named_modules() if isinstance(x, nn.Conv2d)]
    assert len(convs) == 4
    gains = {"cr": math.sqrt(2), "rcb": 1.0}
    stem_name, stem = convs[0]
    assert_std(stem.weight.detach(), 1 / math.sqrt(9 * 8), f"stem {stem_name} (fan_in 72)")
    ops = {"0_1": "cr", "0_2": "rcb", "1_2": "cr"}
    for name, layer in convs[1:]:
        edge = next(k for k in ops if f".{k}." in name)
        assert_std(layer.weight.detach(), gains[ops[edge]] / math.sqrt(9 * 40), f"edge {edge} ({ops[edge]}) {name}")


@pytest.mark.parametrize("scheme", ["he_normal", "torch_default"])
def test_conv_biases_start_at_zero_or_torchs_default(scheme):
    sp = nflc.loads(CELL_SPEC.replace("BIAS", "true").replace("INIT", f"init {scheme}"))
    m = sp.architecture("|cr~0|+|rcb~0|cr~1|").to_module(seed=2)
    layers = [x for x in m.modules() if isinstance(x, (nn.Conv2d, nn.Linear))]
    biases = torch.cat([x.bias.detach() for x in layers])
    assert all(x.bias is not None for x in layers)
    if scheme == "he_normal":
        assert not biases.any(), "he_normal biases start at zero"
        return
    for x in layers:  # U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as torch draws them
        fan_in = x.weight[0].numel()
        assert x.bias.abs().max().item() <= 1 / math.sqrt(fan_in), "torch_default bias bound"
    big = torch.cat([x.bias.detach() * math.sqrt(x.weight[0].numel()) for x in layers if x.weight[0].numel() == 360])
    assert_std(big, 1 / math.sqrt(3), "torch_default biases scaled by sqrt(fan_in)", sigmas=6)
