"""The resume guarantee of docs/VERIFY.md, bit for bit on a CPU: a population member's
numbers do not depend on which other members share its group, so a run killed between
two members' checkpoint writes (which then resumes in groups of other sizes) ends equal
to an uninterrupted one."""

from __future__ import annotations

import pytest

from nflc.verify.population import train_population
from nflc.verify.train import Checkpoint, TrainConfig

from .test_population import IDS, h3, modules, seeds, split  # noqa: F401, F811  (fixtures)

# small enough that evaluation runs in several chunks whose length depends on the group size
ELEMENTS = 6 * 12 * 7


def _train(h3, split, ids, **kw):  # noqa: F811 (the fixtures' values)
    train_set, test_set = split
    config = TrainConfig(epochs=4, lr=0.1, batch=64, seed=0, device="cpu")
    return train_population(modules(h3, ids), train_set, test_set, config, seeds=seeds(ids),
                            eval_elements=ELEMENTS, **kw)


def test_members_resumed_in_smaller_groups_repeat_the_full_group_bit_for_bit(h3, split):  # noqa: F811
    saved: dict[int, Checkpoint] = {}

    def grab(i, record, snapshot):
        if record.epoch == 2:
            saved[i] = Checkpoint.from_bytes(snapshot().to_bytes())

    full = _train(h3, split, IDS, on_epoch=grab, eval_members=len(IDS))
    # as after a kill: the members resume in groups of other sizes (2, 4, and alone), each
    # sized for the full group, most of them at another position than in the full group
    for part in (IDS[:2], IDS[2:], IDS[1:2], IDS[3:4], IDS[5:]):
        at = [IDS.index(a) for a in part]
        resumed = _train(h3, split, part, resume=[saved[i] for i in at], histories=[full[i].history[:2] for i in at],
                         eval_members=len(IDS))
        for i, r in zip(at, resumed, strict=True):
            assert r.history == full[i].history  # exact equality of every float


def test_the_group_size_is_what_sizes_evaluation_chunks(h3, split):  # noqa: F811
    # the control for the test above: with chunks sized per group, a group of 2 sums its
    # evaluation losses in other chunks than a group of 6, which shows in the last bits
    full = _train(h3, split, IDS)
    alone = _train(h3, split, IDS[:2])
    sized = _train(h3, split, IDS[:2], eval_members=len(IDS))
    assert [r.history for r in sized] == [r.history for r in full[:2]]
    diffs = [abs(x.train_loss - y.train_loss)
             for a, b in zip(alone, full[:2], strict=True) for x, y in zip(a.history, b.history, strict=True)]
    assert max(diffs) == pytest.approx(0, abs=1e-6)  # the same numbers up to round-off ...
    if max(diffs) == 0:
        pytest.skip("this BLAS sums both chunkings alike; the control shows nothing here")
