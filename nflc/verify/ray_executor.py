"""Train a sweep's groups on a Ray cluster (``nflc verify --executor ray``).

Each group (one network, or a population) is one Ray generator task: it trains in a
worker process and yields every epoch (with its checkpoint when one is due) and every
result as it happens, so the driver (:func:`nflc.verify.driver.run_training`, the only
writer of the results database) records progress while the group trains. A driver killed
mid-sweep therefore resumes like a local one. A worker that dies mid-group (or a task
that fails) is reported to the driver, which plans the group again from its members'
last stored checkpoints; Ray's own task retries are off, since a retried generator would
stream its epochs again from the start.

Without ``address`` a private local Ray instance is started (it parallelises over this
machine's cores or GPUs), even when a cluster started with ``ray start --head`` runs on
the machine or ``RAY_ADDRESS`` is set: ``ray.init(address="local")``, since a plain
``ray.init()`` would join that cluster and refuse nflc's CPU count. ``address="auto"``
joins the cluster this machine is part of (``RAY_ADDRESS``, else the latest ``ray start``
here); ``HOST:PORT`` joins that cluster (``ray start --head`` on one node, ``ray start
--address HEAD:6379`` on the others). Workers need nflc and torch importable (the same
environment on every node). Ray is imported only here.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
from typing import Any, Callable, Iterator, Optional

from nflc.data import Dataset
from nflc.errors import NflcError
from nflc.verify.driver import Event, Group, Plan, train_group
from nflc.verify.train import TrainConfig

__all__ = ["RayExecutor"]

_DONE = object()
RAY_ADDRESS = "RAY_ADDRESS"


@contextlib.contextmanager
def _without(variable: str) -> Iterator[None]:
    """The environment without ``variable`` for the duration (restored after)."""
    saved = os.environ.pop(variable, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[variable] = saved


def _stream_group(group: Group, dataset: tuple[Dataset, Dataset], config: TrainConfig, checkpoint_every: int,
                  threads: int) -> Iterator[Event]:
    """The worker side: train ``group`` and yield its events as they happen. Training runs
    in a thread that hands events over a queue, because the trainers report through
    callbacks; an error in it is raised here, failing the task."""
    import torch  # torch: loaded only when a network is built or trained

    events: queue.Queue = queue.Queue()

    def work() -> None:
        # in the training thread itself: OpenMP thread counts are per calling thread, and a
        # different count could change the last bits of a sum
        torch.set_num_threads(max(1, threads))
        try:
            train_group(group, dataset, config, checkpoint_every, events.put)
            events.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the task, which fails with it
            events.put(exc)

    threading.Thread(target=work, name="nflc-train-group", daemon=True).start()
    while True:
        item = events.get()
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail fast on an address nothing listens on (ray.init would wait minutes)."""
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise NflcError(f"--address {address}: expected HOST:PORT (the head node's GCS address, e.g. 10.0.0.5:6379)",
                        hint="or 'auto' for the cluster this machine is part of")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise NflcError(f"cannot reach a Ray cluster at {address}: {exc}",
                        hint="start one with 'ray start --head' on the head node and pass its address "
                             "(printed by that command), or omit --address for a local Ray instance") from None


