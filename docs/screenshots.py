"""The README's screenshots of the interactive page, one per view, from `attnlab demo`'s page
(and the same pair with every measure), in headless Debian Chromium:

    HF_HUB_OFFLINE=1 .venv/bin/python docs/screenshots.py     # writes docs/figures/page_*.png
    HF_HUB_OFFLINE=1 .venv/bin/python docs/screenshots.py --serve-only    # docs/figures/serve*.png

and of `attnlab serve` with the demo's first sentence typed and drawn (the app on a free
loopback port in this process). Two views need trained models, runs of `attnlab train`:

    .venv/bin/python docs/screenshots.py --lm-run runs/shakespeare-char \
        --translation-run runs/translate-en-es     # page_generation_steps, page_source_target

the generation-step slider (`attnlab show PROMPT --model LM_RUN --generate 60`) and the source ↔
target view of cross-attention (`attnlab show VERSE --model TRANSLATION_RUN --target
TRANSLATION`, the target being the model's own greedy translation).
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
# The Shakespeare GPT continues Juliet's line with a new speech ("\n\nCASSIO:\nI will not be
# so.\n\nCASSIO:..."); at step 36 the query of "O" predicts ":" after the second "CASSIO", and
# layer 2, head 2 looks back at the newline that began that line.
LM_PROMPT, LM_TOKENS, LM_VIEW = "JULIET:\nO Romeo, Romeo!", 60, "view=head&layer=2&head=2&step=36"
# English → Spanish: the target token "Dios" focused in cross-attention, where one head links it
# to the source's "God".
VERSE, SPANISH_TOKEN, ENGLISH_TOKEN = (
    "In the beginning God created the heaven and the earth.", "ĠDios", "ĠGod")  # fmt: skip
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


def run_pages(out: Path, lm_run: str, translation_run: str) -> dict[str, str]:
    """The pages of the two training runs, with the #fragment each screenshot opens:
    {file name: page URL}."""
    from attnlab.inspection.pretrained import load_model_path, model_name
    from attnlab.inspection.report import generate, inspect
    from attnlab.viz.html import write_page
    from attnlab.viz.payload import AttentionPayload

    show(LM_PROMPT, out / "generation.html", model=lm_run, generate=LM_TOKENS)
    model, tokenizer = load_model_path(translation_run)
    spanish = generate(VERSE, model=model, tokenizer=tokenizer, max_new_tokens=40).target
    report = inspect(VERSE, model=model, tokenizer=tokenizer, target=spanish)
    # The cross-attention layer and head where "Dios" weighs "God" most.
    heads = report.heads_weighing(SPANISH_TOKEN, ENGLISH_TOKEN, top=1)
    layer = max(range(len(heads)), key=lambda i: heads[i][0][1])
    head, token = heads[layer][0][0], report.target_tokens.index(SPANISH_TOKEN)
    # The page of this report, as `show` writes it, without loading the run a second time.
    write_page(AttentionPayload.panels(report), out / "translation.html",
               title=f"attnlab: attention on {model_name(translation_run)}")  # fmt: skip
    cross = 2  # the page's panels: encoder, decoder, cross-attention
    return {
        "page_generation_steps": f"{(out / 'generation.html').as_uri()}#{LM_VIEW}",
        "page_source_target": f"{(out / 'translation.html').as_uri()}#view=head&layer={layer}"
        f"&head={head}&text={cross}&token={token}",
    }


def run_screenshots(browser, lm_run: str, translation_run: str) -> None:
    with tempfile.TemporaryDirectory() as pages:  # removed once photographed
        for name, url in run_pages(Path(pages), lm_run, translation_run).items():
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.wait_for_selector("body[data-rendered]")
            page.screenshot(path=str(FIGURES / f"{name}.png"))
            page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-only", action="store_true", help="only docs/figures/serve*.png")
    parser.add_argument("--lm-run", metavar="PATH",
                        help="a Shakespeare run (attnlab train --preset shakespeare-char): only "
                        "docs/figures/page_generation_steps.png and page_source_target.png, "
                        "with --translation-run")  # fmt: skip
    parser.add_argument("--translation-run", metavar="PATH",
                        help="an English → Spanish run (--preset translate-en-es)")  # fmt: skip
    args = parser.parse_args()
    if (args.lm_run is None) != (args.translation_run is None):
        parser.error("--lm-run and --translation-run go together")
    if args.lm_run is not None:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            run_screenshots(browser, args.lm_run, args.translation_run)
            browser.close()
        return
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
