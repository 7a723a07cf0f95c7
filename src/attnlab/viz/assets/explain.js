// attnlab explain: one attention computation of a real model, step by step, one card a step.
// Python (attnlab.explain) computed every number from the model's own modules; this script only
// chooses which ones to show (token, head, scaling on/off, causal mask on/off) and draws them.
// Texts reach the page through textContent only. No network: everything is in this file.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("attnlab-explain-data").textContent);
  const M = DATA.meta;

  function decode(entry) {
    const bytes = Uint8Array.from(atob(entry.data), (c) => c.charCodeAt(0));
    return { shape: entry.shape, data: new Float32Array(bytes.buffer) };
  }
  function decodeAll(group) {
    const out = {};
    for (const name of Object.keys(group)) out[name] = decode(group[name]);
    return out;
  }
  const FIXED = decodeAll(DATA.fixed);
  const VARIANTS = {};
  for (const key of Object.keys(DATA.variants)) VARIANTS[key] = decodeAll(DATA.variants[key]);

  // A row of a (..., n) tensor as a plain array: index = leading indices.
  function row(t, ...index) {
    const shape = t.shape;
    const n = shape[shape.length - 1];
    let offset = 0;
    for (let d = 0; d < shape.length - 1; d++) offset = (offset + (index[d] || 0)) * shape[d + 1];
    return Array.from(t.data.subarray(offset, offset + n));
  }
  const slice = (a, from, to) => a.slice(from, to);

  const state = {
    token: DATA.start.token, head: DATA.start.head,
    scale: DATA.start.scale, mask: DATA.start.mask,
  };
  const variantKey = (s) => `s${s.scale ? 1 : 0}m${s.mask ? 1 : 0}`;
  const hasMaskToggle = M.kind === "gpt";

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const fmt = (x) => (x === -Infinity ? "−∞" : x === Infinity ? "∞" : (x < 0 ? "−" : "") + Math.abs(x).toFixed(3));
  const tokenLabel = (i) => JSON.stringify(M.tokens[i]);

  // ---- the cards: each returns {title, formula, shape, vectors: {label: array}, kind} ----
  function cardsFor(s, key) {
    const V = VARIANTS[key];
    const i = s.token, h = s.head, dh = M.d_head, D = M.d_model, H = M.n_heads, T = M.tokens.length;
    const hs = (t) => slice(row(FIXED[t], i), h * dh, (h + 1) * dh);
    const headRow = (t) => row(t, h, i);
    const sq = Math.sqrt(dh);
    const cards = [];
    cards.push({ id: "tokens", title: "1. Tokens", formula: "text → tokenizer → ids",
      shape: `(T,) = (${T},)`, tokens: true, vectors: { ids: M.ids.map(Number) } });
    const emb = { "token embedding E[id]": row(FIXED.token, i), "position": row(FIXED.position, i) };
    if (M.kind === "bert") {
      emb["token type"] = row(FIXED.token_type, i);
      emb["sum"] = row(FIXED.embeddings, i);
      emb["LayerNorm(sum)"] = row(FIXED.embeddings_norm, i);
    } else {
      emb["sum"] = row(FIXED.embeddings, i);
    }
    const posText = M.positional === "sinusoidal"
      ? `s·PE, PE(pos, 2i) = sin(pos/10000^(2i/D)), PE(pos, 2i+1) = cos(…) (fixed); ` +
        `s = ${M.position_scale.toPrecision(4)} = 0.02·√2: the table's RMS (1/√2) brought to the ` +
        "token embeddings' 0.02"
      : "a learned table P[pos]";
    cards.push({ id: "embeddings", title: "2. Embeddings + positional encoding",
      formula: M.kind === "bert" ? `e = LayerNorm(E[id] + P[pos] + TokenType[0]); P: ${posText}`
        : `e = E[id] + P[pos]; P: ${posText}`,
      shape: `(T, D) = (${T}, ${D})`, vectors: emb });
    const input = { x: row(FIXED.x, i) };
    let inputFormula = M.layer === 0 ? "x = the embeddings" : `x = hidden state after layer ${M.layer - 1}`;
    if (M.kind === "gpt") {
      input["LayerNorm₁(x)"] = row(FIXED.norm1, i);
      inputFormula += "; pre-norm: the attention reads LayerNorm₁(x)";
    }
    cards.push({ id: "layer_input", title: `3. Input of layer ${M.layer}`, formula: inputFormula,
      shape: `(T, D) = (${T}, ${D})`, vectors: input });
    const src = M.kind === "gpt" ? "LayerNorm₁(x)" : "x";
    cards.push({ id: "qkv", title: `4. Q, K, V projections, split into ${H} heads`,
      formula: `Q = ${src}·W_Q, K = ${src}·W_K, V = ${src}·W_V (each W is D×D); ` +
        `head ${h} takes columns ${h * dh}…${(h + 1) * dh - 1}`,
      shape: `(T, D) = (${T}, ${D}) → (T, H, d_h) = (${T}, ${H}, ${dh}) → (H, T, d_h): ${D} → ${H}×${dh}`,
      vectors: { [`q (token ${i}, head ${h})`]: hs("q"), [`k (token ${i}, head ${h})`]: hs("k"),
        [`v (token ${i}, head ${h})`]: hs("v") } });
    cards.push({ id: "scores", title: "5. Scores q·k", formula: `s_j = q_${i} · k_j for every key j`,
      shape: `(H, T, T) = (${H}, ${T}, ${T}); this row: (${T},)`, perKey: true,
      vectors: { "q·k": row(FIXED.scores, h, i) } });
    cards.push({ id: "scaling", title: "6. Scaling by 1/√d_k",
      formula: s.scale ? `s_j / √d_k = s_j / √${dh} = s_j / ${sq.toFixed(3)}`
        : "not scaled (the pitfall): the scores keep a spread that grows like √d_k",
      shape: `(${T},)`, perKey: true, slider: true, vectors: { scaled: headRow(V.scaled) } });
    cards.push({ id: "mask", title: "7. Mask",
      formula: !hasMaskToggle ? "no mask: an encoder lets every token see every other (padding would be masked)"
        : s.mask ? `causal: keys after token ${i} get −∞, so they get weight 0`
          : "no causal mask (the pitfall): future tokens are visible",
      shape: `(${T},)`, perKey: true, vectors: { masked: headRow(V.masked) } });
    cards.push({ id: "softmax", title: "8. Softmax", formula: "α_j = exp(s_j) / Σ_k exp(s_k); the weights sum to 1",
      shape: `(H, T, T) = (${H}, ${T}, ${T}); this row: (${T},)`, perKey: true, bars: true,
      vectors: { "α": headRow(V.weights) } });
    cards.push({ id: "weighted_sum", title: "9. Weighted sum of V", formula: `z = Σ_j α_j v_j (head ${h})`,
      shape: `(H, T, d_h) = (${H}, ${T}, ${dh}); this one: (${dh},)`,
      vectors: { z: row(V.context, h, i) } });
    cards.push({ id: "concat", title: "10. Concatenate the heads",
      formula: `[z_0 | z_1 | … | z_${H - 1}]: no non-linearity; head ${h} is columns ${h * dh}…${(h + 1) * dh - 1}`,
      shape: `(T, H, d_h) = (${T}, ${H}, ${dh}) → (T, D) = (${T}, ${D}): ${H}×${dh} → ${D}`,
      highlight: [h * dh, (h + 1) * dh], vectors: { concat: row(V.concat, i) } });
    cards.push({ id: "w_o", title: "11. Output projection W_O", formula: "o = concat·W_O + b_O (W_O is D×D)",
      shape: `(T, D) = (${T}, ${D})`, vectors: { o: row(V.attn_out, i) } });
    cards.push({ id: "residual_norm", title: M.norm_first ? "12. Residual" : "12. Residual and LayerNorm",
      formula: M.norm_first ? "h = x + o (pre-norm: the LayerNorm came before the attention)"
        : "h = LayerNorm(x + o) (post-norm, as the original Transformer)",
      shape: `(T, D) = (${T}, ${D})`, vectors: { h: row(V.resid, i) } });
    const ff = {};
    if (M.norm_first) ff["LayerNorm₂(h)"] = row(V.ff_in, i);
    ff[M.norm_first ? "hidden act(LayerNorm₂(h)·W_1 + b_1)" : "hidden act(h·W_1 + b_1)"] = row(V.ff_hidden, i);
    ff["f = hidden·W_2 + b_2"] = row(V.ff_out, i);
    cards.push({ id: "feed_forward", title: "13. Feed-forward",
      formula: M.norm_first ? "f = FFN(LayerNorm₂(h)), FFN(u) = act(u·W_1 + b_1)·W_2 + b_2"
        : "f = FFN(h), FFN(u) = act(u·W_1 + b_1)·W_2 + b_2",
      shape: `(T, D) → (T, d_ff) → (T, D): ${D} → ${M.d_ff} → ${D}`, vectors: ff });
    cards.push({ id: "final", title: `14. Output of layer ${M.layer}`,
      formula: M.norm_first ? "out = h + f" : "out = LayerNorm(h + f)",
      shape: `(T, D) = (${T}, ${D})`, final: true, vectors: { out: row(V.final, i) } });
    return cards;
  }

  // ---- drawing ----
  function colour(x, peak) {
    if (!isFinite(x)) return "#d9d9d9";
    const t = Math.max(-1, Math.min(1, x / (peak || 1)));
    const a = Math.abs(t);
    return t >= 0 ? `rgba(230, 97, 1, ${0.1 + 0.9 * a})` : `rgba(94, 60, 153, ${0.1 + 0.9 * a})`;
  }
  function strip(values, highlight) {
    const wrap = el("div", "strip");
    const peak = Math.max(1e-12, ...values.filter(isFinite).map(Math.abs));
    values.forEach((x, n) => {
      const c = el("span", "cell");
      c.style.background = colour(x, peak);
      if (highlight && n >= highlight[0] && n < highlight[1]) c.classList.add("hl");
      c.title = `[${n}] ${x}`;
      wrap.appendChild(c);
    });
    if (!highlight) return wrap;
    const both = el("div");
    both.appendChild(wrap);
    const range = el("div", "range", `head ${state.head}`);
    range.style.marginLeft = `${(100 * highlight[0]) / values.length}%`;
    range.style.width = `${(100 * (highlight[1] - highlight[0])) / values.length}%`;
    both.appendChild(range);
    return both;
  }
  function numbers(values, count) {
    const shown = values.slice(0, count).map(fmt).join("  ");
    return el("div", "numbers", values.length > count ? `${shown}  … (${values.length} values)` : shown);
  }
  function perKeyTable(values, own, bars, i) {
    const table = el("table", "keys");
    const peak = Math.max(1e-12, ...values.filter(isFinite).map(Math.abs));
    values.forEach((x, j) => {
      const tr = el("tr");
      if (j === i) tr.classList.add("self");
      if (hasMaskToggle && j > i) tr.classList.add("future");
      tr.appendChild(el("td", "tok", M.tokens[j]));
      tr.appendChild(el("td", "val", fmt(x)));
      if (own && own[j] !== x) tr.appendChild(el("td", "own", `model: ${fmt(own[j])}`));
      else tr.appendChild(el("td", "own"));
      const barCell = el("td", "barcell");
      const bar = el("span", bars ? "bar weight" : "bar");
      bar.style.width = isFinite(x) ? `${Math.round(100 * Math.abs(x) / (bars ? 1 : peak))}%` : "0";
      if (x < 0) bar.classList.add("neg");
      barCell.appendChild(bar);
      tr.appendChild(barCell);
      table.appendChild(tr);
    });
    return table;
  }
  const same = (a, b) => a.length === b.length && a.every((x, n) => x === b[n] || (isNaN(x) && isNaN(b[n])));

  function renderCard(card, ownCard) {
    const box = el("section", "card");
    box.dataset.card = card.id;
    if (card.tokens || card.id === "concat") box.classList.add("wide");
    const changed = ownCard && Object.keys(card.vectors).some((k) => !same(card.vectors[k], ownCard.vectors[k]));
    if (changed) box.classList.add("changed");
    box.dataset.changed = changed ? "1" : "0";
    const head = el("div", "card-head");
    head.appendChild(el("h2", null, card.title));
    head.appendChild(el("span", "shape", card.shape));
    box.appendChild(head);
    box.appendChild(el("div", "formula", card.formula));
    if (card.tokens) {
      const list = el("div", "tokens");
      M.tokens.forEach((t, j) => {
        const b = el("button", j === state.token ? "tok chosen" : "tok", t);
        b.title = `token ${j}, id ${M.ids[j]}`;
        b.addEventListener("click", () => set({ token: j }));
        list.appendChild(b);
      });
      box.appendChild(list);
    } else if (card.perKey) {
      const label = Object.keys(card.vectors)[0];
      box.appendChild(perKeyTable(card.vectors[label], changed ? ownCard.vectors[label] : null, card.bars, state.token));
      if (card.slider) box.appendChild(slider());
    } else {
      for (const label of Object.keys(card.vectors)) {
        const v = card.vectors[label];
        const line = el("div", "vector");
        line.appendChild(el("div", "label", `${label} (${v.length})`));
        line.appendChild(strip(v, card.highlight));
        line.appendChild(numbers(v, 8));
        if (changed && !same(v, ownCard.vectors[label])) {
          line.appendChild(el("div", "label own", "the model's own:"));
          line.appendChild(numbers(ownCard.vectors[label], 8));
        }
        box.appendChild(line);
      }
    }
    if (card.final) box.appendChild(finalCheck(card.vectors.out));
    if (card.id === "qkv" && DATA.shapes) box.appendChild(shapesPitfall());
    return box;
  }

  function finalCheck(out) {
    const own = row(FIXED.hidden_state, state.token);
    const diff = Math.max(...out.map((x, n) => Math.abs(x - own[n])));
    const p = el("div", "check");
    p.dataset.maxDifference = String(diff);
    p.textContent = diff <= M.tolerance
      ? `= the model's own hidden state for ${tokenLabel(state.token)} after layer ${M.layer}: ` +
        `max |difference| ${diff.toExponential(1)} over its ${out.length} values ` +
        `(whole text: ${M.max_difference.toExponential(1)}; explain refuses anything above ` +
        `${M.tolerance.toExponential(0)}).`
      : `≠ the model's own hidden state (max |difference| ${diff.toExponential(1)}): ` +
        "this is what the mistake does to the layer's output.";
    if (diff > M.tolerance) p.classList.add("off");
    return p;
  }

  function shapesPitfall() {
    const S = DATA.shapes;
    const box = el("div", "shapes");
    box.appendChild(el("h3", null, "Pitfall: the keys were never split into heads"));
    const table = el("table", "shape-steps");
    const headRow = el("tr");
    ["step", "correct", "mistake"].forEach((t) => headRow.appendChild(el("th", null, t)));
    table.appendChild(headRow);
    S.steps.forEach(([step, good, bad]) => {
      const tr = el("tr");
      if (good !== bad && !bad.startsWith(good)) tr.classList.add("diverge");
      tr.appendChild(el("td", null, step));
      tr.appendChild(el("td", null, good));
      tr.appendChild(el("td", null, bad));
      table.appendChild(tr);
    });
    box.appendChild(table);
    box.appendChild(el("div", "label", "attnlab.scaled_dot_product_attention(q, k, v) raises:"));
    box.appendChild(el("pre", "error", `ValueError: ${S.message}`));
    return box;
  }

  // Why √d_k, on random vectors: q and 8 keys with N(0, 1) entries in d_k dimensions.
  let sliderLog = 6;
  function slider() {
    const box = el("div", "dk");
    box.appendChild(el("h3", null, "Why √d_k: random q and 8 keys with N(0, 1) entries"));
    const input = el("input");
    input.type = "range"; input.min = "0"; input.max = "10"; input.step = "1";
    input.value = String(sliderLog);
    input.setAttribute("aria-label", "d_k = 2^n");
    const out = el("div", "dk-out");
    const draw = () => {
      sliderLog = Number(input.value);
      const dk = 2 ** sliderLog;
      const rand = gaussian(1234);
      const q = Array.from({ length: dk }, rand);
      const scores = Array.from({ length: 8 }, () => q.reduce((acc, x) => acc + x * rand(), 0));
      const sm = (xs) => { const m = Math.max(...xs); const e = xs.map((x) => Math.exp(x - m)); const z = e.reduce((a, b) => a + b); return e.map((x) => x / z); };
      const std = Math.sqrt(scores.reduce((a, x) => a + x * x, 0) / scores.length);
      const scaled = sm(scores.map((x) => x / Math.sqrt(dk)));
      const raw = sm(scores);
      out.textContent = "";
      out.appendChild(el("div", null, `d_k = ${dk}: spread of q·k ≈ ${std.toFixed(1)} (grows like √d_k = ${Math.sqrt(dk).toFixed(1)})`));
      out.appendChild(weightsLine("softmax(q·k/√d_k)", scaled));
      out.appendChild(weightsLine("softmax(q·k), unscaled", raw));
    };
    input.addEventListener("input", draw);
    box.appendChild(input);
    box.appendChild(out);
    draw();
    return box;
  }
  function weightsLine(label, w) {
    const line = el("div", "dk-line");
    line.appendChild(el("span", "label", `${label}: max ${w.reduce((a, b) => Math.max(a, b)).toFixed(2)}`));
    const bars = el("span", "dk-bars");
    w.forEach((x) => { const b = el("span", "dk-bar"); b.style.height = `${Math.round(40 * x) + 1}px`; bars.appendChild(b); });
    line.appendChild(bars);
    return line;
  }
  function gaussian(seed) {  // mulberry32 + Box–Muller: the same vectors at every load
    let a = seed >>> 0;
    const uniform = () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
    return () => Math.sqrt(-2 * Math.log(uniform() + 1e-12)) * Math.cos(2 * Math.PI * uniform());
  }

  // ---- controls and state ----
  function controls() {
    const c = document.getElementById("controls");
    c.textContent = "";
    const head = el("label", null, "head ");
    const select = el("select");
    select.id = "head";
    for (let n = 0; n < M.n_heads; n++) {
      const o = el("option", null, String(n));
      o.value = String(n);
      select.appendChild(o);
    }
    select.value = String(state.head);
    select.addEventListener("change", () => set({ head: Number(select.value) }));
    head.appendChild(select);
    c.appendChild(head);
    c.appendChild(toggle("scale", "divide the scores by √d_k", true));
    c.appendChild(toggle("mask", "causal mask", hasMaskToggle));
    c.appendChild(el("span", "hint", "token: click one in card 1 · cards that differ from the model's own computation are marked"));
  }
  function toggle(name, text, enabled) {
    const label = el("label", enabled ? "toggle" : "toggle disabled");
    const box = el("input");
    box.type = "checkbox";
    box.id = `toggle-${name}`;
    box.checked = state[name];
    box.disabled = !enabled;
    box.addEventListener("change", () => set({ [name]: box.checked }));
    label.appendChild(box);
    label.appendChild(document.createTextNode(` ${text}`));
    if (!enabled) label.title = "an encoder has no causal mask";
    return label;
  }

  function about() {
    const p = document.getElementById("about");
    p.textContent = `${M.description}. Text: ${JSON.stringify(M.text)}. Every number below was ` +
      "computed from this model's own weights: the real forward was hooked for the embeddings and " +
      "Q, K, V; the attention is recomputed step by step and run through the model's own W_O, " +
      "LayerNorm and feed-forward modules.";
    const pit = document.getElementById("pitfall");
    if (DATA.start.pitfall) {
      pit.hidden = false;
      pit.textContent = "";
      pit.appendChild(el("strong", null, `Pitfall: ${DATA.pitfalls[DATA.start.pitfall]}. `));
      const how = {
        scaling: "The page opens with the scaling removed: compare each marked card with the model's own numbers (untick/tick the box).",
        mask: "The page opens with the causal mask removed: future tokens receive weight, and every step after the softmax changes.",
        shapes: "Card 4 shows where the shapes part ways and the exact error attnlab raises.",
      }[DATA.start.pitfall];
      pit.appendChild(document.createTextNode(how));
    }
  }

  function render() {
    const key = variantKey(state);
    const cards = cardsFor(state, key);
    const own = key === DATA.own ? null : cardsFor(state, DATA.own);
    const root = document.getElementById("cards");
    root.textContent = "";
    cards.forEach((card, n) => root.appendChild(renderCard(card, own ? own[n] : null)));
    document.body.dataset.variant = key;
    document.body.dataset.rendered = "1";
  }
  function set(partial) {
    Object.assign(state, partial);
    if (!hasMaskToggle) state.mask = false;
    controls();
    render();
  }

  // For tests and scripts: the state, and each card's numbers as shown.
  window.attnlabExplain = {
    state: () => Object.assign({}, state),
    set,
    cards: () => cardsFor(state, variantKey(state)).map((c) => c.id),
    values: (id) => {
      const card = cardsFor(state, variantKey(state)).find((c) => c.id === id);
      const out = {};
      for (const k of Object.keys(card.vectors)) out[k] = card.vectors[k].map((x) => (isFinite(x) ? x : String(x)));
      return out;
    },
  };
  about();
  controls();
  render();
})();
