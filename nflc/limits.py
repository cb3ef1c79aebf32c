"""What nflc accepts as a setting: seeds, amounts of memory, names that may not be empty.

Each check returns the value it accepts or raises :class:`NflcError` naming the setting, so
a command refuses a bad value before any work and never mistakes an empty or meaningless
one for its default.
"""

from __future__ import annotations

import math
import os
from typing import Optional

from nflc.errors import NflcError

__all__ = ["MAX_SEED", "MAX_THREADS", "available_memory", "check_dataset_name", "check_learning_rate", "check_samples",
           "check_seed", "check_threads", "memory_size", "physical_memory"]

MAX_SEED = 2**63 - 1  # torch.manual_seed and numpy's generators take any seed in 0 .. 2^63 - 1
MAX_THREADS = 1024  # OpenMP allocates per thread up front: --threads 10^9 asks it for 200 GB
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.401298464324817e-45  # the smallest float32 above 0: a learning rate below it is 0


def check_seed(seed: int, option: str = "--seed") -> int:
    """A seed nflc's generators all take: an integer from 0 to 2^63 - 1."""
    if not 0 <= seed <= MAX_SEED:
        raise NflcError(f"{option} must be between 0 and 2^63 - 1, got {seed}", hint="e.g. --seed 0")
    return seed


def check_threads(threads: Optional[int], option: str = "--threads") -> Optional[int]:
    if threads is not None and threads < 1:
        raise NflcError(f"{option} must be at least 1, got {threads}")
    if threads is not None and threads > MAX_THREADS:
        raise NflcError(f"{option} must be at most {MAX_THREADS}, got {threads}",
                        hint=f"this machine has {os.cpu_count() or 1} cores")
    return threads


def check_learning_rate(lr: float, option: str = "--lr") -> float:
    """A learning rate the float32 weights can use: finite, above 0 and not 0 or infinite
    once rounded to float32 (``1e308`` would overflow the update, ``1e-320`` be no update)."""
    if not (math.isfinite(lr) and lr > 0):
        raise NflcError(f"{option} must be a finite number above 0, got {lr:g}")
    if lr > FLOAT32_MAX or lr < FLOAT32_TINY:
        raise NflcError(f"{option} {lr:g} is {'above' if lr > 1 else 'below'} what float32 weights can use "
                        f"({FLOAT32_TINY:.1e} to {FLOAT32_MAX:.1e})", hint="e.g. --lr 0.1")
    return lr


def check_dataset_name(name: str, option: str = "--dataset") -> str:
    """A dataset name as given (an empty one is a mistake, not the default)."""
    if not name.strip():
        raise NflcError(f"{option} is empty", hint="name a dataset (mnist5k, digits, mnist1d, gaussian) or leave the "
                                                   "option out for the default")
    return name


def check_samples(samples: int, option: str = "--samples") -> int:
    if samples < 2:
        raise NflcError(f"{option} must be at least 2, got {samples}")
    return samples


def physical_memory() -> Optional[int]:
    """Bytes of this machine's memory (None where the platform does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory() -> Optional[int]:
    """Bytes of memory a new allocation can have without swapping: Linux's MemAvailable
    (free memory and caches it can drop), else the free pages, else None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_size(text: str, option: str = "--memory") -> int:
    """Bytes from ``512M``, ``2G``, ``1.5G`` or a number of MiB: at least 1 MiB, finite,
    and no more than this machine has."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(t[-1:], None)
    num = t[:-1] if mult else t
    try:
        value = float(num) * (mult or 2**20)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not num.strip() or num.strip().lower() in ("nan", "inf", "infinity"):
        raise NflcError(f"{option} {text!r} is not an amount of memory", hint="e.g. 512M or 2G (a plain number: MiB)")
    if value < 2**20:
        raise NflcError(f"{option} {text} is below 1 MiB", hint="e.g. 512M or 2G")
    total = physical_memory()
    if total is not None and value > total:
        raise NflcError(f"{option} {text} is more than this machine's memory ({total / 2**30:.1f} GiB)",
                        hint="e.g. 512M or 2G")
    return int(value)
