"""Each HTML page opened in a real browser: headless Chromium (Debian's ``chromium``) driven
by Playwright. No console errors; every plot renders one mark per architecture; clicking a
point draws that architecture (its nodes and non-zero edges, ops as labels); clicking a
table row draws that row's; a screenshot of each page is saved.

Without Chromium or Playwright the tests skip locally, and fail where
``NFLC_REQUIRE_BROWSER`` (or ``NFLC_REQUIRE_SHARED_DATA``, as in CI) is set. Screenshots go
to the test's temporary directory, or to ``NFLC_SCREENSHOTS=DIR`` (docs/img holds the ones
the README shows).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

import nflc

from .conftest import NFL_H3, SPECS

CHROMIUM = os.environ.get("NFLC_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _required() -> bool:
    return any(os.environ.get(v, "") not in ("", "0") for v in ("NFLC_REQUIRE_BROWSER", "NFLC_REQUIRE_SHARED_DATA"))


@pytest.fixture(scope="module")
def browser():
    why = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = "the playwright package is not installed (pip install -e '.[test]')"
    if why is None and not Path(CHROMIUM).is_file():
        why = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if why is not None:
        if _required():
            pytest.fail(f"{why}; NFLC_REQUIRE_BROWSER / NFLC_REQUIRE_SHARED_DATA is set: the browser tests must run",
                        pytrace=False)
        pytest.skip(why)
    with sync_playwright() as p:  # Playwright gives the browser a new empty profile of its own
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1600, "height": 1100})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: errors.append(f"network request: {r.url}") if not r.url.startswith(("file:", "data:"))
            else None)
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    return page, errors


def rendered_marks(page) -> dict[str, int]:
    """Scatter points Chromium drew in each plot (SVG paths of class 'point')."""
    return page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('.fig'))
        .map(d => [d.id, d.querySelectorAll('.scatterlayer .trace .points path.point').length]))""")


def drawn(page) -> dict:
    """What the architecture view shows: its id and, per panel, the shapes and labels drawn."""
    return page.evaluate("""() => {
        const v = document.getElementById('arch-view');
        return {id: v.dataset.archId, panels: Array.from(v.querySelectorAll('.panel')).map(p => ({
            key: p.dataset.key, nodes: +p.dataset.nodes, edges: +p.dataset.edges,
            shapes: p.querySelectorAll('.shapelayer path').length,
            labels: Array.from(p.querySelectorAll('.annotation-text')).map(t => t.textContent)}))};
    }""")


def check_drawn(view: dict, space) -> None:
    arch = space.architecture(view["id"])
    graphs = arch.cell_graphs
    assert len(view["panels"]) == len(graphs)
    for panel, (k, g) in zip(view["panels"], graphs.items(), strict=True):
        assert panel["key"].startswith(f"{k}:"), "the panels in the cells' order"
        edges = [(s, t, d) for s, t, d in g.edges(data=True) if d["kind"] != "zero"]
        assert panel["nodes"] == g.number_of_nodes() and panel["edges"] == len(edges)
        assert panel["shapes"] == g.number_of_nodes() + 2 * len(edges), "a shape per node, a curve and an arrowhead per edge"
        node_cell = any("op" in d for _, d in g.nodes(data=True))
        want = sorted([d["label"] + (d["op"] if "op" in d else "") for _, d in g.nodes(data=True)]
                      + ([] if node_cell else [d["op"] for _, _, d in edges]))
        assert sorted(panel["labels"]) == want


