"""Bad values of analyze and report (issue #27, items 5, 7 and 10): every one a clear
error with exit code 2, before any work, never a traceback and never a silent default;
an analysis whose kernels cannot fit in memory is refused before anything is allocated."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from nflc.analysis.analyze import kernel_bytes
from nflc.cli import app

ROOT = Path(__file__).resolve().parents[2]
H3 = ROOT / "specs" / "nfl_h3.nfl"
QUICK = ["--dataset", "none", "--samples", "4", "--archs", "0,1"]


def cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


ANALYZE = {
    "--memory nan": (["--memory", "nan"], "not an amount of memory"),
    "--memory inf": (["--memory", "inf"], "not an amount of memory"),
    "--memory -inf": (["--memory", "-infG"], "not an amount of memory"),
    "--memory 1e30G": (["--memory", "1e30G"], "more than this machine's memory"),
    "--memory ''": (["--memory", ""], "not an amount of memory"),
    "--seed -1": (["--seed", "-1"], "--seed must be between 0 and 2^63 - 1"),
    "--seed 2^64": (["--seed", str(2**64)], "--seed must be between 0 and 2^63 - 1"),
    "--dataset ''": (["--dataset", ""], "--dataset is empty"),
    "--threads 10^9": (["--threads", str(10**9)], "--threads must be at most 1024"),
    "--top -1": (["--top", "-1"], "--top must be non-negative"),
}


@pytest.mark.parametrize("case", list(ANALYZE))
def test_analyze_refuses_bad_values_before_any_work(tmp_path, case):
    extra, expected = ANALYZE[case]
    args = [*QUICK, *extra]
    if "--seed" in extra:  # with data, the seed reaches numpy's generator (the traceback of the issue)
        args = ["--dataset", "digits", "--samples", "20", "--archs", "0,1", *extra]
    res = cli("analyze", H3, *args, "--json", tmp_path / "a.json")
    assert res.exit_code == 2 and expected in res.output, res.output
    assert "analyzing" not in res.output and not (tmp_path / "a.json").exists()


def test_an_analysis_that_cannot_fit_in_memory_is_refused_before_allocating():
    import tracemalloc

    tracemalloc.start()  # numpy reports its buffers to tracemalloc too
    try:
        res = cli("analyze", H3, "--dataset", "none", "--samples", "200000", "--archs", "0,1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.exit_code == 2 and "fewer --samples" in res.output and "GiB" in res.output, res.output
    # refused from the estimate: the 200,000 inputs (200,000 x 784 float32s: 627 MB) were never made
    assert peak < 200 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_the_kernel_estimate_is_a_lower_bound_of_what_an_analysis_holds():
    """The estimate counts the N x N matrices of a 4-node cell's forward statistics (10
    second moments, 12 ReLU statistics): 22 of them, and the inputs twice."""
    import nflc

    sp = nflc.load(H3)
    n, d = 1000, 784
    assert kernel_bytes(sp, n, exact=True) == 8 * (2 * n * d + 22 * n * n)
    assert kernel_bytes(sp, n, exact=False) == 8 * (2 * n * d + 4 * n * n)


def test_report_refuses_a_negative_top_like_analyze(tmp_path):
    res = cli("report", "--db", tmp_path / "r.sqlite", "--top", "-1")
    assert res.exit_code == 2 and "--top must be non-negative" in res.output, res.output
    res = cli("report", "--db", tmp_path / "r.sqlite", "--seed", "-1")
    assert res.exit_code == 2 and "--seed" in res.output, res.output
