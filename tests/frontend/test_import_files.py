"""Files an import names (issue #27, item 10): a FIFO, a directory or a device is refused
without reading it (a FIFO used to block forever), and a file outside the spec's tree
(--allow-outside-imports) that is not a spec is named with the position where it stops
being one, but none of its lines is echoed: it may be any file on the machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nflc.cli import app

REPO = Path(__file__).resolve().parents[2]
BASE = (REPO / "specs" / "nfl_h3.nfl").read_text()


def check(spec: Path, *extra):
    res = CliRunner().invoke(app, ["check", str(spec), *extra])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


@pytest.mark.parametrize("kind", ["FIFO", "directory"])
def test_importing_something_that_is_not_a_file_is_refused_without_reading_it(tmp_path, kind):
    target = tmp_path / "lib.nfl"
    os.mkfifo(target) if kind == "FIFO" else target.mkdir()
    main = tmp_path / "main.nfl"
    main.write_text('import "lib.nfl"\n' + BASE)
    res = check(main)  # a FIFO without a writer: a read would never return
    assert res.exit_code == 2 and f"a {kind}" in res.output and "main.nfl:1:" in res.output, res.output


def test_a_device_is_refused_too(tmp_path):
    main = tmp_path / "main.nfl"
    main.write_text('import "/dev/zero"\n' + BASE)  # read_bytes() would never end
    res = check(main, "--allow-outside-imports")
    assert res.exit_code == 2 and "character device" in res.output, res.output


@pytest.mark.parametrize("content", [b"token: hunter2 and more\nsecond line\n", b"\xff\xfe hunter2\n"])
def test_an_outside_file_that_is_not_a_spec_is_located_but_never_shown(tmp_path, content):
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes(content)
    main = tmp_path / "proj" / "main.nfl"
    main.parent.mkdir()
    main.write_text('import "../outside/secret.txt"\n' + BASE)
    res = check(main, "--allow-outside-imports")
    assert res.exit_code == 2 and "is not an nflc spec (at line 1, column" in res.output, res.output
    assert "hunter2" not in res.output and "token" not in res.output


def test_a_file_inside_the_tree_still_shows_its_line_and_caret(tmp_path):
    (tmp_path / "lib.nfl").write_text("op dense = linear >> >> relu\n")
    main = tmp_path / "main.nfl"
    main.write_text('import "lib.nfl"\n' + BASE)
    res = check(main)
    assert res.exit_code == 2 and "op dense = linear >> >> relu" in res.output and "^" in res.output, res.output