class RayExecutor:
    """Groups as Ray tasks: ``workers`` at a time (default: as many as the cluster's CPUs,
    or its GPUs over ``gpus_per_worker``), each with ``cpus_per_worker`` CPU threads and
    ``gpus_per_worker`` GPUs (a fraction lets several populations share one GPU)."""

    name = "ray"

    def __init__(self, address: Optional[str] = None, workers: Optional[int] = None, gpus_per_worker: float = 0.0,
                 cpus_per_worker: int = 1, init_kwargs: Optional[dict[str, Any]] = None):
        if workers is not None and workers < 1:
            raise NflcError(f"--workers must be at least 1, got {workers}")
        if not gpus_per_worker >= 0:
            raise NflcError(f"--gpus-per-worker must be 0 or more, got {gpus_per_worker:g}")
        if cpus_per_worker < 1:
            raise NflcError(f"CPUs per worker must be at least 1, got {cpus_per_worker}")
        self.address, self.workers, self.gpus_per_worker = address, workers, gpus_per_worker
        self.cpus_per_worker = cpus_per_worker
        self.init_kwargs = init_kwargs or {}
        self._started = False
        self.submitted = 0  # groups handed to Ray (retries included)

    def prepare(self, config: TrainConfig) -> None:
        try:
            import ray  # ray: an optional extra (pip install nflc[ray])
        except ImportError:
            raise NflcError("--executor ray needs Ray, which is not installed",
                            hint="pip install 'nflc[ray]'") from None
        kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR", **self.init_kwargs)
        if self.address and self.address != "auto":
            _probe(self.address)
        if ray.is_initialized():
            pass  # a caller (a notebook, a test) connected already: use that cluster
        elif self.address:
            try:
                ray.init(address=self.address, **kwargs)
            except (ConnectionError, RuntimeError) as exc:
                raise NflcError(f"cannot join the Ray cluster at {self.address}: {exc}",
                                hint="check the address printed by 'ray start --head'") from None
            self._started = True
        else:
            cpus = (self.workers or os.cpu_count() or 1) * self.cpus_per_worker
            with _without(RAY_ADDRESS):  # private: neither RAY_ADDRESS nor a cluster running here is joined
                ray.init(address="local", num_cpus=cpus, **kwargs)
            self._started = True
        resources = ray.cluster_resources()
        gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
        if self.gpus_per_worker > 0 and gpus < self.gpus_per_worker:
            self.close()
            raise NflcError(f"--gpus-per-worker {self.gpus_per_worker:g}: the Ray cluster has {gpus:g} GPU(s)",
                            hint="drop --gpus-per-worker to train on CPUs, or add GPU nodes")
        if cpus < self.cpus_per_worker:
            self.close()
            raise NflcError(f"the Ray cluster has {cpus:g} CPU(s); a worker needs {self.cpus_per_worker}")
        if self.workers is None:
            by_cpu = int(cpus // self.cpus_per_worker)
            by_gpu = int(gpus // self.gpus_per_worker) if self.gpus_per_worker > 0 else by_cpu
            self.workers = max(1, min(by_cpu, by_gpu))

    def run(self, plan: Plan, dataset: tuple[Dataset, Dataset], config: TrainConfig, checkpoint_every: int,
            handle: Callable[[Group, Event], None], failed: Callable[[Group, BaseException], None]) -> None:
        import ray  # ray: an optional extra (pip install nflc[ray])
        from ray.exceptions import RayError  # ray: an optional extra (pip install nflc[ray])

        data = ray.put(dataset)  # once in the object store, not once per group
        task = ray.remote(_stream_group).options(num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker,
                                                 max_retries=0)
        running: dict[Any, Group] = {}

        def submit() -> None:
            group = plan.take()
            if group is not None:
                running[task.remote(group, data, config, checkpoint_every, self.cpus_per_worker)] = group
                self.submitted += 1

        try:
            for _ in range(self.workers or 1):
                submit()
            while running:
                ready, _ = ray.wait(list(running), num_returns=1)
                stream = ready[0]
                group = running[stream]
                try:
                    ref = next(stream)  # type: ignore[arg-type]  # an ObjectRefGenerator
                except StopIteration:
                    del running[stream]
                    submit()
                    continue
                try:
                    event = ray.get(ref)
                except RayError as exc:  # the task raised, or its worker died
                    del running[stream]
                    failed(group, exc)
                    submit()
                    continue
                handle(group, event)
        finally:
            for stream in running:  # interrupted (Ctrl-C, a store error): stop the rest
                ray.cancel(stream, force=True)

    def close(self) -> None:
        if self._started:
            import ray  # ray: an optional extra (pip install nflc[ray])

            ray.shutdown()
            self._started = False
