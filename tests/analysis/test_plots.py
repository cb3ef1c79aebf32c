"""The Fig. 3 panels draw every network: a cell's networks are spread, not stacked; the
colour scale is clipped at percentiles so an outlier does not wash the others out."""

from __future__ import annotations

import numpy as np
import pytest

from nflc.analysis.plots import colour_range, spread, topology_grid


def test_spread_keeps_every_network_of_a_shared_cell_visible_and_inside_its_cell():
    xs = [0.0] * 30 + [1.0] * 4 + [2.0]
    ys = [1.0] * 30 + [2.0] * 4 + [3.0]
    values = list(range(35))
    px, py = spread(xs, ys, values, dx=0.02, dy=0.3)
    positions = set(zip(np.round(px, 9), np.round(py, 9), strict=True))
    assert len(positions) == 35  # no two networks on one point
    assert np.all(np.abs(px - xs) <= 0.02) and np.all(np.abs(py - ys) <= 0.3)
    assert (px[34], py[34]) == (2.0, 3.0)  # alone in its cell: not moved
    # deterministic and ordered by value: the cell's lowest value in its first slot
    again = spread(xs, ys, values, dx=0.02, dy=0.3)
    assert np.array_equal(px, again[0]) and np.array_equal(py, again[1])
    first = min(range(30), key=lambda i: (py[i], px[i]))
    assert first == 0


def test_colour_range_is_the_2nd_and_98th_percentile():
    v = list(np.linspace(0, 1, 101)) + [1000.0]  # one outlier
    lo, hi = colour_range(v)
    assert lo == pytest.approx(np.percentile(v, 2)) and hi == pytest.approx(np.percentile(v, 98))
    assert hi < 2  # the outlier does not stretch the scale
    assert colour_range([3.0, 3.0, 3.0]) == (3.0, 3.0)


def test_panels_return_the_taus_and_write_a_png(tmp_path):
    from scipy.stats import kendalltau

    p = [1, 1, 2, 2, 3, 4, 0]
    d = [0.0, 1.0, 0.5, 1.0, 1.0, 1.5, 0.0]
    v = [5.0, 4.0, 3.0, 2.5, 2.0, 1.0, 9.0]  # the P = 0 network is left out
    drawn = topology_grid(tmp_path / "f.png", p, d, [("m", {"loss": v})], "t")
    assert drawn[("m", "loss")][0] == pytest.approx(kendalltau(v[:6], p[:6]).statistic)
    assert drawn[("m", "loss")][1] == pytest.approx(kendalltau(v[:6], d[:6]).statistic)
    assert (tmp_path / "f.png").stat().st_size > 10_000
