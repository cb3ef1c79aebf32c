"""One self-contained HTML file: plotly.js, the page's script and styles, and its data inlined.

A page is plain data (:class:`Page`): HTML sections written here (escaped), plotly figures
(:mod:`nflc.pages.figures`), tables (sortable, filterable, paginated in the browser by
``page.js``) and the drawings of the architectures in the main table (:mod:`nflc.drawing`'s
geometry, rendered with plotly shapes when a reader clicks a point or a row). Nothing is
fetched when the file is opened.
"""

from __future__ import annotations

import html
import json
import math
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel

from nflc import drawing
from nflc.outputs import Output, check_output, write_bytes

if TYPE_CHECKING:
    from nflc.space import Architecture

MAX_ROWS = 10_000  # architectures in a page's table; above, a seeded sample plus every one the summary names
PAGE_ROWS = 25


class Column(BaseModel):
    key: str
    label: str
    kind: Literal["num", "int", "text"] = "num"


class Table(BaseModel):
    div: str
    columns: list[Column]
    rows: list[list[Any]]
    arch_rows: bool = False  # a row is an architecture: clicking it draws it (row i draws drawings[i])
    caption: str = ""
    page_rows: int = PAGE_ROWS


class Page(BaseModel):
    kind: Literal["analyze", "report", "rank"]
    title: str
    subtitle: str
    sections: list[str]  # HTML, in order; figures and tables sit in the <div id=...> these contain
    figures: dict[str, dict]  # div id -> plotly figure
    tables: list[Table]
    drawings: dict[str, dict] = {}  # panel key -> compact panel (see panel_json)
    row_drawings: list[dict | None] = []  # per main-table row: {"title", "id", "note", "panels": [keys]}
    layout_engine: str | None = None
    initial_row: int = 0  # the architecture drawn when the page opens
    colours: dict = {"edges": drawing.EDGE_COLOURS, "dead": drawing.DEAD}


# ---------------------------------------------------------------- drawings of the table's rows


def _r(v: float) -> float:
    return round(v, 1)


def panel_json(p: drawing.Panel) -> dict:
    """A compact panel: ``n`` nodes ``[name, label, x, y, w, h, box?, live?]``, ``e`` edges
    ``[src, dst, label, kind, curve (flat x, y list), head (flat), label x, label y, live?]``."""
    return {"t": p.title, "w": _r(p.width), "h": _r(p.height),
            "n": [[n.name, n.label, _r(n.x), _r(n.y), _r(n.w), _r(n.h), int(n.shape == "box"), int(n.live)] for n in p.nodes],
            "e": [[e.src, e.dst, e.label, e.kind, [_r(c) for pt in e.curve for c in pt], [_r(c) for pt in e.head for c in pt],
                   _r(e.label_at[0]), _r(e.label_at[1]), int(e.live)] for e in p.edges]}


class Drawings:
    """The drawings of many architectures, each cell laid out once: architectures that
    share a cell (same instance, same cell choice) share its panel."""

    def __init__(self, engine: str | None = None) -> None:
        self.engine = drawing.layout_engine(engine)
        self.specs: dict[str, Any] = {}

    def add(self, arch: Architecture) -> dict:
        graphs = None
        keys = []
        for k in arch.space.instances:
            key = f"{k}:{arch.cell_index(k)}"
            if key not in self.specs:
                graphs = graphs or arch.cell_graphs
                multi = len(arch.space.instances) > 1
                self.specs[key] = drawing.cell_spec(graphs[k], k, k if multi else f"cell '{k}'")
            keys.append(key)
        note = f"rejected by space '{arch.space.name}': {arch.rejection}" if arch.rejection is not None else None
        return {"title": drawing.title_of(arch), "id": arch.id, "note": note, "panels": keys}

    def panels(self) -> dict[str, dict]:
        keys = list(self.specs)
        _, laid = drawing.layout([self.specs[k] for k in keys], self.engine)
        return {k: panel_json(p) for k, p in zip(keys, laid, strict=True)}


