"""Size and first-render time of the interactive page for a long text.

    python -m benchmarks.viz            # 1024 tokens × 6 layers × 12 heads
    python -m benchmarks.viz --quick    # a smoke run

The payload comes from exact attention captured on a 6-layer, 12-head BERT of MiniLM's shape
(random weights: MiniLM itself stops at 512 positions). Render time is measured in headless
Debian Chromium from navigation start to the page's own "rendered" mark, median of 5 loads.
Targets: file ≤ 10 MB, first render ≤ 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch


def build_payload(n: int):
    from transformers import BertConfig, BertModel

    import attnlab
    from attnlab.inspection.report import Report
    from attnlab.viz.payload import AttentionPayload

    torch.manual_seed(0)
    model = BertModel(BertConfig(
        hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
        max_position_embeddings=max(512, n), attn_implementation="sdpa",
    )).eval()  # fmt: skip
    ids = torch.randint(1000, 2000, (1, n))
    with torch.no_grad(), attnlab.capture(model) as maps:
        model(ids)
    report = Report("random text", [f"tok{i}" for i in range(n)], dict(maps), "BertModel")
    return AttentionPayload.from_report(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 tokens, one load")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from attnlab.viz.html import write_page

    n, loads = (64, 1) if args.quick else (1024, 5)
    payload = build_payload(n)
    path = write_page(payload, Path(tempfile.mkdtemp()) / "page.html")
    size_mb = path.stat().st_size / 2**20
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ]  # fmt: skip
    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        for _ in range(loads):
            page = browser.new_page()
            page.goto(path.as_uri())
            page.wait_for_selector("body[data-rendered]")
            times.append(float(page.get_attribute("body", "data-rendered")) / 1000)
            page.close()
        browser.close()
    print(f"{n} tokens × {payload.n_layers} layers × {payload.n_heads} heads")
    print("| file MB | first render s (median) | targets |")
    print("|---|---|---|")
    print(f"| {size_mb:.2f} | {statistics.median(times):.2f} | ≤ 10 MB, ≤ 2 s |")


if __name__ == "__main__":
    main()