def click_point(page, fig: str, k: int) -> str:
    """Click a point of the plot's first trace, the k-th or the next one no other point
    covers (a scatter can put two architectures on one spot); returns its architecture id."""
    k = page.evaluate(f"""() => {{
        const pts = Array.from(document.querySelectorAll('#{fig} .scatterlayer .trace')[0].querySelectorAll('path.point'))
            .map(p => p.getBoundingClientRect()).map(r => [r.x + r.width / 2, r.y + r.height / 2]);
        const alone = (i) => pts.every((q, j) => j === i || Math.hypot(q[0] - pts[i][0], q[1] - pts[i][1]) > 8);
        for (let i = {k}; i < pts.length + {k}; i++) if (alone(i % pts.length)) return i % pts.length;
        return -1;
    }}""")
    assert k >= 0, "some point stands alone"
    point = page.locator(f"#{fig} .scatterlayer .trace").first.locator("path.point").nth(k)
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    expected = page.evaluate(f"() => document.getElementById('{fig}').data[0].customdata[{k}][1]")
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(f"() => document.getElementById('arch-view').dataset.archId === {json.dumps(expected)}",
                           timeout=10_000)
    return expected


def screenshot(page, name: str, tmp_path: Path) -> Path:
    target = Path(os.environ.get("NFLC_SCREENSHOTS") or tmp_path) / f"page_{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))
    assert target.stat().st_size > 20_000
    return target


def test_analyze_page_in_chromium(browser, pages, tmp_path):
    an = json.loads(pages["an_json"].read_text())
    page, errors = open_page(browser, pages["analyze"])
    assert rendered_marks(page) == {f"fig-{a}": len(an["architectures"]) for a in ("expressivity", "convergence",
                                                                                   "generalization")}
    space = nflc.load(NFL_H3)
    for fig, k in (("fig-expressivity", 3), ("fig-generalization", 10)):
        ident = click_point(page, fig, k)
        assert drawn(page)["id"] == ident
        check_drawn(drawn(page), space)
    # a table row: sort by P (descending), click the first row shown
    header = page.locator("#table-archs th").filter(has_text=re.compile(r"^P$"))
    header.click()
    header.click()
    first = page.locator("#table-archs tbody tr").first
    ident = first.locator("td.id").text_content()
    first.click()
    page.wait_for_function(f"() => document.getElementById('arch-view').dataset.archId === {json.dumps(ident)}")
    assert space.architecture(ident).topology().paths == max(a["topology"]["paths"] for a in an["architectures"])
    check_drawn(drawn(page), space)
    # the filter: P>3 keeps exactly the architectures with four paths
    page.fill("#table-archs input", "P>3")
    shown = page.locator("#table-archs .info").text_content()
    assert shown.startswith(f"{sum(a['topology']['paths'] > 3 for a in an['architectures'])} of {len(an['architectures'])}")
    page.evaluate("document.getElementById('fig4').scrollIntoView()")
    screenshot(page, "analyze", tmp_path)
    assert errors == []


def test_report_page_in_chromium(browser, pages, tmp_path):
    rep = json.loads(pages["report_json"].read_text())
    finished = sum(a["status"] in ("done", "diverged") for a in rep["architectures"])
    page, errors = open_page(browser, pages["report"])
    marks = rendered_marks(page)
    for a in ("expressivity", "convergence", "generalization"):
        assert marks[f"fig-measured-{a}"] == finished and marks[f"fig-predicted-{a}"] == finished
        assert marks[f"fig-pvm-{a}"] == rep["predicted_vs_measured"][a]["n"]
    space = nflc.load(NFL_H3)
    for fig in ("fig-measured-expressivity", "fig-pvm-convergence"):
        click_point(page, fig, 5)
        check_drawn(drawn(page), space)
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "report", tmp_path)
    assert errors == []


def test_rank_page_in_chromium(browser, rank_page, tmp_path):
    path, bench = rank_page
    n = len(json.loads(bench.read_text())["architectures"])
    page, errors = open_page(browser, path)
    assert sum(rendered_marks(page).values()) == n
    space = nflc.load(SPECS / "nb201.nfl", space="nb201")
    for k in (0, 100, 250):
        click_point(page, "fig-score", k)
        check_drawn(drawn(page), space)
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "rank", tmp_path)
    assert errors == []
