"""Training-free ranking against a benchmark file of NAS-Bench-201, -101 or -301 results.

The file is JSON with an ``architectures`` list. Each entry names its architecture in any
encoding :func:`nflc.encodings.entry_id` reads (``arch_str`` or ``naslib_op_indices``;
``matrix``/``ops`` or ``naslib_tuple``; ``genotype`` or ``naslib_compact``; or an nflc
``id``), so NASLib's zero-cost files are read as they are; it has ``val_accuracy`` and any
number of numeric proxy columns, with each proxy's seconds either in a ``proxy_seconds``
object or as ``<proxy>_seconds`` keys. nflc scores every listed architecture without data or
training and compares its ranking with every proxy's on the same architectures.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
from pydantic import BaseModel
from scipy.stats import kendalltau, spearmanr

from nflc.encodings import ENCODING_KEYS, EncodingError, entry_id, not_in_space
from nflc.errors import NflcError, SpaceError, did_you_mean

_NOT_PROXIES = ENCODING_KEYS | {"val_accuracy", "proxy_seconds", "test_accuracy"}
_SECONDS = "_seconds"  # NAS-Bench-301's file: `<proxy>_seconds` is that proxy's time, not a proxy


def _cell_score(name: str) -> Callable:
    from nflc.analysis.rank_score import architecture_score

    def topo(attr):
        return lambda a: float(getattr(a.topology(), attr))

    scores: dict[str, Callable] = {
        "nflc": architecture_score,  # node cells too (their graphs alone lack projections and node ops)
        "paths": topo("paths"),
        "mean_depth": topo("mean_depth"),
        "params": lambda a: float(a.params),
        "flops": lambda a: float(a.flops),
    }
    if name not in scores:
        raise NflcError(f"unknown score '{name}'", hint=did_you_mean(name, scores) or "one of: " + ", ".join(scores))
    return scores[name]


SCORES = ("nflc", "paths", "mean_depth", "params", "flops")


class Entry(BaseModel):
    id: str  # nflc's id of the entry's own graph (not necessarily its class representative)
    accuracy: float
    proxies: dict[str, float]
    proxy_seconds: dict[str, float]


class Correlation(BaseModel):
    name: str
    kendall_tau: float | None
    spearman_rho: float | None
    top5_precision: float | None
    best_rank: float | None  # rank (1 = top) this column gives the most accurate architecture
    seconds_per_arch: float | None


class RankResult(BaseModel):
    benchmark: str
    space: str
    score: str
    n: int
    nflc_seconds_total: float
    table: list[Correlation]  # nflc's row first, then every proxy present
    per_arch: list[dict]


def read_benchmark(path: str | Path) -> list[Entry]:
    """Parse and validate the file; every malformed entry is reported, none dropped."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise NflcError(f"cannot read benchmark file {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise NflcError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    archs = doc.get("architectures") if isinstance(doc, dict) else None
    if not isinstance(archs, list):
        raise NflcError(f"{path}: expected an object with an 'architectures' list",
                        hint='{"architectures": [{"arch_str": "...", "val_accuracy": 93.1, "nwot": ...}, ...]}')
    if not archs:
        raise NflcError(f"{path}: the 'architectures' list is empty")
    problems, entries = [], []
    for i, a in enumerate(archs):
        if not isinstance(a, dict):
            problems.append(f"entry {i}: not an object")
            continue
        if "val_accuracy" not in a:
            problems.append(f"entry {i}: missing 'val_accuracy'")
            continue
        try:
            ident = entry_id(a)
        except EncodingError as exc:
            problems.append(f"entry {i}: {exc}")
            continue
        acc = a["val_accuracy"]
        if not _number(acc) or not math.isfinite(acc):
            problems.append(f"entry {i} ({ident}): val_accuracy is not a finite number: {acc!r}")
            continue
        secs = a.get("proxy_seconds") or {}
        secs = {k: float(v) for k, v in secs.items() if _number(v)} if isinstance(secs, dict) else {}
        secs.update({k[: -len(_SECONDS)]: float(v) for k, v in a.items() if k.endswith(_SECONDS) and _number(v)})
        proxies = {k: float(v) for k, v in a.items() if k not in _NOT_PROXIES and not k.endswith(_SECONDS) and _number(v)}
        entries.append(Entry(id=ident, accuracy=float(acc), proxies=proxies, proxy_seconds=secs))
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise NflcError(f"{path}: {len(problems)} malformed entr{'y' if len(problems) == 1 else 'ies'}: {shown}")
    return entries


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def top_precision(score: np.ndarray, acc: np.ndarray, fraction: float = 0.05) -> float:
    """Expected share of the top ``fraction`` by score that are in the top by accuracy
    (ties at the cut-off counted by their expected share, not by input order)."""
    n = len(score)
    k = max(1, math.ceil(fraction * n))
    true_top = set(np.argsort(-acc, kind="stable")[:k])
    cut = np.sort(score)[::-1][k - 1]
    above = [i for i in range(n) if score[i] > cut]
    tied = [i for i in range(n) if score[i] == cut]
    hits = sum(i in true_top for i in above) + (k - len(above)) * sum(i in true_top for i in tied) / len(tied)
    return hits / k


def best_rank(score: np.ndarray, acc: np.ndarray) -> float:
    """Rank the score gives the most accurate architecture (1 = top; ties share the mean)."""
    b = int(np.argmax(acc))
    higher = int(np.sum(score > score[b]))
    ties = int(np.sum(score == score[b]))
    return higher + (ties + 1) / 2


def correlate(name: str, score: np.ndarray, acc: np.ndarray, seconds: float | None) -> Correlation:
    ok = np.isfinite(score)
    s = score[ok]
    if len(s) < 2 or np.all(s == s[0]):
        return Correlation(name=name, kendall_tau=None, spearman_rho=None, top5_precision=None, best_rank=None,
                           seconds_per_arch=seconds)
    # -inf (no input-output path) sorts last: rank correlations use the ordering only
    ranked = np.where(np.isfinite(score), score, np.nanmin(s) - 1.0)
    return Correlation(name=name, kendall_tau=float(kendalltau(ranked, acc).statistic),
                       spearman_rho=float(spearmanr(ranked, acc).statistic),
                       top5_precision=top_precision(ranked, acc), best_rank=best_rank(ranked, acc),
                       seconds_per_arch=seconds)


def rank(space, benchmark: str | Path, score: str = "nflc") -> RankResult:
    entries = read_benchmark(benchmark)
    fn = _cell_score(score)
    archs, problems = [], []
    for i, e in enumerate(entries):
        try:
            a = space.architecture(e.id)
            why = not_in_space(a)  # a graph isomorphic to a kept one is in the space (NB101's file)
        except SpaceError as exc:
            problems.append((f"entry {i} ({e.id}) is not an architecture of space '{space.name}': {exc}",
                             exc.diagnostics[0].hint))
            continue
        if why is not None:
            problems.append((f"entry {i} ({e.id}) is not in space '{space.name}': {why}", None))
        archs.append(a)
    if problems:
        shown = "; ".join(m for m, _ in problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise NflcError(f"{benchmark}: {shown}", hint=problems[0][1])
    t0 = time.perf_counter()
    values = np.array([fn(a) for a in archs], dtype=float)
    elapsed = time.perf_counter() - t0
    acc = np.array([e.accuracy for e in entries])
    rows = [correlate(f"nflc:{score}", values, acc, elapsed / len(entries))]
    names = sorted({k for e in entries for k in e.proxies})
    for name in names:
        col = np.array([e.proxies.get(name, np.nan) for e in entries])
        secs = [e.proxy_seconds[name] for e in entries if name in e.proxy_seconds]
        rows.append(correlate(name, col, acc, float(np.mean(secs)) if secs else None))
    per_arch = [{"entry": i, "id": e.id, "params": a.params,
                 "score": (v if math.isfinite(v) else ("-inf" if v < 0 else "inf"))}
                for i, (e, a, v) in enumerate(zip(entries, archs, values, strict=True))]
    return RankResult(benchmark=str(benchmark), space=space.name, score=score, n=len(entries),
                      nflc_seconds_total=elapsed, table=rows, per_arch=per_arch)
