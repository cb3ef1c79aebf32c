"""Large spaces stream (issue 15, item 4): ``nflc analyze`` groups, scores and writes in
chunks, its JSON and CSV written as it goes equal the in-memory analysis, the report from
columns (:func:`nflc.analysis.report.nfl_report`) equals the list-based oracle, progress comes at once, and a run
stopped early leaves files whose complete part is valid."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import nflc
from nflc.analysis import groups
from nflc.analysis.analyze import (
    CSV_COLUMNS,
    StreamWriter,
    analyze,
    analyze_stream,
    cell_topologies,
    csv_row,
    to_json_dict,
)
from nflc.analysis.report import nfl_report, pareto_mask
from nflc.cli import app

from report_oracle import list_report, pareto_front

# 3^10 = 59,049 MLP cells: 'lin' (a linear edge without ReLU) is outside the exact family, so
# most architectures get no kernels under --measure none; those with only zero and skip edges
# get exact ones.
SPACE_59K = """
space cells59k {
    input   [16]
    classes 4
    width   16
    bias    false
    cell {
        nodes 5
        edge * : zero | skip | linear as lin
    }
    network = linear(width) >> relu >> cell >> linear(classes)
}
"""

# 4^10 = 1,048,576 MLP cells (the benchmark's space)
SPACE_1M = SPACE_59K.replace("cells59k", "cells1m").replace("zero | skip | linear as lin",
                                                            "zero | skip | linear >> relu as linear | linear as lin")


@pytest.fixture(scope="module")
def spec59k(tmp_path_factory):
    path = tmp_path_factory.mktemp("spaces") / "cells59k.nfl"
    path.write_text(SPACE_59K)
    return path


def read_csv(path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_streamed_files_equal_the_in_memory_analysis(spec59k, tmp_path):
    sp = nflc.load(spec59k)
    assert sp.count() == 59049
    out, table = tmp_path / "a.json", tmp_path / "a.csv"
    res = CliRunner().invoke(app, ["analyze", str(spec59k), "--dataset", "none", "--samples", "6", "--measure", "none",
                                   "--threads", "1", "--json", str(out), "--csv", str(table)])
    assert res.exit_code == 0, res.output
    streamed = json.loads(out.read_text())
    mem = analyze(sp, data="none", samples=6, measure="none")
    whole = to_json_dict(mem)
    assert streamed.pop("seconds") > 0 and whole.pop("seconds") > 0
    assert streamed == whole
    rows = read_csv(table)
    assert rows[0] == list(CSV_COLUMNS)
    assert rows[1:] == [[str(v) for v in csv_row(a)] for a in mem.architectures]
    # the groups are the architectures' computing graphs, by their canonical forms
    assert len({a["group"] for a in streamed["architectures"]}) == len({groups.function_key(a) for a in sp})


def test_report_from_columns_equals_the_list_oracle():
    """nfl_report (numpy, for millions of rows) against the list-based oracle, on scores
    with ties, infinities, signed zeros, a missing score and rows with no path; with groups
    and every score required (analyze), and without groups, a missing value left out
    (verify's measured report)."""
    rng = np.random.default_rng(0)
    n = 3000
    ids = [f"a{i}" for i in range(n)]
    paths = rng.integers(0, 5, n)
    depth = rng.integers(0, 4, n).astype(float)
    grp = rng.integers(0, 700, n)
    scores = {"expressivity": rng.integers(0, 6, n) / 3.0, "convergence": rng.normal(size=n).round(1),
              "generalization": -rng.integers(0, 8, n).astype(float)}
    scores["generalization"][rng.random(n) < 0.05] = -math.inf
    scores["convergence"][:5] = -0.0
    scores["expressivity"][7] = scores["expressivity"].max() * (1 + 1e-12)  # a tie within round-off
    for missing in (False, True):
        sc = {a: v.copy() for a, v in scores.items()}
        if missing:
            sc["convergence"][11] = math.nan
        ref = list_report(ids, {a: v.tolist() for a, v in sc.items()}, paths.tolist(), depth.tolist(),
                          groups=grp.tolist(), complete=True)
        got = nfl_report(lambda i: ids[i], sc, paths, depth, grp, complete=True)
        assert got == ref
        measured = {a: v.tolist() for a, v in sc.items()}
        assert nfl_report(ids, measured, paths.tolist(), depth.tolist()) == list_report(
            ids, measured, paths.tolist(), depth.tolist())
    assert nfl_report(lambda i: ids[i], scores, np.zeros(n), depth, grp) == list_report(
        ids, {a: v.tolist() for a, v in scores.items()}, [0] * n, depth.tolist(), groups=grp.tolist(), complete=True)


@pytest.mark.parametrize("seed", range(4))
def test_pareto_mask_equals_pareto_front(seed):
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 4 + seed, (2000, 3)).astype(float)
    v[rng.random(2000) < 0.1, 2] = -math.inf
    ids = [str(i) for i in range(len(v))]
    ref = set(pareto_front(ids, [tuple(r) for r in v]))
    got = {ids[i] for i in np.flatnonzero(pareto_mask(v, block=64))}
    assert got == ref
    # a measured value left out (NaN): such a row neither dominates nor is dominated (by the
    # definition, checked on every pair; the oracle's sort is undefined with NaN)
    v[rng.random(2000) < 0.02, seed % 3] = math.nan
    at_least = np.all(v[None, :, :] >= v[:, None, :], axis=2)  # [i, j]: row j at least as high as row i
    higher = np.any(v[None, :, :] > v[:, None, :], axis=2)
    assert np.array_equal(pareto_mask(v, block=64), ~(at_least & higher).any(axis=1))


