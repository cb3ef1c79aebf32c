"""The Ray executor: the numbers of the local executor (one at a time and in populations),
a worker killed mid-group or a task that fails once leaves the database an uninterrupted
run writes, a driver killed with SIGKILL resumes under Ray, and bad Ray options are
refused before a database exists."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

ray = pytest.importorskip("ray")  # the test extra installs it; CI runs these

import nflc  # noqa: E402
from nflc.errors import NflcError  # noqa: E402
from nflc.verify.ray_executor import RayExecutor  # noqa: E402
from nflc.verify.config import make_config  # noqa: E402
from nflc.verify.run import verify  # noqa: E402
from nflc.verify.store import ResultStore  # noqa: E402
from nflc.verify.driver import run_training  # noqa: E402
from nflc.verify.train import TrainConfig  # noqa: E402
from nflc.data import load_dataset, train_test_split  # noqa: E402

from .helpers import dump_results, read_scalar  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
H3 = REPO / "specs" / "nfl_h3.nfl"
INDICES = (5, 100, 300, 700)


@pytest.fixture(scope="module")
def cluster():
    # a private instance, as nflc starts one (a cluster another user runs on this machine is not joined)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers get FlakyNet by value
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def h3():
    return nflc.load(H3)


def run(h3, db, *, executor=None, epochs=6, population=False, group_size=None):
    config = make_config(h3, samples=200, width=8, epochs=epochs, seed=1, device="cpu")
    return verify(h3, [h3.architecture(i) for i in INDICES], config, db, population=population, executor=executor,
                  group_size=group_size)


@pytest.mark.parametrize("population", [False, True])
def test_ray_gives_the_local_executors_numbers(tmp_path, cluster, h3, population):
    local = run(h3, tmp_path / "local.sqlite", population=population)
    remote = run(h3, tmp_path / "ray.sqlite", executor=RayExecutor(workers=2), population=population)
    assert dump_results(tmp_path / "ray.sqlite") == dump_results(tmp_path / "local.sqlite")
    assert remote.batched == local.batched == (4 if population else 0)
    assert sorted(remote.trained) == sorted(local.trained) and len(remote.trained) == 4


def _group_workers() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"ray::_stream_group" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def test_a_worker_killed_mid_group_is_retried_from_its_last_checkpoint(tmp_path, cluster, h3):
    if not Path("/proc").is_dir():
        pytest.skip("finds Ray's worker processes through /proc")
    reference = tmp_path / "ref.sqlite"
    run(h3, reference, epochs=60, population=True, group_size=2)
    db = tmp_path / "killed.sqlite"
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            stored = read_scalar(db, "SELECT COALESCE(MAX(epoch), 0) FROM checkpoints")
            workers = _group_workers()
            if stored >= 5 and workers:
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
            time.sleep(0.01)

    thread = threading.Thread(target=killer)
    thread.start()
    executor = RayExecutor(workers=2)
    run(h3, db, executor=executor, epochs=60, population=True, group_size=2)
    thread.join()
    assert killed, "no worker was running a group long enough to be killed"
    assert executor.submitted >= 3  # two groups, and at least one planned again
    assert dump_results(db) == dump_results(reference)  # nothing missing, nothing twice


class FlakyNet(nn.Module):
    """A small MLP whose forward fails on its ``fail_at``-th call (once per marker file, so
    a retried task succeeds; ``always``: every time)."""

    def __init__(self, seed: int, marker: str, fail_at: int = 12, always: bool = False):
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.ReLU(), nn.Linear(8, 10))
        self.marker, self.fail_at, self.always, self.calls = marker, fail_at, always, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.fail_at and (self.always or not os.path.exists(self.marker)):
            Path(self.marker).touch()
            raise RuntimeError("simulated failure in a worker")
        return self.body(x)


def _flaky_sweep(tmp_path, name, marker, executor=None, always=False):
    split = train_test_split(load_dataset("mnist5k", seed=0, n=200), test_fraction=0.2, seed=0)
    config = TrainConfig(epochs=8, lr=0.1, batch=64, seed=0, device="cpu")
    with ResultStore.open(tmp_path / name, "spec", config) as store:
        return run_training(["a", "b"], lambda arch_id, seed: FlakyNet(seed % 2**31, str(marker), always=always),
                            split, config, store, executor=executor, checkpoint_every=2)


def test_a_task_that_fails_once_is_retried_and_ends_as_an_uninterrupted_run(tmp_path, cluster):
    never = tmp_path / "never"
    never.touch()  # the reference never fails
    _flaky_sweep(tmp_path, "ref.sqlite", never)
    marker = tmp_path / "once"
    summary = _flaky_sweep(tmp_path, "flaky.sqlite", marker, executor=RayExecutor(workers=1))
    assert marker.exists() and summary.retried == 1
    assert dump_results(tmp_path / "flaky.sqlite") == dump_results(tmp_path / "ref.sqlite")


def test_a_task_that_always_fails_stops_the_sweep_with_its_error(tmp_path, cluster):
    with pytest.raises(NflcError, match="failed 3 times.*simulated failure"):
        _flaky_sweep(tmp_path, "bad.sqlite", tmp_path / "m", executor=RayExecutor(workers=1), always=True)


def test_bad_ray_options_are_refused_before_a_database_exists(tmp_path, h3):
    from typer.testing import CliRunner

    from nflc.cli import app

    db = tmp_path / "r.sqlite"
    base = ["verify", str(H3), "--archs", "0,1", "--samples", "200", "--width", "8", "--epochs", "2", "--quiet",
            "--db", str(db)]
    for extra, words in ((["--executor", "ray", "--workers", "0"], "--workers"),
                         (["--executor", "ray", "--address", "127.0.0.1:1"], "cannot reach a Ray cluster at 127.0.0.1:1"),
                         (["--workers", "2"], "only applies with --executor ray"),
                         (["--executor", "spark"], "expected local or ray")):
        res = CliRunner().invoke(app, base + extra)
        assert res.exit_code == 2 and words in res.output, res.output
        assert not db.exists()


def test_gpus_per_worker_on_a_cluster_without_gpus_is_refused(cluster):
    if ray.cluster_resources().get("GPU", 0) >= 1:
        pytest.skip("this cluster has a GPU")
    with pytest.raises(NflcError, match="has 0 GPU"):
        RayExecutor(gpus_per_worker=1).prepare(TrainConfig())


def test_the_driver_killed_with_sigkill_resumes_under_ray(tmp_path, h3):
    reference = tmp_path / "ref.sqlite"
    run(h3, reference, epochs=100)
    db = tmp_path / "r.sqlite"
    ray_tmp = tempfile.mkdtemp(prefix="nr", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "OMP_NUM_THREADS": "1"}
    # the CLI's configuration of run(): same spec, width, data, seed and length
    argv = [sys.executable, "-m", "nflc.cli", "verify", str(H3), "--archs", ",".join(map(str, INDICES)),
            "--samples", "200", "--width", "8", "--epochs", "100", "--seed", "1", "--device", "cpu",
            "--no-population", "--executor", "ray", "--workers", "2", "--quiet", "--db", str(db)]
    try:
        child = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 180
        while True:
            n = read_scalar(db, "SELECT COUNT(*) FROM epochs")
            if n >= 20:
                break
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            if time.monotonic() > deadline:  # a hang guard, not a speed goal
                pytest.fail("the Ray sweep made no progress")
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stderr.close()
        with ResultStore.open_readonly(db) as store:
            assert store.integrity_check() == "ok"
            assert "done" not in set(store.statuses().values()) or "running" in set(store.statuses().values())
        rerun = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert dump_results(db) == dump_results(reference)
    finally:
        # a SIGKILLed driver can leave Ray's node agents behind (renamed, orphaned): end the
        # processes that hold files of this session's directory
        for pid in _holding(ray_tmp):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _holding(directory: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if any(os.readlink(fd).startswith(directory) for fd in (entry / "fd").iterdir()):
                pids.append(int(entry.name))
        except OSError:
            pass
    return pids
