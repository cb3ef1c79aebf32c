"""Output files (issue #27, items 1, 7 and 9): an output that is an input of the command
(after resolving links) or another output is refused and the input kept byte for byte;
outputs are written atomically (a failure or Ctrl-C leaves the old file); an existing
file that is not nflc's own output of the same kind needs --force; every output path
that cannot be written (a directory, a missing directory, /proc, /dev/full, a read-only
directory, a dangling link) is refused before the work."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nflc import outputs
from nflc.cli import app

ROOT = Path(__file__).resolve().parents[2]
H3 = ROOT / "specs" / "nfl_h3.nfl"
NB201 = ROOT / "specs" / "nb201.nfl"
QUICK = ["--dataset", "none", "--samples", "4", "--archs", "0,1"]  # an analysis of two architectures, no data
ARCHS = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
         "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
         "|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"]


def cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "s.nfl"
    shutil.copy(H3, path)
    return path


@pytest.fixture
def bench(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"architectures": [{"arch_str": a, "val_accuracy": 90.0 + i, "synflow": 2.0 * i}
                                                  for i, a in enumerate(ARCHS)]}))
    return path


@pytest.fixture(scope="module")
def finished_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("db") / "r.sqlite"
    res = cli("verify", H3, "--archs", "0,1", "--samples", "160", "--epochs", "2", "--width", "8", "--quiet", "--db", db)
    assert res.exit_code == 0, res.output
    return db


@pytest.fixture
def db(tmp_path, finished_db):
    path = tmp_path / "r.sqlite"
    shutil.copy(finished_db, path)
    return path


# ---------------------------------------------------------------------------------------
# item 1: an output equal to an input, or to another output


def test_report_json_onto_its_own_database_is_refused(db):
    before = db.read_bytes()
    for target in (db, db.with_name("r.sqlite-wal")):
        res = cli("report", "--db", db, "--json", target)
        assert res.exit_code == 2 and "--db" in res.output and "destroy" in res.output, res.output
    assert db.read_bytes() == before
    assert cli("report", "--db", db).exit_code == 0


def test_analyze_json_onto_the_spec_is_refused(spec):
    before = spec.read_bytes()
    res = cli("analyze", spec, *QUICK, "--json", spec)
    assert res.exit_code == 2 and "the spec" in res.output, res.output
    assert spec.read_bytes() == before


def test_an_output_onto_a_file_the_spec_imports_is_refused(tmp_path):
    lib = tmp_path / "lib.nfl"
    lib.write_text("op dense = linear >> relu\n")
    main = tmp_path / "main.nfl"
    main.write_text('import "lib.nfl"\n' + H3.read_text())
    before = lib.read_bytes()
    res = cli("analyze", main, *QUICK, "--csv", lib, "--force")  # --force never replaces an input
    assert res.exit_code == 2 and "imports" in res.output, res.output
    assert lib.read_bytes() == before


def test_rank_json_onto_the_benchmark_is_refused(bench):
    before = bench.read_bytes()
    res = cli("rank", NB201, "--benchmark", bench, "--json", bench)
    assert res.exit_code == 2 and "--benchmark" in res.output, res.output
    assert bench.read_bytes() == before


def test_report_json_onto_its_analysis_is_refused(db, spec, tmp_path):
    analysis = tmp_path / "a.json"
    assert cli("analyze", spec, *QUICK, "--json", analysis).exit_code == 0
    before = analysis.read_bytes()
    res = cli("report", "--db", db, "--analysis", analysis, "--json", analysis)
    assert res.exit_code == 2 and "--analysis" in res.output, res.output
    assert analysis.read_bytes() == before


def test_json_and_csv_naming_one_file_are_refused(spec, tmp_path):
    res = cli("analyze", spec, *QUICK, "--json", tmp_path / "o", "--csv", tmp_path / "o")
    assert res.exit_code == 2 and "same file" in res.output, res.output
    assert not (tmp_path / "o").exists()


def test_a_link_to_an_input_is_that_input(spec, tmp_path):
    (tmp_path / "link.json").symlink_to(spec)
    os.link(spec, tmp_path / "hard.json")
    before = spec.read_bytes()
    for target in ("link.json", "hard.json"):
        res = cli("analyze", spec, *QUICK, "--json", tmp_path / target)
        assert res.exit_code == 2 and "the spec" in res.output, res.output
    assert spec.read_bytes() == before


# ---------------------------------------------------------------------------------------
# item 1: existing files; atomic writes


def test_an_existing_file_that_is_not_nflcs_output_needs_force(spec, tmp_path):
    out = tmp_path / "notes.json"
    out.write_text("my notes\n")
    res = cli("analyze", spec, *QUICK, "--json", out)
    assert res.exit_code == 2 and "--force" in res.output and "analyze --json" in res.output, res.output
    assert out.read_text() == "my notes\n"
    assert cli("analyze", spec, *QUICK, "--json", out, "--force").exit_code == 0
    assert json.loads(out.read_text())["space"] == "nfl_h3"
    # nflc's own output of the same kind is replaced without --force; another kind is not
    assert cli("analyze", spec, *QUICK, "--json", out).exit_code == 0
    res = cli("analyze", spec, *QUICK, "--csv", out)
    assert res.exit_code == 2 and "--force" in res.output
    assert json.loads(out.read_text())["space"] == "nfl_h3"


def test_writing_through_a_link_keeps_the_link_and_asks_before_replacing_its_target(db, tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    link = tmp_path / "r.json"
    link.symlink_to(precious)
    res = cli("report", "--db", db, "--json", link)
    assert res.exit_code == 2 and "--force" in res.output, res.output
    assert precious.read_text() == "keep me\n" and link.is_symlink()
    assert cli("report", "--db", db, "--json", link, "--force").exit_code == 0
    assert link.is_symlink() and json.loads(precious.read_text())["space"] == "nfl_h3"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / "o.json"
    out.write_text("old\n")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs.os, "replace", full)
    with pytest.raises(outputs.OutputError, match="disk is full.*unchanged"):
        outputs.write_text(out, "new\n")
    assert out.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["o.json"]


def test_analyze_interrupted_leaves_the_old_outputs_and_its_rows_in_partial_files(spec, tmp_path, monkeypatch):
    out, table = tmp_path / "o.json", tmp_path / "o.csv"
    assert cli("analyze", spec, *QUICK, "--json", out, "--csv", table).exit_code == 0
    before = out.read_bytes(), table.read_bytes()
    from nflc.analysis import analyze as A

    real = A.analyze_architecture
    calls = []

    def stop_at_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(A, "analyze_architecture", stop_at_the_second)
    handler = signal.getsignal(signal.SIGINT)
    try:
        res = cli("analyze", spec, *QUICK, "--json", out, "--csv", table)
    finally:
        signal.signal(signal.SIGINT, handler)  # the command ignores further Ctrl-Cs while it stops: not this process's
    assert res.exit_code == 130 and "partial" in res.output, res.output
    assert (out.read_bytes(), table.read_bytes()) == before
    assert (tmp_path / "o.csv.partial").read_text().startswith("index,id,group")


def test_a_report_page_and_figures_replace_their_own_earlier_versions(db, tmp_path):
    page, plots = tmp_path / "r.html", tmp_path / "plots"
    for _ in range(2):
        res = cli("report", "--db", db, "--html", page, "--plot", plots)
        assert res.exit_code == 0, res.output
    (plots / "measured_topology.png").write_bytes(b"\x89PNG\r\n\x1a\n not mine")
    res = cli("report", "--db", db, "--plot", plots)
    assert res.exit_code == 2 and "--force" in res.output, res.output


# ---------------------------------------------------------------------------------------
# item 7 and 9: paths that cannot be written, refused before the work


BAD_TARGETS = {
    "a directory": (lambda tmp: tmp, "is a directory"),
    "a missing directory": (lambda tmp: tmp / "no" / "such" / "o.json", "does not exist"),
    "/proc": (lambda tmp: Path("/proc/nflc-o.json"), "cannot create a file in /proc"),
    "/dev/full": (lambda tmp: Path("/dev/full"), "not a regular file"),
    "a dangling link": (lambda tmp: _dangling(tmp), "does not exist"),
}


def _dangling(tmp: Path) -> Path:
    link = tmp / "dangling.json"
    link.symlink_to(tmp / "gone" / "x.json")
    return link


@pytest.mark.parametrize("case", list(BAD_TARGETS))
def test_rank_json_that_cannot_be_written_is_refused_before_ranking(bench, tmp_path, case):
    make, expected = BAD_TARGETS[case]
    res = cli("rank", NB201, "--benchmark", bench, "--json", make(tmp_path))
    assert res.exit_code == 2 and expected in res.output, res.output
    assert "ranked against" not in res.output  # no table: the ranking did not run


@pytest.mark.parametrize("case", ["/proc", "/dev/full"])
def test_report_and_analyze_outputs_that_cannot_be_written_are_refused_before_the_work(db, spec, tmp_path, case):
    make, expected = BAD_TARGETS[case]
    res = cli("report", "--db", db, "--json", make(tmp_path))
    assert res.exit_code == 2 and expected in res.output and "Kendall" not in res.output, res.output
    res = cli("analyze", spec, *QUICK, "--json", make(tmp_path))
    assert res.exit_code == 2 and expected in res.output and "best expressivity" not in res.output, res.output


def test_analyze_into_sys_is_refused_before_the_work(spec):
    res = cli("analyze", spec, *QUICK, "--json", "/sys/nflc-x.json")
    assert res.exit_code == 2 and "cannot create a file in /sys" in res.output, res.output


def test_a_fifo_as_output_is_refused_without_blocking(spec, tmp_path):
    fifo = tmp_path / "f.html"
    os.mkfifo(fifo)
    res = cli("analyze", spec, *QUICK, "--html", fifo)
    assert res.exit_code == 2 and "FIFO" in res.output, res.output


def test_list_json_lines_are_written_atomically_and_kept_from_inputs(spec, tmp_path):
    out = tmp_path / "l.jsonl"
    assert cli("list", spec, "--limit", "3", "--json", out).exit_code == 0
    assert [json.loads(x)["index"] for x in out.read_text().splitlines()] == [0, 1, 2]
    assert cli("list", spec, "--limit", "2", "--json", out).exit_code == 0  # its own: replaced
    (tmp_path / "spec.jsonl").symlink_to(spec)  # ('--json x.nfl' reads as '--json - x.nfl')
    res = cli("list", spec, "--limit", "2", "--json", tmp_path / "spec.jsonl")
    assert res.exit_code == 2 and "the spec" in res.output, res.output


def test_graph_and_compile_outputs_refuse_their_spec_and_foreign_files(spec, tmp_path):
    for args in (["graph", spec, "0", "--out", spec], ["compile", spec, "0", "--out", spec]):
        res = cli(*args)
        assert res.exit_code == 2 and "the spec" in res.output, res.output
    mine = tmp_path / "g.dot"
    assert cli("graph", spec, "5", "--out", mine).exit_code == 0
    assert cli("graph", spec, "6", "--out", mine).exit_code == 0
    other = tmp_path / "weights.pt"
    other.write_bytes(b"PK\x03\x04 someone else's weights")
    res = cli("compile", spec, "5", "--out", other)
    assert res.exit_code == 2 and "--force" in res.output, res.output
    assert other.read_bytes() == b"PK\x03\x04 someone else's weights"
    assert cli("compile", spec, "5", "--out", other, "--force").exit_code == 0
    assert cli("compile", spec, "6", "--out", other).exit_code == 0  # now nflc's own

