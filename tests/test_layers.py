"""The layers of docs/CONTRACTS.md are checked by a tool (import-linter's ``lint-imports``,
configured in ``.importlinter``, run by .ci/run): the tree as it is keeps them, and a
deliberate upward import or cycle in a copy of it fails the check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))


def lint(root: Path) -> subprocess.CompletedProcess:
    if not Path(LINT).exists():
        pytest.fail("lint-imports is not installed (pip install -e '.[test]')")
    return subprocess.run([LINT, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120)


def copy_tree(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "nflc", tmp_path / "nflc", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", tmp_path)
    return tmp_path


def test_the_tree_keeps_its_layers():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_fails(tmp_path):
    root = copy_tree(tmp_path)
    with open(root / "nflc/space/ids.py", "a") as f:
        f.write("\n\ndef _up() -> None:\n    from nflc.verify import store  # a function-local import counts too\n")
    result = lint(root)
    assert result.returncode == 1
    assert "nflc.space is not allowed to import nflc.verify" in result.stdout
    assert "nflc.space.ids -> nflc.verify.store" in result.stdout


def test_a_cycle_inside_a_package_fails(tmp_path):
    root = copy_tree(tmp_path)
    with open(root / "nflc/verify/protocol.py", "a") as f:
        f.write("\nfrom nflc.verify import driver  # noqa: E402\n")  # driver imports protocol
    result = lint(root)
    assert result.returncode == 1
    assert "No cycles are allowed in nflc.verify" in result.stdout
