"""Thread counts that do not oversubscribe, plain-text progress, and reports without a
verdict when scores were not computed."""

import io
import math
import os

import pytest
import torch

from nflc.analysis.progress import PlainProgress, format_seconds
from nflc.analysis.report import nfl_report
from nflc.analysis.threads import choose_threads, limit_threads

NO_ENV: dict = {}


@pytest.mark.parametrize("cpus, load, rows, expected", [
    (2, 1.09, 256, 1),     # the busy 2-core machine: one thread
    (2, 0.0, 256, 1),      # N = 256: one eigendecomposition gains nothing from a second thread
    (2, 0.0, 4096, 2),
    (16, 0.0, 4096, 16),
    (16, 3.5, 4096, 12),   # 4 cores busy (3.5 rounded up)
    (16, 40.0, 4096, 1),   # overloaded: never below one
    (4, 0.0, 100_000, 4),  # never above the cores
])
def test_default_threads_leave_busy_cores_alone(cpus, load, rows, expected):
    n, why = choose_threads(None, rows=rows, cpus=cpus, load=load, env=NO_ENV)
    assert n == expected
    assert f"{cpus} core" in why


def test_requested_and_environment_threads_win():
    assert choose_threads(3, rows=256, cpus=2, load=5.0, env={"OMP_NUM_THREADS": "1"})[0] == 3
    assert choose_threads(None, rows=256, cpus=16, load=0.0, env={"OMP_NUM_THREADS": "6"})[0] == 6
    assert choose_threads(None, rows=256, cpus=16, load=0.0, env={"NFLC_THREADS": "5", "OMP_NUM_THREADS": "6"})[0] == 5
    # not a positive integer: ignored
    assert choose_threads(None, rows=256, cpus=2, load=0.0, env={"OMP_NUM_THREADS": "auto"})[0] == 1
    with pytest.raises(ValueError, match="at least 1"):
        choose_threads(0)


def test_unknown_load_assumes_half_the_cores_busy(monkeypatch):
    import nflc.analysis.threads as T

    monkeypatch.setattr(T, "load_average", lambda: None)  # no getloadavg on this platform
    n, why = choose_threads(None, rows=10**6, cpus=8, env=NO_ENV)
    assert n == 4 and "load unknown" in why


def test_limit_threads_sets_and_restores_blas_and_torch():
    from threadpoolctl import threadpool_info

    before_torch = torch.get_num_threads()
    before_blas = [p["num_threads"] for p in threadpool_info()]
    with limit_threads(2):
        assert torch.get_num_threads() == 2
        assert all(p["num_threads"] <= 2 for p in threadpool_info())
    assert torch.get_num_threads() == before_torch
    assert [p["num_threads"] for p in threadpool_info()] == before_blas


_SETTINGS_AROUND_LIMIT = """
import torch
from nflc.analysis.threads import limit_threads

def settings():
    return [line.strip() for line in torch.__config__.parallel_info().splitlines()
            if "threads()" in line and "interop" not in line]

before = settings()
with limit_threads(2):
    torch.randn(64, 64) @ torch.randn(64, 64)
print(repr((before, settings())))
"""


def test_limit_threads_restores_every_library_torch_uses():
    """torch reports OpenMP's count as its own: read after threadpoolctl had raised OpenMP's,
    it was restored to n, and MKL kept n threads whose barriers stall a busy machine's later
    work (a test after it ran 30x slower). Every thread setting torch reports (ATen, OpenMP,
    MKL) is back on exit, checked in a fresh process (this one's settings are the suite's)."""
    import ast
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _SETTINGS_AROUND_LIMIT], capture_output=True, text=True,
                         env=env, check=True).stdout
    before, after = ast.literal_eval(out.strip().splitlines()[-1])
    assert before, "torch.__config__.parallel_info() names no thread setting"
    assert after == before


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_plain_progress_lines_and_estimate():
    clock, buf = Clock(), io.StringIO()
    p = PlainProgress(400, buf, interval=5.0, clock=clock)
    clock.t += 2.0
    p.update(50, 400)  # before the interval: no line
    clock.t += 8.0
    p.update(100, 400)  # 10 s for 100: 300 left at 10 per second -> 30 s
    clock.t += 1.0
    p.update(150, 400)  # 1 s after the last line: none
    clock.t += 149.0
    p.update(300, 400)  # 160 s for 300: 100 left -> 53 s
    p.update(400, 400)
    clock.t += 20.0
    p.close()
    lines = buf.getvalue().splitlines()
    assert lines == [
        "analyzing: 400 architectures",
        "analyzing: 100/400 architectures (25%), 10 s elapsed, about 30 s left",
        "analyzing: 300/400 architectures (75%), 2.7 min elapsed, about 53 s left",
        "analyzing: 400/400 architectures done after 3.0 min",
    ]


def test_plain_progress_says_stopped_when_cut_short():
    clock, buf = Clock(), io.StringIO()
    p = PlainProgress(10, buf, clock=clock)
    p.update(3, 10)
    p.close()
    assert buf.getvalue().splitlines()[-1].startswith("analyzing: 3/10 architectures stopped")


@pytest.mark.parametrize("s, text", [(42.4, "42 s"), (210, "3.5 min"), (7560, "2.1 h")])
def test_format_seconds(s, text):
    assert format_seconds(s) == text


IDS = ["a", "b", "c"]
PATHS = [1, 2, 3]
DEPTH = [1.0, 2.0, 3.0]


def test_predictions_with_a_missing_score_give_no_verdict():
    scores = {"expressivity": [1.0, 2.0, 3.0], "convergence": [math.nan] * 3, "generalization": [0.0, math.nan, 1.0]}
    rep = nfl_report(IDS, scores, PATHS, DEPTH, complete=True)
    assert rep.missing == ["convergence", "generalization"]
    assert rep.verdict.startswith("no verdict")
    assert "free lunch" not in rep.verdict
    assert rep.pareto_front == [] and not rep.one_wins_all
    assert rep.winners == {"expressivity": ["c"], "convergence": [], "generalization": []}


def test_measured_reports_leave_one_missing_value_out():
    """verify's measured report: a missing value is left out; all missing means no verdict."""
    scores = {"expressivity": [1.0, 2.0, 3.0], "convergence": [3.0, math.nan, 1.0], "generalization": [1.0, 1.0, 0.5]}
    rep = nfl_report(IDS, scores, PATHS, DEPTH)
    assert rep.missing == [] and rep.winners["convergence"] == ["a"]
    assert rep.verdict.startswith("no free lunch")
    scores["convergence"] = [math.nan] * 3
    rep = nfl_report(IDS, scores, PATHS, DEPTH)
    assert rep.missing == ["convergence"] and rep.verdict.startswith("no verdict")


def test_groups_counted_among_winners_and_front():
    # a and b compute the same function (equal scores); c is better in convergence only
    scores = {"expressivity": [2.0, 2.0, 1.0], "convergence": [1.0, 1.0, 2.0], "generalization": [1.0, 1.0, 1.0]}
    rep = nfl_report(IDS, scores, PATHS, DEPTH, groups=[0, 0, 2])
    assert rep.winners["expressivity"] == ["a", "b"] and rep.winner_groups["expressivity"] == 1
    assert rep.winner_groups["generalization"] == 2
    assert rep.pareto_front == ["a", "b", "c"] and rep.pareto_groups == 2
    assert "3 architecture(s) (2 distinct computing graph(s))" in rep.verdict
