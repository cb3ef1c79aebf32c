"""Helpers shared by the verification tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest


def run_and_sigkill(code: str, ready: Callable[[], bool], cwd: Path, timeout: float = 90) -> int:
    """Run ``python -c code``, SIGKILL it as soon as ``ready()`` holds, and return its exit
    status. Fails the test if the child ends first or ``ready()`` never holds within
    ``timeout`` seconds (generous: a loaded machine slows the child's imports)."""
    child = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if child.poll() is not None:
                pytest.fail(f"sweep ended before it could be killed: {child.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("sweep made no progress to kill")
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()
    return child.returncode


def read_rows(db: Path, sql: str) -> list[tuple] | None:
    """Rows of ``sql`` on ``db`` opened read-only, as a viewer reads a database another
    process writes; None while the file is absent, not yet initialised or locked."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def read_scalar(db: Path, sql: str, default: int = 0) -> int:
    """The one value of ``sql`` (see :func:`read_rows`), ``default`` while unreadable."""
    rows = read_rows(db, sql)
    return rows[0][0] if rows else default


def dump_results(db: Path, info: bool = False) -> dict:
    """What a run stored: architectures with their aspects, every epoch, the number of
    checkpoints left (and the per-architecture info with ``info``), for equality checks."""
    queries = {
        "archs": "SELECT arch_id, status, expressivity, convergence, generalization, epochs_run FROM archs ORDER BY arch_id",
        "epochs": "SELECT * FROM epochs ORDER BY arch_id, epoch",
        "checkpoints": "SELECT COUNT(*) FROM checkpoints",
    }
    if info:
        queries["info"] = "SELECT key, value FROM meta WHERE key LIKE 'info:arch:%' ORDER BY key"
    out = {key: read_rows(db, sql) for key, sql in queries.items()}
    assert all(v is not None for v in out.values()), f"{db} cannot be read"
    return out
