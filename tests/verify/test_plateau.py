"""Training until converged: the levelling-off criterion on synthetic loss curves (with the
stopping epoch derived in closed form), training that stops there alone and in a
population, a resume in the middle of a converging sweep, and the command-line checks."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import nflc
from nflc.cli import app
from nflc.data import load_dataset, train_test_split
from nflc.verify.plateau import Plateau, converged_at, levelled_off, window_drop
from nflc.verify.population import train_population
from nflc.verify.report import build_report
from nflc.verify.run import module_builder
from nflc.verify.store import ResultStore
from nflc.verify.sweep import SweepEvent, arch_seeds, run_sweep
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


IDS = [
    "|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|",
    "|skip~0|+|skip~0|skip~1|+|skip~0|skip~1|skip~2|",
    "|linear~0|+|zero~0|skip~1|+|zero~0|linear~1|skip~2|",
    "|zero~0|+|linear~0|zero~1|+|skip~0|zero~1|linear~2|",
]


@pytest.fixture(scope="module")
def mnist():
    return train_test_split(load_dataset("mnist5k", seed=0, n=200), test_fraction=0.25, seed=0)


def test_a_population_stops_each_member_where_it_would_stop_alone(mnist):
    h3 = nflc.load(H3)
    build = module_builder(h3, 4)
    mods = [build(h3.architecture(i), arch_seeds(0, i)[0]) for i in IDS]
    seeds = [arch_seeds(0, i)[1] for i in IDS]
    config = TrainConfig(epochs=60, lr=0.2, batch=50, device="cpu", plateau=Plateau(window=3, tol=0.03))
    alone = [train(copy.deepcopy(m), *mnist, config, seed=s) for m, s in zip(mods, seeds)]
    together = train_population(mods, *mnist, config, seeds=seeds)
    stops = [len(r.history) for r in alone]
    assert len(set(stops)) > 1 and min(stops) < 60  # members leave at different epochs
    for r, g in zip(alone, together):
        assert len(g.history) == len(r.history) and g.aspects.epochs == r.aspects.epochs
        for x, y in zip(r.history, g.history):
            assert y.train_loss == pytest.approx(x.train_loss, rel=1e-5, abs=1e-6)


# -- a sweep resumed in the middle of converging ----------------------------------------


def build(arch_id: str, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        width = int(arch_id[1:])
        return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))


class Interrupt(Exception):
    pass


def test_a_converging_sweep_resumed_midway_equals_the_uninterrupted_one(tmp_path, digits):
    config = TrainConfig(epochs=80, lr=0.5, batch=64, seed=3, device="cpu", plateau=PLATEAU)
    items = ["w2", "w3"]

    def snapshot(db):
        with ResultStore.open(db, "spec", config) as store:
            return {a: (s, store.aspects(a), store.epochs(a)) for a, s in store.statuses().items()}

    ref_db = tmp_path / "ref.sqlite"
    with ResultStore.open(ref_db, "spec", config) as store:
        run_sweep(items, build, digits, config, store)
    reference = snapshot(ref_db)
    stop = reference["w3"][1].epochs
    assert 8 < stop < 80

    db = tmp_path / "r.sqlite"

    def interrupt(event: SweepEvent) -> None:
        if event.kind == "epoch" and event.arch_id == "w3" and event.epoch == stop - 2:
            raise Interrupt

    with ResultStore.open(db, "spec", config) as store:
        with pytest.raises(Interrupt):
            run_sweep(items, build, digits, config, store, progress=interrupt, checkpoint_every=4)
        assert store.status("w3") == "running"
        run_sweep(items, build, digits, config, store, checkpoint_every=4)
    assert snapshot(db) == reference
    rep = build_report(db)
    assert {a.id: (a.converged, a.epochs_run, a.converged_at) for a in rep.architectures} == {
        a: (True, v[1].epochs, v[1].epochs) for a, v in reference.items()}
    assert rep.plateau["source"] == "--until-converged" and rep.plateau["window"] == 3


# -- the command line --------------------------------------------------------------------


def cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    return res


TINY = ["--archs", ",".join(IDS), "--samples", "200", "--width", "4", "--lr", "0.2", "--batch", "50", "--quiet"]


def test_verify_until_converged_records_converged_and_epochs_run(tmp_path):
    db = tmp_path / "u.sqlite"
    res = cli("verify", H3, *TINY, "--until-converged", "--max-epochs", "60", "--plateau-window", "3",
              "--plateau-tol", "0.03", "--db", db)
    assert res.exit_code == 0, res.output
    assert "until the loss levels off (window 3, tol 0.03), at most 60 epochs" in res.output
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


def test_a_fixed_length_report_says_which_losses_have_not_levelled_off(tmp_path):
    db = tmp_path / "f.sqlite"
    assert cli("verify", H3, *TINY, "--epochs", "3", "--db", db).exit_code == 0
    rep = build_report(db)
    assert rep.plateau["source"] == "default"
    assert all(a.converged is False for a in rep.architectures)  # 3 epochs cannot show a plateau of 2 x 20
    assert any("3 epochs are fewer than the criterion's 40" in n for n in rep.notes)
    res = cli("report", "--db", db)
    assert "not levelled off" in res.output or "not a converged training loss" in res.output


@pytest.mark.parametrize("args, message", [
    (["--until-converged", "--epochs", "5"], "cannot be combined with a fixed --epochs"),
    (["--until-converged", "--max-epochs", "0"], "--max-epochs must be at least 1"),
    (["--until-converged", "--plateau-window", "0"], "--plateau-window must be at least 1"),
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
