"""Training-free ranking against a benchmark file (NAS-Bench-201 results format).

The file is JSON with an ``architectures`` list; each entry has ``arch_str`` (an id of the
space), ``val_accuracy``, and any number of numeric proxy columns (plus optional
``proxy_seconds``). nflc scores every listed architecture without data or training and
compares its ranking with every proxy's on the same architectures.
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

from nflc.errors import NflcError, SpaceError, did_you_mean

_NOT_PROXIES = {"arch_str", "val_accuracy", "naslib_op_indices", "proxy_seconds", "test_accuracy"}


def _cell_score(name: str) -> Callable:
    from nflc.analysis.rank_score import rank_score

    def topo(attr):
        return lambda a: float(getattr(a.topology(), attr))

    scores: dict[str, Callable] = {
        "nflc": lambda a: sum(rank_score(g) for g in a.cell_graphs.values()),
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
    arch_str: str
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
        missing = [k for k in ("arch_str", "val_accuracy") if k not in a]
        if missing:
            problems.append(f"entry {i}: missing {', '.join(repr(m) for m in missing)}")
            continue
        acc = a["val_accuracy"]
        if not isinstance(acc, (int, float)) or isinstance(acc, bool) or not math.isfinite(acc):
            problems.append(f"entry {i} ({a['arch_str']}): val_accuracy is not a finite number: {acc!r}")
            continue
        proxies = {k: float(v) for k, v in a.items() if k not in _NOT_PROXIES and isinstance(v, (int, float))
                   and not isinstance(v, bool)}
        secs = a.get("proxy_seconds") or {}
        entries.append(Entry(arch_str=str(a["arch_str"]), accuracy=float(acc), proxies=proxies,
                             proxy_seconds={k: float(v) for k, v in secs.items() if isinstance(v, (int, float))}))
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise NflcError(f"{path}: {len(problems)} malformed entr{'y' if len(problems) == 1 else 'ies'}: {shown}")
    return entries


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
    archs = []
    for i, e in enumerate(entries):
        try:
            archs.append(space.architecture(e.arch_str))
        except SpaceError as exc:
            raise NflcError(f"{benchmark}: entry {i} ({e.arch_str!r}) is not an architecture of space "
                            f"'{space.name}': {exc}", hint=exc.diagnostics[0].hint) from None
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
    per_arch = [{"arch_str": e.arch_str, "score": (v if math.isfinite(v) else ("-inf" if v < 0 else "inf"))}
                for e, v in zip(entries, values, strict=True)]
    return RankResult(benchmark=str(benchmark), space=space.name, score=score, n=len(entries),
                      nflc_seconds_total=elapsed, table=rows, per_arch=per_arch)
