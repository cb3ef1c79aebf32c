"""Measure the kernels of many architectures: cached, spread over processes, with progress.

:func:`measure_all` returns, in input order, each architecture's
:class:`~nflc.analysis.rank_components.Kernels` or the reason they could not be computed
(a string). Architectures with the same computing graph (:func:`nflc.analysis.score_cache.cache_key`)
are measured once, on the first of them in input order, so the numbers do not depend on
``jobs``. With a :class:`~nflc.analysis.score_cache.KernelCache`, hits are read and every new
measurement is stored as it arrives (an interrupted run keeps what it finished).

``jobs > 1`` spreads the measurements over that many worker processes (spawned, one thread
each: the measurements are small, so processes scale where threads would contend); every
worker receives the space once, at start-up. The Ray executor of ``nflc verify`` is not
used: it streams training epochs of long-running groups, while a measurement here is a
second or so of work whose result is a few kilobytes, which a process pool hands back
directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable, Sequence

from nflc.analysis.rank_components import KernelFailure, Kernels, KernelSettings, measure_kernels
from nflc.analysis.score_cache import KernelCache, cache_key
from nflc.analysis.threads import limit_threads

if TYPE_CHECKING:
    from nflc.space import Architecture, Space

__all__ = ["Result", "measure_all"]

Result = Kernels | str  # the kernels, or why they could not be computed
Progress = Callable[[int, int], None]  # (done, total) in units of measurements

_WORKER: dict = {}


def _init_worker(space: Space, settings: KernelSettings) -> None:
    _WORKER["space"], _WORKER["settings"] = space, settings
    _WORKER["threads"] = limit_threads(1)
    _WORKER["threads"].__enter__()  # for the worker's life: one BLAS / torch thread


def _measure_one(arch: Architecture) -> Result:
    try:
        return measure_kernels(arch, _WORKER.get("settings"))
    except KernelFailure as exc:
        return str(exc)


def _measure_id(arch_id: str) -> Result:
    return _measure_one(_WORKER["space"].architecture(arch_id))


def measure_all(archs: Sequence, settings: KernelSettings, *, jobs: int = 1, cache: KernelCache | None = None,
                progress: Progress | None = None, stats: dict | None = None) -> list[Result]:
    """The kernels of every architecture of ``archs`` (one space), in order; see the module docstring.
    ``stats`` (when given) receives ``unique`` (computing graphs), ``cached``, ``measured`` and ``failed``."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    keys = [cache_key(a, settings) for a in archs]
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    found: dict[str, Result] = {}
    if cache is not None:
        for k in first:
            hit = cache.get(k)
            if hit is not None:
                found[k] = hit
    todo = [k for k in first if k not in found]
    total = len(todo)
    if stats is not None:
        stats.update(unique=len(first), cached=len(first) - total, measured=0, failed=0)
    if progress is not None:
        progress(0, total)

    def done(k: str, res: Result, count: int) -> None:
        found[k] = res
        if cache is not None and isinstance(res, Kernels):
            cache.put(k, res)
        if stats is not None:
            stats["measured" if isinstance(res, Kernels) else "failed"] += 1
        if progress is not None:
            progress(count, total)

    if not todo:
        pass
    elif jobs == 1 or len(todo) == 1:
        _WORKER["settings"] = settings
        with limit_threads(1):
            for n, k in enumerate(todo, 1):
                done(k, _measure_one(archs[first[k]]), n)
    else:
        ctx = multiprocessing.get_context("spawn")
        space = archs[first[todo[0]]].space
        with cf.ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx, initializer=_init_worker,
                                    initargs=(space, settings)) as pool:
            futures = {pool.submit(_measure_id, archs[first[k]].id): k for k in todo}
            try:
                for n, fut in enumerate(cf.as_completed(futures), 1):
                    k = futures[fut]
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a worker that died: that network failed
                        res = f"the worker measuring it failed: {type(exc).__name__}: {exc}"
                    done(k, res, n)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return [found[k] for k in keys]
