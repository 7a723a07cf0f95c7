"""The README's screenshots of the interactive page, one per view, from `attnlab demo`'s page
(and the same pair with every measure), in headless Debian Chromium:

    HF_HUB_OFFLINE=1 .venv/bin/python docs/screenshots.py     # writes docs/figures/page_*.png
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from attnlab.viz.render import DEMO_SENTENCES, demo, show

FIGURES = Path(__file__).parent / "figures"
VIEWS = {  # file name → the page's #fragment
    "page_head_view": "view=head&layer=5&head=11&token=10",
    "page_heatmap_view": "view=heatmap&layer=5&head=11&token=10",
    "page_model_view": "view=model&layer=5&head=11",
    "page_difference_view": "view=difference&layer=5&head=11",
    "page_rollout": "view=head&layer=5&head=11&token=10&measure=rollout",
}


def main() -> None:
    out = Path(tempfile.mkdtemp())
    demo(out)
    show(DEMO_SENTENCES[0], out / "measures.html", compare=DEMO_SENTENCES[1], measure="all")
    with sync_playwright() as p:
        flags = ["--headless", "--no-sandbox", "--disable-gpu"]
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        for name, fragment in VIEWS.items():
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            html = "measures.html" if "measure=" in fragment else "attention.html"
            page.goto(f"{(out / html).as_uri()}#{fragment}")
            page.wait_for_selector("body[data-rendered]")
            page.screenshot(path=str(FIGURES / f"{name}.png"))
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
