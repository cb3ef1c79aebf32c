"""Ctrl-C at any moment of `nflc`'s start-up (issue #27, item 7): while the command line's
own imports load (typer, rich) or a command's (the compiler's lark), the command exits
with code 130 and one line, never a traceback. The interrupt is delivered for real
(SIGINT to the process) at the moment a given module starts to import, through the
console script's entry point as pyproject.toml names it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
H3 = REPO / "specs" / "nfl_h3.nfl"

CODE = """
import builtins, os, signal, sys
real = builtins.__import__
def interrupting(name, *args, **kwargs):
    if name == {target!r}:
        builtins.__import__ = real
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, as the terminal sends it
    return real(name, *args, **kwargs)
builtins.__import__ = interrupting
sys.argv = ["nflc", "check", {spec!r}]
from {module} import {function} as main
main()
"""


def entry_point() -> tuple[str, str]:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["nflc"].split(":")
    return module, function


@pytest.mark.parametrize("target", ["typer", "rich.console", "lark"])
def test_ctrl_c_while_starting_exits_130_without_a_traceback(target):
    module, function = entry_point()
    code = CODE.format(target=target, spec=str(H3), module=module, function=function)
    # the child starts with Ctrl-C's default action, whatever this test process does with it
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert res.returncode == 130, res.stderr
    assert "Traceback" not in res.stderr and "interrupted" in res.stderr, res.stderr
