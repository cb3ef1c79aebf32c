"""The page of ``nflc report --html``: measured aspects against topology (the paper's
Fig. 3), predicted against measured with Kendall taus and their bootstrap intervals, the
measured no-free-lunch verdict, the per-architecture table and (given the spec) drawings.

Built from :class:`nflc.verify.report.VerifyReport`, what ``nflc report --json`` writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import math

from nflc.analysis.report import ASPECTS, kendall
from nflc.pages import document as doc
from nflc.pages import figures
from nflc.verify.report import raw_value

if TYPE_CHECKING:
    from nflc.space import Space

__all__ = ["report_page"]

RAW = {"expressivity": "train loss", "convergence": "epochs to threshold", "generalization": "test - train loss"}


COLUMNS = [doc.Column(key="index", label="index", kind="int"), doc.Column(key="id", label="id", kind="text"),
           doc.Column(key="status", label="status", kind="text"), doc.Column(key="P", label="P", kind="int"),
           doc.Column(key="depth", label="mean depth"), doc.Column(key="params", label="params", kind="int"),
           doc.Column(key="loss", label="train loss"), doc.Column(key="epochs", label="epochs to threshold", kind="int"),
           doc.Column(key="gap", label="test - train loss"), doc.Column(key="test_acc", label="test acc"),
           doc.Column(key="converged", label="converged", kind="text"),
           doc.Column(key="slope", label="log-loss slope / epoch"),
           *(doc.Column(key=f"pred_{a}", label=f"predicted {a}") for a in ASPECTS),
           doc.Column(key="pareto", label="Pareto", kind="text")]


def report_page(rep: Any, space: Space | None = None, engine: str | None = None, seed: int = 0) -> doc.Page:
    """The page of a verification report; ``space`` (the spec the run trained) adds the
    architectures' drawings."""
    never = int(rep.config.get("train", {}).get("epochs", 0)) + 1
    archs = rep.architectures
    pareto = set(rep.nfl.pareto_front) if rep.nfl else set()
    winners = {i for a in ASPECTS for i in (rep.nfl.winners.get(a, []) if rep.nfl else [])}
    named = {k for k, a in enumerate(archs) if a.id in pareto or a.id in winners}
    positions = doc.table_positions(len(archs), named, seed)
    drawings = doc.Drawings(engine) if space is not None else None
    rows, row_drawings, row_of = [], [], {}
    for r, k in enumerate(positions):
        a = archs[k]
        row_of[k] = r
        pred = a.predicted or {}
        rows.append([a.index, a.id, a.status, a.paths, doc.cell(a.mean_depth), a.params, doc.cell(a.expressivity),
                     a.convergence if a.convergence is not None else ("never" if a.status == "done" else None),
                     doc.cell(a.generalization), doc.cell(a.test_acc),
                     "" if a.converged is None else ("yes" if a.converged else "no"), doc.cell(a.final_slope),
                     *(doc.cell(pred.get(x)) for x in ASPECTS), "yes" if a.id in pareto else ""])
        if drawings is not None and space is not None:
            row_drawings.append(drawings.add(space.architecture(a.id)))

    finished = [k for k, a in enumerate(archs) if a.status in ("done", "diverged") and a.paths is not None]
    fin = [archs[k] for k in finished]
    paths = [float(a.paths) for a in fin]
    depth = [float(a.mean_depth or 0.0) for a in fin]
    rows_at = [row_of.get(k, -1) for k in finished]
    ids = [a.id if k in row_of else "" for k, a in zip(finished, fin, strict=True)]
    figs: dict[str, dict] = {}
    measured_divs, predicted_divs, scatter_divs = [], [], []
    for asp in ASPECTS:
        t = rep.measured_vs_topology.get(asp, {})
        taus = (t["paths"].tau if "paths" in t else None, t["mean_depth"].tau if "mean_depth" in t else None)
        div = f"fig-measured-{asp}"
        figs[div] = figures.topology_panel(f"measured {asp}: {RAW[asp]}", [raw_value(a, asp, never) for a in fin], paths, depth,
                                           rows_at, ids, taus)
        measured_divs.append(div)
    if any(a.predicted is not None for a in fin):
        predicted_divs = _predicted_panels(fin, paths, depth, rows_at, ids, figs)
    if rep.predicted_vs_measured:
        scatter_divs = _scatters(rep, finished, fin, row_of, never, figs)

    sections = [_summary(rep)]
    sections.append(doc.section(
        "Measured aspects against topology (the paper's Fig. 3)",
        '<p class="note">Raw measured quantities (lower = better) of the finished architectures. x: mean path depth, '
        "y: number of input-output paths P.</p>" + doc.figure_grid(measured_divs), "fig3"))
    if predicted_divs:
        sections.append(doc.section("Predicted scores on the same architectures (the paper's Fig. 4)",
                                    '<p class="note">Higher = better.</p>' + doc.figure_grid(predicted_divs), "fig4"))
    if scatter_divs:
        sections.append(doc.section("Predicted against measured", '<p class="note">Both axes oriented so that higher is '
                                    "better; architectures with P > 0.</p>" + doc.figure_grid(scatter_divs), "pvm"))
    sections.append(_taus(rep))
    note = doc.sample_note(len(archs), len(rows), seed)
    no_spec = "" if space is not None else ('<p class="note">Pass the spec the run trained (<code>--spec FILE</code>) to draw '
                                            "each architecture.</p>")
    sections.append(doc.section("Architectures", (f'<p class="note">{doc.esc(note)}</p>' if note else "") + no_spec
                                + '<div id="table-archs"></div>', "archs"))
    table = doc.Table(div="table-archs", columns=COLUMNS, rows=rows, arch_rows=drawings is not None,
                      caption="Click a header to sort" + (", a row to draw it." if drawings is not None else "."))
    c = rep.counts
    tc = rep.config.get("train", {})
    first = next(iter(sorted(winners)), None)
    initial = next((r for r, row in enumerate(rows) if row[1] == first), 0)
    return doc.Page(kind="report", title=f"nflc report: {rep.space}",
                    subtitle=f"{c.get('finished', 0):,} of {c.get('registered', 0):,} architectures finished "
                             f"({c.get('diverged', 0)} diverged); {rep.config.get('data', {}).get('dataset')}, "
                             f"lr {tc.get('lr')}, at most {tc.get('epochs')} epochs; {rep.db}",
                    sections=sections, figures=figs, tables=[table], initial_row=initial,
                    drawings=drawings.panels() if drawings is not None else {}, row_drawings=row_drawings,
                    layout_engine=drawings.engine if drawings is not None else None)