# ---------------------------------------------------------------- table rows and sampling


def cell(v: Any) -> Any:
    """A table cell as JSON: numbers to 6 significant digits, infinities as "inf"/"-inf",
    NaN and None as null."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    f = float(v)
    if math.isnan(f):
        return None
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return float(f"{f:.6g}")


def table_positions(n: int, named: set[int], seed: int = 0, limit: int | None = None) -> list[int]:
    """Which of ``n`` architectures a table holds: all of them up to ``limit`` (default
    :data:`MAX_ROWS`); above, a seeded uniform sample of ``limit`` plus ``named`` (the ones
    a page's summary names: winners, the Pareto front), in their order."""
    limit = MAX_ROWS if limit is None else limit
    if n <= limit:
        return list(range(n))
    pick = set(np.random.default_rng(seed).choice(n, size=limit, replace=False).tolist())
    return sorted(pick | named)


def sample_note(n: int, shown: int, seed: int = 0) -> str:
    if shown >= n:
        return ""
    return (f"The table holds {shown:,} of the {n:,} architectures: a uniform sample of {MAX_ROWS:,} (seed {seed}) plus "
            "every architecture the summary names (winners, Pareto front).")


# ---------------------------------------------------------------- HTML


def esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def static_table(headers: list[str], rows: list[list[Any]], caption: str = "", cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<table class="static {cls}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def arch_link(i: str) -> str:
    return f'<a href="#" class="arch-link" data-id="{esc(i)}"><code>{esc(i)}</code></a>'


def arch_links(ids: list[str], limit: int = 40) -> str:
    """Ids a reader can click (drawn when the table holds them)."""
    shown = "".join(f'<li><a href="#" class="arch-link" data-id="{esc(i)}"><code>{esc(i)}</code></a></li>' for i in ids[:limit])
    more = f"<li>... and {len(ids) - limit:,} more</li>" if len(ids) > limit else ""
    return f'<ul class="ids">{shown}{more}</ul>'


def section(title: str, body: str, sid: str = "") -> str:
    return f'<section{f" id={chr(34)}{esc(sid)}{chr(34)}" if sid else ""}><h2>{esc(title)}</h2>{body}</section>'


def figure_grid(divs: list[str]) -> str:
    return '<div class="grid">' + "".join(f'<div class="fig" id="{esc(d)}"></div>' for d in divs) + "</div>"


ARCH_VIEW = ('<aside id="arch"><h2>Architecture</h2><p class="hint">Click a point in a plot, a row of the table or an '
             'id to draw its cell here.</p><div id="arch-view"></div></aside>')


def _asset(name: str) -> str:
    return resources.files("nflc.pages").joinpath(name).read_text()


def render(page: Page) -> str:
    from plotly.offline import get_plotlyjs  # plotly: loaded only when a page is written

    data = page.model_dump()
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', '<meta name="generator" content="nflc">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(page.title)}</title>", f"<style>{_asset('page.css')}</style>",
        f"<script>{get_plotlyjs()}</script>", "</head><body>",
        f'<header><h1>{esc(page.title)}</h1><p class="sub">{esc(page.subtitle)}</p></header>',
        '<div class="layout"><main>', *page.sections, "</main>", ARCH_VIEW if page.row_drawings else "", "</div>",
        f'<script type="application/json" id="nflc-data">{payload}</script>',
        f"<script>{_asset('page.js')}</script>", "</body></html>"])


# ---------------------------------------------------------------- the output file


def check_html_target(path: Path, option: str = "--html", force: bool = False) -> None:
    """Refuse, before any work, a path the page cannot or must not be written to
    (:func:`nflc.outputs.check_output`: a directory, a missing directory, one this process
    may not create a file in, a file that is not an nflc page without ``force``)."""
    check_output(Output(path, option, "html"), force)


def write(page: Page, path: Path) -> int:
    """Write the page (replacing an earlier one atomically); returns its size in bytes."""
    data = render(page).encode("utf-8")
    write_bytes(path, data)
    return len(data)
