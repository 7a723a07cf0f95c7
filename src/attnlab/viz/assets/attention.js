// attnlab attention page. Data arrive as JSON in <script type="application/json" id="attnlab-data">;
// every token is put on the page with textContent, never as HTML.
//
// Each text carries one entry per measure in `values` (raw attention first): maps (L, H, P, P)
// and each token's K strongest links, as int16 codes of value / scale with one float32 scale
// per (layer, head), so a value reads back within scale / 32767 of the exact one.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("attnlab-data").textContent);
  // Head colours from the Okabe–Ito and Paul Tol palettes: told apart with the common
  // colour-vision deficiencies (the heatmaps use viridis, and a purple–orange diverging scale).
  const HEAD_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
    "#332288", "#117733", "#882255", "#44AA99", "#999933", "#AA4499"];
  const VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962",
    "#addc30", "#fde725"];
  const PUOR = ["#2d004b", "#542788", "#8073ac", "#b2abd2", "#f7f7f7", "#fdb863", "#e08214",
    "#b35806", "#7f3b08"];
  const ROW = 16;         // px per token row in the head view
  const WIDTH = 480;      // px width of the head view
  const HEAT = 360;       // px of the longer side of a heatmap
  const MARGIN_ROWS = 10; // rows drawn beyond the visible ones, so scrolling shows no gap

  // ---- data ------------------------------------------------------------------------------
  function bytes(b64) {
    const s = atob(b64), out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out.buffer;
  }
  function prepare(v) {
    v.mapQ = new Int16Array(bytes(v.maps));
    v.mapScale = new Float32Array(bytes(v.map_scale));
    v.topIdx = new Uint16Array(bytes(v.top_indices));
    v.topQ = new Int16Array(bytes(v.top_values));
    v.topScale = new Float32Array(bytes(v.top_scale));
    v.inverse = new Map();  // (layer, head) → for each key, the [query, value] links reaching it
  }
  const texts = data.texts;
  texts.forEach((t, n) => {
    t.index = n;
    t.keys = t.key_tokens || t.tokens;
    // Cross-attention: keys are other tokens (the source), so a focus names no key.
    t.cross = t.keys.length !== t.tokens.length || t.keys.some((k, i) => k !== t.tokens[i]);
    t.steps = t.steps || [];  // after generation: [{row, token}], the row that predicted each token
    for (const v of Object.values(t.values)) prepare(v);
  });
  const MEASURES = Object.keys(texts[0].values);
  // Two texts of the same length line up token by token: focus follows the position, and the
  // difference view subtracts their maps.
  const aligned = texts.length === 2 && texts[0].tokens.length === texts[1].tokens.length;
  const VIEWS = ["head", "model", "heatmap"].concat(aligned ? ["difference"] : []);
  const STEPS = Math.max(0, ...texts.map((t) => t.steps.length));

  const vals = (t) => t.values[state.measure];
  const layerOf = (v) => Math.min(state.layer, v.n_layers - 1);
  const mapIndex = (v, l, h) => l * v.n_heads + h;
  const most = (key) => Math.max(...texts.map((t) => vals(t)[key]));

  function cell(v, l, h, r, c) {
    const m = mapIndex(v, l, h);
    return v.mapQ[(m * v.rows + r) * v.cells + c] / 32767 * v.mapScale[m];
  }

  // [key, value] of query i's strongest links (every link for short texts).
  function links(t, v, l, h, i) {
    const m = mapIndex(v, l, h), base = (m * t.tokens.length + i) * v.k, out = [];
    for (let n = 0; n < v.k; n++) {
      const q = v.topQ[base + n];
      if (q !== 0) out.push([v.topIdx[base + n], q / 32767 * v.topScale[m]]);
    }
    return out;
  }

  // [query, value] of the links that reach key j ("attended by"), indexed once per head.
  function linksInto(t, v, l, h, j) {
    const m = mapIndex(v, l, h);
    if (!v.inverse.has(m)) {
      const inv = t.keys.map(() => []);
      for (let i = 0; i < t.tokens.length; i++) {
        for (const [k, w] of links(t, v, l, h, i)) inv[k].push([i, w]);
      }
      v.inverse.set(m, inv);
    }
    return v.inverse.get(m)[j];
  }

  // Link strength in [0, 1]: weights as they are; other measures relative to the map's peak.
  const strength = (v, l, h, w) =>
    Math.min(1, Math.abs(w) / (v.relative ? v.topScale[mapIndex(v, l, h)] : 1));

  function fmt(w) {
    return w === 0 || Math.abs(w) >= 0.001 ? w.toFixed(3) : w.toExponential(2);
  }

  // ---- state -----------------------------------------------------------------------------
  const state = { view: "head", measure: MEASURES[0], layer: 0, head: 0, heads: null,
    focus: null, hover: null, dir: "to", open: "heatmap", zoom: { f: 1, cx: 0.5, cy: 0.5 },
    step: 0 };  // step k > 0: replay generation up to the k-th generated token
  let redraws = [];  // per panel: redraw after a hover or a zoom, without rebuilding the page

  const clampInt = (x, lo, hi) => Math.max(lo, Math.min(hi, Math.round(x)));

  // The state a link or the Python side asked for (start, then the #fragment), checked.
  function applyState(p) {
    const int = (k, hi) => (p[k] !== undefined && isFinite(+p[k]) ? clampInt(+p[k], 0, hi) : null);
    if (VIEWS.includes(p.view)) state.view = p.view;
    if (MEASURES.includes(p.measure)) state.measure = p.measure;
    if (p.dir === "to" || p.dir === "by") state.dir = p.dir;
    // Bounds over every measure: a rollout link keeps the layer and head the raw view had.
    const bound = (key) => Math.max(...texts.flatMap((t) => MEASURES.map((m) => t.values[m][key])));
    const layer = int("layer", bound("n_layers") - 1), head = int("head", bound("n_heads") - 1);
    if (layer !== null) state.layer = layer;
    if (head !== null) { state.head = head; state.heads = new Set([head]); }
    if (p.heads === "all") state.heads = null;
    else if (typeof p.heads === "string" && p.heads) {
      state.heads = new Set(p.heads.split(".").map(Number).filter((h) => h >= 0 && h < 64));
    }
    const step = int("step", STEPS);
    if (step !== null) state.step = step;
    const text = int("text", texts.length - 1) || 0, token = int("token", 1e9);
    const side = p.side === "key" && texts[text].cross ? "key" : "query";
    const n = (side === "key" ? texts[text].keys : texts[text].tokens).length;
    if (token !== null && token < n) state.focus = { text, index: token, side };
  }

  function readHash() {
    const out = {};
    for (const [k, v] of new URLSearchParams(location.hash.slice(1))) out[k] = v;
    return out;
  }

  // The view in the URL, so a link reproduces it. replaceState: no history entry per hover,
  // and no hashchange event back into the page.
  function writeHash() {
    const p = new URLSearchParams();
    p.set("view", state.view);
    p.set("layer", state.layer);
    p.set("head", state.head);
    if (state.focus) p.set("token", state.focus.index);
    if (state.focus && state.focus.text) p.set("text", state.focus.text);
    if (state.focus && state.focus.side === "key") p.set("side", "key");
    if (state.measure !== MEASURES[0]) p.set("measure", state.measure);
    if (state.dir !== "to") p.set("dir", state.dir);
    if (state.step) p.set("step", state.step);
    const heads = shownHeads();
    if (!(heads.length === 1 && heads[0] === state.head)) {
      p.set("heads", heads.length === most("n_heads") ? "all" : heads.join("."));
    }
    const hash = "#" + p.toString();
    if (location.hash === hash) return;
    try { history.replaceState(null, "", hash); } catch (e) { /* about:srcdoc in Jupyter */ }
  }

  function shownHeads() {
    const all = Array.from({ length: most("n_heads") }, (_, h) => h);
    return state.heads === null ? all : all.filter((h) => state.heads.has(h));
  }
  // The heads a panel draws: the chosen ones it has (a rollout has one map: always it).
  const headsOf = (v) => (v.n_heads === 1 ? [0] : shownHeads().filter((h) => h < v.n_heads));

  // Which tokens a side of a panel shows: an encoder–decoder's source or target, or the one
  // sequence of a one-stack model ("self").
  function sequenceOf(t, side) {
    if (t.role === "cross") return side === "key" ? "source" : "target";
    return { encoder: "source", decoder: "target" }[t.role] || "self";
  }

  // The token a panel focuses (hover previews, click pins) as { index, side }: side "query"
  // draws what it attends to, "key" what attends to it. A focus names a token of a sequence;
  // each panel finds it where that sequence is: on both sides of a self-attention panel (the
  // "links" choice says which), on one side of cross-attention (a source token is a key, a
  // target token a query: the source ↔ target view). Panels of the same text share positions;
  // in the other text of a comparison, the same position when the two line up, else the same
  // token text (its occurrence nearest that position), else none.
  function focusIn(t) {
    const row = stepRow(t);
    if (row !== null && !state.hover) return { index: row, side: "query" };  // a step's query
    const f = state.hover || state.focus;
    if (!f) return null;
    const origin = texts[f.text], seq = sequenceOf(origin, f.side || "query");
    const qs = sequenceOf(t, "query"), ks = sequenceOf(t, "key");
    let side = null;
    if (qs === ks) side = seq === qs ? (state.dir === "by" ? "key" : "query") : null;
    else side = seq === qs ? "query" : seq === ks ? "key" : null;
    if (side === null) return null;
    if (t.group === origin.group || aligned) return { index: f.index, side };
    const word = (f.side === "key" ? origin.keys : origin.tokens)[f.index];
    let best = null;
    (side === "key" ? t.keys : t.tokens).forEach((w, i) => {
      if (w === word && (best === null || Math.abs(i - f.index) < Math.abs(best - f.index))) best = i;
    });
    return best === null ? null : { index: best, side };
  }

  // The query row of the chosen generation step in this panel (null: no step chosen, or a
  // panel without generated tokens, like an encoder's).
  function stepRow(t) {
    if (!state.step || !t.steps.length) return null;
    return t.steps[Math.min(state.step, t.steps.length) - 1].row;
  }

  // ---- DOM helpers -----------------------------------------------------------------------
  const SVG = ["svg", "g", "line", "text"];
  function el(tag, attrs, parent) {
    const e = document.createElementNS(SVG.includes(tag) ? "http://www.w3.org/2000/svg"
      : "http://www.w3.org/1999/xhtml", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function textEl(tag, attrs, parent, text) {
    const e = el(tag, attrs, parent);
    e.textContent = text;
    return e;
  }

  const tooltip = document.getElementById("tooltip");
  function showTip(event, what, value) {
    clear(tooltip);
    textEl("span", { class: "tip-what" }, tooltip, what + ": ");
    textEl("span", { class: "tip-value", "data-value": String(value) }, tooltip, fmt(value));
    tooltip.hidden = false;
    tooltip.style.left = event.clientX + 14 + "px";
    tooltip.style.top = event.clientY + 14 + "px";
  }
  function hideTip() { tooltip.hidden = true; }

  // ---- colour ----------------------------------------------------------------------------
  function ramp(anchors) {
    const rgb = anchors.map((c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)));
    return Array.from({ length: 256 }, (_, n) => {
      const x = n / 255 * (rgb.length - 1), i = Math.min(rgb.length - 2, Math.floor(x));
      return rgb[i].map((a, c) => Math.round(a + (rgb[i + 1][c] - a) * (x - i)));
    });
  }
  const SEQUENTIAL = ramp(VIRIDIS), DIVERGING = ramp(PUOR);
  // Colour of value / scale: viridis from 0 to 1, or purple (−1) – white (0) – orange (+1).
  function colour(x, signed) {
    if (!signed) return SEQUENTIAL[clampInt(Math.max(0, x) * 255, 0, 255)];
    return DIVERGING[clampInt((x + 1) * 127.5, 0, 255)];
  }

  // An offscreen canvas with one pixel per map cell.
  function image(rows, cols, value, scale, signed) {
    const c = document.createElement("canvas");
    c.width = cols; c.height = rows;
    const ctx = c.getContext("2d"), img = ctx.createImageData(cols, rows);
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < cols; k++) {
        const rgb = colour(value(r, k) / scale, signed), n = 4 * (r * cols + k);
        img.data[n] = rgb[0]; img.data[n + 1] = rgb[1]; img.data[n + 2] = rgb[2];
        img.data[n + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    return c;
  }

  // ---- head view -------------------------------------------------------------------------
  function visibleRows(box, n) {
    const first = Math.floor(box.scrollTop / ROW) - MARGIN_ROWS;
    const last = Math.ceil((box.scrollTop + (box.clientHeight || 640)) / ROW) + MARGIN_ROWS;
    return [Math.max(0, first), Math.min(n, last)];
  }

  function headView(t, panel) {
    const v = vals(t), l = layerOf(v), n = Math.max(t.tokens.length, t.keys.length);
    const row = stepRow(t);
    if (row !== null) {
      const k = Math.min(state.step, t.steps.length);
      textEl("div", { class: "note step-note" }, panel, `step ${k} of ${t.steps.length}: ` +
        `the query of "${t.tokens[row]}" (row ${row}) predicted "${t.steps[k - 1].token}"`);
    }
    const box = el("div", { class: "scroll" }, panel);
    const svg = el("svg", { class: "headview", width: WIDTH, height: n * ROW + 8,
      "data-text": t.index }, box);
    const lines = el("g", { class: "links" }, svg), labels = el("g", {}, svg);
    let range = null;
    const draw = () => { range = visibleRows(box, n); drawHead(t, v, l, svg, lines, labels, range); };
    // Long texts: rows are drawn as they scroll into view, not all at once.
    box.addEventListener("scroll", () => requestAnimationFrame(() => {
      const now = visibleRows(box, n);
      if (now[0] !== range[0] || now[1] !== range[1]) draw();
    }));
    svg.addEventListener("mouseleave", () => {
      if (state.hover) { state.hover = null; refresh(); }
    });
    lines.addEventListener("mousemove", (e) => {
      const d = e.target.dataset;
      if (d.value === undefined) return;
      showTip(e, `"${t.tokens[+d.q]}" → "${t.keys[+d.k]}", head ${d.head}`, +d.value);
    });
    lines.addEventListener("mouseleave", hideTip);
    redraws.push(draw);
    draw();
    const f = focusIn(t);
    if (f && f.index * ROW > box.clientHeight) box.scrollTop = f.index * ROW - box.clientHeight / 2;
  }

  function drawHead(t, v, l, svg, lines, labels, [a, b]) {
    clear(lines); clear(labels);
    const T = t.tokens.length, S = t.keys.length, fo = focusIn(t);
    const f = fo && fo.index, by = fo !== null && fo.side === "key";
    const heads = headsOf(v);
    // At a generation step, later tokens are not there yet: greyed, without links.
    const row = stepRow(t), lastQ = row === null ? T - 1 : row;
    const lastK = row === null || t.cross ? S - 1 : row;
    for (let i = a; i < Math.min(b, T); i++) {
      label(labels, t, i, "query", !by && i === f, i > lastQ);
    }
    for (let j = a; j < Math.min(b, S); j++) label(labels, t, j, "key", by && j === f, j > lastK);
    // Every link of the rows in view, faintly (what the heads do at a glance) ...
    for (const h of heads) {
      for (let i = a; i < Math.min(b, T, lastQ + 1); i++) {
        for (const [j, w] of links(t, v, l, h, i)) link(lines, v, l, h, i, j, w, false);
      }
    }
    // ... and the focused token's links strong, with the values when one head is shown.
    if (fo !== null) {
      for (const h of heads) {
        const pairs = by ? linksInto(t, v, l, h, f).filter(([i]) => i <= lastQ)
          .map(([i, w]) => [i, f, w]) : links(t, v, l, h, f).map(([j, w]) => [f, j, w]);
        for (const [i, j, w] of pairs) {
          link(lines, v, l, h, i, j, w, true);
          if (heads.length === 1) number(labels, by ? i : j, by, w);
        }
      }
    }
    svg.setAttribute("data-links", lines.childNodes.length);
  }

  const LEFT = 160, RIGHT = WIDTH - 160;
  function label(parent, t, i, side, active, future) {
    const query = side === "query";
    const a = textEl("text", { x: query ? LEFT : RIGHT, y: i * ROW + 12,
      "text-anchor": query ? "end" : "start", "data-index": i, "data-side": side,
      class: "token" + (active ? " active" : "") + (future ? " future" : "") }, parent,
    query ? t.tokens[i] : t.keys[i]);
    // In cross-attention the key side is the source: hovering it focuses a source token.
    const own = t.cross ? side : "query";
    a.addEventListener("mouseenter", () => {
      const h = state.hover;
      if (h && h.text === t.index && h.index === i && h.side === own) return;  // a redraw's
      state.hover = { text: t.index, index: i, side: own };
      refresh();
    });
    a.addEventListener("click", () => {
      const f = state.focus;
      const same = f && f.text === t.index && f.index === i && f.side === own;
      state.focus = same ? null : { text: t.index, index: i, side: own };
      state.hover = null;
      render();
    });
  }

  function link(parent, v, l, h, i, j, w, strong) {
    const s = strength(v, l, h, w);
    if (!strong && s < 0.02) return;  // hairlines would only grey the picture
    el("line", { x1: LEFT + 6, y1: i * ROW + 8, x2: RIGHT - 6, y2: j * ROW + 8,
      stroke: HEAD_COLOURS[h % HEAD_COLOURS.length],
      "stroke-width": strong ? 1 + 5 * s : 0.5 + 2 * s,
      "stroke-opacity": strong ? 0.25 + 0.75 * s : 0.06 + 0.3 * s,
      "stroke-dasharray": w < 0 ? "4 3" : "none",  // negative values of signed measures
      class: strong ? "link strong" : "link", "data-q": i, "data-k": j, "data-head": h,
      "data-value": w }, parent);
  }

  // The focused token's value next to each partner token (outside its label).
  function number(parent, i, left, w) {
    textEl("text", { x: left ? 4 : WIDTH - 4, y: i * ROW + 12, "text-anchor": left ? "start" : "end",
      class: "value" }, parent, fmt(w));
  }

  // ---- heatmap and difference views --------------------------------------------------------
  // The part of a rows × cols map in view: zoom factor f about the centre (cx, cy), in cells.
  function windowOf(rows, cols) {
    const f = state.zoom.f, h = rows / f, w = cols / f;
    const y0 = Math.max(0, Math.min(rows - h, state.zoom.cy * rows - h / 2));
    const x0 = Math.max(0, Math.min(cols - w, state.zoom.cx * cols - w / 2));
    return { x0, y0, w, h };
  }

  // src: { rows, cols, value(r, c), rowLabel(r), colLabel(c), cellName(r, c), scale, signed,
  //        label }: one copy of the drawing, zoom and tooltip for texts and differences.
  function heatPanel(panel, src) {
    const unit = HEAT / Math.max(src.rows, src.cols);
    const cw = Math.round(src.cols * unit), ch = Math.round(src.rows * unit);
    const wrap = el("div", { class: "heatwrap" }, panel);
    const ylab = el("div", { class: "ylabels", style: `height:${ch}px` }, wrap);
    const canvas = el("canvas", { class: "heat", width: cw, height: ch, "data-rows": src.rows,
      "data-cols": src.cols }, wrap);
    const scaleBar = bar(wrap, src, ch);
    el("div", {}, wrap);
    const xlab = el("div", { class: "xlabels", style: `width:${cw}px` }, wrap);
    const off = image(src.rows, src.cols, src.value, src.scale, src.signed);
    let exact = null;  // the exact tile drawn over the view, when zoomed in far enough
    const draw = () => {
      const win = windowOf(src.rows, src.cols), ctx = canvas.getContext("2d");
      ctx.imageSmoothingEnabled = false;
      ctx.clearRect(0, 0, cw, ch);
      ctx.drawImage(off, win.x0, win.y0, win.w, win.h, 0, 0, cw, ch);
      exact = src.tiles ? drawExact(src, win, ctx, cw, ch, draw) : null;
      scaleBar.show(exact ? exact.scale : src.scale, exact !== null);
      if (exact) {
        canvas.setAttribute("data-exact", [exact.q0, exact.q1, exact.k0, exact.k1].join(","));
        canvas.setAttribute("data-view", exact.view.join(","));
        const [qa, qb, ka, kb] = exact.view;
        axisLabels(ylab, qa, qb - qa, ch / (qb - qa), src.tiles.T, src.tiles.query, "y",
          src.tiles.focus);
        axisLabels(xlab, ka, kb - ka, cw / (kb - ka), src.tiles.S, src.tiles.key, "x",
          src.tiles.keyFocus);
        return;
      }
      canvas.removeAttribute("data-exact");
      canvas.removeAttribute("data-view");
      axisLabels(ylab, win.y0, win.h, ch / win.h, src.rows, src.rowLabel, "y", src.focusRow);
      axisLabels(xlab, win.x0, win.w, cw / win.w, src.cols, src.colLabel, "x", src.focusCol);
    };
    canvas.addEventListener("mousemove", (e) => {
      const win = windowOf(src.rows, src.cols), rect = canvas.getBoundingClientRect();
      if (exact) {
        const [qa, qb, ka, kb] = exact.view;
        // Inside the border: a token is about a pixel wide here.
        const y = (e.clientY - rect.top - canvas.clientTop) / canvas.clientHeight;
        const x = (e.clientX - rect.left - canvas.clientLeft) / canvas.clientWidth;
        const i = Math.floor(qa + y * (qb - qa)), j = Math.floor(ka + x * (kb - ka));
        if (i >= exact.q0 && i < exact.q1 && j >= exact.k0 && j < exact.k1) {
          showTip(e, `query "${src.tiles.query(i)}" (${i}), key "${src.tiles.key(j)}" (${j}), ` +
            "exact", exact.values[(i - exact.q0) * (exact.k1 - exact.k0) + (j - exact.k0)]);
        }
        return;
      }
      const r = Math.floor(win.y0 + (e.clientY - rect.top) / rect.height * win.h);
      const c = Math.floor(win.x0 + (e.clientX - rect.left) / rect.width * win.w);
      if (r >= 0 && r < src.rows && c >= 0 && c < src.cols) {
        showTip(e, src.cellName(r, c), src.value(r, c));
      }
    });
    canvas.addEventListener("mouseleave", hideTip);
    zoomByMouse(canvas, src);
    redraws.push(draw);
    draw();
  }

  // Token labels as page text (readable, selectable, found by the browser's search), thinned
  // so that neighbours stay at least 12 px apart; the focused token's in bold.
  function axisLabels(box, start, span, px, n, name, axis, focus) {
    clear(box);
    const step = Math.max(1, Math.ceil(12 / px));
    for (let i = Math.ceil(start / step) * step; i < Math.min(n, start + span); i += step) {
      const pos = (i - start + 0.5) * px;
      if (pos < 0) continue;
      textEl("div", { class: i === focus ? "axis active" : "axis", "data-index": i,
        style: axis === "y" ? `top:${pos - 7}px` : `left:${pos - 7}px` }, box, name(i));
    }
  }

  // The colour bar; show(scale, exact) relabels it when an exact tile replaces the block means.
  function bar(parent, src, height) {
    const box = el("div", { class: "bar" }, parent);
    const top = textEl("div", { class: "bar-top" }, box, fmt(src.scale));
    const c = el("canvas", { width: 12, height: 128, style: `height:${height - 36}px` }, box);
    const ctx = c.getContext("2d");
    for (let y = 0; y < 128; y++) {
      const x = 1 - y / 127, rgb = colour(src.signed ? 2 * x - 1 : x, src.signed);
      ctx.fillStyle = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
      ctx.fillRect(0, y, 12, 1);
    }
    const bottom = textEl("div", { class: "bar-bottom" }, box, fmt(src.signed ? -src.scale : 0));
    const label = textEl("div", { class: "bar-label" }, box, src.label);
    return { show(scale, exact) {
      top.textContent = fmt(scale);
      bottom.textContent = fmt(src.signed ? -scale : 0);
      label.textContent = exact ? `${src.label} (exact, this view)` : src.label;
    } };
  }

  // ---- exact tiles from a server (attnlab serve) -------------------------------------------
  // A long text's page carries block means; zoomed in until at most SPAN tokens show on each
  // side, the heatmap asks the server for the exact weights of the tokens in view (in tiles
  // aligned to SNAP tokens, so panning reuses them) and draws them over the block means.
  const SPAN = 448, SNAP = 64, TILE = 512;
  const tileStore = new Map();  // url → { promise, tile once it has come }; the last 32
  function fetchTile(url) {
    if (!tileStore.has(url)) {
      const entry = {};
      entry.promise = fetch(url).then(async (r) => {
        if (!r.ok) {
          let message = `the server answered ${r.status}`;
          try { message = (await r.json()).error || message; } catch (e) { /* not JSON */ }
          throw new Error(message);
        }
        const values = new Float32Array(await r.arrayBuffer());
        let scale = 1e-12;
        for (const v of values) scale = Math.max(scale, Math.abs(v));
        entry.tile = { values, scale };
        return entry.tile;
      });
      tileStore.set(url, entry);
      if (tileStore.size > 32) tileStore.delete(tileStore.keys().next().value);
    }
    return tileStore.get(url);
  }

  // Draws the exact tile covering the view if it has arrived (else asks for it and redraws
  // when it comes); returns what was drawn, or null (not zoomed in enough, or still coming).
  function drawExact(src, win, ctx, cw, ch, redraw) {
    const x = src.tiles, snap = (a) => Math.floor(a / SNAP) * SNAP;
    const qa = win.y0 * x.pool, qb = Math.min(x.T, (win.y0 + win.h) * x.pool);
    const ka = win.x0 * x.kpool, kb = Math.min(x.S, (win.x0 + win.w) * x.kpool);
    if (qb - qa > SPAN || kb - ka > SPAN) return null;
    const q0 = snap(qa), k0 = snap(ka), q1 = Math.min(x.T, q0 + TILE), k1 = Math.min(x.S, k0 + TILE);
    const url = `${x.url}?text=${x.text}&layer=${x.layer}&head=${x.head}` +
      `&q0=${q0}&q1=${q1}&k0=${k0}&k1=${k1}`;
    const entry = fetchTile(url), got = entry.tile;
    if (!got) {
      entry.promise.then(() => redraw(), (err) => x.failed(err.message));
      return null;
    }
    if (!got.image) {
      got.image = image(q1 - q0, k1 - k0, (r, k) => got.values[r * (k1 - k0) + k], got.scale, false);
    }
    const c = got.image;
    const px = cw / (kb - ka), py = ch / (qb - qa);
    ctx.drawImage(c, (k0 - ka) * px, (q0 - qa) * py, (k1 - k0) * px, (q1 - q0) * py);
    return { q0, q1, k0, k1, values: got.values, scale: got.scale, view: [qa, qb, ka, kb] };
  }

  // Wheel zooms about the pointer, dragging pans; every heatmap on the page follows.
  function zoomByMouse(canvas, src) {
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      const rect = canvas.getBoundingClientRect();
      zoomAt(e.deltaY < 0 ? 1.25 : 0.8, (e.clientX - rect.left) / rect.width,
        (e.clientY - rect.top) / rect.height, src);
    }, { passive: false });
    let drag = null;
    canvas.addEventListener("mousedown", (e) => { drag = [e.clientX, e.clientY]; });
    window.addEventListener("mouseup", () => { drag = null; });
    canvas.addEventListener("mousemove", (e) => {
      if (!drag || !(e.buttons & 1)) return;
      const rect = canvas.getBoundingClientRect();
      state.zoom.cx -= (e.clientX - drag[0]) / rect.width / state.zoom.f;
      state.zoom.cy -= (e.clientY - drag[1]) / rect.height / state.zoom.f;
      drag = [e.clientX, e.clientY];
      settleZoom();
    });
  }

  // Zoom by `factor` keeping the point at fractions (fx, fy) of the canvas in place.
  function zoomAt(factor, fx, fy, src) {
    const win = windowOf(src.rows, src.cols), z = state.zoom;
    const px = (win.x0 + fx * win.w) / src.cols, py = (win.y0 + fy * win.h) / src.rows;
    const f = Math.max(1, Math.min(64, z.f * factor));
    z.cx = px + (0.5 - fx) / f;
    z.cy = py + (0.5 - fy) / f;
    z.f = f;
    settleZoom();
  }

  function settleZoom() {
    const z = state.zoom, half = 0.5 / z.f;
    z.cx = Math.max(half, Math.min(1 - half, z.cx));
    z.cy = Math.max(half, Math.min(1 - half, z.cy));
    redraws.forEach((d) => d());
  }

  // Cells name their tokens; pooled cells the token ranges they average.
  function tokenRange(tokens, c, pool) {
    if (pool === 1) return `"${tokens[c]}"`;
    const a = c * pool, b = Math.min(tokens.length, a + pool) - 1;
    return `"${tokens[a]}"…"${tokens[b]}" (${a}–${b})`;
  }

  function textSource(t, l, h, panel) {
    const v = vals(t), pool = t.pool, kpool = t.key_pool || pool, fo = focusIn(t);
    // The focused token's row (a query) and column (a key), where it is one.
    const both = sequenceOf(t, "query") === sequenceOf(t, "key");
    const fq = fo && (fo.side === "query" || both) ? fo.index : null;
    const fk = fo && (fo.side === "key" || both) ? fo.index : null;
    // Exact tiles: on a server's page, for raw weights of a pooled (long) text.
    const tiles = data.tiles && state.measure === "attention" && (pool > 1 || kpool > 1) && panel ? {
      url: data.tiles, text: t.index, layer: l, head: h, T: t.tokens.length, S: t.keys.length,
      pool, kpool, focus: fq, keyFocus: fk,
      query: (i) => t.tokens[i], key: (j) => t.keys[j],
      failed: (message) => {
        if (panel.querySelector(".tile-error")) return;
        textEl("div", { class: "note tile-error" }, panel, `exact weights unavailable: ${message}`);
      },
    } : null;
    return {
      tiles,
      focusRow: fq === null ? null : Math.floor(fq / pool),
      focusCol: fk === null ? null : Math.floor(fk / kpool),
      rows: v.rows, cols: v.cells, signed: v.signed, label: v.label,
      scale: v.mapScale[mapIndex(v, l, h)],
      value: (r, c) => cell(v, l, h, r, c),
      rowLabel: (r) => t.tokens[Math.min(r * pool, t.tokens.length - 1)],
      colLabel: (c) => t.keys[Math.min(c * kpool, t.keys.length - 1)],
      cellName: (r, c) => `query ${tokenRange(t.tokens, r, pool)}, key ${tokenRange(t.keys, c, kpool)}` +
        (pool > 1 ? ", block mean" : ""),
    };
  }

  function heatmapView(t, panel) {
    const v = vals(t), l = layerOf(v), h = Math.min(state.head, v.n_heads - 1);
    heatPanel(panel, textSource(t, l, h, panel));
    textEl("div", { class: "note" }, panel, `${v.layer_names[l]}, head ${h}: rows = queries, ` +
      "columns = keys; wheel to zoom, drag to pan" +
      (t.pool > 1 ? `; each cell is the mean over ${t.pool}×${t.pool} tokens` +
        (data.tiles && state.measure === "attention" ? ", exact weights once zoomed in" : "") : ""));
  }

  function differenceView(panel) {
    const [a, b] = texts, v = vals(a), l = layerOf(v), h = Math.min(state.head, v.n_heads - 1);
    const sa = textSource(a, l, h), sb = textSource(b, l, h);
    const both = (x, y) => (x === y ? x : `${x}/${y}`);
    const value = (r, c) => sa.value(r, c) - sb.value(r, c);
    let scale = 1e-12;
    for (let r = 0; r < sa.rows; r++) for (let c = 0; c < sa.cols; c++) {
      scale = Math.max(scale, Math.abs(value(r, c)));
    }
    textEl("h2", {}, panel, `first − second: ${a.text} − ${b.text}`);
    heatPanel(panel, { rows: sa.rows, cols: sa.cols, signed: true, scale, value,
      label: `difference of ${v.label}`,
      rowLabel: (r) => both(sa.rowLabel(r), sb.rowLabel(r)),
      colLabel: (c) => both(sa.colLabel(c), sb.colLabel(c)),
      cellName: (r, c) => `${both(sa.cellName(r, c), sb.cellName(r, c))}, first − second` });
    textEl("div", { class: "note" }, panel, `${v.layer_names[l]}, head ${h}: orange = more ` +
      "in the first text, purple = more in the second");
  }

  // ---- model view ------------------------------------------------------------------------
  function modelView(t, panel) {
    const v = vals(t);
    const grid = el("div", { class: "grid" }, panel);
    grid.style.gridTemplateColumns = `64px repeat(${v.n_heads}, 58px)`;
    el("div", {}, grid);
    for (let h = 0; h < v.n_heads; h++) textEl("div", { class: "label" }, grid, `head ${h}`);
    for (let l = 0; l < v.n_layers; l++) {
      textEl("div", { class: "label", title: v.layer_names[l] }, grid, `layer ${l}`);
      for (let h = 0; h < v.n_heads; h++) {
        const src = textSource(t, l, h);
        const c = image(src.rows, src.cols, src.value, src.scale, src.signed);
        c.setAttribute("title", `${v.layer_names[l]}, head ${h}`);
        c.setAttribute("data-layer", l); c.setAttribute("data-head", h);
        grid.appendChild(c);
        c.addEventListener("click", () => {
          state.layer = l; state.head = h; state.heads = new Set([h]); state.view = state.open;
          render();
        });
      }
    }
  }

  // ---- controls and keyboard ---------------------------------------------------------------
  function select(bar, id, text, options, value, onChange) {
    const lab = textEl("label", {}, bar, text + " ");
    const s = el("select", { id }, lab);
    for (const [v, name] of options) {
      const o = textEl("option", { value: v }, s, name);
      if (String(v) === String(value)) o.selected = true;
    }
    s.addEventListener("change", () => { onChange(s.value); render(); });
  }

  function controls() {
    const bar = document.getElementById("controls");
    clear(bar);
    const tabs = el("div", { class: "tabs" }, bar);
    for (const view of VIEWS) {
      const b = textEl("button", { "data-view": view, class: state.view === view ? "active" : "" },
        tabs, view + " view");
      b.addEventListener("click", () => { state.view = view; render(); });
    }
    if (MEASURES.length > 1) {
      select(bar, "measure", "values", MEASURES.map((m) => [m, texts[0].values[m].label]),
        state.measure, (m) => { state.measure = m; });
    }
    const v = texts.map(vals).reduce((a, b) => (b.n_layers > a.n_layers ? b : a));
    select(bar, "layer", "layer", v.layer_names.map((name, l) => [l, name]), layerOf(v),
      (l) => { state.layer = +l; });
    select(bar, "head", "head", Array.from({ length: v.n_heads }, (_, h) => [h, h]),
      Math.min(state.head, v.n_heads - 1), (h) => setHead(+h, false));
    if (state.view === "head") headControls(bar, v);
    if (state.view === "model") {
      select(bar, "open", "click opens", [["heatmap", "heatmap view"], ["head", "head view"]],
        state.open, (o) => { state.open = o; });
    }
    if (state.view === "heatmap" || state.view === "difference") zoomControls(bar);
    if (STEPS) stepControl(bar);
    const m = texts[0].values[state.measure];
    document.getElementById("meaning").textContent = `${m.label}: ${m.meaning}`;
  }

  function headControls(bar, v) {
    select(bar, "dir", "links", [["to", "what the token attends to"],
      ["by", "what attends to the token"]], state.dir, (d) => { state.dir = d; });
    const heads = el("div", { class: "heads", id: "heads" }, bar);
    const shown = new Set(shownHeads());
    for (let h = 0; h < v.n_heads; h++) {
      const s = textEl("span", { "data-head": h, class: shown.has(h) ? "" : "off",
        title: "click: show or hide this head" }, heads, h);
      s.style.background = HEAD_COLOURS[h % HEAD_COLOURS.length];
      s.addEventListener("click", () => {
        const now = new Set(shownHeads());
        if (now.has(h)) now.delete(h); else now.add(h);
        state.heads = now;
        render();
      });
    }
    const all = textEl("button", { id: "all-heads" }, bar, "all heads");
    all.addEventListener("click", () => { state.heads = null; render(); });
  }

  // Replays generation: step k shows the tokens fed so far and focuses the query that
  // predicted the k-th generated token; 0 shows every token.
  function stepControl(bar) {
    const lab = textEl("label", {}, bar, "generation step ");
    const input = el("input", { id: "step", type: "range", min: 0, max: STEPS, step: 1,
      value: state.step }, lab);
    textEl("span", { id: "step-text" }, lab, state.step ? ` ${state.step} of ${STEPS}` : " all");
    input.addEventListener("input", () => {
      state.step = +input.value;
      document.getElementById("step-text").textContent =
        state.step ? ` ${state.step} of ${STEPS}` : " all";
      drawPanels();
    });
  }

  function zoomControls(bar) {
    const z = el("div", { class: "zoom" }, bar);
    for (const [id, text, factor] of [["zoom-in", "+", 2], ["zoom-out", "−", 0.5],
      ["zoom-reset", "1:1", 0]]) {
      const b = textEl("button", { id }, z, text);
      b.addEventListener("click", () => {
        if (factor === 0) state.zoom = { f: 1, cx: 0.5, cy: 0.5 };
        else state.zoom.f = Math.max(1, Math.min(64, state.zoom.f * factor));
        settleZoom();
      });
    }
  }

  function setHead(h, render_ = true) {
    state.head = clampInt(h, 0, most("n_heads") - 1);
    state.heads = new Set([state.head]);
    if (render_) render();
  }

  // ←/→ heads, ↑/↓ layers, Esc clears the focus. Form controls keep their own arrow keys.
  document.addEventListener("keydown", (e) => {
    if (e.target.closest && e.target.closest("select, input, textarea")) return;
    const moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    if (e.key === "Escape") {
      state.focus = null; state.hover = null;
    } else if (moves[e.key]) {
      const [dl, dh] = moves[e.key];
      state.layer = clampInt(state.layer + dl, 0, most("n_layers") - 1);
      if (dh) { setHead(state.head + dh, false); }
    } else {
      return;
    }
    e.preventDefault();
    render();
  });

  // ---- page ------------------------------------------------------------------------------
  function refresh() { redraws.forEach((d) => d()); }

  function render() {
    controls();
    drawPanels();
  }

  // The panels alone (the step slider redraws them while it is dragged, keeping itself).
  function drawPanels() {
    redraws = [];
    const root = document.getElementById("panels");
    clear(root);
    hideTip();
    if (state.view === "difference") {
      differenceView(el("div", { class: "panel" }, root));
    } else {
      for (const t of texts) {
        const panel = el("div", { class: "panel", "data-text": t.index }, root);
        textEl("h2", {}, panel, t.text);
        // Panels of another shape (an encoder–decoder's stacks) say so rather than show
        // another layer; one-map measures (rollout) have no layer or head to choose.
        const v = vals(t), missing = (v.n_layers > 1 && state.layer >= v.n_layers) ||
          (v.n_heads > 1 && state.head >= v.n_heads);
        if (state.view !== "model" && missing) {
          textEl("div", { class: "note" }, panel,
            `this panel has ${v.n_layers} layers × ${v.n_heads} heads`);
        } else if (state.view === "head") headView(t, panel);
        else if (state.view === "model") modelView(t, panel);
        else heatmapView(t, panel);
      }
    }
    writeHash();
    document.body.setAttribute("data-rendered", String(performance.now()));
  }

  // A link's #fragment is the whole view: it replaces the start's focus, not adds to it.
  function fromHash() {
    const p = readHash();
    if (Object.keys(p).length) state.focus = null;
    applyState(p);
  }
  applyState(data.start || {});
  fromHash();
  window.addEventListener("hashchange", () => { fromHash(); render(); });
  render();
})();
