"""Export: torch.fx traces every compiled module; `nflc compile` prints, saves checkpoints
that load back to the same function, and writes ONNX that onnxruntime runs the same."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import nflc
from nflc.backends.export import load_checkpoint
from nflc.cli import app

SPECS = Path(__file__).resolve().parents[2] / "specs"
H3 = str(SPECS / "nfl_h3.nfl")
NB201 = str(SPECS / "nb201.nfl")
runner = CliRunner()


def _same(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=tol, rtol=tol)


# ---------------------------------------------------------------- torch.fx
def test_fx_traces_every_h3_module(h3_compiled):
    x = torch.randn(4, 784, generator=torch.Generator().manual_seed(0))
    for a, m in h3_compiled:
        traced = torch.fx.symbolic_trace(m)
        with torch.no_grad():
            assert _same(traced(x), m(x)), a.id


def test_fx_traces_nb201_modules_eval_mode(nb201):
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for a in nb201.sample(10, seed=11):
        m = a.to_module(seed=a.index).eval()
        traced = torch.fx.symbolic_trace(m)
        calls = {n.op for n in traced.graph.nodes}
        assert "call_module" in calls and "output" in calls
        with torch.no_grad():
            assert _same(traced(x), m(x)), a.id


# ---------------------------------------------------------------- nflc compile
def test_cli_compile_print():
    res = runner.invoke(app, ["compile", H3, "728", "--print"])
    assert res.exit_code == 0, res.output
    assert "nfl_h3 #728 |linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|: 596,480 parameters" in res.output
    assert "CellModule" in res.output and "(2_3): Sequential" in res.output


def test_cli_compile_out_loads_back(tmp_path, h3):
    path = tmp_path / "arch.pt"
    ident = "|linear~0|+|skip~0|linear~1|+|zero~0|linear~1|linear~2|"
    res = runner.invoke(app, ["compile", H3, ident, "--seed", "3", "--out", str(path)])
    assert res.exit_code == 0, res.output
    assert f"saved {path}" in res.output.replace("\n", "")
    arch, module = load_checkpoint(h3, path)
    assert arch.id == ident
    want = h3.architecture(ident).to_module(seed=3)
    x = torch.randn(5, 784)
    with torch.no_grad():
        assert torch.equal(module(x), want(x))
    other = nflc.loads((SPECS / "nfl_h3.nfl").read_text().replace("width   256", "width   128"))
    with pytest.raises(nflc.NflcError, match="different spec"):
        load_checkpoint(other, path)


def test_cli_pruned_checkpoint_loads_with_the_plain_spec(tmp_path, h3):
    """The checkpoint carries its options: a --prune module loads with the spec it came from."""
    path = tmp_path / "pruned.pt"
    ident = "|linear~0|+|zero~0|linear~1|+|linear~0|zero~1|zero~2|"  # 0->1 and 1->2 are dead
    res = runner.invoke(app, ["compile", H3, ident, "--prune", "--out", str(path)])
    assert res.exit_code == 0, res.output
    arch, module = load_checkpoint(h3, path)
    assert sum(p.numel() for p in module.parameters()) == arch.params == h3.architecture(ident).cost(prune=True).params
    x = torch.randn(3, 784)
    with torch.no_grad():
        assert torch.equal(module(x), h3.architecture(ident).to_module(prune=True)(x))


def test_cli_compile_onnx(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    for spec, ident, shape, extra in [(H3, "700", (784,), []), (NB201, "100", (3, 32, 32), ["--space", "nb201"])]:
        path = tmp_path / "m.onnx"
        res = runner.invoke(app, ["compile", spec, ident, "--onnx", str(path), *extra])
        assert res.exit_code == 0, res.output
        assert "onnx.checker ok" in res.output and "max |diff|" in res.output
        onnx.checker.check_model(onnx.load(str(path)))
        sp = nflc.load(spec, space="nb201" if extra else None)
        module = sp.architecture(ident).to_module(seed=0).eval()
        x = torch.randn(5, *shape)  # another batch size than the export's example
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
        with torch.no_grad():
            assert _same(torch.from_numpy(got), module(x), 1e-4)


def test_cli_compile_bad_id_is_a_clean_error():
    res = runner.invoke(app, ["compile", H3, "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
    assert res.exit_code == 2
    assert "'nor_conv_3x3' is not a choice of edge 0 -> 1" in res.output
    assert "Traceback" not in res.output
