"""specs/nb101.nfl's modules against NAS-Bench-101's reference PyTorch code (issue #14):
for the architectures of ../shared/data/nb101/nb101_cifar10.json, the compiled network with
nasbench-pytorch's weights gives nasbench-pytorch's logits, and the parameter count is the
file's `params` exactly; nasbench-pytorch counts one more parameter per `Placeholder`
(a dummy scalar it registers for every vertex without a module), which explains its few
tens more."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import nflc

nasbench = pytest.importorskip("nasbench_pytorch.model", reason="nasbench-pytorch (test extra) not installed")

SPEC = Path(__file__).resolve().parents[2] / "specs" / "nb101.nfl"
FAST = 6  # architectures compared in the quick test; the slow one compares all of them


@pytest.fixture(scope="module")
def space() -> nflc.Space:
    return nflc.load(SPEC)


@pytest.fixture(scope="module")
def archs(shared_data) -> list[dict]:
    return json.loads(Path(shared_data("nb101/nb101_cifar10.json")).read_text())["architectures"]


def nflc_id(matrix, ops) -> str:
    """A NAS-Bench-101 (matrix, ops) of up to 7 vertices as an id of specs/nb101.nfl (a
    smaller matrix's vertices are the first nodes, its output X6; unused nodes have no edges)."""
    n = len(matrix)
    pos = list(range(n - 1)) + [6]
    groups = {pos[j]: (ops[j].replace("-", "_") if j < n - 1 else "")
              + "(" + ",".join(str(pos[i]) for i in range(j) if matrix[i][j]) + ")" for j in range(1, n)}
    return "+".join(groups.get(t, "conv3x3_bn_relu()") for t in range(1, 7))


def _reference_state(ref: torch.nn.Module) -> dict[str, torch.Tensor]:
    """nasbench-pytorch's state without its placeholders, dummy device parameter and the
    `last_inop` alias of the output projection, in registration order."""
    return {k: v for k, v in ref.state_dict().items()
            if not (k.endswith((".a", "dev_param")) or ".last_inop." in k)}


def check(space: nflc.Space, entry: dict, seed: int) -> None:
    arch = space.architecture(nflc_id(entry["matrix"], entry["ops"]))
    ours = arch.to_module().eval()
    torch.manual_seed(seed)
    ref = nasbench.Network((np.array(entry["matrix"]), entry["ops"]), num_labels=10, in_channels=3,
                           stem_out_channels=128, num_stacks=3, num_modules_per_stack=3).eval()
    theirs, mine = _reference_state(ref), ours.state_dict()
    assert len(theirs) == len(mine)
    loaded = {}
    for (k1, v1), (k2, v2) in zip(theirs.items(), mine.items(), strict=True):
        assert v1.shape == v2.shape, (k1, k2)
        loaded[k2] = v1
    ours.load_state_dict(loaded)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    # parameters: the file's (millions, 6 decimals) exactly; nasbench-pytorch's = ours + placeholders
    assert arch.params == round(entry["params"] * 1e6) == sum(p.numel() for p in ours.parameters())
    placeholders = sum(p.numel() for k, p in ref.named_parameters() if k.endswith(".a"))
    assert sum(p.numel() for p in ref.parameters()) == arch.params + placeholders
    # the architecture's class is in the space: its representative has the same graph up to isomorphism
    cell = space.cell_of[space.instances[0]].name
    assert space.architecture(space.cell(cell).representative(arch.cell_index(space.instances[0]))).rejection is None


def test_the_first_architectures_compute_what_nasbench_pytorch_computes(space, archs):
    torch.set_num_threads(1)
    for k, entry in enumerate(archs[:FAST]):
        check(space, entry, k)


@pytest.mark.slow
def test_every_architecture_computes_what_nasbench_pytorch_computes(space, archs):
    torch.set_num_threads(1)
    for k, entry in enumerate(archs):
        check(space, entry, k)


def test_the_module_traces_with_fx_and_exports_onnx(space, tmp_path):
    a = space.architecture("conv3x3_bn_relu(0)+conv1x1_bn_relu(0,1)+maxpool3x3(1,2)+conv3x3_bn_relu()"
                           "+conv3x3_bn_relu()+(0,1,2,3)")
    m = a.to_module().eval()
    x = torch.randn(1, 3, 32, 32)
    gm = torch.fx.symbolic_trace(m)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), m(x))
    assert sum(p.numel() for p in m.parameters()) == a.params
