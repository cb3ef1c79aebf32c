"""The kernel cache: keys follow the computing graph and the settings; a rerun measures nothing."""

from pathlib import Path

import numpy as np
import pytest

import nflc
from nflc.analysis import rank_components as R
from nflc.analysis import rank_runner
from nflc.analysis.score_cache import KernelCache, cache_key, computing_graph

ROOT = Path(__file__).resolve().parents[2]
NB201 = ROOT / "specs" / "nb201.nfl"


@pytest.fixture(scope="module")
def nb201():
    return nflc.load(NB201, space="nb201")


def test_keys_follow_the_computing_graph_and_the_settings(nb201):
    s = R.KernelSettings()
    # node 2 reaches no output: the edges into it are dead, so the two compute the same function
    a = nb201.architecture("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|")
    b = nb201.architecture("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|")
    c = nb201.architecture("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|")
    assert computing_graph(a) == computing_graph(b) != computing_graph(c)
    assert cache_key(a, s) == cache_key(b, s) != cache_key(c, s)
    assert cache_key(a, s) != cache_key(a, R.KernelSettings(seed=1))
    assert cache_key(a, s) != cache_key(a, R.KernelSettings(samples=8))
    assert cache_key(a, s) == cache_key(a, R.KernelSettings(memory=2**31))  # the memory limit changes no number


def test_put_and_get_round_trip(tmp_path):
    cache = KernelCache(tmp_path / "sub" / "k.sqlite")
    k = R.Kernels(ntk=np.arange(9.0).reshape(3, 3), nngp=np.eye(3), source="finite-width", seconds=0.5,
                  peak_bytes=123, constants={"stem": 16})
    assert cache.get("x") is None
    cache.put("x", k)
    got = KernelCache(tmp_path / "sub" / "k.sqlite").get("x")  # another connection sees it
    assert got is not None and np.array_equal(got.ntk, k.ntk) and np.array_equal(got.nngp, k.nngp)
    assert (got.source, got.seconds, got.peak_bytes, got.constants) == ("finite-width", 0.5, 123, {"stem": 16})
    assert len(cache) == 1


def test_a_rerun_reads_every_kernel_from_the_cache(tmp_path, nb201, monkeypatch):
    ids = ["|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
           "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",  # same computing graph
           "|skip_connect~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|nor_conv_1x1~2|"]
    archs = [nb201.architecture(i) for i in ids]
    settings = R.KernelSettings(samples=4, width=4)
    calls = []
    real = rank_runner.measure_kernels
    monkeypatch.setattr(rank_runner, "measure_kernels", lambda a, s: calls.append(a.id) or real(a, s))
    cache = KernelCache(tmp_path / "k.sqlite")
    stats: dict = {}
    first = rank_runner.measure_all(archs, settings, cache=cache, stats=stats)
    assert calls == [ids[0], ids[2]]  # the shared computing graph measured once, on its first architecture
    assert stats == {"unique": 2, "cached": 0, "measured": 2, "failed": 0}
    assert np.array_equal(first[0].ntk, first[1].ntk)
    calls.clear()
    again = rank_runner.measure_all(archs, settings, cache=KernelCache(tmp_path / "k.sqlite"), stats=stats)
    assert calls == [] and stats["cached"] == 2 and stats["measured"] == 0
    for x, y in zip(first, again, strict=True):
        assert np.array_equal(x.ntk, y.ntk) and np.array_equal(x.nngp, y.nngp) and x.seconds == y.seconds


def test_failures_are_returned_and_not_cached(tmp_path, nb201):
    arch = nb201.architecture("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|")
    cache = KernelCache(tmp_path / "k.sqlite")
    out = rank_runner.measure_all([arch], R.KernelSettings(samples=4, memory=4096), cache=cache)
    assert isinstance(out[0], str) and "over the memory limit" in out[0]
    assert len(cache) == 0
    with pytest.raises(ValueError):
        rank_runner.measure_all([arch], R.KernelSettings(), jobs=0)


def test_a_failing_cache_never_stops_a_run(tmp_path):
    import sqlite3

    bad = tmp_path / "not.sqlite"
    bad.write_bytes(b"this is not a database, " * 100)
    with pytest.raises(sqlite3.DatabaseError):
        KernelCache(bad)
    cache = KernelCache(tmp_path / "k.sqlite")
    cache._conn.close()  # every later read and write fails
    k = R.Kernels(ntk=np.eye(2), nngp=np.eye(2), source="exact", seconds=0.0, peak_bytes=0, constants={})
    cache.put("x", k)
    assert cache.get("x") is None and cache.error is not None and "Programming" in cache.error
