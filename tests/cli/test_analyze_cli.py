"""nflc analyze's command line (issue #11): one dataset flag (the old one kept as a hidden
alias), --threads, progress and warnings on stderr when it is not a terminal, rows grouped
by computing graph, ids printed whole, no verdict from scores that were not computed,
--plot a directory, --json PATH everywhere."""

import itertools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nflc
from nflc.cli import app

ROOT = Path(__file__).resolve().parents[2]
H3 = ROOT / "specs" / "nfl_h3.nfl"
NB201 = ROOT / "specs" / "nb201.nfl"
NB201_IND = ROOT / "specs" / "nb201_independent.nfl"


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def brute_form(arch) -> tuple:
    """The cell's computing graph by brute force (as in tests/analysis/test_groups.py)."""
    g = arch.graph
    h = max(g.nodes)
    edges = [(s, t, a["op"]) for s, t, a in g.edges(data=True) if a["kind"] != "zero"]

    def paths(node):
        return [[]] if node == h else [[e, *r] for e in edges if e[0] == node for r in paths(e[1])]

    live = {e for p in paths(0) for e in p}
    return min(tuple(sorted(({0: 0, h: h, **dict(zip(range(1, h), perm, strict=True))}[s],
                             {0: 0, h: h, **dict(zip(range(1, h), perm, strict=True))}[t], op) for s, t, op in live))
               for perm in itertools.permutations(range(1, h)))


@pytest.fixture(scope="module")
def h3_full(tmp_path_factory):
    out = tmp_path_factory.mktemp("h3") / "an.json"
    res = run("analyze", H3, "--dataset", "none", "--samples", "8", "--threads", "1", "--json", out)
    assert res.exit_code == 0, res.output
    return res, json.loads(out.read_text())


def test_dataset_flag_and_its_deprecated_alias(tmp_path):
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    a = run("analyze", H3, "--archs", "3,77", "--dataset", "digits", "--samples", "12", "--json", new)
    assert a.exit_code == 2 and "784" in a.output  # digits has 64 values: the flag reached the loader
    a = run("analyze", H3, "--archs", "3,77", "--dataset", "none", "--samples", "12", "--json", new)
    b = run("analyze", H3, "--archs", "3,77", "--data", "none", "--samples", "12", "--json", old)
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert "deprecated" in b.stderr and "deprecated" not in a.stderr
    da, db = json.loads(new.read_text()), json.loads(old.read_text())
    assert da["data"]["name"] == db["data"]["name"] == "none"
    assert [x["scores"] for x in da["architectures"]] == [x["scores"] for x in db["architectures"]]
    clash = run("analyze", H3, "--dataset", "none", "--data", "digits")
    assert clash.exit_code == 2 and "disagree" in clash.output
    helptext = run("analyze", "--help").output
    assert "--dataset" in helptext and "--data " not in helptext.replace("--dataset", "")


def test_threads_option_checked():
    res = run("analyze", H3, "--threads", "0", "--archs", "1")
    assert res.exit_code == 2 and "--threads must be at least 1" in res.output
    ok = run("analyze", H3, "--threads", "2", "--archs", "1,2", "--dataset", "none", "--samples", "8")
    assert ok.exit_code == 0 and "2 threads" in ok.stdout


def test_progress_lines_on_stderr_when_not_a_terminal(h3_full):
    res, _ = h3_full
    lines = res.stderr.splitlines()
    assert lines[0] == "analyzing: 261 computing graphs (729 architectures)"  # 261: test_groups' brute force
    assert lines[-1].startswith("analyzing: 261/261 computing graphs done after")
    assert "analyzing" not in res.stdout


def test_rows_are_computing_graphs_with_their_size(h3_full):
    res, doc = h3_full
    h3 = nflc.load(H3)
    forms = {a.id: brute_form(a) for a in h3}
    size = {}
    for f in forms.values():
        size[f] = size.get(f, 0) + 1
    rows = [ln for ln in res.stdout.splitlines() if ln.startswith("│ |")]
    assert rows
    seen_forms = []
    for ln in rows:
        cells = [c.strip() for c in ln.strip("│").split("│")]
        arch_id, archs = cells[0], int(cells[1])
        assert archs == size[forms[arch_id]]
        seen_forms.append(forms[arch_id])
    # within one table no computing graph appears twice
    tables = [seen_forms[i:i + 5] for i in range(0, len(seen_forms), 5)]
    assert all(len(set(t)) == len(t) for t in tables)
    # the tied winners are counted in computing graphs, by brute force
    rep = doc["report"]
    gen = rep["winners"]["generalization"]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("winner generalization"))
    if len(gen) > 1:
        assert f"+{len(gen) - 1} tied; {len({forms[i] for i in gen})} distinct computing graph(s)" in line
    assert f"({len({forms[i] for i in rep['pareto_front']})} distinct computing graph(s))" in res.stdout
    assert {a["group_size"] for a in doc["architectures"]} == set(size.values())


