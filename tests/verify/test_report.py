"""The verification report on a hand-made results database: raw-scale Kendall tau with
topology, oriented predicted-vs-measured tau with a seeded bootstrap, never-reached and
diverged runs, P = 0 left out, the measured no-free-lunch verdict, strict JSON, plots."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import kendalltau

from nflc.errors import NflcError
from nflc.verify.report import bootstrap_kendall, build_report, late_loss_drop, to_json_dict, write_plots
from nflc.verify.store import ResultStore, StoreError
from nflc.verify.train import Aspects, EpochRecord

SPEC = "f" * 64
CONFIG = {"space": "toy", "width": 16, "data": {"dataset": "mnist5k"}, "train": {"epochs": 5, "lr": 0.1}}
# id: (paths, mean depth, train loss, epochs to threshold or None, gap, diverged)
ROWS = {
    "a": (1, 2.0, 0.10, 4, 0.30, False),
    "b": (2, 1.5, 0.20, 3, 0.20, False),
    "c": (3, 1.0, 0.30, 2, 0.15, False),
    "d": (4, 0.5, 0.50, 1, 0.05, False),
    "e": (2, 0.5, 0.40, None, 0.10, False),  # never reached the threshold
    "f": (3, 2.0, None, 2, None, True),  # diverged after reaching it
    "z": (0, 0.0, 2.30, None, 0.0, False),  # no input-output path
}


def history(loss: float, gap: float, epochs: int) -> list[EpochRecord]:
    return [EpochRecord(epoch=e, train_loss=loss, train_acc=0.5, test_loss=loss + gap, test_acc=0.4)
            for e in range(1, epochs + 1)]


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultStore.open(path, SPEC, CONFIG) as store:
        store.register([*ROWS, "pending-one"])
        store.put_info({f"arch:{k}": {"index": i, "paths": p, "mean_depth": d, "sum_depth": p * d, "params": 100 + i}
                        for i, (k, (p, d, *_)) in enumerate(ROWS.items())})
        for k, (_p, _d, loss, conv, gap, div) in ROWS.items():
            n = 3 if div else 5
            hist = history(math.nan if div else loss, 0.0 if div else gap, n)
            aspects = Aspects(expressivity=loss, convergence=conv, generalization=gap, diverged=div, epochs=n)
            store.start(k)
            store.finish(k, hist, aspects)
    return path


def analysis_file(tmp_path, scores: dict, spec=SPEC):
    path = tmp_path / "an.json"
    path.write_text(json.dumps({"spec_hash": spec, "architectures": [{"id": k, "scores": v} for k, v in scores.items()]}))
    return path


def test_topology_tau_is_on_raw_quantities_without_p0(db):
    rep = build_report(db)
    assert rep.counts == {"registered": 8, "finished": 7, "done": 6, "diverged": 1, "unfinished": 1}
    ranked = [k for k, r in ROWS.items() if r[0] > 0]
    live = [k for k in ranked if not ROWS[k][5]]
    exp = kendalltau([ROWS[k][2] for k in live], [ROWS[k][1] for k in live]).statistic
    assert rep.measured_vs_topology["expressivity"]["mean_depth"].tau == pytest.approx(exp)
    assert rep.measured_vs_topology["expressivity"]["mean_depth"].n == len(live)
    # convergence: never reached ranks as epochs + 1 = 6; the diverged run keeps its epoch (2)
    epochs = [ROWS[k][3] if ROWS[k][3] is not None else 6 for k in ranked]
    conv = kendalltau(epochs, [ROWS[k][0] for k in ranked]).statistic
    assert rep.measured_vs_topology["convergence"]["paths"].tau == pytest.approx(conv)
    assert any("P = 0" in n for n in rep.notes) and any("not finished" in n for n in rep.notes)
    by_id = {a.id: a for a in rep.architectures}
    assert by_id["f"].diverged and by_id["f"].expressivity is None
    assert by_id["pending-one"].status == "pending" and by_id["pending-one"].expressivity is None


def test_measured_verdict_uses_oriented_values(db):
    rep = build_report(db)
    assert rep.nfl.winners == {"expressivity": ["a"], "convergence": ["d"], "generalization": ["d"]}
    assert not rep.nfl.one_wins_all and rep.nfl.verdict.startswith("no free lunch")
    assert "f" not in rep.nfl.pareto_front and rep.nfl.left_out == ["z"]


def test_predicted_vs_measured_tau_with_seeded_bootstrap(db, tmp_path):
    # expressivity predicted perfectly (higher score = lower loss), convergence reversed
    scores = {k: {"expressivity": -r[2] if r[2] is not None else 0.0,
                  "convergence": float(r[3] or 6),
                  "generalization": "-inf" if k == "e" else -r[4] if r[4] is not None else 0.0}
              for k, r in ROWS.items()}
    rep = build_report(db, analysis_file(tmp_path, scores), bootstrap=200, seed=1)
    pvm = rep.predicted_vs_measured
    assert pvm["expressivity"].tau == pytest.approx(1.0) and pvm["expressivity"].n == 5  # diverged: -inf, left out
    assert pvm["convergence"].tau == pytest.approx(-1.0) and pvm["convergence"].n == 6
    assert pvm["generalization"].n == 4  # "-inf" predicted for e is not a finite pair
    assert pvm["expressivity"].ci_low == pytest.approx(1.0) and pvm["convergence"].ci_high == pytest.approx(-1.0)
    again = build_report(db, analysis_file(tmp_path, scores), bootstrap=200, seed=1)
    assert again.predicted_vs_measured == pvm
    assert rep.analysis["matched"] == 6 and rep.analysis["missing"] == []
    text = json.dumps(to_json_dict(rep), allow_nan=False)  # strict JSON
    assert '"diverged": true' in text
    paths = write_plots(rep, tmp_path / "plots")
    assert [p.name for p in paths] == ["measured_topology.png", "fig3_measured_vs_predicted.png",
                                       "predicted_vs_measured.png"]


def test_fig3_panels_carry_the_taus_of_the_report(db, tmp_path):
    """The legends' taus are those of the report's statistics (P > 0, raw measured values)
    and, for the predicted row, Kendall tau of the scores with P and mean depth by hand."""
    from nflc.analysis.plots import topology_grid

    rep = build_report(db)
    fin = [a for a in rep.architectures if a.status in ("done", "diverged")]
    never = 6
    loss = [a.expressivity for a in fin]
    epochs = [a.convergence if a.convergence is not None else never for a in fin]
    score = [float(a.paths) for a in fin]  # a "prediction" equal to P: tau 1 with P
    drawn = topology_grid(tmp_path / "g.png", [a.paths for a in fin], [a.mean_depth for a in fin],
                          [("measured", {"loss": loss, "epochs": epochs}), ("predicted", {"P": score})], "t")
    topo = rep.measured_vs_topology
    assert drawn[("measured", "loss")] == pytest.approx((topo["expressivity"]["paths"].tau,
                                                         topo["expressivity"]["mean_depth"].tau))
    assert drawn[("measured", "epochs")] == pytest.approx((topo["convergence"]["paths"].tau,
                                                           topo["convergence"]["mean_depth"].tau))
    ranked = [a for a in fin if a.paths > 0]
    assert drawn[("predicted", "P")] == pytest.approx(
        (1.0, kendalltau([a.paths for a in ranked], [a.mean_depth for a in ranked]).statistic))


def test_bootstrap_interval_brackets_tau():
    x = [float(i) for i in range(30)]
    y = [v + (7 if i % 4 == 0 else 0) for i, v in enumerate(x)]
    t = bootstrap_kendall(x, y, resamples=300, seed=0)
    assert t.ci_low <= t.tau <= t.ci_high < 1.0 + 1e-12 and t.resamples == 300
    assert bootstrap_kendall([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]).tau is None


def test_bootstrap_interval_agrees_with_scipys_bootstrap():
    """The 95% percentile interval against scipy.stats.bootstrap (paired resampling, its own
    random stream): equal up to the Monte Carlo error of the resampling (about 0.01 here)."""
    import numpy as np
    from scipy.stats import bootstrap

    rng = np.random.default_rng(3)
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    ref = bootstrap((x, y), lambda a, b: kendalltau(a, b).statistic, paired=True, vectorized=False,
                    n_resamples=3000, method="percentile", random_state=np.random.default_rng(5)).confidence_interval
    got = bootstrap_kendall(list(x), list(y), resamples=1000, seed=0)
    assert got.tau == pytest.approx(kendalltau(x, y).statistic)
    assert got.ci_low == pytest.approx(ref.low, abs=0.03) and got.ci_high == pytest.approx(ref.high, abs=0.03)
    assert ref.high - ref.low > 0.2  # wide enough that a collapsed interval could not pass


def test_bad_inputs(db, tmp_path):
    with pytest.raises(NflcError, match="another spec"):
        build_report(db, analysis_file(tmp_path, {"a": {}}, spec="0" * 64))
    (tmp_path / "x.json").write_text(json.dumps({"architectures": [{"name": "a"}]}))
    with pytest.raises(NflcError, match="not an 'nflc analyze --json' file"):
        build_report(db, tmp_path / "x.json")
    with pytest.raises(NflcError, match="no analysis file"):
        build_report(db, tmp_path / "missing.json")
    with pytest.raises(StoreError, match="no results database"):
        build_report(tmp_path / "missing.sqlite")
    empty = tmp_path / "empty.sqlite"
    import sqlite3

    sqlite3.connect(empty).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(StoreError, match="not an nflc results database"):
        build_report(empty)


def test_late_loss_drop_by_hand():
    assert late_loss_drop([2.0, 1.0, 0.8]) == pytest.approx(0.2)  # last tenth of 3 epochs: one epoch
    losses = [1.0 - 0.02 * e for e in range(30)]  # last tenth of 30: three epochs, 0.48 -> 0.42
    assert late_loss_drop(losses) == pytest.approx((0.48 - 0.42) / 0.48)
    assert late_loss_drop([0.5]) is None and late_loss_drop([1.0, math.nan]) is None


def test_a_still_falling_training_loss_is_noted(db, tmp_path):
    flat = build_report(db)  # the fixture's histories are flat: levelled off
    assert not any("still fell" in n for n in flat.notes)
    assert next(a for a in flat.architectures if a.id == "a").late_loss_drop == 0.0
    assert next(a for a in flat.architectures if a.id == "f").late_loss_drop is None  # diverged
    path = tmp_path / "falling.sqlite"
    config = {**CONFIG, "train": {"epochs": 20, "lr": 0.1}}
    with ResultStore.open(path, SPEC, config) as store:
        store.register(["p", "q"])
        store.put_info({f"arch:{k}": {"index": i, "paths": 1 + i, "mean_depth": 1.0, "sum_depth": 1.0, "params": 1}
                        for i, k in enumerate("pq")})
        for k, rate in (("p", 0.02), ("q", 0.04)):
            hist = [EpochRecord(epoch=e, train_loss=1.0 - rate * e, train_acc=0.9, test_loss=1.2, test_acc=0.8)
                    for e in range(1, 21)]
            store.start(k)
            store.finish(k, hist, Aspects(expressivity=hist[-1].train_loss, convergence=1,
                                          generalization=1.2 - hist[-1].train_loss, diverged=False, epochs=20))
    rep = build_report(path)
    drops = [(1 - 0.02 * 18 - (1 - 0.02 * 20)) / (1 - 0.02 * 18), (1 - 0.04 * 18 - (1 - 0.04 * 20)) / (1 - 0.04 * 18)]
    assert [a.late_loss_drop for a in rep.architectures] == pytest.approx(drops)
    # the note gives the log-loss slope at the end (fitted over all 20 epochs: the slope
    # rule fits half the run, at least its 50-epoch window) as a decrease per window
    slopes = [np.polyfit(np.arange(1, 21), np.log([1.0 - rate * e for e in range(1, 21)]), 1)[0] for rate in (0.02, 0.04)]
    assert [a.final_slope for a in rep.architectures] == pytest.approx(slopes)
    per_window = 100 * -math.expm1(float(np.median(slopes)) * 50)
    assert f"still fell by a median {per_window:.1f}% per 50 epochs" in " ".join(rep.notes)
    assert "20 epochs are fewer than the rule's 100" in " ".join(rep.notes)
    # and the losses are the means of the last 2 epochs (a tenth of 20)
    assert [a.expressivity for a in rep.architectures] == pytest.approx([1 - 0.02 * 19.5, 1 - 0.04 * 19.5])


def test_reaching_the_threshold_at_the_last_epoch_beats_never_reaching_it(tmp_path):
    """Two networks trained 5 epochs: "late" first reaches 50% training accuracy at epoch 5,
    "never" does not. Never counts as epochs + 1 = 6 (worse), not as 5 (a tie)."""
    from nflc.verify.train import measure

    path = tmp_path / "last.sqlite"
    config = {**CONFIG, "train": {"epochs": 5, "lr": 0.1, "threshold": 0.5}}
    accs = {"late": [0.1, 0.2, 0.3, 0.4, 0.5], "never": [0.1, 0.2, 0.3, 0.4, 0.49]}
    with ResultStore.open(path, SPEC, config) as store:
        store.register(list(accs))
        # P: late 2, never 1; mean depth 1.0 and 2.0
        store.put_info({f"arch:{k}": {"index": i, "paths": 2 - i, "mean_depth": 1.0 + i, "sum_depth": 2.0, "params": 1}
                        for i, k in enumerate(accs)})
        for k, acc in accs.items():
            hist = [EpochRecord(epoch=e, train_loss=1.0 / e, train_acc=a, test_loss=1.5 / e, test_acc=a)
                    for e, a in enumerate(acc, start=1)]
            aspects = measure(hist, threshold=0.5, window=1)
            assert aspects.convergence == (5 if k == "late" else None)
            store.start(k)
            store.finish(k, hist, aspects)
    scores = {"late": {"expressivity": 0.0, "convergence": 1.0, "generalization": 0.0},
              "never": {"expressivity": 0.0, "convergence": 0.0, "generalization": 0.0}}
    rep = build_report(path, analysis_file(tmp_path, scores), bootstrap=20)
    by_id = {a.id: a for a in rep.architectures}
    assert (by_id["late"].convergence, by_id["never"].convergence) == (5, None)
    # raw epochs (5, 6) against P (2, 1) and mean depth (1, 2): perfectly discordant / concordant
    assert rep.measured_vs_topology["convergence"]["paths"].tau == pytest.approx(-1.0)
    assert rep.measured_vs_topology["convergence"]["mean_depth"].tau == pytest.approx(1.0)
    # oriented (-5, -6) against the predicted (1, 0): concordant
    assert rep.predicted_vs_measured["convergence"].tau == pytest.approx(1.0)
    assert rep.nfl.winners["convergence"] == ["late"]
