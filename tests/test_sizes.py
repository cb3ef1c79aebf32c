"""No function in nflc/ over 80 lines, no class over 300 (tools/size_check.py, also run by
.ci/run); the check itself finds an over-long function in a copy."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("size_check", REPO / "tools" / "size_check.py")
assert spec is not None and spec.loader is not None
size_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(size_check)


def test_no_function_or_class_is_too_long():
    assert size_check.problems() == []


def test_the_check_finds_a_long_function(tmp_path):
    (tmp_path / "nflc").mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(80))
    (tmp_path / "nflc" / "m.py").write_text(f"class C:\n    def f(self):\n{'    ' + body.replace(chr(10) + '    ', chr(10) + '        ')}")
    found = size_check.problems(tmp_path)
    assert found == ["nflc/m.py:C.f: function of 81 lines (at most 80)"]
