"""Training until converged: the stopping rules on synthetic loss curves (with the stopping
epoch derived in closed form; SGD-like noise must not stop the slope rule early, and does
stop the earlier window rule early), training that stops there alone and in a population,
a resume in the middle of a converging sweep, and the command-line checks."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import nflc
from nflc.cli import app
from nflc.data import load_dataset, train_test_split
from nflc.verify.plateau import (DEFAULT_RULE, Plateau, SlopeRule, converged_at, levelled_off, log_slope,
                                 predicted_decrease, window_drop)
from nflc.verify.population import train_population
from nflc.verify.report import build_report
from nflc.verify.store import ResultStore
from nflc.verify.driver import SweepEvent, run_training
from nflc.verify.protocol import arch_seeds
from nflc.verify.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[2]
H3 = REPO / "specs" / "nfl_h3.nfl"


# -- the criterion on synthetic curves ---------------------------------------------------


def test_window_drop_by_hand():
    assert window_drop([4.0, 4.0, 2.0, 2.0], 2) == pytest.approx(0.5)
    assert window_drop([9.0, 4.0, 4.0, 2.0, 2.0], 2) == pytest.approx(0.5)  # only the last 2 windows count
    assert window_drop([1.0, 1.0, 1.0], 2) is None  # fewer than 2 windows
    assert window_drop([1.0, math.nan, 1.0, 1.0], 2) is None
    assert window_drop([1.0, 1.0, 1.1, 1.3], 2) == pytest.approx(-0.2)  # rising: a negative drop


def test_an_exponential_approach_to_a_floor_levels_off_where_the_closed_form_says():
    # L_t = c + a exp(-t / tau). Window means: a S exp(-t/tau) (+ c), S = mean_j exp(j / tau) over
    # j = 0..w-1, so the drop is u (e^{w/tau} - 1) / (c + u e^{w/tau}) with u = a S e^{-t/tau}, and
    # it falls below tol exactly when u < tol c / (e^{w/tau} (1 - tol) - 1).
    c, a, tau, w, tol = 0.4, 2.0, 15.0, 10, 0.01
    losses = [c + a * math.exp(-t / tau) for t in range(1, 400)]
    s = sum(math.exp(j / tau) for j in range(w)) / w
    e = math.exp(w / tau)
    t_star = tau * math.log(a * s * (e * (1 - tol) - 1) / (tol * c))
    expected = max(2 * w, math.floor(t_star) + 1)
    assert converged_at(losses, Plateau(window=w, tol=tol)) == expected
    assert not levelled_off(losses[: expected - 1], Plateau(window=w, tol=tol))


def test_a_loss_falling_like_one_over_t_never_levels_off_in_300_epochs():
    # drop over a window at epoch t is about w / (t - w / 2): 20 / 290 > 1% at t = 300
    losses = [1.0 / t for t in range(1, 301)]
    assert converged_at(losses, Plateau(window=20, tol=0.01)) is None
    assert window_drop(losses, 20) == pytest.approx(20 / 290, rel=0.01)


def test_a_jittering_flat_loss_levels_off_as_soon_as_two_windows_exist():
    losses = [1.0 if t % 2 else 1.1 for t in range(1, 60)]  # per-epoch jitter 10%, window means equal
    assert converged_at(losses, Plateau(window=4, tol=0.01)) == 8


def test_the_criterion_is_validated():
    with pytest.raises(ValueError):
        Plateau(window=0)
    with pytest.raises(ValueError):
        Plateau(tol=0.0)
    with pytest.raises(ValueError):
        Plateau(tol=1.5)


def test_a_fixed_length_configuration_serialises_as_before_the_plateau_existed():
    """Older results databases store the training configuration without 'plateau'."""
    fixed = TrainConfig(epochs=5, device="cpu").model_dump(mode="json")
    assert "plateau" not in fixed
    until = TrainConfig(epochs=5, device="cpu", plateau=Plateau(window=3, tol=0.02)).model_dump(mode="json")
    assert until["plateau"] == {"window": 3, "tol": 0.02}
    assert TrainConfig(**until).plateau == Plateau(window=3, tol=0.02)


# -- the slope rule on SGD-like noisy curves ---------------------------------------------
# A curve "converges at t*" when its noise-free relative decrease over the next `window`
# epochs first falls below `tol`: (L(t) - L(t + w)) / L(t) < tol. A rule that stops before
# t* on a noisy copy of the curve stopped on noise.

EPOCHS = np.arange(1, 1501, dtype=np.float64)


def closed_form_stop(t_star_fn, window, tol):
    return t_star_fn(window, tol)


def power_law_t_star(a):
    # (t / (t + w))^a > 1 - tol  <=>  t > w / ((1 - tol)^(-1/a) - 1)
    return lambda w, tol: w / ((1 - tol) ** (-1 / a) - 1)


def floor_t_star(c, amp, tau):
    # L = c + A e^{-t/tau}: decrease u (1 - e^{-w/tau}) / (c + u) with u = A e^{-t/tau};
    # below tol when u < tol c / (1 - e^{-w/tau} - tol)
    return lambda w, tol: tau * math.log(amp * (1 - math.exp(-w / tau) - tol) / (tol * c))


def sgd_noise(n, seed, sigma=0.1, phi=0.0):
    """Multiplicative, heavy-tailed (Student t, 3 degrees of freedom) and optionally
    autocorrelated (AR(1) with coefficient phi) noise factors exp(z)."""
    rng = np.random.default_rng(seed)
    e = sigma * rng.standard_t(3, size=n)
    z = np.empty(n)
    prev = 0.0
    for i in range(n):
        prev = phi * prev + e[i]
        z[i] = prev
    return np.exp(z)


CURVES = {
    "power law 5/t": (5.0 / EPOCHS, power_law_t_star(1.0)),
    "power law 3/sqrt(t)": (3.0 / np.sqrt(EPOCHS), power_law_t_star(0.5)),
    "decay to a floor": (0.3 + 2.0 * np.exp(-EPOCHS / 60.0), floor_t_star(0.3, 2.0, 60.0)),
}


@pytest.mark.parametrize("curve", list(CURVES))
@pytest.mark.parametrize("phi", [0.0, 0.5])
@pytest.mark.parametrize("window, tol", [(50, 0.05), (50, 0.02), (20, 0.05)])
def test_sgd_noise_never_stops_the_slope_rule_before_the_closed_form_epoch(curve, phi, window, tol):
    values, t_star_fn = CURVES[curve]
    t_star = t_star_fn(window, tol)
    rule = SlopeRule(window=window, tol=tol)
    for seed in range(12):
        losses = list(values * sgd_noise(len(values), seed, phi=phi))
        stop = converged_at(losses, rule)
        assert stop is None or stop >= t_star, (curve, seed, stop, t_star)
    # and without noise it does stop once the curve is flat enough to show it (or never, if
    # the curve is still falling by more than tol at 1500 epochs)
    clean = converged_at(list(values), rule)
    assert clean is None or clean >= t_star
    if t_star < 700:
        assert clean is not None


@pytest.mark.parametrize("curve", list(CURVES))
def test_the_window_rule_stops_on_noise_long_before_the_closed_form_epoch(curve):
    """Why the slope rule replaced it: the same noisy curves end the earlier rule early."""
    values, t_star_fn = CURVES[curve]
    t_star = t_star_fn(20, 0.02)
    stops = [converged_at(list(values * sgd_noise(len(values), seed)), Plateau(window=20, tol=0.02))
             for seed in range(12)]
    assert sum(s is not None and s < t_star for s in stops) >= 6


@pytest.mark.parametrize("phi", [0.0, 0.5])
def test_a_flat_noisy_curve_stops(phi):
    rule = SlopeRule(window=50, tol=0.02)
    for seed in range(12):
        losses = list(0.5 * sgd_noise(1500, seed, phi=phi))
        stop = converged_at(losses, rule)
        assert stop is not None and rule.min_epochs <= stop <= 1000, (seed, stop)


def test_a_rising_loss_stops_at_the_first_epoch_the_rule_is_judged():
    losses = [0.1 * 1.01 ** t for t in range(300)]  # rising 1% per epoch: overfitting, or unstable
    assert converged_at(losses, SlopeRule(window=20, tol=0.01)) == 100
    assert predicted_decrease(losses, 20) < 0


def test_a_loss_falling_like_one_over_t_stops_only_at_about_1_4_windows_per_tol():
    """After interpolation the cross-entropy keeps falling like c / t: no convergence; the
    rule (fitting half the run) waits until its log-slope -ln(2) / (t / 2) predicts less
    than tol over a window: t > 2 ln 2 window / tol."""
    losses = [1.0 / t for t in range(1, 3001)]
    stop = converged_at(losses, SlopeRule(window=20, tol=0.02))
    assert stop == pytest.approx(2 * math.log(2) * 20 / 0.02, rel=0.02)


def test_log_slope_by_hand():
    # exactly exponential: log L = log 2 - 0.03 e, no residual, no error
    fit = log_slope([2.0 * math.exp(-0.03 * e) for e in range(1, 41)], 10)
    assert fit.slope == pytest.approx(-0.03) and fit.stderr == pytest.approx(0.0, abs=1e-12) and fit.epochs == 10
    # y = log L over 4 points 0, 1, 0, 1 (x centred -1.5 .. 1.5, sum x^2 = 5): slope 1 / 5,
    # residuals -0.2 0.6 -0.6 0.2 (rss 0.8), lag-1 autocorrelation (-0.12 - 0.36 - 0.12) / 0.8
    # < 0: no widening, se = sqrt(0.8 / 2 / 5)
    fit = log_slope([1.0, math.e, 1.0, math.e], 4)
    assert fit.slope == pytest.approx(0.2)
    assert fit.stderr == pytest.approx(math.sqrt(0.08))
    # a slow wave: smooth residuals, positive lag-1 autocorrelation r, which widens the
    # variance by (1 + r) / (1 - r) against the plain least-squares error
    y = np.sin(2 * np.pi * np.arange(12) / 12)
    x = np.arange(12) - 5.5
    b = float(x @ (y - y.mean())) / float(x @ x)
    resid = y - y.mean() - b * x
    r = float(resid[1:] @ resid[:-1]) / float(resid @ resid)
    assert r > 0.5
    fit = log_slope(list(np.exp(y)), 12)
    assert fit.slope == pytest.approx(b)
    assert fit.stderr == pytest.approx(math.sqrt(float(resid @ resid) / 10 / float(x @ x) * (1 + r) / (1 - r)))
    assert log_slope([1.0, 2.0], 3) is None and log_slope([1.0, math.nan, 1.0], 3) is None
    assert log_slope([0.0, 0.0, 0.0, 0.0], 4).slope == 0.0  # a loss that reached 0 stays there: flat


def test_slope_rule_defaults_and_checks():
    assert DEFAULT_RULE == SlopeRule(window=50, tol=0.01, min_epochs=100)
    assert SlopeRule(window=80).min_epochs == 160
    with pytest.raises(ValueError):
        SlopeRule(window=2)
    with pytest.raises(ValueError):
        SlopeRule(window=50, min_epochs=30)  # the first fit needs a window


def test_stored_rules_keep_their_meaning():
    """A database written before the slope rule stores {window, tol}: still the window rule."""
    old = TrainConfig.model_validate({"epochs": 50, "device": "cpu", "plateau": {"window": 3, "tol": 0.02}})
    assert old.plateau == Plateau(window=3, tol=0.02)
    new = TrainConfig(epochs=500, device="cpu", plateau=SlopeRule(window=10, tol=0.05))
    dumped = new.model_dump(mode="json")
    assert dumped["plateau"] == {"rule": "slope", "window": 10, "tol": 0.05, "min_epochs": 100}
    assert TrainConfig.model_validate(dumped) == new


# -- training stops there --------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return train_test_split(load_dataset("digits", seed=0, n=300), test_fraction=0.25, seed=0)


def narrow_mlp(seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(64, 3), nn.ReLU(), nn.Linear(3, 10))  # capacity-limited: it plateaus


PLATEAU = Plateau(window=3, tol=0.02)


def test_training_until_converged_stops_at_the_first_levelled_epoch(digits):
    train_set, test_set = digits
    fixed = train(narrow_mlp(1), train_set, test_set, TrainConfig(epochs=80, lr=0.5, device="cpu"), seed=0)
    expected = converged_at([r.train_loss for r in fixed.history], PLATEAU)
    assert expected is not None and 2 * PLATEAU.window < expected < 80  # the setting really levels off
    until = train(narrow_mlp(1), train_set, test_set, TrainConfig(epochs=80, lr=0.5, device="cpu", plateau=PLATEAU),
                  seed=0)
    assert len(until.history) == until.aspects.epochs == expected
    assert until.history == fixed.history[:expected]  # stopping changes nothing before it
    capped = train(narrow_mlp(1), train_set, test_set,
                   TrainConfig(epochs=expected - 1, lr=0.5, device="cpu", plateau=PLATEAU), seed=0)
    assert len(capped.history) == expected - 1  # --max-epochs wins
    # the result says why it stopped (what `nflc verify` counts, without reopening the store)
    assert (fixed.stopped, until.stopped, capped.stopped) == ("epochs", "converged", "epochs")
    exact = train(narrow_mlp(1), train_set, test_set,
                  TrainConfig(epochs=expected, lr=0.5, device="cpu", plateau=PLATEAU), seed=0)
    assert exact.stopped == "converged"  # levelled off exactly at the cap


IDS = [
    "|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|",
    "|skip~0|+|skip~0|skip~1|+|skip~0|skip~1|skip~2|",
    "|linear~0|+|zero~0|skip~1|+|zero~0|linear~1|skip~2|",
    "|zero~0|+|linear~0|zero~1|+|skip~0|zero~1|linear~2|",
]


@pytest.fixture(scope="module")
def mnist():
    return train_test_split(load_dataset("mnist5k", seed=0, n=200), test_fraction=0.25, seed=0)


@pytest.mark.parametrize("rule, lr", [(Plateau(window=3, tol=0.03), 0.2), (SlopeRule(window=5, tol=0.05, min_epochs=10), 0.05)])
def test_a_population_stops_each_member_where_it_would_stop_alone(mnist, rule, lr):
    h3 = nflc.load(H3)
    mods = [h3.architecture(i).to_module(seed=arch_seeds(0, i)[0], width=4) for i in IDS]
    seeds = [arch_seeds(0, i)[1] for i in IDS]
    config = TrainConfig(epochs=60, lr=lr, batch=50, device="cpu", plateau=rule)
    alone = [train(copy.deepcopy(m), *mnist, config, seed=s) for m, s in zip(mods, seeds, strict=True)]
    together = train_population(mods, *mnist, config, seeds=seeds)
    stops = [len(r.history) for r in alone]
    assert len(set(stops)) > 1 and min(stops) < 60  # members leave at different epochs
    for r, g in zip(alone, together, strict=True):
        assert len(g.history) == len(r.history) and g.aspects.epochs == r.aspects.epochs
        for x, y in zip(r.history, g.history, strict=True):
            assert y.train_loss == pytest.approx(x.train_loss, rel=1e-5, abs=1e-6)


# -- a sweep resumed in the middle of converging ----------------------------------------


def build(arch_id: str, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        width = int(arch_id[1:])
        return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("rule", [PLATEAU, SlopeRule(window=4, tol=0.1, min_epochs=8)])
def test_a_converging_sweep_resumed_midway_equals_the_uninterrupted_one(tmp_path, digits, rule):
    config = TrainConfig(epochs=80, lr=0.5, batch=64, seed=3, device="cpu", plateau=rule)
    items = ["w2", "w3"]

    def snapshot(db):
        with ResultStore.open(db, "spec", config) as store:
            return {a: (s, store.aspects(a), store.epochs(a)) for a, s in store.statuses().items()}

    ref_db = tmp_path / "ref.sqlite"
    with ResultStore.open(ref_db, "spec", config) as store:
        run_training(items, build, digits, config, store)
    reference = snapshot(ref_db)
    stop = reference["w3"][1].epochs
    assert 8 < stop < 80

    db = tmp_path / "r.sqlite"

    def interrupt(event: SweepEvent) -> None:
        if event.kind == "epoch" and event.arch_id == "w3" and event.epoch == stop - 2:
            raise Interrupt

    with ResultStore.open(db, "spec", config) as store:
        with pytest.raises(Interrupt):
            run_training(items, build, digits, config, store, progress=interrupt, checkpoint_every=4)
        assert store.status("w3") == "running"
        run_training(items, build, digits, config, store, checkpoint_every=4)
    assert snapshot(db) == reference
    rep = build_report(db)
    assert {a.id: (a.converged, a.epochs_run, a.converged_at) for a in rep.architectures} == {
        a: (True, v[1].epochs, v[1].epochs) for a, v in reference.items()}
    assert rep.plateau["source"] == "--until-converged" and rep.plateau["window"] == rule.window


# -- the command line --------------------------------------------------------------------


def cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    return res


TINY = ["--archs", ",".join(IDS), "--samples", "200", "--width", "4", "--lr", "0.2", "--batch", "50", "--quiet"]


def test_verify_until_converged_records_converged_and_epochs_run(tmp_path):
    db = tmp_path / "u.sqlite"
    res = cli("verify", H3, *TINY, "--until-converged", "--stop-rule", "window", "--max-epochs", "60",
              "--plateau-window", "3", "--plateau-tol", "0.03", "--db", db)
    assert res.exit_code == 0, res.output
    assert "until converged (window rule, window 3, tol 0.03), at most 60 epochs" in res.output
    json_path = tmp_path / "rep.json"
    assert cli("report", "--db", db, "--json", json_path).exit_code == 0
    import json

    rep = json.loads(json_path.read_text())
    with ResultStore.open_readonly(db) as store:
        assert store.config["train"]["plateau"] == {"window": 3, "tol": 0.03}
        for a in rep["architectures"]:
            losses = [r.train_loss for r in store.epochs(a["id"])]
            assert a["epochs_run"] == len(losses)
            at = converged_at(losses, Plateau(window=3, tol=0.03))
            assert a["converged"] == (at == len(losses))  # stopped where it first levelled off, or at the cap
    assert sum(a["converged"] for a in rep["architectures"]) >= 1
    done = sum(a["converged"] for a in rep["architectures"])
    assert f"converged {done} of 4 trained in this call" in res.output


def test_verify_with_the_slope_rule_stops_where_the_rule_says_and_reports_the_slope(tmp_path):
    db = tmp_path / "s.sqlite"
    res = cli("verify", H3, *TINY, "--until-converged", "--max-epochs", "60", "--plateau-window", "5",
              "--plateau-tol", "0.05", "--min-epochs", "10", "--db", db)
    assert res.exit_code == 0, res.output
    assert "until converged (slope rule, window 5, tol 0.05), at most 60 epochs" in res.output
    rule = SlopeRule(window=5, tol=0.05, min_epochs=10)
    rep = build_report(db)
    assert rep.plateau["rule"] == "slope" and rep.plateau["source"] == "--until-converged"
    with ResultStore.open_readonly(db) as store:
        assert store.config["train"]["plateau"] == {"rule": "slope", "window": 5, "tol": 0.05, "min_epochs": 10}
        for a in rep.architectures:
            history = store.epochs(a.id)
            losses = [r.train_loss for r in history]
            at = converged_at(losses, rule)
            assert a.epochs_run == len(losses) == (at if at is not None else 60)
            # the measured losses are means over the rule's window, never one epoch
            assert a.window == 5
            assert a.expressivity == pytest.approx(sum(losses[-5:]) / 5, rel=1e-12)
            assert a.generalization == pytest.approx(sum(r.test_loss - r.train_loss for r in history[-5:]) / 5, rel=1e-9)
            fit = log_slope(losses, max(5, len(losses) // 2))
            assert a.final_slope == pytest.approx(fit.slope) and a.slope_epochs == fit.epochs
    assert any(a.converged for a in rep.architectures)


def test_a_fixed_length_report_says_which_losses_have_not_levelled_off(tmp_path):
    db = tmp_path / "f.sqlite"
    assert cli("verify", H3, *TINY, "--epochs", "3", "--db", db).exit_code == 0
    rep = build_report(db)
    assert rep.plateau["source"] == "default"
    assert all(a.converged is False for a in rep.architectures)  # 3 epochs cannot show a slope fitted from epoch 100
    assert any("3 epochs are fewer than the rule's 100" in n for n in rep.notes)
    res = cli("report", "--db", db)
    assert "not converged" in res.output and "not a converged training loss" in res.output


@pytest.mark.parametrize("args, message", [
    (["--until-converged", "--epochs", "5"], "cannot be combined with a fixed --epochs"),
    (["--until-converged", "--max-epochs", "0"], "--max-epochs must be at least 1"),
    (["--until-converged", "--plateau-window", "0"], "--plateau-window must be at least 3"),
    (["--until-converged", "--stop-rule", "window", "--plateau-window", "0"], "--plateau-window must be at least 1"),
    (["--until-converged", "--stop-rule", "median"], "--stop-rule must be slope or window"),
    (["--until-converged", "--max-epochs", "150", "--plateau-window", "100"], "more than --max-epochs 150"),
    (["--until-converged", "--max-epochs", "50"], "needs 100 epochs before it can stop a run, more than --max-epochs 50"),
    (["--until-converged", "--min-epochs", "0"], "--min-epochs must be at least 1"),
    (["--until-converged", "--min-epochs", "-5"], "--min-epochs must be at least 1"),
    (["--until-converged", "--min-epochs", "10", "--plateau-window", "20"], "--min-epochs 10 is shorter than --plateau-window 20"),
    (["--until-converged", "--min-epochs", "10"], "--min-epochs 10 is shorter than the window (50 epochs)"),
    (["--until-converged", "--stop-rule", "window", "--min-epochs", "10"], "--min-epochs applies to --stop-rule slope"),
    (["--min-epochs", "10"], "only applies with --until-converged"),
    (["--stop-rule", "slope"], "only applies with --until-converged"),
    (["--until-converged", "--plateau-tol", "0"], "--plateau-tol must be between 0 and 1"),
    (["--until-converged", "--plateau-tol", "-0.1"], "--plateau-tol must be between 0 and 1"),
    (["--max-epochs", "10"], "only applies with --until-converged"),
])
def test_bad_until_converged_flags_are_refused_before_any_database_exists(tmp_path, args, message):
    db = tmp_path / "never.sqlite"
    res = cli("verify", H3, *TINY, *args, "--db", db)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not db.exists()
