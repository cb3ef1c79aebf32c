"""The page of ``nflc rank --html``: nflc's score and every zero-cost proxy of a benchmark
file compared (Kendall tau, Spearman rho, top-5% precision, rank of the best, seconds), the
score against the file's accuracy, and the per-architecture table with each one drawn.

Built from :class:`nflc.rank.RankResult` and the file's entries (:func:`nflc.rank.read_benchmark`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import math

from nflc.pages import document as doc
from nflc.pages import figures

if TYPE_CHECKING:
    from nflc.space import Space

__all__ = ["rank_page"]


def _score(v: Any) -> float:
    if isinstance(v, str):
        return {"inf": math.inf, "-inf": -math.inf}.get(v, math.nan)
    return float(v)


def rank_page(space: Space, result: Any, entries: Any, engine: str | None = None, seed: int = 0) -> doc.Page:
    """The page of a ranking; ``entries`` are the benchmark file's, in the result's order."""
    proxies = sorted({k for e in entries for k in e.proxies})
    n = len(result.per_arch)
    positions = doc.table_positions(n, set(), seed)
    drawings = doc.Drawings(engine)
    rows, row_drawings, row_of = [], [], {}
    for r, k in enumerate(positions):
        pa, e = result.per_arch[k], entries[k]
        row_of[k] = r
        arch = space.architecture(pa["id"])
        rows.append([pa["entry"], pa["id"], pa["params"], doc.cell(_score(pa["score"])), doc.cell(e.accuracy),
                     *(doc.cell(e.proxies.get(p)) for p in proxies)])
        row_drawings.append(drawings.add(arch))
    columns = [doc.Column(key="entry", label="entry", kind="int"), doc.Column(key="id", label="id", kind="text"),
               doc.Column(key="params", label="params (nflc)", kind="int"),
               doc.Column(key="score", label=f"nflc:{result.score}"),
               doc.Column(key="accuracy", label="val_accuracy"), *(doc.Column(key=f"proxy:{p}", label=p) for p in proxies)]
    ours = result.table[0]
    tau = "n/a" if ours.kendall_tau is None else f"{ours.kendall_tau:+.3f}"
    rho = "n/a" if ours.spearman_rho is None else f"{ours.spearman_rho:+.3f}"
    fig = figures.scatter(f"nflc:{result.score} against val_accuracy",
                          [_score(p["score"]) for p in result.per_arch], [e.accuracy for e in entries],
                          [row_of.get(k, -1) for k in range(n)], [p["id"] for p in result.per_arch],
                          f"nflc:{result.score} (no data, no training)", "val_accuracy",
                          subtitle=f"Kendall tau {tau}, Spearman rho {rho}, {n} architectures",
                          floor_label="score -inf: no input-output path")
    ordered = sorted(result.table, key=lambda r: -(r.kendall_tau if r.kendall_tau is not None else -9))
    prox = doc.Table(div="table-proxies", page_rows=50, columns=[
        doc.Column(key="score", label="score", kind="text"), doc.Column(key="tau", label="Kendall tau"),
        doc.Column(key="rho", label="Spearman rho"), doc.Column(key="top5", label="top-5% precision"),
        doc.Column(key="best", label="rank of best"), doc.Column(key="seconds", label="seconds / arch")],
        rows=[[r.name, doc.cell(r.kendall_tau), doc.cell(r.spearman_rho), doc.cell(r.top5_precision), doc.cell(r.best_rank),
               doc.cell(r.seconds_per_arch) if r.seconds_per_arch is not None else "n/a"] for r in ordered],
        caption="Each column's ranking of the architectures against val_accuracy; n/a: the file gives no time for it.")
    archs = doc.Table(div="table-archs", columns=columns, rows=rows, arch_rows=True,
                      caption="Click a header to sort, a row to draw it.")
    place = next((i + 1 for i, r in enumerate(ordered) if r.name == ours.name), None)
    sections = [
        doc.section("nflc against the zero-cost proxies",
                    f'<p class="verdict">nflc:{doc.esc(result.score)} is #{place} of {len(ordered)} scores by Kendall tau '
                    f"({tau}); it scored all {n:,} architectures in {result.nflc_seconds_total:.3f} s without data or "
                    'training.</p><div id="table-proxies"></div>', "proxies"),
        doc.section("Score against accuracy", doc.figure_grid(["fig-score"]), "scatter"),
        doc.section("Architectures", (f'<p class="note">{doc.esc(doc.sample_note(n, len(rows), seed))}</p>'
                                      if len(rows) < n else "") + '<div id="table-archs"></div>', "archs"),
    ]
    best = max(range(len(rows)), key=lambda r: rows[r][4] if isinstance(rows[r][4], float) else -math.inf, default=0)
    return doc.Page(kind="rank", title=f"nflc rank: {result.space}",
                    subtitle=f"{n:,} architectures of {result.benchmark} ranked against val_accuracy",
                    sections=sections, figures={"fig-score": fig}, tables=[prox, archs], drawings=drawings.panels(),
                    row_drawings=row_drawings, layout_engine=drawings.engine, initial_row=best)
