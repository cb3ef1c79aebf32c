"""The training protocol and the measured aspects."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from nflc.data import load_dataset, train_test_split
from nflc.verify.train import (
    Checkpoint,
    EpochRecord,
    TrainConfig,
    derive_seed,
    evaluate,
    measure,
    resolve_device,
    train,
)


@pytest.fixture(scope="module")
def digits():
    return train_test_split(load_dataset("digits", seed=0, n=256), test_fraction=0.25, seed=0)


def mlp(seed: int, width: int = 32, dropout: float = 0.0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = [nn.Linear(64, width), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        return nn.Sequential(*layers, nn.Linear(width, 10))


def rec(epoch, train_loss, train_acc, test_loss=1.0, test_acc=0.0) -> EpochRecord:
    return EpochRecord(epoch=epoch, train_loss=train_loss, train_acc=train_acc, test_loss=test_loss, test_acc=test_acc)


# -- measure() on hand-made histories --------------------------------------------------


def test_measure_reads_final_losses_and_first_epoch_at_threshold():
    history = [rec(1, 2.0, 0.2, 2.1), rec(2, 1.0, 0.5, 1.4), rec(3, 0.8, 0.4, 1.3), rec(4, 0.5, 0.7, 0.9)]
    a = measure(history, threshold=0.5, window=1)
    assert a.expressivity == 0.5
    assert a.convergence == 2  # reaching the threshold exactly counts; 1-based
    assert a.generalization == pytest.approx(0.4)
    assert (a.diverged, a.epochs) == (False, 4)
    assert measure(history, threshold=0.6, window=1).convergence == 4


def test_measured_losses_are_means_over_the_last_window_epochs():
    history = [rec(1, 2.0, 0.2, 2.1), rec(2, 1.0, 0.5, 1.4), rec(3, 0.8, 0.4, 1.3), rec(4, 0.5, 0.7, 0.9)]
    a = measure(history, threshold=0.5, window=3)
    assert a.expressivity == pytest.approx((1.0 + 0.8 + 0.5) / 3)
    assert a.generalization == pytest.approx((0.4 + 0.5 + 0.4) / 3)
    assert a.convergence == 2  # an event, not a mean
    # a window longer than the run averages the whole run
    assert measure(history, threshold=0.5, window=50).expressivity == pytest.approx((2.0 + 1.0 + 0.8 + 0.5) / 4)
    with pytest.raises(ValueError, match="at least 1"):
        measure(history, threshold=0.5, window=0)


def test_the_measuring_window_is_the_rules_or_the_last_tenth_at_most_50():
    from nflc.verify.plateau import Plateau, SlopeRule

    assert TrainConfig(epochs=500, device="cpu").window == 50
    assert TrainConfig(epochs=3000, device="cpu").window == 50
    assert TrainConfig(epochs=120, device="cpu").window == 12
    assert TrainConfig(epochs=5, device="cpu").window == 1
    assert TrainConfig(epochs=3000, device="cpu", plateau=SlopeRule(window=40)).window == 40
    assert TrainConfig(epochs=3000, device="cpu", plateau=Plateau(window=20)).window == 20


def test_measure_never_reaching_threshold_is_none():
    a = measure([rec(1, 2.0, 0.1), rec(2, 1.9, 0.3)], threshold=0.5, window=1)
    assert a.convergence is None and a.expressivity == 1.9 and not a.diverged


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_measure_flags_divergence_and_drops_undefined_aspects(bad):
    a = measure([rec(1, 1.0, 0.6), rec(2, bad, 0.9, bad)], threshold=0.5, window=1)
    assert a.diverged and a.expressivity is None and a.generalization is None
    assert a.convergence == 1  # reached while the losses were still finite
    # accuracy from non-finite logits does not count as convergence
    assert measure([rec(1, bad, 0.9, bad)], threshold=0.5, window=1).convergence is None


def test_measure_forced_divergence_and_bad_histories():
    assert measure([rec(1, 1.0, 0.1)], 0.5, window=1, diverged=True).diverged
    with pytest.raises(ValueError):
        measure([], 0.5, window=1)
    with pytest.raises(ValueError, match="epochs 1..2"):
        measure([rec(1, 1.0, 0.1), rec(3, 1.0, 0.1)], 0.5, window=1)


# -- configuration and seeds -----------------------------------------------------------


def test_train_config_validates():
    assert TrainConfig().batch == 128 and TrainConfig().threshold == 0.5 and TrainConfig().device == "auto"
    for bad in (dict(lr=0.0), dict(lr=math.inf), dict(epochs=0), dict(threshold=1.5), dict(momentum=0.9)):
        with pytest.raises(ValidationError):
            TrainConfig(**bad)
    with pytest.raises(ValidationError, match="unknown device 'warp-drive'"):
        TrainConfig(device="warp-drive")
    assert TrainConfig(device="cuda:1").device == "cuda:1"  # parsed, not required to exist


@pytest.mark.parametrize("cuda, auto", [(True, "cuda"), (False, "cpu")])
def test_resolve_device(monkeypatch, cuda, auto):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert resolve_device("auto") == torch.device(auto)
    assert resolve_device("cpu") == torch.device("cpu")  # named devices are taken as named
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_derive_seed_is_stable_across_processes_and_distinct():
    code = "from nflc.verify.train import derive_seed; print(derive_seed(7, 'arch', 3))"
    env = dict(os.environ, PYTHONHASHSEED="123", PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) == derive_seed(7, "arch", 3)
    seeds = {derive_seed(7, "arch", i) for i in range(100)} | {derive_seed(8, "arch", 0)}
    assert len(seeds) == 101 and all(0 <= s < 2**63 for s in seeds)


# -- the protocol ----------------------------------------------------------------------


def test_one_full_batch_epoch_is_one_plain_sgd_step(digits):
    train_set, test_set = digits
    lr = 0.3
    config = TrainConfig(epochs=2, lr=lr, batch=len(train_set), device="cpu")
    model, ref = mlp(1), mlp(1)
    train(model, train_set, test_set, config, seed=0)
    # Reference: two full-batch gradient steps by hand. Momentum or weight decay would
    # make the second step differ.
    for _ in range(2):
        ref.zero_grad()
        F.cross_entropy(ref(train_set.x), train_set.y).backward()
        with torch.no_grad():
            for p in ref.parameters():
                p -= lr * p.grad
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def test_evaluate_is_full_pass_in_eval_mode_and_restores_mode(digits):
    train_set, _ = digits
    model = mlp(2, dropout=0.5)
    model.train()
    loss, acc = evaluate(model, train_set.x, train_set.y)
    model.eval()
    with torch.no_grad():
        logits = model(train_set.x)
    assert loss == pytest.approx(F.cross_entropy(logits, train_set.y).item(), rel=1e-6)
    assert acc == int((logits.argmax(1) == train_set.y).sum()) / len(train_set.y)
    model.train()
    evaluate(model, train_set.x, train_set.y)
    assert model.training


def test_history_has_one_full_pass_record_per_epoch(digits):
    train_set, test_set = digits
    model = mlp(3)
    result = train(model, train_set, test_set, TrainConfig(epochs=4, lr=0.2, device="cpu"), seed=1)
    assert [r.epoch for r in result.history] == [1, 2, 3, 4]
    last = result.history[-1]
    assert (last.train_loss, last.train_acc) == evaluate(model, train_set.x, train_set.y)
    assert (last.test_loss, last.test_acc) == evaluate(model, test_set.x, test_set.y)
    assert result.aspects.expressivity == last.train_loss


def test_same_seed_same_numbers_other_seed_other_numbers(digits):
    train_set, test_set = digits
    config = TrainConfig(epochs=3, lr=0.2, device="cpu")
    runs = []
    for seed in (5, 5, 6):
        model = mlp(0, dropout=0.2)  # dropout draws from the forked global generator
        runs.append((train(model, train_set, test_set, config, seed=seed), model))
    (a, ma), (b, mb), (c, _) = runs
    assert a.history == b.history and a.aspects == b.aspects
    assert all(torch.equal(p, q) for p, q in zip(ma.parameters(), mb.parameters(), strict=True))
    assert a.history != c.history


def test_training_leaves_the_callers_global_rng_alone(digits):
    train_set, test_set = digits
    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    train(mlp(0, dropout=0.2), train_set, test_set, TrainConfig(epochs=1, device="cpu"), seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_the_network_learns_digits(digits):
    train_set, test_set = digits
    result = train(mlp(4, width=64), train_set, test_set, TrainConfig(epochs=40, lr=0.5, device="cpu"), seed=0)
    a = result.aspects
    assert a.convergence is not None and a.convergence < 40
    assert result.history[-1].train_acc > 0.9 and result.history[-1].test_acc > 0.6
    assert a.expressivity < result.history[0].train_loss


def test_huge_learning_rate_diverges_stops_and_is_flagged(digits):
    train_set, test_set = digits
    result = train(mlp(0), train_set, test_set, TrainConfig(epochs=20, lr=1e10, device="cpu"), seed=0)
    assert result.aspects.diverged
    assert len(result.history) < 20  # stopped at the first non-finite epoch
    assert not math.isfinite(result.history[-1].train_loss)
    assert all(math.isfinite(r.train_loss) for r in result.history[:-1])
    assert result.aspects.expressivity is None


def test_resuming_from_a_checkpoint_repeats_the_uninterrupted_run(digits):
    train_set, test_set = digits
    config = TrainConfig(epochs=6, lr=0.2, batch=50, device="cpu")
    saved: dict[int, bytes] = {}

    def keep(record, snapshot):
        if snapshot is not None:
            saved[record.epoch] = snapshot().to_bytes()

    full_model = mlp(8, dropout=0.1)
    full = train(full_model, train_set, test_set, config, seed=3, on_epoch=keep)
    assert sorted(saved) == [1, 2, 3, 4, 5, 6]  # the last too: the final state a longer run continues from
    checkpoint = Checkpoint.from_bytes(saved[3])
    resumed_model = mlp(8, dropout=0.1)
    resumed = train(
        resumed_model, train_set, test_set, config, seed=3, resume=checkpoint, history=full.history[:3]
    )
    assert resumed.history == full.history and resumed.aspects == full.aspects
    assert all(torch.equal(p, q) for p, q in zip(full_model.parameters(), resumed_model.parameters(), strict=True))
    with pytest.raises(ValueError, match="needs 3 epochs of history"):
        train(mlp(8), train_set, test_set, config, seed=3, resume=checkpoint, history=full.history[:2])
    # extended: from the final state of 6 epochs to 8 equals 8 epochs at once
    longer = config.model_copy(update={"epochs": 8})
    straight = train(mlp(8, dropout=0.1), train_set, test_set, longer, seed=3)
    extended = train(mlp(8, dropout=0.1), train_set, test_set, longer, seed=3, resume=Checkpoint.from_bytes(saved[6]),
                     history=full.history)
    assert extended.history == straight.history and extended.aspects == straight.aspects
