"""The op table (nflc.ops.PRIMS) is the one place an op's abilities live: every op declares
every field, and the backend, the exact kernels and the population read them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

import nflc
from nflc import ops
from nflc.analysis.exact import exact_support
from nflc.backends import torch_ops
from nflc.backends.torch import INIT_SCHEMES, build_prim
from nflc.ir.evaluate import INIT_SCHEMES as IR_INIT_SCHEMES
from nflc.verify.population import population_support

REPO = Path(__file__).resolve().parents[2]
H3 = REPO / "specs" / "nfl_h3.nfl"
ALL_LINEAR = "|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|"
KINDS = ("zero", "skip", "linear", "conv", "pool", "other")  # docs/CONTRACTS.md (linear_relu is a sequence's)


def sample_prim(name: str) -> tuple[ops.Prim, tuple[int, ...]]:
    """The op with arguments that make it do something (5 output channels from 4 inputs)."""
    shape = (4,) if name == "linear" else (4, 6, 6)
    args: dict[str, ops.ArgValue] = {}
    for p in ops.PRIMS[name].params:
        if p.name == "out":
            args[p.name] = 5
        elif p.default == "required":
            args[p.name] = 3
        elif p.default == "space_bias":
            args[p.name] = False
        elif p.default == "same_padding":
            args[p.name] = 1
        elif p.default not in ("in_channels", "true_unset"):
            args[p.name] = p.default
    return ops.bind(ops.Prim(name, tuple(args.items())), shape), shape


@pytest.mark.parametrize("name", list(ops.PRIMS))
def test_every_op_declares_every_field(name):
    spec = ops.PRIMS[name]
    assert spec.name == name and spec.doc and spec.rule
    assert all(callable(f) for f in (spec.shape, spec.n_params, spec.flops, spec.kernel))
    assert spec.kind in KINDS
    assert spec.init in ("none", "fixed", "scheme")
    assert isinstance(spec.exact, bool) and isinstance(spec.batch, bool)
    if spec.torch is None:  # builds nothing: only the op that is no edge at all
        assert spec.kind == "zero"
        return
    prim, shape = sample_prim(name)
    m = build_prim(prim, shape)
    assert torch_ops.builder(name) is getattr(torch_ops, spec.torch)
    # `init` says what the backend draws: the scheme draws exactly the linear and conv layers
    drawn = [s for s in m.modules() if isinstance(s, (nn.Linear, nn.Conv2d))]
    has_params = any(True for _ in m.parameters())
    assert bool(drawn) == (spec.init == "scheme")
    assert has_params == (spec.init != "none")


def test_dataclass_demands_every_declaration():
    with pytest.raises(TypeError):
        ops.PrimSpec("new", (), "a new op", lambda p, s: s)  # type: ignore[call-arg]
    fields = {f.name for f in dataclasses.fields(ops.PrimSpec) if f.kw_only}
    assert fields == {"torch", "init", "exact", "batch"}


def test_the_backend_has_every_init_scheme_the_language_names():
    assert set(INIT_SCHEMES) == set(IR_INIT_SCHEMES)


def test_the_zero_op_has_no_builder():
    with pytest.raises(NotImplementedError, match="no torch builder for primitive 'zero'"):
        build_prim(ops.Prim("zero"), (4,))


def _without(monkeypatch, name: str, **changes) -> None:
    monkeypatch.setitem(ops.PRIMS, name, dataclasses.replace(ops.PRIMS[name], **changes))


def test_exact_kernels_read_the_table(monkeypatch):
    arch = nflc.load(H3).architecture(ALL_LINEAR)
    assert exact_support(arch) is None
    _without(monkeypatch, "linear", exact=False)
    assert "exact kernels cover zero, skip and linear >> relu edges" in exact_support(arch)


def test_the_population_reads_the_table(monkeypatch):
    module = nflc.load(H3).architecture(ALL_LINEAR).to_module(seed=0, width=8)
    assert population_support(module) is None
    _without(monkeypatch, "linear", batch=False)
    assert "not Linear >> ReLU >> CellModule >> Linear" in population_support(module)
    monkeypatch.undo()
    _without(monkeypatch, "relu", batch=False)  # the stem's relu and every edge's
    assert population_support(module) is not None


def test_initialisation_reads_the_table(monkeypatch):
    """A linear op declared "fixed" keeps torch's own draw: seeded by torch's global state,
    not by the compile seed (which then leaves such layers alone)."""
    arch = nflc.load(H3).architecture(ALL_LINEAR)
    drawn = [arch.to_module(seed=1).state_dict(), arch.to_module(seed=1).state_dict()]
    assert all(torch.equal(drawn[0][k], drawn[1][k]) for k in drawn[0])
    _without(monkeypatch, "linear", init="fixed")
    torch.manual_seed(0)
    a = arch.to_module(seed=1).state_dict()
    torch.manual_seed(1)
    b = arch.to_module(seed=1).state_dict()
    weights = [k for k in a if k.endswith("weight")]
    assert weights and all(not torch.equal(a[k], b[k]) for k in weights)
