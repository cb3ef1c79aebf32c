"""Every bad `nflc verify` / `nflc report` option is refused (exit 2, one message, no
traceback) before a database exists; a foreign file given as --db is left byte for byte
as it was; networks that never left chance are flagged and kept out of the verdict."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nflc.cli import app
from nflc.verify.report import build_report, left_chance
from nflc.verify.run import chance_loss
from nflc.verify.store import ResultStore
from nflc.verify.train import Aspects, EpochRecord

REPO = Path(__file__).resolve().parents[2]
H3 = REPO / "specs" / "nfl_h3.nfl"
TINY = ["--archs", "0,1", "--samples", "160", "--epochs", "2", "--width", "8", "--quiet"]


def cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


BAD = {
    "--device mps": (["--device", "mps"], "mps"),
    "--device meta": (["--device", "meta"], "meta"),
    "--device nonsense": (["--device", "gpu0"], "gpu0"),
    "--device cuda:7": (["--device", "cuda:7"], "cuda"),
    "--group-size 0": (["--group-size", "0"], "--group-size"),
    "--checkpoint-every 0": (["--checkpoint-every", "0"], "--checkpoint-every"),
    "--lock-timeout -1": (["--lock-timeout", "-1"], "--lock-timeout"),
    "--samples 5": (["--samples", "5"], "training example"),
    "--test-fraction 0.999": (["--samples", "5000", "--test-fraction", "0.999"], "training example"),
    "--threads 0": (["--threads", "0"], "--threads"),
    "--archs sample:-1": (["--archs", "sample:-1"], "sample:-1"),
    "--archs sample:abc": (["--archs", "sample:abc"], "sample:abc"),
    # issue #27: no silent default, no database before an option fails, no traceback
    "--epochs 0": (["--epochs", "0"], "--epochs must be at least 1"),
    "--dataset ''": (["--dataset", ""], "--dataset is empty"),
    "--width 10^30": (["--width", str(10**30)], "parameters"),
    "--lr 1e308": (["--lr", "1e308"], "float32"),
    "--lr 1e-320": (["--lr", "1e-320"], "float32"),
    "--seed -1": (["--seed", "-1"], "--seed"),
    "--seed 2^64": (["--seed", str(2**64)], "--seed"),
    "--threads 10^9": (["--threads", str(10**9)], "--threads"),
    "--archs 5000 digits": (["--archs", "9" * 5000], "out of range"),
    "--address ''": (["--executor", "ray", "--address", ""], "--address is empty"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_options_are_refused_before_the_database_exists(tmp_path, case):
    if case.startswith("--device mps") and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    if case == "--device cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    extra, expected = BAD[case]
    db = tmp_path / "r.sqlite"
    args = [*TINY, *extra]
    for flag in ("--samples", "--epochs", "--width", "--archs"):  # the case's value replaces TINY's
        if flag in extra:
            i = args.index(flag)
            del args[i:i + 2]
    res = cli("verify", H3, *args, "--db", db)
    assert res.exit_code == 2, res.output
    assert expected in res.output, res.output  # the user's own words, unmangled (no emoji for ":-1")
    assert not db.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("width, words", [
    ("1" + "0" * 40, "parameters"),
    ("9" * 5000, "digits"),
])
def test_a_spec_with_a_huge_number_is_refused_before_the_database_exists(tmp_path, width, words):
    """A width of 10^40 in the spec: the modules cannot fit (checked before the database).
    A 5000-digit number: the spec's reader must bound it."""
    spec = tmp_path / "wide.nfl"
    spec.write_text(H3.read_text().replace("width   256", f"width   {width}"))
    db = tmp_path / "r.sqlite"
    res = cli("verify", spec, *[a for a in TINY if a not in ("--width", "8")], "--db", db)
    assert res.exit_code == 2 and words in res.output, res.output
    assert not db.exists()


def test_an_empty_stop_rule_is_an_error_not_the_default(tmp_path):
    db = tmp_path / "r.sqlite"
    args = [a for a in TINY if a not in ("--epochs", "2")]
    res = cli("verify", H3, *args, "--until-converged", "--stop-rule", "", "--db", db)
    assert res.exit_code == 2 and "--stop-rule must be slope or window, got ''" in res.output, res.output
    assert not db.exists()


def test_a_foreign_sqlite_file_is_refused_and_left_byte_identical(tmp_path):
    db = tmp_path / "mine.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.execute("INSERT INTO users VALUES ('ada')")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    res = cli("verify", H3, *TINY, "--db", db)
    assert res.exit_code == 2 and "another program" in res.output and "users" in res.output
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.sqlite"]  # no -wal/-shm left either


def test_a_directory_as_db_is_refused(tmp_path):
    res = cli("verify", H3, *TINY, "--db", tmp_path)
    assert res.exit_code == 2 and "directory" in res.output


def test_report_json_into_a_missing_directory_is_refused_before_work(tmp_path):
    db = tmp_path / "r.sqlite"
    assert cli("verify", H3, *TINY, "--db", db).exit_code == 0
    res = cli("report", "--db", db, "--json", tmp_path / "no" / "such" / "r.json")
    assert res.exit_code == 2 and "does not exist" in res.output
    res = cli("report", "--db", db, "--json", tmp_path)
    assert res.exit_code == 2 and "is a directory" in res.output
    assert cli("report", "--db", db, "--json", tmp_path / "r.json").exit_code == 0
    # 128 training examples of 10 classes, stratified: the entropy of their class counts (scipy)
    from scipy.stats import entropy

    from nflc.data import load_dataset, train_test_split

    train, _ = train_test_split(load_dataset("mnist5k", seed=0, n=160), test_fraction=0.2, seed=0)
    counts = torch.bincount(train.y, minlength=10).numpy()
    assert counts.sum() == 128 and sorted(counts) == [12, 12] + [13] * 8
    assert json.loads((tmp_path / "r.json").read_text())["chance_loss"] == pytest.approx(entropy(counts), rel=1e-12)


