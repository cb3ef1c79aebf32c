"""Bootstrap intervals: the vectorised resampled taus and rhos are scipy's on the resampled data."""

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from nflc.analysis import rank_stats as S


def test_vectorised_bootstrap_equals_scipy_on_the_resampled_data():
    rng = np.random.default_rng(1)
    n = 40
    acc = np.round(rng.normal(size=n), 1)  # ties in the accuracies
    cols = {"x": acc + rng.normal(size=n), "ties": np.round(rng.normal(size=n)), "inf": rng.normal(size=n)}
    cols["inf"][[0, 5]] = -np.inf  # no value: ranked below every finite value
    taus, rhos, used = S.bootstrap(cols, acc, resamples=25, seed=7)
    assert used == 25
    w = S._weights(n, 25, 7)  # the same multiplicities, drawn again from the seed
    for b in range(25):
        idx = np.repeat(np.arange(n), w[b].astype(int))
        for k, v in cols.items():
            o = S.orderable(v)
            assert taus[k][b] == pytest.approx(kendalltau(o[idx], acc[idx]).statistic, abs=1e-12)
            assert rhos[k][b] == pytest.approx(spearmanr(o[idx], acc[idx]).statistic, abs=1e-12)


def test_large_files_resample_through_scipy(monkeypatch):
    monkeypatch.setattr(S, "DENSE_MAX", 10)
    rng = np.random.default_rng(0)
    acc = rng.normal(size=30)
    taus, rhos, used = S.bootstrap({"a": acc + rng.normal(size=30)}, acc, resamples=1000, seed=0)
    assert used == S.SCIPY_RESAMPLES and len(taus["a"]) == used and np.all(np.abs(rhos["a"]) <= 1)


def test_orderable_keeps_the_ranking_order():
    v = S.orderable(np.array([3.0, -np.inf, np.nan, np.inf, 1.0]))
    assert list(np.argsort(v, kind="stable")) == [1, 2, 4, 0, 3]
    assert np.all(np.isfinite(v))


def test_a_real_lead_excludes_zero_and_a_tie_does_not():
    rng = np.random.default_rng(2)
    acc = rng.normal(size=200)
    good, bad = acc + 0.3 * rng.normal(size=200), acc + 3 * rng.normal(size=200)
    cols = {"good": good, "bad": bad, "same": good.copy()}
    taus, _, _ = S.bootstrap(cols, acc, resamples=300, seed=0)
    t = {k: kendalltau(v, acc).statistic for k, v in cols.items()}
    ld = S.lead("good", "bad", t["good"], t["bad"], taus)
    assert ld.difference > 0 and ld.beyond and ld.interval.low > 0
    tie = S.lead("good", "same", t["good"], t["same"], taus)
    assert tie.difference == 0 and not tie.beyond
    iv = S.interval(taus["good"])
    assert iv.low < t["good"] < iv.high
