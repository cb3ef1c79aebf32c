"""Shared fixtures of the torch backend tests: spaces and their compiled modules, built once.

Compiling is the slow part (all 729 nfl_h3 modules, the 362 NB201 architectures of the
shared data file: ``nb201_records`` of tests/conftest.py), so each set is compiled once per
session and reused read-only; a test that changes weights works on a ``copy.deepcopy``.
(tests/conftest.py also keeps torch and BLAS to one thread.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nflc

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"


@pytest.fixture(scope="session")
def h3() -> nflc.Space:
    return nflc.load(SPECS / "nfl_h3.nfl")


@pytest.fixture(scope="session")
def nb201() -> nflc.Space:
    return nflc.load(SPECS / "nb201.nfl", space="nb201")


@pytest.fixture(scope="session")
def h3_compiled(h3) -> list[tuple[nflc.Architecture, torch.nn.Module]]:
    """All 729 architectures of nfl_h3 with their modules (seed 0), in index order."""
    return [(a, a.to_module(seed=0)) for a in h3]


@pytest.fixture(scope="session")
def nb201_compiled(nb201, nb201_records) -> list[tuple[dict, nflc.Architecture, torch.nn.Module]]:
    """Every architecture of the data file: (record, architecture, module at seed 0)."""
    out = []
    for r in nb201_records:
        a = nb201.architecture(r["arch_str"])
        out.append((r, a, a.to_module(seed=0)))
    return out