# ---------------------------------------------------------------------------------------
# chance


def test_chance_loss_is_the_entropy_of_the_class_frequencies():
    assert chance_loss(torch.tensor([0, 1, 2, 3] * 5), 4) == pytest.approx(math.log(4))
    # 3:1 -> -(3/4 ln 3/4 + 1/4 ln 1/4), by hand 0.562335
    assert chance_loss(torch.tensor([0, 0, 0, 1]), 10) == pytest.approx(0.5623351446188083)
    assert left_chance([2.31, 2.30, 2.29], math.log(10)) is False  # 2.29 > 0.99 * 2.3026 = 2.2796
    assert left_chance([2.31, 2.27], math.log(10)) is True
    assert left_chance([math.nan], math.log(10)) is False


def _db(tmp_path, histories: dict[str, list[float]], run_info: dict | None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "r.sqlite"
    config = {"space": "toy", "width": 4, "data": {"dataset": "mnist5k"}, "train": {"epochs": 3, "lr": 0.1}}
    with ResultStore.open(path, "h" * 64, config) as store:
        store.register(list(histories))
        info = {f"arch:{k}": {"index": i, "paths": i + 1, "mean_depth": 1.0 + i, "sum_depth": 1.0, "params": 10}
                for i, k in enumerate(histories)}
        if run_info is not None:
            info["run"] = run_info
        store.put_info(info)
        for k, losses in histories.items():
            recs = [EpochRecord(epoch=e, train_loss=v, train_acc=0.5, test_loss=v + 0.1, test_acc=0.4)
                    for e, v in enumerate(losses, 1)]
            store.start(k)
            store.finish(k, recs, Aspects(expressivity=losses[-1], convergence=None, generalization=0.1,
                                          diverged=False, epochs=len(losses)))
    return path


def test_networks_that_never_left_chance_are_flagged_and_left_out_of_the_verdict(tmp_path):
    ln10 = math.log(10)
    # "stuck" has the lowest final loss of the three but never got 1% below ln 10
    hist = {"learns": [2.2, 1.5, 2.29], "stuck": [2.31, 2.30, 2.285], "also": [2.1, 2.0, 2.295]}
    for run_info in ({"chance_loss": ln10}, None):  # recorded by verify, or recomputed from the data settings
        path = _db(tmp_path / str(run_info is None), hist, run_info)
        rep = build_report(path)
        flags = {a.id: a.left_chance for a in rep.architectures}
        assert flags == {"learns": True, "stuck": False, "also": True}
        assert rep.chance_loss == pytest.approx(ln10)
        assert any("1 of 3 architecture(s) never left chance" in n for n in rep.notes)
        assert rep.nfl.winners["expressivity"] == ["learns"]  # not "stuck", whose final loss is lowest
        assert "stuck" not in rep.nfl.pareto_front


def test_a_run_where_nothing_left_chance_has_no_verdict(tmp_path):
    path = _db(tmp_path, {"a": [2.31, 2.30, 2.30], "b": [2.303, 2.302, 2.302]}, {"chance_loss": math.log(10)})
    rep = build_report(path)
    assert rep.nfl is None and any("no architecture left chance" in n for n in rep.notes)


def test_verify_at_a_learning_rate_too_small_to_learn_is_flagged_by_report(tmp_path):
    db = tmp_path / "r.sqlite"
    learnable = "|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|,|skip~0|+|linear~0|linear~1|+|zero~0|skip~1|linear~2|"
    args = [learnable if a == "0,1" else a for a in TINY]
    assert cli("verify", H3, *args, "--lr", "1e-9", "--db", db).exit_code == 0
    res = cli("report", "--db", db)
    assert res.exit_code == 0 and "never left chance" in res.output and "no measured verdict" in res.output


def test_executor_ray_without_ray_installed_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed: importing it fails
    db = tmp_path / "r.sqlite"
    res = cli("verify", H3, *TINY, "--executor", "ray", "--db", db)
    assert res.exit_code == 2 and "nflc[ray]" in res.output and not db.exists()


def test_configuration_errors_name_settings_the_cli_its_flags():
    """nflc.verify.config speaks no command-line words: a bad setting is named in backticks,
    and the command line respells it as its flag (the messages tests/verify/test_plateau.py
    checks)."""
    from nflc.cli import flag
    from nflc.errors import SettingError
    from nflc.verify.config import stopping_rule

    with pytest.raises(SettingError) as exc:
        stopping_rule(True, None, 0, None, None)
    assert str(exc.value) == "`max_epochs` must be at least 1, got 0"
    assert str(exc.value.respelled(flag)) == "--max-epochs must be at least 1, got 0"
    with pytest.raises(SettingError) as exc:
        stopping_rule(False, None, None, 5, None)
    assert str(exc.value.respelled(flag)) == "--plateau-window only applies with --until-converged"
