"""The page of ``nflc analyze --html``: the no-free-lunch summary, the predicted scores
against topology (the paper's Fig. 4), the per-architecture table and their drawings.

``nflc analyze`` streams its rows; :class:`AnalyzeCollector` keeps what the page needs
while they pass (16 bytes per architecture plus the ids of the table's rows), so a page of
a million architectures costs no more memory than the analysis itself. The rule for large
analyses (:data:`nflc.pages.document.MAX_ROWS`, :data:`nflc.pages.figures.MAX_POINTS`):
the table holds a seeded uniform sample plus every architecture the summary names, and
the panels draw one marker per (mean depth, P) cell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from array import array

import numpy as np

from nflc.analysis.report import ASPECTS
from nflc.pages import document as doc
from nflc.pages import figures

if TYPE_CHECKING:
    from nflc.space import Space

__all__ = ["AnalyzeCollector", "analyze_page"]

NAMED_PER_LIST = 1000  # at most this many of each list the summary names (ties, Pareto front) join a sampled table


class AnalyzeCollector:
    """``on_rows`` of :func:`nflc.analysis.analyze.analyze_stream` for the page: per
    architecture its index, group size, parameters and FLOPs, and the ids of those the
    table will sample (all when there are at most :data:`~nflc.pages.document.MAX_ROWS`)."""

    def __init__(self, total: int, seed: int = 0) -> None:
        self.total, self.seed = total, seed
        self.index, self.group_size, self.params, self.flops = array("q"), array("q"), array("q"), array("q")
        self.sample = None if total <= doc.MAX_ROWS else set(doc.table_positions(total, set(), seed))
        self.ids: dict[int, str] = {}

    def rows(self, rows: Any) -> None:
        for a in rows:
            pos = len(self.index)
            self.index.append(a.index)
            self.group_size.append(a.group_size)
            self.params.append(a.params)
            self.flops.append(a.flops)
            if self.sample is None or pos in self.sample:
                self.ids[pos] = a.id


def _positions_of(space: Space, ids: list[str], index: np.ndarray) -> dict[str, int]:
    """Where the architectures named by id sit in the analysis (index lookup, any order)."""
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    out = {}
    for i in ids:
        k = space.architecture(i).index
        at = int(np.searchsorted(sorted_index, k))
        if at < len(sorted_index) and sorted_index[at] == k:
            out[i] = int(order[at])
    return out


COLUMNS = [doc.Column(key="index", label="index", kind="int"), doc.Column(key="id", label="id", kind="text"),
           doc.Column(key="archs", label="archs", kind="int"), doc.Column(key="P", label="P", kind="int"),
           doc.Column(key="depth", label="mean depth"), doc.Column(key="params", label="params", kind="int"),
           doc.Column(key="flops", label="FLOPs", kind="int"),
           *(doc.Column(key=a, label=a) for a in ASPECTS),
           doc.Column(key="pareto", label="Pareto", kind="text"), doc.Column(key="best", label="best in", kind="text")]


def analyze_page(space: Space, result: Any, collector: AnalyzeCollector, engine: str | None = None, seed: int = 0) -> doc.Page:
    """The page of a finished streamed analysis (``result``: its
    :class:`~nflc.analysis.analyze.StreamSummary`, run with ``keep_columns=True``)."""
    rep, head = result.report, result.header
    cols = result.columns
    n = len(collector.index)
    index = np.frombuffer(collector.index, dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
    named_ids = list(dict.fromkeys([i for a in ASPECTS for i in rep.winners.get(a, [])[:NAMED_PER_LIST]]
                                   + rep.pareto_front[:NAMED_PER_LIST]))
    where = _positions_of(space, named_ids, index) if n > doc.MAX_ROWS else {}
    positions = doc.table_positions(n, set(where.values()), seed)
    pareto = set(rep.pareto_front)
    best: dict[str, list[str]] = {}
    for a in ASPECTS:
        for i in rep.winners.get(a, []):
            best.setdefault(i, []).append(a)
    drawings = doc.Drawings(engine)
    rows, row_drawings, row_of = [], [], {}
    for r, p in enumerate(positions):
        arch = space.architecture(int(index[p]))
        ident = collector.ids.get(p) or arch.id
        row_of[p] = r
        rows.append([int(index[p]), ident, int(collector.group_size[p]), doc.cell(cols["paths"][p]),
                     doc.cell(cols["mean_depth"][p]), int(collector.params[p]), int(collector.flops[p]),
                     *(doc.cell(cols[a][p]) for a in ASPECTS), "yes" if ident in pareto else "",
                     ", ".join(best.get(ident, []))])
        row_drawings.append(drawings.add(arch))
    row_index = [row_of.get(p, -1) for p in range(n)]
    id_at = [rows[row_of[p]][1] if p in row_of else "" for p in range(n)]
    figs = {}
    for a in ASPECTS:
        k = rep.kendall.get(a, {})
        taus = (k["paths"].tau if "paths" in k else None, k["mean_depth"].tau if "mean_depth" in k else None)
        figs[f"fig-{a}"] = figures.topology_panel(f"predicted {a}", cols[a].tolist(), cols["paths"].tolist(),
                                                  cols["mean_depth"].tolist(), row_index, id_at, taus)

    sections = [_summary(space, rep, head, result), doc.section(
        "Predicted scores against topology (the paper's Fig. 4)",
        '<p class="note">Each score is oriented so that higher is better. x: mean path depth, y: number of input-output '
        "paths P. Hover a marker for its architecture; click it to draw it.</p>"
        + doc.figure_grid([f"fig-{a}" for a in ASPECTS]), "fig4"),
        _taus(rep), _provenance(result.provenance),
        doc.section("Architectures", (f'<p class="note">{doc.esc(doc.sample_note(n, len(rows), seed))}</p>'
                                      if len(rows) < n else "") + '<div id="table-archs"></div>', "archs")]
    table = doc.Table(div="table-archs", columns=COLUMNS, rows=rows, arch_rows=True,
                      caption="archs: architectures computing the same function as this one (its computing-graph group). "
                              "Click a header to sort, a row to draw it.")
    first_winner = next((rep.winners[a][0] for a in ASPECTS if rep.winners.get(a)), None)
    initial = next((r for r, row in enumerate(rows) if row[1] == first_winner), 0)
    return doc.Page(kind="analyze", title=f"nflc analyze: {head.space}", initial_row=initial,
                    subtitle=f"{head.architectures:,} architectures ({head.groups:,} distinct computing graphs), data "
                             f"{head.data.name} (N = {head.data.samples}), {result.seconds:.1f} s",
                    sections=sections, figures=figs, tables=[table], drawings=drawings.panels(), row_drawings=row_drawings,
                    layout_engine=drawings.engine)


def _summary(space: Space, rep: Any, head: Any, result: Any) -> str:
    kernels = doc.esc(head.exact_note) if head.exact_note else "exact infinite-width NNGP and NTK (float64)"
    rows = []
    for a in ASPECTS:
        w = rep.winners.get(a, [])
        if a in rep.missing:
            rows.append(f"<tr><td>{a}</td><td colspan=3>not computed</td></tr>")
            continue
        first = doc.arch_link(w[0]) if w else "-"
        groups = rep.winner_groups.get(a)
        rows.append(f"<tr><td>{a}</td><td>{first}</td><td>{len(w):,}</td><td>{'' if groups is None else groups}</td></tr>")
    winners = ('<table class="static"><thead><tr><th>aspect</th><th>best architecture</th><th>tied</th>'
               "<th>distinct computing graphs</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    groups = f" ({rep.pareto_groups:,} distinct computing graphs)" if rep.pareto_groups is not None else ""
    front = (f"<details><summary>Pareto front: {len(rep.pareto_front):,} architectures{groups}</summary>"
             + doc.arch_links(rep.pareto_front) + "</details>" if rep.pareto_front else "")
    left = (f'<p class="note">{len(rep.left_out):,} architectures have no input-output path: they compute a constant and '
            "are left out of the verdict (grey crosses in the panels).</p>" if rep.left_out else "")
    notes = "".join(f'<p class="note">note: {doc.esc(n)}</p>' for n in rep.notes)
    return doc.section("No free lunch?", f'<p class="verdict">{doc.esc(rep.verdict)}</p><p>kernels: {kernels}</p>'
                       + winners + front + left + notes, "summary")


def _taus(rep: Any) -> str:
    rows = []
    for a in ASPECTS:
        k = rep.kendall.get(a, {})
        rows.append([a, *(doc.fmt(k[c].tau, 2) if c in k and k[c].tau is not None else "n/a" for c in ("paths", "mean_depth"))])
    return doc.section("Kendall tau of each predicted score with topology",
                       doc.static_table(["aspect", "tau with P", "tau with mean depth"], rows,
                                        "architectures with at least one input-output path"), "taus")


def _provenance(prov: dict) -> str:
    rows = [[a, (prov.get(a) or {}).get("formula", ""), (prov.get(a) or {}).get("source", "")] for a in ASPECTS]
    return doc.section("What each score is", doc.static_table(["aspect", "formula", "source"], rows), "formulas")
