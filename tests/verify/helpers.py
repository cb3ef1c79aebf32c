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
