"""Issue #28: the spec reader refuses what it cannot represent (keywords as names, numbers of
thousands of digits) with a located message, and a long source line is shown around its caret."""

from __future__ import annotations

import pytest

from tests.frontend.conftest import cli, no_traceback


@pytest.mark.parametrize("src, message", [
    ("space space { input [4] classes 2 network = linear(classes) }", "'space' is a keyword and cannot name a space"),
    ("space s { input [4] classes 2 op in = relu network = linear(classes) }", "'in' is a keyword and cannot name an op"),
    ("space s { input [4] classes 2 w " + "9" * 5000 + " network = linear(classes) }", "a number of 5,000 digits"),
    ("space s { input [4] classes 2 w 0." + "1" * 200 + " network = linear(classes) }", "at most 100 digits after"),
])
def test_refused_with_location(tmp_path, src, message):
    path = tmp_path / "t.nfl"
    path.write_text(src)
    res = cli("check", path)
    no_traceback(res)
    assert res.exit_code == 2, res.output
    assert f"{path}:1:" in res.output and message in res.output, res.output
    assert len(res.output) < 2000  # the 5000 digits are not echoed back in full


def test_long_line_shown_around_the_caret(tmp_path):
    src = "space s { input [4] classes 2 network = linear(classes) " + " " * 3000 + "foo }"
    path = tmp_path / "t.nfl"
    path.write_text(src)
    res = cli("check", path)
    no_traceback(res)
    assert res.exit_code == 2
    shown = [line for line in res.output.splitlines() if line.startswith("    ")]
    src_line, caret = shown[0], shown[1]
    assert len(src_line) < 200
    assert src_line[caret.index("^")] == "}"
