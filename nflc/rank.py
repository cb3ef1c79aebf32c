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

nflc scores every listed architecture without data or training (:data:`SCORES`: the graph
score, the kernel components of :mod:`nflc.analysis.rank_components` and their aggregate,
cost) and compares each ranking with every proxy's on the same architectures: Kendall tau and
Spearman rho with bootstrap intervals, and each score's lead over the best proxy column
(:mod:`nflc.analysis.rank_stats`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np
from pydantic import BaseModel
from scipy.stats import kendalltau, spearmanr

from nflc.analysis.rank_stats import Interval, Lead
from nflc.encodings import ENCODING_KEYS, EncodingError, benchmark_architecture, entry_id, not_in_space
from nflc.errors import NflcError, SpaceError, did_you_mean

if TYPE_CHECKING:
    from nflc.space import Architecture, Space

_NOT_PROXIES = ENCODING_KEYS | {"val_accuracy", "proxy_seconds", "test_accuracy"}
_SECONDS = "_seconds"  # NAS-Bench-301's file: `<proxy>_seconds` is that proxy's time, not a proxy


# score names (`nflc rank --score`): the ranking components of nflc.analysis.rank_components,
# their aggregate, and graph features; "nflc" is the default score
DEFAULT_SCORE = "expressivity"
SCORES = ("nflc", "expressivity", "convergence", "generalization", "flops", "params", "aggregate",
          "convergence_nngp", "generalization_bound", "paths", "mean_depth")
ALL = ("expressivity", "convergence", "generalization", "flops", "params", "aggregate", "convergence_nngp",
       "generalization_bound")


def score_names(text: str) -> list[str]:
    """The scores a ``--score`` value names: one name, several joined by commas, or ``all``."""
    names: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part == "all":
            names.extend(n for n in ALL if n not in names)
            continue
        if part not in SCORES:
            raise NflcError(f"unknown score '{part}'", hint=did_you_mean(part, SCORES) or "one of: " + ", ".join(SCORES))
        if part not in names:
            names.append(part)
    if not names:
        raise NflcError(f"--score {text!r} names no score", hint="one of: " + ", ".join(SCORES) + ", or all")
    return names


def _graph_feature(name: str) -> Callable:
    def topo(attr: Any) -> Callable[[Any], float]:
        return lambda a: float(getattr(a.topology(), attr))

    return {"paths": topo("paths"), "mean_depth": topo("mean_depth"),
            "params": lambda a: float(a.params), "flops": lambda a: float(a.flops)}[name]


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
    tau_interval: Interval | None = None  # 95% bootstrap percentile intervals
    rho_interval: Interval | None = None
    undefined: str | None = None  # why the correlations are null (JSON has no NaN)


class Failure(BaseModel):
    """An architecture whose kernels could not be computed: ranked last by the kernel scores."""

    entry: int
    id: str
    reason: str


class KernelRun(BaseModel):
    """How the kernel components were obtained: the settings, what was measured, read from the
    cache or shared with an architecture of the same computing graph."""

    settings: dict
    measured: int
    cached: int
    shared: int
    failed: int
    seconds: float  # wall-clock of this run's measurements
    cache: str | None


class RankResult(BaseModel):
    benchmark: str
    space: str
    score: str
    n: int
    nflc_seconds_total: float
    table: list[Correlation]  # nflc's rows first (one per score), then every proxy present
    per_arch: list[dict]
    scores: list[str] = []
    leads: list[Lead] = []  # per nflc score: its lead over the best proxy column, with the bootstrap interval
    failures: list[Failure] = []
    kernels: KernelRun | None = None
    resamples: int = 0


def _read_json(path: str | Path, what: str = "benchmark file") -> object:
    """The JSON in ``path``, read within nflc.readers' bounds (size, nesting, digits,
    magnitude, encoding), every violation located."""
    from nflc.readers import read_json

    return read_json(path, what)


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
    why = _undefined(s, acc)
    if why is not None:  # a rank correlation would be NaN, which JSON cannot hold: null and the reason
        return Correlation(name=name, kendall_tau=None, spearman_rho=None, top5_precision=None, best_rank=None,
                           seconds_per_arch=seconds, undefined=why)
    # -inf (no input-output path) sorts last: rank correlations use the ordering only
    ranked = np.where(np.isfinite(score), score, np.nanmin(s) - 1.0)
    return Correlation(name=name, kendall_tau=float(kendalltau(ranked, acc).statistic),
                       spearman_rho=float(spearmanr(ranked, acc).statistic),
                       top5_precision=top_precision(ranked, acc), best_rank=best_rank(ranked, acc),
                       seconds_per_arch=seconds)


def _undefined(finite_scores: np.ndarray, acc: np.ndarray) -> str | None:
    """Why a score column has no rank correlation with the accuracies, or None."""
    if len(finite_scores) < 2:
        return "fewer than 2 finite scores"
    if np.all(finite_scores == finite_scores[0]):
        return "every score is the same"
    if np.all(acc == acc[0]):
        return "every accuracy is the same"
    return None


def _distinct_in_space(space: Space, benchmark: Any, entries: list[Entry]) -> tuple[list, list[int]]:
    """The distinct architectures of ``entries`` (a benchmark lists one architecture once per
    seed or dataset: 174,000 entries may name 24), each checked once before any is scored, and
    for each entry the position of its architecture among them."""
    first: dict[str, int] = {}
    where = [first.setdefault(e.id, len(first)) for e in entries]
    positions = {d: i for i, d in reversed(list(enumerate(where)))}  # each architecture's first entry
    archs = _entries_in_space(space, benchmark, [entries[positions[d]] for d in range(len(first))],
                              [positions[d] for d in range(len(first))])
    return archs, where


def _entries_in_space(space: Space, benchmark: Any, entries: list[Entry], numbers: list[int] | None = None) -> list:
    archs, problems = [], []
    for i, e in zip(numbers if numbers is not None else range(len(entries)), entries, strict=True):
        try:
            a = benchmark_architecture(space, e.id)  # a DARTS entry's cells by role
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
    return archs


def _timed(fn: Callable, archs: list) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    values = np.array([fn(a) for a in archs], dtype=float)
    return values, time.perf_counter() - t0


def score_columns(archs: list, names: list[str], *, settings: Any = None, jobs: int = 1, cache: Any = None,
                  progress: Any = None) -> tuple[dict[str, np.ndarray], dict[str, float], list[tuple[int, str]], KernelRun | None]:
    """Every score of ``names`` for every architecture: ``(values, seconds per architecture,
    failures (position, reason), how the kernels were obtained)``. Kernel components of a
    network whose kernels could not be computed are ``-inf`` (ranked last), and so is its
    aggregate; the graph features and cost are always computed."""
    from nflc.analysis import rank_components as R
    from nflc.analysis.rank_score import architecture_score

    want = [DEFAULT_SCORE if n == "nflc" else n for n in names]
    need = set(want)
    if "aggregate" in need:
        need |= set(R.AGGREGATED)
    if "generalization_bound" in need:
        need.add("expressivity")
    n = len(archs)
    values: dict[str, np.ndarray] = {}
    secs: dict[str, float] = {}
    for name in ("expressivity", "flops", "params", "paths", "mean_depth"):
        if name in need:
            fn = architecture_score if name == "expressivity" else _graph_feature(name)
            values[name], total = _timed(fn, archs)
            secs[name] = total / n
    failures: list[tuple[int, str]] = []
    run = None
    if need & set(R.KERNEL_COMPONENTS):
        from nflc.analysis.rank_runner import measure_all

        settings = settings or R.KernelSettings()
        stats: dict = {}
        t0 = time.perf_counter()
        results = measure_all(archs, settings, jobs=jobs, cache=cache, progress=progress, stats=stats)
        wall = time.perf_counter() - t0
        kern = [r if isinstance(r, R.Kernels) else None for r in results]
        failures = [(i, r) for i, r in enumerate(results) if isinstance(r, str)]
        measured = [r.seconds for r in kern if r is not None]
        kernel_secs = float(np.mean(measured)) if measured else float("nan")
        expr = values.get("expressivity", np.zeros(n))
        for name in R.KERNEL_COMPONENTS:
            if name in need:
                values[name] = np.array([R.component(name, k, float(e)) for k, e in zip(kern, expr, strict=True)])
                secs[name] = kernel_secs + (secs["expressivity"] if name == "generalization_bound" else 0.0)
        run = KernelRun(settings=settings.model_dump(), measured=stats["measured"], cached=stats["cached"],
                        shared=n - stats["unique"], failed=len(failures), seconds=wall,
                        cache=str(cache.path) if cache is not None else None)
    if "aggregate" in need:
        last = ~np.isfinite(values["expressivity"])
        last[[i for i, _ in failures]] = True
        values["aggregate"] = R.aggregate([values[c] for c in R.AGGREGATED], last=last)
        # convergence and generalization share one measurement
        secs["aggregate"] = secs["expressivity"] + secs["flops"] + secs["convergence"]
    out = {name: values[DEFAULT_SCORE if name == "nflc" else name] for name in names}
    out_secs = {name: secs[DEFAULT_SCORE if name == "nflc" else name] for name in names}
    return out, out_secs, failures, run


def rank(space: Space, benchmark: str | Path, score: str = "nflc", dataset: str | None = None, *, settings: Any = None,
         jobs: int = 1, cache: Any = None, progress: Any = None, resamples: int = 1000, seed: int = 0) -> RankResult:
    """Score every architecture of a benchmark file and compare each score's ranking with its
    accuracy, next to every proxy column: Kendall tau, Spearman rho and their bootstrap
    intervals (``resamples``; 0: none), and each score's lead over the best proxy column."""
    from nflc.analysis.rank_stats import bootstrap, interval, lead

    names = score_names(score)
    if jobs < 1:
        raise NflcError(f"--jobs must be at least 1, got {jobs}", hint="--jobs 1 measures in this process")
    if resamples < 0:
        raise NflcError(f"--bootstrap must be at least 0, got {resamples}")
    entries = read_benchmark(benchmark, dataset)
    distinct, where = _distinct_in_space(space, benchmark, entries)
    t0 = time.perf_counter()
    scored, secs, failed, run = score_columns(distinct, names, settings=settings, jobs=jobs, cache=cache,
                                              progress=progress)
    elapsed = time.perf_counter() - t0
    # every entry takes its architecture's scores
    archs = [distinct[d] for d in where]
    values = {name: column[where] for name, column in scored.items()}
    why_failed = dict(failed)
    failures = [(i, why_failed[d]) for i, d in enumerate(where) if d in why_failed]
    acc = np.array([e.accuracy for e in entries])
    rows = [correlate(f"nflc:{name}", values[name], acc, secs[name]) for name in names]
    columns = {f"nflc:{name}": values[name] for name in names}
    proxy_names = sorted({k for e in entries for k in e.proxies})
    for name in proxy_names:
        col = np.array([e.proxies.get(name, np.nan) for e in entries])
        proxy_secs = [e.proxy_seconds[name] for e in entries if name in e.proxy_seconds]
        rows.append(correlate(name, col, acc, float(np.mean(proxy_secs)) if proxy_secs else None))
        columns[name] = col
    leads: list[Lead] = []
    used = 0
    if resamples and len(entries) >= 3:
        ok = [r.name for r in rows if r.kendall_tau is not None]
        taus, rhos, used = bootstrap({k: columns[k] for k in ok}, acc, resamples=resamples, seed=seed)
        for r in rows:
            if r.name in taus:  # an interval of no finite resample is left out (null), not NaN
                r.tau_interval, r.rho_interval = _finite(interval(taus[r.name])), _finite(interval(rhos[r.name]))
        proxies = [r for r in rows if r.name in proxy_names and r.kendall_tau is not None]
        if proxies:
            best = max(proxies, key=lambda r: r.kendall_tau or 0.0)
            for r in rows[: len(names)]:
                if r.kendall_tau is not None:
                    found = lead(r.name, best.name, r.kendall_tau, best.kendall_tau or 0.0, taus)
                    if _finite(found.interval) is not None:
                        leads.append(found)
    per_arch = []
    for i, (e, a) in enumerate(zip(entries, archs, strict=True)):
        row: dict = {"entry": i, "id": e.id, "params": a.params}
        for name in names:
            row["score" if name == names[0] else name] = _json_number(float(values[name][i]))
        per_arch.append(row)
    return RankResult(benchmark=str(benchmark), space=space.name, score=names[0], n=len(entries),
                      nflc_seconds_total=elapsed, table=rows, per_arch=per_arch, scores=names, leads=leads,
                      failures=[Failure(entry=i, id=entries[i].id, reason=why) for i, why in failures],
                      kernels=run, resamples=used)


def _finite(ci: Interval) -> Interval | None:
    return ci if math.isfinite(ci.low) and math.isfinite(ci.high) else None


def _json_number(v: float) -> float | str:
    return v if math.isfinite(v) else ("-inf" if v < 0 else ("inf" if v > 0 else "nan"))


# ---------------------------------------------------------------------------------------
# scores without accuracies (nflc score, nflc.score)


class ArchScore(BaseModel):
    index: int
    id: str
    params: int
    score: float  # -inf: no input-output path (ranks last)


def score_architectures(archs: Iterable, score: str = "nflc", *, settings: Any = None, jobs: int = 1, cache: Any = None,
                        progress: Any = None) -> list[ArchScore]:
    """nflc's data-free score of each architecture, in order (higher = predicted better;
    ``score`` one of :data:`SCORES`). What a search loop calls instead of training. The
    kernel scores measure each network (``settings``, ``jobs``, ``cache`` as for :func:`rank`;
    a network that cannot be measured scores ``-inf``), and ``aggregate`` ranks the
    architectures among themselves."""
    archs = list(archs)
    names = score_names(score)
    if len(names) != 1:
        raise NflcError(f"score {score!r} names {len(names)} scores; give one", hint="one of: " + ", ".join(SCORES))
    if not archs:
        return []
    values, _, _, _ = score_columns(archs, names, settings=settings, jobs=jobs, cache=cache, progress=progress)
    return [ArchScore(index=a.index, id=a.id, params=a.params, score=float(v))
            for a, v in zip(archs, values[names[0]], strict=True)]


def _item_architecture(space: Space, item: object) -> Architecture:
    """One architecture of ``--from-file``: an id or index, an encoding's value (op
    indices, a NASLib tuple, ``(matrix, ops)``, a genotype, a compact form), or an entry
    object with an encoding key (a benchmark file's entry, accuracy optional)."""
    from nflc.encodings import architecture_from, detect_format, parse_value

    if isinstance(item, dict) and any(k in item for k in ("id", "arch_str", "matrix", "genotype", "naslib_tuple",
                                                          "naslib_op_indices", "naslib_compact")):
        return benchmark_architecture(space, entry_id(item))
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
            return architecture_from(space, value, detect_format(value))  # a genotype's cells by role
    return architecture_from(space, item, detect_format(item))


def architectures_from_file(space: Space, path: str | Path, dataset: str | None = None) -> list:
    """The architectures a JSON file lists, in its order: a list of items
    (:func:`_item_architecture`), nflc's benchmark form (accuracies not needed) or
    NAS-Bench-Suite-Zero's. Every item that is malformed or not in the space is reported
    at once."""
    doc = _read_json(path, "file of architectures")
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
