"""Population training: the same numbers as training every compiled module alone (one SGD
step, several epochs), determinism, independence of members (divergence), checkpoints
shared with train(), the store-backed sweep (resume, fallback), and a SIGKILL resume."""

from __future__ import annotations

import copy
import sqlite3
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import nflc
from nflc.data import load_dataset, train_test_split
from nflc.verify.population import (
    Population,
    batching_pays,
    forward_flops_per_row,
    member_layout,
    population_support,
    train_population,
)
from nflc.verify.store import ResultStore
from nflc.verify.driver import run_training
from nflc.verify.protocol import arch_seeds
from nflc.verify.train import Checkpoint, TrainConfig, train

from .helpers import run_and_sigkill

REPO = Path(__file__).resolve().parents[2]
H3 = REPO / "specs" / "nfl_h3.nfl"
WIDTH = 12
# every edge kind, a node with no input, the all-zero (P = 0) and all-linear cells, skips into the output
IDS = [
    "|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|",
    "|skip~0|+|skip~0|skip~1|+|skip~0|skip~1|skip~2|",
    "|zero~0|+|zero~0|zero~1|+|zero~0|zero~1|zero~2|",
    "|linear~0|+|zero~0|skip~1|+|zero~0|linear~1|skip~2|",
    "|zero~0|+|linear~0|zero~1|+|skip~0|zero~1|linear~2|",
    "|skip~0|+|linear~0|linear~1|+|zero~0|skip~1|linear~2|",
]
SPEC_HASH = "population-tests"


@pytest.fixture(scope="module")
def h3():
    return nflc.load(H3)


@pytest.fixture(scope="module")
def split():
    return train_test_split(load_dataset("mnist5k", seed=0, n=200), test_fraction=0.25, seed=0)


def modules(h3, ids=IDS, width=WIDTH):
    return [h3.architecture(i).to_module(seed=arch_seeds(0, i)[0], width=width) for i in ids]


def seeds(ids=IDS):
    return [arch_seeds(0, i)[1] for i in ids]


def assert_same_weights(a: nn.Module, b: nn.Module, atol: float) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], atol=atol, rtol=0, msg=k)


def test_layout_names_the_compiled_parameters(h3):
    m = modules(h3, [IDS[3]])[0]
    layout = member_layout(m)
    assert layout.stem == "layers.1.weight" and layout.readout == "layers.4.weight"
    assert layout.edges == {(0, 1): ("linear", "layers.3.edges.0_1.0.weight"), (1, 2): ("skip", None),
                            (1, 3): ("linear", "layers.3.edges.1_3.0.weight"), (2, 3): ("skip", None)}
    pop = Population([m])
    assert set(pop.member_state(0)) == set(m.state_dict())
    x = torch.randn(5, 784)
    torch.testing.assert_close(pop(x)[0], m(x), atol=1e-5, rtol=1e-5)


def test_outside_the_family_is_refused_with_a_reason(h3):
    nb201 = nflc.load(REPO / "specs" / "nb201.nfl", space="nb201")
    assert "not Linear >> ReLU >> CellModule >> Linear" in population_support(nb201.architecture(0).to_module(seed=0))
    assert "not a compiled nflc network" in population_support(nn.Linear(3, 4))
    biased = nflc.load(H3).with_options(bias=True).architecture(5).to_module(seed=0)
    assert "bias" in population_support(biased)
    with pytest.raises(ValueError, match="share input, width"):
        Population(modules(h3, IDS[:1], 8) + modules(h3, IDS[:1], 12))


def test_one_population_step_equals_separate_steps(h3, split):
    train_set, test_set = split
    one_batch = train_set.take(range(32))
    config = TrainConfig(epochs=1, lr=0.2, batch=32, seed=0, device="cpu")  # exactly one SGD step
    alone = modules(h3)
    together = copy.deepcopy(alone)
    start = copy.deepcopy(alone)
    ref = [train(m, one_batch, test_set, config, seed=s) for m, s in zip(alone, seeds(), strict=True)]
    got = train_population(together, one_batch, test_set, config, seeds=seeds())
    for a, b, s, r, g in zip(alone, together, start, ref, got, strict=True):
        assert_same_weights(a, b, atol=1e-6)
        moved = any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), s.state_dict().values(), strict=True))
        assert moved or r.history[0].train_loss == pytest.approx(2.302585, abs=1e-5)  # only the P = 0 net is frozen
        assert g.history[0].train_loss == pytest.approx(r.history[0].train_loss, rel=1e-6)
        assert g.history[0].test_acc == r.history[0].test_acc


