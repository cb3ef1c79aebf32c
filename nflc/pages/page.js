// nflc's HTML pages: plots (plotly), tables (sort, filter, pages) and the drawing of the
// architecture a reader clicks. All data is inlined in #nflc-data; nothing is fetched.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("nflc-data").textContent);
  const main = D.tables.find((t) => t.arch_rows) || null;
  const idCol = main ? main.columns.findIndex((c) => c.key === "id") : -1;
  const rowById = new Map();
  if (main) main.rows.forEach((r, i) => rowById.set(r[idCol], i));
  const widgets = {};
  const config = { displaylogo: false, responsive: true };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function show(v, kind) {
    if (v === null || v === undefined) return "";
    if (typeof v === "string") return v;
    if (typeof v === "boolean") return v ? "yes" : "";
    if (kind === "int" || (Number.isInteger(v) && Math.abs(v) < 1e15)) return v.toLocaleString("en-US");
    return String(Number(v.toPrecision(4)));
  }

  function num(v) {
    if (v === null || v === undefined || v === "") return NaN;
    if (v === "inf") return Infinity;
    if (v === "-inf") return -Infinity;
    return typeof v === "number" ? v : NaN;
  }

  // "text" matches any cell; "P>2", "params<=1e6", "id=|skip~0|" compare one column
  function parseFilter(text, columns) {
    const tests = [];
    for (const tok of text.trim().split(/\s+/).filter(Boolean)) {
      const m = tok.match(/^([A-Za-z_][\w ]*?)(>=|<=|!=|>|<|=)(.+)$/);
      const col = m ? columns.findIndex((c) => c.key.toLowerCase() === m[1].toLowerCase() ||
                                                c.label.toLowerCase() === m[1].toLowerCase()) : -1;
      if (m && col >= 0) {
        const op = m[2], want = m[3], x = Number(want);
        tests.push((r) => {
          const v = r[col];
          if (columns[col].kind === "text" || Number.isNaN(x)) {
            const s = show(v, columns[col].kind).toLowerCase(), w = want.toLowerCase();
            return op === "!=" ? !s.includes(w) : s.includes(w);
          }
          const n = num(v);
          if (Number.isNaN(n)) return false;
          return { ">": n > x, "<": n < x, ">=": n >= x, "<=": n <= x, "=": n === x, "!=": n !== x }[op];
        });
      } else {
        const w = tok.toLowerCase();
        tests.push((r) => r.some((v, i) => show(v, columns[i].kind).toLowerCase().includes(w)));
      }
    }
    return (r) => tests.every((t) => t(r));
  }

  function makeTable(spec) {
    const host = document.getElementById(spec.div);
    const st = { view: spec.rows.map((_, i) => i), page: 0, col: -1, dir: 1, selected: -1 };
    const bar = el("div", "table-bar");
    const input = el("input");
    input.type = "search";
    input.placeholder = "filter: text, or column>value (e.g. P>2 params<1e6)";
    const prev = el("button", "", "\u2039 prev");
    const next = el("button", "", "next \u203a");
    const info = el("span", "info");
    bar.append(input, prev, next, info);
    const table = el("table", "data");
    const thead = el("thead");
    const hr = el("tr");
    spec.columns.forEach((c, i) => {
      const th = el("th", c.kind === "text" ? "text" : "num", c.label);
      th.title = "sort by " + c.label;
      th.addEventListener("click", () => sortBy(i));
      hr.append(th);
    });
    thead.append(hr);
    const tbody = el("tbody");
    table.append(thead, tbody);
    host.append(bar, table);
    if (spec.caption) host.append(el("p", "caption", spec.caption));

    function sortBy(i) {
      st.dir = st.col === i ? -st.dir : 1;
      st.col = i;
      const kind = spec.columns[i].kind;
      st.view.sort((a, b) => {
        const x = spec.rows[a][i], y = spec.rows[b][i];
        if (kind === "text") return st.dir * String(x ?? "").localeCompare(String(y ?? ""));
        const nx = num(x), ny = num(y);
        if (Number.isNaN(nx) || Number.isNaN(ny)) return Number.isNaN(nx) - Number.isNaN(ny) || a - b;
        return st.dir * (nx - ny) || a - b;
      });
      hr.querySelectorAll("th").forEach((th, k) => th.classList.toggle("sorted", k === i));
      hr.children[i].dataset.dir = st.dir > 0 ? "\u25b2" : "\u25bc";
      draw();
    }

    function applyFilter() {
      const keep = parseFilter(input.value, spec.columns);
      st.view = spec.rows.map((_, i) => i).filter((i) => keep(spec.rows[i]));
      st.page = 0;
      if (st.col >= 0) { st.dir = -st.dir; sortBy(st.col); } else draw();
    }

    function draw() {
      const pages = Math.max(1, Math.ceil(st.view.length / spec.page_rows));
      st.page = Math.min(st.page, pages - 1);
      tbody.textContent = "";
      for (const i of st.view.slice(st.page * spec.page_rows, (st.page + 1) * spec.page_rows)) {
        const tr = el("tr");
        tr.dataset.row = i;
        spec.rows[i].forEach((v, k) => {
          const kind = spec.columns[k].kind;
          const td = el("td", kind === "text" ? "text" : "num", show(v, kind));
          if (spec.columns[k].key === "id") td.classList.add("id");
          tr.append(td);
        });
        if (spec.arch_rows) {
          tr.classList.add("clickable");
          tr.addEventListener("click", () => showArch(i));
        }
        if (i === st.selected) tr.classList.add("selected");
        tbody.append(tr);
      }
      info.textContent = `${st.view.length.toLocaleString("en-US")} of ${spec.rows.length.toLocaleString("en-US")} rows` +
        ` \u00b7 page ${st.page + 1} of ${pages}`;
      prev.disabled = st.page === 0;
      next.disabled = st.page >= pages - 1;
    }

    prev.addEventListener("click", () => { st.page -= 1; draw(); });
    next.addEventListener("click", () => { st.page += 1; draw(); });
    input.addEventListener("input", applyFilter);
    draw();
    return {
      reveal(row) {  // select a row and turn to its page (if the filter keeps it)
        st.selected = row;
        const at = st.view.indexOf(row);
        if (at >= 0) st.page = Math.floor(at / spec.page_rows);
        draw();
      },
    };
  }

  function panelFigure(p, avail) {
    const shapes = [], notes = [];
    const colour = (kind, live) => (live ? D.colours.edges[kind] || "#333333" : D.colours.dead);
    for (const [, , label, kind, curve, head, lx, ly, live] of p.e) {
      let path = `M ${curve[0]} ${curve[1]}`;
      for (let k = 2; k + 5 < curve.length; k += 6) {
        path += ` C ${curve[k]} ${curve[k + 1]} ${curve[k + 2]} ${curve[k + 3]} ${curve[k + 4]} ${curve[k + 5]}`;
      }
      const c = colour(kind, live);
      shapes.push({ type: "path", path, line: { color: c, width: 1.4, dash: live ? "solid" : "dash" }, name: "edge" });
      if (head.length === 6) {
        shapes.push({ type: "path", path: `M ${head[0]} ${head[1]} L ${head[2]} ${head[3]} L ${head[4]} ${head[5]} Z`,
                      fillcolor: c, line: { width: 0 }, name: "arrowhead" });
      }
      if (label) notes.push({ x: lx, y: ly, text: label, showarrow: false, font: { size: 10, color: c } });
    }
    for (const [, label, x, y, w, h, box, live] of p.n) {
      shapes.push({ type: box ? "rect" : "circle", x0: x - w / 2, x1: x + w / 2, y0: y - h / 2, y1: y + h / 2,
                    fillcolor: live ? "#ffffff" : "#eeeeee", line: { color: live ? "#222222" : D.colours.dead, width: 1.2 },
                    name: "node" });
      notes.push({ x, y, text: label.replace(/\n/g, "<br>"), showarrow: false,
                   font: { size: 11, color: live ? "#000000" : "#777777" } });
    }
    const scale = Math.max(0.4, Math.min(1.25, (avail - 24) / p.w));
    return {
      data: [],
      layout: {
        title: { text: p.t, x: 0.01, font: { size: 12 } },
        shapes, annotations: notes,
        xaxis: { range: [0, p.w], visible: false, fixedrange: true },
        yaxis: { range: [0, p.h], visible: false, fixedrange: true, scaleanchor: "x" },
        width: p.w * scale + 20, height: p.h * scale + 46,
        margin: { l: 10, r: 10, t: 36, b: 10 }, plot_bgcolor: "#fff", paper_bgcolor: "#fff",
      },
    };
  }

  function showArch(row) {
    const view = document.getElementById("arch-view");
    const d = D.row_drawings[row];
    if (!view || !d) return;
    view.textContent = "";
    view.append(el("h3", "", d.title));
    view.append(el("code", "arch-id", d.id));
    if (d.note) view.append(el("p", "rejected", d.note));
    if (main) {
      const dl = el("dl", "details");
      main.columns.forEach((c, k) => {
        if (c.key === "id") return;
        dl.append(el("dt", "", c.label), el("dd", "", show(main.rows[row][k], c.kind) || "-"));
      });
      view.append(dl);
    }
    const plots = [];
    for (const key of d.panels) {
      const p = D.drawings[key];
      const div = el("div", "panel");
      div.dataset.key = key;
      div.dataset.nodes = p.n.length;
      div.dataset.edges = p.e.length;
      view.append(div);
      const fig = panelFigure(p, view.clientWidth || 440);
      plots.push(Plotly.newPlot(div, fig.data, fig.layout, { displaylogo: false, staticPlot: true }));
    }
    view.append(el("p", "hint", `layout: ${D.layout_engine}; dashed grey edges lie on no input-output path`));
    view.dataset.archId = d.id;
    view.dataset.row = row;
    if (main) widgets[main.div].reveal(row);
    return Promise.all(plots);
  }

  function showId(id) {
    const row = rowById.get(id);
    if (row !== undefined) return showArch(row);
    const view = document.getElementById("arch-view");
    if (view) view.textContent = `${id} is not in this page's table (see the note on sampling).`;
  }

  const pending = [];
  for (const [div, fig] of Object.entries(D.figures)) {
    const node = document.getElementById(div);
    if (!node) continue;
    pending.push(Plotly.newPlot(node, fig.data, fig.layout, config).then((gd) => {
      gd.on("plotly_click", (ev) => {
        const p = ev.points[0];
        const row = p && Array.isArray(p.customdata) ? p.customdata[0] : -1;
        if (row >= 0) showArch(row);
      });
    }));
  }
  for (const spec of D.tables) widgets[spec.div] = makeTable(spec);
  document.querySelectorAll(".arch-link").forEach((a) =>
    a.addEventListener("click", (ev) => { ev.preventDefault(); showId(a.dataset.id); }));
  if (main && main.rows.length && D.row_drawings.length) pending.push(showArch(D.initial_row || 0));
  window.nflcPage = { data: D, showArch, showId };
  Promise.all(pending).then(() => { document.body.dataset.ready = "1"; });
})();
