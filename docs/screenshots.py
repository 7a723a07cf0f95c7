"""The README's screenshots of the interactive page, one per view, from `attnlab demo`'s page
(and the same pair with every measure), in headless Debian Chromium:

    HF_HUB_OFFLINE=1 .venv/bin/python docs/screenshots.py     # writes docs/figures/page_*.png
    HF_HUB_OFFLINE=1 .venv/bin/python docs/screenshots.py --serve-only    # docs/figures/serve*.png

and of `attnlab serve` with the demo's first sentence typed and drawn (the app on a free
loopback port in this process).
"""

from __future__ import annotations

import argparse
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


FLAGS = ["--headless", "--no-sandbox", "--disable-gpu"]
LONG_TEXT = (
    "The animal didn't cross the street because it was tired. The street was wide and the "
    "animal waited on the pavement until the traffic stopped, and then it walked home."
)


def serve_screenshot(browser) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.viz import serving

    from attnlab.serve.models import load_models

    with serving(load_models([])) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.fill("#text", DEMO_SENTENCES[0])
        page.click("#submit")
        page.frame_locator("#result").locator("body[data-rendered]").wait_for()
        page.wait_for_function(
            "() => document.getElementById('status').textContent.startsWith('done')"
        )
        frame = next(f for f in page.frames if "/view/" in f.url)
        frame.evaluate("location.hash = 'view=head&layer=5&head=11&token=10'")
        frame.wait_for_selector("svg.headview text.active")
        page.screenshot(path=str(FIGURES / "serve.png"))
        # A long text (MiniLM's 512 positions): zoomed in, the heatmap shows exact weights.
        first = page.get_attribute("#open", "href")
        page.fill("#text", " ".join(LONG_TEXT for _ in range(9)))
        page.click("#submit")
        page.wait_for_function(
            "(first) => document.getElementById('open').getAttribute('href') !== first", arg=first
        )
        view = page.get_attribute("#open", "href")
        page.goto(f"{url}{view}#view=heatmap&layer=5&head=11")
        page.wait_for_selector("body[data-rendered]")
        for _ in range(4):
            page.click("#zoom-in")
        page.wait_for_selector("canvas.heat[data-exact]")
        box = page.locator("canvas.heat").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.42, box["y"] + box["height"] * 0.55)
        page.wait_for_selector("#tooltip:not([hidden])")
        page.screenshot(path=str(FIGURES / "serve_exact_zoom.png"))
        page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-only", action="store_true", help="only docs/figures/serve*.png")
    args = parser.parse_args()
    if args.serve_only:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            serve_screenshot(browser)
            browser.close()
        return
    out = Path(tempfile.mkdtemp())
    demo(out)
    show(DEMO_SENTENCES[0], out / "measures.html", compare=DEMO_SENTENCES[1], measure="all")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        for name, fragment in VIEWS.items():
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            html = "measures.html" if "measure=" in fragment else "attention.html"
            page.goto(f"{(out / html).as_uri()}#{fragment}")
            page.wait_for_selector("body[data-rendered]")
            page.screenshot(path=str(FIGURES / f"{name}.png"))
            page.close()
        serve_screenshot(browser)
        browser.close()


if __name__ == "__main__":
    main()
