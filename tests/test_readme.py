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
