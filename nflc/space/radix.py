"""Mixed-radix numbers: an architecture's index and its digits (one per choice).

A space numbers its architectures in the full product of its choices, the last digit
varying fastest: ``decode(encode(d, r), r) == d`` for digits ``0 <= d[k] < r[k]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def radix_product(radices: Sequence[int]) -> int:
    """How many numbers the radices write (1 for none)."""
    return math.prod(radices) if radices else 1


def decode(index: int, radices: Sequence[int]) -> tuple[int, ...]:
    """The digits of ``index`` (most significant first)."""
    out = []
    for r in reversed(radices):
        index, d = divmod(index, r)
        out.append(d)
    return tuple(reversed(out))


def encode(digits: Sequence[int], radices: Sequence[int]) -> int:
    """The number whose digits are ``digits`` (most significant first)."""
    index = 0
    for d, r in zip(digits, radices, strict=False):
        index = index * r + d
    return index
