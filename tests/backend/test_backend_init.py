"""Initialisation: He-normal fan-in by default (docs/THEORY.md section 1), other schemes on
request, seeded and reproducible, biases from the spec or the API."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from scipy import stats
from torch import nn

import nflc
from nflc.ir.lower import INIT_SCHEMES

FULL = "|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|"
M, D = 256, 784


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _std_ok(w: torch.Tensor, want: float, sigmas: float = 5.0) -> bool:
    """The sample std of n i.i.d. entries has relative standard error ~ 1/sqrt(2n)."""
    n = w.numel()
    return abs(w.std().item() / want - 1) < sigmas / math.sqrt(2 * n) + 1e-3


def test_linear_edge_is_sqrt2_relu_of_standard_normal_weights(h3):
    """A linear edge computes sqrt(2) relu(W x / sqrt(m)) with W[i, j] ~ N(0, 1)."""
    m = h3.architecture(FULL).to_module(seed=0)
    for key, edge in m.layers[3].edges.items():
        linear = edge[0]
        w = linear.weight.detach() * math.sqrt(M) / math.sqrt(2)  # the theory's W
        assert _std_ok(w, 1.0), key
        assert abs(w.mean().item()) < 5 / math.sqrt(w.numel()), key
        assert stats.kstest(w.flatten().numpy(), "norm").pvalue > 1e-4, key
        x = torch.randn(8, M)
        with torch.no_grad():
            assert torch.allclose(edge(x), math.sqrt(2) * torch.relu(x @ w.T / math.sqrt(M)), atol=1e-5)


def test_stem_and_readout_scales(h3):
    """stem X0 = sqrt(2) relu(W0 x / sqrt(d)), readout f = v . X / sqrt(m), W0, v ~ N(0, 1)."""
    m = h3.architecture(FULL).to_module(seed=0)
    stem, readout = m.layers[1].weight.detach(), m.layers[4].weight.detach()
    assert _std_ok(stem, math.sqrt(2 / D))
    assert _std_ok(readout, 1 / math.sqrt(M))  # gain 1: no ReLU after the readout
    assert stats.kstest((readout * math.sqrt(M)).flatten().numpy(), "norm").pvalue > 1e-4
    # forward statistics: inputs with |x|^2 = d give E[X0_i^2] = 1 for every coordinate
    x = torch.randn(512, D, generator=torch.Generator().manual_seed(1))
    x = x / x.norm(dim=1, keepdim=True) * math.sqrt(D)
    with torch.no_grad():
        x0 = torch.relu(m.layers[1](x))
    assert abs((x0**2).mean().item() - 1) < 0.05


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_init_schemes(h3, scheme):
    m = h3.architecture(FULL).to_module(seed=0, init=scheme)
    assert n_params(m) == h3.architecture(FULL).params
    for name, layer, fan_in, fan_out, gain in [("stem", m.layers[1], D, M, math.sqrt(2)),
                                               ("edge", m.layers[3].edges["1_2"][0], M, M, math.sqrt(2)),
                                               ("readout", m.layers[4], M, 10, 1.0)]:
        w = layer.weight.detach()
        std = {"he_normal": gain / math.sqrt(fan_in), "he_uniform": gain / math.sqrt(fan_in),
               "xavier_normal": gain * math.sqrt(2 / (fan_in + fan_out)),
               "xavier_uniform": gain * math.sqrt(2 / (fan_in + fan_out)),
               "torch_default": 1 / math.sqrt(3 * fan_in)}[scheme]
        assert _std_ok(w, std), (scheme, name, w.std().item(), std)
        if scheme.endswith("uniform") or scheme == "torch_default":
            assert w.abs().max().item() <= std * math.sqrt(3) + 1e-7, (scheme, name)


def test_init_from_the_spec_and_unknown_schemes():
    text = (Path(__file__).resolve().parents[2] / "specs" / "nfl_h3.nfl").read_text()
    sp = nflc.loads(text.replace("bias    false", "bias    false\n    init xavier_normal"))
    assert sp.ir.init == "xavier_normal"
    w = sp.architecture(FULL).to_module().layers[3].edges["0_1"][0].weight.detach()
    assert _std_ok(w, math.sqrt(2) * math.sqrt(2 / (M + M)))
    with pytest.raises(nflc.SpaceError, match="unknown init scheme 'kaiming'") as e:
        sp.architecture(0).to_module(init="kaiming")
    assert "he_normal" in e.value.render()


def test_same_seed_same_weights_different_seed_different_weights(h3, nb201):
    for a in (h3.architecture(FULL), nb201.architecture(12345)):
        one, again, other = a.to_module(seed=7), a.to_module(seed=7), a.to_module(seed=8)
        s1, s2, s3 = one.state_dict(), again.state_dict(), other.state_dict()
        assert all(torch.equal(s1[k], s2[k]) for k in s1)
        weights = [k for k in s1 if k.endswith("weight") and s1[k].dim() > 1]
        assert weights and not any(torch.equal(s1[k], s3[k]) for k in weights)
    assert all(torch.equal(x, y) for x, y in zip(nflc.compile(a, seed=3).state_dict().values(),
                                                 a.to_module(seed=3).state_dict().values(), strict=True))


def test_compiling_leaves_the_global_rng_alone(h3):
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    for init in INIT_SCHEMES:
        h3.architecture(FULL).to_module(seed=1, init=init)
    assert torch.equal(torch.rand(5), expected)


def test_weights_do_not_depend_on_other_options(h3):
    """Each weight has its own seeded generator: bias and prune leave the others unchanged."""
    a = h3.architecture("|linear~0|+|zero~0|linear~1|+|linear~0|zero~1|zero~2|")  # 0->1, 1->2 dead
    plain = a.to_module(seed=4).state_dict()
    biased = a.to_module(seed=4, bias=True).state_dict()
    pruned = a.to_module(seed=4, prune=True).state_dict()
    assert set(plain) < set(biased) and set(pruned) < set(plain)
    assert set(plain) - set(pruned) == {"layers.3.edges.0_1.0.weight", "layers.3.edges.1_2.0.weight"}
    assert all(torch.equal(plain[k], biased[k]) for k in plain)
    assert all(torch.equal(plain[k], pruned[k]) for k in pruned)


def test_bias_from_the_api(h3):
    """nfl_h3 says `bias false` (the paper's setting); to_module(bias=True) adds every bias."""
    a = h3.architecture(FULL)
    plain = a.to_module()
    assert all(m.bias is None for m in plain.modules() if isinstance(m, nn.Linear))
    biased = a.to_module(bias=True)
    linears = [m for m in biased.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 8 and all(m.bias is not None and not m.bias.any() for m in linears)
    assert n_params(biased) == a.params + 7 * M + 10 == h3.with_options(bias=True).architecture(a.index).params
    assert n_params(a.to_module(bias=False)) == a.params


def test_bias_from_the_spec():
    text = """
    space s {
        input [8]
        classes 2
        width 16
        bias BIAS
        cell {
            nodes 3
            edge * : zero | skip | linear >> relu as linear
        }
        network = linear(width) >> relu >> cell >> linear(classes)
    }
    """
    on = nflc.loads(text.replace("BIAS", "true")).architecture("|linear~0|+|linear~0|linear~1|")
    off = nflc.loads(text.replace("BIAS", "false")).architecture("|linear~0|+|linear~0|linear~1|")
    m_on, m_off = on.to_module(), off.to_module()
    assert all(m.bias is not None for m in m_on.modules() if isinstance(m, nn.Linear))
    assert all(m.bias is None for m in m_off.modules() if isinstance(m, nn.Linear))
    assert n_params(m_on) == on.params == n_params(m_off) + 4 * 16 + 2
    assert n_params(m_off) == off.params


def test_nb201_bias_option(nb201):
    """NB201's convolutions have no bias, its classifier has one (an explicit argument);
    the API's bias=False is the theory setting and removes it too (options override)."""
    a = nb201.architecture(0)
    m = a.to_module()
    assert m.layers[-1].bias is not None
    assert all(c.bias is None for c in m.modules() if isinstance(c, nn.Conv2d))
    m = a.to_module(bias=False)
    assert m.layers[-1].bias is None and n_params(m) == a.params - 10
