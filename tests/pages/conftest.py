"""Pages built once per session from real runs: an analysis, a small verification with its
report, and a ranking (the shared NAS-Bench-201 file)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nflc.cli import app

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"
NFL_H3 = SPECS / "nfl_h3.nfl"
K = 24  # architectures sampled (the same seed, so the same ones) by the analysis and the verification


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def page_data(path: Path) -> dict:
    """The JSON a page inlines (what its script renders)."""
    m = re.search(r'<script type="application/json" id="nflc-data">(.*?)</script>', path.read_text(), re.S)
    assert m, "no inlined data"
    return json.loads(m.group(1).replace("<\\/", "</"))


@pytest.fixture(scope="session")
def pages(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pages")
    res = cli("analyze", NFL_H3, "--archs", f"sample:{K}", "--samples", "32", "--json", d / "an.json",
              "--html", d / "analyze.html")
    assert res.exit_code == 0, res.output
    res = cli("verify", NFL_H3, "--archs", f"sample:{K}", "--samples", "300", "--epochs", "3", "--width", "16",
              "--threshold", "0.3",
              "--db", d / "v.sqlite", "--quiet")
    assert res.exit_code == 0, res.output
    res = cli("report", "--db", d / "v.sqlite", "--analysis", d / "an.json", "--bootstrap", "50", "--html",
              d / "report.html", "--spec", NFL_H3, "--json", d / "report.json")
    assert res.exit_code == 0, res.output
    return {"analyze": d / "analyze.html", "report": d / "report.html", "an_json": d / "an.json",
            "report_json": d / "report.json", "dir": d}


@pytest.fixture(scope="session")
def rank_page(tmp_path_factory, shared_data) -> tuple[Path, Path]:
    bench = shared_data("nb201/nb201_cifar10.json")
    d = tmp_path_factory.mktemp("rank")
    res = cli("rank", SPECS / "nb201.nfl", "--space", "nb201", "--benchmark", bench, "--html", d / "rank.html",
              "--json", d / "rank.json")
    assert res.exit_code == 0, res.output
    return d / "rank.html", bench
