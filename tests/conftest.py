"""Fixtures every test directory shares: one compute thread, and the shared benchmark data.

* ``one_thread`` (automatic): one torch intra-op thread and, through threadpoolctl, one
  BLAS/OpenMP thread for numpy and scipy. The suite's tensors are small; on a shared
  machine contended threads only add barrier waits (a setup of tests/analysis once took
  85 s under load with the default thread count).
* ``shared_data``: the path of a file under ``../shared/data`` (beside the repository).
  A missing file skips the test locally; with ``NFLC_REQUIRE_SHARED_DATA=1`` (set by
  ``.ci/run``) it fails it, so CI can never pass by skipping the benchmark-data tests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# as nflc sets it at import (nflc/__init__.py), before this process's first matrix product
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
REQUIRE_SHARED_DATA = "NFLC_REQUIRE_SHARED_DATA"


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # numpy's BLAS then keeps its own default (OMP_NUM_THREADS decides)
        limits = None
    else:
        limits = threadpool_limits(limits=1)
    yield
    if limits is not None:
        limits.restore_original_limits()
    torch.set_num_threads(before)


def shared_data_file(relative: str) -> Path:
    """``../shared/data/RELATIVE``; skips the calling test when absent, or fails it when
    ``NFLC_REQUIRE_SHARED_DATA`` is set to anything but ``""`` / ``0``."""
    path = SHARED_DATA / relative
    if path.is_file():
        return path
    message = f"shared data file not found: {path}"
    if os.environ.get(REQUIRE_SHARED_DATA, "") not in ("", "0"):
        pytest.fail(f"{message} ({REQUIRE_SHARED_DATA} is set: the benchmark-data tests must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data():
    """``shared_data("nb201/nb201_cifar10.json")``: see :func:`shared_data_file`."""
    return shared_data_file


@pytest.fixture(scope="session")
def nb201_records() -> list[dict]:
    """The architectures of the shared NAS-Bench-201 CIFAR-10 file (read-only)."""
    return json.loads(shared_data_file("nb201/nb201_cifar10.json").read_text())["architectures"]
