"""The interactive page and `attnlab serve`: page size and first render for a long text, time
from submit to first render, and exact-tile latency.

    python -m benchmarks.viz            # 4096-token page; MiniLM at 128 tokens; tiles at 4096
    python -m benchmarks.viz --quick    # a smoke run (small sizes)

The long page's payload comes from exact attention captured on a 6-layer, 12-head BERT of
MiniLM's shape (random weights: MiniLM itself stops at 512 positions). Render time is measured
in headless Debian Chromium from navigation start to the page's own "rendered" mark, median of
5 loads. Serve: the real app (Starlette on uvicorn, in this process, on 127.0.0.1); submit →
first render is the time from the click on "show attention" to the result frame's "rendered"
mark, for new 128-token texts on the bundled MiniLM (loaded before), median of 5 after one
warm-up; tiles are the 512 × 512 blocks a zoomed heatmap asks for, at random places of a
4,096-token capture of the random 6 × 12 BERT, one at a time, 60 of them.
Targets: page ≤ 10 MB and first render ≤ 2 s; submit → render ≤ 1 s; tile p95 ≤ 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import torch

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "street", "house", "tree",
         "while", "because", "it", "was", "tired", "wide", "and", "but", "she", "he", "they", "we",
         "saw", "heard", "small", "large", "red", "blue", "old", "new"]  # fmt: skip


def random_bert(n: int):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(
        hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
        max_position_embeddings=max(512, n), attn_implementation="sdpa",
    )).eval()  # fmt: skip


def build_payload(n: int):
    import attnlab
    from attnlab.inspection.report import Report
    from attnlab.viz.payload import AttentionPayload

    model = random_bert(n)
    ids = torch.randint(1000, 2000, (1, n))
    with torch.no_grad(), attnlab.capture(model) as maps:
        model(ids)
    report = Report("random text", [f"tok{i}" for i in range(n)], dict(maps), "BertModel")
    return AttentionPayload.from_report(report)


def text_of(tokens: int, seed: int) -> str:
    """Words that are one BERT token each: ``tokens`` tokens with [CLS] and [SEP]."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(tokens - 2))


def page_benchmark(browser, n: int, loads: int) -> tuple[float, float]:
    from attnlab.viz.html import write_page

    path = write_page(build_payload(n), Path(tempfile.mkdtemp()) / "page.html")
    times = []
    for _ in range(loads):
        page = browser.new_page()
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-rendered]")
        times.append(float(page.get_attribute("body", "data-rendered")) / 1000)
        page.close()
    return path.stat().st_size / 2**20, statistics.median(times)


@contextlib.contextmanager
def serving(models):
    """The app on a free loopback port, uvicorn in a thread; yields its URL."""
    import uvicorn

    from attnlab.serve import create_app
    from attnlab.serve.server import bind

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(models), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def submit_benchmark(browser, tokens: int, runs: int) -> list[float]:
    """Seconds from the click to the result's first render, new texts on MiniLM."""
    from attnlab.serve.models import load_models

    times = []
    with serving(load_models([])) as url:
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.goto(url)
        for run in range(runs + 1):  # the first is a warm-up
            page.fill("#text", text_of(tokens, seed=run))
            page.evaluate("document.getElementById('result').removeAttribute('src')")
            start = time.perf_counter()
            page.click("#submit")
            page.frame_locator("#result").locator("body[data-rendered]").wait_for(timeout=60_000)
            if run:
                times.append(time.perf_counter() - start)
    return times


def tile_benchmark(n: int, count: int) -> tuple[float, list[float]]:
    """Seconds from submitting an n-token text to its result being ready (capture, pooled
    maps, links, page), and per exact 512 × 512 tile (smaller for short texts) of it."""
    import json

    from attnlab.inspection.pretrained import load_minilm
    from attnlab.serve.models import ServedModel

    served = ServedModel(f"random BERT 6×12, {n} positions", random_bert(n), load_minilm()[1])
    side = min(512, n)
    with serving([served]) as url:
        body = json.dumps({"model": 0, "text": text_of(n, seed=1)}).encode()
        request = urllib.request.Request(f"{url}/api/jobs", body,
                                         {"Content-Type": "application/json"})  # fmt: skip
        state = json.load(urllib.request.urlopen(request))
        while state["state"] in ("queued", "running"):
            time.sleep(0.05)
            state = json.load(urllib.request.urlopen(f"{url}/api/jobs/{state['job']}"))
        key, ready = state["view"].rsplit("/", 1)[1], state["seconds"]
        rng, times = random.Random(0), []
        for _ in range(count):
            q, k = (rng.randrange(0, n - side + 1) for _ in range(2))
            args = (f"text=0&layer={rng.randrange(6)}&head={rng.randrange(12)}&q0={q}&q1={q + side}"
                    f"&k0={k}&k1={k + side}")  # fmt: skip
            start = time.perf_counter()
            data = urllib.request.urlopen(f"{url}/api/tile/{key}?{args}").read()
            times.append(time.perf_counter() - start)
            assert len(data) == side * side * 4
    return ready, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one load")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    n, loads, tokens, runs, tile_n, tiles = (
        (64, 1, 32, 1, 256, 5) if args.quick else (4096, 5, 128, 5, 4096, 60)
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        size_mb, render = page_benchmark(browser, n, loads)
        submits = submit_benchmark(browser, tokens, runs)
        browser.close()
    ready, tile_times = tile_benchmark(tile_n, tiles)
    tile_times.sort()
    p95 = tile_times[min(len(tile_times) - 1, round(0.95 * (len(tile_times) - 1)))]
    print(f"page: {n} tokens × 6 layers × 12 heads; serve: MiniLM {tokens} tokens, tiles at "
          f"{tile_n} tokens")  # fmt: skip
    print("| measure | figure | target |")
    print("|---|---|---|")
    print(f"| page file, {n} tokens | {size_mb:.2f} MB | ≤ 10 MB |")
    print(f"| page first render, {n} tokens (median of {loads}) | {render:.2f} s | ≤ 2 s |")
    print(
        f"| serve: submit → first render, {tokens} tokens (median of {runs}; max) | "
        f"{statistics.median(submits):.2f} s; {max(submits):.2f} s | ≤ 1 s |"
    )
    print(f"| serve: submit → result ready, {tile_n} tokens (random 6×12 BERT) | {ready:.1f} s | |")
    print(
        f"| serve: exact tile {min(512, tile_n)}², N = {tile_n} (p50; p95 of {tiles}) | "
        f"{statistics.median(tile_times) * 1000:.0f} ms; {p95 * 1000:.0f} ms | p95 ≤ 200 ms |"
    )


if __name__ == "__main__":
    main()