def test_ids_are_never_broken(tmp_path):
    """nb201_independent ids are about 1400 characters: each printed whole on one line."""
    sp = nflc.load(NB201_IND)
    res = run("analyze", NB201_IND, "--dataset", "none", "--samples", "4", "--archs", "sample:2", "--measure", "none",
              "--top", "2")
    assert res.exit_code == 0, res.output
    for a in sp.sample(2, seed=0):
        assert any(a.id in ln for ln in res.stdout.splitlines()), a.id[:40]
    listed = run("list", NB201_IND, "--limit", "2")
    assert listed.exit_code == 0
    for a in itertools.islice(sp, 2):
        assert any(a.id in ln for ln in listed.stdout.splitlines())
    assert "…" not in listed.stdout and "…" not in res.stdout


def test_measure_none_prints_no_verdict(tmp_path):
    out = tmp_path / "a.json"
    res = run("analyze", NB201, "-s", "nb201", "--dataset", "none", "--samples", "4", "--archs", "sample:6",
              "--measure", "none", "--json", out)
    assert res.exit_code == 0, res.output
    assert "free lunch" not in res.stdout and "Pareto front" not in res.stdout
    assert "no verdict" in res.stdout
    assert "winner convergence: not computed" in res.stdout
    assert "nan" not in res.stdout.lower()
    doc = json.loads(out.read_text())
    assert doc["report"]["verdict"].startswith("no verdict")
    assert doc["report"]["pareto_front"] == []
    assert all(a["scores"]["convergence"] is None and a["scores"]["generalization"] is None
               for a in doc["architectures"])
    # the closed-form expressivity is still computed and ranked
    assert all(a["scores"]["expressivity"] is not None for a in doc["architectures"])


def test_warning_before_finite_width_work(monkeypatch):
    """The estimate runs before the measurements and its warning goes to stderr."""
    import nflc.analysis.analyze as A

    monkeypatch.setattr(A, "WARN_BYTES", 1)  # any network is "gigabytes" now
    res = run("analyze", NB201, "-s", "nb201", "--dataset", "none", "--samples", "2", "--archs", "0")
    assert res.exit_code == 0, res.output
    warn = [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warn) == 1 and "GB of memory" in warn[0] and "--samples N" in warn[0]
    assert "warning" not in res.stdout


def test_estimate_scales_with_inputs_and_names_the_largest():
    import numpy as np

    from nflc.analysis.analyze import estimate_finite, finite_bytes

    sp = nflc.load(NB201, space="nb201")
    small, big = sp.architecture(0), sp.architecture(11718)  # all none, all nor_conv_3x3
    x = np.zeros((64, 3, 32, 32))
    est = estimate_finite([small, big], x[:8], seed=0)
    assert est.largest == big.id and est.seconds is None  # 2 networks x 8 inputs: too small to time
    # the all-conv network keeps far more activations than the all-none one
    assert finite_bytes(big, x) > 4 * finite_bytes(small, x)


def test_plot_is_a_directory(tmp_path):
    d = tmp_path / "plots"
    res = run("analyze", H3, "--dataset", "none", "--samples", "8", "--archs", "sample:30", "--plot", d)
    assert res.exit_code == 0, res.output
    assert (d / "predicted_topology.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    f = tmp_path / "one.png"  # the older form: a file path ending in .png
    res = run("analyze", H3, "--dataset", "none", "--samples", "8", "--archs", "sample:30", "--plot", f)
    assert res.exit_code == 0 and f.read_bytes()[:4] == b"\x89PNG"


def test_output_paths_checked_before_work(tmp_path):
    res = run("analyze", H3, "--json", tmp_path / "missing" / "a.json")
    assert res.exit_code == 2 and "does not exist" in res.output and "analyzing" not in res.output


@pytest.mark.parametrize("cmd", [["list", H3, "--limit", "3"], ["ops"]])
def test_json_takes_a_path_and_alone_means_stdout(tmp_path, cmd):
    path = tmp_path / "rows.jsonl"
    to_file = run(*cmd, "--json", path)
    alone = run(*cmd, "--json")
    dash = run(*cmd, "--json", "-")
    assert to_file.exit_code == alone.exit_code == dash.exit_code == 0, to_file.output + alone.output
    rows = [json.loads(ln) for ln in path.read_text().splitlines()]
    assert rows and rows == [json.loads(ln) for ln in alone.stdout.splitlines()]
    assert dash.stdout == alone.stdout
    if cmd[0] == "list":
        assert [r["index"] for r in rows] == [0, 1, 2]
        before = run("list", "--json", H3, "--limit", "3")  # --json before the spec file
        assert before.exit_code == 0 and before.stdout == alone.stdout


def test_print_table_keeps_ids_whole_on_a_narrow_terminal():
    import io

    from rich.console import Console
    from rich.table import Table

    from nflc.cli import id_column, print_table

    long_id = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    buf = io.StringIO()
    console = Console(file=buf, width=40, force_terminal=True, color_system=None, emoji=False)
    table = Table()
    id_column(table)
    table.add_column("expressivity", justify="right")
    table.add_row(long_id, "1.007")
    print_table(table, console)
    text = buf.getvalue()
    assert long_id in text and "expressivity" in text and "…" not in text
    assert console.width == 40  # restored
