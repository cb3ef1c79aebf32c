"""Every Python block of the README runs as written (a newcomer pastes them), from the
repository root, and its documented results hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_the_readme_has_python_blocks():
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, monkeypatch):
    monkeypatch.chdir(REPO)
    scope: dict = {}
    exec(compile(BLOCKS[index], f"README.md python block {index + 1}", "exec"), scope)  # noqa: S102
    if "space" in scope and "k" in scope:  # the API block: its comments' claims
        assert scope["space"].count() == 15625
        assert sorted(scope["arch"].graph.nodes) == [0, 1, 2, 3]
        assert sum(p.numel() for p in scope["module"].parameters()) == scope["arch"].params
        assert scope["k"].nngp.shape == scope["k"].ntk.shape == (64, 64)
        assert str(scope["k"].nngp.dtype) == "float64"
        # the example's cell has paths, so its kernels are not the zero kernels of a constant network
        topo = scope["cell"].topology()
        assert (topo.paths, topo.mean_depth) == (3, 4 / 3)
        assert abs(scope["k"].nngp).min() > 0 and (scope["k"].ntk.diagonal() > scope["k"].nngp.diagonal()).all()
        assert scope["k"].nngp[:2, :2].round(3).tolist() == [[0.894, 0.447], [0.447, 0.413]]
        assert scope["k"].ntk[:2, :2].round(3).tolist() == [[2.168, 0.609], [0.609, 1.003]]
        assert scope["best"] in scope["space"].sample(100, seed=0)