def _predicted_panels(fin: list[Any], paths: list[float], depth: list[float], rows_at: list[int], ids: list[str],
                      figs: dict[str, dict]) -> list[str]:
    """The predicted scores against topology (the paper's Fig. 4), into ``figs``; their divs."""
    divs = []
    for asp in ASPECTS:
        vals = [(a.predicted or {}).get(asp) for a in fin]
        num = [math.nan if v is None else float(v) for v in vals]
        keep = [i for i, p in enumerate(paths) if p > 0]
        taus = (kendall([num[i] for i in keep], [paths[i] for i in keep]).tau,
                kendall([num[i] for i in keep], [depth[i] for i in keep]).tau)
        div = f"fig-predicted-{asp}"
        figs[div] = figures.topology_panel(f"predicted {asp}", num, paths, depth, rows_at, ids, taus)
        divs.append(div)
    return divs


def _scatters(rep: Any, finished: list[int], fin: list[Any], row_of: dict[int, int], never: int,
              figs: dict[str, dict]) -> list[str]:
    """Each predicted score against its measured aspect, into ``figs``; their divs."""
    divs = []
    for asp in ASPECTS:
        t = rep.predicted_vs_measured[asp]
        pts = [(k, a) for k, a in zip(finished, fin, strict=True) if a.predicted is not None and (a.paths or 0) > 0]
        ci = f" [{t.ci_low:+.2f}, {t.ci_high:+.2f}]" if t.ci_low is not None and t.ci_high is not None else ""
        sub = f"Kendall tau {'n/a' if t.tau is None else f'{t.tau:+.2f}'}{ci} (95% bootstrap), {t.n} architectures"
        div = f"fig-pvm-{asp}"
        figs[div] = figures.scatter(asp, [(a.predicted or {}).get(asp) for _, a in pts],
                                    [-raw_value(a, asp, never) for _, a in pts], [row_of.get(k, -1) for k, _ in pts],
                                    [a.id for _, a in pts], "predicted score (higher = better)",
                                    f"-({RAW[asp]})", subtitle=sub)
        divs.append(div)
    return divs


def _summary(rep: Any) -> str:
    parts = []
    if rep.nfl is not None:
        rows = []
        for a in ASPECTS:
            w = rep.nfl.winners.get(a, [])
            rows.append(f"<tr><td>{a}</td><td>{doc.arch_link(w[0]) if w else '-'}</td><td>{len(w)}</td></tr>")
        parts.append(f'<p class="verdict">{doc.esc(rep.nfl.verdict)}</p>'
                     '<table class="static"><thead><tr><th>aspect</th><th>best measured</th><th>tied</th></tr></thead><tbody>'
                     + "".join(rows) + "</tbody></table>")
        if rep.nfl.pareto_front:
            parts.append(f"<details><summary>Pareto front (measured): {len(rep.nfl.pareto_front):,} architectures</summary>"
                         + doc.arch_links(rep.nfl.pareto_front) + "</details>")
    else:
        parts.append('<p class="note">No verdict yet: no architecture has finished.</p>')
    parts += [f'<p class="note">note: {doc.esc(n)}</p>' for n in rep.notes + (rep.nfl.notes if rep.nfl else [])]
    measured = "".join(f"<li>{a}: {doc.esc(rep.measured_as.get(a, ''))}</li>" for a in ASPECTS)
    return doc.section("No free lunch? (measured)", "".join(parts) + f"<p>Measured as:</p><ul>{measured}</ul>", "summary")


def _taus(rep: Any) -> str:
    body = ""
    if rep.measured_vs_topology:
        rows = []
        for a in ASPECTS:
            k, p = rep.measured_vs_topology[a], rep.paper_fig3.get(a, {})
            rows.append([a, RAW[a], doc.fmt(k["paths"].tau, 2), doc.fmt(p.get("paths"), 2), doc.fmt(k["mean_depth"].tau, 2),
                         doc.fmt(p.get("mean_depth"), 2)])
        body += doc.static_table(["aspect", "measured as", "tau with P", "paper", "tau with mean depth", "paper"], rows,
                                 "Kendall tau of each raw measured quantity with topology (paper: Fig. 3, Tiny-ImageNet)")
    if rep.predicted_vs_measured:
        rows = []
        for a in ASPECTS:
            t = rep.predicted_vs_measured[a]
            ci = "-" if t.ci_low is None else f"[{t.ci_low:.3f}, {t.ci_high:.3f}]"
            rows.append([a, doc.fmt(t.tau), ci, "-" if t.p_value is None else f"{t.p_value:.2g}", t.n])
        body += doc.static_table(["aspect", "tau", "95% CI (bootstrap)", "p-value", "architectures"], rows,
                                 "Kendall tau of each predicted score with its measured aspect (both higher = better)")
    return doc.section("Kendall tau", body or '<p class="note">Not enough finished architectures.</p>', "taus")