def test_fast_topologies_equal_the_graph_ones(spec59k):
    for sp in (nflc.loads(SPACE_1M), nflc.load(spec59k)):
        for a in sp.sample(200, seed=1):
            assert cell_topologies(a) == {k: a.topology(k) for k in sp.instances}


def test_canonical_groups_equal_the_walked_table(spec59k, monkeypatch):
    """Cells with more choices than TABLE_MAX are grouped by per-architecture canonical forms:
    the same partition as the space's walked table of representatives."""
    sp = nflc.load(spec59k)
    archs = list(sp)[::7]
    table = groups.representatives(archs)
    monkeypatch.setattr(groups, "TABLE_MAX", 10)
    sp2 = nflc.load(spec59k)
    canon = groups.representatives([sp2.architecture(a.index) for a in archs])
    assert groups._per_architecture(sp2, sp2.cell(sp2.cell_of[sp2.instances[0]].name))
    assert canon == table


def test_files_grow_as_it_goes_and_a_stopped_run_leaves_a_valid_prefix(spec59k, tmp_path):
    """The files grow as PATH.partial; a stopped run leaves PATH as it was (here: absent)
    and a valid prefix in PATH.partial."""
    sp = nflc.load(spec59k)
    final_json, final_csv = tmp_path / "a.json", tmp_path / "a.csv"
    out, table = tmp_path / "a.json.partial", tmp_path / "a.csv.partial"
    writer = StreamWriter(final_json, final_csv)
    seen = []

    class Stop(Exception):
        pass

    def rows(chunk):
        writer.rows(chunk)
        seen.extend(chunk)
        # after each chunk both files hold every row so far
        assert len(read_csv(table)) == 1 + len(seen)
        if len(seen) >= 3 * 2000:
            raise Stop

    with pytest.raises(Stop):
        analyze_stream(sp, data="none", samples=4, measure="none", on_header=writer.header, on_rows=rows, chunk=2000)
    writer.close()
    assert not final_json.exists() and not final_csv.exists()
    got = read_csv(table)
    assert got[0] == list(CSV_COLUMNS) and [int(r[0]) for r in got[1:]] == [a.index for a in seen]
    lines = out.read_text().splitlines()
    start = lines.index('"architectures": [')
    head = json.loads("\n".join(lines[:start]).rstrip(",") + "}")
    assert head["space"] == "cells59k" and head["data"]["samples"] == 4
    parsed = [json.loads(ln.rstrip(",")) for ln in lines[start + 1:]]
    assert [p["index"] for p in parsed] == [a.index for a in seen]


def test_progress_starts_at_once(spec59k):
    """Every pass reports from its start (the grouping's first call as soon as the inputs are
    loaded; the CLI prints a large space's first line before even that), then once per chunk
    (the seconds they take: benchmarks/bench_responsiveness.py)."""
    sp = nflc.load(spec59k)
    archs = [sp.architecture(i) for i in range(0, 59049, 3)]
    calls = []
    analyze_stream(sp, data="none", samples=4, measure="none", chunk=2048, archs=archs,
                   progress=lambda done, total, stage="kernels": calls.append((stage, done)))
    assert calls[0] == ("grouping", 0)
    stages = [c[0] for c in calls]
    assert stages.index("kernels") > stages.index("grouping") and stages.index("scoring") > stages.index("kernels")
    # once per chunk (steady updates, no long silence), each pass counting up
    for stage in ("grouping", "scoring"):
        done = [d for s, d in calls if s == stage]
        assert len(done) >= len(archs) // 2048 and done == sorted(done) and done[-1] == len(archs)


def test_million_architectures_print_progress_before_the_grouping_ends(tmp_path):
    """The CLI on 1,048,576 architectures: its first line is the grouping's progress line, and
    it comes while the grouping is still running: stopped with Ctrl-C after that line, the
    run closes the grouping's progress short of the total. (How many seconds the first
    line takes is measured by benchmarks/bench_responsiveness.py, not asserted here.)"""
    import signal

    spec = tmp_path / "cells1m.nfl"
    spec.write_text(SPACE_1M)
    proc = subprocess.Popen([sys.executable, "-m", "nflc.cli", "analyze", str(spec), "--dataset", "none", "--samples", "4",
                             "--measure", "none"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline().strip()
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert first == "grouping: 1,048,576 architectures"
    assert proc.returncode == 130, rest
    closing = [line for line in rest.splitlines() if line.startswith("grouping: ") and "after" in line]
    assert len(closing) == 1 and closing[0].split()[-4] == "stopped", rest
    done = int(closing[0].split()[1].split("/")[0].replace(",", ""))
    assert 0 <= done < 1_048_576


def test_huge_spaces_are_refused_with_the_way_out():
    res = CliRunner().invoke(app, ["analyze", "specs/nb201_independent.nfl"])
    assert res.exit_code == 2 and "--archs sample:K" in res.output and "bytes each" in res.output
    assert "grouping" not in res.output