def test_a_sweep_shares_its_data_order_and_not_its_initialisation():
    init, order = zip(*(arch_seeds(0, i) for i in IDS), strict=True)
    assert len(set(init)) == len(IDS) and len(set(order)) == 1
    assert arch_seeds(1, IDS[0])[1] != order[0]


# "sweep": every member on the sweep's one data order (one minibatch shared by all, one wide
# stem matmul); "own": each member on its own order (a minibatch gathered per member)
@pytest.mark.parametrize("order", ["sweep", "own"])
def test_several_epochs_match_separate_training(h3, split, order, monkeypatch):
    train_set, test_set = split
    config = TrainConfig(epochs=4, lr=0.1, batch=32, seed=0, device="cpu")
    alone = modules(h3)
    together = copy.deepcopy(alone)
    member_seeds = seeds() if order == "sweep" else [arch_seeds(0, i)[0] for i in IDS]
    ref = [train(m, train_set, test_set, config, seed=s) for m, s in zip(alone, member_seeds, strict=True)]
    batch_dims = []
    forward = Population.forward
    monkeypatch.setattr(Population, "forward", lambda self, x: batch_dims.append(x.dim()) or forward(self, x))
    got = train_population(together, train_set, test_set, config, seeds=member_seeds)
    # on the sweep's order every training step shares one (B, d) minibatch; on own orders each
    # step gathers (A, B, d); evaluation always shares its batch
    steps = 4 * -(-len(train_set) // 32)
    per_member = batch_dims.count(3)
    assert per_member == (0 if order == "sweep" else steps) and batch_dims.count(2) >= steps * (order == "sweep")
    for r, g, a, b in zip(ref, got, alone, together, strict=True):
        assert len(g.history) == len(r.history) == 4
        for x, y in zip(r.history, g.history, strict=True):
            assert y.train_loss == pytest.approx(x.train_loss, rel=1e-5, abs=1e-6)
            assert y.test_loss == pytest.approx(x.test_loss, rel=1e-5, abs=1e-6)
            assert abs(y.train_acc - x.train_acc) <= 1 / len(train_set)  # at most one borderline argmax
        assert g.aspects.convergence == r.aspects.convergence and not g.aspects.diverged
        assert_same_weights(a, b, atol=1e-5)


def test_same_seed_same_numbers_and_members_do_not_interact(h3, split):
    train_set, test_set = split
    config = TrainConfig(epochs=2, lr=0.1, batch=64, seed=0, device="cpu")
    first = train_population(modules(h3), train_set, test_set, config, seeds=seeds())
    again = train_population(modules(h3), train_set, test_set, config, seeds=seeds())
    assert [r.history for r in first] == [r.history for r in again]
    one = train_population(modules(h3, IDS[3:4]), train_set, test_set, config, seeds=seeds(IDS[3:4]))[0]
    for x, y in zip(first[3].history, one.history, strict=True):
        assert y.train_loss == pytest.approx(x.train_loss, rel=1e-6)


def test_a_diverging_member_is_recorded_and_leaves_the_others_alone(h3, split):
    train_set, test_set = split
    config = TrainConfig(epochs=3, lr=0.1, batch=64, seed=0, device="cpu")
    mods = modules(h3)
    with torch.no_grad():
        mods[1].layers[1].weight.fill_(1e30)  # overflows: inf/NaN logits
    alone = copy.deepcopy(mods)
    ref = [train(m, train_set, test_set, config, seed=s) for m, s in zip(alone, seeds(), strict=True)]
    got = train_population(mods, train_set, test_set, config, seeds=seeds())
    assert ref[1].aspects.diverged and got[1].aspects.diverged
    assert len(got[1].history) == len(ref[1].history) < 3 and got[1].aspects.expressivity is None
    for i in (0, 3, 4, 5):
        assert not got[i].aspects.diverged
        assert got[i].history[-1].train_loss == pytest.approx(ref[i].history[-1].train_loss, rel=1e-5)
        assert_same_weights(alone[i], mods[i], atol=1e-5)


def test_population_checkpoints_resume_alone_or_together(h3, split):
    train_set, test_set = split
    config = TrainConfig(epochs=4, lr=0.1, batch=64, seed=0, device="cpu")
    full = train_population(modules(h3), train_set, test_set, config, seeds=seeds())
    saved: dict[int, Checkpoint] = {}

    def grab(i, record, snapshot):
        if record.epoch == 2:
            saved[i] = Checkpoint.from_bytes(snapshot().to_bytes())  # through bytes, as the store does

    train_population(modules(h3), train_set, test_set, config, seeds=seeds(), on_epoch=grab)
    assert sorted(saved) == list(range(len(IDS)))
    # alone: train() continues a population checkpoint
    i = 5
    m = modules(h3, [IDS[i]])[0]
    alone = train(m, train_set, test_set, config, seed=seeds()[i], resume=saved[i], history=full[i].history[:2])
    for x, y in zip(full[i].history, alone.history, strict=True):
        assert y.train_loss == pytest.approx(x.train_loss, rel=1e-5)
    # together: a population continues from the same checkpoints to the same numbers
    resumed = train_population(modules(h3), train_set, test_set, config, seeds=seeds(),
                               resume=[saved[k] for k in range(len(IDS))], histories=[r.history[:2] for r in full])
    assert [r.history for r in resumed] == [r.history for r in full]


# -- through the store -------------------------------------------------------------------


def store_builder(h3):
    """ids of nfl_h3 at WIDTH, and 'mlp' (outside the family) as a plain torch MLP."""
    def make(arch_id: str, seed: int) -> nn.Module:
        if arch_id == "mlp":
            torch.manual_seed(seed)
            return nn.Sequential(nn.Linear(784, 8), nn.ReLU(), nn.Linear(8, 10))
        return h3.architecture(arch_id).to_module(seed=seed, width=WIDTH)

    return make


STORE_CONFIG = TrainConfig(epochs=4, lr=0.1, batch=64, seed=3, device="cpu")


def dump(db: Path) -> dict:
    with ResultStore.open(db, SPEC_HASH, STORE_CONFIG) as store:
        return {a: (s, store.aspects(a), store.epochs(a)) for a, s in store.statuses().items()}


def close_enough(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        (sa, aa, ea), (sb, ab, eb) = a[k], b[k]
        assert sa == sb and aa.convergence == ab.convergence and aa.diverged == ab.diverged and len(ea) == len(eb)
        for x, y in zip(ea, eb, strict=True):
            assert y.train_loss == pytest.approx(x.train_loss, rel=1e-5)


def test_store_sweep_matches_one_at_a_time_and_skips_finished(tmp_path, h3, split):
    items = IDS[:4] + ["mlp"]
    with ResultStore.open(tmp_path / "a.sqlite", SPEC_HASH, STORE_CONFIG) as store:
        summary = run_training(items, store_builder(h3), split, STORE_CONFIG, store, group_size=3, population=True)
        assert summary.trained == IDS[:3] + [IDS[3], "mlp"] and summary.alone == ["mlp"]
        again = run_training(items, store_builder(h3), split, STORE_CONFIG, store, population=True)
        assert again.trained == [] and again.skipped == items
    with ResultStore.open(tmp_path / "b.sqlite", SPEC_HASH, STORE_CONFIG) as store:
        run_training(items, store_builder(h3), split, STORE_CONFIG, store)
    close_enough(dump(tmp_path / "a.sqlite"), dump(tmp_path / "b.sqlite"))


def test_forward_flops_per_row_by_hand(h3):
    layout = member_layout(modules(h3, [IDS[3]])[0])  # two linear edges at width 12, MNIST in, 10 classes
    assert forward_flops_per_row(layout) == 2 * (784 * 12 + 2 * 12 * 12 + 12 * 10)


def test_only_when_faster_batches_only_small_networks_on_a_cpu(tmp_path, h3, split):
    wide = member_layout(h3.architecture(IDS[0]).to_module(seed=0, width=256))  # all linear: 1.2e6 FLOPs per row
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert not batching_pays(wide, cpu) and batching_pays(wide, gpu)
    assert batching_pays(member_layout(modules(h3, IDS[:1])[0]), cpu)

    def build(arch_id, seed):  # IDS[0] wide, the others at the test width
        return h3.architecture(arch_id).to_module(seed=seed, width=256 if arch_id == IDS[0] else WIDTH)

    config = STORE_CONFIG.model_copy(update={"epochs": 1})
    with ResultStore.open(tmp_path / "a.sqlite", SPEC_HASH, config) as store:
        summary = run_training(IDS[:3], build, split, config, store, only_when_faster=True, population=True)
    assert summary.alone == [IDS[0]] and summary.batched == IDS[1:3]


class Interrupt(Exception):
    pass


def test_interrupted_population_resumes_to_the_same_numbers(tmp_path, h3, split):
    with ResultStore.open(tmp_path / "ref.sqlite", SPEC_HASH, STORE_CONFIG) as store:
        run_training(IDS, store_builder(h3), split, STORE_CONFIG, store, population=True)
    reference = dump(tmp_path / "ref.sqlite")

    def stop(event):
        if event.kind == "epoch" and event.epoch == 3 and event.arch_id == IDS[2]:
            raise Interrupt

    db = tmp_path / "cut.sqlite"
    with ResultStore.open(db, SPEC_HASH, STORE_CONFIG) as store:
        with pytest.raises(Interrupt):
            run_training(IDS, store_builder(h3), split, STORE_CONFIG, store, stop, checkpoint_every=2, population=True)
        # members before the interrupted one wrote epoch 3's record in memory only: checkpoints at 2
        assert {store.checkpoint(a)[0] for a in IDS} == {2}
        events = []
        run_training(IDS, store_builder(h3), split, STORE_CONFIG, store, events.append, checkpoint_every=2, population=True)
    assert [(e.kind, e.epoch) for e in events if e.kind == "resume"] == [("resume", 2)] * len(IDS)
    assert dump(db) == reference  # same group, same checkpoints: bit for bit


def child_main(db: str) -> None:
    """The population sweep the SIGKILL test runs in another process (slowed per epoch)."""
    torch.set_num_threads(1)
    h3 = nflc.load(H3)
    split = train_test_split(load_dataset("mnist5k", seed=0, n=200), test_fraction=0.25, seed=0)
    config = STORE_CONFIG.model_copy(update={"epochs": 8})
    with ResultStore.open(db, SPEC_HASH, config) as store:
        run_training(IDS, store_builder(h3), split, config, store,
                       lambda e: time.sleep(0.05) if e.kind == "epoch" else None, population=True)


def test_sigkill_mid_population_resumes_to_identical_numbers(tmp_path, h3, split):
    config = STORE_CONFIG.model_copy(update={"epochs": 8})
    ref_db = tmp_path / "ref.sqlite"
    with ResultStore.open(ref_db, SPEC_HASH, config) as store:
        run_training(IDS, store_builder(h3), split, config, store, population=True)
        reference = {a: (s, store.aspects(a), store.epochs(a)) for a, s in store.statuses().items()}
    db = tmp_path / "killed.sqlite"
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); from tests.verify.test_population import child_main; child_main({str(db)!r})"

    def mid_run() -> bool:  # every member checkpointed, with epochs to spare
        if not db.exists():
            return False
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
            try:
                epoch = conn.execute("SELECT COALESCE(MIN(epoch), 0) FROM checkpoints").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.OperationalError:
            return False
        return 3 <= epoch <= 5

    run_and_sigkill(code, mid_run, cwd=REPO)
    with ResultStore.open(db, SPEC_HASH, config) as store:
        assert store.integrity_check() == "ok"
        assert set(store.statuses().values()) == {"running"}
        run_training(IDS, store_builder(h3), split, config, store, population=True)
        got = {a: (s, store.aspects(a), store.epochs(a)) for a, s in store.statuses().items()}
    assert list(got) == list(reference)
    for a in reference:
        assert got[a][0] == reference[a][0] and len(got[a][2]) == len(reference[a][2]) == 8
        # members killed between their checkpoint writes resume in two groups, sized alike: exact
        assert got[a][2] == reference[a][2]
