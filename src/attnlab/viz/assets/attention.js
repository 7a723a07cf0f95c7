// attnlab attention page. Data arrive as JSON in <script type="application/json" id="attnlab-data">;
// every token is put on the page with textContent, never as HTML.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("attnlab-data").textContent);
  const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31", "#843c39",
    "#7b4173"];
  const state = { view: "head", layer: 0, head: 0, heads: null, hover: null };

  function decode(b64, type) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return type === "u16" ? new Uint16Array(bytes.buffer) : bytes;
  }
  for (const t of data.texts) {
    t.mapBytes = decode(t.maps, "u8");         // (L, H, P, P) weights scaled to 0..255 per map
    t.topIdx = decode(t.top_indices, "u16");   // (L, H, T, K)
    t.topW = decode(t.top_weights, "u8");      // (L, H, T, K) weights × 255
  }
  const first = data.texts[0];
  const L = first.n_layers, H = first.n_heads;
  state.heads = new Set(Array.from({ length: H }, (_, h) => h));

  const el = (tag, attrs, parent) => {
    const svgTag = ["svg", "g", "line", "text"].includes(tag);
    const e = document.createElementNS(svgTag ? "http://www.w3.org/2000/svg"
      : "http://www.w3.org/1999/xhtml", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  };

  function links(t, layer, head, token) {
    const K = t.k, base = ((layer * H + head) * t.tokens.length + token) * K, out = [];
    for (let n = 0; n < K; n++) {
      const w = t.topW[base + n] / 255;
      if (w > 0) out.push([t.topIdx[base + n], w]);
    }
    return out;
  }

  function headView(t, panel) {
    const T = t.tokens.length, rowH = 16, width = 420;
    const shown = Math.min(T, t.max_rows);
    const svg = el("svg", { class: "headview", width: width, height: shown * rowH + 10 }, panel);
    const lines = el("g", {}, svg);
    const left = [], right = [];
    for (let i = 0; i < shown; i++) {
      const y = i * rowH + 12;
      const a = el("text", { x: 130, y: y, "text-anchor": "end", "data-index": i }, svg);
      a.textContent = t.tokens[i];
      const b = el("text", { x: width - 130, y: y, "text-anchor": "start" }, svg);
      b.textContent = t.tokens[i];
      left.push(a); right.push(b);
      a.addEventListener("mouseenter", () => { state.hover = i; drawLinks(); });
    }
    svg.addEventListener("mouseleave", () => { state.hover = null; drawLinks(); });
    function drawLinks() {
      while (lines.firstChild) lines.removeChild(lines.firstChild);
      left.forEach((a, i) => a.classList.toggle("active", i === state.hover));
      const queries = state.hover === null ? [] : [state.hover];
      for (const i of queries) {
        for (const h of state.heads) {
          for (const [j, w] of links(t, state.layer, h, i)) {
            if (j >= shown) continue;
            el("line", { x1: 136, y1: i * rowH + 8, x2: width - 136, y2: j * rowH + 8,
              stroke: COLOURS[h % COLOURS.length], "stroke-width": 0.5 + 5 * w,
              "stroke-opacity": Math.min(1, 0.1 + w), class: "link" }, lines);
          }
        }
      }
      svg.setAttribute("data-links", lines.childNodes.length);
    }
    drawLinks();
    if (shown < T) {
      const n = el("div", { class: "note" }, panel);
      n.textContent = `first ${shown} of ${T} tokens shown; use the heatmap for the whole text`;
    }
  }

  function paint(canvas, t, layer, head) {
    const P = t.cells, ctx = canvas.getContext("2d");
    canvas.width = P; canvas.height = P;
    const img = ctx.createImageData(P, P), off = (layer * H + head) * P * P;
    for (let n = 0; n < P * P; n++) {
      const v = t.mapBytes[off + n];  // dark = 0, bright = high weight
      img.data[4 * n] = v; img.data[4 * n + 1] = Math.round(v * 0.75);
      img.data[4 * n + 2] = Math.round(60 + v * 0.3); img.data[4 * n + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  function heatmapView(t, panel) {
    const c = el("canvas", { class: "heat" }, panel);
    paint(c, t, state.layer, state.head);
    const size = Math.min(520, Math.max(200, t.cells * 8));
    c.style.width = size + "px"; c.style.height = size + "px";
    const n = el("div", { class: "note" }, panel);
    n.textContent = `layer ${state.layer}, head ${state.head}: rows = queries, columns = keys` +
      (t.pool > 1 ? `; each cell is the mean over ${t.pool}×${t.pool} tokens` : "");
  }

  function modelView(t, panel) {
    const grid = el("div", { class: "grid" }, panel);
    grid.style.gridTemplateColumns = `repeat(${H}, 58px)`;
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < H; h++) {
        const c = el("canvas", { title: `layer ${l}, head ${h}`, "data-layer": l, "data-head": h },
          grid);
        paint(c, t, l, h);
        c.addEventListener("click", () => {
          state.layer = l; state.head = h; state.view = "heatmap"; render();
        });
      }
    }
  }

  function controls() {
    const bar = document.getElementById("controls");
    while (bar.firstChild) bar.removeChild(bar.firstChild);
    const tabs = el("div", { class: "tabs" }, bar);
    for (const v of ["head", "model", "heatmap"]) {
      const b = el("button", { "data-view": v, class: state.view === v ? "active" : "" }, tabs);
      b.textContent = v + " view";
      b.addEventListener("click", () => { state.view = v; render(); });
    }
    const ll = el("label", {}, bar); ll.textContent = "layer ";
    const ls = el("select", { id: "layer" }, ll);
    for (let l = 0; l < L; l++) {
      const o = el("option", { value: l }, ls); o.textContent = first.layer_names[l];
      if (l === state.layer) o.selected = true;
    }
    ls.addEventListener("change", () => { state.layer = +ls.value; render(); });
    const hl = el("label", {}, bar); hl.textContent = "head ";
    const hs = el("select", { id: "head" }, hl);
    for (let h = 0; h < H; h++) {
      const o = el("option", { value: h }, hs); o.textContent = h;
      if (h === state.head) o.selected = true;
    }
    hs.addEventListener("change", () => { state.head = +hs.value; render(); });
    const heads = el("div", { class: "heads", id: "heads" }, bar);
    for (let h = 0; h < H; h++) {
      const s = el("span", { "data-head": h, class: state.heads.has(h) ? "" : "off" }, heads);
      s.style.background = COLOURS[h % COLOURS.length];
      s.textContent = h;
      s.addEventListener("click", () => {
        if (state.heads.has(h)) state.heads.delete(h); else state.heads.add(h);
        render();
      });
    }
  }

  function render() {
    controls();
    const root = document.getElementById("panels");
    while (root.firstChild) root.removeChild(root.firstChild);
    for (const t of data.texts) {
      const panel = el("div", { class: "panel" }, root);
      const title = el("h2", {}, panel); title.textContent = t.text;
      if (state.view === "head") headView(t, panel);
      else if (state.view === "model") modelView(t, panel);
      else heatmapView(t, panel);
    }
    document.body.setAttribute("data-rendered", String(performance.now()));
  }
  render();
})();
