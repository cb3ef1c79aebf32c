"""studies/compare_predictors.py on a tiny converged run: its current-score column is the
report's predicted-vs-measured tau, and a reference column is Kendall tau by hand."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from scipy.stats import kendalltau
from typer.testing import CliRunner

from nflc.cli import app
from nflc.verify.report import build_report

REPO = Path(__file__).resolve().parents[2]
H3 = REPO / "specs" / "nfl_h3.nfl"
IDS = [
    "|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|",
    "|skip~0|+|skip~0|skip~1|+|skip~0|skip~1|skip~2|",
    "|linear~0|+|zero~0|skip~1|+|zero~0|linear~1|skip~2|",
    "|zero~0|+|linear~0|zero~1|+|skip~0|zero~1|linear~2|",
    "|skip~0|+|linear~0|linear~1|+|zero~0|skip~1|linear~2|",
    "|linear~0|+|skip~0|zero~1|+|zero~0|zero~1|linear~2|",
]


def load_script():
    spec = importlib.util.spec_from_file_location("compare_predictors", REPO / "studies" / "compare_predictors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    db, an = tmp / "r.sqlite", tmp / "an.json"
    runner = CliRunner()
    res = runner.invoke(app, ["verify", str(H3), "--archs", ",".join(IDS), "--samples", "200", "--lr", "0.2",
                              "--batch", "50", "--until-converged", "--max-epochs", "30", "--plateau-window", "3",
                              "--plateau-tol", "0.05", "--min-epochs", "6", "--quiet", "--db", str(db)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["analyze", str(H3), "--archs", ",".join(IDS), "--samples", "16", "--json", str(an)])
    assert res.exit_code == 0, res.output
    return db, an


def test_columns_agree_with_the_report_and_with_scipy(run):
    db, an = run
    out = load_script().compare(str(db), str(an), bootstrap=50)
    rep = build_report(db, an, bootstrap=0)
    assert out["n"] == len(IDS)
    for asp, name in (("expressivity", "total path depth sum_p d_p (nflc)"),
                      ("convergence", "NNGP pair bound, Thm 4.4 (nflc)"),
                      ("generalization", "Thm 4.5 -(sum d) sqrt(y'K^-1y/N) (nflc)")):
        assert out["aspects"][asp][name]["tau"] == pytest.approx(rep.predicted_vs_measured[asp].tau)
    archs = {a.id: a for a in rep.architectures}
    paths = [archs[i].paths for i in IDS]
    neg_loss = [-archs[i].expressivity for i in IDS]
    assert out["aspects"]["expressivity"]["paths P (reference)"]["tau"] == pytest.approx(
        kendalltau(paths, neg_loss).statistic)
    widths = {a["id"]: a for a in json.loads(an.read_text())["architectures"]}
    assert len(widths) == len(IDS)


def test_kernel_and_width_candidates_by_hand(run):
    """The kernel candidates are the NNGP's mean off-diagonal correlation and effective rank
    on the analysis inputs; the deficit is sum_p (1 - exp(-5 d_p / 8m)) at the width."""
    import math

    import numpy as np

    import nflc
    from nflc.analysis.analyze import analysis_inputs
    from nflc.analysis.exact import architecture_kernels, normalize_inputs

    db, an = run
    script = load_script()
    data = json.loads(an.read_text())["data"]
    built = script._built(str(db), "nfl_h3", IDS, data)
    sp = nflc.load(H3)
    x, _, _ = analysis_inputs(sp, data["name"], data["samples"], data["seed"])
    arch = sp.architecture(IDS[0])
    k = architecture_kernels(arch, normalize_inputs(x)).nngp
    c = k / np.sqrt(np.outer(np.diag(k), np.diag(k)))
    n = len(c)
    assert built[IDS[0]]["nngp_mean_corr"] == pytest.approx((c.sum() - n) / (n * n - n))
    ev = np.linalg.eigvalsh(c)
    p = ev[ev > 0] / ev[ev > 0].sum()
    assert built[IDS[0]]["nngp_erank"] == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-6)
    assert built[IDS[0]]["width"] == 256
    # the all-linear cell: path depths 1, 2, 2, 3 at m = 256
    entry = {"topology": {"depths": [1, 2, 2, 3]}, "width": 256}
    assert script._depth_deficit(entry) == pytest.approx(sum(1 - math.exp(-5 * d / 2048) for d in (1, 2, 2, 3)))
