"""Small things a new user meets first: `nflc --version`, flags that take no value (and say
so), `py.typed`, analyze's header time, and loading what `nflc compile --out` wrote."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import nflc
from nflc.cli import app

from .conftest import SPECS

H3 = SPECS / "nfl_h3.nfl"
ROOT = Path(__file__).resolve().parents[2]


def cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    return res


def test_version_is_the_packages_own():
    from importlib.metadata import version

    res = cli("--version")
    assert res.exit_code == 0 and res.output.strip() == f"nflc {nflc.__version__}"
    assert version("nflc") == nflc.__version__  # pyproject reads it from nflc/__init__.py
    assert 'path = "nflc/__init__.py"' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("args,flag,word", [(["list", H3, "--rejected", "true"], "--rejected", "true"),
                                            (["verify", H3, "--population", "no"], "--population", "no"),
                                            (["check", H3, "--allow-outside-imports", "False"], "--allow-outside-imports", "False")])
def test_a_flag_given_a_value_is_told_how_flags_are_written(args, flag, word, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = cli(*args)
    text = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code == 2 and f"a flag takes no value: write '{flag}' alone, without '{word}'" in text
    assert list(tmp_path.iterdir()) == []  # refused before anything ran


def test_help_shows_no_value_for_flags():
    res = CliRunner().invoke(app, ["list", "--help"], terminal_width=150)
    rows = {line.split()[1]: line for line in res.output.splitlines() if re.match(r"^│ --", line)}
    assert "<bool>" not in res.output
    assert "<int>" in rows["--limit"] and "Show at most" in rows["--limit"]
    assert re.search(r"--rejected\s+List the architectures", rows["--rejected"])
    assert "--no-population" in CliRunner().invoke(app, ["verify", "--help"], terminal_width=200).output


def test_an_index_may_follow_a_flag():
    res = cli("graph", H3, "--network", "0")
    assert res.exit_code == 0 and res.output.startswith('digraph "nfl_h3"')


def test_the_package_ships_py_typed():
    import nflc as pkg

    assert (Path(pkg.__file__).parent / "py.typed").is_file()


def test_analyze_header_time_is_the_whole_runs(monkeypatch):
    """Loading the space is part of the run: a second spent there shows in the header."""
    import nflc.cli as cli_mod

    real = cli_mod.load_space

    def slow(*args, **kwargs):
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(cli_mod, "load_space", slow)
    res = cli("analyze", H3, "--archs", "sample:2", "--dataset", "none", "--samples", "4", "--threads", "1")
    assert res.exit_code == 0, res.output
    seconds = float(re.search(r"1 thread, ([0-9.]+) s", res.output).group(1))
    assert seconds >= 1.0


def test_a_compiled_file_loads_with_the_documented_call(tmp_path):
    path = tmp_path / "m.pt"
    res = cli("compile", H3, "700", "--seed", "2", "--out", path)
    assert res.exit_code == 0, res.output
    hint = re.search(r"in Python: (arch, module = nflc\.load_checkpoint\(.*\))\)", " ".join(res.output.split()))
    assert hint is not None, res.output
    scope: dict = {"nflc": nflc}
    exec(hint.group(1), scope)  # noqa: S102 - the line the command printed
    arch, module = scope["arch"], scope["module"]
    assert arch.index == 700 and not module.training
    want = nflc.load(H3).architecture(700).to_module(seed=2)
    x = torch.randn(4, 784, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(module(x), want.eval()(x))
    with pytest.raises(nflc.NflcError, match="no such file"):
        nflc.load_checkpoint(tmp_path / "missing.pt", nflc.load(H3))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(nflc.NflcError, match="is not a checkpoint nflc wrote"):
        nflc.load_checkpoint(tmp_path / "junk.pt", nflc.load(H3))


def test_a_subprocess_sees_the_same_version():
    out = subprocess.run([sys.executable, "-m", "nflc.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"nflc {nflc.__version__}"
