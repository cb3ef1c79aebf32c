"""nflc rank --score NAME for the kernel components and the aggregate: --jobs, the cache,
failures named and ranked last, bad input."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau
from typer.testing import CliRunner

import nflc
from nflc.analysis import rank_components as R
from nflc.cli import app
from nflc.rank import rank

ROOT = Path(__file__).resolve().parents[2]
NB201 = ROOT / "specs" / "nb201.nfl"

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|",
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
]
FAST = ["--samples", "4", "--kernel-width", "4", "--bootstrap", "50"]


def fixture_file(tmp_path, archs=ARCHS):
    entries = [{"arch_str": a, "val_accuracy": 60.0 + 5 * i, "proxy_a": float((i * 7) % 5)} for i, a in enumerate(archs)]
    p = tmp_path / "bench.json"
    p.write_text(json.dumps({"architectures": entries}))
    return p


def invoke(*args):
    return CliRunner().invoke(app, ["rank", str(NB201), "-s", "nb201", *map(str, args)])


def test_every_score_is_computed_and_the_aggregate_is_its_components_ranks(tmp_path):
    path = fixture_file(tmp_path)
    out = tmp_path / "r.json"
    res = invoke("--benchmark", path, "--score", "all", "--cache", tmp_path / "k.sqlite", "--json", out, *FAST)
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["scores"] == ["expressivity", "convergence", "generalization", "flops", "params", "aggregate",
                             "convergence_nngp", "generalization_bound"]
    rows = doc["per_arch"]
    col = {s: np.array([float(r["score" if s == "expressivity" else s]) for r in rows]) for s in doc["scores"]}
    # the all-none network has no input-output path: last by expressivity and by the aggregate
    assert col["expressivity"][4] == -math.inf and col["aggregate"][4] == -math.inf
    want = R.aggregate([col[c] for c in R.AGGREGATED], last=~np.isfinite(col["expressivity"]))
    assert np.array_equal(col["aggregate"], want)
    # every row carries its intervals and each nflc score its lead over the best proxy column (proxy_a)
    names = [r["name"] for r in doc["table"]]
    assert names[:8] == [f"nflc:{s}" for s in doc["scores"]] and "proxy_a" in names
    assert all(r["tau_interval"] is not None for r in doc["table"] if r["kendall_tau"] is not None)
    assert [ld["other"] for ld in doc["leads"]] == ["proxy_a"] * 8
    tau = kendalltau(np.where(np.isfinite(col["convergence"]), col["convergence"], -1), [60, 65, 70, 75, 80]).statistic
    assert doc["table"][1]["kendall_tau"] == pytest.approx(tau)
    assert "leads the best proxy column" in res.output or "trails the best proxy column" in res.output


def test_jobs_give_the_same_scores_as_one_process(tmp_path):
    path = fixture_file(tmp_path)
    docs = []
    for jobs in (1, 2):
        out = tmp_path / f"r{jobs}.json"
        res = invoke("--benchmark", path, "--score", "aggregate,generalization", "--no-cache", "--jobs", jobs,
                     "--json", out, *FAST)
        assert res.exit_code == 0, res.output
        docs.append(json.loads(out.read_text()))
    assert docs[0]["per_arch"] == docs[1]["per_arch"]
    assert docs[1]["kernels"]["measured"] == 5


def test_a_rerun_measures_nothing(tmp_path):
    path = fixture_file(tmp_path)
    first = invoke("--benchmark", path, "--score", "convergence", "--cache", tmp_path / "k.sqlite", *FAST)
    second = invoke("--benchmark", path, "--score", "convergence", "--cache", tmp_path / "k.sqlite", *FAST)
    assert first.exit_code == 0 and second.exit_code == 0
    assert "kernels: 5 measured, 0 from the cache" in first.output
    assert "kernels: 0 measured, 5 from the cache" in second.output


SKIPS = """
space skips {
    input   [3, 32, 32]
    classes 10
    width   16
    bias    false
    cell {
        nodes 3
        edge * : none | skip_connect | nor_conv_3x3
    }
    network = conv2d(3, width) >> batchnorm >> cell x6 >> batchnorm >> relu >> global_avg_pool >> linear(classes, bias=true)
}
"""


def test_a_network_that_cannot_be_measured_is_named_and_ranked_last(tmp_path):
    spec = tmp_path / "skips.nfl"
    spec.write_text(SKIPS)
    sp = nflc.load(spec)
    small, big = "|skip_connect~0|+|skip_connect~0|skip_connect~1|", "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"

    def needed(arch_id):  # the working set of the smallest streaming plan (one input at a time)
        with pytest.raises(R.KernelFailure) as exc:
            R.measure_kernels(sp.architecture(arch_id), R.KernelSettings(samples=4, memory=4096))
        return exc.value.needed

    need_small, need_big = needed(small), needed(big)
    assert 2 * need_small < need_big  # the limit below leaves the small networks room to plan
    limit = need_big - 1  # not even one input of the big network at a time fits
    path = fixture_file(tmp_path, [small, big, small.replace("skip_connect~1", "nor_conv_3x3~1")])
    res = rank(sp, path, "convergence,aggregate,expressivity", settings=R.KernelSettings(samples=4, memory=limit),
               resamples=0)
    assert [f.entry for f in res.failures] == [1] and "over the memory limit" in res.failures[0].reason
    row = res.per_arch[1]
    assert row["score"] == "-inf" and row["aggregate"] == "-inf" and row["expressivity"] != "-inf"
    assert all(r["score"] != "-inf" for r in (res.per_arch[0], res.per_arch[2]))
    # in the command's output: named, with the reason, and the run succeeds
    out = CliRunner().invoke(app, ["rank", str(spec), "--benchmark", str(path), "--score", "convergence", "--no-cache",
                                   "--memory", f"{limit / 2**20:.6f}M", "--samples", "4", "--bootstrap", "0"])
    assert out.exit_code == 0, out.output
    assert f"not measured: entry 1 ({big})" in out.output and "ranked last" in out.output


@pytest.mark.parametrize("args, message", [
    (["--score", "convergense"], "unknown score 'convergense'"),
    (["--score", ","], "names no score"),
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--samples", "1"], "--samples must be at least 2"),
    (["--kernel-width", "-1"], "--kernel-width must be at least 0"),
    (["--memory", "lots"], "is not an amount of memory"),
    (["--bootstrap", "-5"], "--bootstrap must be at least 0"),
])
def test_bad_options_are_errors_with_exit_code_2(tmp_path, args, message):
    res = invoke("--benchmark", fixture_file(tmp_path), "--no-cache", *args)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_entries_outside_the_space_are_an_error_before_any_measurement(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"architectures": [{"arch_str": ARCHS[0], "val_accuracy": 1.0},
                                               {"arch_str": "|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                                "val_accuracy": 2.0}]}))
    res = invoke("--benchmark", p, "--score", "aggregate", "--cache", tmp_path / "k.sqlite")
    assert res.exit_code == 2 and "entry 1" in res.output and "kernels:" not in res.output


def test_an_unusable_cache_path_is_an_error(tmp_path):
    (tmp_path / "dir.sqlite").mkdir()
    res = invoke("--benchmark", fixture_file(tmp_path), "--score", "convergence", "--cache", tmp_path / "dir.sqlite")
    assert res.exit_code == 2 and "--cache" in res.output
    (tmp_path / "junk.sqlite").write_bytes(b"not a database " * 100)
    res = invoke("--benchmark", fixture_file(tmp_path), "--score", "convergence", "--cache", tmp_path / "junk.sqlite")
    assert res.exit_code == 2 and "cannot use it as an SQLite file" in res.output and "Traceback" not in res.output


def test_score_without_accuracies_uses_the_same_components(tmp_path):
    from nflc.rank import score_architectures

    sp = nflc.load(NB201, space="nb201")
    archs = [sp.architecture(a) for a in ARCHS]
    settings = R.KernelSettings(samples=4, width=4)
    got = score_architectures(archs, "aggregate", settings=settings)
    res = rank(sp, fixture_file(tmp_path), "aggregate", settings=settings, resamples=0)
    assert [r.score for r in got] == [float(p["score"]) for p in res.per_arch]
    with pytest.raises(nflc.NflcError, match="names 2 scores"):
        score_architectures(archs, "convergence,flops")
    out = CliRunner().invoke(app, ["score", str(NB201), "-s", "nb201", "--archs", ",".join(ARCHS[:2]),
                                   "--score", "convergence", "--json", "-"])
    assert out.exit_code == 0, out.output
    assert len(json.loads(out.stdout)["architectures"]) == 2
