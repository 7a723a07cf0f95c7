"""The README's screenshots of `attnlab explain`'s page (the real MiniLM, layer 5, head 11, the
query of "it"), in headless Debian Chromium:

    HF_HUB_OFFLINE=1 .venv/bin/python docs/explain_screenshots.py   # docs/figures/explain_*.png
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from attnlab.explain import explain

FIGURES = Path(__file__).parent / "figures"
TEXT = "The animal didn't cross the street because it was tired"
SHOTS = {  # file name → (pitfall, first card, last row of cards); None: from the top
    "explain_page": (None, None, ("softmax", "weighted_sum")),
    "explain_pitfall_scaling": ("scaling", "scaling", ("softmax", "weighted_sum")),
}


def main() -> None:
    out = Path(tempfile.mkdtemp())
    with sync_playwright() as p:
        flags = ["--headless", "--no-sandbox", "--disable-gpu"]
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        for name, (pitfall, first, last) in SHOTS.items():
            path = out / f"{name}.html"
            explain(TEXT, layer=5, head=11, token="it", pitfall=pitfall).save(path)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(path.as_uri())
            page.wait_for_selector("body[data-rendered]")
            top = 0 if first is None else page.locator(f"[data-card={first}]").bounding_box()["y"]
            boxes = [page.locator(f"[data-card={card}]").bounding_box() for card in last]
            bottom = max(b["y"] + b["height"] for b in boxes) + 8
            clip = {"x": 0, "y": max(0, top - 8), "width": 1400, "height": bottom - max(0, top - 8)}
            page.screenshot(path=str(FIGURES / f"{name}.png"), clip=clip, full_page=True)
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
