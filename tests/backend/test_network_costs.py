"""The DARTS network graph and costs against hand derivations and the compiled module:

- which outputs a two-input cell's inputs read (X0: the cell two back, X1: the cell
  before; both the stem's for the first cell), derived here from DARTS's
  ``s0, s1 = s1, cell(s0, s1)``;
- the parameters on the preprocessing edges: relu-conv1x1-bn ``C_in C + 2 C`` and, after a
  reduction, DARTS's factorized reduction ``C_in (C // 2) + C_in (C - C // 2) + 2 C``;
- every architecture's FLOPs (multiply-accumulates of convolutions and linear layers, bias
  adds included: docs/LANGUAGE.md) against the multiply-accumulates of the compiled
  module's own convolutions and linear layers, counted by forward hooks on one input, and
  its parameters against the module's."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from torch import nn

import nflc

SPECS = Path(__file__).resolve().parents[2] / "specs"
C = 8  # initial channels of the small DARTS network below (NAS-Bench-301's is 32)


@pytest.fixture(scope="module")
def darts():
    text = (SPECS / "darts.nfl").read_text()
    text = text.replace("c       32", f"c       {C}").replace("input   [3, 32, 32]", "input   [3, 16, 16]")
    assert f"c       {C}" in text and "[3, 16, 16]" in text
    return nflc.loads(text)


def darts_plan(c: int) -> list[dict]:
    """NetworkCIFAR's cells (DARTS model.py) for specs/darts.nfl's layout: per cell its
    channels, its input channels (C_prev_prev, C_prev), whether the cell before reduced."""
    reductions = [False, False, True, False, False, True, False, False]
    c_pp = c_p = 3 * c
    c_cur, prev_reduced, out = c, False, []
    for red in reductions:
        if red:
            c_cur *= 2
        out.append({"c": c_cur, "c_pp": c_pp, "c_p": c_p, "reduce": red, "after_reduction": prev_reduced})
        c_pp, c_p, prev_reduced = c_p, 4 * c_cur, red
    return out


def test_each_cell_reads_the_cells_one_and_two_back(darts):
    cells = list(range(2, 10))  # stages: conv (0), batchnorm (1), the 8 cells, pooling, linear
    out = lambda stage: "%1" if stage < 2 else f"%{stage}.out"  # noqa: E731  the stem's output before the first cell
    for a in darts.sample(3, seed=1):
        g = a.network_graph
        pre = {t: s for s, t, d in g.edges(data=True) if d["op"] == "preprocess"}
        assert len(pre) == 16
        for stage in cells:
            assert pre[f"%{stage}.X0"] == out(stage - 2), (stage, "X0 reads the cell two back")
            assert pre[f"%{stage}.X1"] == out(stage - 1), (stage, "X1 reads the cell before")
        assert g.has_edge("%9.out", "%10")  # the last cell feeds the pooling


def test_preprocessing_edges_carry_the_hand_counted_parameters(darts):
    g = darts.architecture(12345).network_graph
    pre = {t: d["params"] for s, t, d in g.edges(data=True) if d["op"] == "preprocess"}
    for stage, cell in zip(range(2, 10), darts_plan(C), strict=True):
        c, c_pp, c_p = cell["c"], cell["c_pp"], cell["c_p"]
        x0 = c_pp * (c // 2) + c_pp * (c - c // 2) + 2 * c if cell["after_reduction"] else c_pp * c + 2 * c
        assert pre[f"%{stage}.X0"] == x0, (stage, "X0 preprocessing params")
        assert pre[f"%{stage}.X1"] == c_p * c + 2 * c, (stage, "X1 preprocessing params")


def test_the_cell_graph_frame_carries_the_preprocessing_cost(darts):
    """The first cell's graph: `in` -> X0 and X1, each relu-conv1x1-bn from the stem's 3C
    channels at 16 x 16 (C_in C + 2C parameters, C_in C 16 16 multiply-accumulates)."""
    g = darts.architecture(0).cell_graphs[darts.instances[0]]
    for k in (1, 2):
        d = g.edges[0, k]
        assert (d["params"], d["flops"]) == (3 * C * C + 2 * C, 3 * C * C * 16 * 16), k


def macs_by_hooks(module: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of every Conv2d and Linear in one forward pass of one input."""
    total = 0

    def count(m, inputs, output):
        nonlocal total
        positions = output[0].numel() // output.shape[1]
        if isinstance(m, nn.Conv2d):
            per = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        else:
            per = m.in_features
        total += output.shape[1] * positions * per + (output[0].numel() if m.bias is not None else 0)

    handles = [m.register_forward_hook(count) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(1, *shape))
    finally:
        for h in handles:
            h.remove()
    return total


def test_darts_flops_and_params_are_the_modules(darts):
    rng = random.Random(3)
    for index in [0, darts.raw_count() - 1] + [rng.randrange(darts.raw_count()) for _ in range(4)]:
        a = darts.architecture(index)
        m = a.to_module(seed=0)
        assert a.flops == macs_by_hooks(m, (3, 16, 16)), (a.id, "flops")
        assert a.params == sum(p.numel() for p in m.parameters()), (a.id, "params")


@pytest.mark.parametrize("spec, space, ident", [
    ("nb201.nfl", "nb201", "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"),
    ("nb101.nfl", None, "conv3x3_bn_relu(0)+conv1x1_bn_relu(0,1)+maxpool3x3(1,2)+conv3x3_bn_relu()+conv3x3_bn_relu()+(0,2,3)"),
    ("nats_sss.nfl", None, "24:8:40:16:64"),
])
def test_benchmark_flops_are_the_modules(spec, space, ident):
    sp = nflc.load(SPECS / spec, space=space)
    a = sp.architecture(ident)
    m = a.to_module(seed=0)
    assert a.flops == macs_by_hooks(m, tuple(sp.ir.input_shape)), (ident, "flops")
    assert a.params == sum(p.numel() for p in m.parameters()), (ident, "params")
