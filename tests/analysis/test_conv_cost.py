"""Finite-width kernels of conv networks in bounded memory (issue 15, item 3).

The streamed NTK (chunks of inputs, per-sample gradients formed layer by layer in the
backward, blocks of held gradients, later chunks recomputed) is checked against the dense
product J J^T of the full Jacobian that torch.func builds, on a small conv net and on a
compiled NAS-Bench-201 network; its peak memory is measured in fresh processes
(``ru_maxrss``) at two input counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nflc
from nflc.analysis.empirical import calibrate_batchnorm, empirical_kernels, empirical_ntk, plan_kernels

ROOT = Path(__file__).resolve().parents[2]
NB201 = ROOT / "specs" / "nb201.nfl"


@pytest.fixture(autouse=True)
def float64_default():
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(saved)


def dense_ntk(module: nn.Module, x: torch.Tensor) -> np.ndarray:
    """J J^T with J the full (N, params) Jacobian of the summed output, from torch.func."""
    module.eval()
    params = {n: p.detach() for n, p in module.named_parameters() if p.requires_grad}

    def f(p):
        return torch.func.functional_call(module, p, (x,)).reshape(x.shape[0], -1).sum(1)

    jac = torch.func.jacrev(f)(params)
    j = torch.cat([v.reshape(x.shape[0], -1) for v in jac.values()], dim=1)
    return (j @ j.T).detach().numpy()


class ConvNet(nn.Module):
    """Stem conv with bias, BatchNorm, a residual block (in-place add), a grouped strided
    conv with reflect padding, a 1x1 conv, average pooling and a Linear readout."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.block = nn.Sequential(nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.down = nn.Conv2d(8, 12, 3, stride=2, padding=1, groups=4, padding_mode="reflect", bias=False)
        self.point = nn.Conv2d(12, 6, 1)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        h = self.bn(self.stem(x))
        r = self.block(h)
        r += h
        h = self.point(torch.relu(self.down(r)))
        return self.head(nn.functional.adaptive_avg_pool2d(h, 1).flatten(1))


def test_streamed_ntk_equals_dense_jacobian_product():
    torch.manual_seed(0)
    net, x = ConvNet(), torch.randn(7, 3, 8, 8)
    calibrate_batchnorm(net, torch.randn(16, 3, 8, 8))
    net.head.bias.requires_grad_(False)  # frozen parameters are left out of both
    ref = dense_ntk(net, x)
    scale = np.abs(ref).max()
    for chunk, block in ((None, None), (1, 1), (2, 4), (3, 6), (7, 7)):
        got = empirical_ntk(net, x, output="sum", chunk=chunk, block=block)
        assert np.abs(got - ref).max() <= 1e-13 * scale, (chunk, block)
    # a budget too small for one block: the plan streams by itself, and the result is the same
    plan = plan_kernels(net, x, output="sum", memory=40_000)
    assert plan.chunk < 7 and plan.blocks > 1 and plan.passes > 1
    k = empirical_kernels(net, x, output="sum", memory=40_000)
    assert k.plan == plan
    assert np.abs(k.ntk - ref).max() <= 1e-13 * scale
    # the NNGP comes from the same passes: the Gram of the readout's input
    net.eval()
    with torch.no_grad():
        h = net.point(torch.relu(net.down(net.block(net.bn(net.stem(x))) + net.bn(net.stem(x)))))
        feats = nn.functional.adaptive_avg_pool2d(h, 1).flatten(1)
    np.testing.assert_allclose(k.nngp, (feats @ feats.T / feats.shape[1]).numpy(), rtol=1e-12, atol=1e-14)


def test_compiled_nb201_network_equals_dense_jacobian_product():
    sp = nflc.load(NB201, space="nb201")
    arch = sp.architecture("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|")
    net = arch.to_module(seed=0, width=4).double()  # width 4: a Jacobian small enough to build whole
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ref = dense_ntk(net, x)
    got = empirical_ntk(net, x, output="sum", chunk=2, block=2)
    assert np.abs(got - ref).max() <= 1e-12 * np.abs(ref).max()


CHILD = r"""
import json, resource, sys, torch, nflc
from nflc.analysis.analyze import FiniteSettings, _finite_kernels, _finite_plan, analysis_inputs
torch.set_num_threads(1)
sp = nflc.load(sys.argv[1], space="nb201")
arch = sp.architecture(sys.argv[2])
settings = FiniteSettings(memory=int(sys.argv[4]))
x, _, _ = analysis_inputs(sp, "none", int(sys.argv[3]), 0)
plan, params = _finite_plan(arch, x, 0, settings)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
_finite_kernels(arch, x, None, 0, settings)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"increase": peak - base, "planned": plan.peak_bytes + params, "passes": plan.passes,
                  "per_input": plan.act_bytes}))
"""


def peak_increase(ident: str, n: int, memory: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", CHILD, str(NB201), ident, str(n), str(memory)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_peak_memory_stays_bounded_as_inputs_grow():
    """N = 64 against N = 16 on an NB201 network with a 64 MiB budget. One dense pass holds
    every activation of every input: its peak grows by what one forward keeps for the
    backward (``per_input``, 7 MiB here in float32; the former float64 pass, about 30 MB) for
    each input more, 340 MiB from 16 to 64 inputs. The streamed one stays near its plan,
    which is what the estimate printed before the work reports; the plan does not grow with
    N (the N x N kernels aside), the passes do."""
    ident = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"
    budget = 64 * 2**20
    small, large = peak_increase(ident, 16, budget), peak_increase(ident, 64, budget)
    assert large["passes"] > small["passes"] >= 1  # 64 inputs do not fit one block: later chunks are recomputed
    assert large["planned"] < small["planned"] + 2**20
    dense_growth = (64 - 16) * small["per_input"]
    assert large["increase"] - small["increase"] < 0.25 * dense_growth, (small, large)
    for m in (small, large):
        assert m["increase"] < 1.6 * m["planned"] + 32 * 2**20, m  # the plan (and the printed estimate) is truthful
        assert m["planned"] < 1.5 * budget


def test_cli_width_precision_and_memory(tmp_path):
    from typer.testing import CliRunner

    from nflc.cli import app

    out = tmp_path / "a.json"
    args = ["analyze", str(NB201), "-s", "nb201", "--archs", "sample:2", "--dataset", "none", "--samples", "4"]
    res = CliRunner().invoke(app, [*args, "--width", "4", "--precision", "float64", "--memory", "32M", "--json", str(out)])
    assert res.exit_code == 0, res.output
    kernels = [a["kernels"] for a in json.loads(out.read_text())["architectures"]]
    assert all(k["source"] == "finite-width" and k["width"] == 4 and k["precision"] == "float64" for k in kernels)
    for bad, message in ((["--memory", "lots"], "not an amount of memory"), (["--precision", "half"], "float32 or float64"),
                         (["--width", "0"], "at least 1")):
        res = CliRunner().invoke(app, [*args, *bad])
        assert res.exit_code == 2 and message in res.output, res.output
