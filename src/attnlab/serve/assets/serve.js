// attnlab serve: the form. Sends the text(s) and a model index (never a path) to /api/jobs,
// shows where the job stands while it waits or runs, then opens the result page (the same page
// as `attnlab show -o x.html`) in the frame below. Server text is shown with textContent only.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("serve-config").textContent);
  const $ = (id) => document.getElementById(id);
  const select = $("model");
  cfg.models.forEach((m, i) => {
    const o = document.createElement("option");
    o.value = String(i);
    o.textContent = m.name + (m.encoder_decoder ? " (encoder–decoder)" : "");
    select.appendChild(o);
  });
  const encoderDecoder = () => cfg.models[+select.value].encoder_decoder;
  const syncTarget = () => { $("target-box").hidden = !encoderDecoder(); };
  select.addEventListener("change", syncTarget);
  syncTarget();

  function say(message, error) {
    const s = $("status");
    s.textContent = message;
    s.className = error ? "error" : "";
  }
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

  // The JSON of an answer; an error answer's message becomes the thrown error.
  async function answer(response) {
    let body = null;
    try { body = await response.json(); } catch (e) { /* not JSON: say the status */ }
    if (!response.ok) {
      throw new Error((body && body.error) || `the server answered ${response.status}`);
    }
    return body;
  }

  let current = 0;  // the latest submission: answers to older ones are dropped
  async function submit(event) {
    event.preventDefault();
    const mine = ++current, started = performance.now();
    const body = { model: +select.value, text: $("text").value };
    if ($("compare").value.trim()) body.compare = $("compare").value;
    if (encoderDecoder() && $("target").value.trim()) body.target = $("target").value;
    if (!body.text.trim()) { say("type a text first", true); return; }
    $("submit").disabled = true;
    say("sending…");
    try {
      let state = await answer(await fetch("/api/jobs", { method: "POST",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }));
      while (state.state === "queued" || state.state === "running") {
        if (mine !== current) return;
        say(state.progress);
        await sleep(state.state === "queued" ? 200 : 60);
        state = await answer(await fetch("/api/jobs/" + encodeURIComponent(state.job)));
      }
      if (mine !== current) return;
      if (state.state === "error") throw new Error(state.error);
      open(state.view, started);
    } catch (err) {
      if (mine === current) say(err.message, true);
    } finally {
      if (mine === current) $("submit").disabled = false;
    }
  }

  function open(url, started) {
    const frame = $("result");
    say("drawing…");
    frame.hidden = false;
    frame.onload = () => say(`done in ${((performance.now() - started) / 1000).toFixed(2)} s`);
    frame.src = url;
    $("open").href = url;
    $("open").hidden = false;
  }

  $("form").addEventListener("submit", submit);
  // Ctrl+Enter (⌘+Enter) in a text box submits.
  $("form").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("form").requestSubmit();
  });
})();
