"""The stopping rules and the report's per-run verdicts on hand-made loss histories, with
the answers derived by hand from the definitions (nflc/verify/plateau.py, docs/THEORY.md
section 5):

- the slope rule on an exact exponential ``L = A exp(-b e)``: the fit has no residual, so
  the predicted decrease over the next window is ``1 - exp(-b w)`` exactly and the rule
  stops at its first epoch or never;
- a step history (a loss of 1000 up to epoch 60, then 1): the rule fits the last
  ``max(w, t // 2)`` epochs, so it first sees only the flat part at t = 119;
- the window rule at its boundary (a drop of exactly ``tol`` does not stop it) and on a
  rising loss (a negative drop stops it as soon as two windows exist);
- the report of a hand-made database: where each run converged, its measuring window and
  window means, and ``left_chance`` at its boundary (a best loss exactly 1% under chance has
  not left it) and for a diverged run (no verdict)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from nflc.cli import app
from nflc.verify import Aspects, EpochRecord, ResultStore
from nflc.verify.plateau import (DEFAULT_RULE, Plateau, SlopeRule, converged_at, levelled_off, log_slope,
                                 measure_window, predicted_decrease)

STEP = [1000.0] * 60 + [1.0] * 100  # epochs 1..60 at 1000, 61..160 at 1


@pytest.mark.parametrize("b, stops", [(1e-4, True), (3e-4, False)])
def test_the_slope_rule_on_an_exact_exponential(b, stops):
    losses = [2.0 * math.exp(-b * e) for e in range(1, 401)]
    rule = SlopeRule(window=50, tol=0.01)
    assert rule.min_epochs == 100
    d = 1 - math.exp(-b * 50)  # 0.00499 and 0.01489: below and above tol
    assert predicted_decrease(losses[:150], 50) == pytest.approx(d, rel=1e-6)
    assert converged_at(losses, rule) == (100 if stops else None)
    assert not levelled_off(losses[:99], rule)  # never judged before min_epochs


def test_the_slope_rule_fits_the_last_half_of_the_run():
    for rule in (SlopeRule(window=20, tol=0.01), DEFAULT_RULE):
        # t = 118 fits epochs 60..118 (one at 1000), t = 119 fits 61..119: flat, no residual
        assert converged_at(STEP, rule) == 119, (rule, "converged_at of the step history: the fit must cover half the run")
        assert predicted_decrease(STEP[:119], rule.window) == 0.0
        assert predicted_decrease(STEP[:118], rule.window) > 0.1


def test_the_window_rule_at_its_boundary():
    rule = Plateau(window=3, tol=0.1)
    losses = [10.0, 10.0, 10.0, 9.0, 9.0, 9.0, 8.5, 8.5, 8.5, 8.5]
    # t = 6: means 10 and 9, a drop of exactly 0.1 (not below tol); t = 7: 29/3 and 26.5/3, 2.5/29 < 0.1
    assert not levelled_off(losses[:6], rule), "a drop of exactly tol stopped the window rule"
    assert converged_at(losses, rule) == 7
    assert converged_at(losses[:5], rule) is None  # fewer than two windows


def test_the_window_rule_stops_a_rising_loss_as_soon_as_two_windows_exist():
    rising = [0.1 * 1.05**t for t in range(40)]
    assert converged_at(rising, Plateau(window=5, tol=0.01)) == 10, "first epoch judged: two windows"
    assert converged_at(rising, Plateau(window=8, tol=0.5)) == 16, "first epoch judged: two windows"


def test_the_measuring_window_by_hand():
    got = [measure_window(None, n) for n in (1, 9, 10, 130, 499, 500, 5000)]
    assert got == [1, 1, 1, 13, 49, 50, 50], f"measuring window (a tenth, 1..50): {got}"
    assert measure_window(Plateau(window=7), 1000) == 7 and measure_window(SlopeRule(window=30), 10) == 30


# ---------------------------------------------------------------------------------------
# the report of a hand-made database

CHANCE = 2.0
CONFIG = {"space": "hand", "train": {"epochs": 160, "lr": 0.1, "threshold": 0.5}}


def history(losses: list[float]) -> list[EpochRecord]:
    return [EpochRecord(epoch=e, train_loss=v, train_acc=0.6 if math.isfinite(v) else 0.0,
                        test_loss=v + 0.5, test_acc=0.5) for e, v in enumerate(losses, start=1)]


RUNS = {
    "step": STEP,  # converges at 119 by the default slope rule
    "at-the-margin": [2.5] * 80 + [0.99 * CHANCE] * 80,  # best loss exactly 1% under chance: not left
    "below": [2.5] * 80 + [1.97] * 80,  # 1.97 < 1.98: left chance
    "diverged": [1.0] * 40 + [math.nan],  # learned, then overflowed at epoch 41
}


@pytest.fixture()
def report(tmp_path):
    db = tmp_path / "hand.sqlite"
    with ResultStore.open(db, "f" * 64, CONFIG) as store:
        store.register(list(RUNS))
        store.put_info({"run": {"chance_loss": CHANCE}})
        store.put_info({f"arch:{k}": {"index": i, "paths": 1 + i, "mean_depth": 1.0 + i / 2, "sum_depth": 1.0, "params": 10}
                        for i, k in enumerate(RUNS)})
        for k, losses in RUNS.items():
            hist = history(losses)
            diverged = not math.isfinite(losses[-1])
            store.start(k)
            store.finish(k, hist, Aspects(expressivity=None if diverged else losses[-1], convergence=1,
                                          generalization=None if diverged else 0.5, diverged=diverged, epochs=len(hist)))
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["report", "--db", str(db), "--json", str(out), "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


def test_the_report_says_where_each_run_converged_and_measures_window_means(report):
    by_id = {a["id"]: a for a in report["architectures"]}
    step = by_id["step"]
    assert step["converged"] is True and step["converged_at"] == 119
    assert step["window"] == 16  # the last tenth of 160 epochs
    assert step["expressivity"] == pytest.approx(1.0) and step["generalization"] == pytest.approx(0.5)
    assert step["final_slope"] == 0.0
    assert step["slope_epochs"] == 80, "slope_epochs: the rule's fit length, half of 160 epochs"
    assert report["plateau"]["source"] == "default" and report["plateau"]["measure_window"] == 16


def test_left_chance_at_its_margin_and_for_a_diverged_run(report):
    by_id = {a["id"]: a for a in report["architectures"]}
    assert report["chance_loss"] == CHANCE
    assert by_id["at-the-margin"]["left_chance"] is False, "a best loss of exactly 0.99 chance"
    assert by_id["below"]["left_chance"] is True
    assert by_id["step"]["left_chance"] is True
    assert by_id["diverged"]["left_chance"] is None, "left_chance of a diverged run"
    assert by_id["diverged"]["converged"] is None and by_id["diverged"]["window"] is None
    # the run that never left chance is left out of the measured verdict; the diverged one ranks worst in it
    assert any(n.startswith("1 of 4 architecture(s) never left chance") for n in report["notes"])
    contenders = {"step", "below", "diverged"}
    assert set(report["nfl"]["pareto_front"]) <= contenders
    assert "diverged" not in report["nfl"]["winners"]["expressivity"]


def test_the_slope_errors_autocorrelation_factor_is_capped_at_0_9():
    """Residuals of a half sine wave over 80 epochs are strongly autocorrelated (lag-1 r
    above 0.9): the variance is widened by (1 + 0.9) / (1 - 0.9) = 19, no more."""
    n = 80
    y = np.sin(np.pi * np.arange(n) / (n - 1))
    x = np.arange(n) - (n - 1) / 2
    b = float(x @ (y - y.mean())) / float(x @ x)
    resid = y - y.mean() - b * x
    r = float(resid[1:] @ resid[:-1]) / float(resid @ resid)
    assert r > 0.9
    fit = log_slope(list(np.exp(y)), n)
    assert fit.slope == pytest.approx(b, abs=1e-12)
    assert fit.stderr == pytest.approx(math.sqrt(float(resid @ resid) / (n - 2) / float(x @ x) * 19)), "stderr: r capped at 0.9"
