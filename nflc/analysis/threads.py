"""How many compute threads nflc uses (``analyze``, ``verify``, the examples and the
benchmarks), and limiting numpy/scipy/torch to them.

On a machine whose cores are shared with other jobs, BLAS and torch's default of one
thread per core oversubscribes: threads spin at barriers waiting for a core another job
holds (``nflc analyze specs/nfl_h3.nfl`` took 32-78 s with the default threads on a busy
2-core machine against 11 s with one). The default here counts the cores this process
may run on (``os.sched_getaffinity``), subtracts the ones other jobs keep busy (the
1-minute load average, rounded up), and never goes above what the matrices can use
(one thread per 256 kernel rows: an N x N eigendecomposition with N = 256 does not
speed up with more), nor below one.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Iterator, Mapping

ROWS_PER_THREAD = 256


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def load_average() -> float | None:
    """The 1-minute load average (runnable processes), or None where there is none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _env_threads(env: Mapping[str, str]) -> int | None:
    for name in ("NFLC_THREADS", "OMP_NUM_THREADS"):
        v = env.get(name, "").strip()
        if v.isascii() and v.isdigit() and int(v) > 0:
            return int(v)
    return None


def choose_threads(requested: int | None = None, *, rows: int | None = None, cpus: int | None = None,
                   load: float | None = None, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """``(threads, why)`` for an analysis whose largest matrices have ``rows`` rows.

    ``requested`` (``--threads N``) wins; then ``NFLC_THREADS`` / ``OMP_NUM_THREADS`` set
    to a positive integer; else ``min(cpus - ceil(load), ceil(rows / 256))``, at least 1.
    ``cpus`` and ``load`` default to this process's affinity mask and the 1-minute load
    average (unknown load: half the cores are assumed busy).
    """
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads must be at least 1, got {requested}")
        return requested, "--threads"
    from_env = _env_threads(os.environ if env is None else env)
    if from_env is not None:
        return from_env, "from the environment (NFLC_THREADS / OMP_NUM_THREADS)"
    cpus = cpu_count() if cpus is None else cpus
    load = load_average() if load is None else load
    busy = math.ceil(cpus / 2) if load is None else math.ceil(max(0.0, load) - 1e-9)
    free = cpus - busy
    useful = math.ceil(rows / ROWS_PER_THREAD) if rows else cpus
    n = max(1, min(free, useful, cpus))
    return n, f"{cpus} core(s), load {load:.1f}" if load is not None else f"{cpus} core(s), load unknown"


@contextlib.contextmanager
def limit_threads(n: int) -> Iterator[None]:
    """At most ``n`` threads in numpy/scipy's BLAS and OpenMP (threadpoolctl) and in torch
    (intra-op), restored on exit."""
    import torch  # torch: loaded only when a network is built or trained

    # torch's count is read before threadpoolctl changes OpenMP's, which torch reports as its
    # own: read after, it would "restore" n and leave torch's BLAS on n spinning threads
    before = torch.get_num_threads()
    try:
        from threadpoolctl import threadpool_limits  # threadpoolctl: loaded only when threads are limited
    except ImportError:  # BLAS then keeps its own setting
        limits = None
    else:
        limits = threadpool_limits(limits=n)
    torch.set_num_threads(n)
    try:
        yield
    finally:
        if limits is not None:  # last in, first out: the BLAS and OpenMP limits, then torch's
            limits.restore_original_limits()
        torch.set_num_threads(before)


def set_threads(n: int) -> None:
    """At most ``n`` threads in numpy/scipy's BLAS and OpenMP and in torch for the rest of
    the process (a script's whole run; :func:`limit_threads` restores them)."""
    try:
        from threadpoolctl import threadpool_limits  # threadpoolctl: loaded only when threads are limited
    except ImportError:
        pass
    else:
        threadpool_limits(limits=n)
    import torch  # torch: loaded only when a network is built or trained

    torch.set_num_threads(n)


def script_threads(requested: int | None = None, *, rows: int | None = None) -> tuple[int, str]:
    """For examples and benchmarks: :func:`choose_threads` (``--threads``, then
    ``NFLC_THREADS``/``OMP_NUM_THREADS``, then the cores other jobs leave free), applied to
    the whole process with :func:`set_threads`; ``(threads, why)``."""
    n, why = choose_threads(requested, rows=rows)
    set_threads(n)
    return n, why
