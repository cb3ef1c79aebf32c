"""The HTML pages' content, read back from the data they inline (the browser test checks
what Chromium renders of it): every architecture a row and a mark, drawings equal to the
graphs, the large-report rule, and bad ``--html`` paths refused before any work."""

from __future__ import annotations

import json
import math
import os
from collections import Counter

import numpy as np
import pytest

import nflc
from nflc.analysis.report import ASPECTS
from nflc.pages import document as doc
from nflc.pages import figures

from .conftest import NFL_H3, SPECS, cli, page_data


def marks(fig: dict) -> int:
    return sum(len(t["x"]) for t in fig["data"])


def nonzero(g) -> set[tuple[str, str]]:
    return {(str(s), str(t)) for s, t, d in g.edges(data=True) if d["kind"] != "zero"}


def check_drawing(data: dict, row: int, space) -> None:
    """The row's drawing has the architecture's cells: every node, every non-zero edge with its op."""
    entry = data["row_drawings"][row]
    arch = space.architecture(entry["id"])
    graphs = arch.cell_graphs
    assert len(entry["panels"]) == len(graphs)
    for key, (k, g) in zip(entry["panels"], graphs.items(), strict=True):
        assert key == f"{k}:{arch.cell_index(k)}"
        p = data["drawings"][key]
        assert {n[0] for n in p["n"]} == {str(v) for v in g.nodes}
        assert {(e[0], e[1]) for e in p["e"]} == nonzero(g)
        ops = {(str(s), str(t)): d["op"] for s, t, d in g.edges(data=True)}
        assert all(e[2] == ops[(e[0], e[1])] for e in p["e"])


def test_analyze_page(pages):
    data = page_data(pages["analyze"])
    an = json.loads(pages["an_json"].read_text())
    ids = [a["id"] for a in an["architectures"]]
    cols = [c["key"] for c in data["tables"][0]["columns"]]
    rows = data["tables"][0]["rows"]
    assert [r[cols.index("id")] for r in rows] == ids  # every architecture is a row
    for a, r in zip(an["architectures"], rows, strict=True):
        assert r[cols.index("P")] == a["topology"]["paths"]
        assert r[cols.index("expressivity")] == pytest.approx(a["scores"]["expressivity"], rel=1e-5)
        assert (r[cols.index("pareto")] == "yes") == (a["id"] in an["report"]["pareto_front"])
    space = nflc.load(NFL_H3)
    for asp in ASPECTS:
        fig = data["figures"][f"fig-{asp}"]
        assert marks(fig) == len(ids), "every architecture is one mark"
        clicked = [c[0] for t in fig["data"] for c in t["customdata"]]
        assert sorted(clicked) == list(range(len(ids))), "each mark leads to its own row"
        values = [a["scores"][asp] for a in an["architectures"] if a["topology"]["paths"] > 0]
        lo, hi = np.percentile([v for v in values if isinstance(v, float) and math.isfinite(v)], [2, 98])
        assert fig["data"][0]["marker"]["cmin"] == pytest.approx(lo) and fig["data"][0]["marker"]["cmax"] == pytest.approx(hi)
        assert "2nd-98th percentile" in fig["data"][0]["marker"]["colorbar"]["title"]["text"]
        assert fig["layout"]["legend"]["y"] < 0, "the legend sits below the axes, not over points"
    for r in range(len(rows)):
        check_drawing(data, r, space)


def test_report_page(pages):
    data = page_data(pages["report"])
    rep = json.loads(pages["report_json"].read_text())
    finished = [a for a in rep["architectures"] if a["status"] in ("done", "diverged")]
    assert len(finished) == 24
    rows = data["tables"][0]["rows"]
    assert len(rows) == len(rep["architectures"])
    for asp in ASPECTS:
        assert marks(data["figures"][f"fig-measured-{asp}"]) == len(finished)
        assert marks(data["figures"][f"fig-predicted-{asp}"]) == len(finished)
        pvm = data["figures"][f"fig-pvm-{asp}"]
        t = rep["predicted_vs_measured"][asp]
        assert marks(pvm) == t["n"], "one mark per architecture the tau counts"
        title = pvm["layout"]["title"]["text"]
        if t["tau"] is None:
            assert "Kendall tau n/a" in title
        else:
            assert f"Kendall tau {t['tau']:+.2f} [{t['ci_low']:+.2f}, {t['ci_high']:+.2f}]" in title
    space = nflc.load(NFL_H3)
    for r in range(len(rows)):
        check_drawing(data, r, space)


