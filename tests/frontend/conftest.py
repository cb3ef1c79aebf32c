"""Shared helpers of the front-end tests: paths, a CLI runner, diagnostic assertions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nflc.cli import app

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"

# The paper's H = 3 MLP space, inlined so a test can break it one mistake at a time.
BASE = """\
space s {
    input [784]
    classes 10
    width 256
    cell {
        nodes 4
        edge * : zero | skip | linear >> relu as linear
    }
    network = flatten >> linear(width) >> relu >> cell >> linear(classes)
}
"""


def cli(*args: str):
    """Run ``nflc ARGS`` in-process; the result has exit_code and output (stdout + stderr)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def no_traceback(res) -> None:
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)


def assert_diagnostic(output: str, file: str, text: str, line: int, col: int, message: str,
                      hint: str | None = None, severity: str = "error") -> None:
    """``file:line:col: error: ...message...``, then the source line, then a caret under col."""
    lines = output.splitlines()
    head = f"{file}:{line}:{col}: {severity}: "
    idx = [i for i, ln in enumerate(lines) if ln.startswith(head) and message in ln]
    assert idx, f"no diagnostic {head!r} containing {message!r} in:\n{output}"
    i = idx[0]
    src = text.splitlines()[line - 1].replace("\t", " ")
    assert lines[i + 1] == "    " + src, f"source line missing after {lines[i]!r}:\n{output}"
    caret = lines[i + 2]
    assert re.fullmatch(r" {4}" + " " * (col - 1) + r"\^~*", caret), f"bad caret {caret!r} for column {col}:\n{output}"
    if hint is not None:
        rest = lines[i + 3] if i + 3 < len(lines) else ""
        assert rest.startswith("  hint: ") and hint in rest, f"no hint {hint!r} after {lines[i]!r}:\n{output}"


def locate(text: str, needle: str, occurrence: int = 1, offset: int = 0) -> tuple[int, int]:
    """1-based (line, column) of the n-th occurrence of needle in text (plus offset chars)."""
    pos = -1
    for _ in range(occurrence):
        pos = text.index(needle, pos + 1)
    pos += offset
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


def edit(text: str, *pairs: str) -> str:
    """``text`` with each ``old, new`` pair replaced once (each ``old`` must be there)."""
    for old, new in zip(pairs[::2], pairs[1::2], strict=True):
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def check_mistake(path: Path, text: str, where: tuple, message: str, hint: str | None) -> None:
    """``nflc check path`` fails with exit 2 and one diagnostic at ``locate(text, *where)``."""
    res = cli("check", path)
    no_traceback(res)
    assert res.exit_code == 2, res.output
    line, col = locate(text, *where)
    assert_diagnostic(res.output, str(path), text, line, col, message, hint)


@pytest.fixture
def spec(tmp_path):
    """Write a spec into tmp_path and return its path (as the CLI will print it)."""

    def write(text: str, name: str = "t.nfl") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write
