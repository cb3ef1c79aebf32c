"""Training-free ranking against a benchmark file of NAS-Bench-201, -101 or -301 results,
and scoring architectures without accuracies (``nflc score``, :func:`score_architectures`).

A benchmark file is JSON in one of two forms:

- nflc's: an object with an ``architectures`` list. Each entry names its architecture in any
  encoding :func:`nflc.encodings.entry_id` reads (``arch_str`` or ``naslib_op_indices``;
  ``matrix``/``ops`` or ``naslib_tuple``; ``genotype`` or ``naslib_compact``; or an nflc
  ``id``); it has ``val_accuracy`` and any number of numeric proxy columns, with each
  proxy's seconds either in a ``proxy_seconds`` object or as ``<proxy>_seconds`` keys;
- NAS-Bench-Suite-Zero's, as NASLib publishes it (``zc_nasbench201.json``,
  ``zc_nasbench101.json``, ``zc_nasbench301.json``): ``{dataset: {str(arch): {"id": ...,
  "val_accuracy": ..., proxy: {"score": ..., "time": ...}, ...}}}`` where ``str(arch)`` is
  NASLib's hash of the architecture printed as a Python tuple (NAS-Bench-201's six op
  indices, NAS-Bench-101's flattened matrix and op codes, DARTS's compact form) and ``id``
  is NASLib's own running number (not an nflc id); :func:`naslib_entries` turns one
  dataset's table into nflc's entries.

nflc scores every listed architecture without data or training and compares its ranking
with every proxy's on the same architectures.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Iterable

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


def _read_json(path: str | Path) -> object:
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise NflcError(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise NflcError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise NflcError(f"{path}: not a JSON text file ({exc.reason} at byte {exc.start})") from None


# NASLib's hash printed as a tuple -> the entry key nflc's format gives that encoding
_NASLIB_KEYS = {"op_indices": "naslib_op_indices", "naslib_tuple": "naslib_tuple", "compact": "naslib_compact"}


def _is_arch_table(d: object) -> bool:
    """A NASLib zero-cost table: keys are architectures printed as tuples."""
    return isinstance(d, dict) and bool(d) and all(isinstance(k, str) and k.lstrip()[:1] in "([" for k in d)


def naslib_entries(doc: dict, path: str | Path, dataset: str | None = None) -> list[dict]:
    """nflc's entries from NAS-Bench-Suite-Zero's JSON as NASLib publishes it: the table of
    ``dataset`` (default: ``cifar10`` when present, else the file's only one), or the file
    itself when it is one table (``get_zc_benchmark_api``'s result saved as is)."""
    from nflc.encodings import detect_format, parse_value

    if _is_arch_table(doc):
        table, name = doc, None
    else:
        tables = {k: v for k, v in doc.items() if _is_arch_table(v)}
        if not tables:
            raise NflcError(f"{path}: neither an object with an 'architectures' list nor NAS-Bench-Suite-Zero's "
                            "zero-cost JSON ({dataset: {\"(arch tuple)\": {\"val_accuracy\": ..., proxy: {\"score\": ...}}}})",
                            hint='nflc\'s own form: {"architectures": [{"arch_str": "...", "val_accuracy": 93.1, "nwot": ...}]}')
        if dataset is None:
            dataset = "cifar10" if "cifar10" in tables else (next(iter(tables)) if len(tables) == 1 else None)
            if dataset is None:
                raise NflcError(f"{path} holds the results of {len(tables)} datasets: {', '.join(tables)}",
                                hint="pick one with --benchmark-dataset NAME")
        if dataset not in tables:
            raise NflcError(f"{path} has no dataset {dataset!r}; it has {', '.join(tables)}",
                            hint=did_you_mean(dataset, tables) or "pick one with --benchmark-dataset NAME")
        table, name = tables[dataset], dataset
    out, problems = [], []
    for i, (key, raw) in enumerate(table.items()):
        try:
            value = parse_value(key)
            key_name = _NASLIB_KEYS.get(detect_format(value))
        except EncodingError as exc:
            problems.append(f"entry {i} {key[:60]!r}: {exc}")
            continue
        if key_name is None or not isinstance(raw, dict):
            problems.append(f"entry {i} {key[:60]!r}: not a NAS-Bench-201/-101/-301 architecture with an object of results")
            continue
        entry: dict = {key_name: value}
        seconds = {}
        for k, v in raw.items():
            if k == "id":  # NASLib's running number, not an nflc id
                continue
            if isinstance(v, dict) and "score" in v:
                entry[k] = v["score"]
                if _number(v.get("time")):
                    seconds[k] = v["time"]
            else:
                entry[k] = v
        entry["proxy_seconds"] = seconds
        out.append(entry)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        where = f" (dataset {name})" if name else ""
        raise NflcError(f"{path}{where}: {len(problems)} entr{'y' if len(problems) == 1 else 'ies'} not read: {shown}")
    return out


def benchmark_entries(path: str | Path, dataset: str | None = None) -> list:
    """The raw entries of a benchmark file in either form (module docstring)."""
    doc = _read_json(path)
    archs = doc.get("architectures") if isinstance(doc, dict) else None
    if isinstance(archs, list):
        if dataset is not None:
            raise NflcError(f"--benchmark-dataset {dataset}: {path} is nflc's form, one dataset's results",
                            hint="drop --benchmark-dataset")
        return archs
    if isinstance(doc, dict):
        return naslib_entries(doc, path, dataset)
    raise NflcError(f"{path}: expected an object with an 'architectures' list, or NAS-Bench-Suite-Zero's zero-cost JSON",
                    hint='{"architectures": [{"arch_str": "...", "val_accuracy": 93.1, "nwot": ...}, ...]}')


def read_benchmark(path: str | Path, dataset: str | None = None) -> list[Entry]:
    """Parse and validate the file; every malformed entry is reported, none dropped."""
    archs = benchmark_entries(path, dataset)
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


def rank(space, benchmark: str | Path, score: str = "nflc", dataset: str | None = None) -> RankResult:
    entries = read_benchmark(benchmark, dataset)
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


# ---------------------------------------------------------------------------------------
# scores without accuracies (nflc score, nflc.score)


class ArchScore(BaseModel):
    index: int
    id: str
    params: int
    score: float  # -inf: no input-output path (ranks last)


def score_architectures(archs: Iterable, score: str = "nflc") -> list[ArchScore]:
    """nflc's data-free score of each architecture, in order (higher = predicted better;
    ``score`` as in :data:`SCORES`). What a search loop calls instead of training."""
    fn = _cell_score(score)
    return [ArchScore(index=a.index, id=a.id, params=a.params, score=float(fn(a))) for a in archs]


def _item_architecture(space, item: object):
    """One architecture of ``--from-file``: an id or index, an encoding's value (op
    indices, a NASLib tuple, ``(matrix, ops)``, a genotype, a compact form), or an entry
    object with an encoding key (a benchmark file's entry, accuracy optional)."""
    from nflc.encodings import detect_format, parse_value, to_id

    if isinstance(item, dict) and any(k in item for k in ("id", "arch_str", "matrix", "genotype", "naslib_tuple",
                                                          "naslib_op_indices", "naslib_compact")):
        return space.architecture(entry_id(item))
    if isinstance(item, str):
        try:
            return space.architecture(item)
        except SpaceError as not_an_id:
            try:
                value = parse_value(item)  # a genotype or tuple written as text
            except EncodingError:
                raise not_an_id from None
            if isinstance(value, (str, int)):
                raise not_an_id from None
            return space.architecture(to_id(value, detect_format(value)))
    fmt = detect_format(item)
    return space.architecture(item if fmt == "id" else to_id(item, fmt))


def architectures_from_file(space, path: str | Path, dataset: str | None = None) -> list:
    """The architectures a JSON file lists, in its order: a list of items
    (:func:`_item_architecture`), nflc's benchmark form (accuracies not needed) or
    NAS-Bench-Suite-Zero's. Every item that is malformed or not in the space is reported
    at once."""
    doc = _read_json(path)
    if isinstance(doc, list):
        items = doc
    elif isinstance(doc, dict):
        items = benchmark_entries(path, dataset)
    else:
        raise NflcError(f"{path}: expected a JSON list of architectures (ids, encodings or entries)",
                        hint='["|nor_conv_3x3~0|+|...|", [0, 1, 2, 3, 4, 0], {"genotype": ...}]')
    if not items:
        raise NflcError(f"{path}: no architectures")
    archs, problems = [], []
    for i, item in enumerate(items):
        try:
            a = _item_architecture(space, item)
            why = not_in_space(a)
        except (EncodingError, SpaceError) as exc:
            problems.append(f"item {i}: {exc}")
            continue
        if why is not None:
            problems.append(f"item {i} ({a.id}) is not in space '{space.name}': {why}")
            continue
        archs.append(a)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise NflcError(f"{path}: {len(problems)} of {len(items)} item(s) not read: {shown}")
    return archs