def test_rank_page(rank_page):
    path, bench = rank_page
    data = page_data(path)
    entries = json.loads(bench.read_text())["architectures"]
    table = next(t for t in data["tables"] if t["arch_rows"])
    assert len(table["rows"]) == len(entries)
    assert marks(data["figures"]["fig-score"]) == len(entries)
    proxies = next(t for t in data["tables"] if not t["arch_rows"])
    assert {r[0] for r in proxies["rows"]} >= {"nflc:nflc", "nwot", "synflow"}
    space = nflc.load(SPECS / "nb201.nfl", space="nb201")
    for r in range(0, len(table["rows"]), 37):
        check_drawing(data, r, space)


def test_large_analysis_rule(tmp_path, monkeypatch):
    """Above the limits the table samples (keeping every named architecture) and each panel
    draws one marker per (mean depth, P) cell, sized by its count: here with limits of 15."""
    monkeypatch.setattr(doc, "MAX_ROWS", 15)
    monkeypatch.setattr(figures, "MAX_POINTS", 15)
    out = tmp_path / "big.html"
    res = cli("analyze", NFL_H3, "--archs", "sample:120", "--samples", "16", "--json", tmp_path / "a.json", "--html", out)
    assert res.exit_code == 0, res.output
    data = page_data(out)
    an = json.loads((tmp_path / "a.json").read_text())
    rows = data["tables"][0]["rows"]
    named = {i for a in ASPECTS for i in an["report"]["winners"][a]} | set(an["report"]["pareto_front"])
    ids = {r[1] for r in rows}
    assert named <= ids and len(ids) <= 15 + len(named)
    assert "a uniform sample of 15" in out.read_text()
    cells = Counter((round(a["topology"]["mean_depth"], 9), a["topology"]["paths"]) for a in an["architectures"]
                    if a["topology"]["paths"] > 0)
    no_path = sum(a["topology"]["paths"] == 0 for a in an["architectures"])
    for asp in ASPECTS:
        fig = data["figures"][f"fig-{asp}"]
        assert marks(fig) == len(cells) + (1 if no_path else 0)
        counted = {(x, y): c[1] for x, y, c in zip(fig["data"][0]["x"], fig["data"][0]["y"], fig["data"][0]["customdata"],
                                                    strict=True)}
        assert counted == {(d, float(p)): n for (d, p), n in cells.items()}
        assert "one marker per (mean depth, P) cell" in json.dumps(fig["layout"])


def test_spread_keeps_cells_apart():
    depth = [0.5] * 30 + [1.0] * 5 + [0.5]
    paths = [2] * 30 + [2] * 5 + [3]
    x, y = figures.spread(depth, paths)
    assert len(set(zip(x, y, strict=True))) == len(depth), "no two markers on one spot"
    for xi, yi, d, p in zip(x, y, depth, paths, strict=True):
        assert abs(xi - d) <= 0.4 * 0.5 + 1e-9 and abs(yi - p) <= 0.35 + 1e-9, "a marker stays within its cell"


@pytest.mark.parametrize("command", ["analyze", "report", "rank"])
def test_bad_html_target_is_refused_before_any_work(tmp_path, command):
    before = set(os.listdir(tmp_path))
    base = {"analyze": ["analyze", NFL_H3, "--json", tmp_path / "a.json"],
            "report": ["report", "--db", tmp_path / "missing.sqlite", "--json", tmp_path / "r.json"],
            "rank": ["rank", SPECS / "nb201.nfl", "--space", "nb201", "--benchmark", tmp_path / "none.json",
                     "--json", tmp_path / "k.json"]}[command]
    (tmp_path / "adir").mkdir()
    targets = [(tmp_path / "nope" / "p.html", "does not exist"), (tmp_path / "adir", "is a directory"),
               ("/proc/self/nflc.html", "cannot write there")]
    for target, message in targets:
        res = cli(*base, "--html", target)
        assert res.exit_code == 2, res.output
        assert message in res.output and "Traceback" not in res.output
    assert set(os.listdir(tmp_path)) == before | {"adir"}, "nothing written, no database created"
